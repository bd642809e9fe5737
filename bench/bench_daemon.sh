#!/bin/bash
# bench_daemon.sh - `inboxprobe daemon` next to `inboxprobe run`, in the same
# run, against the loopback mail world with SEEDS seed mailboxes (added to
# the world as bNNN@yahoo.test). Prints, per round and as means:
#   logins  IMAP logins the server saw for the bench seeds in that round
#           (Dovecot's "imap-login: Login:" lines; the daemon's own
#           inboxprobe_imap_logins_total is printed next to it);
#   wall    the round's wall time (the round's own start..end, from the JSON
#           report for run, from the daemon's round line), plus, for run,
#           the whole process (start-up, lock, store, exit);
#   cpu     user+system CPU seconds of inboxprobe for that round (run: the
#           process; daemon: /proc/PID/stat delta over the round).
# With SOAK_ROUNDS > 0 it then runs the daemon at schedule.interval = 1 and
# prints RSS, open fds, threads and logins every SOAK_EVERY rounds.
# Asserts nothing (bench/README.md). Needs root (the world).
#
#   bench/bench_daemon.sh [BUILDDIR]     env: SEEDS=100 ROUNDS=3 SOAK_ROUNDS=0 SOAK_EVERY=100
set -u
top_srcdir=$(cd "$(dirname "$0")/.." && pwd)
export top_srcdir
B=${1:-.}
BIN=$B/inboxprobe
[ -x "$BIN" ] || { echo "usage: $0 BUILDDIR (no inboxprobe in ${B})" >&2; exit 2; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/inboxprobe
SEEDS=${SEEDS:-100}
ROUNDS=${ROUNDS:-3}
SOAK_ROUNDS=${SOAK_ROUNDS:-0}
SOAK_EVERY=${SOAK_EVERY:-100}
. "$top_srcdir/tests/world/lib.sh"
. "$top_srcdir/tests/e2e/common.sh"
world_up
T=$WORLD_DIR/bench
mkdir -p "$T"
DPID=""
trap '[ -n "$DPID" ] && kill -KILL "$DPID" 2>/dev/null; world_down' EXIT
HZ=$(getconf CLK_TCK)

# ---- SEEDS more mailboxes, and a Dovecot sized for them -------------------
pw=$(cat "$SEED_PASSFILE")
users=""
for i in $(seq -f '%03g' 1 "$SEEDS"); do
	echo "b$i@yahoo.test:{PLAIN}$pw::::::" >>"$WORLD_DIR/dovecot/users"
	users="$users b$i@yahoo.test"
done
# one imap process per session (Dovecot's default limit is 100)
printf 'default_process_limit = %d\ndefault_client_limit = %d\n' $((SEEDS * 2 + 50)) $((SEEDS * 20 + 1000)) \
	>>"$DOVECOT_CONF"
doveadm -c "$DOVECOT_CONF" reload </dev/null
# passwd-file is re-read once its mtime is older than the last look
sleep 1.1
for u in $users; do
	doveadm -c "$DOVECOT_CONF" mailbox create -s -u "$u" Bulk Trash </dev/null ||
		{ echo "doveadm could not create the folders of $u" >&2; exit 1; }
done
# Dovecot watches each IDLE mailbox with inotify; past the per-uid instance
# limit (128 by default) it falls back to polling every 30 s.
if [ "$(cat /proc/sys/fs/inotify/max_user_instances)" -lt $((SEEDS * 4)) ]; then
	echo "# raising fs.inotify.max_user_instances to 8192 (Dovecot's IDLE needs one per session)"
	sysctl -qw fs.inotify.max_user_instances=8192
fi

seedlist=""
for u in $users; do
	seedlist="$seedlist${seedlist:+,
}  { address = \"$u\"; provider = \"yahoo\"; }"
done
# conf FILE INTERVAL
conf() {
	cat >"$1" <<CONF
name = "bench";
relay = { url = "smtp://127.0.0.1:$RELAY_PLAIN_PORT"; tls = "none"; from = "probe@sender.test";
          connect_timeout = 10; timeout = 30; };
probe = { deadline = 60; poll_interval = 1; cleanup = "delete"; };
imap_limits = { per_host = $((SEEDS + 10)); per_account = 1; connect_timeout = 10; timeout = 30; };
slo = { min_inbox_ratio = 0.5; max_latency_p99 = 60.0; };
imap_defaults = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$WORLD_CA"; password_file = "$SEED_PASSFILE"; };
state = { path = "$T/state.db"; };
report = { textfile = "$T/bench.prom"; json = "$T/bench.json"; };
schedule = { interval = $2; };
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

echo "# $SEEDS seeds, $ROUNDS rounds each; $(nproc) CPUs; $(uname -r)"
printf '%-7s %5s %7s %8s %8s %8s %s\n' mode round logins wall_s proc_s cpu_s outcomes

# ---- run ------------------------------------------------------------------------
conf "$T/run.conf" 3600
for r in $(seq 1 "$ROUNDS"); do
	l0=$(logins)
	TIMEFORMAT='%R %U %S'
	t=$( { time "$BIN" run -c "$T/run.conf" --json "$T/run$r.json" >/dev/null 2>"$T/run$r.err"; } 2>&1 )
	l1=$(logins)
	set -- $t
	read -r wall outc < <("$PY" -c '
import json, sys, collections
j = json.load(open(sys.argv[1]))
c = collections.Counter(s["outcome"] for s in j["seeds"])
print("%.2f" % j["duration_seconds"], ",".join("%s=%d" % kv for kv in sorted(c.items())))' "$T/run$r.json" 2>/dev/null)
	printf '%-7s %5d %7d %8s %8.2f %8.2f %s\n' run "$r" $((l1 - l0)) "${wall:-?}" "$1" "$(echo "$2 + $3" | bc)" "${outc:-?}"
	echo "run $r $((l1 - l0)) ${wall:-0} $1 $(echo "$2 + $3" | bc)" >>"$T/rows"
done

# ---- daemon ---------------------------------------------------------------------
# An interval long enough that no round is skipped.
conf "$T/daemon.conf" 20
cpu() { awk -v hz="$HZ" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$DPID/stat"; }
metric() { curl -fsS "http://127.0.0.1:$PORT/metrics" 2>/dev/null | awk -v k="$1" '$1 == k { print $2 }'; }
"$BIN" daemon -c "$T/daemon.conf" </dev/null >/dev/null 2>"$T/daemon.err" &
DPID=$!
c0=0
l0=$(logins)
for r in $(seq 1 "$ROUNDS"); do
	until grep -q ": round $r:" "$T/daemon.err"; do
		kill -0 "$DPID" 2>/dev/null || { echo "daemon died:"; cat "$T/daemon.err"; exit 1; }
		sleep 0.05
	done
	c1=$(cpu)
	l1=$(logins)
	line=$(grep ": round $r:" "$T/daemon.err")
	wall=$(echo "$line" | sed -n 's/.*; \([0-9.]*\) s$/\1/p')
	outc=$(echo "$line" | sed -n 's/.*seeds: \(.*\);.*/\1/p' | tr ' ' '=' | sed 's/=\([0-9]*\)=/=\1,/g')
	printf '%-7s %5d %7d %8s %8s %8.2f %s   (imap_logins_total %s)\n' daemon "$r" $((l1 - l0)) "$wall" - \
		"$(echo "$c1 - $c0" | bc)" "$outc" "$(metric 'inboxprobe_imap_logins_total{config="bench"}')"
	echo "daemon $r $((l1 - l0)) $wall 0 $(echo "$c1 - $c0" | bc)" >>"$T/rows"
	c0=$c1
	l0=$l1
done
echo "# the daemon's CPU for round 1 includes its start (configuration, TLS context, listener)"
awk '{ n[$1]++; l[$1] += $3; w[$1] += $4; c[$1] += $6 }
	END { for (m in n) printf "mean %-7s logins/round %6.1f  wall/round %6.2f s  cpu/round %6.2f s\n", m, l[m] / n[m], w[m] / n[m], c[m] / n[m] }' "$T/rows" | sort
kill -TERM "$DPID"
wait "$DPID"
DPID=""

# ---- soak -------------------------------------------------------------------------
if [ "$SOAK_ROUNDS" -gt 0 ]; then
	conf "$T/soak.conf" 1
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
