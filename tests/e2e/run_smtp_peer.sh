#!/bin/sh
# `inboxprobe run` against the scripted SMTP peer (tests/peers/smtp_peer.py):
# how each relay reply becomes an outcome, the relay_reply series, the
# diagnostic, the retries of a 4xx inside the deadline, and the exit code.
# No mail world needed: the seeds' mailboxes are a scripted IMAP peer
# (tests/peers/imap_peer.py count: any login, INBOX and Junk, nothing found),
# which arms them before their probes are sent.
set -u
srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${top_builddir:-.}/inboxprobe
PEER=$srcdir/tests/peers/smtp_peer.py
[ -x "$BIN" ] || { echo "no inboxprobe binary at $BIN"; exit 99; }
WORLD_FAILS=0 WORLD_CHECKS=0
ok() { WORLD_CHECKS=$((WORLD_CHECKS + 1)); echo "ok - $*"; }
not_ok() { WORLD_CHECKS=$((WORLD_CHECKS + 1)); WORLD_FAILS=$((WORLD_FAILS + 1)); echo "not ok - $*"; }
. "$srcdir/tests/e2e/common.sh"

T=$(mktemp -d)   # also each configuration's lock_dir: the run locks stay private
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
printf 'seedpass\n' >"$T/seed.pass"; chmod 600 "$T/seed.pass"
printf 'relay-secret-XYZ\n' >"$T/relay.pass"; chmod 600 "$T/relay.pass"
/usr/bin/python3 "$srcdir/tests/peers/imap_peer.py" count --lifetime 170 >"$T/countport" 2>/dev/null &
pids="$pids $!"
i=0
while [ ! -s "$T/countport" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
imapport=$(head -n 1 "$T/countport")

# run_peer SCENARIO [EXTRA-RELAY-SETTINGS] [DEADLINE]: start a peer and run
# one round with two seeds against it; sets RC, J (the JSON path).
run_peer() {
	scen=$1 extra=${2:-} deadline=${3:-8}
	rm -f "$T/port"
	/usr/bin/python3 "$PEER" "$scen" --port-file "$T/port" --log "$T/$scen.log" --lifetime 60 \
		</dev/null >/dev/null 2>"$T/$scen.peer.err" &
	pids="$pids $!"
	i=0
	while [ ! -s "$T/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	port=$(cat "$T/port")
	cat >"$T/$scen.conf" <<CONF
name = "peer_$scen";
lock_dir = "$T";
relay = { url = "smtp://127.0.0.1:$port"; tls = "none"; from = "probe@example.test";
          connect_timeout = 3; timeout = 3; $extra };
probe = { deadline = $deadline; poll_interval = 1; };
report = { json = "$T/$scen.json"; textfile = "$T/$scen.prom"; };
imap_defaults = { url = "imap://127.0.0.1:$imapport"; tls = "none"; password_file = "$T/seed.pass"; };
seeds = ( { address = "a@gmail.example"; provider = "gmail"; },
          { address = "b@yahoo.example"; provider = "yahoo"; } );
CONF
	"$BIN" run -c "$T/$scen.conf" >"$T/$scen.out" 2>&1
	RC=$?
	J=$T/$scen.json
}
# j EXPR: evaluate a Python expression over the JSON report r.
j() { /usr/bin/python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$J" "$1"; }

run_peer greet554
assert "554 greeting: outcome rejected" [ "$(j 'r["seeds"][0]["outcome"]')" = rejected ]
assert "554 greeting: relay reply 554 5.7.0 at connect" [ "$(j '"%d %s %s" % (r["seeds"][0]["relay_reply"]["code"], r["seeds"][0]["relay_reply"]["enhanced"], r["seeds"][0]["relay_reply"]["stage"])')" = "554 5.7.0 connect" ]
assert "554 greeting: relay_reply series" grep -q 'inboxprobe_relay_reply{config="peer_greet554",seed="a@gmail.example",provider="gmail",code="554",enhanced="5.7.0"} 1' "$T/greet554.prom"
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
assert "452 after RCPT: relay_reply series code 452" grep -q 'inboxprobe_relay_reply{config="peer_rcpt452",seed="b@yahoo.example",provider="yahoo",code="452",enhanced="4.5.3"} 1' "$T/rcpt452.prom"
assert "452: deferred share 1" grep -q 'inboxprobe_placement_ratio{config="peer_rcpt452",provider="gmail",folder="deferred"} 1' "$T/rcpt452.prom"

run_peer rcpt550
assert "550 5.1.1 after RCPT: rejected" [ "$(j 'r["seeds"][0]["outcome"]')" = rejected ]
assert "550 5.1.1: diagnostic says unknown mailbox" sh -c "echo '$(j 'r["seeds"][0]["diagnostic"]')' | grep -qi 'unknown mailbox'"

run_peer data554
assert "554 after DATA: rejected at stage data" [ "$(j '"%s %s" % (r["seeds"][0]["outcome"], r["seeds"][0]["relay_reply"]["stage"])')" = "rejected data" ]

run_peer drop
assert "drop after DATA: error (a stale 250 is not trusted)" [ "$(j 'r["seeds"][0]["outcome"]')" = error ]
assert "drop after DATA: no relay_reply series" sh -c "! grep -q '^inboxprobe_relay_reply' '$T/drop.prom'"
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

run_peer auth535 "username = \"relay@example.test\"; password_file = \"$T/relay.pass\";"
assert "535 at AUTH: error" [ "$(j 'r["seeds"][0]["outcome"]')" = error ]
assert "535 at AUTH: diagnostic carries the 535 text" sh -c "echo '$(j 'r["seeds"][0]["diagnostic"]')' | grep -q '535'"
assert "535 at AUTH: the relay password is never printed" sh -c "! grep -q 'relay-secret-XYZ' '$T/auth535.out' '$T/auth535.json' '$T/auth535.prom'"
assert "535 at AUTH: exit 3 (got $RC)" [ "$RC" = 3 ]

run_peer stall "" 6
assert "stalled relay: error (timeout)" [ "$(j 'r["seeds"][0]["outcome"]')" = error ]
assert "stalled relay: the round ends by its deadline ($(j 'r["duration_seconds"]') s <= 6 + 5)" [ "$(j 'int(r["duration_seconds"] <= 11)')" = 1 ]

# SIGTERM aborts a transaction in flight (the relay stalls after DATA, its
# timeout is 60 s): the round ends within a few seconds and writes reports.
rm -f "$T/port"
/usr/bin/python3 "$PEER" stalldata --port-file "$T/port" --log "$T/sig.log" --lifetime 60 \
	</dev/null >/dev/null 2>&1 &
pids="$pids $!"
i=0
while [ ! -s "$T/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
sed -e "/^relay/s/127.0.0.1:[0-9]*\"; tls/127.0.0.1:$(cat "$T/port")\"; tls/" -e 's/timeout = 3;/timeout = 60;/' \
	-e 's/deadline = [0-9]*;/deadline = 120;/' -e 's/peer_stalldata/peer_sig/' -e "s#$T/stalldata#$T/sig#g" \
	"$T/stalldata.conf" >"$T/sig.conf"
"$BIN" run -c "$T/sig.conf" >"$T/sig.out" 2>&1 &
rp=$!
sleep 2
t0=$(date +%s)
kill -TERM $rp
wait $rp; RC=$?
t1=$(date +%s)
J=$T/sig.json
assert "SIGTERM during a stalled transaction: exit 3 (got $RC)" [ "$RC" = 3 ]
assert "SIGTERM during a stalled transaction: ended within 4 s ($((t1 - t0)) s)" [ $((t1 - t0)) -le 4 ]
assert "SIGTERM during a stalled transaction: JSON says interrupted" [ "$(j 'r["interrupted"]')" = True ]

# SIGTERM while an IMAP server stalls (timeouts 60 s): the command in flight
# gives up within a second and the probe is reported interrupted.
rm -f "$T/port"
/usr/bin/python3 "$PEER" ok --port-file "$T/port" --log "$T/sig2.log" --lifetime 60 \
	</dev/null >/dev/null 2>&1 &
pids="$pids $!"
i=0
while [ ! -s "$T/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
smtpport=$(cat "$T/port")
/usr/bin/python3 "$srcdir/tests/peers/imap_peer.py" stall --lifetime 60 >"$T/imapport" 2>/dev/null &
pids="$pids $!"
i=0
while [ ! -s "$T/imapport" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
cat >"$T/sig2.conf" <<CONF
name = "peer_sig2";
lock_dir = "$T";
relay = { url = "smtp://127.0.0.1:$smtpport"; tls = "none"; from = "probe@example.test"; };
probe = { deadline = 120; poll_interval = 1; };
imap_limits = { connect_timeout = 60; timeout = 60; };
report = { json = "$T/sig2.json"; };
seeds = ( { address = "a@gmail.example"; provider = "gmail";
            imap = { url = "imap://127.0.0.1:$(head -n 1 "$T/imapport")"; tls = "none";
                     password_file = "$T/seed.pass"; }; } );
CONF
"$BIN" run -c "$T/sig2.conf" >"$T/sig2.out" 2>&1 &
rp=$!
sleep 2
t0=$(date +%s)
kill -TERM $rp
wait $rp; RC=$?
t1=$(date +%s)
J=$T/sig2.json
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
mv "$T/ok.log" "$T/ok-first.log"
run_peer ok "" 3
assert "IMAP unreachable: error, not sent" [ "$(j 'int(r["seeds"][0]["outcome"] == "error" and r["seeds"][0]["not_sent"])')" = 1 ]
assert "IMAP unreachable: the diagnostic says not watchable" \
	[ "$(j 'int("not sent: mailbox not watchable" in r["seeds"][0]["diagnostic"])')" = 1 ]
assert "IMAP unreachable: the relay saw no transaction" sh -c "! grep -q '^RCPT' '$T/ok.log' 2>/dev/null"

echo "# $WORLD_CHECKS checks, $WORLD_FAILS failed"
[ "$WORLD_CHECKS" -gt 0 ] && [ "$WORLD_FAILS" -eq 0 ]
