#!/bin/sh
# Soak: ROUNDS consecutive rounds of one `inboxprobe daemon` with a state
# store and SEEDS seeds against the loopback mail world (real Postfix and
# Dovecot; root, like the world). Every SOAK_EVERY rounds (default 50; and
# at the end) it prints the daemon's resident set size, its open file
# descriptors, threads, IMAP logins so far and the state store's size (the
# file plus its WAL), next to the figures after the first round, the floor
# measured in the same run. They should stay flat, except the store's
# bounded growth (one row per probe until retention prunes it). A bench:
# it prints figures and asserts nothing.
#
#   bench/soak.sh [ROUNDS [SEEDS [DEADLINE [INTERVAL]]]]   default 500 100 10 5
#   INBOXPROBE=/path/to/inboxprobe bench/soak.sh 100   (default ./inboxprobe)
#   SOAK_EVERY=100 bench/soak.sh 1000 100 10 1          (issue 14's daemon soak)
#
# What grows by design, and then stops: SQLite's page cache (up to its
# 2 MiB default, reached once the store holds about 2 MB of rows) and the
# latencies of slo.window (every found probe of the window is read back
# each round). The window is SOAK_WINDOW seconds (default 600, not the
# 3600 of a default configuration) so that it fills early in the soak and
# the rounds after that show whether anything else grows.
# SOAK_DAEMON_ARGS=-v logs the heap after each round (mallinfo2: in use,
# free) in the daemon's log.
#
# The end: SIGTERM stops the daemon, usually in the middle of a round that
# has already sent probes. Those stay in the seed mailboxes, pending in
# the store, for the next round to clean up (tests/e2e/daemon_stop_world.sh).
# So the bench lists every message left with its store row ("pending":
# the next round looks for it; "LEAKED": nothing will), then runs that
# next round (one `inboxprobe run` of the same configuration) and counts
# again: messages left after it are leaks.
#
# INTERVAL is the daemon's schedule.interval: a round that finds every
# probe ends before its DEADLINE, so rounds follow each other about every
# INTERVAL seconds (a slot that falls inside a round is skipped, and
# counted; the daemon warns that the deadline is not shorter). 500 rounds
# of 100 seeds took about 55 minutes before the daemon kept its sessions.
# Prints the wall time of the whole soak.
SRC=$(cd "$(dirname "$0")/.." && pwd)
top_srcdir=$SRC
. "$SRC/tests/world/lib.sh"
ROUNDS=${1:-500}
SEEDS=${2:-100}
DEADLINE=${3:-10}
INTERVAL=${4:-5}
EVERY=${SOAK_EVERY:-50}
BIN=${INBOXPROBE:-./inboxprobe}
[ -x "$BIN" ] || { echo "soak: no inboxprobe at $BIN (set INBOXPROBE)"; exit 2; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
# SEEDS bench mailboxes (tests/world/world.sh WORLD_SEEDS: bNNNN@yahoo.test,
# folders Bulk and Trash) and a world sized for them: Dovecot's process
# limits (the daemon keeps every seed's session logged in), Postfix's LMTP
# concurrency, inotify instances.
WORLD_SEEDS=$SEEDS
export WORLD_SEEDS
world_up
T=$WORLD_DIR/soak
mkdir -p "$T"
DPID=
trap '_st=$?; [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null; (exit $_st); world_down' EXIT
seed() { printf "$WORLD_SEED_FMT" "$1"; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
{
	cat <<CONF
name = "soak";
relay = { url = "smtp://127.0.0.1:$RELAY_PLAIN_PORT"; tls = "none"; from = "probe@sender.test";
          connect_timeout = 5; timeout = 20; };
probe = { deadline = $DEADLINE; poll_interval = 1; cleanup = "delete"; };
imap_limits = { per_host = $((SEEDS + 10)); per_account = 1; connect_timeout = 10; timeout = 30; };
slo = { min_inbox_ratio = 0.5; max_latency_p99 = 60.0; window = ${SOAK_WINDOW:-600}; };
imap_defaults = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$WORLD_CA"; password_file = "$SEED_PASSFILE"; };
state = { path = "$T/state.db"; retention_days = 30; };
report = { json = "$T/last.json"; };
schedule = { interval = $INTERVAL; };
web = { listen_address = "127.0.0.1:$port"; };
seeds = (
CONF
	i=1
	while [ "$i" -le "$SEEDS" ]; do
		[ "$i" = 1 ] || echo ","
		printf '  { address = "%s"; provider = "p%d"; }' "$(seed "$i")" $((i % 5))
		i=$((i + 1))
	done
	printf '\n);\n'
} >"$T/soak.conf"

metric() {
	curl -s "http://127.0.0.1:$port/metrics" 2>/dev/null |
		awk -v m="$1" '$1 ~ "^"m"[{]" || $1 == m { v = $2 } END { print v + 0 }'
}
figures() {
	rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$DPID/status" 2>/dev/null)
	thr=$(awk '/^Threads:/ { print $2 }' "/proc/$DPID/status" 2>/dev/null)
	fds=$(ls "/proc/$DPID/fd" 2>/dev/null | wc -l)
	db=$(stat -c %s "$T/state.db" 2>/dev/null || echo 0)
	wal=$(stat -c %s "$T/state.db-wal" 2>/dev/null || echo 0)
	probes=$(sqlite3 "file:$T/state.db?mode=ro" "SELECT count(*) FROM probes" 2>/dev/null)
	inbox=$(sqlite3 "file:$T/state.db?mode=ro" "SELECT coalesce(sum(value),0) FROM counters WHERE name = 'probes_total' AND label = 'inbox'" 2>/dev/null)
	printf '%6d %8d %5d %7d %7d %10d %9d %8d %8d %8d %7ds\n' "$1" "${rss:-0}" "$fds" "${thr:-0}" \
		"$(metric inboxprobe_imap_logins_total)" "$db" "$wal" "${probes:-0}" "${inbox:-0}" \
		"$(metric inboxprobe_rounds_skipped_total)" $(($(date +%s) - start))
}

start=$(date +%s)
"$BIN" daemon ${SOAK_DAEMON_ARGS:-} -c "$T/soak.conf" >"$T/daemon.out" 2>"$T/daemon.err" &
DPID=$!
echo "soak: $ROUNDS rounds, $SEEDS seeds, deadline $DEADLINE s, interval $INTERVAL s, daemon pid $DPID, store $T/state.db"
echo " round  RSS(KiB)   fds threads  logins  store(B)    wal(B) probe rows  inbox_total skipped  elapsed"
next=1
while kill -0 "$DPID" 2>/dev/null; do
	n=$(metric inboxprobe_rounds_total)
	if [ "$n" -ge "$next" ]; then
		figures "$n"
		[ "$n" -ge "$ROUNDS" ] && break
		if [ "$next" = 1 ]; then next=$EVERY; else next=$((next + EVERY)); fi
		[ "$next" -gt "$ROUNDS" ] && next=$ROUNDS
	fi
	sleep 1
done
kill -0 "$DPID" 2>/dev/null || { echo "soak: the daemon exited:"; tail -n 20 "$T/daemon.err"; exit 1; }
kill "$DPID"
wait "$DPID"
rc=$?
echo "soak: daemon exit $rc; $(grep -c "error" "$T/daemon.err") error lines in its log; wall time $(($(date +%s) - start)) s"
grep "error" "$T/daemon.err" | sort | uniq -c | sort -rn | head -n 5
python3 -c 'import json,sys,collections; r = json.load(open(sys.argv[1])); print("soak: last round:", dict(collections.Counter(s["outcome"] for s in r["seeds"])), [s["diagnostic"] for s in r["seeds"] if s["outcome"] == "error"][:2])' "$T/last.json"
# left_tokens: the X-Inboxprobe-Token of every message in every seed folder
left_tokens() {
	i=1
	while [ "$i" -le "$SEEDS" ]; do
		doveadm -c "$DOVECOT_CONF" fetch -u "$(seed "$i")" hdr.x-inboxprobe-token \
			mailbox '*' ALL </dev/null 2>/dev/null | sed -n 's/^hdr.x-inboxprobe-token: *//p'
		i=$((i + 1))
	done
}
sleep 2   # let the probes the stop left land
left_tokens >"$T/left"
echo "soak: messages left in the seed mailboxes after the stop: $(wc -l <"$T/left")"
pending=0
leaked=0
while read -r tok; do
	row=$(sqlite3 "file:$T/state.db?mode=ro" "SELECT outcome, submit_time > 0, late, found_at IS NULL, cleanup_pending, counted FROM probes WHERE token = '$tok'" 2>/dev/null)
	case "$row" in
	error\|1\|0\|1\|*|missing\|1\|0\|1\|*|deferred\|1\|0\|1\|*|*\|*\|*\|*\|1\|*) pending=$((pending + 1)); what=pending ;;
	*) leaked=$((leaked + 1)); what=LEAKED ;;
	esac
	echo "soak:   $what ${tok%????????????????????????} row: ${row:-not in the store}"
done <"$T/left"
echo "soak: $pending pending in the store (the next round cleans them up), $leaked leaked"
"$BIN" run -c "$T/soak.conf" --json "$T/final.json" </dev/null >"$T/final.out" 2>"$T/final.err"
echo "soak: the next round (inboxprobe run, exit $?): $(grep -c '^cleaned up: \|^late arrival: ' "$T/final.out") earlier probes cleaned up"
sleep 1
echo "soak: messages left in the seed mailboxes after it: $(left_tokens | wc -l)"
DPID=
