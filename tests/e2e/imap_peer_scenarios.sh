#!/bin/sh
# IMAP driver against the scripted peer (tests/peers/imap_peer.py): exact
# error codes for BYE, [UNAVAILABLE], app-password refusals, a stalled
# server (deadline holds), a garbled untagged line; the SEARCH fallback
# finding the probe; localized folder names without special-use flags; and
# no credential sent when TLS is required but STARTTLS is not offered;
# endless replies (line, literal, trickle) cut off by the byte budget or
# the timeout with bounded memory; a silent implicit-TLS server bounded by
# the timeout; control characters kept out of folder display names.
# Exit 0 pass, 1 fail.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top_srcdir/tests/e2e/common.sh"
peer_test_init imappeer
PEER=$top_srcdir/tests/peers/imap_peer.py
need_built "$IC"
field() { ic_field "$@"; }

TOKEN=0123456789abcdef0123456789abcdef
export IMAPCHECK_PASSWORD=peer-secret-Xy9

# start_peer SCENARIO: sets PORT, PEER_PID
start_peer() {
	rm -f "$TMP/record"
	peer_start "$PEER" "$1" --record "$TMP/record" --lifetime 20
}

run() { "$IC" --url "imap://127.0.0.1:$PORT" --tls none --user seed@example.test --from probe@example.test "$@"; }

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

# A UID SEARCH naming 1000 UIDs for one token is hostile: said so, and only
# the newest 8 (IMAP_SEARCH_MAX_PER_TOKEN) are fetched.
start_peer manyuids
out=$(run find INBOX "$TOKEN" 2>"$TMP/manyuids.err")
check "1000 UIDs for one token: no hit among the newest 8" 0 "$(field "$out" hits 2)"
grep -q 'UID SEARCH for 1 token named 1000 messages, more than the cap of 8: a hostile or broken server; examining the newest 8 only' "$TMP/manyuids.err" &&
	ok "  ... says the server is hostile or broken" || not_ok "  ... says the server is hostile or broken: $(cat "$TMP/manyuids.err")"
f=$(grep 'UID FETCH' "$TMP/record" | head -n 1 | cut -d' ' -f4)
check "  ... the first UID FETCH asks for the newest 8 UIDs only" "1000,999,998,997,996,995,994,993" "$f"

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
out=$(timeout 15 "$IC" --url "imap://127.0.0.1:$PORT" --tls none --user seed@example.test --from probe@example.test find INBOX "$TOKEN")
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
# The greeting's [CAPABILITY ...] code already says no STARTTLS: the client
# decides from it (RFC 3501 7.1) without asking again.
grep -q "CAPABILITY" "$TMP/record" && not_ok "capabilities taken from the greeting (no CAPABILITY sent)" ||
	ok "capabilities taken from the greeting (no CAPABILITY sent)"

# measured CMD...: runs CMD, prints its stdout, then
# "measure\tSECONDS\tMAXRSS_KB\tEXIT" (wall time and peak RSS of CMD).
measured() {
	python3 -c '
import resource, subprocess, sys, time
t = time.monotonic()
p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, timeout=60)
sys.stdout.buffer.write(p.stdout)
print("measure\t%.2f\t%d\t%d" % (time.monotonic() - t,
      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode))' "$@"
}
# within SECONDS LIMIT: true when SECONDS <= LIMIT (decimals allowed)
within() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }
MAXRSS_KB=204800   # 200 MB, sanitizer builds included

# A peer that keeps the socket readable with an endless reply: cut off by
# the byte budget of the greeting (1 MiB), bounded in time and memory.
start_peer bigline
out=$(measured "$IC" --url "imap://127.0.0.1:$PORT" --tls none --user seed@example.test \
	--timeout 3 --deadline 20 open)
secs=$(field "$out" measure 2); rss=$(field "$out" measure 3)
check "endless greeting line -> proto" proto "$(field "$out" error 2)"
case $out in *"larger than 1 MiB"*) ok "  ... says the reply was too large" ;;
	*) not_ok "  ... says the reply was too large: $out" ;; esac
if within "$secs" 4; then ok "  ... returned in ${secs} s (timeout 3 s)"; else not_ok "  ... took ${secs} s"; fi
if [ "${rss:-999999999}" -lt $MAXRSS_KB ]; then ok "  ... maxrss ${rss} KB"; else not_ok "  ... maxrss ${rss} KB"; fi

start_peer biglit
out=$(measured "$IC" --url "imap://127.0.0.1:$PORT" --tls none --user seed@example.test \
	--from probe@example.test --timeout 3 --deadline 20 find INBOX "$TOKEN")
secs=$(field "$out" measure 2); rss=$(field "$out" measure 3)
check "FETCH literal {100000000} -> proto" proto "$(field "$out" error 2)"
case $out in *"UID FETCH: server reply larger than 16 MiB"*) ok "  ... names UID FETCH and the limit" ;;
	*) not_ok "  ... names UID FETCH and the limit: $out" ;; esac
if within "$secs" 4; then ok "  ... returned in ${secs} s (timeout 3 s)"; else not_ok "  ... took ${secs} s"; fi
if [ "${rss:-999999999}" -lt $MAXRSS_KB ]; then ok "  ... maxrss ${rss} KB"; else not_ok "  ... maxrss ${rss} KB"; fi

# SELECT answered by an endless flood of "* N EXISTS" lines: libetpan keeps
# each parsed untagged response (some ten times its bytes; under the FETCH
# budget of 16 MiB the flood held 156 MB), so every command but a FETCH has
# a budget of 1 MiB: a clear error naming SELECT, the client exits, and its
# peak RSS stays far below that (the bound holds sanitizer builds too).
start_peer existsflood
out=$(measured "$IC" --url "imap://127.0.0.1:$PORT" --tls none --user seed@example.test \
	--from probe@example.test --timeout 10 --deadline 20 find INBOX "$TOKEN")
rss=$(field "$out" measure 3)
check "SELECT answered by an endless EXISTS flood -> proto" proto "$(field "$out" error 2)"
case $out in *"SELECT: server reply larger than 1 MiB; connection dropped"*) ok "  ... names SELECT and the 1 MiB budget" ;;
	*) not_ok "  ... names SELECT and the 1 MiB budget: $out" ;; esac
check "  ... the client exited (not killed by the 60 s guard)" 1 "$(field "$out" measure 4 | awk '{ print ($1 >= 0 && $1 < 128) }')"
FLOOD_MAXRSS_KB=92160   # 90 MB: a 16 MiB flood held 156 MB, ASan builds stay below
if [ "${rss:-999999999}" -lt $FLOOD_MAXRSS_KB ]; then ok "  ... maxrss ${rss} KB (< $FLOOD_MAXRSS_KB)"; else not_ok "  ... maxrss ${rss} KB (>= $FLOOD_MAXRSS_KB)"; fi

# Data keeps flowing (slowly) but the line never ends: the timeout holds.
start_peer trickle
out=$(measured "$IC" --url "imap://127.0.0.1:$PORT" --tls none --user seed@example.test \
	--timeout 2 --deadline 20 open)
secs=$(field "$out" measure 2)
check "trickling endless line -> timeout" timeout "$(field "$out" error 2)"
if within "$secs" 3; then ok "  ... returned in ${secs} s (timeout 2 s)"; else not_ok "  ... took ${secs} s"; fi

# imaps:// to a server that accepts TCP and never speaks: the handshake is
# bounded by the per-command timeout, not the round deadline.
start_peer silenttls
out=$(measured "$IC" --url "imaps://127.0.0.1:$PORT" --user seed@example.test \
	--timeout 2 --deadline 20 open)
secs=$(field "$out" measure 2)
check "silent TLS server -> timeout" timeout "$(field "$out" error 2)"
case $out in *"TLS handshake timed out"*) ok "  ... in the handshake" ;; *) not_ok "  ... in the handshake: $out" ;; esac
if within "$secs" 3; then ok "  ... returned in ${secs} s (timeout 2 s, deadline 20 s)"; else not_ok "  ... took ${secs} s"; fi

# Control characters in folder names never reach the display name; U+0000
# no longer truncates "Spam&AAA-Trap" to the known spam name "Spam".
start_peer ctrlnames
out=$(run list)
disp() { printf '%s\n' "$out" | awk -F'\t' -v w="$1" '$1 == "folder" && $2 == w { print $3 }'; }
check "U+0000 in a name: display is the wire name" "Spam&AAA-Trap" "$(disp 'Spam&AAA-Trap')"
check "  ... not taken for the spam folder" unresolved "$(field "$out" spam 3)"
check "ESC in modified UTF-7: display is the wire name" "Junk&ABs-" "$(disp 'Junk&ABs-')"
check "raw ESC in a literal name -> '?'" "Esc?[31mRed" "$(disp "$(printf 'Esc\033[31mRed')")"
check "raw DEL -> '?'" "Del?X" "$(disp "$(printf 'Del\177X')")"
check "raw UTF-8 kept" "Café" "$(disp "Café")"
check "six folders listed" 6 "$(printf '%s\n' "$out" | awk -F'\t' '$1 == "folder"' | wc -l | tr -d ' ')"
n=$(printf '%s\n' "$out" | awk -F'\t' '$1 == "folder" { print $3 }' | LC_ALL=C grep -c '[[:cntrl:]]')
check "no control character in any display name" 0 "$n"

# Name resolution is bounded by connect_timeout (getaddrinfo_a): in a
# private mount + network namespace, resolv.conf points at a DNS server on
# 127.0.0.1:53 that never answers (the resolver alone would wait 5 s x 3
# attempts per query). Needs root and unshare(1); skipped otherwise.
if [ "$(id -u)" = 0 ] && [ -f /etc/resolv.conf ] && command -v unshare >/dev/null 2>&1 && command -v ip >/dev/null 2>&1 &&
	unshare -mn true 2>/dev/null; then
	printf 'nameserver 127.0.0.1\noptions timeout:5 attempts:3\n' >"$TMP/resolv.conf"
	cat >"$TMP/silentdns.py" <<'PYEOF'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
s.settimeout(0.5)
print("ready", flush=True)
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    try:
        s.recvfrom(4096)
    except socket.timeout:
        pass
PYEOF
	out=$(TMP=$TMP IC=$IC timeout 40 unshare -mn sh -c '
		ip link set lo up && mount --bind "$TMP/resolv.conf" /etc/resolv.conf || exit 99
		python3 "$TMP/silentdns.py" 20 >"$TMP/dns.out" &
		dns=$!
		i=0; while [ ! -s "$TMP/dns.out" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
		python3 -c "
import subprocess, sys, time
t = time.monotonic()
p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, timeout=30)
sys.stdout.buffer.write(p.stdout)
print(\"measure\t%.2f\" % (time.monotonic() - t))" "$IC" --url imap://probe.example.test:143 \
			--tls none --user seed@example.test --connect-timeout 1 --deadline 20 open
		kill $dns 2>/dev/null
		exit 0')
	secs=$(field "$out" measure 2)
	check "unanswered DNS -> timeout" timeout "$(field "$out" error 2)"
	case $out in *"cannot resolve host"*) ok "  ... while resolving" ;; *) not_ok "  ... while resolving: $out" ;; esac
	if within "${secs:-99}" 2; then ok "  ... returned in ${secs} s (connect_timeout 1 s)"; else not_ok "  ... took ${secs} s"; fi
else
	echo "# skip: resolver timeout check needs root and unshare -mn"
fi

echo "# $CHECKS checks, $FAILS failed"
[ "$CHECKS" -gt 0 ] && [ "$FAILS" -eq 0 ]
