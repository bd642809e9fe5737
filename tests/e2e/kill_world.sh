#!/bin/sh
# No probe leaks (issue 12 section 2), end to end against the loopback
# world: `inboxprobe run` with a state store is killed with SIGKILL at
# random points of its round (before, during and after submission, during
# discovery and cleanup, while recording), 5 times in a row; then 2 rounds
# run to their end. Checked after that:
#  - no probe is left in any seed mailbox (doveadm, every folder);
#  - the counters (probes_total, late_arrivals_total, the histogram count)
#    never went down, read from the store after every run;
#  - every probe is counted exactly once: the sum of probes_total equals
#    the number of probe rows, and no row is left uncounted (write-ahead
#    rows of killed runs are counted once, as error, by the next run).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
world_test_start kill sqlite3
SEEDS="inbox@gmail.test spam@gmail.test inbox@outlook.test spam@yahoo.test"
world_run_conf "$T/kill.conf" kill probe@sender.test 10 "$T/kill.db" \
	"inbox@gmail.test:gmail spam@gmail.test:gmail inbox@outlook.test:outlook spam@yahoo.test:yahoo"
q() { sqlite3 -readonly "$T/kill.db" "$1" 2>/dev/null; }
# the counters as one comparable line: probes_total, late, histogram count
counters() {
	q "SELECT coalesce(sum(CASE WHEN name = 'probes_total' THEN value END), 0) || ' ' ||
	          coalesce(sum(CASE WHEN name = 'late_arrivals_total' THEN value END), 0) || ' ' ||
	          coalesce(sum(CASE WHEN name = 'delivery_latency_seconds' AND label = 'count'
	                            THEN value END), 0) FROM counters WHERE config = 'kill'"
}
PREV="0 0 0"
# never_down WHEN: the counters now are >= the last reading, each of them
never_down() {
	_now=$(counters)
	[ -n "$_now" ] || _now="0 0 0"
	if echo "$PREV $_now" | awk '{ exit !($4 >= $1 && $5 >= $2 && $6 >= $3) }'; then
		ok "counters never went down: $PREV -> $_now ($1)"
	else
		not_ok "counters went down: $PREV -> $_now ($1)"
	fi
	PREV=$_now
}
# 5 kill points spread over a round (about a second here: submission,
# discovery, cleanup, recording), in ms after the run has written its
# probes ahead; random each run
DELAYS=$(awk -v s="$$" 'BEGIN { srand(s); for (i = 0; i < 5; i++) printf "%d ", 100 + i * 130 + int(rand() * 130) }')
echo "# SIGKILL this many ms after the write-ahead: $DELAYS"
# left_behind: how many probes the seed mailboxes hold (every folder)
left_behind() {
	_n=0
	for _u in $SEEDS; do
		_c=$(doveadm -c "$WORLD_DIR/dovecot/main.conf" search -u "$_u" mailbox '*' \
			header X-Inboxprobe-Token "" </dev/null 2>/dev/null | wc -l)
		_n=$((_n + _c))
	done
	echo "$_n"
}
k=0
MID=0
LEFT=0
for ms in $DELAYS; do
	k=$((k + 1))
	"$BIN" run -c "$T/kill.conf" --json "$T/k$k.json" </dev/null >"$T/k$k.out" 2>"$T/k$k.err" &
	pid=$!
	i=0
	while [ "$(q 'SELECT count(*) FROM probes WHERE counted = 0')" != 4 ] && [ $i -lt 150 ]; do
		sleep 0.02
		i=$((i + 1))
	done
	sleep "$(awk -v m="$ms" 'BEGIN { printf "%.3f", m / 1000 }')"
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	un=$(q 'SELECT count(*) FROM probes WHERE counted = 0')
	[ "${un:-0}" -gt 0 ] && MID=$((MID + 1))
	sleep 0.5
	lb=$(left_behind)
	[ "$lb" -gt 0 ] && LEFT=$((LEFT + 1))
	echo "# kill $k at ${ms} ms: rows $(q 'SELECT count(*) FROM probes') (written ahead, not recorded: $un); probes in the seed mailboxes: $lb"
	never_down "after kill $k"
done
if [ "$MID" -ge 1 ]; then ok "$MID of 5 kills hit a round after its write-ahead, before its record"
else not_ok "no kill hit a round between its write-ahead and its record"; fi
if [ "$LEFT" -ge 1 ]; then ok "$LEFT of 5 kills left probes in the seed mailboxes (for later rounds to clean up)"
else not_ok "no kill left a probe behind: the test did not kill a round after submission"; fi
echo "# probes in the seed mailboxes before the later rounds: $(left_behind)"
for n in 1 2; do
	"$BIN" run -c "$T/kill.conf" --json "$T/r$n.json" </dev/null >"$T/r$n.out" 2>"$T/r$n.err"
	rc=$?
	sed 's/^/#   /' "$T/r$n.out"
	case $rc in 0|1) ok "later round $n completed (exit $rc)" ;;
		*) not_ok "later round $n exit $rc: $(cat "$T/r$n.err")" ;; esac
	never_down "after later round $n"
done
grep -h "written ahead by a run" "$T/r1.err" | sed 's/^/# /'
sleep 1
left=0
for u in $SEEDS; do
	c=$(doveadm -c "$WORLD_DIR/dovecot/main.conf" search -u "$u" mailbox '*' \
		header X-Inboxprobe-Token "" </dev/null 2>/dev/null | wc -l)
	echo "# $u: $c probe(s) left"
	left=$((left + c))
done
check "no probe left in any seed mailbox" 0 "$left"
rows=$(q "SELECT count(*) FROM probes WHERE config = 'kill'")
counted=$(q "SELECT coalesce(sum(value), 0) FROM counters WHERE config = 'kill' AND name = 'probes_total'")
check "every probe counted exactly once (probes_total sum = probe rows = $rows)" "$rows" "$counted"
check "no probe row left uncounted" 0 "$(q "SELECT count(*) FROM probes WHERE counted = 0")"
check "the store passes integrity_check" ok "$(q 'PRAGMA integrity_check')"
world_result
