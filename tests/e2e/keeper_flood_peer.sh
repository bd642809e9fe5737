#!/bin/sh
# The daemon's kept sessions between rounds against hostile servers
# (tests/peers/idle_peer.py):
#  - flood: IDLE answered by an endless stream of "* N EXISTS" lines; the
#    keeper reads them while more are buffered, so a stream with no end
#    must not hold its thread;
#  - byehang: IDLE ended by BYE, and every new connection accepted and
#    never greeted: the reconnect hangs in the greeting (timeout 20 s);
#    two SIGHUPs arrive meanwhile;
#  - slowline: IDLE answered by a line that never ends ("* OK " then a
#    byte a second): the line is cut off, the session reconnects.
# Checked for each: the daemon's rounds every 8 s go on (the second round
# starts; a reconnect never takes longer than the time to the next round),
# it survives the SIGHUPs, and SIGTERM stops it (exit 0); byehang's
# reconnect, hanging in the greeting then, logs that the shutdown stopped it.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top_srcdir/tests/e2e/common.sh"
peer_test_init keeperflood
need_built "$BIN"
smtp_peer_start --lifetime 120
# the rounds the daemon finished: /metrics' rounds_total
rounds() {
	curl -s --max-time 5 "http://127.0.0.1:$WEB/metrics" |
		sed -n 's/^inboxprobe_rounds_total{[^}]*} \([0-9]*\).*/\1/p' | head -n 1
}
for sc in ${SCENARIOS:-flood byehang slowline}; do
	peer_start "$top_srcdir/tests/peers/idle_peer.py" "$sc" --lifetime 60
	WEB=$(free_port)
	rm -f "$TMP/state.db"*
	peer_daemon_conf "$TMP/d.conf" flood 4 8 20
	peer_daemon_start "$TMP/d.conf"
	i=0
	while [ $i -lt 400 ] && [ "$(rounds)" != 1 ]; do sleep 0.1; i=$((i + 1)); done
	check "$sc: the first round is over" 1 "$(rounds)"
	if [ "$sc" = byehang ]; then
		i=0
		while [ $i -lt 100 ] && ! grep -q "lost between rounds" "$TMP/d.err"; do sleep 0.1; i=$((i + 1)); done
		sleep 1.5   # a reconnect hangs in the greeting now
		kill -HUP "$DPID"
		sleep 0.3
		kill -HUP "$DPID"
	fi
	i=0
	while [ $i -lt 300 ] && [ "$(rounds)" = 1 ]; do sleep 0.1; i=$((i + 1)); done
	r=$(rounds)
	if [ -n "$r" ] && [ "$r" -ge 2 ]; then
		ok "  ... the next round still runs ($r rounds)"
	else
		not_ok "  ... the next round still runs (${r:-no answer} rounds after 30 s)"
	fi
	if [ "$sc" = byehang ]; then
		check "  ... both SIGHUPs reloaded the configuration" 2 \
			"$(grep -c 'configuration reloaded from' "$TMP/d.err")"
	fi
	peer_daemon_stop "  ... SIGTERM stops the daemon"
	if [ "$sc" = byehang ]; then
		# the reconnect hanging in the greeting when SIGTERM came: stopped,
		# said so, and no next attempt planned (not "no reply in time")
		check "  ... the hanging reconnect is stopped by the shutdown, and says so" \
			"stopped by the shutdown (imap 127.0.0.1:$PORT: greeting: stopped by the shutdown)" \
			"$(grep ': s1: reconnect [0-9]* ' "$TMP/d.err" | tail -n 1 | sed 's/.*: s1: reconnect [0-9]* //')"
	fi
	sed 's/^/#   /' "$TMP/d.err" | grep -v "debug: imap\|Authentication-Results" | tail -n 12
done
echo "$CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
