#!/bin/sh
# The daemon's kept sessions against a server that answers IDLE between
# rounds with an endless stream of "* N EXISTS" lines
# (tests/peers/idle_peer.py flood): the keeper reads them while more are
# buffered, so a stream with no end must not hold its thread. Checked: the
# daemon's rounds every 6 s go on (the second round starts: the flooded
# sessions come out of IDLE, the DONE's reply over the 16 MiB budget drops
# them), and SIGTERM stops the daemon (exit 0).
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top_srcdir/tests/e2e/common.sh"
peer_test_init keeperflood
need_built "$BIN"
smtp_peer_start --lifetime 120
peer_start "$top_srcdir/tests/peers/idle_peer.py" flood --stats "$TMP/stats" --lifetime 90
WEB=$(free_port)
cat >"$TMP/d.conf" <<CONF
name = "flood";
relay = { url = "smtp://127.0.0.1:$SMTP_PORT"; tls = "none"; from = "probe@example.test";
          connect_timeout = 3; timeout = 10; };
probe = { deadline = 4; poll_interval = 1; cleanup = "delete"; };
slo = { min_inbox_ratio = 0.0; };
imap_limits = { connect_timeout = 3; timeout = 10; };
state = { path = "$TMP/state.db"; };
schedule = { interval = 6; jitter = 0; };
web = { listen_address = "127.0.0.1:$WEB"; };
seeds = ( { address = "s1@example.test"; provider = "peer";
            imap = { url = "imap://127.0.0.1:$PORT"; tls = "none"; username = "s1";
                     password_file = "$TMP/seed.pass"; }; } );
CONF
"$BIN" daemon -c "$TMP/d.conf" -v >"$TMP/d.out" 2>"$TMP/d.err" &
DPID=$!
PIDS="$PIDS $DPID"
# the rounds the daemon finished: /metrics' rounds_total
rounds() {
	curl -s --max-time 5 "http://127.0.0.1:$WEB/metrics" |
		sed -n 's/^inboxprobe_rounds_total{[^}]*} \([0-9]*\).*/\1/p' | head -n 1
}
i=0
while [ $i -lt 400 ] && [ "$(rounds)" != 1 ]; do sleep 0.1; i=$((i + 1)); done
check "the first round is over" 1 "$(rounds)"
i=0
while [ $i -lt 300 ] && [ "$(rounds)" = 1 ]; do sleep 0.1; i=$((i + 1)); done
r=$(rounds)
if [ -n "$r" ] && [ "$r" -ge 2 ]; then
	ok "a session flooded with EXISTS between rounds: the next round still runs ($r rounds)"
else
	not_ok "a session flooded with EXISTS between rounds: the next round still runs (${r:-no answer} rounds after 30 s)"
fi
kill -TERM "$DPID"
i=0
while [ $i -lt 200 ] && kill -0 "$DPID" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
if kill -0 "$DPID" 2>/dev/null; then
	not_ok "SIGTERM stops the daemon while a session is flooded (still running after 20 s)"
	kill -KILL "$DPID"
else
	wait "$DPID"
	check "SIGTERM stops the daemon while a session is flooded (exit 0)" 0 "$?"
fi
sed "s/^/#   /" "$TMP/d.err" | grep -v "^#   inboxprobe: debug: imap" | tail -n 40
echo "$CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
