#!/bin/sh
# `inboxprobe daemon` start-up checks and its web configuration file (TLS
# and basic auth in the shape of Prometheus' exporter-toolkit), without the
# mail world (the seed's IMAP port is closed: rounds end at once in error):
#  - no state store: exit 2, message names the file; a broken web config
#    file: exit 2 with FILE:LINE; a listen port in use: exit 3;
#  - TLS: curl with the CA gets /metrics over https; plain http fails;
#  - basic auth: no or wrong credentials get 401 with
#    WWW-Authenticate: Basic realm="inboxprobe" on every path; the right
#    ones get 200;
#  - a real Prometheus scrapes it with tls_config and basic_auth: up == 1.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
BIN=${top_builddir:-.}/inboxprobe
[ -x "$BIN" ] || { echo "no inboxprobe binary at $BIN"; exit 99; }
for t in curl openssl prometheus; do
	command -v $t >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
T=$(mktemp -d "${TMPDIR:-/tmp}/daemonweb.XXXXXX")
DPID=""
PPID_PROM=""
cleanup() {
	_st=$?
	[ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
	[ -n "$PPID_PROM" ] && kill "$PPID_PROM" 2>/dev/null && wait "$PPID_PROM" 2>/dev/null
	rm -rf "$T"
	exit $_st
}
trap cleanup EXIT
trap 'exit 130' INT TERM
PORT=$(free_port)
CLOSED=$(free_port)

# conf EXTRA_TOP EXTRA_WEB
conf() {
	cat >"$T/d.conf" <<CONF
name = "web";
relay = { url = "smtp://127.0.0.1:$CLOSED"; tls = "none"; from = "probe@sender.test"; connect_timeout = 2; timeout = 2; };
probe = { deadline = 2; };
imap_limits = { connect_timeout = 1; timeout = 2; };
schedule = { interval = 2; };
web = { listen_address = "127.0.0.1:$PORT"; $2 };
seeds = ( { address = "a@b.test"; provider = "b";
            imap = { url = "imap://127.0.0.1:$CLOSED"; tls = "none"; username = "a"; password = "x"; }; } );
$1
CONF
	chmod 600 "$T/d.conf"   # it holds an inline password
}

# ---- start-up refusals --------------------------------------------------
conf "" ""
"$BIN" daemon -c "$T/d.conf" --json "$T/x.json" >"$T/out" 2>"$T/err"
check "run options given to the daemon: exit 2" 2 "$?"
assert "run options given to the daemon: the message says so" grep -q "inboxprobe daemon: takes only -c FILE and -v" "$T/err"
"$BIN" daemon -c "$T/d.conf" >"$T/out" 2>"$T/err"
check "no state store: exit 2" 2 "$?"
assert "no state store: the message names the file" grep -q "^$T/d.conf: the daemon requires a state store" "$T/err"

printf 'basic_auth_users:\n  prometheus: plain-text\n' >"$T/bad.yml"
conf "state = { path = \"$T/state.db\"; };" "config_file = \"$T/bad.yml\";"
"$BIN" daemon -c "$T/d.conf" >"$T/out" 2>"$T/err"
check "broken web config file: exit 2" 2 "$?"
assert "broken web config file: FILE:LINE names the user" grep -q "^$T/bad.yml:2: basic_auth_users.prometheus: not a bcrypt hash" "$T/err"
"$BIN" check -c "$T/d.conf" >"$T/out" 2>"$T/err"
check "inboxprobe check reads web.config_file too: exit 2" 2 "$?"
assert "inboxprobe check: the same FILE:LINE message" grep -q "^$T/bad.yml:2: basic_auth_users.prometheus: not a bcrypt hash" "$T/err"

"$PY" -c 'import socket,time,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(30)' "$PORT" &
BUSY=$!
sleep 0.3
conf "state = { path = \"$T/state.db\"; };" ""
"$BIN" daemon -c "$T/d.conf" >"$T/out" 2>"$T/err"
check "listen port in use: exit 3" 3 "$?"
assert "listen port in use: the message says so" grep -q "web.listen_address 127.0.0.1:$PORT: cannot listen: Address already in use" "$T/err"
kill $BUSY; wait $BUSY 2>/dev/null

# ---- TLS and basic auth -----------------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -keyout "$T/key.pem" -out "$T/cert.pem" 2>/dev/null
HASH=$("$PY" -W ignore -c 'import crypt; print(crypt.crypt("s3cret pass", crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 5)))')
case $HASH in '$2b$05$'*) ;; *) echo "SKIP: python3's crypt made no bcrypt hash ($HASH)"; exit 77 ;; esac
cat >"$T/web.yml" <<YML
tls_server_config:
  cert_file: $T/cert.pem
  key_file: $T/key.pem
basic_auth_users:
  prometheus: '$HASH'
YML
conf "state = { path = \"$T/state.db\"; };" "config_file = \"$T/web.yml\";"
"$BIN" daemon -c "$T/d.conf" </dev/null >"$T/out" 2>"$T/err" &
DPID=$!
URL=https://localhost:$PORT
i=0
while [ $i -lt 50 ]; do
	code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/cert.pem" -u 'prometheus:s3cret pass' "$URL/-/healthy")
	[ "$code" = 200 ] && break
	i=$((i + 1))
	sleep 0.1
done
check "https with the CA and the right credentials: /-/healthy 200" 200 "$code"
check "https /metrics with the right credentials: 200" 200 \
	"$(curl -s -o "$T/m.txt" -w '%{http_code}' --cacert "$T/cert.pem" -u 'prometheus:s3cret pass' "$URL/metrics")"
assert "the metrics carry rounds_total" grep -q '^inboxprobe_rounds_total{config="web"} ' "$T/m.txt"
for path in /metrics /-/healthy /-/ready; do
	check "no credentials on $path: 401" 401 \
		"$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/cert.pem" "$URL$path")"
done
check "wrong password: 401" 401 \
	"$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/cert.pem" -u 'prometheus:s3cret' "$URL/metrics")"
check "unknown user: 401" 401 \
	"$(curl -s -o /dev/null -w '%{http_code}' --cacert "$T/cert.pem" -u 'grafana:s3cret pass' "$URL/metrics")"
curl -s -D "$T/h401" -o /dev/null --cacert "$T/cert.pem" "$URL/metrics"
assert "401 asks for Basic auth, realm inboxprobe" grep -qi '^WWW-Authenticate: Basic realm="inboxprobe"' "$T/h401"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/metrics")
assert "plain http is not served ($code)" [ "$code" != 200 ]
code=$(curl -s -o /dev/null -w '%{http_code}' --tls-max 1.1 --cacert "$T/cert.pem" -u 'prometheus:s3cret pass' "$URL/metrics")
assert "TLS 1.1 is refused ($code)" [ "$code" != 200 ]

# ---- Prometheus with tls_config and basic_auth ---------------------------------
PROM_PORT=$(free_port)
cat >"$T/prometheus.yml" <<YML
global: { scrape_interval: 1s, scrape_timeout: 1s }
scrape_configs:
  - job_name: inboxprobe
    scheme: https
    tls_config: { ca_file: $T/cert.pem, server_name: localhost }
    basic_auth: { username: prometheus, password: "s3cret pass" }
    static_configs: [ { targets: ["127.0.0.1:$PORT"] } ]
YML
prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/tsdb" \
	--web.listen-address="127.0.0.1:$PROM_PORT" </dev/null >"$T/prometheus.log" 2>&1 &
PPID_PROM=$!
up=""
i=0
while [ $i -lt 60 ]; do
	up=$(curl -fsS --get "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode 'query=up{job="inboxprobe"}' 2>/dev/null |
		"$PY" -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")' 2>/dev/null)
	[ "$up" = 1 ] && break
	i=$((i + 1))
	sleep 0.2
done
check "Prometheus scrapes over TLS with basic auth: up" 1 "$up"
kill -TERM "$DPID"
wait "$DPID"
check "SIGTERM: exit 0" 0 "$?"
DPID=""
world_result
