#!/bin/sh
# smtp_world.sh - smtp_submit (via tests/tools/smtpsend) against the real
# loopback relay (Postfix) of tests/world: plain, STARTTLS, STARTTLS+AUTH,
# SMTPS; STARTTLS required where none is offered (SMTP_ETLS, no AUTH or MAIL
# sent in clear); a wrong password (SMTP_EAUTH, 535 5.7.8); certificate
# failures; and the delivered copy, fetched over IMAP, byte-identical in the
# body to what was submitted (body lines ".", ".dot", "..two", CRLF).
here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=${top_srcdir:-$here/../..}
builddir=${top_builddir:-.}
SEND=$builddir/tests/tools/smtpsend
[ -x "$SEND" ] || { echo "SKIP: $SEND not built (make check builds it)"; exit 77; }
for tool in curl postfix dovecot postgrey; do
	command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool not installed"; exit 77; }
done
. "$top_srcdir/tests/world/lib.sh"
world_up

T=$WORLD_DIR/smtp-e2e
mkdir -p "$T"
field() { sed -n "s/^$1=//p" "$T/out"; }
RUN=$(date +%s)$$

# send NAME URL RCPT MESSAGE [VAR=value...]: run smtpsend, output in $T/out
send() {
	_name=$1 _url=$2 _rcpt=$3 _msg=$4
	shift 4
	env SMTP_TIMEOUT=20 "$@" "$SEND" "$_url" probe@sender.test "$_rcpt" "$_msg" >"$T/out" 2>"$T/err"
	echo "# $_name: $(field err) $(field code) $(field enhanced) $(field stage) $(field errstr)"
}
# expect NAME ERR CODE ENHANCED STAGE
expect() {
	check "$1: result" "$2 $3 [$4] $5" "$(field err) $(field code) [$(field enhanced)] $(field stage)"
}
# last_disconnect LISTENER: Postfix's per-connection command counts
last_disconnect() {
	sleep 0.5
	grep "postfix/$1/smtpd" "$RELAY_LOG" | grep " disconnect from " | tail -n 1
}

# ---- plain, tls = none
send plain "smtp://127.0.0.1:$RELAY_PLAIN_PORT" inbox@gmail.test - SMTP_TLS=none
expect plain ok 250 2.0.0 data
qid=$(field queue_id)
check "plain: queue id from 'queued as'" 1 "$([ -n "$qid" ] && grep -q "$qid" "$RELAY_LOG" && echo 1)"
check "plain: submit time within the transaction" 1 "$(field submit_time_ok)"

# ---- STARTTLS (offered, not required by the server), CA by name localhost
send starttls "smtp://localhost:$RELAY_STARTTLS_PORT" inbox@gmail.test - SMTP_CA="$WORLD_CA"
expect starttls ok 250 2.0.0 data
check "starttls: TLS used on the relay" 1 \
	"$(grep 'postfix/relay-starttls/smtpd' "$RELAY_LOG" | grep -q 'TLS connection established' && echo 1)"

# ---- STARTTLS + AUTH required
send tlsreq "smtp://localhost:$RELAY_TLSREQ_PORT" inbox@gmail.test - \
	SMTP_CA="$WORLD_CA" SMTP_USER="$RELAY_USER" SMTP_PASSFILE="$RELAY_PASSFILE"
expect "starttls+auth" ok 250 2.0.0 data

# ---- SMTPS (implicit TLS) + AUTH
send smtps "smtps://localhost:$RELAY_SMTPS_PORT" inbox@gmail.test - \
	SMTP_CA="$WORLD_CA" SMTP_USER="$RELAY_USER" SMTP_PASSFILE="$RELAY_PASSFILE"
expect smtps ok 250 2.0.0 data

# ---- STARTTLS required on the plain listener, which offers none
send no-starttls "smtp://localhost:$RELAY_PLAIN_PORT" inbox@gmail.test - \
	SMTP_CA="$WORLD_CA" SMTP_USER="$RELAY_USER" SMTP_PASSFILE="$RELAY_PASSFILE"
expect no-starttls tls 0 "" connect
d=$(last_disconnect relay-plain)
echo "# $d"
case $d in
*auth=*|*mail=*) not_ok "no-starttls: AUTH or MAIL was sent in clear ($d)" ;;
*ehlo=*) ok "no-starttls: only EHLO in clear" ;;
*) not_ok "no-starttls: no disconnect line in the relay log" ;;
esac

# ---- wrong relay password
send wrong-password "smtp://localhost:$RELAY_TLSREQ_PORT" inbox@gmail.test - \
	SMTP_CA="$WORLD_CA" SMTP_USER="$RELAY_USER" SMTP_PASSFILE="$WRONG_PASSFILE"
expect wrong-password auth 535 5.7.8 auth
case $(field text) in
*"authentication failed"*) ok "wrong-password: 535 text kept" ;;
*) not_ok "wrong-password: text '$(field text)'" ;;
esac
pw=$(cat "$RELAY_PASSFILE") wpw=$(cat "$WRONG_PASSFILE")
check "wrong-password: no password printed" 0 \
	"$(cat "$T/out" "$T/err" | grep -c -F -e "$pw" -e "$wpw")"

# ---- certificate failures: no CA (self-signed), wrong name (SAN is localhost only)
send no-ca "smtps://localhost:$RELAY_SMTPS_PORT" inbox@gmail.test - SMTP_CA=/etc/ssl/certs/ca-certificates.crt
expect "smtps without the world CA" tls 0 "" connect
send wrong-name "smtps://127.0.0.1:$RELAY_SMTPS_PORT" inbox@gmail.test - SMTP_CA="$WORLD_CA"
expect "smtps to 127.0.0.1 (name mismatch)" tls 0 "" connect

# ---- no AUTH on the listener that requires it: relay access denied at RCPT
send unauthenticated "smtp://localhost:$RELAY_TLSREQ_PORT" inbox@gmail.test - SMTP_CA="$WORLD_CA"
expect "unauthenticated relaying" perm 554 5.7.1 rcpt

# ---- byte-identical body through Postfix and Dovecot, fetched over IMAP
tok=$(printf '%032x' "$RUN" | cut -c1-32)
printf 'Subject: smtp e2e {{token}}\r\nX-Test-Token: %s\r\n\r\nfirst line\r\n.\r\n.dot\r\n..two\r\n. \r\nlast {{token}}\r\n' \
	"$tok" >"$T/template.eml"
send body "smtp://127.0.0.1:$RELAY_PLAIN_PORT" inbox@gmail.test @build SMTP_TLS=none \
	SMTP_TOKEN="$tok" SMTP_TEMPLATE="$T/template.eml" SMTP_SAVE="$T/sent.eml"
expect body ok 250 2.0.0 data
folder=$(world_wait_folder 30 inbox@gmail.test "$tok")
check "body: delivered to INBOX" INBOX "$folder"
SEED_PW=$(cat "$SEED_PASSFILE")
IMAP="imaps://localhost:$IMAPS_PORT"
uid=$(curl -s --cacert "$WORLD_CA" -u "inbox@gmail.test:$SEED_PW" "$IMAP/INBOX" \
	-X "UID SEARCH HEADER X-Test-Token $tok" | sed -n 's/^\* SEARCH \([0-9]*\).*/\1/p' | tr -d '\r')
curl -s --cacert "$WORLD_CA" -u "inbox@gmail.test:$SEED_PW" \
	"$IMAP/INBOX/;UID=$uid;SECTION=TEXT" -o "$T/got.body"
# the submitted body: everything after the first empty line
python3 - "$T/sent.eml" "$T/sent.body" <<'PY'
import sys
d = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(d[d.index(b"\r\n\r\n") + 4:])
PY
if [ -n "$uid" ] && cmp -s "$T/sent.body" "$T/got.body"; then
	ok "body: byte-identical over IMAP (uid $uid, $(wc -c <"$T/got.body") bytes)"
else
	not_ok "body: differs (uid '$uid')"
	od -c "$T/sent.body" | head -20
	od -c "$T/got.body" | head -20
fi

world_result
