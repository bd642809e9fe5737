#!/bin/sh
# Gmail tabs and Gmail's Authentication-Results, against the scripted IMAP
# peer (tests/peers/imap_peer.py; no open server implements X-GM-RAW):
# a round finds the probe in INBOX, asks UID SEARCH UID 9 X-GM-RAW
# "category:..." for each tab (Gmail's replies), fetches the header with
# BODY.PEEK (no \Seen), trusts only mx.google.com's field above the relay's
# own Received field (queue id of tests/peers/smtp_peer.py's 250), and
# reports tab, verdicts and path in the JSON, the summary, the metrics and
# the min_primary_ratio / require_auth gates. Exit 0 pass, 1 fail, 99 error.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top_srcdir/tests/e2e/common.sh"
peer_test_init gmailtabs
PEER=$top_srcdir/tests/peers/imap_peer.py
need_built "$BIN"

start_peer() {
	REC=$TMP/$1.rec
	rm -f "$REC"
	peer_start "$PEER" "$1" --record "$REC" --lifetime 40
}
smtp_peer_start --log "$TMP/smtp.log" --lifetime 120

cmds() { cut -d' ' -f2- "$REC"; }
sent() { if cmds | grep -Eqx -- "$2"; then ok "$1"; else not_ok "$1 (no '$2' in: $(cmds | tr '\n' '|'))"; fi; }

# run NAME: one round against the peer; sets RC, J, OUT
run() {
	cat >"$TMP/$1.conf" <<CONF
name = "tabs_$1";
relay = { url = "smtp://127.0.0.1:$SMTP_PORT"; tls = "none"; from = "probe@example.test";
          connect_timeout = 3; timeout = 5; };
probe = { deadline = 6; poll_interval = 1; cleanup = "keep"; };
slo = { min_primary_ratio = 0.5; require_auth = ( "spf", "dkim", "dmarc" ); };
providers = { gmail = { authserv_id = ( "mx.google.com" ); }; };
report = { json = "$TMP/$1.json"; textfile = "$TMP/$1.prom"; };
imap_defaults = { url = "imap://127.0.0.1:$PORT"; tls = "none"; password_file = "$TMP/seed.pass"; };
seeds = ( { address = "seed@gmail.example"; provider = "gmail"; imap = { username = "seed@gmail.example"; }; } );
CONF
	TMPDIR=$TMP timeout 40 "$BIN" run -c "$TMP/$1.conf" >"$TMP/$1.out" 2>"$TMP/$1.err"
	RC=$?
	J=$TMP/$1.json
	OUT=$TMP/$1.out
}
# j 'STMT; ...; EXPR': Python over the JSON report r; a tuple prints space-separated
j() {
	$PY - "$J" "$1" 2>/dev/null <<'PY'
import json, sys
ns = {"r": json.load(open(sys.argv[1]))}
code = sys.argv[2].split(";")
for c in code[:-1]:
    exec(c.strip(), ns)
v = eval(code[-1].strip(), ns)
print(" ".join(map(str, v)) if isinstance(v, tuple) else v)
PY
}

# ---- 1. the probe sits in Promotions ---------------------------------------
start_peer gmail-tabs
run tabs
check "tabs: outcome inbox" inbox "$(j 'r["seeds"][0]["outcome"]')"
check "tabs: tab promotions" promotions "$(j 'r["seeds"][0]["tab"]')"
sent "tabs: asked category:primary for UID 9 only" 'UID SEARCH UID 9 X-GM-RAW "?category:primary"?'
sent "tabs: asked category:promotions" 'UID SEARCH UID 9 X-GM-RAW "?category:promotions"?'
if cmds | grep -Eq 'X-GM-RAW "?category:social'; then
	not_ok "tabs: stopped at the first category that matched"
else
	ok "tabs: stopped at the first category that matched"
fi
sent "tabs: header fetched with UID and INTERNALDATE in one FETCH, BODY.PEEK, capped" 'UID FETCH 9 \(UID INTERNALDATE BODY\.PEEK\[HEADER\]<0\.262144>\)'
check "tabs: provider tab count" "1 1" "$(j 'r["providers"][0]["tabs"]["promotions"], r["providers"][0]["tabs"]["known"]')"
check "tabs: min_primary_ratio fails (0 of 1 known in primary)" "True False 0" \
	"$(j 'g=r["providers"][0]["gates"]["min_primary_ratio"]; g["evaluated"], g["ok"], g["value"]')"
check "tabs: exit 1 (a gate failed)" 1 "$RC"
grep -q '^FAIL gmail min_primary_ratio: 0.000 < 0.500$' "$OUT" && ok "tabs: summary names the failed gate" ||
	not_ok "tabs: summary names the failed gate: $(cat "$OUT")"
grep -q 'INBOX \[promotions\]' "$OUT" && ok "tabs: summary shows INBOX [promotions]" ||
	not_ok "tabs: summary shows INBOX [promotions]"
grep -qx 'inboxprobe_probe_tab{config="tabs_tabs",seed="seed@gmail.example",provider="gmail",tab="promotions"} 1' "$TMP/tabs.prom" &&
	ok "tabs: probe_tab series" || not_ok "tabs: probe_tab series: $(grep tab "$TMP/tabs.prom")"
grep -qx 'inboxprobe_tab_ratio{config="tabs_tabs",provider="gmail",tab="promotions"} 1' "$TMP/tabs.prom" &&
	ok "tabs: tab_ratio series" || not_ok "tabs: tab_ratio series"
# Gmail's verdicts: only mx.google.com's field above the relay's hop
check "tabs: 2 Authentication-Results fields, 1 trusted (ARC-... is another field)" "2 1" \
	"$(j 'a=r["seeds"][0]["auth"]; a["fields"], a["trusted_fields"]')"
check "tabs: merged verdicts" "spf=pass dkim=pass dmarc=pass" \
	"$(j '" ".join(v["method"]+"="+v["result"] for v in sorted(r["seeds"][0]["auth"]["verdicts"], key=lambda v: ["spf","dkim","dmarc"].index(v["method"])))')"
check "tabs: dkim properties" "example.test sel1" \
	"$(j 'v=[v for v in r["seeds"][0]["auth"]["verdicts"] if v["method"]=="dkim"][0]["properties"]; v["header.i"][1:], v["header.s"]')"
check "tabs: forged dkim=fail below the relay's hop ignored" "[]" \
	"$(j '[v for v in r["seeds"][0]["auth"]["verdicts"] if v["result"]=="fail"]')"
check "tabs: require_auth holds" "True True" "$(j 'g=r["providers"][0]["gates"]["require_auth"]; g["evaluated"], g["ok"]')"
check "tabs: path of 3 hops, the relay's first" "3 True 4XyZ1B2c3Dz" \
	"$(j 'h=r["seeds"][0]["path"]["hops"]; len(h), h[0]["relay"], h[0]["id"]')"
check "tabs: Gmail's hops" "mx.google.com 2002:a05:6a10:8e0a:b0:5a1:2c3e:1f90" \
	"$(j 'h=r["seeds"][0]["path"]["hops"]; h[1]["by"], h[2]["by"]')"
check "tabs: relay stage from the hop dates" 5 "$(j 'r["seeds"][0]["path"]["stages"]["relay"]')"
grep -qx 'inboxprobe_hop_delay_seconds{config="tabs_tabs",seed="seed@gmail.example",provider="gmail",stage="relay"} 5' "$TMP/tabs.prom" &&
	ok "tabs: hop_delay_seconds relay 5" || not_ok "tabs: hop_delay_seconds relay 5: $(grep hop_delay "$TMP/tabs.prom")"

# ---- 2. categories turned off: tab unknown, left out of the shares ---------
start_peer gmail-notabs
run notabs
check "notabs: tab unknown" unknown "$(j 'r["seeds"][0]["tab"]')"
check "notabs: all five categories asked" 5 "$(cmds | grep -Ec 'X-GM-RAW')"
check "notabs: no known tab" 0 "$(j 'r["providers"][0]["tabs"]["known"]')"
check "notabs: min_primary_ratio not evaluated" "False no inbox probe with a known tab" \
	"$(j 'g=r["providers"][0]["gates"]["min_primary_ratio"]; g["evaluated"], g["reason"]')"
check "notabs: exit 0" 0 "$RC"
grep -q 'tab_ratio' "$TMP/notabs.prom" && not_ok "notabs: no tab_ratio series" || ok "notabs: no tab_ratio series"
grep -qx 'inboxprobe_probe_tab{config="tabs_notabs",seed="seed@gmail.example",provider="gmail",tab="unknown"} 1' "$TMP/notabs.prom" &&
	ok "notabs: probe_tab unknown" || not_ok "notabs: probe_tab unknown"

echo "# $CHECKS checks, $FAILS failed"
[ "$CHECKS" -gt 0 ] && [ "$FAILS" -eq 0 ]
