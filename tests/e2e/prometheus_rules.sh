#!/bin/sh
# prometheus_rules.sh - contrib/prometheus/inboxprobe.rules.yml checked by
# Prometheus' own tool:
#   promtool check rules   (syntax, PromQL, templates)
#   promtool test rules    (contrib/prometheus/inboxprobe.rules.test.yml:
#                           each alert fires, stays silent and resolves)
# and by this script: every alert has a firing case and a silent case in
# the unit tests, keeps config and provider in its labels there, carries
# summary, description and a runbook_url whose anchor is a heading of
# docs/runbook.md; the summary's verdict lines point at existing anchors.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v promtool >/dev/null || { echo "SKIP: promtool not installed (Debian package prometheus)"; exit 77; }
d=$srcdir/contrib/prometheus

out=$(promtool check rules "$d/inboxprobe.rules.yml" 2>&1)
rc=$?
echo "$out" | sed 's/^/# /'
check "promtool check rules: exit 0" 0 "$rc"
out=$(cd "$d" && promtool test rules inboxprobe.rules.test.yml 2>&1)
rc=$?
echo "$out" | sed 's/^/# /'
check "promtool test rules: exit 0" 0 "$rc"

out=$(/usr/bin/python3 - "$d/inboxprobe.rules.yml" "$d/inboxprobe.rules.test.yml" "$srcdir/docs/runbook.md" "$srcdir/reports/summary.c" <<'PY' 2>&1
import re, sys, yaml
rules, tests, runbook, summary = sys.argv[1:5]
def anchor(h):   # GitHub's heading anchors
    h = h.strip().lower()
    h = re.sub(r"[^\w\- ]", "", h)
    return h.replace(" ", "-")
anchors = {anchor(l.lstrip("#")) for l in open(runbook, encoding="utf-8") if l.startswith("#")}
alerts = [r for g in yaml.safe_load(open(rules))["groups"] for r in g["rules"] if "alert" in r]
t = yaml.safe_load(open(tests))
fires, silent = {}, set()
for case in t["tests"]:
    for a in case.get("alert_rule_test", []):
        if a.get("exp_alerts"):
            fires.setdefault(a["alertname"], []).extend(a["exp_alerts"])
        else:
            silent.add(a["alertname"])
bad = 0
def fail(msg):
    global bad
    bad += 1
    print("FAIL:", msg)
for r in alerts:
    n = r["alert"]
    ann = r.get("annotations", {})
    for k in ("summary", "description", "runbook_url"):
        if not ann.get(k):
            fail(f"{n}: no {k}")
    if "{{ $value" not in ann.get("summary", "") + ann.get("description", ""):
        fail(f"{n}: the figure ($value) is not in summary/description")
    url = ann.get("runbook_url", "")
    if "#" not in url or url.split("#", 1)[1] not in anchors:
        fail(f"{n}: runbook_url {url} has no matching heading in docs/runbook.md")
    if n not in fires:
        fail(f"{n}: no unit test where it fires")
    if n not in silent:
        fail(f"{n}: no unit test where it stays silent or resolves")
    for e in fires.get(n, []):
        if not {"config", "provider"} <= set(e.get("exp_labels", {})):
            fail(f"{n}: fires without config and provider labels: {e.get('exp_labels')}")
for a in re.findall(r"runbook: %s#([a-z0-9-]+)", open(summary).read()):
    if a not in anchors:
        fail(f"summary.c verdict line: anchor {a} not in docs/runbook.md")
print(f"{len(alerts)} alerts checked, {bad} problems")
sys.exit(1 if bad else 0)
PY
)
rc=$?
echo "$out" | sed 's/^/# /'
check "every alert: figure, runbook anchor, config+provider, firing and silent tests" 0 "$rc"

echo "# $WORLD_CHECKS checks, $WORLD_FAILS failed"
[ "$WORLD_FAILS" = 0 ]
