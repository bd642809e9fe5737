#!/bin/sh
# IMAP driver against the scripted peer (tests/peers/imap_peer.py): exact
# error codes for BYE, [UNAVAILABLE], app-password refusals, a stalled
# server (deadline holds), a garbled untagged line; the SEARCH fallback
# finding the probe; localized folder names without special-use flags; and
# no credential sent when TLS is required but STARTTLS is not offered.
# Exit 0 pass, 1 fail.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-.}
IC=$top_builddir/tests/tools/imapcheck
PEER=$top_srcdir/tests/peers/imap_peer.py
[ -x "$IC" ] || { echo "imapcheck not built: $IC" >&2; exit 99; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/imappeer.XXXXXX") || exit 99
PEER_PID=
cleanup() {
	[ -n "$PEER_PID" ] && kill "$PEER_PID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
FAILS=0
CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $*"; }
not_ok() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $*"; }
check() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1 (expected '$2', got '$3')"; fi; }
field() { printf '%s\n' "$1" | awk -F'\t' -v k="$2" -v n="$3" '$1 == k { print $n; exit }'; }

TOKEN=0123456789abcdef0123456789abcdef
export IMAPCHECK_PASSWORD=peer-secret-Xy9

# start_peer SCENARIO: sets PORT, PEER_PID
start_peer() {
	[ -n "$PEER_PID" ] && kill "$PEER_PID" 2>/dev/null
	rm -f "$TMP/port" "$TMP/record"
	python3 "$PEER" "$1" --record "$TMP/record" --lifetime 20 >"$TMP/port" 2>"$TMP/peer.err" &
	PEER_PID=$!
	i=0
	while [ ! -s "$TMP/port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	PORT=$(head -n 1 "$TMP/port")
	[ -n "$PORT" ] || { echo "peer did not start" >&2; cat "$TMP/peer.err" >&2; exit 99; }
}

run() { "$IC" --url "imap://127.0.0.1:$PORT" --tls none --user seed@example.test "$@"; }

start_peer bye
out=$(run find INBOX "$TOKEN")
check "BYE after SELECT -> bye" bye "$(field "$out" error 2)"

start_peer fallback
out=$(run find INBOX "$TOKEN")
check "fallback finds the probe" 1 "$(field "$out" hits 2)"
check "  ... UID 9" 9 "$(field "$out" hit 4)"
check "  ... UIDVALIDITY 42" 42 "$(field "$out" hit 3)"
check "  ... INTERNALDATE 17-Jul-1996 02:44:25 -0700" 837596665 "$(field "$out" hit 5)"
grep -q "UID SEARCH SINCE" "$TMP/record" && ok "fallback used SEARCH SINCE" || not_ok "fallback used SEARCH SINCE"

start_peer unavailable
out=$(run open)
check "NO [UNAVAILABLE] -> unavailable" unavailable "$(field "$out" error 2)"
case $out in *"Too many simultaneous"*) ok "server text quoted" ;; *) not_ok "server text quoted: $out" ;; esac

start_peer authapp
out=$(run open)
check "app-specific password -> authapp" authapp "$(field "$out" error 2)"

start_peer authfail
out=$(run open)
check "[AUTHENTICATIONFAILED] -> auth" auth "$(field "$out" error 2)"
case $out in *"$IMAPCHECK_PASSWORD"*) not_ok "password not in message" ;; *) ok "password not in message" ;; esac

start_peer stall
t0=$(date +%s)
out=$(run --timeout 30 --deadline 2 open)
t1=$(date +%s)
check "stalled server -> timeout" timeout "$(field "$out" error 2)"
if [ $((t1 - t0)) -le 4 ]; then ok "deadline held ($((t1 - t0)) s for a 2 s deadline)"; else not_ok "deadline held (took $((t1 - t0)) s)"; fi
start_peer stall
t0=$(date +%s)
out=$(run --timeout 1 --deadline 20 open)
t1=$(date +%s)
check "per-command timeout -> timeout" timeout "$(field "$out" error 2)"
if [ $((t1 - t0)) -le 3 ]; then ok "per-command timeout held"; else not_ok "per-command timeout held (took $((t1 - t0)) s)"; fi

start_peer list
out=$(run list)
check "localized spam name under INBOX" INBOX.Pourriel "$(field "$out" spam 2)"
check "  ... as a known name" "known name" "$(field "$out" spam 3)"
check "localized trash name" INBOX.Papierkorb "$(field "$out" trash 2)"
check "UTF-7 name decoded" "INBOX.Gelöschte Elemente" \
	"$(printf '%s\n' "$out" | awk -F'\t' '$2 == "INBOX.Gel&APY-schte Elemente" { print $3 }')"
check "\\Noselect seen" noselect "$(printf '%s\n' "$out" | awk -F'\t' '$2 == "Archive" { print $4 }')"

start_peer garbled
out=$(timeout 15 "$IC" --url "imap://127.0.0.1:$PORT" --tls none --user seed@example.test find INBOX "$TOKEN")
rc=$?
[ $rc -ne 124 ] && ok "garbled line does not hang" || not_ok "garbled line does not hang"
check "garbled untagged line -> proto" proto "$(field "$out" error 2)"

start_peer nostarttls
out=$("$IC" --url "imap://127.0.0.1:$PORT" --user seed@example.test open)
check "TLS required, no STARTTLS -> nostarttls" nostarttls "$(field "$out" error 2)"
if grep -qi "LOGIN\|$IMAPCHECK_PASSWORD" "$TMP/record" 2>/dev/null; then
	not_ok "no credential reached the server"
else
	ok "no credential reached the server"
fi
grep -q "CAPABILITY" "$TMP/record" && ok "peer saw CAPABILITY" || not_ok "peer saw CAPABILITY"

echo "# $CHECKS checks, $FAILS failed"
[ "$CHECKS" -gt 0 ] && [ "$FAILS" -eq 0 ]
