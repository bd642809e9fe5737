#!/bin/sh
# Self-test of the loopback mail world, part 2: the misbehaving receiving MXs
# behind the relay. greylist.test (postgrey) delivers after GREYLIST_DELAY,
# reject.test answers 550 5.7.1 after the relay accepted (DSN to the envelope
# sender probe@sender.test), defer.test answers 451 4.7.1 forever (the message
# stays queued; a delay DSN follows after delay_warning_time).
# Exit 0 pass, 1 fail, 77 skip (not root).
here=$(cd "$(dirname "$0")" && pwd)
. "${top_srcdir:-$here/../..}/tests/world/lib.sh"

for tool in swaks doveadm postfix dovecot postgrey openssl; do
	command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool not installed"; exit 77; }
done
world_up

RUN=$(date +%s)-$$

send() { # SENDER RCPT TOKEN
	swaks -s 127.0.0.1 -p "$RELAY_PLAIN_PORT" -f "$1" -t "$2" \
		--h-Subject "world selftest $3" --h-X-Test-Token "$3" 2>&1
}

# probe@sender.test's message whose text contains TOKEN: print its saved time
# and write its text to FILE. Waits (bounded) up to SECS.
# wait_dsn SECS TOKEN ACTION FILE
wait_dsn() {
	_deadline=$(($(date +%s) + $1))
	while :; do
		doveadm -c "$DOVECOT_CONF" fetch -u "$BOUNCE_USER" text \
			mailbox INBOX TEXT "$2" TEXT "Action: $3" </dev/null >"$4" 2>/dev/null
		[ -s "$4" ] && return 0
		[ "$(date +%s)" -lt "$_deadline" ] || return 1
		sleep 1
	done
}

# ---- send all three first, so their waits overlap
tg="$RUN-grey"
tr_="$RUN-reject"
td="$RUN-defer"
t0=$(date +%s)
# A fresh envelope sender, so postgrey has never seen the triplet.
out=$(send "grey-$RUN@sender.test" inbox@greylist.test "$tg")
case $out in
*"queued as"*) ok "relay accepts the message to inbox@greylist.test" ;;
*) not_ok "relay accepts the message to inbox@greylist.test" ;;
esac
out=$(send probe@sender.test inbox@reject.test "$tr_")
case $out in
*"queued as"*) ok "relay accepts the message to inbox@reject.test (250 before the 550)" ;;
*) not_ok "relay accepts the message to inbox@reject.test" ;;
esac
out=$(send probe@sender.test inbox@defer.test "$td")
qid=$(printf '%s\n' "$out" | sed -n 's/.*queued as \([0-9A-Za-z]*\).*/\1/p' | head -n 1)
if [ -n "$qid" ]; then
	ok "relay accepts the message to inbox@defer.test (queue id $qid)"
else
	not_ok "relay accepts the message to inbox@defer.test"
fi

# ---- greylist.test
got=$(world_wait_folder $((GREYLIST_DELAY + 40)) inbox@greylist.test "$tg")
check "the greylisted message arrives in inbox@greylist.test INBOX" INBOX "$got"
saved=$(doveadm -c "$DOVECOT_CONF" fetch -u inbox@greylist.test date.saved.unixtime \
	mailbox INBOX HEADER X-Test-Token "$tg" </dev/null 2>/dev/null |
	sed -n 's/^date.saved.unixtime: //p' | head -n 1)
if [ -n "$saved" ] && [ $((saved - t0)) -ge "$GREYLIST_DELAY" ]; then
	ok "greylisted delivery took $((saved - t0)) s >= GREYLIST_DELAY=$GREYLIST_DELAY s"
else
	not_ok "greylisted delivery took ${saved:+$((saved - t0)) s} >= GREYLIST_DELAY=$GREYLIST_DELAY s"
fi
if grep -q "grey-$RUN@sender.test.*Greylisted\|Greylisted.*grey-$RUN@sender.test" "$RELAY_LOG" ||
	grep -q "said: 4[0-9][0-9] .*Greylisted" "$RELAY_LOG"; then
	ok "the relay log shows the first attempt was greylisted"
else
	not_ok "the relay log shows the first attempt was greylisted"
fi

# ---- reject.test: DSN to the envelope sender
f=$WORLD_DIR/dsn-reject.txt
if wait_dsn 30 "$tr_" failed "$f"; then
	ok "a failure DSN for the reject.test message reached $BOUNCE_USER over Dovecot"
else
	not_ok "a failure DSN for the reject.test message reached $BOUNCE_USER"
fi
if grep -q 'Status: 5\.7\.1' "$f" && grep -q 'inbox@reject.test' "$f"; then
	ok "the DSN says Status: 5.7.1 for inbox@reject.test"
else
	not_ok "the DSN says Status: 5.7.1 for inbox@reject.test"
fi

# ---- defer.test: stays queued, delay DSN
q=$(world_queue 2>&1)
case $q in
*"$qid"*"451 4.7.1"*"inbox@defer.test"*) ok "the defer.test message is still in the relay queue with 451 4.7.1" ;;
*) not_ok "the defer.test message is still in the relay queue with 451 4.7.1: $q" ;;
esac
f=$WORLD_DIR/dsn-delay.txt
if wait_dsn $((DELAY_WARNING_TIME + 40)) "$td" delayed "$f"; then
	ok "a delay DSN (Action: delayed) for the defer.test message reached $BOUNCE_USER"
else
	not_ok "a delay DSN (Action: delayed) for the defer.test message reached $BOUNCE_USER"
fi
if grep -q 'Status: 4\.7\.1' "$f"; then
	ok "the delay DSN says Status: 4.7.1"
else
	not_ok "the delay DSN says Status: 4.7.1"
fi
q=$(world_queue 2>&1)
case $q in
*"$qid"*) ok "after the delay DSN the message is still queued" ;;
*) not_ok "after the delay DSN the message is still queued" ;;
esac

world_result
