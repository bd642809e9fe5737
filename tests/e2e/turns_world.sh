#!/bin/sh
# With 1,000 seeds and a small per_host, every seed is measured (issue 9,
# "Sharing connections fairly"): against the loopback world sized for the
# seeds (WORLD_SEEDS, tests/world/README.md), one `inboxprobe run` of 1,000
# seeds b0001@yahoo.test ... on one Dovecot with imap_limits.per_host = 16.
# The seeds outnumber per_host, so they take turns: a short visit each (log
# in, both folders, log out), first come first served. Asserted:
# - the run says so (check's warning) and exits 0; the JSON has every seed,
#   each `inbox`, watched by `visits`, with a usable latency;
# - each seed's check_interval_seconds is at least poll_interval (a visit
#   comes poll_interval after the previous check at the earliest) and at most
#   what round-robin through per_host slots implies, from this run's own
#   figures: poll_interval, plus the seed's own arming-to-submission time, plus
#   C, the longest the world took for N + per_host + 1 consecutive seed logins
#   (Dovecot's log): a seed waits for at most every other seed's one session
#   and the per_host already under way; plus 2 s (the log's 1-second stamps,
#   and the arming session's opening before its Login line);
# - Dovecot's log: every seed logged in at least twice (arming, a visit), and
#   never more than per_host of their sessions at once (Login lines up,
#   Logged out / Disconnected lines down, in log order);
# - the relay's log: the N probes accepted (a queue id each, the JSON's), and
#   delivered to their seed;
# - cleanup = "delete": every probe deleted, every seed's INBOX, Bulk and
#   Trash empty at the end (the Maildir files).
# Under ASan+UBSan (the binary links libasan) the round runs TURNS_ASAN_SEEDS
# seeds (default 1000 too; see the figures printed); TURNS_SEEDS overrides both.
# Prints its figures (wall time, sessions, intervals, the bound).
# Exit 0 pass, 1 fail, 77 skip.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
BIN=${top_builddir:-.}/inboxprobe
[ -x "$BIN" ] || { echo "no inboxprobe binary at $BIN"; exit 99; }
world_skip_unless_root
PER_HOST=16
POLL=1
if ldd "$BIN" 2>/dev/null | grep -q libasan; then
	BUILD=asan
	SEEDS=${TURNS_SEEDS:-${TURNS_ASAN_SEEDS:-1000}}
else
	BUILD=plain
	SEEDS=${TURNS_SEEDS:-1000}
fi
echo "# $BUILD build: $SEEDS seeds, imap_limits.per_host = $PER_HOST, poll_interval = $POLL"
world_up_sized "$SEEDS"
T=$WORLD_DIR/turns
mkdir -p "$T"

{
	cat <<EOF
name = "turns";
relay = { url = "smtp://127.0.0.1:$RELAY_PLAIN_PORT"; tls = "none"; from = "probe@sender.test"; };
probe = { deadline = 300; poll_interval = $POLL; cleanup = "delete"; };
imap_limits = { per_host = $PER_HOST; per_account = 2; connect_timeout = 10; timeout = 30; };
slo = { min_inbox_ratio = 0.9; max_latency_p99 = 60.0; };
imap_defaults = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$WORLD_CA"; password_file = "$SEED_PASSFILE"; };
lock_dir = "$T";
seeds = (
EOF
	i=1
	while [ $i -le "$SEEDS" ]; do
		printf "  { address = \"$WORLD_SEED_FMT\"; provider = \"yahoo\"; }" $i
		[ $i -lt "$SEEDS" ] && echo , || echo
		i=$((i + 1))
	done
	echo ');'
} >"$T/turns.conf"

d0=$(wc -l <"$DOVECOT_LOG")
r0=$(wc -l <"$RELAY_LOG")
t0=$(date +%s)
timeout 600 "$BIN" run -c "$T/turns.conf" --json "$T/turns.json" >"$T/out" 2>"$T/err"
rc=$?
t1=$(date +%s)
# The logs catch up (bounded, 15 s): every seed login's session end is logged,
seed_logins() { tail -n +$((d0 + 1)) "$DOVECOT_LOG" | grep -c 'imap-login: Info: Login: user=<b[0-9]*@yahoo.test>'; }
seed_ends() { tail -n +$((d0 + 1)) "$DOVECOT_LOG" | grep -Ec '^.* imap(\(b[0-9]+@yahoo.test\)<[0-9]+><[^>]*>)?: Info: (Disconnected|Logged out)'; }
# and the relay logs each delivery (LMTP's reply may follow the message's
# appearance in the mailbox).
seed_sent() { tail -n +$((r0 + 1)) "$RELAY_LOG" | grep -c 'to=<b[0-9]*@yahoo.test>.* status=sent'; }
i=0
while { [ "$(seed_ends)" -lt "$(seed_logins)" ] || [ "$(seed_sent)" -lt "$SEEDS" ]; } && [ $i -lt 30 ]; do
	sleep 0.5
	i=$((i + 1))
done
echo "# the round ran $((t1 - t0)) s (1-min load average $(cut -d' ' -f1 /proc/loadavg))"
check "run exits 0 (every gate holds, every seed measured)" 0 "$rc"
[ "$rc" = 0 ] || sed 's/^/# stderr: /' "$T/err" | tail -n 20
check "check's warning: the seeds take turns" 1 \
	"$(grep -c "$SEEDS seeds use IMAP host localhost:$IMAPS_PORT but imap_limits.per_host is $PER_HOST: the seeds take turns" "$T/err")"

# Each check is a line "description<TAB>expected<TAB>actual"; figures "# ...".
/usr/bin/python3 - "$T/turns.json" "$DOVECOT_LOG" "$d0" "$RELAY_LOG" "$r0" "$MAIL_DIR" \
	"$SEEDS" "$PER_HOST" "$POLL" "$WORLD_SEED_FMT" >"$T/checks" 2>&1 <<'PY'
import datetime, json, os, re, sys, time
(jpath, dlog, d0, rlog, r0, mail, n, per_host, poll, fmt) = sys.argv[1:]
d0, r0, n, per_host, poll = int(d0), int(r0), int(n), int(per_host), float(poll)
rep = json.load(open(jpath))
seeds = rep["seeds"]
want = [fmt % i for i in range(1, n + 1)]
by = {s["address"]: s for s in seeds}

def check(desc, expected, actual):
    print("%s\t%s\t%s" % (desc, expected, actual))

def count(pred):
    return sum(1 for s in seeds if pred(s))

check("the JSON has every seed, once", n, len(by) if len(by) == len(seeds) else -len(seeds))
check("  ... the world's seeds", True, sorted(by) == want)
check("every outcome inbox", n, count(lambda s: s["outcome"] == "inbox"))
for s in [s for s in seeds if s["outcome"] != "inbox"][:5]:
    print("# not inbox: %s %s: %s" % (s["address"], s["outcome"], s.get("diagnostic")))
check("every seed watched by visits in turns", n, count(lambda s: s["watch"] == "visits"))
check("every seed has a usable latency >= 0", n, count(
    lambda s: s["latency_usable"] is True and isinstance(s["latency_seconds"], (int, float))
    and s["latency_seconds"] >= 0))

# Dovecot's log of the run: seed logins (with their 1-second time stamps)
# and session ends, in log order.
year = datetime.datetime.utcfromtimestamp(rep["started_unix"]).year
login_re = re.compile(r"^(\w{3} +\d+ \d\d:\d\d:\d\d) imap-login: Info: Login: user=<(b\d+@yahoo\.test)>.*"
                      r" session=<([^>]*)>")
# Under load Dovecot 2.3 now and then logs a session's end without its
# prefix ("imap: Info: Disconnected: Logged out ..."): an end all the same
# (only the seeds use IMAP here during the run), matched to no session.
end_re = re.compile(r"^\S+ +\d+ \S+ imap(?:\((b\d+@yahoo\.test)\)<\d+><([^>]*)>)?: Info: (Disconnected|Logged out)")
logins, cur, most, first, opened, ended, anon = [], 0, 0, {}, {}, set(), 0
with open(dlog, errors="replace") as f:
    for i, line in enumerate(f):
        if i < d0:
            continue
        m = login_re.match(line)
        if m:
            t = time.mktime(datetime.datetime.strptime("%d %s" % (year, m.group(1)),
                                                       "%Y %b %d %H:%M:%S").timetuple())
            logins.append((t, m.group(2)))
            first.setdefault(m.group(2), t)
            opened[m.group(3)] = line.strip()
            cur += 1
            most = max(most, cur)
        else:
            m = end_re.match(line)
            if m:
                cur -= 1
                if m.group(2) is None:
                    anon += 1
                else:
                    ended.add(m.group(2))
# a session's end may even come before its Login line (two processes' lines)
opened = {sid: l for sid, l in opened.items() if sid not in ended}
per_user = {}
for _, u in logins:
    per_user[u] = per_user.get(u, 0) + 1
print("# Dovecot: %d seed sessions (%.2f per seed), at most %d at once; %d still open at the end"
      " (%d ends logged without their session's prefix)"
      % (len(logins), len(logins) / max(n, 1), most, cur, anon))
check("every seed logged in at least twice (arming, then a visit)", n,
      sum(1 for u in want if per_user.get(u, 0) >= 2))
check("Dovecot: at most per_host seed sessions at once", True, 0 < most <= per_host)
for sid, l in (list(opened.items()) if len(opened) > anon else [])[:3]:
    print("# no end logged for: %s" % l)
    with open(dlog, errors="replace") as f:
        for line in f:
            if sid in line and line.strip() != l:
                print("#   %s" % line.strip())
check("Dovecot: every seed session ended", 0, len(opened) - anon)

# The bound: round-robin through per_host slots. After its request a seed
# waits for at most every other seed's one request ahead of it, so its visit
# comes at the latest with the (n + per_host)-th login after the request:
# C, the longest span of n + per_host + 1 consecutive seed logins.
ts = sorted(t for t, _ in logins)
k = n + per_host + 1
c = max((ts[i + k - 1] - ts[i] for i in range(len(ts) - k + 1)), default=ts[-1] - ts[0] if ts else 0)
worst, over, ivals = None, [], []
for s in seeds:
    iv = s["check_interval_seconds"]
    if not isinstance(iv, (int, float)):
        continue
    ivals.append(iv)
    own = max(0.0, (s["submit_time_unix"] or 0) - first.get(s["address"], 0))
    bound = poll + own + c + 2.0
    if worst is None or iv / bound > worst[0]:
        worst = (iv / bound, s["address"], iv, bound)
    if not (poll <= iv <= bound):
        over.append((s["address"], iv, bound))
ivals.sort()
if ivals:
    print("# check intervals (s): min %.2f, median %.2f, p99 %.2f, max %.2f; C = %.0f s "
          "(%d consecutive seed logins), round %.1f s"
          % (ivals[0], ivals[len(ivals) // 2], ivals[int(0.99 * (len(ivals) - 1))], ivals[-1], c, k,
             rep["duration_seconds"]))
    print("# closest to its bound: %s, %.2f s of %.2f s (%.0f%%)" % (worst[1], worst[2], worst[3],
                                                                  100 * worst[0]))
for a, iv, b in over[:5]:
    print("# out of bounds: %s check interval %.2f s, bound [%.0f, %.2f] s" % (a, iv, poll, b))
check("every seed has a check interval", n, len(ivals))
check("  ... each within [poll_interval, poll + own arming + C + 2 s]", n, len(ivals) - len(over))

# The relay's log: each probe accepted under the queue id the JSON gives, and
# delivered to its seed.
acc, sent = set(), set()
with open(rlog, errors="replace") as f:
    for i, line in enumerate(f):
        if i < r0:
            continue
        m = re.search(r"postfix/relay-plain/smtpd\[\d+\]: ([0-9A-F]+): client=", line)
        if m:
            acc.add(m.group(1))
        m = re.search(r"postfix/lmtp\[\d+\]: ([0-9A-F]+): to=<([^>]+)>.* status=sent", line)
        if m:
            sent.add((m.group(1), m.group(2)))
qids = {s["address"]: (s.get("relay_reply") or {}).get("queue_id") for s in seeds}
print("# relay: %d messages accepted on the plain port this run, %d deliveries" % (len(acc), len(sent)))
check("relay log: N accepted messages", n, len(acc))
check("  ... each the queue id of a seed's probe", n, sum(1 for a, q in qids.items() if q in acc))
check("  ... delivered to that seed", n, sum(1 for a, q in qids.items() if (q, a) in sent))

# cleanup = "delete": the probe deleted, the mailbox empty.
check("every probe deleted (cleanup)", n, count(lambda s: s["cleanup"] == "deleted"))
left = []
for a in want:
    box = os.path.join(mail, a.split("@")[1], a.split("@")[0])
    for f in ("", ".Bulk", ".Trash"):
        for sub in ("new", "cur"):
            p = os.path.join(box, f, sub)
            left += [os.path.join(p, x) for x in os.listdir(p)] if os.path.isdir(p) else []
for p in left[:5]:
    print("# left behind: %s" % p)
check("every seed's INBOX, Bulk and Trash empty at the end", 0, len(left))
PY
py=$?
grep '^#' "$T/checks"
grep -v '^#' "$T/checks" | grep "$(printf '\t')" >"$T/checks.tab"
while IFS="$(printf '\t')" read -r desc exp act; do
	check "$desc" "$exp" "$act"
done <"$T/checks.tab"
check "the checks ran" 0 "$py"
[ "$py" = 0 ] || grep -v "$(printf '\t')" "$T/checks" | grep -v '^#'
world_result
