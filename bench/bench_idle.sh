#!/bin/bash
# bench_idle.sh - discovery lag and latency error of `inboxprobe run` with
# IDLE next to --no-idle (poll_interval 1), in the same run, against the
# loopback mail world with SEEDS seed mailboxes (bNNNN@yahoo.test), with the
# true arrival of every probe from its Maildir file name
# (SECONDS.M<usec>P<pid>..., the delivery time to the microsecond):
#   lag     seen - true arrival (seen = arrival_unix + discovery_lag_seconds
#           of the JSON report), p50/p99 over every probe of the ROUNDS rounds
#   |err|   |arrival_unix - true arrival|, p50/p99 (the learned announcement
#           delay improves from round to round: the last round is shown too)
#   round   wall time (the JSON's duration), inboxprobe's CPU per probe,
#           peak RSS, SMTP connections the relay saw, IMAP logins Dovecot saw
# and the floors of the same world, measured in the same run by a minimal
# client (python): SEEDS messages over 4 reused SMTP connections, and SEEDS
# bare IMAP logins with two SELECTs, per_host at a time.
# Asserts nothing (bench/README.md). Needs root (the world).
#
#   bench/bench_idle.sh [BUILDDIR]     env: SEEDS=100 ROUNDS=3
set -u
top_srcdir=$(cd "$(dirname "$0")/.." && pwd)
export top_srcdir
B=${1:-.}
BIN=$B/inboxprobe
[ -x "$BIN" ] || { echo "usage: $0 BUILDDIR (no inboxprobe in ${B})" >&2; exit 2; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/inboxprobe
SEEDS=${SEEDS:-100}
ROUNDS=${ROUNDS:-3}
PY=/usr/bin/python3
# SEEDS more mailboxes (bNNNN@yahoo.test), and Dovecot, Postfix and inotify
# sized for them: tests/world/world.sh's WORLD_SEEDS
export WORLD_SEEDS=$SEEDS
. "$top_srcdir/tests/world/lib.sh"
. "$top_srcdir/tests/e2e/common.sh"
world_up
T=$WORLD_DIR/bench
mkdir -p "$T"
users=$(for i in $(seq 1 "$SEEDS"); do printf "$WORLD_SEED_FMT\n" "$i"; done)
ulimit -n "$(ulimit -Hn)" 2>/dev/null

seedlist=""
for u in $users; do
	seedlist="$seedlist${seedlist:+,
}  { address = \"$u\"; provider = \"yahoo\"; }"
done
PER_HOST=$((SEEDS * 2 + 10))
cat >"$T/bench.conf" <<CONF
name = "bench";
relay = { url = "smtp://127.0.0.1:$RELAY_PLAIN_PORT"; tls = "none"; from = "probe@sender.test";
          connect_timeout = 10; timeout = 30; };
probe = { deadline = 60; poll_interval = 1; cleanup = "keep"; };
imap_limits = { per_host = $PER_HOST; per_account = 2; connect_timeout = 10; timeout = 30; };
slo = { min_inbox_ratio = 0.5; max_latency_p99 = 60.0; };
imap_defaults = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$WORLD_CA"; password_file = "$SEED_PASSFILE"; };
state = { path = "$T/state.db"; };
seeds = (
$seedlist
);
CONF
logins() { grep -c 'imap-login: Info: Login: user=<b[0-9]*@yahoo.test>' "$DOVECOT_LOG"; }
smtp_conns() { grep -c 'postfix/relay-plain/smtpd\[[0-9]*\]: connect from' "$RELAY_LOG"; }

# run MODE N [ARGS]: one round; figures to $T/MODE.N.fig
run() {
	mode=$1 n=$2
	shift 2
	l0=$(logins)
	c0=$(smtp_conns)
	/usr/bin/time -f "%U %S %M" -o "$T/$mode.$n.time" \
		"$BIN" run -c "$T/bench.conf" --json "$T/$mode.$n.json" "$@" >/dev/null 2>"$T/$mode.$n.err"
	sleep 0.5   # the logs catch up
	echo "$(($(logins) - l0)) $(($(smtp_conns) - c0))" >"$T/$mode.$n.counts"
}
for n in $(seq 1 "$ROUNDS"); do
	run idle "$n"
done
for n in $(seq 1 "$ROUNDS"); do
	run poll "$n" --no-idle
done

# ---- floors: a minimal client over the same world -------------------------
"$PY" - "$RELAY_PLAIN_PORT" "$IMAPS_PORT" "$WORLD_CA" "$SEED_PASSFILE" "$PER_HOST" $users \
	>"$T/floors" <<'PY'
import imaplib, smtplib, ssl, sys, threading, time
port, iport, ca, pwf, per_host = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
users = sys.argv[6:]
pw = open(pwf).read().strip()
# SEEDS messages over 4 reused SMTP connections
t0 = time.monotonic()
def sender(part):
    s = smtplib.SMTP("127.0.0.1", port)
    for u in part:
        s.sendmail("floor@sender.test", [u], "From: floor@sender.test\r\nTo: %s\r\nSubject: floor\r\n\r\nfloor\r\n" % u)
    s.quit()
ts = [threading.Thread(target=sender, args=(users[i::4],)) for i in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
print("submission_floor %.3f" % (time.monotonic() - t0))
ctx = ssl.create_default_context(cafile=ca)
sem = threading.Semaphore(per_host)
def login(u):
    with sem:
        m = imaplib.IMAP4_SSL("localhost", iport, ssl_context=ctx)
        m.login(u, pw)
        m.select("INBOX")
        m.select("Bulk")
        m.logout()
t0 = time.monotonic()
ts = [threading.Thread(target=login, args=(u,)) for u in users]
[t.start() for t in ts]
[t.join() for t in ts]
print("login_floor %.3f" % (time.monotonic() - t0))
PY

PYTHONPATH="$top_srcdir/tests/e2e" "$PY" - "$T" "$WORLD_DIR/mail" "$ROUNDS" "$SEEDS" <<'PY'
import json, os, re, sys
from e2e_util import maildir_arrivals, quantile
T, MAIL, ROUNDS, SEEDS = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
truth = maildir_arrivals(MAIL)
q = quantile
floors = dict(l.split() for l in open(os.path.join(T, "floors")))
print(f"# {SEEDS} seeds, {ROUNDS} rounds per mode; floors: submission of {SEEDS} messages over 4 "
      f"reused connections {float(floors['submission_floor']):.2f} s, {SEEDS} logins + 2 SELECTs "
      f"{float(floors['login_floor']):.2f} s")
print(f"{'mode':5} {'round':>5} {'found':>6} {'lag p50':>8} {'lag p99':>8} {'|err| p50':>9} {'|err| p99':>9} "
      f"{'wall s':>7} {'cpu ms/probe':>12} {'peak RSS MB':>11} {'smtp conns':>10} {'logins':>6}")
for mode in ("idle", "poll"):
    all_lag, all_err = [], []
    for n in range(1, ROUNDS + 1):
        rep = json.load(open(os.path.join(T, f"{mode}.{n}.json")))
        lags, errs = [], []
        for s in rep["seeds"]:
            if s.get("arrival_unix") is None or s["token"] not in truth:
                continue
            seen = s["arrival_unix"] + s["discovery_lag_seconds"]
            lags.append(seen - truth[s["token"]])
            errs.append(abs(s["arrival_unix"] - truth[s["token"]]))
        all_lag += lags
        all_err += errs
        u, sy, rss = open(os.path.join(T, f"{mode}.{n}.time")).read().split()[-3:]
        lg, sc = open(os.path.join(T, f"{mode}.{n}.counts")).read().split()
        found = len(lags)
        cpu = (float(u) + float(sy)) * 1000 / max(1, len(rep["seeds"]))
        print(f"{mode:5} {n:>5} {found:>6} {q(lags, .5):>8.3f} {q(lags, .99):>8.3f} {q(errs, .5):>9.3f} "
              f"{q(errs, .99):>9.3f} {rep['duration_seconds']:>7.2f} {cpu:>12.2f} {int(rss) / 1024:>11.1f} "
              f"{sc:>10} {lg:>6}")
    print(f"{mode:5} {'all':>5} {len(all_lag):>6} {q(all_lag, .5):>8.3f} {q(all_lag, .99):>8.3f} "
          f"{q(all_err, .5):>9.3f} {q(all_err, .99):>9.3f}")
PY
