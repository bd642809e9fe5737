#!/bin/sh
# The main job end to end: one round of `inboxprobe run` against the real
# loopback mail world (Postfix relay, Dovecot seeds with provider-like spam
# folders, postgrey, a rejecting and a deferring MX). Asserts each seed's
# outcome and folder, the greylisted latency against the relay's log, the
# DSN-explained outcomes, the exit code, and validates the metrics files
# with promtool, node_exporter and the OpenMetrics parser.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
BIN=${top_builddir:-.}/inboxprobe
[ -x "$BIN" ] || { echo "no inboxprobe binary at $BIN"; exit 99; }
world_up

R=$WORLD_DIR/reports

"$BIN" run -c "$WORLD_CONF" >"$WORLD_DIR/run.out" 2>"$WORLD_DIR/run.err"
rc=$?
cat "$WORLD_DIR/run.out"
sed 's/^/stderr: /' "$WORLD_DIR/run.err"
assert "exit code 1 (reject/defer providers fail min_inbox_ratio), got $rc" [ "$rc" = 1 ]

# Per-seed outcomes and folders, from the JSON report.
/usr/bin/python3 - "$R/inboxprobe.json" "$GREYLIST_DELAY" "$RELAY_LOG" <<'PY' >"$WORLD_DIR/checks.out" 2>&1
import json, sys, re, time, datetime
rep = json.load(open(sys.argv[1]))
delay = float(sys.argv[2])
seeds = {s["address"]: s for s in rep["seeds"]}
def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what)
expect = {
  "inbox@gmail.test": ("inbox", "INBOX"), "spam@gmail.test": ("spam", "[Gmail]/Spam"),
  "marker@gmail.test": ("inbox", "INBOX"),
  "inbox@outlook.test": ("inbox", "INBOX"), "spam@outlook.test": ("spam", "Junk"),
  "inbox@yahoo.test": ("inbox", "INBOX"), "spam@yahoo.test": ("spam", "Bulk"),
  "inbox@bulkmail.test": ("inbox", "INBOX"), "spam@bulkmail.test": ("spam", "Bulk Mail"),
  "inbox@intl.test": ("inbox", "INBOX"), "spam@intl.test": ("spam", "Courrier indésirable"),
  "inbox@greylist.test": ("inbox", "INBOX"),
}
for addr, (outcome, folder) in expect.items():
    s = seeds.get(addr)
    check(s is not None, f"{addr} reported")
    if s is None: continue
    check(s["outcome"] == outcome, f"{addr}: outcome {s['outcome']} == {outcome}")
    check(s.get("folder") == folder, f"{addr}: folder {s.get('folder')!r} == {folder!r}")
    check(s["relay_reply"]["code"] == 250 and s["relay_reply"]["queue_id"], f"{addr}: relay 250 with queue id ({s['relay_reply']})")
    lat = s.get("latency_seconds")
    check(lat is not None and 0 <= lat < 60, f"{addr}: latency {lat} in [0,60)")
    check(s.get("cleanup") == "deleted", f"{addr}: cleanup {s.get('cleanup')!r} == 'deleted'")
g = seeds["inbox@greylist.test"]
check(g["latency_seconds"] is not None and g["latency_seconds"] >= delay - 1,
      f"greylisted latency {g['latency_seconds']} >= greylist delay {delay} (INTERNALDATE has 1 s resolution)")
# Compare with the relay's own log: the time Postfix logged status=sent for it.
qid = g["relay_reply"]["queue_id"]
sent = None
for line in open(sys.argv[3], errors="replace"):
    if qid in line and "to=<inbox@greylist.test>" in line and "status=sent" in line:
        m = re.match(r"(\w{3}\s+\d+ \d\d:\d\d:\d\d)", line)
        if m:
            t = datetime.datetime.strptime(f"{datetime.date.today().year} {m.group(1)}", "%Y %b %d %H:%M:%S")
            sent = time.mktime(t.timetuple())
        else:
            m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d:?\d\d|Z)?", line)
            if m:
                sent = datetime.datetime.fromisoformat(m.group(0).replace("Z", "+00:00")).timestamp()
check(sent is not None, f"relay log has status=sent for greylisted queue id {qid}")
if sent is not None:
    logged = sent - g["submit_time_unix"]
    check(abs(logged - g["latency_seconds"]) <= 2.5,
          f"greylisted latency {g['latency_seconds']:.1f}s close to the relay log's {logged:.1f}s")
r = seeds["inbox@reject.test"]
check(r["outcome"] == "rejected", f"reject.test: outcome {r['outcome']} == rejected (DSN after 250)")
check((r.get("dsn") or {}).get("status") == "5.7.1", f"reject.test: DSN status {(r.get('dsn') or {}).get('status')} == 5.7.1")
d = seeds["inbox@defer.test"]
check(d["outcome"] in ("deferred", "missing"), f"defer.test: outcome {d['outcome']} is deferred (delay DSN) or missing")
if d["outcome"] == "deferred":
    check((d.get("dsn") or {}).get("status", "").startswith("4."), f"defer.test: delay DSN status {d.get('dsn')}")
check(rep["exit_code"] == 1, f"JSON exit_code {rep['exit_code']} == 1")
print("done")
PY
pyrc=$?
cat "$WORLD_DIR/checks.out"
assert "JSON checks ran to the end (python exit $pyrc)" [ "$pyrc" = 0 ]
assert "JSON checks: at least 80 ran" [ "$(grep -c '^ok - ' "$WORLD_DIR/checks.out")" -ge 80 ]
assert "JSON assertions all hold" sh -c "! grep -q '^not ok' '$WORLD_DIR/checks.out'"

# The summary names every seed and the failed gates.
for s in inbox@gmail.test spam@yahoo.test inbox@reject.test; do
	assert "summary lists $s" grep -q "$s" "$WORLD_DIR/run.out"
done
assert "summary names the failed gate for reject" grep -q "reject.*min_inbox_ratio" "$WORLD_DIR/run.out"

# The marker seeds go to spam only when the probe carries the marker header
# (probe.headers adds it to every probe of this configuration).
sed -e 's#^name = "world";#name = "marker";\nlock_dir = "'"$WORLD_DIR"'";#' -e 's/^probe = {/probe = {\n  headers = ( "X-Test-Spam: yes" );/' \
	-e "s#$R/inboxprobe#$R/marker#g" -e 's#state = {[^}]*};##' "$WORLD_CONF" |
	/usr/bin/python3 -c '
import re, sys
conf = sys.stdin.read()
# keep only the marker@ seeds
head, seeds = conf.split("seeds = (", 1)
blocks = re.findall(r"\{ address = \"marker@[^}]*\}; \}", seeds)
print(head + "seeds = (\n" + ",\n".join(blocks) + "\n);")' >"$WORLD_DIR/marker.conf"
"$BIN" run -c "$WORLD_DIR/marker.conf" >"$WORLD_DIR/marker.out" 2>&1
rc=$?
cat "$WORLD_DIR/marker.out"
assert "marker run: 5 marker seeds configured" [ "$(grep -c 'address = "marker@' "$WORLD_DIR/marker.conf")" = 5 ]
assert "marker run: every marker seed is spam with the marker header" /usr/bin/python3 -c "
import json
r = json.load(open('$R/marker.json'))
assert len(r['seeds']) == 5, r['seeds']
for s in r['seeds']:
    assert s['outcome'] == 'spam', (s['address'], s['outcome'])
want = {'gmail': '[Gmail]/Spam', 'outlook': 'Junk', 'yahoo': 'Bulk', 'bulkmail': 'Bulk Mail', 'intl': 'Courrier indésirable'}
for s in r['seeds']:
    assert s['folder'] == want[s['provider']], (s['address'], s['folder'])
"
assert "marker run: exit 1 (inbox share 0) (got $rc)" [ "$rc" = 1 ]

# Metrics files: promtool, OpenMetrics parser, node_exporter.
assert "promtool check metrics" sh -c "promtool check metrics < '$R/inboxprobe.prom'"
assert "textfile has spam outcome for spam@gmail.test" \
	grep -q 'inboxprobe_probe_outcome{config="world",seed="spam@gmail.test",provider="gmail",outcome="spam"} 1' "$R/inboxprobe.prom"
assert "textfile has 18 seeds x 6 outcome series" \
	sh -c "[ \$(grep -c '^inboxprobe_probe_outcome{' '$R/inboxprobe.prom') = \$(( $(grep -c 'address =' "$WORLD_CONF") * 6 )) ]"
assert "OpenMetrics parses" /usr/bin/python3 -c "
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
fams = list(text_string_to_metric_families(open('$R/inboxprobe.om.txt').read()))
names = {f.name for f in fams}
assert 'inboxprobe_probes' in names, names
assert 'inboxprobe_probe_outcome' in names, names
"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
prometheus-node-exporter --collector.disable-defaults --collector.textfile \
	--collector.textfile.directory="$R" --web.listen-address="127.0.0.1:$port" \
	</dev/null >"$WORLD_DIR/ne.log" 2>&1 &
nepid=$!
i=0
while [ $i -lt 50 ] && ! curl -sf "http://127.0.0.1:$port/metrics" >"$WORLD_DIR/scrape.txt" 2>/dev/null; do
	sleep 0.2; i=$((i + 1))
done
kill $nepid 2>/dev/null; wait $nepid 2>/dev/null
assert "node_exporter: node_textfile_scrape_error 0" grep -q '^node_textfile_scrape_error 0' "$WORLD_DIR/scrape.txt"
assert "node_exporter serves our series" grep -q '^inboxprobe_placement_ratio{config="world",folder="inbox",provider="gmail"}' "$WORLD_DIR/scrape.txt"

world_result
