#!/bin/sh
# Self-test of the loopback mail world, part 1: provider folders and TLS.
# Sends through the relay's plain listener with swaks and asserts where each
# message landed (doveadm and IMAP via curl), which listeners offer STARTTLS
# and AUTH, and how certificates verify. Exit 0 pass, 1 fail, 77 skip (not root).
here=$(cd "$(dirname "$0")" && pwd)
. "${top_srcdir:-$here/../..}/tests/world/lib.sh"

for tool in swaks curl doveadm postfix dovecot postgrey openssl; do
	command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool not installed"; exit 77; }
done
world_up

SEED_PW=$(cat "$SEED_PASSFILE")
RUN=$(date +%s)-$$

# send RCPT TOKEN [marker]: one message through the plain relay listener.
send() {
	if [ "${3:-}" = marker ]; then
		swaks -s 127.0.0.1 -p "$RELAY_PLAIN_PORT" -f probe@sender.test -t "$1" \
			--h-Subject "world selftest $2" --h-X-Test-Token "$2" \
			--add-header "X-Test-Spam: yes" >/dev/null 2>&1
	else
		swaks -s 127.0.0.1 -p "$RELAY_PLAIN_PORT" -f probe@sender.test -t "$1" \
			--h-Subject "world selftest $2" --h-X-Test-Token "$2" >/dev/null 2>&1
	fi
}

# ---- placement per provider domain
cases=""
for p in $WORLD_PROVIDERS; do
	P=$(echo "$p" | tr a-z A-Z)
	eval "spam=\$SPAM_FOLDER_$P"
	for c in inbox:plain:INBOX inbox:marker:INBOX spam:plain:SPAM marker:plain:INBOX marker:marker:SPAM; do
		user=${c%%:*}
		rest=${c#*:}
		how=${rest%%:*}
		want=${rest#*:}
		[ "$want" = SPAM ] && want=$spam
		tok="$RUN-$user-$how-$p"
		if send "$user@$p.test" "$tok" "$how"; then
			cases="$cases $user@$p.test|$tok|$how"
			eval "want_$(echo "$tok" | tr -c 'A-Za-z0-9\n' _)=\$want"
		else
			not_ok "relay accepted the message to $user@$p.test ($how)"
		fi
	done
done
for c in $cases; do
	user=${c%%|*}
	rest=${c#*|}
	tok=${rest%%|*}
	how=${rest#*|}
	eval "want=\$want_$(echo "$tok" | tr -c 'A-Za-z0-9\n' _)"
	got=$(world_wait_folder 30 "$user" "$tok")
	check "$user, $how message lands in '$want'" "$want" "$got"
done

# The intl spam folder answers to its modified UTF-7 wire name over IMAPS.
tok="$RUN-spam-plain-intl"
out=$(curl -sS --max-time 20 --cacert "$WORLD_CA" -u "spam@intl.test:$SEED_PW" \
	"imaps://localhost:$IMAPS_PORT/Courrier%20ind%26AOk-sirable" \
	-X "SEARCH HEADER X-Test-Token $tok" 2>&1)
case $out in
*"SEARCH "[0-9]*) ok "IMAPS SEARCH in 'Courrier ind&AOk-sirable' finds the intl spam message" ;;
*) not_ok "IMAPS SEARCH in 'Courrier ind&AOk-sirable' finds the intl spam message: $out" ;;
esac

# Special-use attributes as listed over IMAP.
list_su() {
	curl -sS --max-time 20 --cacert "$WORLD_CA" -u "$1:$SEED_PW" \
		"imaps://localhost:$IMAPS_PORT/" -X 'LIST "" "*" RETURN (SPECIAL-USE)' 2>&1 | tr -d '\r'
}
out=$(list_su inbox@gmail.test)
case $out in
*'\Junk) "/" [Gmail]/Spam'*) ok "gmail.test lists [Gmail]/Spam with \\Junk" ;;
*) not_ok "gmail.test lists [Gmail]/Spam with \\Junk: $out" ;;
esac
case $out in
*'\Trash) "/" [Gmail]/Trash'*) ok "gmail.test lists [Gmail]/Trash with \\Trash" ;;
*) not_ok "gmail.test lists [Gmail]/Trash with \\Trash: $out" ;;
esac
out=$(list_su inbox@outlook.test)
case $out in
*'\Junk) "/" Junk'*) ok "outlook.test lists Junk with \\Junk" ;;
*) not_ok "outlook.test lists Junk with \\Junk: $out" ;;
esac
out=$(list_su inbox@yahoo.test)
case $out in
*'\Junk) "/" Bulk'*) ok "yahoo.test lists Bulk with \\Junk" ;;
*) not_ok "yahoo.test lists Bulk with \\Junk: $out" ;;
esac
out=$(list_su inbox@bulkmail.test)
case $out in
*'"Bulk Mail"'*'\Junk'* | *'\Junk'*'"Bulk Mail"'*) not_ok "bulkmail.test has no \\Junk folder: $out" ;;
*'"Bulk Mail"'*) ok "bulkmail.test lists 'Bulk Mail' and no \\Junk folder" ;;
*) not_ok "bulkmail.test lists 'Bulk Mail': $out" ;;
esac
out=$(list_su inbox@intl.test)
case $out in
*'\Junk'*) not_ok "intl.test has no \\Junk folder: $out" ;;
*'"Courrier ind&AOk-sirable"'*) ok "intl.test lists \"Courrier ind&AOk-sirable\" without special-use" ;;
*) not_ok "intl.test lists \"Courrier ind&AOk-sirable\": $out" ;;
esac

# ---- relay listeners
out=$(swaks -s 127.0.0.1 -p "$RELAY_STARTTLS_PORT" --quit-after EHLO 2>&1)
case $out in
*STARTTLS*) ok "RELAY_STARTTLS_PORT offers STARTTLS" ;;
*) not_ok "RELAY_STARTTLS_PORT offers STARTTLS" ;;
esac
out=$(swaks -s 127.0.0.1 -p "$RELAY_PLAIN_PORT" --quit-after EHLO 2>&1)
case $out in
*STARTTLS* | *"250-AUTH"* | *"250 AUTH"*) not_ok "RELAY_PLAIN_PORT offers neither STARTTLS nor AUTH" ;;
*"250 "*) ok "RELAY_PLAIN_PORT offers neither STARTTLS nor AUTH" ;;
*) not_ok "RELAY_PLAIN_PORT answers EHLO: $out" ;;
esac
out=$(swaks -s 127.0.0.1 -p "$RELAY_TLSREQ_PORT" -f probe@sender.test -t inbox@yahoo.test 2>&1)
case $out in
*"530 5.7.0"*) ok "RELAY_TLSREQ_PORT refuses mail before STARTTLS (530 5.7.0)" ;;
*) not_ok "RELAY_TLSREQ_PORT refuses mail before STARTTLS" ;;
esac
out=$(swaks -s 127.0.0.1 -p "$RELAY_TLSREQ_PORT" -tls -f probe@sender.test -t inbox@yahoo.test 2>&1)
case $out in
*"TLS started"*"554 5.7.1"*"Access denied"*) ok "RELAY_TLSREQ_PORT refuses relaying without AUTH" ;;
*) not_ok "RELAY_TLSREQ_PORT refuses relaying without AUTH" ;;
esac
tok="$RUN-tlsreq"
out=$(swaks -s 127.0.0.1 -p "$RELAY_TLSREQ_PORT" -tls -a PLAIN -au "$RELAY_USER" -ap "$(cat "$RELAY_PASSFILE")" \
	-f probe@sender.test -t inbox@yahoo.test --h-X-Test-Token "$tok" 2>&1)
case $out in
*"TLS started"*"235 2.7.0"*"queued as"*) ok "RELAY_TLSREQ_PORT accepts STARTTLS + AUTH PLAIN as $RELAY_USER" ;;
*) not_ok "RELAY_TLSREQ_PORT accepts STARTTLS + AUTH PLAIN as $RELAY_USER" ;;
esac
check "the authenticated message reaches inbox@yahoo.test INBOX" INBOX "$(world_wait_folder 30 inbox@yahoo.test "$tok")"
out=$(swaks -s 127.0.0.1 -p "$RELAY_SMTPS_PORT" -tlsc -a PLAIN -au "$RELAY_USER" -ap "$(cat "$RELAY_PASSFILE")" \
	-f probe@sender.test -t inbox@yahoo.test 2>&1)
case $out in
*"TLS started"*"235 2.7.0"*"queued as"*) ok "RELAY_SMTPS_PORT (implicit TLS) accepts AUTH PLAIN" ;;
*) not_ok "RELAY_SMTPS_PORT (implicit TLS) accepts AUTH PLAIN" ;;
esac
out=$(swaks -s 127.0.0.1 -p "$RELAY_SMTPS_PORT" -tlsc -a PLAIN -au "$RELAY_USER" -ap "$(cat "$WRONG_PASSFILE")" \
	-f probe@sender.test -t inbox@yahoo.test 2>&1)
case $out in
*"535 5.7.8"*) ok "RELAY_SMTPS_PORT refuses a wrong password (535 5.7.8)" ;;
*) not_ok "RELAY_SMTPS_PORT refuses a wrong password" ;;
esac

# ---- IMAP TLS and certificates
imap_list() { curl -sS --max-time 20 -u "inbox@gmail.test:$SEED_PW" "$@" -X 'LIST "" INBOX' 2>&1; }
out=$(imap_list --cacert "$WORLD_CA" "imaps://localhost:$IMAPS_PORT/")
rc=$?
check "IMAPS verifies with WORLD_CA by name localhost (curl exit)" 0 "$rc"
out=$(imap_list --cacert "$WORLD_CA" "imaps://127.0.0.1:$IMAPS_PORT/")
rc=$?
check "IMAPS by IP 127.0.0.1 fails host-name verification (curl exit 60)" 60 "$rc"
case $out in
*"subject name"*) ok "the failure by IP names the subject-name mismatch" ;;
*) not_ok "the failure by IP names the subject-name mismatch: $out" ;;
esac
out=$(imap_list "imaps://localhost:$IMAPS_PORT/")
rc=$?
check "IMAPS without WORLD_CA fails verification (curl exit 60)" 60 "$rc"
out=$(imap_list --cacert "$WORLD_CA" --ssl-reqd "imap://localhost:$IMAP_PORT/")
rc=$?
check "IMAP STARTTLS on IMAP_PORT verifies with WORLD_CA" 0 "$rc"
out=$(curl -sS --max-time 20 --cacert "$WORLD_CA" -u "inbox@gmail.test:$(cat "$WRONG_PASSFILE")" \
	"imaps://localhost:$IMAPS_PORT/" -X 'LIST "" INBOX' 2>&1)
rc=$?
check "IMAPS refuses a wrong password (curl exit 67)" 67 "$rc"
out=$(imap_list --cacert "$WORLD_EXPIRED_CA" "imaps://localhost:$IMAPS_EXPIRED_PORT/")
rc=$?
check "IMAPS_EXPIRED_PORT fails verification even with its own certificate (curl exit 60)" 60 "$rc"
case $out in
*expired*) ok "the failure on IMAPS_EXPIRED_PORT says 'expired'" ;;
*) not_ok "the failure on IMAPS_EXPIRED_PORT says 'expired': $out" ;;
esac
before=$(grep -c 'Login: ' "$DOVECOT_NOTLS_LOG" 2>/dev/null)
out=$(imap_list --ssl-reqd "imap://localhost:$IMAP_NOTLS_PORT/")
rc=$?
check "STARTTLS required against IMAP_NOTLS_PORT (not offered) fails (curl exit 64)" 64 "$rc"
sleep 1
after=$(grep -c 'Login: ' "$DOVECOT_NOTLS_LOG" 2>/dev/null)
check "no login reached the no-TLS Dovecot (DOVECOT_NOTLS_LOG)" "$before" "$after"
if grep -q 'no auth attempts' "$DOVECOT_NOTLS_LOG"; then
	ok "DOVECOT_NOTLS_LOG shows the connection closed with no auth attempts"
else
	not_ok "DOVECOT_NOTLS_LOG shows the connection closed with no auth attempts"
fi
if grep -q "$SEED_PW" "$DOVECOT_NOTLS_LOG" "$DOVECOT_LOG" "$RELAY_LOG"; then
	not_ok "no password appears in the logs"
else
	ok "no password appears in the logs"
fi

world_result
