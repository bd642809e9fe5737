#!/bin/sh
# `inboxprobe run` against the scripted SMTP peer (tests/peers/smtp_peer.py):
# how each relay reply becomes an outcome, the relay_reply series, the
# diagnostic, the retries of a 4xx inside the deadline, and the exit code.
# No mail world needed: the seeds' mailboxes are a scripted IMAP peer
# (tests/peers/imap_peer.py count: any login, INBOX and Junk, nothing found),
# which arms them before their probes are sent.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top_srcdir/tests/e2e/common.sh"
peer_test_init runsmtppeer   # TMP is also each configuration's lock_dir: the run locks stay private
srcdir=$top_srcdir
PEER=$SMTP_PEER
need_built "$BIN"
printf 'relay-secret-XYZ\n' >"$TMP/relay.pass"; chmod 600 "$TMP/relay.pass"
peer_start "$srcdir/tests/peers/imap_peer.py" count --lifetime 170
imapport=$PORT

# run_peer SCENARIO [EXTRA-RELAY-SETTINGS] [DEADLINE] [CONNECT-TIMEOUT]: start
# a peer and run one round with two seeds against it; sets RC, J (the JSON
# path).
run_peer() {
	scen=$1 extra=${2:-} deadline=${3:-8} ct=${4:-3}
	rm -f "$TMP/port"
	/usr/bin/python3 "$PEER" "$scen" --port-file "$TMP/port" --log "$TMP/$scen.log" --lifetime 60 \
		</dev/null >/dev/null 2>"$TMP/$scen.peer.err" &
	PIDS="$PIDS $!"
	i=0
	while [ ! -s "$TMP/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	port=$(cat "$TMP/port")
	cat >"$TMP/$scen.conf" <<CONF
name = "peer_$scen";
lock_dir = "$TMP";
relay = { url = "smtp://127.0.0.1:$port"; tls = "none"; from = "probe@example.test";
          connect_timeout = $ct; timeout = 3; $extra };
probe = { deadline = $deadline; poll_interval = 1; };
report = { json = "$TMP/$scen.json"; textfile = "$TMP/$scen.prom"; };
imap_defaults = { url = "imap://127.0.0.1:$imapport"; tls = "none"; password_file = "$TMP/seed.pass"; };
seeds = ( { address = "a@gmail.example"; provider = "gmail"; },
          { address = "b@yahoo.example"; provider = "yahoo"; } );
CONF
	"$BIN" run -c "$TMP/$scen.conf" >"$TMP/$scen.out" 2>&1
	RC=$?
	J=$TMP/$scen.json
}
# j EXPR: evaluate a Python expression over the JSON report r.
j() { /usr/bin/python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$J" "$1"; }

run_peer greet554
assert "554 greeting: outcome rejected" [ "$(j 'r["seeds"][0]["outcome"]')" = rejected ]
assert "554 greeting: relay reply 554 5.7.0 at connect" [ "$(j '"%d %s %s" % (r["seeds"][0]["relay_reply"]["code"], r["seeds"][0]["relay_reply"]["enhanced"], r["seeds"][0]["relay_reply"]["stage"])')" = "554 5.7.0 connect" ]
assert "554 greeting: relay_reply series" grep -q 'inboxprobe_relay_reply{config="peer_greet554",seed="a@gmail.example",provider="gmail",code="554",enhanced="5.7.0"} 1' "$TMP/greet554.prom"
assert "554 greeting: one attempt (5xx is not retried)" [ "$(j 'r["seeds"][0]["attempts"]')" = 1 ]
assert "554 greeting: exit 1 (inbox share 0 below the gate) (got $RC)" [ "$RC" = 1 ]

run_peer greet421 "" 7
assert "multi-line 421 greeting: outcome deferred" [ "$(j 'r["seeds"][1]["outcome"]')" = deferred ]
assert "421: retried inside the deadline (attempts >= 2)" [ "$(j 'r["seeds"][1]["attempts"]')" -ge 2 ]
assert "421: every attempt recorded" [ "$(j 'len(r["seeds"][1]["attempt_history"]) == min(r["seeds"][1]["attempts"], 8) and all(a["code"] == 421 and a["result"] == "temp" for a in r["seeds"][1]["attempt_history"])')" = True ]
assert "421: enhanced 4.7.0 kept" [ "$(j 'r["seeds"][1]["relay_reply"]["enhanced"]')" = 4.7.0 ]

run_peer rcpt452
assert "452 after RCPT: outcome deferred" [ "$(j 'r["seeds"][0]["outcome"]')" = deferred ]
assert "452 after RCPT: stage rcpt, 4.5.3" [ "$(j '"%s %s" % (r["seeds"][0]["relay_reply"]["stage"], r["seeds"][0]["relay_reply"]["enhanced"])')" = "rcpt 4.5.3" ]
assert "452 after RCPT: relay_reply series code 452" grep -q 'inboxprobe_relay_reply{config="peer_rcpt452",seed="b@yahoo.example",provider="yahoo",code="452",enhanced="4.5.3"} 1' "$TMP/rcpt452.prom"
assert "452: deferred share 1" grep -q 'inboxprobe_placement_ratio{config="peer_rcpt452",provider="gmail",folder="deferred"} 1' "$TMP/rcpt452.prom"

run_peer rcpt550
assert "550 5.1.1 after RCPT: rejected" [ "$(j 'r["seeds"][0]["outcome"]')" = rejected ]
assert "550 5.1.1: diagnostic says unknown mailbox" sh -c "echo '$(j 'r["seeds"][0]["diagnostic"]')' | grep -qi 'unknown mailbox'"

run_peer data554
assert "554 after DATA: rejected at stage data" [ "$(j '"%s %s" % (r["seeds"][0]["outcome"], r["seeds"][0]["relay_reply"]["stage"])')" = "rejected data" ]

run_peer drop
assert "drop after DATA: error (a stale 250 is not trusted)" [ "$(j 'r["seeds"][0]["outcome"]')" = error ]
assert "drop after DATA: no relay_reply series" sh -c "! grep -q '^inboxprobe_relay_reply' '$TMP/drop.prom'"
assert "drop after DATA: exit 3 (got $RC)" [ "$RC" = 3 ]
assert "drop after DATA: the probe may have been delivered, so it is kept for follow-up (submit time set)" \
	[ "$(j 'int(r["seeds"][0]["submit_time_unix"] is not None and "may have been delivered" in r["seeds"][0]["diagnostic"])')" = 1 ]

run_peer garbled
assert "garbled final reply to DATA: error, not rejected or deferred" [ "$(j 'r["seeds"][0]["outcome"]')" = error ]
assert "garbled final reply to DATA: the relay may have delivered it: kept for follow-up (submit time set)" \
	[ "$(j 'int(r["seeds"][0]["submit_time_unix"] is not None and "the relay may have delivered it" in r["seeds"][0]["diagnostic"])')" = 1 ]
assert "garbled final reply to DATA: exit 3 (got $RC)" [ "$RC" = 3 ]

run_peer stalldata "" 6
assert "timeout after DATA: error" [ "$(j 'r["seeds"][0]["outcome"]')" = error ]
assert "timeout after DATA: kept for follow-up (submit time set)" \
	[ "$(j 'int(r["seeds"][0]["submit_time_unix"] is not None and "may have been delivered" in r["seeds"][0]["diagnostic"])')" = 1 ]
assert "timeout after DATA: the round ends by its deadline" [ "$(j 'int(r["duration_seconds"] <= 11)')" = 1 ]

run_peer auth535 "username = \"relay@example.test\"; password_file = \"$TMP/relay.pass\";"
assert "535 at AUTH: error" [ "$(j 'r["seeds"][0]["outcome"]')" = error ]
assert "535 at AUTH: diagnostic carries the 535 text" sh -c "echo '$(j 'r["seeds"][0]["diagnostic"]')' | grep -q '535'"
assert "535 at AUTH: the relay password is never printed" sh -c "! grep -q 'relay-secret-XYZ' '$TMP/auth535.out' '$TMP/auth535.json' '$TMP/auth535.prom'"
assert "535 at AUTH: exit 3 (got $RC)" [ "$RC" = 3 ]

run_peer stall "" 6
assert "stalled relay: error (timeout)" [ "$(j 'r["seeds"][0]["outcome"]')" = error ]
assert "stalled relay: the round ends by its deadline ($(j 'r["duration_seconds"]') s <= 6 + 5)" [ "$(j 'int(r["duration_seconds"] <= 11)')" = 1 ]

# A submission that failed before its message went out sent nothing: it is
# retried with backoff. flaky: the first connection is never greeted
# (relay.connect_timeout 1 s bounds the wait), the second is closed after
# RCPT TO; each seed's probe is delivered on its second attempt, exactly
# once (breakit: both were error at once).
run_peer flaky "" 10 1
assert "flaky relay: both probes accepted on a retry (missing: the IMAP peer finds nothing)" \
	[ "$(j '" ".join(s["outcome"] for s in r["seeds"]) + " " + str(sorted(s["attempts"] for s in r["seeds"]))')" = "missing missing [2, 2]" ]
assert "flaky relay: attempt_history shows both tries ($(j '[[(a["result"], a["stage"]) for a in s["attempt_history"]] for s in r["seeds"]]'))" \
	[ "$(j 'sorted(tuple((a["result"], a["stage"]) for a in s["attempt_history"]) for s in r["seeds"])')" = \
	  "[(('drop', 'rcpt'), ('ok', 'data')), (('timeout', 'connect'), ('ok', 'data'))]" ]
assert "flaky relay: each message reached the relay once (2 DATA transfers)" \
	[ "$(grep -c '^DATA [0-9]* lines' "$TMP/flaky.log")" = 2 ]
# A relay that never greets: retried until half the round (the round's
# give-up time, deadline 20 s: 10 s), never after; the seeds are error.
run_peer stall "" 20 1
assert "stalled relay, retried: error after more than one attempt ($(j '[s["attempts"] for s in r["seeds"]]'))" \
	[ "$(j 'all(s["outcome"] == "error" and s["attempts"] >= 2 and all(a["result"] == "timeout" and a["stage"] == "connect" for a in s["attempt_history"]) for s in r["seeds"])')" = True ]
assert "stalled relay: no attempt started after the give-up time (attempts ended within deadline/2 + connect_timeout of the first: $(j '[round(s["attempt_history"][-1]["time_unix"] - s["attempt_history"][0]["time_unix"], 1) for s in r["seeds"]]') s)" \
	[ "$(j 'all(s["attempt_history"][-1]["time_unix"] - s["attempt_history"][0]["time_unix"] <= 11 for s in r["seeds"])')" = True ]

# SIGTERM aborts a transaction in flight (the relay stalls after DATA, its
# timeout is 60 s): the round ends within a few seconds and writes reports.
rm -f "$TMP/port"
/usr/bin/python3 "$PEER" stalldata --port-file "$TMP/port" --log "$TMP/sig.log" --lifetime 60 \
	</dev/null >/dev/null 2>&1 &
PIDS="$PIDS $!"
i=0
while [ ! -s "$TMP/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
sed -e "/^relay/s/127.0.0.1:[0-9]*\"; tls/127.0.0.1:$(cat "$TMP/port")\"; tls/" -e 's/timeout = 3;/timeout = 60;/' \
	-e 's/deadline = [0-9]*;/deadline = 120;/' -e 's/peer_stalldata/peer_sig/' -e "s#$TMP/stalldata#$TMP/sig#g" \
	"$TMP/stalldata.conf" >"$TMP/sig.conf"
"$BIN" run -c "$TMP/sig.conf" >"$TMP/sig.out" 2>&1 &
rp=$!
sleep 2
t0=$(date +%s)
kill -TERM $rp
wait $rp; RC=$?
t1=$(date +%s)
J=$TMP/sig.json
assert "SIGTERM during a stalled transaction: exit 3 (got $RC)" [ "$RC" = 3 ]
assert "SIGTERM during a stalled transaction: ended within 4 s ($((t1 - t0)) s)" [ $((t1 - t0)) -le 4 ]
assert "SIGTERM during a stalled transaction: JSON says interrupted" [ "$(j 'r["interrupted"]')" = True ]

# SIGTERM while an IMAP server stalls (timeouts 60 s): the command in flight
# gives up within a second and the probe is reported interrupted.
rm -f "$TMP/port"
/usr/bin/python3 "$PEER" ok --port-file "$TMP/port" --log "$TMP/sig2.log" --lifetime 60 \
	</dev/null >/dev/null 2>&1 &
PIDS="$PIDS $!"
i=0
while [ ! -s "$TMP/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
smtpport=$(cat "$TMP/port")
/usr/bin/python3 "$srcdir/tests/peers/imap_peer.py" stall --lifetime 60 >"$TMP/imapport" 2>/dev/null &
PIDS="$PIDS $!"
i=0
while [ ! -s "$TMP/imapport" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
cat >"$TMP/sig2.conf" <<CONF
name = "peer_sig2";
lock_dir = "$TMP";
relay = { url = "smtp://127.0.0.1:$smtpport"; tls = "none"; from = "probe@example.test"; };
probe = { deadline = 120; poll_interval = 1; };
imap_limits = { connect_timeout = 60; timeout = 60; };
report = { json = "$TMP/sig2.json"; };
seeds = ( { address = "a@gmail.example"; provider = "gmail";
            imap = { url = "imap://127.0.0.1:$(head -n 1 "$TMP/imapport")"; tls = "none";
                     password_file = "$TMP/seed.pass"; }; } );
CONF
"$BIN" run -c "$TMP/sig2.conf" >"$TMP/sig2.out" 2>&1 &
rp=$!
sleep 2
t0=$(date +%s)
kill -TERM $rp
wait $rp; RC=$?
t1=$(date +%s)
J=$TMP/sig2.json
assert "SIGTERM while IMAP stalls: exit 3 (got $RC)" [ "$RC" = 3 ]
assert "SIGTERM while IMAP stalls: ended within 4 s ($((t1 - t0)) s)" [ $((t1 - t0)) -le 4 ]
assert "SIGTERM while IMAP stalls: outcome error, diagnostic says interrupted" \
	[ "$(j 'int(r["seeds"][0]["outcome"] == "error" and "interrupted" in r["seeds"][0]["diagnostic"])')" = 1 ]

run_peer ok "" 3
assert "accepted, not found: missing" [ "$(j 'r["seeds"][0]["outcome"]')" = missing ]
assert "accepted: queue id from 'queued as'" [ "$(j 'r["seeds"][0]["relay_reply"]["queue_id"]')" = 4XyZ1B2c3Dz ]
assert "accepted: submit time recorded" [ "$(j 'int(r["seeds"][0]["submit_time_unix"] > 0)')" = 1 ]

# IMAP unreachable: the mailboxes cannot be armed, so nothing is sent.
imapport=$(free_port)   # nothing listens there
mv "$TMP/ok.log" "$TMP/ok-first.log"
run_peer ok "" 3
assert "IMAP unreachable: error, not sent" [ "$(j 'int(r["seeds"][0]["outcome"] == "error" and r["seeds"][0]["not_sent"])')" = 1 ]
assert "IMAP unreachable: the diagnostic says not watchable" \
	[ "$(j 'int("not sent: mailbox not watchable" in r["seeds"][0]["diagnostic"])')" = 1 ]
assert "IMAP unreachable: the relay saw no transaction" sh -c "! grep -q '^RCPT' '$TMP/ok.log' 2>/dev/null"

echo "# $CHECKS checks, $FAILS failed"
[ "$CHECKS" -gt 0 ] && [ "$FAILS" -eq 0 ]
