#!/bin/sh
# A state store held by another process (issue 12 section 2): the run still
# records its probes, retrying within its deadline, and otherwise says
# exactly which probes were not recorded. Against the scripted IMAP peer
# (uidplus: every probe is found at once) and a relay that accepts; the
# holder is python3's sqlite3 in BEGIN EXCLUSIVE.
#  1. held for 4 s from the start (deadline 8 s): the write-ahead gives up
#     (a quarter of the deadline) and says which probes go out without it;
#     the round's record waits and succeeds: exit 0, the probe counted once.
#  2. held for the whole run: exit 3, and the run names the probe that is
#     not recorded (seed, the token's first 8 digits, outcome).
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top_srcdir/tests/e2e/common.sh"
command -v sqlite3 >/dev/null || { echo "SKIP: no sqlite3"; exit 77; }
peer_test_init statebusy
PEER=$top_srcdir/tests/peers/imap_peer.py
need_built "$BIN"
$PY "$SMTP_PEER" ok --port-file "$TMP/smtp.port" --lifetime 120 </dev/null >/dev/null 2>&1 &
PIDS="$PIDS $!"
$PY "$PEER" uidplus --lifetime 120 >"$TMP/port" 2>/dev/null &
PIDS="$PIDS $!"
wait_files "$TMP/smtp.port" "$TMP/port"
SMTP_PORT=$(cat "$TMP/smtp.port") PORT=$(head -n 1 "$TMP/port")
[ -n "$SMTP_PORT" ] && [ -n "$PORT" ] || { echo "peers did not start" >&2; exit 99; }
cat >"$TMP/busy.conf" <<CONF
name = "busy";
relay = { url = "smtp://127.0.0.1:$SMTP_PORT"; tls = "none"; from = "probe@example.test";
          connect_timeout = 3; timeout = 5; };
probe = { deadline = 8; poll_interval = 1; cleanup = "delete"; };
slo = { min_inbox_ratio = 0.0; };
imap_defaults = { url = "imap://127.0.0.1:$PORT"; tls = "none"; password_file = "$TMP/seed.pass"; };
state = { path = "$TMP/busy.db"; retention_days = 30; };
seeds = ( { address = "seed@example.test"; provider = "peer"; } );
CONF
run() { timeout 60 "$BIN" run -c "$TMP/busy.conf" --json "$TMP/$1.json" >"$TMP/$1.out" 2>"$TMP/$1.err"; rc=$?; }
# hold SECONDS: BEGIN EXCLUSIVE on the store for that long (in the background)
hold() {
	$PY - "$TMP/busy.db" "$1" <<'PY' &
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0)
c.execute("BEGIN EXCLUSIVE")
open(sys.argv[1] + ".held", "w").close()
time.sleep(float(sys.argv[2]))
c.execute("ROLLBACK")
PY
	HOLDER=$!
	PIDS="$PIDS $HOLDER"
	i=0
	while [ ! -e "$TMP/busy.db.held" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	rm -f "$TMP/busy.db.held"
}
q() { sqlite3 -readonly "$TMP/busy.db" "$1"; }
tok() { $PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["seeds"][0]["token"])' "$1"; }

run first
check "a first run creates the store (exit 0)" 0 "$rc"

hold 4
run held4
wait "$HOLDER" 2>/dev/null
check "held 4 s: the run waits and records its round (exit 0)" 0 "$rc"
t=$(tok "$TMP/held4.json")
grep -q "not written ahead: seed@example.test probe $(printf %.8s "$t")" "$TMP/held4.err" &&
	ok "held 4 s: the run says which probe went out without a write-ahead record" ||
	not_ok "held 4 s: the run says which probe went out without a write-ahead record: $(cat "$TMP/held4.err")"
check "held 4 s: the probe is recorded, counted once" "1 inbox 1" \
	"$(q "SELECT count(*), outcome, counted FROM probes WHERE token = '$t'" | tr '|' ' ')"
check "held 4 s: probes_total{inbox} = 2 after two runs" 2 \
	"$(q "SELECT value FROM counters WHERE name = 'probes_total' AND label = 'inbox'")"

hold 40
run held
kill "$HOLDER" 2>/dev/null
wait "$HOLDER" 2>/dev/null
check "held for the whole run: exit 3" 3 "$rc"
# a store fault leaves the report files as they were: none was written here
[ ! -e "$TMP/held.json" ] &&
	ok "held for the whole run: no report file written (the store failed)" ||
	not_ok "held for the whole run: a report file was written"
grep -q "not recorded: seed@example.test probe [0-9a-f]\{8\}… (inbox)" "$TMP/held.err" &&
	ok "held for the whole run: the run names the probe not recorded" ||
	not_ok "held for the whole run: the run names the probe not recorded: $(cat "$TMP/held.err")"
grep -q "busy.db.*database is locked" "$TMP/held.err" &&
	ok "held for the whole run: the message names the store and the lock" ||
	not_ok "held for the whole run: the message names the store and the lock"
if grep -qE "[0-9a-f]{32}" "$TMP/held.err" "$TMP/held.out"; then
	not_ok "held for the whole run: the whole token is never printed"
else
	ok "held for the whole run: the whole token is never printed"
fi
run after
check "released: the next run exits 0" 0 "$rc"
check "released: the store passes integrity_check" ok "$(q 'PRAGMA integrity_check')"
echo "$CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
