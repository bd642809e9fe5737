#!/bin/sh
# Memory across runs, end to end: `inboxprobe run` with a state store
# against the real loopback mail world (one world for the whole script).
#  1. a late arrival across two rounds: the greylisted probe is `missing`
#     in round 1 (deadline < GREYLIST_DELAY) and found by round 2, with its
#     true latency (checked against the maildir and the relay's log), in
#     late_arrivals_total and the histogram; it keeps `missing` in
#     probes_total and in the store; the summary prints a late arrival line;
#  2. after N rounds of a fixed seed set, probes_total (textfile and
#     OpenMetrics) and the latency histogram equal the sums over the
#     rounds' JSON reports;
#  3. the window quantiles and window_samples equal a nearest-rank
#     reference computed from the probes in the SQLite store;
#  4. slo.evaluate = "window": the p99 gate is not evaluated below
#     min_samples (window samples), and is once the window has enough;
#  5. concurrent runs: two configurations side by side both complete; a
#     second run of the same configuration exits 3, sends nothing, and the
#     store passes PRAGMA integrity_check.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/pycheck.sh"
BIN=${top_builddir:-.}/inboxprobe
[ -x "$BIN" ] || { echo "no inboxprobe binary at $BIN"; exit 99; }
command -v sqlite3 >/dev/null || { echo "SKIP: no sqlite3 (apt-get install sqlite3)"; exit 77; }
world_up
T=$WORLD_DIR/statetests
mkdir -p "$T"

# conf NAME SEEDS [SLO_EXTRA] [FILE]: a configuration ($T/FILE.conf, FILE
# defaults to NAME) with a state store ($T/NAME.db); the reports are given
# per run (--json etc.). CONF_FROM overrides the envelope sender.
conf() {
	cat >"$T/${4:-$1}.conf" <<CONF
name = "$1";
relay = { url = "smtp://127.0.0.1:$RELAY_PLAIN_PORT"; tls = "none"; from = "${CONF_FROM:-probe@sender.test}";
          connect_timeout = 3; timeout = 10; };
probe = { deadline = 20; poll_interval = 1; cleanup = "delete"; };
slo = { min_inbox_ratio = 0.5; max_latency_p99 = 60.0; window = 3600; $3 };
imap_defaults = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$WORLD_CA"; password_file = "$SEED_PASSFILE"; };
state = { path = "$T/$1.db"; retention_days = 30; };
seeds = ( $2 );
CONF
}
# run CONF TAG [ARGS...]: one round; reports in $T/TAG.{json,prom,om,out,err}; sets rc.
run() {
	_c=$1
	_t=$2
	shift 2
	"$BIN" run -c "$T/$_c.conf" --json "$T/$_t.json" --textfile "$T/$_t.prom" \
		--openmetrics "$T/$_t.om" "$@" >"$T/$_t.out" 2>"$T/$_t.err"
	rc=$?
	echo "# $_t: exit $rc"
	sed 's/^/#   /' "$T/$_t.out"
}

# ---- 1. A late arrival across two rounds --------------------------------
# postgrey delays the first (client, sender, recipient) triplet by
# GREYLIST_DELAY seconds; this is the first mail to inbox@greylist.test in
# this world, so round 1 (deadline 3 s) ends before it arrives.
conf late '{ address = "inbox@greylist.test"; provider = "greylist"; },
  { address = "inbox@gmail.test"; provider = "gmail"; }'
run late late1 --deadline 3
check "late round 1: exit 1 (greylist inbox share 0 < 0.5)" 1 "$rc"
tok=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["seeds"][0]["token"] or "")' "$T/late1.json")
check "late round 1: greylisted probe is missing" missing \
	"$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["seeds"][0]["outcome"])' "$T/late1.json")"
seen=$(wait_token 30 inbox@greylist.test "$tok")
assert "greylisted probe $tok reached the maildir within 30 s ($seen)" [ -n "$seen" ]
set -- $seen
received=${2:-0}
run late late2 --deadline 20
pycheck late "$T" "$GREYLIST_DELAY" "$RELAY_LOG" "$received" <<'PY'
import sys, sqlite3, math
from e2e_util import *
T, delay, relay_log, received = sys.argv[1], float(sys.argv[2]), sys.argv[3], float(sys.argv[4])
r1, r2 = load_json(T + "/late1.json"), load_json(T + "/late2.json")
g1 = r1["seeds"][0]
tok = g1["token"]
check(g1["outcome"] == "missing" and g1["submit_time_unix"], f"round 1: greylist outcome {g1['outcome']} (accepted, not found in 3 s)")
check(r1["seeds"][1]["outcome"] == "inbox", f"round 1: gmail outcome {r1['seeds'][1]['outcome']} == inbox")
check(r2["seeds"][0]["outcome"] == "inbox", f"round 2: the new greylist probe {r2['seeds'][0]['outcome']} == inbox (triplet already passed)")
check(r2["seeds"][0]["token"] != tok, "round 2 sent a new token")
# The store: round 1's probe keeps `missing`, marked late with its true latency.
con = sqlite3.connect(f"file:{T}/late.db?mode=ro", uri=True)
row = con.execute("SELECT outcome, late, late_folder, late_latency, late_latency_usable, late_internaldate, submit_time "
                  "FROM probes WHERE token = ?", (tok,)).fetchone()
check(row is not None, "store: round 1's probe has a row")
if row:
    outcome, late, lfolder, llat, lusable, lidate, submit = row
    check(outcome == "missing", f"store: round 1's probe keeps outcome {outcome!r} == 'missing'")
    check(late == 1 and lfolder == "inbox" and lusable == 1, f"store: late={late} late_folder={lfolder!r} usable={lusable}")
    check(llat is not None and llat >= delay - 1, f"store: late latency {llat:.2f} s >= GREYLIST_DELAY - 1 = {delay - 1}")
    check(abs(submit - g1["submit_time_unix"]) < 1e-3, "store: submit time equals round 1's JSON")
    check(abs(lidate - received) <= 1.0, f"store: late INTERNALDATE {lidate} == the maildir's date.received {received}")
    # arrival in [INTERNALDATE, INTERNALDATE + 1 s] (SPEC "Latency")
    check(lidate - submit - 1e-6 <= llat <= lidate + 1 - submit + 1e-6,
          f"store: late latency {llat:.3f} in [INTERNALDATE - submit, + 1 s]")
    sent = relay_sent_time(relay_log, g1["relay_reply"]["queue_id"], "inbox@greylist.test")
    check(sent is not None, f"relay log: status=sent for queue id {g1['relay_reply']['queue_id']}")
    if sent is not None:
        check(abs((sent - submit) - llat) <= 2.5, f"late latency {llat:.1f} s close to the relay log's {sent - submit:.1f} s")
counts = dict(((p, o), v) for p, o, v in con.execute(
    "SELECT provider, label, value FROM counters WHERE config = 'late' AND name = 'probes_total'"))
con.close()
check(counts.get(("greylist", "missing")) == 1 and counts.get(("greylist", "inbox")) == 1,
      f"store counters: greylist missing {counts.get(('greylist', 'missing'))}, inbox {counts.get(('greylist', 'inbox'))}")
# The textfile of round 2.
s = prom_samples(T + "/late2.prom")
check(one(s, "inboxprobe_late_arrivals_total", config="late", provider="greylist", folder="inbox") == 1,
      "textfile: late_arrivals_total{provider=greylist,folder=inbox} 1")
check(one(s, "inboxprobe_late_arrivals_total", config="late", provider="greylist", folder="spam") == 0,
      "textfile: late_arrivals_total{provider=greylist,folder=spam} 0")
check(one(s, "inboxprobe_late_arrivals_total", config="late", provider="gmail", folder="inbox") == 0,
      "textfile: late_arrivals_total{provider=gmail,folder=inbox} 0")
check(one(s, "inboxprobe_probes_total", config="late", provider="greylist", outcome="missing") == 1,
      "textfile: probes_total{greylist,missing} still 1 (counters never go back)")
check(one(s, "inboxprobe_probes_total", config="late", provider="greylist", outcome="inbox") == 1,
      "textfile: probes_total{greylist,inbox} 1 (round 2's probe; the late one is not recounted)")
check(one(s, "inboxprobe_probes_total", config="late", provider="gmail", outcome="inbox") == 2,
      "textfile: probes_total{gmail,inbox} 2")
# Histogram: round 2's found greylist probe plus the late arrival.
lat2 = r2["seeds"][0]["latency_seconds"]
obs = sorted([max(0.0, lat2), max(0.0, llat)])
cnt = one(s, "inboxprobe_delivery_latency_seconds_count", config="late", provider="greylist")
check(cnt == 2, f"textfile: greylist histogram _count {cnt} == 2 (round 2's probe + the late arrival)")
sm = one(s, "inboxprobe_delivery_latency_seconds_sum", config="late", provider="greylist")
check(sm is not None and abs(sm - sum(obs)) < 1e-6, f"textfile: greylist histogram _sum {sm} == {sum(obs)}")
for le in BUCKETS:
    b = bucket(s, "inboxprobe_delivery_latency_seconds", le, config="late", provider="greylist")
    want = sum(1 for x in obs if x <= le)
    check(b == want, f"textfile: greylist bucket le={le}: {b} == {want}")
# Quantiles over the window: the late latency is in it (docs/SPEC.md "true latency").
now = r2["ended_unix"] + 0.001
lats = window_latencies(f"{T}/late.db", "late", "greylist", now, 3600)
check(len(lats) == 2, f"store window: {len(lats)} greylist samples == 2")
check(one(s, "inboxprobe_window_samples", config="late", provider="greylist") == len(lats),
      f"textfile: window_samples{{greylist}} == {len(lats)}")
for q in ("0.5", "0.95", "0.99"):
    v = one(s, "inboxprobe_delivery_latency_window_seconds", config="late", provider="greylist", quantile=q)
    ref = max(0.0, nearest_rank(lats, float(q)))
    check(v is not None and abs(v - ref) < 1e-3, f"textfile: greylist window quantile {q} = {v} == nearest-rank {ref:.3f}")
import re
m = re.search(r"^late arrival: inbox@greylist\.test probe (\w+)\S* sent \S+ found in INBOX after (\d+) s$",
              open(T + "/late2.out").read(), re.M)
check(m is not None and tok.startswith(m.group(1)) and abs(int(m.group(2)) - llat) <= 0.5,
      f"summary: late arrival line names the token and the latency {m and m.group(2)} s == {llat:.1f} s rounded")
t = [p for p in r2["providers"] if p["provider"] == "greylist"][0]["totals"]
check(t["late_arrivals"]["inbox"] == 1 and t["probes"]["missing"] == 1,
      f"JSON totals: late_arrivals {t['late_arrivals']}, probes.missing {t['probes']['missing']}")
PY
assert "summary prints a late arrival line for inbox@greylist.test" \
	grep -q "^late arrival: inbox@greylist.test probe ${tok%"${tok#????????}"}.* found in INBOX after" "$T/late2.out"
assert "store passes PRAGMA integrity_check" [ "$(sqlite3 -readonly "$T/late.db" 'PRAGMA integrity_check')" = ok ]
# Round 3: the late probe is no longer pending: nothing changes for it.
run late late3 --deadline 20
assert "late round 3: late_arrivals_total{greylist,inbox} still 1" \
	grep -q '^inboxprobe_late_arrivals_total{config="late",provider="greylist",folder="inbox"} 1$' "$T/late3.prom"
assert "late round 3: no late arrival line" sh -c "! grep -q '^late arrival' '$T/late3.out'"

# ---- 2. + 3. Counters, histogram and window quantiles after N rounds ----
# The greylisted seed gives latencies of several seconds (the others
# arrive within the second): each round uses a new envelope sender, so
# postgrey delays that round's probe again (it folds digits and +ext in
# the sender's local part, so the senders differ by letters).
N=3
SEEDS3='{ address = "inbox@gmail.test"; provider = "gmail"; },
  { address = "spam@gmail.test"; provider = "gmail"; },
  { address = "inbox@yahoo.test"; provider = "yahoo"; }'
i=1
for s in a b c d e f g h; do
	[ $i -le $N ] || break
	CONF_FROM="counts-$s@sender.test" conf counts "$SEEDS3,
  { address = \"inbox@greylist.test\"; provider = \"greylist\"; }" "" "counts$i"
	run "counts$i" "counts$i" --deadline 30
	check "counts round $i: exit 0" 0 "$rc"
	i=$((i + 1))
done
CONF_FROM=
conf counts "$SEEDS3"
pycheck counts "$T" "$N" "$GREYLIST_DELAY" <<'PY'
import sys
from e2e_util import *
T, N, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
reps = [load_json(f"{T}/counts{i}.json") for i in range(1, N + 1)]
want, lat = {}, {}
for r in reps:
    for sd in r["seeds"]:
        want[(sd["provider"], sd["outcome"])] = want.get((sd["provider"], sd["outcome"]), 0) + 1
        if sd["outcome"] in ("inbox", "spam") and sd["latency_usable"]:
            lat.setdefault(sd["provider"], []).append(max(0.0, sd["latency_seconds"]))
print("# outcomes over the rounds:", want)
print("# latencies:", {p: [round(x, 3) for x in v] for p, v in lat.items()})
check(want.get(("gmail", "inbox")) == N and want.get(("gmail", "spam")) == N and want.get(("yahoo", "inbox")) == N
      and want.get(("greylist", "inbox")) == N, f"JSON: {N} rounds of gmail inbox+spam, yahoo inbox, greylist inbox")
check(len(lat.get("greylist", [])) == N and all(x >= delay - 1 for x in lat["greylist"]),
      f"greylist latencies {lat.get('greylist')} all >= GREYLIST_DELAY - 1 (delayed each round)")
s = prom_samples(f"{T}/counts{N}.prom")
om = om_samples(f"{T}/counts{N}.om")
for prov in ("gmail", "yahoo", "greylist"):
    for o in OUTCOMES:
        w = want.get((prov, o), 0)
        v = one(s, "inboxprobe_probes_total", config="counts", provider=prov, outcome=o)
        check(v == w, f"textfile: probes_total{{{prov},{o}}} {v} == {w}")
        v = one(om, "inboxprobe_probes_total", config="counts", provider=prov, outcome=o)
        check(v == w, f"OpenMetrics: probes_total{{{prov},{o}}} {v} == {w}")
    obs = lat.get(prov, [])
    for name, smp in (("textfile", s), ("OpenMetrics", om)):
        c = one(smp, "inboxprobe_delivery_latency_seconds_count", config="counts", provider=prov)
        check(c == len(obs), f"{name}: {prov} histogram _count {c} == {len(obs)}")
        sm = one(smp, "inboxprobe_delivery_latency_seconds_sum", config="counts", provider=prov)
        check(sm is not None and abs(sm - sum(obs)) < 1e-6, f"{name}: {prov} histogram _sum {sm} == {sum(obs):.6f}")
        bad = []
        for le in BUCKETS:
            vals = [v for (n, l, v) in smp if n == "inboxprobe_delivery_latency_seconds_bucket"
                    and l.get("provider") == prov and float(l["le"]) == le]
            w = sum(1 for x in obs if x <= le)
            if vals != [w]:
                bad.append((le, vals, w))
        inf = [v for (n, l, v) in smp if n == "inboxprobe_delivery_latency_seconds_bucket"
               and l.get("provider") == prov and l["le"] == "+Inf"]
        check(not bad and inf == [len(obs)], f"{name}: {prov} buckets 1..3600 and +Inf cumulative counts of the JSON latencies {bad}")
    # 3. window quantiles: nearest rank over the store's samples.
    now = reps[-1]["ended_unix"] + 0.001
    wl = window_latencies(f"{T}/counts.db", "counts", prov, now, 3600)
    print(f"# {prov} window samples from the store: {[round(x, 3) for x in wl]}")
    check(len(wl) == len(obs), f"store: {prov} has {len(wl)} window samples == {len(obs)} found probes")
    check(one(s, "inboxprobe_window_samples", config="counts", provider=prov) == len(wl),
          f"textfile: window_samples{{{prov}}} == {len(wl)}")
    tot = [p for p in reps[-1]["providers"] if p["provider"] == prov][0]["totals"]
    check(tot["window"]["samples"] == len(wl), f"JSON totals.window.samples {tot['window']['samples']} == {len(wl)}")
    for q, key in (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99")):
        ref = nearest_rank(wl, float(q))
        v = one(s, "inboxprobe_delivery_latency_window_seconds", config="counts", provider=prov, quantile=q)
        check(v is not None and abs(v - max(0.0, ref)) < 1e-3,
              f"textfile: {prov} window quantile {q} = {v} == nearest-rank rank {math.ceil(float(q) * len(wl))} of {len(wl)}: {ref:.3f}")
        check(abs(tot["window"][key] - ref) < 1e-3, f"JSON totals.window.{key} {tot['window'][key]} == {ref:.3f}")
    # 4. the window summary's _sum and _count are the cumulative totals (the
    # histogram's), as in client libraries' summaries: they never go down.
    for suffix in ("_sum", "_count"):
        w = one(s, "inboxprobe_delivery_latency_window_seconds" + suffix, config="counts", provider=prov)
        h = one(s, "inboxprobe_delivery_latency_seconds" + suffix, config="counts", provider=prov)
        check(w is not None and h is not None and abs(w - h) < 1e-6,
              f"textfile: {prov} window summary {suffix} {w} == the histogram's cumulative {suffix} {h}")
PY
assert "promtool check metrics on the counts textfile" sh -c "promtool check metrics < '$T/counts$N.prom'"

# ---- 4. slo.evaluate = "window" and min_samples ---------------------------
# Same store (same name and path) with window gates. After the next round
# gmail has 2*(N+1) window samples; this round alone has only 2.
conf counts "$SEEDS3" 'evaluate = "window"; min_samples = 100;' win100
run win100 win1 --deadline 20
gm=$((2 * (N + 1)))
conf counts "$SEEDS3" "evaluate = \"window\"; min_samples = $((gm + 2));" winenough
run winenough win2 --deadline 20
pycheck window "$T" "$gm" <<'PY'
import sys
from e2e_util import *
T, gm = sys.argv[1], int(sys.argv[2])
r1, r2 = load_json(f"{T}/win1.json"), load_json(f"{T}/win2.json")
s1, s2 = prom_samples(f"{T}/win1.prom"), prom_samples(f"{T}/win2.prom")
check(r1["gate_basis"] == "window" and r1["window_seconds"] == 3600, f"JSON gate_basis {r1['gate_basis']!r}, window_seconds {r1['window_seconds']}")
g1 = [p for p in r1["providers"] if p["provider"] == "gmail"][0]
check(g1["totals"]["window"]["samples"] == gm, f"min_samples 100: gmail window samples {g1['totals']['window']['samples']} == {gm}")
check(find(s1, "inboxprobe_slo_ok", slo="max_latency_p99") == [],
      "min_samples 100: no slo_ok{slo=max_latency_p99} series for any provider")
gp = g1["gates"]["max_latency_p99"]
check(gp["evaluated"] is False and gp["ok"] is None and "min_samples 100" in (gp["reason"] or ""),
      f"min_samples 100: JSON p99 gate not evaluated, reason {gp['reason']!r}")
check(one(s1, "inboxprobe_slo_ok", config="counts", slo="min_inbox_ratio", provider="gmail") == 1,
      "min_samples 100: the ratio gate is still evaluated (window share 0.5 >= 0.5)")
g2 = [p for p in r2["providers"] if p["provider"] == "gmail"][0]
y2 = [p for p in r2["providers"] if p["provider"] == "yahoo"][0]
n2 = g2["totals"]["window"]["samples"]
check(n2 == gm + 2, f"min_samples {gm + 2}: gmail window samples {n2} == {gm + 2} (this round alone: {g2['samples']})")
check(one(s2, "inboxprobe_slo_ok", config="counts", slo="max_latency_p99", provider="gmail") == 1,
      f"min_samples {gm + 2}: slo_ok{{max_latency_p99,gmail}} 1 (evaluated over the window)")
gp = g2["gates"]["max_latency_p99"]
check(gp["evaluated"] is True and gp["ok"] is True and abs(gp["value"] - g2["totals"]["window"]["p99"]) < 1e-9,
      f"JSON p99 gate evaluated on the window's p99 {gp['value']} == totals.window.p99 {g2['totals']['window']['p99']}")
check(find(s2, "inboxprobe_slo_ok", config="counts", slo="max_latency_p99", provider="yahoo") == [],
      f"min_samples {gm + 2}: yahoo ({y2['totals']['window']['samples']} window samples) has no p99 slo_ok")
PY

# ---- 5. Concurrent runs --------------------------------------------------
conf conA '{ address = "inbox@outlook.test"; provider = "outlook"; }'
conf conB '{ address = "inbox@bulkmail.test"; provider = "bulkmail"; }'
"$BIN" run -c "$T/conA.conf" --json "$T/conA.json" --textfile "$T/conA.prom" >"$T/conA.out" 2>&1 &
pa=$!
"$BIN" run -c "$T/conB.conf" --json "$T/conB.json" --textfile "$T/conB.prom" >"$T/conB.out" 2>&1 &
pb=$!
wait $pa; ra=$?
wait $pb; rb=$?
check "two configurations at once: A exits 0" 0 "$ra"
check "two configurations at once: B exits 0" 0 "$rb"
assert "A: outlook probe in inbox, probes_total 1" \
	grep -q '^inboxprobe_probes_total{config="conA",provider="outlook",outcome="inbox"} 1$' "$T/conA.prom"
assert "B: bulkmail probe in inbox, probes_total 1" \
	grep -q '^inboxprobe_probes_total{config="conB",provider="bulkmail",outcome="inbox"} 1$' "$T/conB.prom"
for c in conA conB; do
	check "$c store integrity_check" ok "$(sqlite3 -readonly "$T/$c.db" 'PRAGMA integrity_check')"
done

# The same configuration twice: the first waits for a probe that never
# comes (defer.test answers 451 forever), the second must send nothing.
conf same '{ address = "inbox@defer.test"; provider = "defer"; spam_folder = "INBOX"; }'
n0=$(wc -l <"$RELAY_LOG")
"$BIN" run -c "$T/same.conf" --json "$T/same1.json" --textfile "$T/same1.prom" --deadline 6 \
	>"$T/same1.out" 2>"$T/same1.err" &
p1=$!
# Wait (bounded) until the first run holds the lock: it writes its pid
# into the lock file (never probe the lock with flock(1): that could make
# the first run lose the race and give up).
i=0
while [ $i -lt 40 ] && [ "$(cut -d" " -f1 "$T/same.db.same.lock" 2>/dev/null)" != "$p1" ]; do
	sleep 0.1
	i=$((i + 1))
done
check "first run of 'same' holds the run lock (the pid first in the lock file)" "$p1" "$(cut -d" " -f1 "$T/same.db.same.lock" 2>/dev/null)"
"$BIN" run -c "$T/same.conf" --json "$T/same2.json" --textfile "$T/same2.prom" >"$T/same2.out" 2>"$T/same2.err"
r2=$?
first_alive=0
kill -0 $p1 2>/dev/null && first_alive=1
wait $p1
r1=$?
sed 's/^/# second: /' "$T/same2.err"
check "second run of the same configuration: exit 3" 3 "$r2"
check "the first run was still active when the second ended" 1 "$first_alive"
assert "second run says another run holds the lock (pid $p1)" \
	grep -q "another inboxprobe run holds $T/same.db.same.lock (pid $p1)" "$T/same2.err"
assert "second run wrote no report" sh -c "[ ! -e '$T/same2.json' ] && [ ! -e '$T/same2.prom' ]"
check "first run of 'same' completed (exit 1: defer share 0)" 1 "$r1"
sleep 1
# Probe Message-IDs are <TOKEN@sender.test> (32 hex); the relay logs one per
# submission (cleanup) and per hop. Only the first run's token may be new.
tok1=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["seeds"][0]["token"])' "$T/same1.json")
ids=$(tail -n +"$((n0 + 1))" "$RELAY_LOG" | sed -n 's/.*message-id=<\([0-9a-f]\{32,\}\)@.*/\1/p' | sort -u | tr '\n' ' ')
check "relay log: the only probe submitted meanwhile is the first run's" "$tok1 " "$ids"
assert "relay log: the first run's probe went to inbox@defer.test" grep -q 'to=<inbox@defer.test>' "$RELAY_LOG"
check "'same' store integrity_check" ok "$(sqlite3 -readonly "$T/same.db" 'PRAGMA integrity_check')"
check "'same' store: one probe row (the first run's)" 1 "$(sqlite3 -readonly "$T/same.db" 'SELECT count(*) FROM probes')"

world_result
