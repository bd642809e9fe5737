#!/bin/sh
# reports_consumers.sh - the report files of a realistic round (written by
# tests/tools/reportgen) checked by the programs that really consume them:
#   promtool check metrics            (Prometheus text 0.0.4)
#   prometheus-node-exporter textfile (scraped over loopback HTTP)
#   prometheus_client's OpenMetrics parser
#   xmllint against tests/data/junit.xsd (Jenkins/Ant JUnit)
#   python3 -m json.tool and a schema spot check (docs/json-report.md)
# Also: the files are byte-identical under a comma-decimal locale.
set -u
srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=${top_builddir:-.}
GEN=$builddir/tests/tools/reportgen
[ -x "$GEN" ] || { echo "SKIP: $GEN not built (make check builds it)"; exit 77; }
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3   # the Debian one has prometheus_client

tmp=$(mktemp -d)
nepid=""
cleanup() { [ -n "$nepid" ] && kill "$nepid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM
fail=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }

mkdir "$tmp/c" "$tmp/de" "$tmp/nototals" "$tmp/window" "$tmp/textfile"
code=$(LC_ALL=C "$GEN" "$tmp/c") || { echo "FAIL: reportgen"; exit 1; }
[ "$code" = 1 ] && ok "reportgen round exit code 1 (gates failed)" || bad "reportgen exit code $code, want 1"
"$GEN" "$tmp/nototals" --no-totals >/dev/null || bad "reportgen --no-totals"
"$GEN" "$tmp/window" --window >/dev/null || bad "reportgen --window"

# --- locale independence ---
if locale -a 2>/dev/null | grep -qi '^de_DE\.utf-\?8$'; then
	LC_ALL=de_DE.UTF-8 "$GEN" "$tmp/de" >/dev/null || bad "reportgen under de_DE"
	for f in inboxprobe.prom inboxprobe.om.txt inboxprobe.json inboxprobe.junit.xml summary.txt nagios.txt; do
		cmp -s "$tmp/c/$f" "$tmp/de/$f" && ok "$f identical under de_DE.UTF-8" || bad "$f differs under de_DE.UTF-8"
	done
else
	echo "note: no de_DE.UTF-8 locale (apt-get install locales; locale-gen), locale check skipped"
fi

# --- Prometheus text 0.0.4: promtool ---
if command -v promtool >/dev/null; then
	for d in c nototals window; do
		if out=$(promtool check metrics <"$tmp/$d/inboxprobe.prom" 2>&1) && [ -z "$out" ]; then
			ok "promtool check metrics ($d) clean"
		else
			bad "promtool check metrics ($d): $out"
		fi
	done
else
	echo "note: promtool not installed (Debian package prometheus), skipped"
fi

# --- node_exporter textfile collector ---
if command -v prometheus-node-exporter >/dev/null && command -v curl >/dev/null; then
	cp "$tmp/c/inboxprobe.prom" "$tmp/textfile/inboxprobe.prom"
	port=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
	prometheus-node-exporter --collector.disable-defaults --collector.textfile \
		--collector.textfile.directory="$tmp/textfile" --web.listen-address="127.0.0.1:$port" \
		</dev/null >"$tmp/ne.log" 2>&1 &
	nepid=$!
	i=0
	while ! curl -fsS "http://127.0.0.1:$port/metrics" -o "$tmp/scrape" 2>/dev/null; do
		i=$((i + 1))
		[ $i -ge 50 ] && break
		sleep 0.1
	done
	if [ -s "$tmp/scrape" ]; then
		grep -qx 'node_textfile_scrape_error 0' "$tmp/scrape" && ok "node_exporter: node_textfile_scrape_error 0" \
			|| bad "node_exporter scrape error: $(grep node_textfile_scrape_error "$tmp/scrape") $(cat "$tmp/ne.log")"
		# node_exporter sorts labels by name
		for want in \
			'inboxprobe_probe_outcome{config="otp",outcome="spam",provider="gmail",seed="seed2@gmail.example"} 1' \
			'inboxprobe_probe_outcome{config="otp",outcome="inbox",provider="local \"lab\"",seed="\"odd\\\"seed\"@example.org"} 1' \
			'inboxprobe_probes_total{config="otp",outcome="inbox",provider="gmail"} 100' \
			'inboxprobe_delivery_latency_seconds_bucket{config="otp",provider="gmail",le="+Inf"} 111' \
			'inboxprobe_delivery_latency_seconds_count{config="otp",provider="gmail"} 111' \
			'inboxprobe_delivery_latency_window_seconds{config="otp",provider="gmail",quantile="0.99"} 40' \
			'inboxprobe_slo_ok{config="otp",provider="gmail",slo="min_inbox_ratio"} 0' \
			'inboxprobe_last_run_success{config="otp"} 0' \
			'# TYPE inboxprobe_probes_total counter' \
			'# TYPE inboxprobe_delivery_latency_seconds histogram'; do
			grep -qxF "$want" "$tmp/scrape" && ok "node_exporter serves: $want" || bad "node_exporter lacks: $want"
		done
	else
		bad "node_exporter did not answer on 127.0.0.1:$port: $(cat "$tmp/ne.log")"
	fi
	kill "$nepid" 2>/dev/null
	wait "$nepid" 2>/dev/null
	nepid=""
else
	echo "note: prometheus-node-exporter or curl not installed, skipped"
fi

# --- OpenMetrics 1.0: the prometheus_client parser ---
if $PY -c 'import prometheus_client.openmetrics.parser' 2>/dev/null; then
	for d in c nototals window; do
		if out=$($PY - "$tmp/$d/inboxprobe.om.txt" <<'EOF' 2>&1
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
text = open(sys.argv[1], encoding="utf-8").read()
fams = {f.name: f for f in text_string_to_metric_families(text)}
assert text.endswith("# EOF\n"), "no # EOF"
assert "inboxprobe_probe_outcome" in fams
if "inboxprobe_probes" in fams:
    f = fams["inboxprobe_probes"]
    assert f.type == "counter", f.type
    assert all(s.name == "inboxprobe_probes_total" for s in f.samples)
    h = fams["inboxprobe_delivery_latency_seconds"]
    assert h.type == "histogram" and h.unit == "seconds"
    inf = [s for s in h.samples if s.name.endswith("_bucket") and s.labels["le"] == "+Inf"]
    cnt = [s for s in h.samples if s.name.endswith("_count")]
    assert inf and [s.value for s in inf] == [s.value for s in cnt]
print(len(fams))
EOF
); then
			ok "OpenMetrics parser ($d): $out families"
		else
			bad "OpenMetrics parser ($d): $out"
		fi
	done
else
	echo "note: python3-prometheus-client not installed, OpenMetrics check skipped"
fi

# --- HELP text identical in both files ---
grep '^# HELP' "$tmp/c/inboxprobe.prom" | sed 's/^# HELP \([a-z_]*\) //' >"$tmp/help.prom"
grep '^# HELP' "$tmp/c/inboxprobe.om.txt" | sed 's/^# HELP \([a-z_]*\) //' >"$tmp/help.om"
cmp -s "$tmp/help.prom" "$tmp/help.om" && ok "HELP texts identical" || bad "HELP texts differ"

# --- JUnit ---
if command -v xmllint >/dev/null; then
	for d in c nototals window; do
		if out=$(xmllint --noout --schema "$srcdir/tests/data/junit.xsd" "$tmp/$d/inboxprobe.junit.xml" 2>&1); then
			ok "xmllint junit.xsd ($d)"
		else
			bad "xmllint ($d): $out"
		fi
	done
else
	echo "note: xmllint not installed (libxml2-utils), skipped"
fi

# --- JSON ---
for d in c nototals window; do
	if out=$($PY -m json.tool "$tmp/$d/inboxprobe.json" 2>&1 >/dev/null); then
		ok "json.tool ($d)"
	else
		bad "json.tool ($d): $out"
	fi
done
if out=$($PY - "$tmp/c/inboxprobe.json" <<'EOF' 2>&1
import json, sys
r = json.load(open(sys.argv[1], encoding="utf-8"))
assert r["schema"] == "inboxprobe-report/1"
assert r["exit_code"] == 1 and r["verdict"] == "gate_failed"
assert len(r["seeds"]) == 8
odd = [s for s in r["seeds"] if s["provider"] == 'local "lab"'][0]
assert odd["address"] == '"odd\\"seed"@example.org', odd["address"]
assert odd["folder"] == "Courrier ind\u00e9sirable"
assert odd["relay_reply"]["text"] == "queued\nsecond line"
g = [p for p in r["providers"] if p["provider"] == "gmail"][0]
assert abs(sum(g["shares"].values()) - 1) < 1e-12
assert g["gates"]["min_inbox_ratio"]["ok"] is False
assert g["totals"]["latency_histogram"]["count"] == 111
y = [p for p in r["providers"] if p["provider"] == "yahoo"][0]
assert y["gates"]["max_latency_p99"]["evaluated"] is False and y["p99"] is None
print("ok")
EOF
); then
	ok "JSON schema spot check"
else
	bad "JSON schema spot check: $out"
fi

# --- summary and Nagios ---
grep -q '^FAIL gmail min_inbox_ratio: 0.667 < 0.950$' "$tmp/c/summary.txt" && ok "summary names the failed gate" \
	|| bad "summary: $(cat "$tmp/c/summary.txt")"
[ "$(wc -l <"$tmp/c/nagios.txt")" -eq 1 ] && grep -q '^INBOXPROBE CRITICAL - ' "$tmp/c/nagios.txt" \
	&& ok "nagios: one CRITICAL line" || bad "nagios: $(cat "$tmp/c/nagios.txt")"

exit $fail
