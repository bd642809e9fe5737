#!/bin/sh
# grafana_dashboard.sh - contrib/grafana/inboxprobe.json and the Prometheus
# rules against real data: a few `inboxprobe run` rounds against the
# loopback mail world write the textfile; a real node_exporter serves it; a
# real Prometheus scrapes it every second and evaluates
# contrib/prometheus/inboxprobe.rules.yml (its `for:` durations cut to 0s, so
# the test need not wait 15 minutes).
# Asserted:
#   - every panel's PromQL (Grafana variables replaced: $config, $provider
#     match all, $__rate_interval = 5m) parses and returns data, with at least
#     one finite value; the authentication verdicts panel is the exception
#     while no provider of the world writes Authentication-Results (the
#     plain world does not; tests/e2e/auth_world.sh does): it must parse, and
#     return data as soon as inboxprobe_auth_result exists;
#   - the dashboard's template variables find the configuration and the
#     providers;
#   - Prometheus loads the rules and raises InboxprobeInboxPlacementLow for
#     the provider whose probes are rejected (reject.test: 550 5.7.1 after the
#     relay's 250, DSN in the bounce mailbox), with the figure in its summary,
#     and InboxprobeProbesRefused for it; not InboxprobeInboxPlacementLow for
#     outlook (every probe in the inbox).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${top_builddir:-.}/inboxprobe
PY=/usr/bin/python3
[ -x "$BIN" ] || { echo "no inboxprobe binary at $BIN"; exit 99; }
for t in prometheus prometheus-node-exporter curl; do
	command -v $t >/dev/null || { echo "SKIP: $t not installed (.ci/packages)"; exit 77; }
done
world_up
T=$WORLD_DIR/dash
mkdir -p "$T/textfile" "$T/prom"
pids=""
stop_mine() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done
	pids=""
}
trap '_r=$?; stop_mine; (exit $_r); world_down' EXIT
# tally FILE: the "ok - " / "not ok - " lines a Python check printed, counted
# like ours; anything else (a traceback) is a failure too.
tally() {
	_seen=0
	while IFS= read -r _l; do
		case $_l in
		"ok - "*) ok "${_l#ok - }"; _seen=1 ;;
		"not ok - "*) not_ok "${_l#not ok - }"; _seen=1 ;;
		*) echo "$_l" ;;
		esac
	done <"$1"
	grep -q '^Traceback' "$1" && not_ok "python check crashed ($1)"
	[ "$_seen" = 1 ] || not_ok "python check printed no result ($1)"
}

cat >"$T/dash.conf" <<CONF
name = "dash";
relay = { url = "smtp://127.0.0.1:$RELAY_PLAIN_PORT"; tls = "none"; from = "probe@sender.test";
          connect_timeout = 3; timeout = 10; };
probe = { deadline = 20; poll_interval = 1; cleanup = "delete"; };
slo = { min_inbox_ratio = 0.9; max_latency_p99 = 300.0; };
imap_defaults = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$WORLD_CA"; password_file = "$SEED_PASSFILE"; };
bounce_mailbox = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$WORLD_CA"; username = "$BOUNCE_USER";
                   password_file = "$BOUNCE_PASSFILE"; };
state = { path = "$T/state.db"; };
seeds = (
  { address = "inbox@gmail.test"; provider = "gmail"; },
  { address = "spam@gmail.test"; provider = "gmail"; },
  { address = "inbox@outlook.test"; provider = "outlook"; },
  { address = "inbox@reject.test"; provider = "reject"; }
);
CONF

nep=$(free_port)
prometheus-node-exporter --collector.disable-defaults --collector.textfile \
	--collector.textfile.directory="$T/textfile" --web.listen-address="127.0.0.1:$nep" \
	</dev/null >"$T/ne.log" 2>&1 &
pids="$pids $!"
# the alert rules as shipped, but with every `for:` cut to 0s
sed 's/^\([[:space:]]*\)for: .*/\1for: 0s/' "$srcdir/contrib/prometheus/inboxprobe.rules.yml" >"$T/rules.yml"
cat >"$T/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [ "$T/rules.yml" ]
scrape_configs:
  - job_name: node
    static_configs:
      - targets: [ "127.0.0.1:$nep" ]
YML
pp=$(free_port)
prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/prom" \
	--web.listen-address="127.0.0.1:$pp" --log.level=warn </dev/null >"$T/prom.log" 2>&1 &
pids="$pids $!"
i=0
until curl -fsS "http://127.0.0.1:$pp/-/ready" >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -ge 100 ] && { cat "$T/prom.log"; not_ok "Prometheus ready on 127.0.0.1:$pp"; exit 1; }
	sleep 0.2
done
ok "Prometheus ready on 127.0.0.1:$pp, scraping node_exporter on 127.0.0.1:$nep"
out=$(curl -fsS "http://127.0.0.1:$pp/api/v1/rules")
check "Prometheus loaded the rules" ok "$(echo "$out" | $PY -c 'import json,sys; r=json.load(sys.stdin); n=sum(len(g["rules"]) for g in r["data"]["groups"]); print("ok" if n >= 18 else n)')"

# A few rounds, a couple of seconds apart, so that rates have samples.
for round in 1 2 3; do
	"$BIN" run -c "$T/dash.conf" --textfile "$T/textfile/inboxprobe-dash.prom" >"$T/run$round.out" 2>"$T/run$round.err"
	rc=$?
	echo "# round $round: exit $rc"
	sed 's/^/#   /' "$T/run$round.out"
	check "round $round: exit 1 (reject and gmail fail min_inbox_ratio)" 1 "$rc"
	sleep 2
done
sleep 2   # a last scrape and rule evaluation

# Every panel's queries and the template variables, evaluated.
"$PY" - "$srcdir/contrib/grafana/inboxprobe.json" "http://127.0.0.1:$pp" >"$T/queries.out" 2>&1 <<'PY'
import json, math, sys, urllib.parse, urllib.request
dash, base = json.load(open(sys.argv[1])), sys.argv[2]
def get(path, **q):
    url = base + path + "?" + urllib.parse.urlencode(q, doseq=True)
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)
def ok(cond, what):
    print(("ok - " if cond else "not ok - ") + what)
def expand(expr):
    return (expr.replace('"$config"', '".*"').replace('"$provider"', '".*"')
                .replace("$__rate_interval", "5m"))
auth = get("/api/v1/query", query="count(inboxprobe_auth_result)")["data"]["result"]
for p in dash["panels"]:
    for t in p["targets"]:
        q = expand(t["expr"])
        try:
            r = get("/api/v1/query", query=q)
        except Exception as e:
            ok(False, f"panel {p['title']!r}: {q}: {e}")
            continue
        res = r["data"]["result"]
        finite = [s for s in res if math.isfinite(float(s["value"][1]))]
        if "inboxprobe_auth_result" in q and not auth:
            ok(r["status"] == "success", f"panel {p['title']!r} parses ({len(res)} series: no provider of this world writes Authentication-Results)")
            continue
        ok(r["status"] == "success" and finite,
           f"panel {p['title']!r} {t['refId']}: {len(res)} series, {len(finite)} finite, e.g. "
           + (f"{finite[0]['metric']} = {finite[0]['value'][1]}" if finite else "none"))
for v in dash["templating"]["list"]:
    if v["type"] != "query":
        continue
    d = v["definition"]
    label = d[d.rindex(",") + 1:-1].strip()
    match = d[len("label_values("):d.rindex(",")].replace('"$config"', '".*"')
    vals = get(f"/api/v1/label/{label}/values", **{"match[]": match})["data"]
    ok(vals, f"variable ${v['name']}: {vals}")
PY
tally "$T/queries.out"

# The alerts Prometheus raised.
i=0
while :; do
	curl -fsS "http://127.0.0.1:$pp/api/v1/alerts" >"$T/alerts.json"
	grep -q '"InboxprobeInboxPlacementLow"' "$T/alerts.json" && grep -q '"firing"' "$T/alerts.json" && break
	i=$((i + 1))
	[ $i -ge 20 ] && break
	sleep 0.5
done
"$PY" - "$T/alerts.json" >"$T/alerts.out" 2>&1 <<'PY'
import json, sys
alerts = json.load(open(sys.argv[1]))["data"]["alerts"]
def ok(cond, what):
    print(("ok - " if cond else "not ok - ") + what)
def find(name, **labels):
    return [a for a in alerts if a["labels"].get("alertname") == name and a["state"] == "firing"
            and all(a["labels"].get(k) == v for k, v in labels.items())]
for a in alerts:
    print(f"# {a['state']}: {a['labels']} {a['annotations'].get('summary')}")
p = find("InboxprobeInboxPlacementLow", provider="reject", config="dash")
ok(len(p) == 1, "InboxprobeInboxPlacementLow firing for provider reject (config dash)")
if p:
    ok(p[0]["annotations"]["summary"] == "Inbox placement at reject is 0% (dash)", f"its summary: {p[0]['annotations']['summary']!r}")
    ok(p[0]["annotations"]["runbook_url"].endswith("runbook.md#inboxprobeinboxplacementlow"), "its runbook_url")
ok(not find("InboxprobeInboxPlacementLow", provider="outlook"), "no placement alert for outlook (inbox 100%)")
ok(find("InboxprobeProbesRefused", provider="reject", outcome="rejected"), "InboxprobeProbesRefused firing for reject (rejected)")
PY
tally "$T/alerts.out"

echo "# $WORLD_CHECKS checks, $WORLD_FAILS failed"
[ "$WORLD_FAILS" = 0 ]
