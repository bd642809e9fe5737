#!/bin/sh
# Arm, then send; IMAP IDLE; latency beyond the second (SPEC "What it is",
# "Latency") against the real loopback world (Postfix relay, Dovecot):
# - every probe is found by IDLE, INBOX and spam folder each in a session of
#   its own (per_account 2), or INBOX in IDLE with the spam folder polled
#   (per_account 1), or by polling (--no-idle);
# - a seed with a wrong password gets no probe: error, "not sent: mailbox
#   not watchable", and the relay's log has no line for its address;
# - the learned announcement delay (state store) places the arrival of
#   IDLE-announced probes within 50 ms of the Maildir ground truth (the file
#   name SECONDS.M<usec>P... is the delivery time to the microsecond);
# - with per_host far below the seed count, every seed is still measured.
# Exit 0 pass, 1 fail, 77 skip.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
BIN=${top_builddir:-.}/inboxprobe
[ -x "$BIN" ] || { echo "no inboxprobe binary at $BIN"; exit 99; }
world_up

T=$WORLD_DIR/idletest
mkdir -p "$T"
# IDLE's precision is measured without NOTIFY (notify_world.sh tests NOTIFY):
# a Dovecot instance on the same mail store that leaves NOTIFY out of its
# capabilities, so INBOX and the spam folder are IDLEd on sessions of their own.
IDLE_PORT=$(free_port)
world_extra_dovecot idle "$IDLE_PORT" "$WORLD_CAPS_NO_NOTIFY" || exit 99
WRONG=inbox@greylist.test

# conf NAME PER_HOST PER_ACCOUNT: a configuration of the fast seeds plus one
# whose password is wrong; probes are kept so the Maildir files stay.
conf() {
	{
		cat <<EOF
name = "idle";
relay = { url = "smtp://127.0.0.1:$RELAY_PLAIN_PORT"; tls = "none"; from = "probe@sender.test"; };
probe = { deadline = 30; poll_interval = 1; cleanup = "keep"; };
imap_limits = { per_host = $2; per_account = $3; connect_timeout = 10; timeout = 20; };
slo = { min_inbox_ratio = 0.1; max_latency_p99 = 60.0; };
report = { json = "$T/$1.json"; };
state = { path = "$T/state.db"; };
seeds = (
EOF
		for p in gmail outlook yahoo bulkmail intl; do
			for u in inbox spam marker; do
				printf '  { address = "%s@%s.test"; provider = "%s";\n' $u $p $p
				printf '    imap = { url = "imaps://localhost:%s"; ca_file = "%s"; username = "%s@%s.test"; password_file = "%s"; }; },\n' \
					"$IDLE_PORT" "$WORLD_CA" $u $p "$SEED_PASSFILE"
			done
		done
		printf '  { address = "%s"; provider = "greylist";\n' $WRONG
		printf '    imap = { url = "imaps://localhost:%s"; ca_file = "%s"; username = "%s"; password_file = "%s"; }; }\n);\n' \
			"$IDLE_PORT" "$WORLD_CA" $WRONG "$WRONG_PASSFILE"
	} >"$T/$1.conf"
}

run() {
	name=$1
	shift
	timeout 90 "$BIN" run -c "$T/$name.conf" -v "$@" >"$T/$name.out" 2>"$T/$name.err"
	echo $? >"$T/$name.rc"
}

conf two 64 2
conf one 64 1
conf few 4 2
run two
# Learning: the smallest seen - INTERNALDATE approaches the server's delay
# from above as probes arrive at every fraction of a second. A round's
# probes arrive within a few hundred ms of each other, so twelve rounds
# started a twelfth of a second apart in phase cover the whole second.
for k in 1 2 3 4 5 6 7 8 9 10 11 12; do
	/usr/bin/python3 -c "import time; t = time.time(); time.sleep((1 - t % 1) + $k / 12.0)"
	run l$k -c "$T/two.conf" --json "$T/l$k.json"
done
run learned -c "$T/two.conf" --json "$T/learned.json"
run one
run poll -c "$T/one.conf" --json "$T/poll.json" --no-idle
run few

for f in two learned one poll few; do
	sed "s/^/$f stderr: /" "$T/$f.err" | grep -v ": debug: " | tail -n 40
done

PYTHONPATH="${top_srcdir:-$(dirname "$0")/../..}/tests/e2e" /usr/bin/python3 - "$T" "$WORLD_DIR/mail" \
	"$RELAY_LOG" "$WRONG" <<'PY' >"$T/checks.out" 2>&1
import json, os, re, sys
from e2e_util import maildir_arrivals
T, MAIL, RELAY_LOG, WRONG = sys.argv[1:5]
def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what)

# Ground truth: token -> delivery time from the Maildir file name.
truth = maildir_arrivals(MAIL)

expect_watch = {"two": "idle", "learned": "idle", "one": "idle+poll", "poll": "poll", "few": None}
for name, watch in expect_watch.items():
    rep = json.load(open(os.path.join(T, name + ".json")))
    rc = int(open(os.path.join(T, name + ".rc")).read())
    seeds = {s["address"]: s for s in rep["seeds"]}
    check(rc == 3, f"{name}: exit 3 (the wrong-password seed is error), got {rc}")
    w = seeds[WRONG]
    check(w["outcome"] == "error" and w["not_sent"] is True,
          f"{name}: {WRONG} error, not sent ({w['outcome']}, {w['not_sent']})")
    check("not sent: mailbox not watchable" in (w.get("diagnostic") or "") and
          "authentication failed" in (w.get("diagnostic") or ""),
          f"{name}: diagnostic names it: {w.get('diagnostic')!r}")
    check(w.get("submit_time_unix") is None, f"{name}: no submit time for the unsent probe")
    errs = []
    for addr, s in seeds.items():
        if addr == WRONG:
            continue
        want = "spam" if addr.startswith("spam@") else "inbox"
        if s["outcome"] != want:
            errs.append(f"{addr}: {s['outcome']} {s.get('diagnostic')}")
        if watch and s.get("watch") != watch:
            errs.append(f"{addr}: watch {s.get('watch')} != {watch}")
        b = s.get("latency_error_bound_seconds")
        if b is None or not (0 <= b <= 0.5):
            errs.append(f"{addr}: error bound {b}")
        if s.get("latency_seconds") is None or s["latency_seconds"] < 0:
            errs.append(f"{addr}: latency {s.get('latency_seconds')}")
        if s.get("discovery_lag_seconds") is None or s["discovery_lag_seconds"] < 0:
            errs.append(f"{addr}: lag {s.get('discovery_lag_seconds')}")
        if s["token"] in truth and s.get("arrival_unix") is not None:
            a, tr = s["arrival_unix"], truth[s["token"]]
            lo = s["internaldate_unix"]
            if not (lo - 1e-6 <= a <= lo + 1 + 1e-6):
                errs.append(f"{addr}: arrival {a} outside [INTERNALDATE, +1 s] ({lo})")
    check(not errs, f"{name}: every other seed found where it was sent, latency fields sane "
          f"({'; '.join(errs[:4])})")
    if watch in ("idle", "idle+poll"):
        ann = [s for a, s in seeds.items() if s.get("announced_by_idle")]
        inboxes = [s for a, s in seeds.items() if a.startswith(("inbox@", "marker@")) and a != WRONG]
        check(all(s.get("announced_by_idle") for s in inboxes),
              f"{name}: every INBOX probe announced by IDLE ({len(ann)} announced)")
    if watch == "idle":
        spams = [s for a, s in seeds.items() if a.startswith("spam@")]
        check(all(s.get("announced_by_idle") for s in spams),
              f"{name}: every spam probe announced by IDLE on its own session")
    if watch == "poll":
        check(not any(s.get("announced_by_idle") for s in seeds.values()),
              f"{name}: nothing announced by IDLE with --no-idle")

# After learning: arrival within 50 ms of the ground truth.
rep = json.load(open(os.path.join(T, "learned.json")))
diffs = []
for s in rep["seeds"]:
    if s.get("announced_by_idle") and s["token"] in truth:
        diffs.append((abs(s["arrival_unix"] - truth[s["token"]]), s["address"],
                      s.get("announcement_delay_seconds")))
check(len(diffs) >= 10, f"learned: ground truth for {len(diffs)} IDLE-announced probes")
diffs.sort()
worst = diffs[-1] if diffs else None
within = sum(1 for d in diffs if d[0] <= 0.050)
print(f"# learned: |arrival - Maildir time| median {diffs[len(diffs) // 2][0] * 1000:.1f} ms, "
      f"worst {worst[0] * 1000:.1f} ms ({worst[1]}), delay {worst[2]}" if diffs else "# no data")
# The server's true announcement delay, from the ground truth: the smallest
# seen - arrival over every announced probe of every round.
true_delay = None
for name in ["two"] + [f"l{k}" for k in range(1, 13)] + ["learned"]:
    for s in json.load(open(os.path.join(T, name + ".json")))["seeds"]:
        if s.get("announced_by_idle") and s["token"] in truth:
            lag = s["arrival_unix"] + s["discovery_lag_seconds"] - truth[s["token"]]
            true_delay = lag if true_delay is None else min(true_delay, lag)
learned = diffs[0][2] if diffs else None
print(f"# learned delay {learned}, true delay (ground truth) {true_delay}")
check(learned is not None and true_delay is not None and learned >= true_delay - 0.005,
      f"learned: the learned delay approaches from above ({learned} >= {true_delay})")
if learned is not None and true_delay is not None and learned - true_delay <= 0.025:
    # A busy machine can delay reading an EXISTS now and then: most probes,
    # not every one, must be within 50 ms.
    check(within >= 0.8 * len(diffs),
          f"learned: |arrival - Maildir time| <= 50 ms for {within} of {len(diffs)} announced probes (>= 80 %)")
else:
    # Not converged yet (all rounds' probes arrived early in their second,
    # as happens on a slow build): the error is the delay still to learn.
    left = (learned or 0) - (true_delay or 0)
    check(all(d[0] <= left + 0.050 for d in diffs),
          f"learned: not converged ({left * 1000:.0f} ms to go): every error within that + 50 ms")
check(diffs and worst[0] <= 0.5, f"learned: every announced probe within 0.5 s (worst {worst})")
check(all(d[2] is not None and 0 <= d[2] < 1 for d in diffs),
      f"learned: a learned announcement delay was used ({diffs[0][2] if diffs else None})")

# The relay never saw the unwatchable seed's address.
log = open(RELAY_LOG, errors="replace").read()
check(f"to=<{WRONG}>" not in log, f"relay log has no line for {WRONG}")
check("to=<inbox@gmail.test>" in log, "relay log has lines for the other seeds")
print("done")
PY
cat "$T/checks.out"
grep -q "^not ok" "$T/checks.out" && exit 1
grep -q "^done" "$T/checks.out" || exit 1
exit 0
