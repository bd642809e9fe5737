#!/bin/sh
# `inboxprobe daemon` against the real loopback mail world, scraped by a real
# Prometheus on loopback (one world, one daemon, one Prometheus):
#  1. /-/ready answers 503 before the first round is reported (the first
#     rounds wait their whole deadline on inbox@defer.test, which never
#     arrives), /-/healthy 200 meanwhile; a `run` of the same configuration
#     is refused by the run lock (exit 3);
#  2. rounds start on the schedule (interval 3 s, jitter 1 s: starts in the
#     state store are 2..4 s apart, or a multiple when slots were skipped;
#     a round takes about 0.7 s, Dovecot's 0.5 s IDLE announcement delay
#     included, more on a busy machine);
#     slots that fell during a round are counted in rounds_skipped_total;
#  3. `doveadm kick` of the seed watched during a round: the session is
#     re-established, the round still measures that seed, and the next round
#     measures every seed;
#  4. SIGHUP with a broken file: refused, the log says why, /metrics still
#     served and the old seeds still probed; SIGHUP adding a seed (and
#     dropping the deferring one): the next round measures it (inbox);
#  5. IMAP logins: the seeds' sessions are kept logged in between rounds,
#     so the logins are the first round's sessions (one per seed: the
#     world's Dovecot offers NOTIFY, so one session watches INBOX and the
#     spam folder) plus the reconnects the kick forced plus the
#     sessions of the seed the reload added, and one for the bounce mailbox;
#     they stay up between rounds;
#  5b. SMTP connections kept for rounds under CURLOPT_MAXAGE_CONN (118 s)
#     apart: the relay sees fewer connections than rounds;
#  6. Prometheus (2.x, asks for OpenMetrics) scraped every second: target
#     up, rounds_total / probes_total / imap_logins_total never reset across
#     rounds and the reload, histogram_quantile over the latency histogram
#     returns a number;
#  7. /metrics parses: promtool check metrics (text 0.0.4, asked with curl's
#     Accept) and prometheus_client's OpenMetrics parser (OpenMetrics asked);
#  8. SIGTERM while a round watches a mailbox: the round stops as a run's
#     does (reports written, "interrupted" in the JSON) and the daemon exits
#     0 within 5 s;
#  9. systemd's notify protocol (a datagram socket in NOTIFY_SOCKET, as
#     systemd passes it): READY=1 before the first round is reported,
#     STATUS= with each round's verdict and the reloads, WATCHDOG=1 every
#     half WATCHDOG_USEC also while a round runs, STOPPING=1 at the end;
# 10. Dovecot stopped and its imap processes ended between rounds: the
#     daemon keeps serving, its rounds say error for every seed; Dovecot
#     started again: the next round logs in again (4 logins) and measures
#     every seed.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/pycheck.sh"
BIN=${top_builddir:-.}/inboxprobe
[ -x "$BIN" ] || { echo "no inboxprobe binary at $BIN"; exit 99; }
for t in prometheus promtool curl sqlite3; do
	command -v $t >/dev/null || { echo "SKIP: no $t (Debian packages prometheus, curl, sqlite3)"; exit 77; }
done
world_up
T=$WORLD_DIR/daemon
mkdir -p "$T"
DPID=""
PPID_PROM=""
NPID=""
stop_all() {
	_st=$?
	[ -n "$DPID" ] && kill -KILL "$DPID" 2>/dev/null
	[ -n "$NPID" ] && kill "$NPID" 2>/dev/null
	[ -n "$PPID_PROM" ] && kill "$PPID_PROM" 2>/dev/null && wait "$PPID_PROM" 2>/dev/null
	(exit $_st)
	world_down
}
trap stop_all EXIT
PORT=$(free_port)
PROM_PORT=$(free_port)

# conf SEEDS: the daemon's configuration (written atomically: the daemon may
# read it at any SIGHUP).
conf() {
	cat >"$T/d.conf.tmp" <<CONF
name = "dmn";
relay = { url = "smtp://127.0.0.1:$RELAY_PLAIN_PORT"; tls = "none"; from = "probe@sender.test";
          connect_timeout = 3; timeout = 10; };
probe = { deadline = 4; poll_interval = 1; cleanup = "delete"; };
slo = { min_inbox_ratio = 0.5; max_latency_p99 = 60.0; };
imap_defaults = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$WORLD_CA"; password_file = "$SEED_PASSFILE"; };
bounce_mailbox = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$WORLD_CA";
                   username = "$BOUNCE_USER"; password_file = "$BOUNCE_PASSFILE"; };
state = { path = "$T/state.db"; };
report = { textfile = "$T/d.prom"; openmetrics = "$T/d.om"; json = "$T/d.json"; };
schedule = { interval = 3; jitter = 1; };
web = { listen_address = "127.0.0.1:$PORT"; };
seeds = ( $1 );
CONF
	mv "$T/d.conf.tmp" "$T/d.conf"
}
SEEDS_A='{ address = "inbox@gmail.test"; provider = "gmail"; },
  { address = "spam@outlook.test"; provider = "outlook"; },
  { address = "inbox@defer.test"; provider = "defer"; }'
SEEDS_B='{ address = "inbox@gmail.test"; provider = "gmail"; },
  { address = "spam@outlook.test"; provider = "outlook"; },
  { address = "inbox@yahoo.test"; provider = "yahoo"; }'

# ---- Prometheus, scraping every second (started first: it takes a moment) --
cat >"$T/prometheus.yml" <<YML
global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: inboxprobe
    static_configs: [ { targets: ["127.0.0.1:$PORT"] } ]
YML
prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/tsdb" \
	--web.listen-address="127.0.0.1:$PROM_PORT" </dev/null >"$T/prometheus.log" 2>&1 &
PPID_PROM=$!

# systemd's side of sd_notify: a datagram socket; each message is logged
# with the monotonic time it arrived.
NOTIFY_SOCKET=$T/notify.sock
"$PY" - "$NOTIFY_SOCKET" "$T/notify.log" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "w") as f:
    while True:
        m = s.recv(4096).decode()
        for line in m.split("\n"):
            if line:
                f.write("%.3f %s\n" % (time.monotonic(), line))
                f.flush()
PY
NPID=$!
i=0
while [ ! -S "$NOTIFY_SOCKET" ] && [ $i -lt 50 ]; do i=$((i + 1)); sleep 0.1; done

# ---- 1. not ready before the first round --------------------------------
conf "$SEEDS_A"
RL0=$(wc -l <"$RELAY_LOG")   # the relay's log before the daemon
NOTIFY_SOCKET=$NOTIFY_SOCKET WATCHDOG_USEC=2000000 "$BIN" daemon -c "$T/d.conf" </dev/null >"$T/d.out" 2>"$T/d.err" &
DPID=$!
first=""
i=0
while [ $i -lt 100 ]; do
	first=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/-/ready" 2>/dev/null)
	[ "$first" != 000 ] && break
	i=$((i + 1))
	sleep 0.05
done
check "/-/ready before the first round is reported" 503 "$first"
check "/-/healthy while the first round runs" 200 \
	"$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/-/healthy")"
check "rounds_total before the first round" 0 "$(daemon_metric 'inboxprobe_rounds_total{config="dmn"}')"
"$BIN" run -c "$T/d.conf" >"$T/run.out" 2>"$T/run.err"
check "a run of the daemon's configuration is refused by the run lock (exit 3)" 3 "$?"
assert "the run names the lock holder" grep -q "another inboxprobe run holds $T/state.db.dmn.lock" "$T/run.err"

# ---- 3. doveadm kick of the session watching inbox@defer.test -----------
# Round 1 watches inbox@defer.test for its whole deadline (4 s): kick it at 2 s.
sleep 2
kicked=$(doveadm -c "$DOVECOT_CONF" kick inbox@defer.test 2>&1 </dev/null)
echo "# doveadm kick: $kicked"
assert "doveadm kick found the daemon's session of inbox@defer.test" \
	sh -c "echo '$kicked' | grep -q 'inbox@defer.test'"
daemon_wait_rounds 1 15
check "/-/ready after the first round" 200 \
	"$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/-/ready")"
r1=$(grep ': round 1:' "$T/d.err")
echo "# $r1"
assert "round 1 measured every seed despite the kick (no error)" sh -c "echo '$r1' | grep -qv ' error '"
daemon_wait_rounds 2 15
r2=$(grep ': round 2:' "$T/d.err")
echo "# $r2"
assert "round 2 (after the kick) measured every seed: inbox 1 spam 1 missing 1" \
	sh -c "echo '$r2' | grep -q '3 seeds: inbox 1 spam 1 missing 1;'"

# ---- 4. SIGHUP: broken file refused, then a seed added ------------------
cp "$T/d.conf" "$T/d.good"
printf 'seeds = ( { address = "x@y.test" \n' >>"$T/d.conf"
kill -HUP "$DPID"
# a reload waits for the round in flight to end
daemon_wait_log 10 "reload of $T/d.conf refused"
assert "broken file: the log names the file and line" grep -q "^$T/d.conf:1[0-9]*: " "$T/d.err"
assert "broken file: the log says the running configuration is kept" \
	grep -q "reload of $T/d.conf refused (errors above); keeping the running configuration" "$T/d.err"
check "broken file: /metrics still served" 200 \
	"$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/metrics")"
n=$(daemon_rounds)
daemon_wait_rounds $((n + 1)) 15
assert "broken file: the next round still probes the running configuration's 3 seeds" \
	sh -c "grep ': round $((n + 1)):' '$T/d.err' | grep -q '3 seeds: inbox 1 spam 1 missing 1;'"
conf "$SEEDS_B"
kill -HUP "$DPID"
assert "good file: reloaded" daemon_wait_log 10 "configuration reloaded from $T/d.conf: 3 seeds"
n=$(daemon_rounds)
daemon_wait_rounds $((n + 2)) 20
check "the seed added by SIGHUP is measured by the next round (inbox)" 1 \
	"$(awk '$1 == "inboxprobe_probe_outcome{config=\"dmn\",seed=\"inbox@yahoo.test\",provider=\"yahoo\",outcome=\"inbox\"}" { print $2 }' "$T/d.prom")"

# ---- 2. the schedule ----------------------------------------------------
# Let the fast rounds run for a while (Prometheus scrapes meanwhile).
n=$(daemon_rounds)
daemon_wait_rounds $((n + 4)) 20
sqlite3 -separator ' ' "$T/state.db" 'SELECT started, ended FROM rounds ORDER BY started' >"$T/starts"
pycheck schedule "$T/starts" "$T/d.err" <<'PY'
import sys, re
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
log = open(sys.argv[2]).read()
skipped_log = sum(int(m) for m in re.findall(r"warning: (\d+) scheduled rounds? skipped", log))
# Slot k starts 3k + jitter (0..1 s) after the first: consecutive starts are
# at least 2 s apart; after a round that ended within its slot (< 2 s) the
# next start is at most 4 s later. 0.3 s of slack for the loop's wake-up.
ok_min = ok_max = True
fast = 0
for (s1, e1), (s2, _) in zip(rows, rows[1:]):
    g = s2 - s1
    print(f"start gap {g:.2f} s after a round of {e1 - s1:.2f} s")
    ok_min &= g >= 2.0 - 0.3
    if e1 - s1 < 2.0:
        fast += 1
        ok_max &= g <= 4.0 + 0.3
print(("ok" if ok_min and len(rows) >= 6 else "not ok") + f" - {len(rows)} rounds, starts at least interval - jitter apart")
print(("ok" if ok_max and fast >= 3 else "not ok") + f" - after {fast} short rounds the next started within interval + jitter")
print(("ok" if skipped_log >= 1 else "not ok") + f" - slots falling in the 4 s rounds were skipped ({skipped_log})")
PY
skipped=$(awk '$1 == "inboxprobe_rounds_skipped_total{config=\"dmn\"}" { print $2 }' "$T/d.prom")
assert "rounds_skipped_total ($skipped) counts the skipped slots" [ "${skipped:-0}" -ge 1 ]

# ---- 5. logins: sessions kept between rounds -------------------------------
# The textfile is written at the end of round R: 3 seeds x 1 session (NOTIFY)
# and the bounce mailbox's in round 1, 1 reconnect after the kick
# (inbox@defer.test's session), 1 session for inbox@yahoo.test added by the
# reload (whose inbox@defer.test session was closed); none since.
R=$(awk '$1 == "inboxprobe_rounds_total{config=\"dmn\"}" { print $2 }' "$T/d.prom")
L=$(awk '$1 == "inboxprobe_imap_logins_total{config=\"dmn\"}" { print $2 }' "$T/d.prom")
echo "# rounds $R, logins $L"
check "imap_logins_total after $R rounds = 4 first sessions + 1 reconnect + 1 for the added seed" 6 "$L"
check "the 4 IMAP sessions (3 of seeds, 1 of the bounce mailbox) stay up between rounds" 4 \
	"$(awk '$1 == "inboxprobe_imap_sessions{config=\"dmn\",state=\"up\"}" { print $2 }' "$T/d.prom")"
assert "the log says the rounds take kept sessions" grep -q "started: 3 seeds, 4 IMAP sessions kept" "$T/d.err"
# Rounds 3 s apart, under CURLOPT_MAXAGE_CONN (118 s): the SMTP connections
# are kept for the next round and reused (the relay sees a few, not one per
# round and probe).
nc=$(tail -n +$((RL0 + 1)) "$RELAY_LOG" | grep -c 'postfix/relay-plain/smtpd\[[0-9]*\]: connect from')
echo "# relay: $nc SMTP connections over $R rounds of 3 probes"
assert "SMTP connections reused across rounds 3 s apart: $nc connections over $R rounds" [ "$nc" -ge 1 -a "$nc" -lt "$R" ]

# ---- 7. /metrics parses ---------------------------------------------------
curl -fsS "http://127.0.0.1:$PORT/metrics" >"$T/scrape.txt"
out=$(promtool check metrics <"$T/scrape.txt" 2>&1)
check "promtool check metrics on /metrics (text 0.0.4): clean" "0:" "$?:$out"
curl -fsS -D "$T/om.hdr" -H 'Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1' \
	"http://127.0.0.1:$PORT/metrics" >"$T/scrape.om"
assert "OpenMetrics Content-Type when asked" grep -qi '^Content-Type: application/openmetrics-text; version=1.0.0' "$T/om.hdr"
pycheck openmetrics "$T/scrape.om" "$T/scrape.txt" <<'PY'
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import text_string_to_metric_families as text_families
om = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
tx = {f.name: f for f in text_families(open(sys.argv[2]).read())}
for fam in ("inboxprobe_rounds", "inboxprobe_rounds_skipped", "inboxprobe_imap_logins", "inboxprobe_probes"):
    ok = fam in om and om[fam].type == "counter"
    print(("ok" if ok else "not ok") + f" - OpenMetrics parser: {fam} is a counter")
ok = "inboxprobe_imap_sessions" in om and {s.labels["state"] for s in om["inboxprobe_imap_sessions"].samples} == {"connecting", "up"}
print(("ok" if ok else "not ok") + " - OpenMetrics parser: imap_sessions by state")
h = om.get("inboxprobe_delivery_latency_seconds")
print(("ok" if h is not None and h.type == "histogram" else "not ok") + " - OpenMetrics parser: the latency histogram")
same = set(om) == set(tx)
print(("ok" if same else "not ok") + f" - text and OpenMetrics carry the same families ({len(om)}) {sorted(set(om) ^ set(tx))}")
PY

# ---- 6. Prometheus ----------------------------------------------------------
# promq EXPR: the query's result as "labels value" lines.
promq() {
	curl -fsS --get "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" 2>/dev/null |
		"$PY" -c 'import json,sys
d = json.load(sys.stdin)
for r in d["data"]["result"]:
    print(r["metric"].get("__name__", "-"), r["value"][1])'
}
i=0
while [ $i -lt 50 ] && [ -z "$(promq 'up{job="inboxprobe"} == 1')" ]; do
	i=$((i + 1))
	sleep 0.2
done
check "Prometheus: target up" "up 1" "$(promq 'up{job="inboxprobe"}')"
n=$(promq 'count_over_time(inboxprobe_rounds_total[5m])' | awk '{ print $2 }')
echo "# Prometheus holds ${n:-0} samples of rounds_total"
assert "Prometheus scraped over several rounds and the reload (${n:-0} samples)" [ "${n:-0}" -ge 5 ]
for m in inboxprobe_rounds_total inboxprobe_imap_logins_total inboxprobe_probes_total inboxprobe_rounds_skipped_total; do
	check "Prometheus: resets($m) = 0 across rounds and reloads" 0 \
		"$(promq "sum(resets(${m}[5m]))" | awk '{ print $2 }')"
done
rmin=$(promq 'min_over_time(inboxprobe_rounds_total[5m])' | awk '{ print $2 }')
rmax=$(promq 'max_over_time(inboxprobe_rounds_total[5m])' | awk '{ print $2 }')
assert "Prometheus: rounds_total rose from $rmin to $rmax" [ "${rmax:-0}" -gt "${rmin:-0}" ]
q=$(promq 'histogram_quantile(0.9, sum by (le) (inboxprobe_delivery_latency_seconds_bucket))' | awk '{ print $2 }')
echo "# histogram_quantile(0.9, ...) = $q"
assert "Prometheus: histogram_quantile over the latency histogram returns a number ($q)" \
	"$PY" -c "import math,sys; v=float(sys.argv[1]); sys.exit(0 if math.isfinite(v) and v > 0 else 1)" "${q:-NaN}"

# ---- 10. Dovecot stopped, then started again ----------------------------------
port_open() {
	"$PY" -c 'import socket,sys; s=socket.socket(); s.settimeout(0.5); sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))))' "$1"
}
L0=$(daemon_metric 'inboxprobe_imap_logins_total{config="dmn"}')
# The imap processes outlive `doveadm stop`: they are ended (by pid, from
# `doveadm who`) once the listener is gone, so that the daemon's reconnects
# between rounds (keeper.c, backoff from 1 s) find no server.
pids=$(doveadm -c "$DOVECOT_CONF" who -1 2>/dev/null </dev/null | awk '$2 == "imap" { print $3 }' | tr -dc '0-9\n')
doveadm -c "$DOVECOT_CONF" stop </dev/null
i=0
while port_open "$IMAPS_PORT" && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
for p in $pids; do kill "$p" 2>/dev/null; done
n=$(daemon_rounds)
daemon_wait_rounds $((n + 2)) 30
line=$(grep ": round $((n + 2)):" "$T/d.err")
echo "# Dovecot down: $line"
assert "Dovecot down: the round says error for every seed" sh -c "echo '$line' | grep -q '3 seeds: error 3;'"
assert "Dovecot down: the daemon is alive" kill -0 "$DPID"
check "Dovecot down: /metrics still served" 200 \
	"$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/metrics")"
dovecot -c "$DOVECOT_CONF" </dev/null >"$T/dovecot.restart.log" 2>&1
i=0
while ! port_open "$IMAPS_PORT" && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
n=$(daemon_rounds)
daemon_wait_rounds $((n + 2)) 30
line=$(grep ": round $((n + 2)):" "$T/d.err")
echo "# Dovecot back: $line"
assert "Dovecot back: the next round measures every seed" sh -c "echo '$line' | grep -q '3 seeds: inbox 2 spam 1;'"
check "Dovecot back: the 4 sessions logged in again, once" $((L0 + 4)) \
	"$(awk '$1 == "inboxprobe_imap_logins_total{config=\"dmn\"}" { print $2 }' "$T/d.prom")"

# ---- 8. SIGTERM while a round watches inbox@defer.test --------------------------
conf "$SEEDS_A"
kill -HUP "$DPID"
n=$(daemon_rounds)
daemon_wait_rounds $((n + 2)) 30
# Rounds now watch inbox@defer.test for their whole deadline (4 s): stop
# one a second after it started.
k=$(( $(daemon_rounds) + 1 ))
daemon_wait_log 15 ": round $k started:"
sleep 1
echo "# SIGTERM 1 s into round $k"
kill -TERM "$DPID"
i=0
while kill -0 "$DPID" 2>/dev/null && [ $i -lt 50 ]; do
	i=$((i + 1))
	sleep 0.1
done
if kill -0 "$DPID" 2>/dev/null; then
	not_ok "SIGTERM: the daemon exits within 5 s"
else
	wait "$DPID"
	check "SIGTERM: the daemon exits within 5 s, status 0" 0 "$?"
fi
DPID=""
assert "SIGTERM: the round in flight says it was interrupted" grep -q "round interrupted by signal 15" "$T/d.err"
check "SIGTERM: the JSON of the interrupted round says so" True \
	"$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["interrupted"])' "$T/d.json")"
assert "SIGTERM: the log says so" grep -q "stopping on signal 15" "$T/d.err"

# ---- 9. sd_notify ---------------------------------------------------------------
sleep 0.2
kill "$NPID" 2>/dev/null
NPID=""
grep -v WATCHDOG "$T/notify.log" | sed 's/^/# notify: /'
pycheck notify "$T/notify.log" <<'PY'
import sys
msgs = [l.rstrip("\n").split(" ", 1) for l in open(sys.argv[1])]
msgs = [(float(t), m) for t, m in msgs]
first = lambda p: next((i for i, (_, m) in enumerate(msgs) if m.startswith(p)), None)
ready, round1 = first("READY=1"), first("STATUS=round 1:")
ok = ready is not None and round1 is not None and ready < round1
print(("ok" if ok else "not ok") + " - READY=1 is sent before the first round is reported")
rounds = [m for _, m in msgs if m.startswith("STATUS=round ")]
ok = len(rounds) >= 6 and all("seeds:" in m and ("gate" in m or "unknown" in m) for m in rounds)
print(("ok" if ok else "not ok") + f" - STATUS= carries each round's verdict ({len(rounds)} rounds)")
ok = any(m.startswith("STATUS=reload of") and "refused" in m for _, m in msgs) and \
     any(m.startswith("STATUS=configuration reloaded") for _, m in msgs)
print(("ok" if ok else "not ok") + " - STATUS= tells the refused and the accepted reload")
wd = [t for t, m in msgs if m == "WATCHDOG=1"]
gap = max((b - a for a, b in zip(wd, wd[1:])), default=99)
# WATCHDOG_USEC 2 s: a ping every second, also during the 3.5 s rounds;
# systemd would stop the service after 2 s without one.
print(("ok" if len(wd) >= 10 and gap < 2.0 else "not ok") + f" - WATCHDOG=1 {len(wd)} times, at most {gap:.2f} s apart (WATCHDOG_USEC 2 s)")
print(("ok" if msgs and msgs[-1][1] == "STOPPING=1" else "not ok") + " - STOPPING=1 last")
PY
sed 's/^/# daemon: /' "$T/d.err" | tail -n 30
world_result
