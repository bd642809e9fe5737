#!/bin/sh
# File descriptors (issue 9 "File descriptors", issue 12 section 5): before a
# round, inboxprobe computes the descriptors it needs (IMAP sessions, the
# relay's connections, store, reports) against RLIMIT_NOFILE, raises the
# soft limit to the hard one when short, and when still short says so at
# start, "needs N file descriptors, limit M", and sends nothing, instead of
# failing seeds mid-round with "too many open files". Against the scripted
# peers (a relay that accepts and logs every command, the IMAP peer's
# uidplus scenario), 8 seeds:
#   - `ulimit -n 12` (soft = hard): exit 3 at start, the figures named, the
#     relay never sees a connection, no diagnostic blames the relay; `check`
#     warns with the same figures and still says the configuration is OK;
#   - soft 12, hard 4096: the soft limit is raised and the round runs;
#   - `ulimit -n 4096`: `check` prints the round's need below the limit.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top_srcdir/tests/e2e/common.sh"
peer_test_init fdlimit
PEER=$top_srcdir/tests/peers/imap_peer.py
need_built "$BIN"
$PY "$SMTP_PEER" ok --port-file "$TMP/smtp.port" --log "$TMP/smtp.log" --lifetime 60 </dev/null >/dev/null 2>&1 &
PIDS="$PIDS $!"
$PY "$PEER" uidplus --lifetime 60 >"$TMP/port" 2>/dev/null &
PIDS="$PIDS $!"
wait_files "$TMP/smtp.port" "$TMP/port"
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
# need N: the figure of "needs N file descriptors" in file N
need() { sed -n 's/.*needs \([0-9]*\) file descriptors.*/\1/p' "$1" | head -n 1; }
(ulimit -n 12 && TMPDIR=$TMP exec timeout 40 "$BIN" run -c "$TMP/fd.conf" --json "$TMP/fd.json") \
	>"$TMP/fd.out" 2>"$TMP/fd.err"
rc=$?
sed 's/^/#   /' "$TMP/fd.out" "$TMP/fd.err"
if [ "$rc" = 3 ]; then ok "limit 12 (hard 12): exit 3 at start"; else not_ok "limit 12: exit 3 at start (got $rc)"; fi
n=$(need "$TMP/fd.err")
if [ -n "$n" ] && [ "$n" -gt 12 ] && grep -q "needs $n file descriptors, limit 12 (hard limit 12)" "$TMP/fd.err"; then
	ok "  ... says: needs $n file descriptors, limit 12 (hard limit 12)"
else
	not_ok "  ... says: needs N file descriptors, limit 12 (hard limit 12)"
fi
# 8 seeds, per_account 2 by default, per_host 64: two sessions each
if grep -q "16 IMAP sessions" "$TMP/fd.err"; then
	ok "  ... counts 16 IMAP sessions (8 seeds, two each)"
else
	not_ok "  ... counts 16 IMAP sessions (8 seeds, two each)"
fi
if grep "needs $n" "$TMP/fd.err" | grep -q "ulimit -n"; then
	ok "  ... and says what to do (ulimit -n, LimitNOFILE=)"
else
	not_ok "  ... and says what to do (ulimit -n, LimitNOFILE=)"
fi
if [ -s "$TMP/smtp.log" ]; then
	not_ok "  ... the relay saw nothing (it logged: $(head -c 200 "$TMP/smtp.log"))"
else
	ok "  ... the relay saw nothing"
fi
if [ -e "$TMP/fd.json" ]; then not_ok "  ... no report written"; else ok "  ... no report written"; fi
if cat "$TMP/fd.out" "$TMP/fd.err" | grep -qi "relay connect"; then
	not_ok "no diagnostic blames the relay (relay connect)"
else
	ok "no diagnostic blames the relay (relay connect)"
fi
(ulimit -n 12 && exec "$BIN" check -c "$TMP/fd.conf") >"$TMP/check.out" 2>"$TMP/check.err"
rc=$?
sed 's/^/#   /' "$TMP/check.out" "$TMP/check.err"
if [ "$rc" = 0 ] && grep -q "configuration OK" "$TMP/check.out" &&
	grep -q "needs $n file descriptors, limit 12" "$TMP/check.err"; then
	ok "check under limit 12: warns with the same figures, configuration OK"
else
	not_ok "check under limit 12: warns with the same figures, configuration OK (exit $rc)"
fi
(ulimit -Sn 12 && ulimit -Hn 4096 && TMPDIR=$TMP exec timeout 40 "$BIN" run -c "$TMP/fd.conf" \
	--json "$TMP/fd2.json") >"$TMP/fd2.out" 2>"$TMP/fd2.err"
rc=$?
inbox=$($PY -c 'import json, sys; print(sum(s["outcome"] == "inbox" for s in json.load(open(sys.argv[1]))["seeds"]))' \
	"$TMP/fd2.json" 2>/dev/null)
if [ "$rc" = 0 ] && ! grep -q "file descriptors" "$TMP/fd2.err" && [ "$inbox" = 8 ]; then
	ok "soft limit 12, hard 4096: raised, the round runs (8 inbox)"
else
	not_ok "soft limit 12, hard 4096: raised, the round runs (exit $rc, $inbox inbox)"
	sed 's/^/#   /' "$TMP/fd2.err"
fi
(ulimit -n 4096 && exec "$BIN" check -c "$TMP/fd.conf") >"$TMP/check2.out" 2>"$TMP/check2.err"
if grep -q "^file descriptors: a round needs $n (16 IMAP sessions), limit 4096" "$TMP/check2.out"; then
	ok "check under limit 4096: a round needs $n (16 IMAP sessions)"
else
	not_ok "check under limit 4096: a round needs $n (16 IMAP sessions)"
	sed 's/^/#   /' "$TMP/check2.out" "$TMP/check2.err"
fi
# The daemon: the same budget plus its listener, checked before it starts.
{ cat "$TMP/fd.conf"; echo "state = { path = \"$TMP/state.db\"; };"; } >"$TMP/fdd.conf"
before=$(wc -c <"$TMP/smtp.log")
(ulimit -n 12 && exec timeout 20 "$BIN" daemon -c "$TMP/fdd.conf") >"$TMP/fdd.out" 2>"$TMP/fdd.err"
rc=$?
sed 's/^/#   /' "$TMP/fdd.err"
nd=$(need "$TMP/fdd.err")
if [ "$rc" = 3 ] && [ -n "$nd" ] && [ -n "$n" ] && [ "$nd" -gt "$n" ] &&
	grep -q "needs $nd file descriptors, limit 12.*the daemon does not start" "$TMP/fdd.err"; then
	ok "daemon under limit 12: exit 3 before it starts, needs $nd (more than run's $n: the listener, the store)"
else
	not_ok "daemon under limit 12: exit 3 before it starts, needs more than run's $n (exit $rc, needs $nd)"
fi
check_same() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1 ($2 -> $3 bytes)"; fi; }
check_same "  ... the relay saw nothing from it" "$before" "$(wc -c <"$TMP/smtp.log")"

# check's warning when the seeds of a host outnumber per_host names the
# line of imap_limits.per_host (line 6 here); the figures say "session" for one
sed 's/^slo = .*/imap_limits = {\
  per_host = 3; };/' "$TMP/fd.conf" >"$TMP/turns.conf"
(ulimit -n 4096 && exec "$BIN" check -c "$TMP/turns.conf") >"$TMP/turns.out" 2>"$TMP/turns.err"
rc=$?
check "check, per_host 3 for 8 seeds: exit 0" 0 "$rc"
check "  ... warns at per_host's line" \
	"inboxprobe: warning: $TMP/turns.conf:6: 8 seeds use IMAP host 127.0.0.1:$PORT but imap_limits.per_host is 3: the seeds take turns with short visits (no IDLE), each checked less often; raise per_host or split the seeds over configurations" \
	"$(cat "$TMP/turns.err")"
check "  ... a round holds 3 IMAP sessions" 1 "$(grep -c '^file descriptors: a round needs [0-9]* (3 IMAP sessions), limit 4096$' "$TMP/turns.out")"
sed 's/^seeds = .*/seeds = ( { address = "s1@example.test"; provider = "peer"; } );/; s/^slo = .*/imap_limits = { per_account = 1; };/' \
	"$TMP/fd.conf" >"$TMP/one.conf"
(ulimit -n 4096 && exec "$BIN" check -c "$TMP/one.conf") >"$TMP/one.out" 2>"$TMP/one.err"
check "check, one seed on one session: no warning" "" "$(cat "$TMP/one.err")"
check "  ... \"1 IMAP session\"" 1 "$(grep -c '^file descriptors: a round needs [0-9]* (1 IMAP session), limit 4096$' "$TMP/one.out")"
echo "$CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
