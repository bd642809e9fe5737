#!/bin/bash
# bench_smtp.sh - prober/smtp.c's submission (bench/bench_smtp.c) next to the
# floor of the same world measured in the same run: a minimal client
# (python3 smtplib) submitting the same number of messages over the same
# number of reused connections to the loopback world's plain relay
# (issue 9: "submission <= 1.5 x the submission floor"). Each pass runs the
# floor, smtp.c with CONNS threads each submitting in turn ("loop", the
# floor's shape), and smtp.c with one thread per probe waiting for one of
# CONNS slots ("round", as scheduler/round.c submits); PASSES passes back to
# back, the load average printed before each. Asserts nothing
# (bench/README.md). Needs root (the world).
#
#   bench/bench_smtp.sh [BUILDDIR]     env: N=1000 CONNS=4 PASSES=3 WORLD_SEEDS=100
set -u
top_srcdir=$(cd "$(dirname "$0")/.." && pwd)
export top_srcdir
B=${1:-.}
BENCH=$B/bench/bench_smtp
[ -x "$BENCH" ] || { echo "usage: $0 BUILDDIR (no bench/bench_smtp in $B: make bench/bench_smtp)" >&2; exit 2; }
N=${N:-1000}
CONNS=${CONNS:-4}
PASSES=${PASSES:-3}
export WORLD_SEEDS=${WORLD_SEEDS:-100}
. "$top_srcdir/tests/world/lib.sh"
. "$top_srcdir/tests/e2e/common.sh"
world_up
fmt=$WORLD_SEED_FMT

floor() {
	/usr/bin/python3 - "$RELAY_PLAIN_PORT" "$N" "$CONNS" "$WORLD_SEEDS" "$WORLD_SEED_FMT" <<'PY'
import smtplib, sys, threading, time
port, n, conns, nr, fmt = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
users = [fmt % (i % nr + 1) for i in range(n)]
def sender(part):
    s = smtplib.SMTP("127.0.0.1", port)
    for u in part:
        s.sendmail("floor@sender.test", [u],
                   "From: floor@sender.test\r\nTo: %s\r\nSubject: floor\r\n\r\nfloor\r\n" % u)
    s.quit()
t0 = time.monotonic()
ts = [threading.Thread(target=sender, args=(users[i::conns],)) for i in range(conns)]
[t.start() for t in ts]
[t.join() for t in ts]
dt = time.monotonic() - t0
print("floor  python %d messages over %d connections: %.3f s (%.0f/s)" % (n, conns, dt, n / dt))
PY
}
echo "# $N probes over $CONNS connections to the world's plain relay; $(nproc) CPUs; world of $WORLD_SEEDS mailboxes"
for p in $(seq 1 "$PASSES"); do
	echo "# pass $p, 1-min load average $(cut -d' ' -f1 /proc/loadavg)"
	floor
	"$BENCH" "smtp://127.0.0.1:$RELAY_PLAIN_PORT" probe@sender.test "$fmt" "$WORLD_SEEDS" "$N" "$CONNS" loop
	"$BENCH" "smtp://127.0.0.1:$RELAY_PLAIN_PORT" probe@sender.test "$fmt" "$WORLD_SEEDS" "$N" "$CONNS" round
	sleep 2   # deliveries drain a little
done
