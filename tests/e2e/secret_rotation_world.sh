#!/bin/sh
# probe.secret_file rotation (issue 12): a probe signed with the old key that
# is still pending after the key changed. Against the loopback world, with a
# state store, on the greylisted seed (its probe arrives after
# GREYLIST_DELAY, so after a short round's deadline):
#  1. a round with key A: the probe is missing at its deadline, then lands;
#  2. a round with key B alone: the old probe's HMAC does not verify, so it
#     is not ours to touch: left in the mailbox, not counted, and the log
#     says so and what to do (list the old key in previous_secret_files);
#     the round's own probe (signed with B) is found and cleaned up;
#  3. a round with key B and previous_secret_files = (A): the old probe is
#     proved, counted once as a late arrival and cleaned up: no probe left.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
world_test_start rot sqlite3
SEED=inbox@greylist.test
# a sender of its own: a new greylisting triplet (postgrey remembers passes)
FROM="rot$$-$(date +%s)@sender.test"
head -c 32 /dev/urandom >"$T/a.key"
head -c 32 /dev/urandom >"$T/b.key"
chmod 600 "$T/a.key" "$T/b.key"
# conf TAG DEADLINE SECRET [PREVIOUS]
conf() {
	_prev=
	[ -n "$4" ] && _prev="previous_secret_files = ( \"$4\" );"
	world_run_conf "$T/$1.conf" rot "$FROM" "$2" "$T/rot.db" "$SEED:greylist" "secret_file = \"$3\"; $_prev "
}
q() { sqlite3 -readonly "$T/rot.db" "$1" 2>/dev/null; }
outcome() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seeds"][0]["outcome"])' "$1" 2>/dev/null; }
tokens_left() { world_tokens "$SEED"; }
late() {
	q "SELECT coalesce(sum(value), 0) FROM counters WHERE config = 'rot' AND name = 'late_arrivals_total'"
}

# 1. key A, a deadline shorter than the greylisting
conf a 3 "$T/a.key"
"$BIN" run -c "$T/a.conf" --json "$T/a.json" </dev/null >"$T/a.out" 2>"$T/a.err"
check "round with key A: the greylisted probe is missing at its deadline" missing "$(outcome "$T/a.json")"
tok_a=$(q "SELECT token FROM probes WHERE outcome = 'missing'")
check "round with key A: its token is signed (32 + 16 hex digits)" 48 "${#tok_a}"
if world_wait_token "$SEED" "$tok_a"; then ok "the key-A probe landed after its round"
else not_ok "the key-A probe never landed"; fi

# 2. rotated to key B, the old key forgotten
conf b 20 "$T/b.key"
"$BIN" run -c "$T/b.conf" --json "$T/b.json" </dev/null >"$T/b.out" 2>"$T/b.err"
check "round with key B alone: its own probe found" inbox "$(outcome "$T/b.json")"
if tokens_left | grep -qx "$tok_a"; then ok "round with key B alone: the key-A probe does not prove, left alone"
else not_ok "round with key B alone: the key-A probe was touched"; fi
check "round with key B alone: only the key-A probe is left" 1 "$(tokens_left | wc -l)"
check "round with key B alone: no late arrival counted" 0 "$(late)"
if grep -q "HMAC does not verify with probe.secret_file or previous_secret_files.*list the old key file in probe.previous_secret_files" "$T/b.err"; then
	ok "round with key B alone: the log says why the probe is left and what to do"
else
	not_ok "round with key B alone: no word of the unproved probe: $(cat "$T/b.err")"
fi
grep -h "HMAC" "$T/b.err" | sed 's/^/# /'
for k in a b; do
	if od -An -tx1 "$T/$k.key" | tr -d ' \n' | grep -qf - "$T/b.err" "$T/b.out" "$T/b.json"; then
		not_ok "key $k appears in the output"
	else
		ok "key $k appears nowhere in the output"
	fi
done

# 3. key B, key A listed as previous
conf c 20 "$T/b.key" "$T/a.key"
"$BIN" run -c "$T/c.conf" --json "$T/c.json" </dev/null >"$T/c.out" 2>"$T/c.err"
check "round with key B and previous A: its own probe found" inbox "$(outcome "$T/c.json")"
sed 's/^/# /' "$T/c.out" | grep "late arrival"
if grep -q "^late arrival: $SEED probe $(printf '%.8s' "$tok_a")" "$T/c.out"; then
	ok "round with key B and previous A: the key-A probe is a late arrival"
else
	not_ok "round with key B and previous A: no late arrival line: $(cat "$T/c.out")"
fi
check "round with key B and previous A: counted once in late_arrivals_total" 1 "$(late)"
sleep 0.5
check "no probe left in the seed mailbox" 0 "$(tokens_left | wc -l)"
world_result
