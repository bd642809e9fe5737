#!/bin/sh
# Fault injection on storage, end to end against the loopback world:
#  1. the report directory runs out of space (ENOSPC: a full tmpfs);
#  2. the report directory is read-only (a read-only mount: root ignores
#     permission bits);
#  3. the state store's file system runs out of space (a full tmpfs);
#  4. the state store is held EXCLUSIVE by another process (the sqlite3
#     CLI in BEGIN EXCLUSIVE for the whole run);
#  5. the daemon's store runs out of space for one round: that round is
#     kept in memory and recorded once there is space again, so no probe
#     is missing from probes_total.
# In each case the run exits 3 with a message naming the file and the
# cause, and nothing is lost: the probes of the failed run are found and
# cleaned up (none stays in a seed mailbox). A report that cannot be
# written leaves the one from the last good run byte-identical, with no
# temporary file beside it, and the store counts every probe once. A store
# that cannot be written leaves the report files byte-identical too (the
# round's results are in the summary on stdout, and the log says the files
# were not rewritten); once healthy again the next run succeeds, its
# counters never went down and the store passes integrity_check.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
BIN=${top_builddir:-.}/inboxprobe
[ -x "$BIN" ] || { echo "no inboxprobe binary at $BIN"; exit 99; }
command -v sqlite3 >/dev/null || { echo "SKIP: no sqlite3 (apt-get install sqlite3)"; exit 77; }
world_skip_unless_root
MNT=
HOLDER=
cleanup_faults() {
	[ -n "$HOLDER" ] && kill "$HOLDER" 2>/dev/null
	for m in $MNT; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	MNT=
}
world_up
# world_down runs on EXIT; undo our mounts first.
trap '_st=$?; cleanup_faults; (exit $_st); world_down' EXIT
T=$WORLD_DIR/faults
mkdir -p "$T"
if ! mount -t tmpfs -o size=1m tmpfs "$T" 2>/dev/null; then
	umount "$T" 2>/dev/null
	echo "SKIP: cannot mount a tmpfs"
	exit 77
fi
umount "$T"

# mount_small DIR SIZE: a tmpfs of SIZE on DIR.
mount_small() {
	mkdir -p "$1"
	mount -t tmpfs -o "size=$2,mode=0755" tmpfs "$1" || { not_ok "mount tmpfs on $1"; return 1; }
	MNT="$1 $MNT"
}
# fill DIR: write until ENOSPC (a file that is never removed by the run).
fill() {
	dd if=/dev/zero of="$1/filler" bs=4k 2>/dev/null
	sync
}

# conf NAME STATE_PATH: two seeds, cleanup delete, reports given per run.
conf() {
	cat >"$T/$1.conf" <<CONF
name = "$1";
relay = { url = "smtp://127.0.0.1:$RELAY_PLAIN_PORT"; tls = "none"; from = "probe@sender.test";
          connect_timeout = 3; timeout = 10; };
probe = { deadline = 20; poll_interval = 1; cleanup = "delete"; };
slo = { min_inbox_ratio = 0.5; max_latency_p99 = 60.0; };
imap_defaults = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$WORLD_CA"; password_file = "$SEED_PASSFILE"; };
state = { path = "$2"; retention_days = 30; };
seeds = ( { address = "inbox@gmail.test"; provider = "gmail"; },
          { address = "inbox@yahoo.test"; provider = "yahoo"; } );
CONF
}
# run CONF DIR TAG: one round, reports in DIR/r.{prom,om,json}; output in $T/TAG.{out,err}; sets rc.
run() {
	"$BIN" run -c "$T/$1.conf" --textfile "$2/r.prom" --openmetrics "$2/r.om" --json "$2/r.json" \
		>"$T/$3.out" 2>"$T/$3.err"
	rc=$?
	echo "# $3: exit $rc"
	sed 's/^/#   stderr: /' "$T/$3.err"
}
# snapshot DIR: copy the reports aside; same DIR: they are byte-identical.
snapshot() {
	rm -rf "$T/snap"
	mkdir -p "$T/snap"
	cp -p "$1"/r.prom "$1"/r.om "$1"/r.json "$T/snap/"
}
same() {
	cmp -s "$T/snap/r.prom" "$1/r.prom" && cmp -s "$T/snap/r.om" "$1/r.om" && cmp -s "$T/snap/r.json" "$1/r.json"
}
# only_reports DIR: nothing but the three reports (and the filler) in DIR.
only_reports() {
	[ -z "$(ls -A "$1" | grep -v -x -e r.prom -e r.om -e r.json -e filler)" ]
}
# tokens DB CONF: the probe tokens the store holds for CONF.
tokens() {
	sqlite3 "file:$1?mode=ro" "SELECT token FROM probes WHERE config = '$2' ORDER BY token" 2>/dev/null
}
# leftovers: probes (X-Inboxprobe-Token) still in the two seed mailboxes.
leftovers() {
	for u in inbox@gmail.test inbox@yahoo.test; do
		doveadm -c "$DOVECOT_CONF" search -u "$u" mailbox '*' header X-Inboxprobe-Token "" 2>/dev/null
	done | wc -l
}
# counted DB CONF: the sum of probes_total over providers and outcomes.
counted() {
	sqlite3 "file:$1?mode=ro" "SELECT coalesce(sum(value), 0) FROM counters WHERE config = '$2' AND name = 'probes_total'" 2>/dev/null
}

# counters_kept OLD NEW: no *_total, _bucket, _count or _sum sample of OLD
# (a textfile) has a lower value in NEW, where it may be absent (a store
# that could not be read gives no totals, never zeros: Prometheus would
# take those for a counter reset). Prints what went down.
counters_kept() {
	python3 - "$1" "$2" <<'PY'
import re, sys
def samples(path):
    out = {}
    for line in open(path):
        m = re.match(r'^(\S+?(_total|_bucket|_count|_sum)(\{[^}]*\})?) (\S+)$', line.strip())
        if m:
            out[m.group(1)] = float(m.group(4))
    return out
old, new = samples(sys.argv[1]), samples(sys.argv[2])
down = [k for k in old if k in new and new[k] < old[k]]
print(" ".join(down) or "none")
PY
}

# ---- 0. the leftover check sees a probe that was kept ---------------------
conf keep "$T/keep.db"
sed -i 's/cleanup = "delete"/cleanup = "keep"/' "$T/keep.conf"
mkdir -p "$T/reports-keep"
run keep "$T/reports-keep" keep1
check "control: a probe kept in each seed mailbox is seen" 2 "$(leftovers)"
for u in inbox@gmail.test inbox@yahoo.test; do
	doveadm -c "$DOVECOT_CONF" expunge -u "$u" mailbox '*' header X-Inboxprobe-Token "" 2>/dev/null
done
check "control: removed again" 0 "$(leftovers)"

# ---- 1. ENOSPC on the report directory -----------------------------------
R=$T/reports-full
mount_small "$R" 256k
conf full "$T/full.db"
run full "$R" full1
check "report ENOSPC: a good first run exits 0" 0 "$rc"
snapshot "$R"
fill "$R"
run full "$R" full2
check "report ENOSPC: exit 3" 3 "$rc"
assert "report ENOSPC: the message names the report and the cause" \
	grep -q "$R/r\..*No space left on device" "$T/full2.err"
assert "report ENOSPC: the old reports are byte-identical" same "$R"
assert "report ENOSPC: no temporary file is left ($(ls -A "$R" | tr '\n' ' '))" only_reports "$R"
check "report ENOSPC: both rounds' probes are in the store" 4 "$(tokens "$T/full.db" full | wc -l)"
check "report ENOSPC: both rounds counted once" 4 "$(counted "$T/full.db" full)"
check "report ENOSPC: no probe left in a seed mailbox" 0 "$(leftovers)"

# ---- 2. a read-only report directory -------------------------------------
R=$T/reports-ro
mount_small "$R" 1m
conf ro "$T/ro.db"
run ro "$R" ro1
check "read-only reports: a good first run exits 0" 0 "$rc"
snapshot "$R"
mount -o remount,ro "$R"
run ro "$R" ro2
check "read-only reports: exit 3" 3 "$rc"
assert "read-only reports: the message names the report and the cause" \
	grep -q "$R/r\..*Read-only file system" "$T/ro2.err"
assert "read-only reports: the old reports are byte-identical" same "$R"
assert "read-only reports: no temporary file is left" only_reports "$R"
check "read-only reports: both rounds counted once" 4 "$(counted "$T/ro.db" ro)"
check "read-only reports: no probe left in a seed mailbox" 0 "$(leftovers)"

# ---- 3. ENOSPC on the state store ----------------------------------------
S=$T/state-full
R=$T/reports-s
mkdir -p "$R"
mount_small "$S" 512k
conf sfull "$S/state.db"
run sfull "$R" sfull1
check "store ENOSPC: a good first run exits 0" 0 "$rc"
snapshot "$R"
before=$(counted "$S/state.db" sfull)
fill "$S"
run sfull "$R" sfull2
check "store ENOSPC: exit 3" 3 "$rc"
assert "store ENOSPC: the message names the store and the cause" \
	grep -q "$S/state.db.*\(full\|No space left\)" "$T/sfull2.err"
check "store ENOSPC: no probe left in a seed mailbox" 0 "$(leftovers)"
assert "store ENOSPC: the old reports are byte-identical" same "$R"
assert "store ENOSPC: no temporary file is left ($(ls -A "$R" | tr '\n' ' '))" only_reports "$R"
assert "store ENOSPC: the log says the reports were not rewritten" \
	grep -q "state store failed: the report files were not rewritten" "$T/sfull2.err"
check "store ENOSPC: the summary lists both seeds' outcomes" 2 \
	"$(grep -c '^ *inbox@\(gmail\|yahoo\).test .*inbox' "$T/sfull2.out")"
assert "store ENOSPC: the summary says the reports were not rewritten" \
	grep -q "the state store failed (no memory across runs this time; the report files were not rewritten)" "$T/sfull2.out"
rm -f "$S/filler"
run sfull "$R" sfull3
check "store ENOSPC: with space again, the next run exits 0" 0 "$rc"
check "store ENOSPC: with space again, no counter in the textfile went down" none \
	"$(counters_kept "$T/snap/r.prom" "$R/r.prom")"
after=$(counted "$S/state.db" sfull)
check "store ENOSPC: the counters never went down ($before -> $after)" yes \
	"$([ "$after" -ge "$before" ] && echo yes || echo no)"
sqlite3 "$S/state.db" "PRAGMA integrity_check" >"$T/sfull.integrity" 2>&1
check "store ENOSPC: the store passes integrity_check" ok "$(cat "$T/sfull.integrity")"

# ---- 4. the state store held EXCLUSIVE by another process ----------------
R=$T/reports-x
mkdir -p "$R"
conf excl "$T/excl.db"
run excl "$R" excl1
check "store EXCLUSIVE: a good first run exits 0" 0 "$rc"
snapshot "$R"
mkfifo "$T/holder.in"
sqlite3 "$T/excl.db" <"$T/holder.in" >"$T/holder.out" 2>&1 &
HOLDER=$!
exec 9>"$T/holder.in"
echo "PRAGMA busy_timeout = 0; BEGIN EXCLUSIVE; SELECT 'held';" >&9
for i in 1 2 3 4 5 6 7 8 9 10; do grep -q held "$T/holder.out" && break; sleep 0.5; done
assert "store EXCLUSIVE: the holder has the lock" grep -q held "$T/holder.out"
run excl "$R" excl2
check "store EXCLUSIVE: exit 3" 3 "$rc"
assert "store EXCLUSIVE: the message names the store and the lock" \
	grep -q "$T/excl.db.*locked" "$T/excl2.err"
check "store EXCLUSIVE: no probe left in a seed mailbox" 0 "$(leftovers)"
assert "store EXCLUSIVE: the old reports are byte-identical" same "$R"
assert "store EXCLUSIVE: no temporary file is left ($(ls -A "$R" | tr '\n' ' '))" only_reports "$R"
assert "store EXCLUSIVE: the log says the reports were not rewritten" \
	grep -q "state store failed: the report files were not rewritten" "$T/excl2.err"
check "store EXCLUSIVE: the summary lists both seeds' outcomes" 2 \
	"$(grep -c '^ *inbox@\(gmail\|yahoo\).test .*inbox' "$T/excl2.out")"
assert "store EXCLUSIVE: the summary says the reports were not rewritten" \
	grep -q "the state store failed (no memory across runs this time; the report files were not rewritten)" "$T/excl2.out"
echo "ROLLBACK;" >&9
exec 9>&-
wait "$HOLDER" 2>/dev/null
HOLDER=
run excl "$R" excl3
check "store EXCLUSIVE: released, the next run exits 0" 0 "$rc"
check "store EXCLUSIVE: released, no counter in the textfile went down" none \
	"$(counters_kept "$T/snap/r.prom" "$R/r.prom")"

# ---- 5. the daemon's store runs out of space for a round -----------------
# The round the store misses is kept in memory and recorded when there is
# space again: every probe counted exactly once, none left uncounted.
S=$T/state-d
mount_small "$S" 512k
PORT=$(free_port)
conf dfull "$S/state.db"
cat >>"$T/dfull.conf" <<CONF
schedule = { interval = 4; };
web = { listen_address = "127.0.0.1:$PORT"; };
CONF
rounds() {
	curl -s "http://127.0.0.1:$PORT/metrics" 2>/dev/null |
		awk '$1 ~ /^inboxprobe_rounds_total[{]/ { v = $2 } END { print v + 0 }'
}
wait_rounds() {
	_i=0
	while [ "$(rounds)" -lt "$1" ] && [ $_i -lt 600 ]; do sleep 0.1; _i=$((_i + 1)); done
	[ "$(rounds)" -ge "$1" ]
}
"$BIN" daemon -c "$T/dfull.conf" >"$T/dfull.out" 2>"$T/dfull.err" &
HOLDER=$!   # stopped by cleanup_faults if the test ends early
assert "daemon, store full: the first round ran" wait_rounds 1
fill "$S"
assert "daemon, store full: a round ran on the full store" wait_rounds 2
assert "daemon, store full: the round is kept to be recorded later" \
	grep -q "the round is kept in memory and recorded when the store works again" "$T/dfull.err"
rm -f "$S/filler"
assert "daemon, store full: a round ran with space again" wait_rounds 3
kill -TERM "$HOLDER"
wait "$HOLDER"
check "daemon, store full: exit 0 on SIGTERM" 0 "$?"
HOLDER=
grep -h "state store" "$T/dfull.err" | sed 's/^/#   /'
assert "daemon, store full: the missed round was recorded once there was space" \
	grep -q "recorded the round of 20[0-9-]*T[0-9:]*Z that the store had missed (2 probes)" "$T/dfull.err"
rows=$(sqlite3 "file:$S/state.db?mode=ro" "SELECT count(*) FROM probes WHERE config = 'dfull'")
check "daemon, store full: every probe counted exactly once (probes_total = $rows rows)" "$rows" \
	"$(counted "$S/state.db" dfull)"
if [ "$rows" -ge 6 ]; then ok "daemon, store full: the rows of all three rounds are there ($rows)"
else not_ok "daemon, store full: $rows probe rows for three rounds of two seeds"; fi
check "daemon, store full: no probe row left uncounted" 0 \
	"$(sqlite3 "file:$S/state.db?mode=ro" "SELECT count(*) FROM probes WHERE counted = 0")"
run dfull "$T/reports-s" dfull4
check "daemon, store full: no probe left in a seed mailbox after one more round" 0 "$(leftovers)"
sqlite3 "$S/state.db" "PRAGMA integrity_check" >"$T/dfull.integrity" 2>&1
check "daemon, store full: the store passes integrity_check" ok "$(cat "$T/dfull.integrity")"

cleanup_faults
world_result
