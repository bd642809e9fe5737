#!/bin/sh
# IMAP discovery against the loopback mail world (real Dovecot):
# TLS verification (CA file, self-signed, IP host-name mismatch, expired),
# STARTTLS, no-STARTTLS refusal, folder resolution by name and by modified
# UTF-7, finding a delivered probe, and a cleanup that leaves the user's own
# \Deleted mail alone. Uses tests/tools/imapcheck (see its header).
# Exit 0 pass, 1 fail, 77 skip.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-.}
IC=$top_builddir/tests/tools/imapcheck
[ -x "$IC" ] || { echo "imapcheck not built: $IC" >&2; exit 99; }
. "$top_srcdir/tests/world/lib.sh"
world_up

U=inbox@bulkmail.test
common="--password-file $SEED_PASSFILE --timeout 10 --deadline 30 --from probe@sender.test"
imaps="imaps://localhost:$IMAPS_PORT"

# deliver RCPT FILE: LMTP delivery into Dovecot (sieve routes spam@...)
deliver() {
	python3 - "$LMTP_PORT" "$1" "$2" <<'EOF'
import smtplib, sys
port, rcpt, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
with open(path, 'rb') as f:
    msg = f.read()
with smtplib.LMTP('127.0.0.1', port) as l:
    l.sendmail('probe@sender.test', [rcpt], msg)
EOF
}

# mkmsg TOKEN FILE: a probe-like message
mkmsg() {
	printf 'From: probe@sender.test\r\nTo: x@example.test\r\nDate: %s\r\nMessage-ID: <%s@sender.test>\r\nSubject: inboxprobe %s\r\nX-Inboxprobe-Token: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nprobe %s\r\n' \
		"$(LC_ALL=C date -R)" "$1" "$1" "$1" "$1" >"$2"
}

field() { printf '%s\n' "$1" | awk -F'\t' -v k="$2" -v n="$3" '$1 == k { print $n; exit }'; }

# --- TLS
out=$("$IC" --url "$imaps" --user $U $common --ca-file "$WORLD_CA" open)
check "imaps by name with ca_file logs in" ok "$(printf '%s\n' "$out" | head -n 1)"
out=$("$IC" --url "$imaps" --user $U $common open)
check "imaps without ca_file: self-signed refused" tls "$(field "$out" error 2)"
case $out in *self-signed*) ok "message says self-signed" ;; *) not_ok "message says self-signed: $out" ;; esac
out=$("$IC" --url "imaps://127.0.0.1:$IMAPS_PORT" --user $U $common --ca-file "$WORLD_CA" open)
check "imaps by IP: host mismatch refused" tls "$(field "$out" error 2)"
case $out in *mismatch*) ok "message says mismatch" ;; *) not_ok "message says mismatch: $out" ;; esac
out=$("$IC" --url "imaps://localhost:$IMAPS_EXPIRED_PORT" --user $U $common --ca-file "$WORLD_EXPIRED_CA" open)
check "expired certificate refused" tls "$(field "$out" error 2)"
case $out in *expired*) ok "message says expired" ;; *) not_ok "message says expired: $out" ;; esac
out=$("$IC" --url "imap://localhost:$IMAP_PORT" --user $U $common --ca-file "$WORLD_CA" open)
check "STARTTLS on imap:// logs in" ok "$(printf '%s\n' "$out" | head -n 1)"
out=$("$IC" --url "imap://localhost:$IMAP_NOTLS_PORT" --user $U $common open)
check "no STARTTLS offered: refused" nostarttls "$(field "$out" error 2)"
if grep -q "Login: user=<" "$DOVECOT_NOTLS_LOG" 2>/dev/null; then
	not_ok "no login reached the no-TLS server"
else
	ok "no login reached the no-TLS server"
fi
grep -q "no auth attempts" "$DOVECOT_NOTLS_LOG" && ok "no-TLS server saw a connection without auth" ||
	not_ok "no-TLS server saw a connection without auth"
out=$("$IC" --url "$imaps" --user $U --password-file "$WRONG_PASSFILE" --ca-file "$WORLD_CA" open)
check "wrong password: auth" auth "$(field "$out" error 2)"
if grep -q "$(cat "$WRONG_PASSFILE")" "$DOVECOT_LOG"; then not_ok "password not in server log"; else ok "password not in server log"; fi

# --- folders
out=$("$IC" --url "$imaps" --user $U $common --ca-file "$WORLD_CA" list)
check "Bulk Mail resolved by name" "Bulk Mail" "$(field "$out" spam 2)"
check "  ... as a known name" "known name" "$(field "$out" spam 3)"
out=$("$IC" --url "$imaps" --user inbox@intl.test $common --ca-file "$WORLD_CA" list)
check "UTF-7 spam folder wire name" "$SPAM_FOLDER_INTL_WIRE" "$(field "$out" spam 2)"
check "UTF-7 folder decoded" "$SPAM_FOLDER_INTL" "$(printf '%s\n' "$out" | awk -F'\t' '$1=="folder" && $2=="Courrier ind&AOk-sirable" {print $3}')"
out=$("$IC" --url "$imaps" --user inbox@outlook.test $common --ca-file "$WORLD_CA" list)
check "outlook: \\Junk special-use" "special-use \\Junk" "$(field "$out" spam 3)"
check "outlook: trash" "Deleted Items" "$(field "$out" trash 2)"
# inboxprobe folders names the capabilities that decide how a round watches
# a seed: Dovecot offers IDLE and NOTIFY, but NOTIFY is not used for a spam
# folder named in modified UTF-7 (docs/configuration.md, "imap_limits")
"$top_builddir/inboxprobe" folders -c "$WORLD_DIR/inboxprobe.conf" >"$WORLD_DIR/folders.out" 2>&1
check "folders: exit 0" 0 $?
caps() { awk -v s="$1" '$1 == s { f = 1; next } /^[^ ]/ { f = 0 } f && $1 == "capabilities:"' "$WORLD_DIR/folders.out"; }
check "folders: outlook seed, IDLE and NOTIFY offered" \
	"  capabilities: UIDPLUS yes, MOVE yes, SPECIAL-USE yes, IDLE yes, NOTIFY yes" "$(caps inbox@outlook.test)"
check "folders: intl seed, NOTIFY not used for Courrier ind&AOk-sirable" \
	"  capabilities: UIDPLUS yes, MOVE yes, SPECIAL-USE yes, IDLE yes, NOTIFY yes (not used: the spam folder's name is modified UTF-7)" \
	"$(caps spam@intl.test)"

# --- find in the UTF-7 folder end to end
tmp=$WORLD_DIR/imaptest
mkdir -p "$tmp"
tok=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
mkmsg "$tok" "$tmp/probe.eml"
deliver spam@intl.test "$tmp/probe.eml"
other=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
out=$("$IC" --url "$imaps" --user spam@intl.test $common --ca-file "$WORLD_CA" --wait 10 \
	find "$SPAM_FOLDER_INTL_WIRE" "$other" "$tok")
check "probe found in Courrier indésirable" 1 "$(field "$out" hits 2)"
check "  ... for the second token" 1 "$(field "$out" hit 2)"
uv=$(field "$out" hit 3)
uid=$(field "$out" hit 4)
idate=$(field "$out" hit 5)
now=$(date +%s)
if [ -n "$idate" ] && [ $((now - idate)) -ge -5 ] && [ $((now - idate)) -le 120 ]; then
	ok "INTERNALDATE is recent ($idate)"
else
	not_ok "INTERNALDATE is recent (got '$idate', now $now)"
fi
# a prefix of the token must not match
out=$("$IC" --url "$imaps" --user spam@intl.test $common --ca-file "$WORLD_CA" \
	find "$SPAM_FOLDER_INTL_WIRE" "$(printf '%s' "$tok" | cut -c1-20)")
check "token prefix does not match" 0 "$(field "$out" hits 2)"

# --- cleanup leaves the user's own \Deleted mail alone
mine=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
printf 'From: friend@example.test\r\nTo: spam@intl.test\r\nSubject: my own %s\r\nX-Test-Token: %s\r\n\r\nkeep me\r\n' "$mine" "$mine" >"$tmp/mine.eml"
doveadm -c "$DOVECOT_CONF" save -u spam@intl.test -m "$SPAM_FOLDER_INTL" <"$tmp/mine.eml"
doveadm -c "$DOVECOT_CONF" flags add -u spam@intl.test '\Deleted' mailbox "$SPAM_FOLDER_INTL" header X-Test-Token "$mine"
out=$("$IC" --url "$imaps" --user spam@intl.test $common --ca-file "$WORLD_CA" \
	cleanup "$SPAM_FOLDER_INTL_WIRE" "$((uv + 1))" "$uid" "$tok" delete)
check "cleanup with a stale UIDVALIDITY refused" uidvalidity "$(field "$out" error 2)"
out=$("$IC" --url "$imaps" --user spam@intl.test $common --ca-file "$WORLD_CA" \
	cleanup "$SPAM_FOLDER_INTL_WIRE" "$uv" "$uid" "$tok" delete)
check "probe deleted" deleted "$(field "$out" cleanup 2)"
n=$(doveadm -c "$DOVECOT_CONF" search -u spam@intl.test mailbox "$SPAM_FOLDER_INTL" header X-Inboxprobe-Token "$tok" | wc -l)
check "probe gone" 0 "$n"
n=$(doveadm -c "$DOVECOT_CONF" search -u spam@intl.test mailbox "$SPAM_FOLDER_INTL" header X-Test-Token "$mine" | wc -l)
check "user's own \\Deleted message survives" 1 "$n"

# --- trash mode moves to the trash folder (MOVE)
tok2=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
mkmsg "$tok2" "$tmp/probe2.eml"
deliver inbox@outlook.test "$tmp/probe2.eml"
out=$("$IC" --url "$imaps" --user inbox@outlook.test $common --ca-file "$WORLD_CA" --wait 10 find INBOX "$tok2")
uv=$(field "$out" hit 3)
uid=$(field "$out" hit 4)
out=$("$IC" --url "$imaps" --user inbox@outlook.test $common --ca-file "$WORLD_CA" \
	cleanup INBOX "$uv" "$uid" "$tok2" trash "Deleted Items")
check "trash mode" trashed "$(field "$out" cleanup 2)"
n=$(doveadm -c "$DOVECOT_CONF" search -u inbox@outlook.test mailbox "Deleted Items" header X-Inboxprobe-Token "$tok2" | wc -l)
check "probe now in Deleted Items" 1 "$n"

# --- a DSN in the bounce mailbox names a probe (prober/dsn.c parses it)
tok3=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
tok4=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
B=boundary-$tok3
{
	printf 'From: MAILER-DAEMON@relay.test\r\nTo: probe@sender.test\r\nDate: %s\r\n' "$(LC_ALL=C date -R)"
	printf 'Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n'
	printf 'Content-Type: multipart/report; report-type=delivery-status; boundary="%s"\r\n\r\n' "$B"
	printf -- '--%s\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n' "$B"
	printf -- '--%s\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; relay.test\r\n\r\n' "$B"
	printf 'Final-Recipient: rfc822; inbox@reject.test\r\nAction: failed\r\nStatus: 5.7.1\r\n'
	printf 'Remote-MTA: dns; mx.reject.test\r\nDiagnostic-Code: smtp; 550 5.7.1 rejected by policy\r\n\r\n'
	printf -- '--%s\r\nContent-Type: text/rfc822-headers\r\n\r\n' "$B"
	printf 'From: probe@sender.test\r\nTo: inbox@reject.test\r\nSubject: inboxprobe %s\r\nX-Inboxprobe-Token: %s\r\n\r\n' "$tok3" "$tok3"
	printf -- '--%s--\r\n' "$B"
} >"$tmp/dsn.eml"
deliver probe@sender.test "$tmp/dsn.eml"
i=0
while [ $i -lt 20 ]; do
	out=$("$IC" --url "$imaps" --user "$BOUNCE_USER" --password-file "$BOUNCE_PASSFILE" --ca-file "$WORLD_CA" \
		bounces INBOX "$tok" "$tok3")
	[ "$(field "$out" bounces 2)" = 1 ] && break
	sleep 0.5
	i=$((i + 1))
done
check "DSN found for the right token" 1 "$(field "$out" bounce 2)"
check "  ... action failed" failed "$(field "$out" bounce 4)"
check "  ... status 5.7.1" 5.7.1 "$(field "$out" bounce 5)"

# --- a busy bounce mailbox: 250 unrelated messages, then a DSN, then 250
# more. One scan examines at most 200 messages, oldest first, and the next
# scan pages on from there: the DSN is found, never skipped.
flood() {
	python3 - "$LMTP_PORT" "$1" <<'EOF'
import smtplib, sys
with smtplib.LMTP('127.0.0.1', int(sys.argv[1])) as l:
    for i in range(250):
        l.sendmail('someone@else.test', ['probe@sender.test'],
                   ('From: someone@else.test\r\nTo: probe@sender.test\r\nSubject: %s %d\r\n\r\nhello\r\n'
                    % (sys.argv[2], i)).encode())
EOF
}
flood unrelated
sed "s/$tok3/$tok4/g" "$tmp/dsn.eml" >"$tmp/dsn4.eml"
deliver probe@sender.test "$tmp/dsn4.eml"
flood later
out=$("$IC" --url "$imaps" --user "$BOUNCE_USER" --password-file "$BOUNCE_PASSFILE" --ca-file "$WORLD_CA" \
	--since "$(($(date +%s) - 120))" --repeat 1 bounces INBOX "$tok4")
check "busy bounce mailbox: one scan examines the oldest 200 (DSN not yet reached)" 0 "$(field "$out" bounces 2)"
out=$("$IC" --url "$imaps" --user "$BOUNCE_USER" --password-file "$BOUNCE_PASSFILE" --ca-file "$WORLD_CA" \
	--since "$(($(date +%s) - 120))" --repeat 4 bounces INBOX "$tok4")
check "busy bounce mailbox: paging scans find the DSN among 500 messages" 1 "$(field "$out" bounces 2)"
check "  ... status 5.7.1" 5.7.1 "$(field "$out" bounce 5)"

world_result
