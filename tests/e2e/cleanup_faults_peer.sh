#!/bin/sh
# A failed cleanup keeps the probe pending (issue 12 section 2): against the
# scripted IMAP peer's fault-* scenarios (tests/peers/imap_peer.py), whose
# mailbox lives across connections and whose cleanup command fails the
# first time: the connection drops during UID STORE, UID EXPUNGE, UID COPY
# or UID MOVE, or the server answers NO. With a state store:
#  round 1 finds its probe, says "failed: ..." for its cleanup, and the
#          probe stays in the peer's INBOX;
#  round 2 looks for it again, cleans it up (deleted, or moved to Trash)
#          together with its own probe, and says so;
#  round 3 no longer looks for it (it is not pending any more), and the
#          store counted round 1's probe once (probes_total{inbox} = 3).
# Uses inboxprobe run, tests/peers/smtp_peer.py (a relay that accepts) and
# sqlite3. Exit 0 pass, 1 fail, 99 hard error.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top_srcdir/tests/e2e/common.sh"
command -v sqlite3 >/dev/null || { echo "SKIP: no sqlite3"; exit 77; }
peer_test_init cleanfault
PEER=$top_srcdir/tests/peers/imap_peer.py
need_built "$BIN"

smtp_peer_start --lifetime 300

# where FOLDER TOKEN: how many messages of the peer's FOLDER carry TOKEN
where() { $PY -c 'import json,sys; m=json.load(open(sys.argv[1])); print(sum(1 for t in m.get(sys.argv[2], {}).values() if t == sys.argv[3]))' "$TMP/mailbox" "$1" "$2" 2>/dev/null; }
jf() { $PY -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["seeds"][0][sys.argv[2]] or "")' "$1" "$2" 2>/dev/null; }

for sc in fault-drop-store:delete fault-no-store:delete fault-drop-expunge:delete \
          fault-no-expunge:delete fault-drop-copy:trash fault-drop-move:trash fault-no-move:trash; do
	name=${sc%%:*}
	mode=${sc#*:}
	[ -n "$PEER_PID" ] && kill "$PEER_PID" 2>/dev/null
	rm -f "$TMP/port" "$TMP/mailbox" "$TMP/rec"
	$PY "$PEER" "$name" --record "$TMP/rec" --mailbox "$TMP/mailbox" --lifetime 90 \
		>"$TMP/port" 2>"$TMP/peer.err" &
	PEER_PID=$!
	i=0
	while [ ! -s "$TMP/port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	PORT=$(head -n 1 "$TMP/port")
	[ -n "$PORT" ] || { echo "peer did not start" >&2; cat "$TMP/peer.err" >&2; exit 99; }
	cat >"$TMP/$name.conf" <<CONF
name = "$name";
relay = { url = "smtp://127.0.0.1:$SMTP_PORT"; tls = "none"; from = "probe@example.test";
          connect_timeout = 3; timeout = 5; };
probe = { deadline = 6; poll_interval = 1; cleanup = "$mode"; };
slo = { min_inbox_ratio = 0.0; };
imap_defaults = { url = "imap://127.0.0.1:$PORT"; tls = "none"; password_file = "$TMP/seed.pass"; };
state = { path = "$TMP/$name.db"; retention_days = 30; };
seeds = ( { address = "seed@example.test"; provider = "peer"; } );
CONF
	for n in 1 2 3; do
		: >"$TMP/rec"
		timeout 40 "$BIN" run -c "$TMP/$name.conf" --json "$TMP/$name.$n.json" \
			>"$TMP/$name.$n.out" 2>"$TMP/$name.$n.err"
		echo "$?" >"$TMP/$name.$n.rc"
		cp "$TMP/rec" "$TMP/$name.$n.rec"
		cp "$TMP/mailbox" "$TMP/$name.$n.mailbox" 2>/dev/null
		[ $n = 1 ] && cp "$TMP/mailbox" "$TMP/$name.after1" 2>/dev/null
	done
	tok1=$(jf "$TMP/$name.1.json" token)
	tok2=$(jf "$TMP/$name.2.json" token)
	c1=$(jf "$TMP/$name.1.json" cleanup)
	check "$name: round 1 found its probe in INBOX" inbox "$(jf "$TMP/$name.1.json" outcome)"
	case $c1 in failed*) ok "$name: round 1 says its cleanup failed ($c1)" ;;
		*) not_ok "$name: round 1 says its cleanup failed ('$c1')" ;; esac
	cp "$TMP/$name.after1" "$TMP/mailbox"
	check "$name: after round 1 the probe is still in INBOX" 1 "$(where INBOX "$tok1")"
	cp "$TMP/$name.2.mailbox" "$TMP/mailbox"
	check "$name: round 2 cleaned up round 1's probe from INBOX" 0 "$(where INBOX "$tok1")"
	check "$name: round 2 cleaned up its own probe from INBOX" 0 "$(where INBOX "$tok2")"
	if [ "$mode" = trash ]; then
		check "$name: round 1's probe is in Trash once" 1 "$(where Trash "$tok1")"
	fi
	grep -q "cleaned up: seed@example.test probe $(printf %.8s "$tok1")" "$TMP/$name.2.out" &&
		ok "$name: round 2's summary says round 1's probe was cleaned up" ||
		not_ok "$name: round 2's summary says round 1's probe was cleaned up: $(cat "$TMP/$name.2.out")"
	grep -q "$tok1" "$TMP/$name.2.rec" && ok "$name: round 2 searched for round 1's probe" ||
		not_ok "$name: round 2 searched for round 1's probe"
	if grep -q "$tok1" "$TMP/$name.3.rec"; then
		not_ok "$name: round 3 no longer searches for round 1's probe"
	else
		ok "$name: round 3 no longer searches for round 1's probe"
	fi
	check "$name: rounds exit 0 0 0" "0 0 0" \
		"$(cat "$TMP/$name.1.rc") $(cat "$TMP/$name.2.rc") $(cat "$TMP/$name.3.rc")"
	check "$name: probes_total{inbox} = 3 (round 1's probe counted once)" 3 \
		"$(sqlite3 -readonly "$TMP/$name.db" "SELECT value FROM counters WHERE name = 'probes_total' AND label = 'inbox'")"
done
echo "$CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
