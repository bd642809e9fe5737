#!/bin/bash
# bench_scale.sh - `inboxprobe run` (IDLE, arm then send) at SIZES seeds
# (default 1, 100 and 1,000) against the loopback mail world sized for the
# largest (WORLD_SEEDS, tests/world/world.sh), next to the floors of the same
# world measured in the same run by a minimal client (python3):
#   login floor   as many IMAP logins as inboxprobe's round made (Dovecot's
#                 "Login:" lines: two sessions per seed, INBOX and the spam
#                 folder, unless NOTIFY serves both on one), each with one
#                 SELECT and a LOGOUT, as many at once as imap_limits.per_host;
#                 and the issue's "SEEDS bare logins with two SELECTs"
#   submission    SEEDS messages over 4 reused SMTP connections
#   delivery      the same, until the last of them is in its INBOX (Maildir
#                 file names): what the server needs to deliver them
#   arm, send    each seed's login + SELECT, then its message over 4 reused
#                 connections, until the last message is in its INBOX: a
#                 round with nothing else (no watching, search or fetch)
# Per round: wall time (the JSON's duration) and its ratio to the login floor
# at the same number of connections plus the submission floor (issue 9's
# target: <= 1.2), and to the login floor plus the delivery floor (a round
# waits for its probes' delivery, which the submission floor does not), and
# to the arm-then-send floor plus Dovecot's 0.5 s announcement (ratio3),
# inboxprobe's CPU per probe (target <= 2 ms), peak RSS
# (target <= 48 MB at 1,000 seeds), SMTP connections the relay saw, IMAP
# logins, the span of the submissions (first to last 250) and its rate, and
# the true discovery lag and latency |error| p50/p99 against the Maildir file
# names (targets: lag p99 <= 0.55 s, |err| p99 <= 50 ms once the announcement
# delay is learned, i.e. from the second round on).
# The floors of a size are measured right after its rounds. The machine's
# load average is printed: on a shared machine both sides move with it.
# Asserts nothing (bench/README.md). Needs root (the world).
#
#   bench/bench_scale.sh [BUILDDIR]     env: SIZES="1 100 1000" ROUNDS=2
#                                       ALT=BUILDDIR2 (even rounds run it: A/B)
set -u
top_srcdir=$(cd "$(dirname "$0")/.." && pwd)
export top_srcdir
B=${1:-.}
BIN=$B/inboxprobe
[ -x "$BIN" ] || { echo "usage: $0 BUILDDIR (no inboxprobe in ${B})" >&2; exit 2; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/inboxprobe
# ALT=BUILDDIR2: even rounds run that build's inboxprobe instead, an A/B in
# one world under the same load (the table's rounds 2, 4, ... are B's)
ALT_BIN=
if [ -n "${ALT:-}" ]; then
	[ -x "$ALT/inboxprobe" ] || { echo "$0: no inboxprobe in ALT=$ALT" >&2; exit 2; }
	ALT_BIN=$(cd "$ALT" && pwd)/inboxprobe
fi
SIZES=${SIZES:-1 100 1000}
ROUNDS=${ROUNDS:-2}
PY=/usr/bin/python3
. "$top_srcdir/tests/world/lib.sh"
. "$top_srcdir/tests/e2e/common.sh"
world_up_sized "$SIZES"
MAX=$WORLD_SEEDS
T=$WORLD_DIR/bench
mkdir -p "$T"
ulimit -n "$(ulimit -Hn)" 2>/dev/null
pw_file=$SEED_PASSFILE

# users N: the first N bench seeds, one a line
users() { for ((i = 1; i <= $1; i++)); do printf "$WORLD_SEED_FMT\n" "$i"; done; }
# conf N FILE
conf() {
	local n=$1 seedlist
	seedlist=$(users "$n" | sed 's/.*/  { address = "&"; provider = "yahoo"; },/;$ s/,$//')
	cat >"$2" <<CONF
name = "bench";
relay = { url = "smtp://127.0.0.1:$RELAY_PLAIN_PORT"; tls = "none"; from = "probe@sender.test";
          connect_timeout = 10; timeout = 30; };
probe = { deadline = 120; poll_interval = 1; cleanup = "keep"; };
imap_limits = { per_host = $((n * 2 + 10)); per_account = 2; connect_timeout = 10; timeout = 30; };
slo = { min_inbox_ratio = 0.5; max_latency_p99 = 60.0; };
imap_defaults = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$WORLD_CA"; password_file = "$pw_file"; };
state = { path = "$T/state$n.db"; };
seeds = (
$seedlist
);
CONF
}
# world_cpu: CPU seconds the world's Dovecot (main instance) and Postfix have
# used so far: every process under their masters, with the children they
# reaped (cutime/cstime), so that the difference over a round or a floor is
# the servers' work for it (other processes on the machine do not count)
cat >"$T/wcpu.py" <<'PY'
import os, sys
def world_cpu(pidfiles):
    hz = os.sysconf("SC_CLK_TCK")
    kids, times = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            st = open(f"/proc/{d}/stat").read()
        except OSError:
            continue
        f = st[st.rindex(")") + 2:].split()
        kids.setdefault(int(f[1]), []).append(int(d))
        times[int(d)] = sum(int(x) for x in f[11:15])   # utime stime cutime cstime
    total = 0
    for pf in pidfiles:
        try:
            todo = [int(open(pf).read().split()[0])]
        except (OSError, ValueError, IndexError):
            continue
        while todo:
            p = todo.pop()
            total += times.get(p, 0)
            todo.extend(kids.get(p, []))
    return total / hz
if __name__ == "__main__":
    print("%.2f" % world_cpu(sys.argv[1:]))
PY
MASTERS="$WORLD_DIR/dovecot/run-main/master.pid $WORLD_DIR/postfix/queue/pid/master.pid"
world_cpu() { "$PY" "$T/wcpu.py" $MASTERS; }
logins() { grep -c 'imap-login: Info: Login: user=<b[0-9]*@yahoo.test>' "$DOVECOT_LOG"; }
smtp_conns() { grep -c 'postfix/relay-plain/smtpd\[[0-9]*\]: connect from' "$RELAY_LOG"; }

echo "# $SIZES seeds, $ROUNDS rounds each; $(nproc) CPUs; $(uname -r); world sized for $MAX seeds"
# floors N: the floors of N seeds (after N's rounds: their deliveries are done)
floors() {
	local n=$1 lg
	read -r lg _ <"$T/s$n.$ROUNDS.counts"
	users "$n" >"$T/users$n"
	"$PY" - "$RELAY_PLAIN_PORT" "$IMAPS_PORT" "$WORLD_CA" "$pw_file" $((n * 2 + 10)) "$lg" \
		"$T/users$n" "$WORLD_DIR/mail" "$T" $MASTERS >"$T/floors$n" <<'PY'
import imaplib, os, re, smtplib, ssl, sys, threading, time
sys.path.insert(0, sys.argv[9])
from wcpu import world_cpu
masters = sys.argv[10:]
c0 = world_cpu(masters)
def cpu(what):   # the servers' CPU seconds since the last call
    global c0
    c = world_cpu(masters)
    print("cpu_%s 0 %.2f" % (what, c - c0))
    c0 = c
port, iport, ca, pwf, per_host, nlogins = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3],
                                           sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
users = open(sys.argv[7]).read().split()
mail = sys.argv[8]
pw = open(pwf).read().strip()
ctx = ssl.create_default_context(cafile=ca)
sem = threading.Semaphore(per_host)
def session(u, boxes):
    with sem:
        m = imaplib.IMAP4_SSL("localhost", iport, ssl_context=ctx)
        m.login(u, pw)
        for b in boxes:
            m.select(b)
        m.logout()
def timed(jobs):
    t0 = time.monotonic()
    ts = [threading.Thread(target=session, args=j) for j in jobs]
    [t.start() for t in ts]
    [t.join() for t in ts]
    return time.monotonic() - t0
# as many logins as the round made: INBOX and Bulk sessions in turn
boxes = ["INBOX", "Bulk"]
jobs = [(users[i % len(users)], [boxes[(i // len(users)) % 2]]) for i in range(max(1, nlogins))]
print("login_same %d %.3f" % (len(jobs), timed(jobs)))
cpu("login_same")
print("login_bare %d %.3f" % (len(users), timed([(u, ["INBOX", "Bulk"]) for u in users])))
cpu("login_bare")
# SEEDS messages over 4 reused SMTP connections
tag = "floor-%d" % os.getpid()
t0, w0 = time.monotonic(), time.time()
def sender(part):
    s = smtplib.SMTP("127.0.0.1", port)
    for u in part:
        s.sendmail("floor@sender.test", [u],
                   "From: floor@sender.test\r\nTo: %s\r\nSubject: %s\r\n\r\nfloor\r\n" % (u, tag))
    s.quit()
ts = [threading.Thread(target=sender, args=(users[i::4],)) for i in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
print("submission %d %.3f" % (len(users), time.monotonic() - t0))
# ... and until the last of them is in its INBOX: the Maildir file name
# (SECONDS.M<usec>P...) is its delivery time
def delivered():
    last, n = 0.0, 0
    for u in users:
        d = os.path.join(mail, u.split("@")[1], u.split("@")[0], "new")
        for fn in os.listdir(d) if os.path.isdir(d) else []:
            m = re.match(r"(\d+)\.M(\d+)P", fn)
            if not m or int(m.group(1)) < int(w0):
                continue
            with open(os.path.join(d, fn), "rb") as f:
                if ("Subject: " + tag).encode() in f.read(4096):
                    n += 1
                    last = max(last, int(m.group(1)) + int(m.group(2)) / 1e6)
    return n, last
n, last = delivered()
while n < len(users) and time.monotonic() - t0 < 300:
    time.sleep(1)
    n, last = delivered()
print("delivery %d %.3f" % (n, last - w0 if n else float("nan")))
cpu("delivery")
# arm then send, as a round does but with nothing else: each seed's login +
# SELECT, then its message handed to 4 reused SMTP connections, until the
# last message is in its INBOX (no announcement, no search, no fetch)
import queue
time.sleep(2)   # the delivery floor's messages are all in
tag = "armsend-%d" % os.getpid()
q = queue.Queue()
def armer(u):
    with sem:
        m = imaplib.IMAP4_SSL("localhost", iport, ssl_context=ctx)
        m.login(u, pw)
        m.select("INBOX")
        q.put(u)
        m.logout()
def sender2():
    s = smtplib.SMTP("127.0.0.1", port)
    while True:
        u = q.get()
        if u is None:
            break
        s.sendmail("floor@sender.test", [u],
                   "From: floor@sender.test\r\nTo: %s\r\nSubject: %s\r\n\r\nfloor\r\n" % (u, tag))
    s.quit()
t0, w0 = time.monotonic(), time.time()
ss = [threading.Thread(target=sender2) for i in range(4)]
[t.start() for t in ss]
ts = [threading.Thread(target=armer, args=(u,)) for u in users]
[t.start() for t in ts]
[t.join() for t in ts]
armed = time.monotonic() - t0
[q.put(None) for t in ss]
[t.join() for t in ss]
sent = time.monotonic() - t0
n, last = delivered()
while n < len(users) and time.monotonic() - t0 < 300:
    time.sleep(0.2)
    n, last = delivered()
print("armsend %d %.3f" % (n, last - w0 if n else float("nan")))
cpu("armsend")
print("armsend_armed %d %.3f" % (len(users), armed))
print("armsend_sent %d %.3f" % (len(users), sent))
PY
	[ -n "${TIMELINE:-}" ] && cp "$T/floors$n" "$TIMELINE/"
	sleep 2   # the floor's deliveries drain before the next size's rounds
}
for n in $SIZES; do
	conf "$n" "$T/s$n.conf"
	echo "$n $(cut -d' ' -f1 /proc/loadavg)" >>"$T/load"
	for r in $(seq 1 "$ROUNDS"); do
		l0=$(logins)
		c0=$(smtp_conns)
		w0=$(world_cpu)
		# TIMELINE=DIR: the round's timeline (INBOXPROBE_TIMELINE, test-only) and JSON kept there
		[ -n "${TIMELINE:-}" ] && mkdir -p "$TIMELINE" && rm -f "$TIMELINE/s$n.$r.timeline" &&
			export INBOXPROBE_TIMELINE=$TIMELINE/s$n.$r.timeline
		RBIN=$BIN
		[ -n "$ALT_BIN" ] && [ $((r % 2)) -eq 0 ] && RBIN=$ALT_BIN
		/usr/bin/time -f "%U %S %M" -o "$T/s$n.$r.time" \
			"$RBIN" run -c "$T/s$n.conf" --json "$T/s$n.$r.json" >/dev/null 2>"$T/s$n.$r.err"
		[ -n "${TIMELINE:-}" ] && cp "$T/s$n.$r.json" "$TIMELINE/"
		sleep 0.5   # the logs catch up
		echo "$(($(logins) - l0)) $(($(smtp_conns) - c0)) $(awk -v a="$(world_cpu)" -v b="$w0" 'BEGIN { printf "%.2f", a - b }')" >"$T/s$n.$r.counts"
	done
	floors "$n"
done

PYTHONPATH="$top_srcdir/tests/e2e" "$PY" - "$T" "$WORLD_DIR/mail" "$ROUNDS" "$SIZES" <<'PY'
import json, os, re, sys
from e2e_util import maildir_arrivals, quantile
T, MAIL, ROUNDS, SIZES = sys.argv[1], sys.argv[2], int(sys.argv[3]), [int(x) for x in sys.argv[4].split()]
truth = maildir_arrivals(MAIL)
q = quantile
print(f"{'seeds':>5} {'round':>5} {'found':>5} {'wall s':>7} {'floor s':>7} {'ratio':>5} {'ratio2':>6} {'ratio3':>6} "
      f"{'cpu ms/probe':>12} {'srv cpu s':>9} {'RSS MB':>6} {'smtp':>4} {'logins':>6} {'submit span s':>13} "
      f"{'probes/s':>8} {'lag p50':>7} {'lag p99':>7} {'|err| p50':>9} {'|err| p99':>9}")
floors = {}
for n in SIZES:
    f = {}
    for line in open(os.path.join(T, f"floors{n}")):
        k, cnt, secs = line.split()
        f[k] = (int(cnt), float(secs))
    floors[n] = f
    fl = f["login_same"][1] + f["submission"][1]
    fld = f["login_same"][1] + f["delivery"][1]
    fla = f["armsend"][1] + 0.5 if "armsend" in f else float("nan")
    for r in range(1, ROUNDS + 1):
        rep = json.load(open(os.path.join(T, f"s{n}.{r}.json")))
        lags, errs, subs = [], [], []
        for s in rep["seeds"]:
            if s.get("submit_time_unix") is not None:
                subs.append(s["submit_time_unix"])
            if s.get("arrival_unix") is None or s["token"] not in truth:
                continue
            lags.append(s["arrival_unix"] + s["discovery_lag_seconds"] - truth[s["token"]])
            errs.append(abs(s["arrival_unix"] - truth[s["token"]]))
        u, sy, rss = open(os.path.join(T, f"s{n}.{r}.time")).read().split()[-3:]
        lg, sc, scpu = open(os.path.join(T, f"s{n}.{r}.counts")).read().split()
        wall = rep["duration_seconds"]
        span = max(subs) - min(subs) if len(subs) > 1 else 0.0
        rate = (len(subs) - 1) / span if span > 0 else float("nan")
        cpu = (float(u) + float(sy)) * 1000 / max(1, len(rep["seeds"]))
        print(f"{n:>5} {r:>5} {len(lags):>5} {wall:>7.2f} {fl:>7.2f} {wall / fl:>5.2f} {wall / fld:>6.2f} {wall / fla:>6.2f} {cpu:>12.2f} {float(scpu):>9.2f} "
              f"{int(rss) / 1024:>6.1f} {sc:>4} {lg:>6} {span:>13.2f} {rate:>8.1f} {q(lags, .5):>7.3f} "
              f"{q(lags, .99):>7.3f} {q(errs, .5):>9.3f} {q(errs, .99):>9.3f}")
load = dict(l.split() for l in open(os.path.join(T, "load")))
print("# floors (same world, same run, right after that size's rounds, python3 client):")
for n in SIZES:
    f = floors[n]
    print(f"#   {n:>5} seeds (1-min load average before its rounds {load[str(n)]}): {f['login_same'][0]} logins + SELECT (as many as the round made) "
          f"{f['login_same'][1]:.2f} s; {f['login_bare'][0]} logins + 2 SELECTs {f['login_bare'][1]:.2f} s; "
          f"submission of {f['submission'][0]} messages over 4 connections {f['submission'][1]:.2f} s "
          f"({f['submission'][0] / max(f['submission'][1], 1e-9):.0f}/s), the last of them ({f['delivery'][0]} found) "
          f"in its INBOX {f['delivery'][1]:.2f} s after the first was sent")
for n in SIZES:
    f = floors[n]
    if "armsend" in f:
        print(f"#   {n:>5} seeds: arm then send with nothing else (login + SELECT, then the message over 4 "
              f"connections): all armed {f['armsend_armed'][1]:.2f} s, all sent {f['armsend_sent'][1]:.2f} s, "
              f"the last in its INBOX {f['armsend'][1]:.2f} s ({f['armsend'][0]} found); "
              f"+ Dovecot's 0.5 s announcement = {f['armsend'][1] + 0.5:.2f} s, "
              f"{(f['armsend'][1] + 0.5) / (f['login_same'][1] + f['submission'][1]):.2f} x the issue's floor")
for n in SIZES:
    f = floors[n]
    c = {k[4:]: v[1] for k, v in f.items() if k.startswith("cpu_")}
    if c:
        print(f"#   {n:>5} seeds: the servers' CPU (Dovecot and Postfix, seconds): logins + SELECT "
              f"{c.get('login_same', float('nan')):.2f}, logins + 2 SELECTs {c.get('login_bare', float('nan')):.2f}, "
              f"submission and delivery {c.get('delivery', float('nan')):.2f}, arm then send "
              f"{c.get('armsend', float('nan')):.2f}; {os.cpu_count()} CPUs")
print("# ratio = wall / (login floor at the same connections + submission floor);")
print("# ratio2 = wall / (login floor at the same connections + delivery floor: submission until the")
print("#   last floor message is in its INBOX, the server's delivery the round also waits for)")
print("# srv cpu s: CPU seconds the world's Dovecot and Postfix spent during the round")
print("# ratio3 = wall / (arm then send with nothing else, until the last message is in its INBOX,")
print("#   + Dovecot's 0.5 s announcement delay): what a round costs beyond the world's own work")
print("# targets (issue 9): ratio <= 1.2 at 1,000 seeds, cpu <= 2 ms/probe, RSS <= 48 MB at 1,000,")
print("#   lag p99 <= 0.55 s, |err| p99 <= 0.050 s once the delay is learned (round >= 2)")
PY
