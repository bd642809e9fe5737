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
# daemon (exit 0). keeper-recreated: a folder recreated between rounds
# (another UIDVALIDITY) is searched whole by the keeper.
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

# keeper-recreated: the round's probe is missing (it has not arrived); the
# keeper's one session (per_account 1) armed Junk's UIDNEXT 3 at
# UIDVALIDITY 41. Junk is then deleted and created again (UIDVALIDITY 42)
# with the probe as UID 1 and a user's message as UID 2: a search from
# UID 3 ("3:*" is "2:3") skips the probe. The keeper's check (IDLE renewed
# every second here) sees the new UIDVALIDITY at its SELECT, re-bases and
# finds it (breakit: it searched from the stored UID and never found it).
peer_start "$top_srcdir/tests/peers/idle_peer.py" keeper-recreated --record "$TMP/kr.rec" --lifetime 60
WEB=$(free_port)
rm -f "$TMP/state.db"*
peer_daemon_conf "$TMP/kr.conf" krec 3 600 5
sed -i 's/^imap_limits = { /imap_limits = { per_account = 1; /' "$TMP/kr.conf"
INBOXPROBE_TEST_IDLE_RENEW=1
export INBOXPROBE_TEST_IDLE_RENEW
peer_daemon_start "$TMP/kr.conf"
unset INBOXPROBE_TEST_IDLE_RENEW
i=0
while [ $i -lt 250 ] && ! grep -q "found between rounds in Junk" "$TMP/d.err"; do sleep 0.1; i=$((i + 1)); done
grep -q "found between rounds in Junk after .* (deleted)" "$TMP/d.err" &&
	ok "keeper-recreated: the probe found between rounds in the recreated Junk and deleted" ||
	not_ok "keeper-recreated: the probe found between rounds in the recreated Junk and deleted ($(grep -i 'between rounds\|UIDVALIDITY' "$TMP/d.err" | head -n 5))"
grep -q "Junk: UIDVALIDITY changed from 41 to 42 between rounds" "$TMP/d.err" &&
	ok "keeper-recreated: the UIDVALIDITY change is logged" ||
	not_ok "keeper-recreated: the UIDVALIDITY change is logged"
check "keeper-recreated: STORE/EXPUNGE/MOVE/COPY only of UID 1 (no user's message touched)" "0 2" \
	"$(awk '$3 == "UID" && ($4 == "STORE" || $4 == "EXPUNGE" || $4 == "MOVE" || $4 == "COPY") { if ($5 == "1") ok++; else bad++ } END { printf "%d %d", bad, ok }' "$TMP/kr.rec")"
peer_daemon_stop "keeper-recreated: SIGTERM stops the daemon"

echo "$CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
