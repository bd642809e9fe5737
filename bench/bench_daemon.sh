#!/bin/bash
# bench_daemon.sh - `inboxprobe daemon` next to `inboxprobe run`, in the same
# run, against the loopback mail world sized for the largest of SIZES
# (WORLD_SEEDS bench seeds bNNNN@yahoo.test, tests/world/world.sh), for each
# of SIZES seeds (default 100 and 1,000). Prints, per round and as means:
#   logins  IMAP logins the server saw for the bench seeds in that round
#           (Dovecot's "imap-login: Login:" lines; the daemon's own
#           inboxprobe_imap_logins_total is printed next to it); issue 14's
#           target: 0 after the first round of the daemon;
#   wall    the round's wall time (the round's own start..end, from the JSON
#           report for run, from the daemon's round line), plus, for run,
#           the whole process (start-up, lock, store, exit);
#   cpu     user+system CPU seconds of inboxprobe for that round (run: the
#           process; daemon: /proc/PID/stat delta over the round).
# The daemon's interval is 1.5 times run's first round (at least 20 s), so
# that no round is skipped. With SOAK_ROUNDS > 0 it then runs the daemon at
# schedule.interval = 1 with the first of SIZES and prints RSS, open fds,
# threads and logins every SOAK_EVERY rounds.
# Asserts nothing (bench/README.md). Needs root (the world).
#
#   bench/bench_daemon.sh [BUILDDIR]     env: SIZES="100 1000" ROUNDS=3 SOAK_ROUNDS=0 SOAK_EVERY=100
#   (SEEDS=N is taken as SIZES=N)
set -u
top_srcdir=$(cd "$(dirname "$0")/.." && pwd)
export top_srcdir
B=${1:-.}
BIN=$B/inboxprobe
[ -x "$BIN" ] || { echo "usage: $0 BUILDDIR (no inboxprobe in ${B})" >&2; exit 2; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/inboxprobe
SIZES=${SIZES:-${SEEDS:-100 1000}}
ROUNDS=${ROUNDS:-3}
SOAK_ROUNDS=${SOAK_ROUNDS:-0}
SOAK_EVERY=${SOAK_EVERY:-100}
. "$top_srcdir/tests/world/lib.sh"
. "$top_srcdir/tests/e2e/common.sh"
world_up_sized "$SIZES"
T=$WORLD_DIR/bench
mkdir -p "$T"
DPID=""
trap '_st=$?; [ -n "$DPID" ] && kill -KILL "$DPID" 2>/dev/null; (exit $_st); world_down' EXIT
HZ=$(getconf CLK_TCK)
ulimit -n "$(ulimit -Hn)" 2>/dev/null

# conf FILE SEEDS INTERVAL
conf() {
	local seedlist
	seedlist=$(for ((i = 1; i <= $2; i++)); do printf "$WORLD_SEED_FMT\n" "$i"; done |
		sed 's/.*/  { address = "&"; provider = "yahoo"; },/;$ s/,$//')
	cat >"$1" <<CONF
name = "bench";
relay = { url = "smtp://127.0.0.1:$RELAY_PLAIN_PORT"; tls = "none"; from = "probe@sender.test";
          connect_timeout = 10; timeout = 30; };
probe = { deadline = 120; poll_interval = 1; cleanup = "delete"; };
imap_limits = { per_host = $(($2 + 10)); per_account = 1; connect_timeout = 10; timeout = 30; };
slo = { min_inbox_ratio = 0.5; max_latency_p99 = 60.0; };
imap_defaults = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$WORLD_CA"; password_file = "$SEED_PASSFILE"; };
state = { path = "$T/state$2.db"; };
report = { textfile = "$T/bench.prom"; json = "$T/bench.json"; };
schedule = { interval = $3; };
web = { listen_address = "127.0.0.1:$PORT"; };
seeds = (
$seedlist
);
CONF
}
logins() {
	grep -c 'imap-login: Info: Login: user=<b[0-9]*@yahoo.test>' "$DOVECOT_LOG"
}
PORT=$(free_port)
PY=/usr/bin/python3
cpu() { awk -v hz="$HZ" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$DPID/stat"; }
metric() { curl -fsS "http://127.0.0.1:$PORT/metrics" 2>/dev/null | awk -v k="$1" '$1 == k { print $2 }'; }

echo "# $SIZES seeds, $ROUNDS rounds each; $(nproc) CPUs; $(uname -r); load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-7s %5s %5s %7s %8s %8s %8s %s\n' mode seeds round logins wall_s proc_s cpu_s outcomes

# bench_run N: ROUNDS rounds of `inboxprobe run` over N seeds
bench_run() {
	local n=$1 r l0 l1 t wall outc
	conf "$T/run$n.conf" "$n" 3600
	for r in $(seq 1 "$ROUNDS"); do
		l0=$(logins)
		TIMEFORMAT='%R %U %S'
		t=$( { time "$BIN" run -c "$T/run$n.conf" --json "$T/run$n.$r.json" >/dev/null 2>"$T/run$n.$r.err"; } 2>&1 )
		l1=$(logins)
		set -- $t
		read -r wall outc < <("$PY" -c '
import json, sys, collections
j = json.load(open(sys.argv[1]))
c = collections.Counter(s["outcome"] for s in j["seeds"])
print("%.2f" % j["duration_seconds"], ",".join("%s=%d" % kv for kv in sorted(c.items())))' "$T/run$n.$r.json" 2>/dev/null)
		printf '%-7s %5d %5d %7d %8s %8.2f %8.2f %s\n' run "$n" "$r" $((l1 - l0)) "${wall:-?}" "$1" \
			"$(echo "$2 + $3" | bc)" "${outc:-?}"
		echo "run $n $r $((l1 - l0)) ${wall:-0} $1 $(echo "$2 + $3" | bc)" >>"$T/rows"
	done
}

# bench_daemon N: the daemon over N seeds until its round ROUNDS
bench_daemon() {
	local n=$1 r c0=0 c1 l0 l1 line wall outc iv first
	first=$(awk -v n="$n" '$1 == "run" && $2 == n && $3 == 1 { print $5 }' "$T/rows")
	iv=$(awk -v f="${first:-10}" 'BEGIN { i = int(f * 1.5 + 1); print (i < 20 ? 20 : i) }')
	conf "$T/daemon$n.conf" "$n" "$iv"
	"$BIN" daemon -c "$T/daemon$n.conf" </dev/null >/dev/null 2>"$T/daemon$n.err" &
	DPID=$!
	l0=$(logins)
	for r in $(seq 1 "$ROUNDS"); do
		until grep -q ": round $r:" "$T/daemon$n.err"; do
			kill -0 "$DPID" 2>/dev/null || { echo "daemon died:"; cat "$T/daemon$n.err"; exit 1; }
			sleep 0.05
		done
		c1=$(cpu)
		l1=$(logins)
		line=$(grep ": round $r:" "$T/daemon$n.err")
		wall=$(echo "$line" | sed -n 's/.*; \([0-9.]*\) s$/\1/p')
		outc=$(echo "$line" | sed -n 's/.*seeds: \(.*\);.*/\1/p' | tr ' ' '=' | sed 's/=\([0-9]*\)=/=\1,/g')
		printf '%-7s %5d %5d %7d %8s %8s %8.2f %s   (imap_logins_total %s)\n' daemon "$n" "$r" $((l1 - l0)) \
			"$wall" - "$(echo "$c1 - $c0" | bc)" "$outc" \
			"$(metric 'inboxprobe_imap_logins_total{config="bench"}')"
		echo "daemon $n $r $((l1 - l0)) $wall 0 $(echo "$c1 - $c0" | bc)" >>"$T/rows"
		c0=$c1
		l0=$l1
	done
	echo "# daemon over $n seeds: schedule.interval $iv s; its CPU for round 1 includes its start"
	kill -TERM "$DPID"
	wait "$DPID"
	DPID=""
}

for n in $SIZES; do
	bench_run "$n"
	bench_daemon "$n"
done
echo "# means over the rounds, and over rounds 2.. (the daemon's sessions are kept from round 2 on)"
awk '{ k = $1 " " $2; n[k]++; l[k] += $4; w[k] += $5; c[k] += $7
	if ($3 > 1) { n2[k]++; l2[k] += $4; w2[k] += $5; c2[k] += $7 } }
	END { for (k in n) printf "mean %-12s logins/round %7.1f  wall/round %6.2f s  cpu/round %6.2f s | rounds 2..: logins %7.1f  wall %6.2f s  cpu %6.2f s\n",
		k, l[k] / n[k], w[k] / n[k], c[k] / n[k], n2[k] ? l2[k] / n2[k] : 0, n2[k] ? w2[k] / n2[k] : 0, n2[k] ? c2[k] / n2[k] : 0 }' \
	"$T/rows" | sort -k3,3n -k2,2
echo "# load at the end $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- soak -------------------------------------------------------------------------
if [ "$SOAK_ROUNDS" -gt 0 ]; then
	SEEDS=${SIZES%% *}
	conf "$T/soak.conf" "$SEEDS" 1
	"$BIN" daemon -c "$T/soak.conf" </dev/null >/dev/null 2>"$T/soak.err" &
	DPID=$!
	echo "# soak: interval 1 s, $SEEDS seeds, $SOAK_ROUNDS rounds"
	printf '%7s %8s %9s %5s %8s %8s %8s\n' round skipped rss_kb fds threads logins elapsed_s
	start=$(date +%s)
	r=$SOAK_EVERY
	while [ "$r" -le "$SOAK_ROUNDS" ]; do
		until grep -q ": round $r:" "$T/soak.err"; do
			kill -0 "$DPID" 2>/dev/null || { echo "daemon died:"; tail "$T/soak.err"; exit 1; }
			sleep 0.2
		done
		printf '%7d %8s %9s %5d %8s %8s %8d\n' "$r" \
			"$(metric 'inboxprobe_rounds_skipped_total{config="bench"}')" \
			"$(awk '/^VmRSS/ { print $2 }' "/proc/$DPID/status")" \
			"$(ls "/proc/$DPID/fd" | wc -l)" \
			"$(awk '/^Threads/ { print $2 }' "/proc/$DPID/status")" \
			"$(metric 'inboxprobe_imap_logins_total{config="bench"}')" $(($(date +%s) - start))
		r=$((r + SOAK_EVERY))
	done
	kill -TERM "$DPID"
	wait "$DPID"
	DPID=""
fi
