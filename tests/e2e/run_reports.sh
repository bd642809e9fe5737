#!/bin/sh
# The CI-facing reports of real rounds against the loopback mail world
# (one world for the whole script):
#  6. JUnit: a round with inbox, spam, rejected (a DSN after the relay's
#     250, attributed via bounce_mailbox) and error (wrong IMAP password)
#     seeds validates against tests/data/junit.xsd; one testsuite per
#     provider, one testcase per seed, <failure>/<error> per outcome, and
#     tests/failures/errors attributes equal to the counts;
#  7. Nagios (--format nagios): OK/exit 0 on an all-inbox round, CRITICAL/
#     exit 2 naming the failed gate, WARNING/exit 1 with an unmeasured seed
#     and no gate failure; exactly one stdout line; every perfdata item
#     matches the Nagios plugin guidelines;
#  8. JSON: every field of docs/json-report.md (its tables are parsed) is
#     present with the documented type, in each round's report.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/pycheck.sh"
SRC=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${top_builddir:-.}/inboxprobe
[ -x "$BIN" ] || { echo "no inboxprobe binary at $BIN"; exit 99; }
command -v xmllint >/dev/null || { echo "SKIP: no xmllint (apt-get install libxml2-utils)"; exit 77; }
world_up
T=$WORLD_DIR/reporttests
mkdir -p "$T"

# conf NAME SEEDS [SLO]: a configuration writing every report into $T/NAME.*.
conf() {
	cat >"$T/$1.conf" <<CONF
name = "$1";
lock_dir = "$T";
relay = { url = "smtp://127.0.0.1:$RELAY_PLAIN_PORT"; tls = "none"; from = "probe@sender.test";
          connect_timeout = 3; timeout = 10; };
probe = { deadline = 25; poll_interval = 1; cleanup = "delete"; };
slo = { ${3:-min_inbox_ratio = 0.5; max_latency_p99 = 60.0;} };
report = { json = "$T/$1.json"; junit = "$T/$1.xml"; textfile = "$T/$1.prom"; };
imap_defaults = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$WORLD_CA"; password_file = "$SEED_PASSFILE"; };
bounce_mailbox = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$WORLD_CA";
                   username = "$BOUNCE_USER"; password_file = "$BOUNCE_PASSFILE"; };
seeds = ( $2 );
CONF
}
# run NAME [ARGS...]: one round, stdout in $T/NAME.out; sets rc.
run() {
	_n=$1
	shift
	"$BIN" run -c "$T/$_n.conf" "$@" >"$T/$_n.out" 2>"$T/$_n.err"
	rc=$?
	echo "# $_n: exit $rc"
	sed 's/^/#   /' "$T/$_n.out"
}

# ---- 6. JUnit ------------------------------------------------------------
conf mixed '{ address = "inbox@gmail.test"; provider = "gmail"; },
  { address = "spam@gmail.test"; provider = "gmail"; },
  { address = "inbox@reject.test"; provider = "reject"; },
  { address = "inbox@outlook.test"; provider = "outlook"; imap = { password_file = "'"$WRONG_PASSFILE"'"; }; }'
run mixed
check "mixed round: exit 1 (gmail 0.5 passes, reject inbox share 0 fails)" 1 "$rc"
assert "JUnit validates against tests/data/junit.xsd" \
	xmllint --noout --schema "$SRC/tests/data/junit.xsd" "$T/mixed.xml"
pycheck junit "$T/mixed.xml" "$T/mixed.json" <<'PY'
import sys
import xml.etree.ElementTree as ET
from e2e_util import *
root = ET.parse(sys.argv[1]).getroot()
rep = load_json(sys.argv[2])
outcome = {s["address"]: s["outcome"] for s in rep["seeds"]}
print("# outcomes:", outcome)
check(outcome == {"inbox@gmail.test": "inbox", "spam@gmail.test": "spam",
                  "inbox@reject.test": "rejected", "inbox@outlook.test": "error"},
      "JSON outcomes: inbox, spam, rejected (DSN), error (IMAP login)")
check(root.tag == "testsuites", f"root element {root.tag}")
suites = root.findall("testsuite")
names = [s.get("name") for s in suites]
check(sorted(names) == ["inboxprobe.gmail", "inboxprobe.outlook", "inboxprobe.reject"],
      f"one testsuite per provider: {names}")
seedcases = {}
T = F = E = 0
for s in suites:
    cases = s.findall("testcase")
    nf = sum(1 for c in cases if c.find("failure") is not None)
    ne = sum(1 for c in cases if c.find("error") is not None)
    check(int(s.get("tests")) == len(cases) and int(s.get("failures")) == nf and int(s.get("errors")) == ne,
          f"{s.get('name')}: tests/failures/errors {s.get('tests')}/{s.get('failures')}/{s.get('errors')} == {len(cases)}/{nf}/{ne}")
    T, F, E = T + len(cases), F + nf, E + ne
    prov = s.get("name").split(".", 1)[1]
    for c in cases:
        check(c.get("classname") == s.get("name"), f"testcase {c.get('name')} classname {c.get('classname')}")
        if c.get("name").startswith("slo "):
            continue
        check(c.get("name") not in seedcases, f"testcase {c.get('name')} appears once")
        seedcases[c.get("name")] = c
        sd = [x for x in rep["seeds"] if x["address"] == c.get("name")][0]
        check(sd["provider"] == prov, f"{c.get('name')} is in its provider's suite ({prov})")
check(sorted(seedcases) == sorted(outcome), f"one testcase per seed: {sorted(seedcases)}")
check((int(root.get("tests")), int(root.get("failures")), int(root.get("errors"))) == (T, F, E),
      f"<testsuites> tests/failures/errors {root.get('tests')}/{root.get('failures')}/{root.get('errors')} == {T}/{F}/{E}")
c = seedcases.get("inbox@gmail.test")
check(c is not None and c.find("failure") is None and c.find("error") is None, "inbox seed passes")
c = seedcases.get("spam@gmail.test")
f = c.find("failure") if c is not None else None
check(f is not None and f.get("type") == "spam" and f.get("message", "").startswith("spam"),
      f"spam seed: <failure type={f is not None and f.get('type')!r} message={f is not None and f.get('message')!r}> names the outcome")
c = seedcases.get("inbox@reject.test")
f = c.find("failure") if c is not None else None
check(f is not None and f.get("type") == "rejected" and "rejected" in f.get("message", ""),
      f"rejected seed: <failure type={f is not None and f.get('type')!r} message={f is not None and f.get('message')!r}>")
c = seedcases.get("inbox@outlook.test")
e = c.find("error") if c is not None else None
check(e is not None and c.find("failure") is None and "auth" in (e.get("message") or "").lower(),
      f"error seed: <error message={e is not None and e.get('message')!r}>")
# Gate testcases: one per evaluated gate, a failure where it fails.
gates = {(p["provider"], g): v for p in rep["providers"] for g, v in p["gates"].items()}
for s in suites:
    prov = s.get("name").split(".", 1)[1]
    got = {c.get("name")[4:]: c for c in s.findall("testcase") if c.get("name").startswith("slo ")}
    want = {g for (p, g), v in gates.items() if p == prov and v["evaluated"]}
    check(set(got) == want, f"{prov}: slo testcases {sorted(got)} == evaluated gates {sorted(want)}")
    for g, c in got.items():
        check((c.find("failure") is None) == bool(gates[(prov, g)]["ok"]), f"{prov} slo {g}: failure iff the gate failed")
PY

# ---- 7. Nagios -------------------------------------------------------------
# nagios_check NAME: exactly one stdout line; perfdata items per the
# plugin guidelines: 'label'=value[UOM];[warn];[crit];[min];[max].
nagios_check() {
	pycheck "nagios $1" "$T/$1.out" <<'PY'
import re, sys
from e2e_util import check
lines = open(sys.argv[1]).read().split("\n")
check(len(lines) == 2 and lines[1] == "", f"{sys.argv[1]}: exactly one stdout line ({len(lines) - 1})")
line = lines[0]
check(" | " in line, "status line has a perfdata part after ' | '")
text, _, perf = line.partition(" | ")
check("|" not in text, "no '|' in the status text")
num = r"-?[0-9]+(\.[0-9]+)?"
rng = rf"@?(~|{num})?(:({num})?)?"
item = re.compile(rf"^('([^'=]|'')+'|[^'= ]+)={num}(s|ms|us|%|B|KB|MB|TB|c)?(;({rng})?){{0,2}}(;({num})?){{0,2}}$")
items = re.findall(r"(?:'(?:[^']|'')*'|[^' ]+)=\S*", perf)
check(len(items) > 0 and " ".join(items) == perf.strip(), f"perfdata splits into {len(items)} items")
for it in items:
    check(item.match(it) is not None, f"perfdata item {it!r} matches 'label'=value[UOM];[warn];[crit];[min];[max]")
print("# " + line)
PY
}
conf allinbox '{ address = "inbox@gmail.test"; provider = "gmail"; },
  { address = "inbox@yahoo.test"; provider = "yahoo"; }' 'min_inbox_ratio = 0.9; max_latency_p99 = 60.0; max_missing = 0;'
run allinbox --format nagios
check "nagios all inbox: exit 0" 0 "$rc"
assert "nagios all inbox: INBOXPROBE OK" grep -q '^INBOXPROBE OK - 2/2 seeds measured' "$T/allinbox.out"
nagios_check allinbox
for p in gmail yahoo; do
	assert "nagios all inbox: perfdata inbox_ratio_$p=1 with crit 0.9:" grep -q "'inbox_ratio_$p'=1;;0.9:;0;1" "$T/allinbox.out"
	assert "nagios all inbox: perfdata missing_$p=0 with crit 0" grep -q "'missing_$p'=0;;0;0;" "$T/allinbox.out"
	assert "nagios all inbox: perfdata measured_$p=1 of 1" grep -q "'measured_$p'=1;;;0;1" "$T/allinbox.out"
	assert "nagios all inbox: perfdata p99_$p in seconds, crit 60" grep -Eq "'p99_$p'=[0-9.]+s;;60;0;" "$T/allinbox.out"
done

conf gatefail '{ address = "inbox@yahoo.test"; provider = "yahoo"; },
  { address = "spam@yahoo.test"; provider = "yahoo"; }' 'min_inbox_ratio = 0.9; max_latency_p99 = 60.0;'
run gatefail --format nagios
check "nagios gate failure: exit 2" 2 "$rc"
assert "nagios gate failure: INBOXPROBE CRITICAL naming yahoo min_inbox_ratio 0.5 < 0.9" \
	grep -q '^INBOXPROBE CRITICAL - gate failed: yahoo min_inbox_ratio 0.5 < 0.9' "$T/gatefail.out"
nagios_check gatefail

conf unmeasured '{ address = "inbox@gmail.test"; provider = "gmail"; },
  { address = "inbox@outlook.test"; provider = "outlook"; imap = { password_file = "'"$WRONG_PASSFILE"'"; }; }'
run unmeasured --format nagios
check "nagios unmeasured seed, no gate failure: exit 1" 1 "$rc"
assert "nagios unmeasured seed: INBOXPROBE WARNING naming inbox@outlook.test" \
	grep -q '^INBOXPROBE WARNING - 1/2 seeds measured, unmeasured: inbox@outlook.test' "$T/unmeasured.out"
assert "nagios unmeasured seed: the password is not printed" \
	sh -c "! grep -qF \"\$(cat '$WRONG_PASSFILE')\" '$T/unmeasured.out' '$T/unmeasured.err'"
nagios_check unmeasured
# The same round in text format: the CI exit codes (docs/SPEC.md) differ from Nagios'.
run unmeasured
check "text format, unmeasured seed: exit 3" 3 "$rc"
run gatefail
check "text format, gate failure: exit 1" 1 "$rc"
run allinbox
check "text format, all inbox: exit 0" 0 "$rc"
# Issue 12 section 6, one truth per run: a report file that cannot be
# written changes only the exit code (and the messages), never what the
# other files say, whichever is written first.
cp "$T/allinbox.conf" "$T/wfail.conf"
sed -i "s/allinbox/wfail/g" "$T/wfail.conf"
run wfail --textfile "$T/missing-dir/x.prom" --json "$T/wfail1.json"
check "textfile write fails: exit 3" 3 "$rc"
assert "textfile write fails: message names it" grep -q 'missing-dir/x.prom' "$T/wfail.err"
check "textfile write fails: the JSON written after it still says exit_code 0" 0 \
	"$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["exit_code"])' "$T/wfail1.json")"
run wfail --json "$T/missing-dir/x.json" --textfile "$T/wfail2.prom"
check "JSON write fails: exit 3" 3 "$rc"
assert "JSON write fails: the textfile written before it says last_run_success 1" \
	grep -q '^inboxprobe_last_run_success{config="wfail"} 1$' "$T/wfail2.prom"
assert "JSON write fails: the summary says why the exit is 3" grep -q 'a report could not be written' "$T/wfail.out"

# ---- 8. JSON against docs/json-report.md -----------------------------------
pycheck json "$SRC/docs/json-report.md" "$T/mixed.json" "$T/gatefail.json" "$T/allinbox.json" "$T/unmeasured.json" <<'PY'
import re, sys
from e2e_util import *
doc = open(sys.argv[1], encoding="utf-8").read()

def table(section):
    """Rows (fields, types) of the first table under the '## section' heading."""
    m = re.search(r"^## " + re.escape(section) + r"\s*$(.*?)(?=^## |\Z)", doc, re.M | re.S)
    rows = []
    for line in m.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        rows.append((re.findall(r"`([a-z_0-9]+)`", cells[0]), cells[1].split("/") if cells[1] else ["string"]))
    return rows

PYTYPE = {"string": lambda v: isinstance(v, str), "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          "integer": lambda v: isinstance(v, int) and not isinstance(v, bool), "bool": lambda v: isinstance(v, bool),
          "array": lambda v: isinstance(v, list), "object": lambda v: isinstance(v, dict), "null": lambda v: v is None}
top, seeds, provs = table("Top level"), table("`seeds[]`"), table("`providers[]`")
check(len(top) >= 10 and len(seeds) >= 10 and len(provs) >= 8,
      f"docs/json-report.md tables parsed: {len(top)} top-level, {len(seeds)} seed, {len(provs)} provider rows")
unknown = {t for _, ts in top + seeds + provs for t in ts if t not in PYTYPE}
check(not unknown, f"every documented type is known: {unknown or 'yes'}")

def conforms(obj, rows, where):
    bad = []
    for fields, types in rows:
        for f in fields:
            if f not in obj:
                bad.append(f"{f} missing")
            elif not any(PYTYPE.get(t, lambda v: False)(obj[f]) for t in types):
                bad.append(f"{f}={obj[f]!r} not {'/'.join(types)}")
    check(not bad, f"{where}: every documented field present with its type {bad}")

for path in sys.argv[2:]:
    r = load_json(path)
    name = path.rsplit("/", 1)[1]
    conforms(r, top, name)
    check(r["schema"] == "inboxprobe-report/1", f"{name}: schema {r['schema']!r}")
    check({0: "ok", 1: "gate_failed", 3: "unknown"}.get(r["exit_code"]) == r["verdict"],
          f"{name}: verdict {r['verdict']!r} matches exit_code {r['exit_code']}")
    check(abs(r["duration_seconds"] - (r["ended_unix"] - r["started_unix"])) < 1e-3, f"{name}: duration == ended - started")
    for s in r["seeds"]:
        conforms(s, seeds, f"{name} seed {s['address']}")
        if s["relay_reply"] is not None:
            rr = s["relay_reply"]
            check(set(rr) >= {"code", "enhanced", "text", "queue_id", "stage"} and isinstance(rr["code"], int)
                  and rr["stage"] in (None, "connect", "mail", "rcpt", "data"), f"{name} seed {s['address']}: relay_reply {rr}")
        if s["dsn"] is not None:
            check(set(s["dsn"]) >= {"action", "status", "remote_mta", "diagnostic"}, f"{name} seed {s['address']}: dsn fields {sorted(s['dsn'])}")
        check((s["folder"] is None) == (s["outcome"] not in ("inbox", "spam")), f"{name} seed {s['address']}: folder null unless found")
    for p in r["providers"]:
        conforms(p, provs, f"{name} provider {p['provider']}")
        check(set(p["counts"]) == set(OUTCOMES) and sum(p["counts"].values()) == sum(1 for s in r["seeds"] if s["provider"] == p["provider"]),
              f"{name} provider {p['provider']}: counts has the six outcomes and sums to its seeds")
        sh = p["shares"]
        check(set(sh) == set(OUTCOMES[:5]) and (abs(sum(sh.values()) - 1) < 1e-9 if p["measured"] else sum(sh.values()) == 0),
              f"{name} provider {p['provider']}: shares {sh} sum to 1 (0 when nothing measured)")
        for g in ("min_inbox_ratio", "max_latency_p99", "max_missing"):
            go = p["gates"].get(g)
            check(isinstance(go, dict) and set(go) >= {"evaluated", "ok", "value", "threshold", "reason"}
                  and isinstance(go["evaluated"], bool) and (go["ok"] is None) == (not go["evaluated"])
                  and (go["reason"] is None) == go["evaluated"], f"{name} provider {p['provider']}: gate {g} {go}")
        check(p["totals"] is None, f"{name} provider {p['provider']}: totals null without a state store")
PY

world_result
