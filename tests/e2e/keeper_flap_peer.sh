#!/bin/sh
# The daemon's kept sessions against a server that takes every login and
# then ends the session (tests/peers/idle_peer.py byeloop, byeloop-expired):
# once the round's probe is cleaned up, each IDLE between rounds gets a BYE
# 0.2 s later. Before, each reconnect that logged in reset the backoff to
# 1 s (a login a second per session for as long as the daemon runs), and a
# BYE asking for a new login ("Session invalidated - AccessTokenExpired")
# was answered at once every time: a login loop without any wait. Now a
# session lost soon after its reconnect continues the backoff (1, 2, 4, 8 s
# ... 5 min), which the log states; over 14 s between rounds each of the
# seed's two sessions logs in at most 4 times; SIGTERM then stops the
# daemon (exit 0).
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top_srcdir/tests/e2e/common.sh"
peer_test_init keeperflap
need_built "$BIN"
smtp_peer_start --lifetime 120
DPID=
stats() { $PY -c 'import json, sys; print(json.load(open(sys.argv[1]))["logins"])' "$TMP/stats"; }
for sc in byeloop byeloop-expired; do
	peer_start "$top_srcdir/tests/peers/idle_peer.py" "$sc" --stats "$TMP/stats" --lifetime 90
	WEB=$(free_port)
	rm -f "$TMP/state.db"*
	peer_daemon_conf "$TMP/d.conf" flap 20 600 10
	peer_daemon_start "$TMP/d.conf"
	# the round is over once a kept session is first lost between rounds
	i=0
	while [ $i -lt 600 ] && ! grep -q "lost between rounds" "$TMP/d.err"; do sleep 0.1; i=$((i + 1)); done
	if ! grep -q "lost between rounds" "$TMP/d.err"; then
		not_ok "$sc: the round ended and the kept sessions were BYEd"
		sed 's/^/#   /' "$TMP/d.err" | tail -n 30
		kill "$DPID" 2>/dev/null
		continue
	fi
	l0=$(stats)
	sleep 14
	l1=$(stats)
	n=$((l1 - l0))
	if [ "$n" -le 8 ]; then
		ok "$sc: $n logins in 14 s between rounds (two sessions, backoff 1, 2, 4, 8 s: at most 8)"
	else
		not_ok "$sc: $n logins in 14 s between rounds (at most 8 with the backoff)"
	fi
	# each flap's wait is at least 2^flaps s (the jitter only lengthens it)
	bad=$(sed -n 's/.*re-established (\([0-9]*\) times* in a row).* after \([0-9.]*\) s$/\1 \2/p' "$TMP/d.err" |
		awk '{ w = 2 ^ $1; if (w > 300) w = 300; if ($2 + 0.05 < w) n++ } END { print n + 0 }')
	flaps=$(grep -c "re-established (.* in a row)" "$TMP/d.err")
	if [ "$flaps" -ge 2 ] && [ "$bad" = 0 ] && grep -q "re-established (2 times in a row)" "$TMP/d.err"; then
		ok "  ... the log says each session lost soon after its reconnect waits longer ($flaps such drops, 2 in a row seen)"
	else
		not_ok "  ... the log says each session lost soon after its reconnect waits longer ($flaps such drops, $bad too short)"
	fi
	if [ "$sc" = byeloop-expired ]; then
		check "  ... the first BYE asking for a new login is answered at once, by one login per session" 2 \
			"$(grep -c 'AccessTokenExpired; logging in again (new credentials)' "$TMP/d.err")"
	fi
	peer_daemon_stop "  ... SIGTERM while sessions reconnect stops the daemon"
	sed 's/^/#   /' "$TMP/d.err" | grep -i "between rounds\|reconnect" | head -n 20
done
echo "$CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
