#!/bin/sh
# No probe leaks when a round loses its IMAP session for good after the
# relay accepted the probe (issue 12 section 2), end to end against the
# loopback world, with a state store: the greylisted seed's probe is
# accepted, then, while the round waits for it, the seed's sessions are
# kicked again and again (`doveadm kick`), so the one reconnect is lost too.
# Checked:
#  - the round ends `error` for that seed (accepted, not measured), and the
#    store keeps the probe pending for cleanup (outcome error, submit time);
#  - the probe lands later (greylisting), and the next run finds it, says it
#    cleaned up a probe its round could not measure, and counts it nowhere
#    else: probes_total{error} 1 for the first round, late arrivals 0;
#  - no probe is left in the seed mailbox.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
world_test_start lost sqlite3
SEED=inbox@greylist.test
FROM="lost$$-$(date +%s)@sender.test"   # a new greylisting triplet
world_run_conf "$T/lost.conf" lost "$FROM" 20 "$T/lost.db" "$SEED:greylist"
q() { sqlite3 -readonly "$T/lost.db" "$1" 2>/dev/null; }
json() { python3 -c 'import json,sys; r = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2" 2>/dev/null; }
tokens_left() { world_tokens "$SEED"; }
counter() {
	q "SELECT coalesce(sum(value), 0) FROM counters WHERE config = 'lost' AND name = '$1' $2"
}

"$BIN" run -v -c "$T/lost.conf" --json "$T/r1.json" </dev/null >"$T/r1.out" 2>"$T/r1.err" &
run=$!
i=0
until grep -q "accepted by relay" "$T/r1.err" || [ $i -ge 300 ]; do sleep 0.1; i=$((i + 1)); done
assert "the relay accepted the probe (greylisted further on)" grep -q "accepted by relay" "$T/r1.err"
# kick the seed's sessions until the round has given up on them
i=0
while kill -0 "$run" 2>/dev/null && [ $i -lt 60 ]; do
	doveadm -c "$DOVECOT_CONF" kick "$SEED" </dev/null >/dev/null 2>&1
	sleep 0.2
	i=$((i + 1))
done
wait "$run"
rc=$?
grep -i "reconnect\|lost\|BYE" "$T/r1.err" | sed 's/^/#   stderr: /' | head -n 5
check "the round exits 3 (a seed could not be measured)" 3 "$rc"
check "the seed is error" error "$(json "$T/r1.json" 'r["seeds"][0]["outcome"]')"
tok=$(json "$T/r1.json" 'r["seeds"][0]["token"]')
row=$(q "SELECT outcome, submit_time > 0, found_at IS NULL, counted FROM probes WHERE token = '$tok'")
check "the store keeps the accepted probe pending for cleanup" "error|1|1|1" "$row"

if world_wait_token "$SEED" "$tok"; then ok "the probe landed after its round"
else not_ok "the probe never landed"; fi

"$BIN" run -c "$T/lost.conf" --json "$T/r2.json" </dev/null >"$T/r2.out" 2>"$T/r2.err"
rc=$?
sed 's/^/#   /' "$T/r2.out" | grep "cleaned up\|late arrival"
check "the next run exits 0" 0 "$rc"
if grep -q "^cleaned up: $SEED probe $(printf '%.8s' "$tok")… .*(its round could not measure it)" "$T/r2.out"; then
	ok "the next run cleaned up the probe its round could not measure"
else
	not_ok "the next run did not say it cleaned the probe up: $(cat "$T/r2.out")"
fi
check "no probe left in the seed mailbox" 0 "$(tokens_left | wc -l)"
check "the lost round's probe counts once, as error" 1 "$(counter probes_total "AND label = 'error'")"
check "and never as a late arrival" 0 "$(counter late_arrivals_total)"
check "probes_total = probe rows" "$(q "SELECT count(*) FROM probes")" "$(counter probes_total)"
world_result
