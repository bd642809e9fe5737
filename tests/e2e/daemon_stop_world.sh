#!/bin/sh
# No probe leaks when the daemon is stopped mid-round (issue 12 section 2;
# the 500-round soak's "one message left in a seed mailbox" was this):
# `inboxprobe daemon` with a state store is sent SIGTERM in its second
# round, right after the relay accepted a probe (so before any probe of
# that round can have been found: Dovecot announces new mail 0.5 s after
# it lands). Checked:
#  - the daemon exits 0 and says how many accepted probes it leaves pending
#    in the state store, and who cleans them up;
#  - the stop left probes in the seed mailboxes, and every one of them is
#    pending in the store (outcome error, accepted, not found yet): none is
#    unknown to the store;
#  - the next start of the daemon (one round, then SIGTERM between rounds)
#    cleans every one of them up: no probe left in any folder;
#  - every probe is counted exactly once (probes_total sum = probe rows,
#    none left uncounted), and the stopped round's probes count as error.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
BIN=${top_builddir:-.}/inboxprobe
[ -x "$BIN" ] || { echo "no inboxprobe binary at $BIN"; exit 99; }
for t in curl sqlite3; do
	command -v $t >/dev/null || { echo "SKIP: no $t (Debian packages curl, sqlite3)"; exit 77; }
done
world_up
T=$WORLD_DIR/stop
mkdir -p "$T"
DPID=
trap '_st=$?; [ -n "$DPID" ] && kill -KILL "$DPID" 2>/dev/null; (exit $_st); world_down' EXIT
SEEDS="inbox@gmail.test spam@gmail.test inbox@outlook.test spam@yahoo.test"
PORT=$(free_port)
# conf FILE INTERVAL
conf() {
	world_run_conf "$1" stop probe@sender.test 15 "$T/stop.db" \
		"inbox@gmail.test:gmail spam@gmail.test:gmail inbox@outlook.test:outlook spam@yahoo.test:yahoo" "" \
		"report = { json = \"$T/stop.json\"; };
schedule = { interval = $2; };
web = { listen_address = \"127.0.0.1:$PORT\"; };"
}
q() { sqlite3 -readonly "$T/stop.db" "$1" 2>/dev/null; }
metric() {
	curl -s "http://127.0.0.1:$PORT/metrics" 2>/dev/null |
		awk -v m="$1" '$1 == m || index($1, m "{") == 1 { v = $2 } END { print v + 0 }'
}
# wait_for SECONDS COMMAND...: until COMMAND succeeds; 1 on timeout
wait_for() {
	_end=$(($(date +%s) + $1))
	shift
	until "$@"; do
		[ "$(date +%s)" -lt "$_end" ] || return 1
		sleep 0.05
	done
}
rounds_at_least() { [ "$(metric inboxprobe_rounds_total)" -ge "$1" ]; }
accepted_more_than() { [ "$(grep -c 'accepted by relay' "$T/d1.err")" -gt "$1" ]; }
# tokens_left: the X-Inboxprobe-Token of every message in every seed folder
tokens_left() { world_tokens $SEEDS; }

conf "$T/d1.conf" 2
"$BIN" daemon -v -c "$T/d1.conf" </dev/null >"$T/d1.out" 2>"$T/d1.err" &
DPID=$!
if wait_for 60 rounds_at_least 1; then ok "the daemon finished its first round"
else not_ok "no first round within 60 s: $(tail -n 5 "$T/d1.err")"; fi
n1=$(grep -c 'accepted by relay' "$T/d1.err")
if wait_for 30 accepted_more_than "$n1"; then
	kill -TERM "$DPID"
	ok "SIGTERM right after the relay accepted a probe of round 2"
else
	kill -TERM "$DPID"
	not_ok "round 2 sent no probe within 30 s"
fi
wait "$DPID"
rc=$?
DPID=
check "the daemon exits 0 on SIGTERM" 0 "$rc"
grep -h "interrupted\|stay.* pending" "$T/d1.err" | sed 's/^/# /'
if grep -q "accepted by the relay and not found yet stay.* pending in the state store" "$T/d1.err"; then
	ok "the daemon says which probes it leaves pending and who cleans them up"
else
	not_ok "no word of the probes left pending: $(tail -n 3 "$T/d1.err")"
fi
sleep 1.5   # let the accepted probes land
tokens_left >"$T/left1"
left=$(wc -l <"$T/left1")
echo "# probes in the seed mailboxes after the stop: $left"
if [ "$left" -ge 1 ]; then ok "the stop left $left accepted probe(s) in the seed mailboxes"
else not_ok "the stop left no probe behind: the test did not stop a round after submission"; fi
unknown=0
while read -r tok; do
	row=$(q "SELECT outcome || ' ' || (submit_time > 0) || ' ' || (found_at IS NULL) || ' ' || counted
	         FROM probes WHERE token = '$tok'")
	echo "# left: ${tok%????????????????????????} row: ${row:-none}"
	[ "$row" = "error 1 1 1" ] || unknown=$((unknown + 1))
done <"$T/left1"
check "every probe left is pending in the store (error, accepted, not found, counted)" 0 "$unknown"

# the next start: one round, then SIGTERM between rounds
conf "$T/d2.conf" 3600
"$BIN" daemon -v -c "$T/d2.conf" </dev/null >"$T/d2.out" 2>"$T/d2.err" &
DPID=$!
if wait_for 60 rounds_at_least 1; then ok "the next start ran a round"
else not_ok "the next start ran no round within 60 s: $(tail -n 5 "$T/d2.err")"; fi
kill -TERM "$DPID"
wait "$DPID"
rc=$?
DPID=
check "the next start exits 0 on SIGTERM between rounds" 0 "$rc"
cleaned=$(grep -c "^cleaned up: " "$T/d2.err")
grep -h "^cleaned up: \|^found: " "$T/d2.err" | sed 's/^/# /'
check "the next start cleaned up every probe the stop left ($left)" "$left" "$cleaned"
sleep 0.5
check "no probe left in any seed mailbox" 0 "$(tokens_left | wc -l)"
rows=$(q "SELECT count(*) FROM probes WHERE config = 'stop'")
counted=$(q "SELECT coalesce(sum(value), 0) FROM counters WHERE config = 'stop' AND name = 'probes_total'")
check "every probe counted exactly once (probes_total sum = probe rows = $rows)" "$rows" "$counted"
check "no probe row left uncounted" 0 "$(q "SELECT count(*) FROM probes WHERE counted = 0")"
errs=$(q "SELECT coalesce(sum(value), 0) FROM counters WHERE config = 'stop' AND name = 'probes_total' AND label = 'error'")
if [ "${errs:-0}" -ge "$left" ]; then ok "the stopped round's probes count as error ($errs >= $left)"
else not_ok "probes_total{outcome=error} $errs < $left probes left by the stop"; fi
world_result
