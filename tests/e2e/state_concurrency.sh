#!/bin/sh
# state_concurrency.sh - the state store and the run lock through the real
# binary: runs against a relay port where nothing listens (every seed is
# `error`, exit 3), so each run is quick and needs no mail world.
#  1. one run records its round: probes_total{outcome="error"} = seeds;
#  2. with the lock held (flock(2) on STATE.NAME.lock) a run sends nothing,
#     says so, exits 3 and leaves the store alone;
#  3. 8 runs started at once: each either records its round or is refused
#     by the lock; the counters equal the recorded rounds, the file passes
#     PRAGMA integrity_check;
#  4. a corrupt state file: the run says which file and exits 3.
set -u
srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=${top_builddir:-.}
BIN=$builddir/inboxprobe
[ -x "$BIN" ] || { echo "SKIP: $BIN not built"; exit 77; }
command -v sqlite3 >/dev/null || { echo "SKIP: no sqlite3 (apt-get install sqlite3)"; exit 77; }
command -v flock >/dev/null || { echo "SKIP: no flock(1)"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }

tmp=$(mktemp -d)
holder=""
cleanup() { [ -n "$holder" ] && kill "$holder" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM
fail=0
say_fail() { echo "FAIL: $*"; fail=1; }

# A loopback port where nothing listens.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
DB=$tmp/state.db
cat >"$tmp/probe.cfg" <<EOF
name = "e2estate";
relay = { url = "smtp://127.0.0.1:$PORT"; tls = "none"; from = "probe@example.test";
          connect_timeout = 2; timeout = 5; };
probe = { deadline = 5; poll_interval = 1; cleanup = "keep"; };
imap_defaults = { url = "imap://127.0.0.1:$PORT"; tls = "none"; };
state = { path = "$DB"; retention_days = 30; };
report = { textfile = "$tmp/out.prom"; };
seeds = (
  { address = "a@gmail.example"; provider = "gmail";   imap = { username = "a"; password = "x"; }; },
  { address = "b@gmail.example"; provider = "gmail";   imap = { username = "b"; password = "x"; }; },
  { address = "c@outlook.example"; provider = "outlook"; imap = { username = "c"; password = "x"; }; }
);
EOF
chmod 600 "$tmp/probe.cfg"

q() { sqlite3 -readonly "$DB" "$1"; }
errors_total() {
	v=$(q "SELECT coalesce(sum(value),0) FROM counters WHERE config='e2estate' AND name='probes_total' AND label='error'")
	echo "${v:-0}"
}
run() { # run LOGNAME -> exit code in $rc
	timeout 60 "$BIN" run -c "$tmp/probe.cfg" >"$tmp/$1.out" 2>"$tmp/$1.err" </dev/null
	rc=$?
}

# 1. one run
run first
[ "$rc" = 3 ] || { say_fail "first run: exit $rc, want 3"; cat "$tmp/first.err"; }
[ "$(errors_total)" = 3 ] || say_fail "first run: probes_total{error} = $(errors_total), want 3"
[ "$(q 'SELECT count(*) FROM rounds')" = 1 ] || say_fail "first run: rounds != 1"
[ "$(q 'PRAGMA user_version')" = 4 ] || say_fail "schema version"
grep '^inboxprobe_probes_total{' "$tmp/out.prom" | grep 'provider="gmail"' | grep 'outcome="error"' | grep -q ' 2$' ||
	{ say_fail "textfile lacks probes_total for gmail errors"; grep probes_total "$tmp/out.prom"; }
[ "$fail" = 0 ] && echo "ok   one run recorded its round"

# 2. lock held by another process
# one process holds it (flock(1) would hand the lock to its child)
python3 -c 'import fcntl, sys, time
f = open(sys.argv[1], "a"); fcntl.flock(f, fcntl.LOCK_EX); time.sleep(30)' "$DB.e2estate.lock" &
holder=$!
i=0
while flock -n "$DB.e2estate.lock" true 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
run locked
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null; holder=""
[ "$rc" = 3 ] || say_fail "locked run: exit $rc, want 3"
grep -q "another inboxprobe run holds $DB.e2estate.lock" "$tmp/locked.err" ||
	{ say_fail "locked run: no message naming the lock"; cat "$tmp/locked.err"; }
[ "$(errors_total)" = 3 ] || say_fail "locked run changed the store"
[ "$fail" = 0 ] && echo "ok   a second run finds the lock held and sends nothing"

# 3. runs at once
pids=""
for k in 1 2 3 4 5 6 7 8; do
	( run par$k; echo "$rc" >"$tmp/par$k.rc" ) &
	pids="$pids $!"
done
for p in $pids; do wait "$p"; done
recorded=1 refused=0
for k in 1 2 3 4 5 6 7 8; do
	c=$(cat "$tmp/par$k.rc")
	[ "$c" = 3 ] || say_fail "parallel run $k: exit $c, want 3"
	if grep -q "another inboxprobe run holds" "$tmp/par$k.err"; then
		refused=$((refused + 1))
	else
		recorded=$((recorded + 1))
	fi
done
[ "$(q 'SELECT count(*) FROM rounds')" = "$recorded" ] ||
	say_fail "rounds $(q 'SELECT count(*) FROM rounds'), want $recorded"
[ "$(errors_total)" = $((recorded * 3)) ] ||
	say_fail "probes_total{error} = $(errors_total), want $((recorded * 3))"
[ "$(q 'PRAGMA integrity_check')" = ok ] || say_fail "integrity_check"
[ "$fail" = 0 ] && echo "ok   8 runs at once: $((recorded - 1)) recorded, $refused refused, counters consistent"

# 4. a corrupt store
printf 'not a database at all\n%.0s' $(seq 1 100) >"$DB"
rm -f "$DB-wal" "$DB-shm"
run corrupt
[ "$rc" = 3 ] || say_fail "corrupt store: exit $rc, want 3"
grep -q "state store $DB" "$tmp/corrupt.err" ||
	{ say_fail "corrupt store: no message naming $DB"; cat "$tmp/corrupt.err"; }
[ "$fail" = 0 ] && echo "ok   a corrupt store is named, the run goes on and exits 3"

exit $fail
