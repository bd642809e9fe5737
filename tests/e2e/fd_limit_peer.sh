#!/bin/sh
# When this process runs out of file descriptors (issue 12 section 5), the
# diagnostic says "too many open files", names the limit and what to do,
# never "relay connect failed" (the relay is not at fault). A round of 8
# seeds under `ulimit -n 12` against the scripted peers (a relay that
# accepts, the IMAP peer's uidplus scenario): some seeds get no socket.
# Checked on the summary's full diagnostics (stdout) and stderr.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-.}
BIN=$top_builddir/inboxprobe
PEER=$top_srcdir/tests/peers/imap_peer.py
SMTP_PEER=$top_srcdir/tests/peers/smtp_peer.py
PY=/usr/bin/python3
[ -x "$BIN" ] || { echo "inboxprobe not built: $BIN" >&2; exit 99; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/fdlimit.XXXXXX") || exit 99
PIDS=
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null; done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
FAILS=0
CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $*"; }
not_ok() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $*"; }
printf 'seed-secret-Q7\n' >"$TMP/seed.pass"
chmod 600 "$TMP/seed.pass"
$PY "$SMTP_PEER" ok --port-file "$TMP/smtp.port" --lifetime 60 </dev/null >/dev/null 2>&1 &
PIDS="$PIDS $!"
$PY "$PEER" uidplus --lifetime 60 >"$TMP/port" 2>/dev/null &
PIDS="$PIDS $!"
i=0
while { [ ! -s "$TMP/smtp.port" ] || [ ! -s "$TMP/port" ]; } && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
SMTP_PORT=$(cat "$TMP/smtp.port") PORT=$(head -n 1 "$TMP/port")
[ -n "$SMTP_PORT" ] && [ -n "$PORT" ] || { echo "peers did not start" >&2; exit 99; }
seeds=
for n in 1 2 3 4 5 6 7 8; do seeds="$seeds${seeds:+, }{ address = \"s$n@example.test\"; provider = \"peer\"; }"; done
cat >"$TMP/fd.conf" <<CONF
name = "fd";
relay = { url = "smtp://127.0.0.1:$SMTP_PORT"; tls = "none"; from = "probe@example.test";
          connect_timeout = 3; timeout = 5; };
probe = { deadline = 6; poll_interval = 1; cleanup = "delete"; };
slo = { min_inbox_ratio = 0.0; };
imap_defaults = { url = "imap://127.0.0.1:$PORT"; tls = "none"; password_file = "$TMP/seed.pass"; };
seeds = ( $seeds );
CONF
(ulimit -n 12 && TMPDIR=$TMP exec timeout 40 "$BIN" run -c "$TMP/fd.conf") >"$TMP/fd.out" 2>"$TMP/fd.err"
echo "# exit $?"
diags=$(cat "$TMP/fd.out" "$TMP/fd.err")
printf '%s\n' "$diags" | sed 's/^/#   /'
if printf '%s\n' "$diags" | grep -q "too many open files (limit 12)"; then
	ok "a seed without a socket says: too many open files (limit 12)"
else
	not_ok "a seed without a socket says: too many open files (limit 12)"
fi
if printf '%s\n' "$diags" | grep -qi "relay connect"; then
	not_ok "no diagnostic blames the relay (relay connect)"
else
	ok "no diagnostic blames the relay (relay connect)"
fi
if printf '%s\n' "$diags" | grep "too many open files" | grep -q "ulimit -n"; then
	ok "  ... and says what to do (ulimit -n, LimitNOFILE=)"
else
	not_ok "  ... and says what to do (ulimit -n, LimitNOFILE=)"
fi
echo "$CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
