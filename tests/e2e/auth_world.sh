#!/bin/sh
# A world that signs and verifies for real (issue 11): a Postfix relay signs
# with DKIM (OpenDKIM milter); the receiving MX verifies SPF
# (postfix-policyd-spf-python, Header_Type AR), DKIM (OpenDKIM) and DMARC
# (OpenDMARC, p=reject enforced) and writes Authentication-Results with the
# authserv-id mx.auth.test; Dovecot delivers (LMTP) and serves IMAP. A real
# DNS server (unbound, local zones) serves the senders' SPF, DKIM and DMARC
# records on 127.0.0.1:53.
#
# Everything runs in private network, mount and PID namespaces (unshare):
# port 53 and /etc/resolv.conf (bind-mounted) are this test's own, every
# daemon dies with the namespace, and nothing outside changes.
#
# Scenarios, one inboxprobe round each, slo.require_auth = spf, dkim, dmarc:
#   pass     all pass: the gate holds, exit 0
#   rotated  the relay signs with a new key the DNS does not publish
#            (authentication drift): dkim=fail, dmarc=fail, gate fails, exit 1
#   nospf    the relay's IP missing from SPF: spf=fail (dkim, dmarc pass), exit 1
#   forged   the sender adds "Authentication-Results: mx.auth.test; dkim=pass"
#            below the relay's hop: ignored (the MX's dkim=none counts), exit 1
#   reject   p=reject, no valid DKIM nor SPF: the MX refuses at end of DATA,
#            the relay's DSN makes the outcome rejected, attributed to 5.7.1
# Exit 0 pass, 1 fail, 77 skip (not root / no unshare), 99 hard error.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-.}
BIN=$(cd "$top_builddir" && pwd)/inboxprobe
PY=/usr/bin/python3

if [ -z "${AUTH_WORLD_INSIDE:-}" ]; then
	[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (namespaces, daemons)"; exit 77; }
	for t in unshare unbound opendkim opendmarc policyd-spf postfix dovecot; do
		command -v $t >/dev/null 2>&1 || [ -x /usr/sbin/$t ] || [ -x /usr/bin/$t ] ||
			{ echo "SKIP: $t not installed (.ci/packages)"; exit 77; }
	done
	[ -x "$BIN" ] || { echo "inboxprobe not built: $BIN" >&2; exit 99; }
	unshare --mount --net --pid --fork --mount-proc true 2>/dev/null ||
		{ echo "SKIP: this machine refuses new namespaces (unshare --net --mount --pid)"; exit 77; }
	AUTH_WORLD_INSIDE=1 top_srcdir=$top_srcdir top_builddir=$top_builddir \
		exec unshare --mount --net --pid --fork --mount-proc --propagation private sh "$0" "$@"
fi

# ---- inside the namespaces ---------------------------------------------------
ip link set lo up || exit 99
D=$(mktemp -d /tmp/authworld.XXXXXX) || exit 99
chmod 755 "$D"
trap '[ -n "${AUTH_WORLD_KEEP:-}" ] && echo "# kept $D" || rm -rf "$D"' EXIT
trap 'exit 130' INT TERM
FAILS=0
CHECKS=0
ok() { CHECKS=$((CHECKS + 1)); echo "ok - $*"; }
not_ok() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $*"; }
check() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1 (expected '$2', got '$3')"; fi; }
die() { echo "auth_world: $*" >&2; for f in "$D"/*.log "$D"/pf/maillog; do [ -f "$f" ] && { echo "== $f" >&2; tail -n 15 "$f" >&2; }; done; exit 99; }

SMTP_RELAY=2525 SMTP_MX=2526 LMTP=2424 IMAP=1143 SIGNER=8891 VERIFIER=8892 DMARC=8893
DOMAINS="pass rotated nospf forged reject esp"

# ---- keys and DNS ------------------------------------------------------------
mkdir -p "$D/keys"
newkey() { openssl genrsa -out "$D/keys/$1.private" 1024 2>/dev/null || die "openssl genrsa"; }
pubtxt() { openssl rsa -in "$D/keys/$1.private" -pubout -outform DER 2>/dev/null | base64 -w0; }
for k in pass nospf forged rotated-old rotated-new; do newkey $k; done
chown -R opendkim:opendkim "$D/keys"
chmod 700 "$D/keys"

spf_ok="v=spf1 ip4:127.0.0.1 -all"
spf_bad="v=spf1 ip4:192.0.2.1 -all"
{
	echo "server:"
	echo "  interface: 127.0.0.1"
	echo "  port: 53"
	echo "  do-ip6: no"
	echo "  username: \"\""
	echo "  chroot: \"\""
	echo "  directory: \"$D\""
	echo "  pidfile: \"$D/unbound.pid\""
	echo "  use-syslog: no"
	echo "  logfile: \"$D/unbound.log\""
	echo "  access-control: 127.0.0.0/8 allow"
	echo "  do-not-query-localhost: no"
	echo "  local-zone: \".\" static"
	for dom in $DOMAINS; do echo "  local-zone: \"$dom.test.\" static"; done
	rec() { echo "  local-data: '$1 300 IN TXT \"$2\"'"; }
	rec pass.test "$spf_ok"
	rec s1._domainkey.pass.test "v=DKIM1; k=rsa; p=$(pubtxt pass)"
	rec _dmarc.pass.test "v=DMARC1; p=reject"
	# rotated.test: the DNS still publishes the old key under s1
	rec rotated.test "$spf_ok"
	rec s1._domainkey.rotated.test "v=DKIM1; k=rsa; p=$(pubtxt rotated-old)"
	rec _dmarc.rotated.test "v=DMARC1; p=none"
	rec esp.test "$spf_ok"
	rec nospf.test "$spf_bad"
	rec s1._domainkey.nospf.test "v=DKIM1; k=rsa; p=$(pubtxt nospf)"
	rec _dmarc.nospf.test "v=DMARC1; p=reject"
	rec forged.test "$spf_ok"
	rec _dmarc.forged.test "v=DMARC1; p=none"
	rec reject.test "$spf_bad"
	rec _dmarc.reject.test "v=DMARC1; p=reject"
} >"$D/unbound.conf"
unbound -c "$D/unbound.conf" >"$D/unbound.start.log" 2>&1 || die "unbound did not start"
echo "nameserver 127.0.0.1" >"$D/resolv.conf"
mount --bind "$D/resolv.conf" /etc/resolv.conf || die "cannot bind-mount resolv.conf"

# ---- OpenDKIM (signer at the relay, verifier at the MX) and OpenDMARC --------
{
	echo "s1._domainkey.pass.test pass.test:s1:$D/keys/pass.private"
	echo "s1._domainkey.nospf.test nospf.test:s1:$D/keys/nospf.private"
	# the relay's key was rotated; the new one was never published
	echo "s1._domainkey.rotated.test rotated.test:s1:$D/keys/rotated-new.private"
} >"$D/keytable"
printf '%s\n' "pass.test s1._domainkey.pass.test" "nospf.test s1._domainkey.nospf.test" \
	"rotated.test s1._domainkey.rotated.test" >"$D/signingtable"
cat >"$D/signer.conf" <<EOF
Mode s
Socket inet:$SIGNER@127.0.0.1
PidFile $D/signer.pid
UserID opendkim:opendkim
Syslog no
KeyTable file:$D/keytable
SigningTable file:$D/signingtable
Canonicalization relaxed/simple
RequireSafeKeys no
InternalHosts 127.0.0.0/8
EOF
cat >"$D/verifier.conf" <<EOF
Mode v
Socket inet:$VERIFIER@127.0.0.1
PidFile $D/verifier.pid
UserID opendkim:opendkim
Syslog no
AuthservID mx.auth.test
AlwaysAddARHeader yes
InternalHosts 192.0.2.255
ResolverConfiguration $D/dkim-resolver.conf
RemoveARFrom nothing.invalid
EOF
# RemoveARFrom: by default OpenDKIM strips incoming fields that claim our
# authserv-id with a DKIM result (RFC 8601 section 5 says SHOULD). Not every
# receiver does: this MX keeps them, so a forged field reaches the mailbox and
# inboxprobe has to ignore it by itself.
# OpenDKIM resolves with libunbound: send it to the test's DNS server (and
# lift libunbound's built-in RFC 6761 NXDOMAIN zone for "test.")
printf 'server:\n  do-not-query-localhost: no\n  local-zone: "test." nodefault\nforward-zone:\n  name: "."\n  forward-addr: 127.0.0.1\n' \
	>"$D/dkim-resolver.conf"
echo 192.0.2.255 >"$D/nohosts"
cat >"$D/opendmarc.conf" <<EOF
Socket inet:$DMARC@127.0.0.1
PidFile $D/opendmarc.pid
UserID opendmarc:opendmarc
Syslog false
AuthservID mx.auth.test
TrustedAuthservIDs mx.auth.test
RejectFailures true
SPFIgnoreResults false
SPFSelfValidate false
IgnoreAuthenticatedClients false
RequiredHeaders false
IgnoreHosts $D/nohosts
EOF
opendkim -x "$D/signer.conf" >"$D/signer.log" 2>&1 || die "opendkim (signer) did not start"
opendkim -x "$D/verifier.conf" >"$D/verifier.log" 2>&1 || die "opendkim (verifier) did not start"
opendmarc -c "$D/opendmarc.conf" >"$D/opendmarc.log" 2>&1 || die "opendmarc did not start"

# ---- SPF policy (headers only: the verdict goes into Authentication-Results) -
cat >"$D/spf.conf" <<EOF
debugLevel = 1
TestOnly = 0
HELO_reject = False
Mail_From_reject = False
PermError_reject = False
TempError_Defer = False
skip_addresses = 192.0.2.255/32
Header_Type = AR
Authserv_Id = mx.auth.test
EOF

# ---- Dovecot: LMTP delivery and IMAP ------------------------------------------
mkdir -p "$D/dovecot" "$D/mail"
chown dovecot:dovecot "$D/mail"
{
	echo "inbox@mx.test:{PLAIN}seedpw::::::"
	for dom in $DOMAINS; do echo "probe@$dom.test:{PLAIN}seedpw::::::"; done
	echo "bounce@esp.test:{PLAIN}seedpw::::::"
} >"$D/dovecot/users"
chown root:dovecot "$D/dovecot/users"
chmod 640 "$D/dovecot/users"
printf 'seedpw\n' >"$D/seed.pass"
chmod 600 "$D/seed.pass"
cat >"$D/dovecot/dovecot.conf" <<EOF
instance_name = authworld
base_dir = $D/dovecot/run
state_dir = $D/dovecot/state
log_path = $D/dovecot.log
listen = 127.0.0.1
protocols = imap lmtp
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = $(id -u dovecot)
first_valid_gid = $(id -g dovecot)
mail_location = maildir:$D/mail/%d/%n
hostname = imap.auth.test
postmaster_address = postmaster@mx.test
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $D/dovecot/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $D/dovecot/users
  default_fields = uid=dovecot gid=dovecot home=$D/mail/%d/%n
}
namespace inbox {
  inbox = yes
  separator = /
  mailbox Junk {
    special_use = \\Junk
  }
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP
  }
  inet_listener imaps {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP
  }
}
EOF
dovecot -c "$D/dovecot/dovecot.conf" </dev/null >"$D/dovecot.start.log" 2>&1 || die "dovecot did not start"
doveadm -c "$D/dovecot/dovecot.conf" mailbox create -u inbox@mx.test Junk </dev/null ||
	die "cannot create the seed's Junk folder"

# ---- Postfix: the relay (2525, signs) and the receiving MX (2526, verifies) ---
P=$D/pf
mkdir -p "$P/queue"
{
	echo "mx.test smtp:[127.0.0.1]:$SMTP_MX"
	for dom in $DOMAINS; do echo "$dom.test lmtp:inet:127.0.0.1:$LMTP"; done
} >"$P/transport"
# rotated.test sends through an ESP: its envelope sender is the ESP's, so
# DMARC rests on DKIM alone (SPF passes for esp.test, unaligned)
echo "probe@rotated.test bounce@esp.test" >"$P/canonical"
cat >"$P/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $P/queue
data_directory = $P/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.auth.test
mydomain = auth.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = mx.test $(for dom in $DOMAINS; do printf '%s.test ' $dom; done)
transport_maps = texthash:$P/transport
sender_canonical_maps = texthash:$P/canonical
sender_canonical_classes = envelope_sender
maillog_file = $P/maillog
maillog_file_prefixes = $D
biff = no
smtpd_peername_lookup = no
smtp_host_lookup = native
lmtp_host_lookup = native
smtputf8_enable = no
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
smtp_tls_security_level = none
smtpd_tls_security_level = none
milter_default_action = tempfail
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
policyd-spf_time_limit = 3600
authmx_recipient_restrictions = check_policy_service unix:private/policyd-spf, permit
authmx_client_restrictions = check_client_access static:{FILTER lmtp:inet:127.0.0.1:$LMTP}
EOF
cat >"$P/master.cf" <<EOF
127.0.0.1:$SMTP_RELAY inet n - n - - smtpd
  -o syslog_name=postfix/relay
  -o smtpd_milters=inet:127.0.0.1:$SIGNER
127.0.0.1:$SMTP_MX inet n - n - - smtpd
  -o syslog_name=postfix/mx
  -o myhostname=mx.auth.test
  -o smtpd_milters=inet:127.0.0.1:$VERIFIER,inet:127.0.0.1:$DMARC
  -o smtpd_relay_restrictions=reject_unauth_destination
  -o smtpd_recipient_restrictions=\$authmx_recipient_restrictions
  -o smtpd_client_restrictions=\$authmx_client_restrictions
policyd-spf unix - n n - 0 spawn
  user=policyd-spf argv=/usr/bin/policyd-spf $D/spf.conf
EOF
cat "$top_srcdir/tests/world/postfix-services.cf" >>"$P/master.cf"
# Postfix refuses a config directory the default main.cf does not list; this
# main.cf is ours alone (private mount namespace)
{ [ -f /etc/postfix/main.cf ] && grep -v '^alternate_config_directories' /etc/postfix/main.cf
  echo "alternate_config_directories = $P"; } >"$D/etc-main.cf"
[ -f /etc/postfix/main.cf ] || { mkdir -p /etc/postfix; : >/etc/postfix/main.cf; }
mount --bind "$D/etc-main.cf" /etc/postfix/main.cf || die "cannot bind-mount /etc/postfix/main.cf"
postfix -c "$P" start </dev/null >"$D/postfix.start.log" 2>&1 || die "postfix did not start"

# wait for every listener (10 s at most)
$PY - 53 $SMTP_RELAY $SMTP_MX $LMTP $IMAP $SIGNER $VERIFIER $DMARC <<'PY' || die "a listener did not answer"
import socket, sys, time
end = time.time() + 10
for port in map(int, sys.argv[1:]):
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            if time.time() > end:
                print("port %d did not answer" % port, file=sys.stderr)
                sys.exit(1)
            time.sleep(0.1)
PY
dig +short @127.0.0.1 TXT _dmarc.pass.test | grep -q DMARC1 && ok "DNS: unbound serves the test zones" ||
	not_ok "DNS: unbound serves the test zones"

# ---- one round per scenario -------------------------------------------------
# run NAME DOMAIN [EXTRA_PROBE_SETTINGS]: sets RC, J, OUT, PROM
run() {
	cat >"$D/$1.conf" <<CONF
name = "auth_$1";
relay = { url = "smtp://127.0.0.1:$SMTP_RELAY"; tls = "none"; from = "probe@$2";
          connect_timeout = 5; timeout = 15; };
probe = { deadline = 25; poll_interval = 1; cleanup = "keep"; ${3:-} };
slo = { require_auth = ( "spf", "dkim", "dmarc" ); };
providers = { authmx = { authserv_id = ( "mx.auth.test" ); }; };
report = { json = "$D/$1.json"; textfile = "$D/$1.prom"; };
state = { path = "$D/state.db"; };
imap_defaults = { url = "imap://127.0.0.1:$IMAP"; tls = "none"; password_file = "$D/seed.pass"; };
bounce_mailbox = { username = "probe@$2"; };
seeds = ( { address = "inbox@mx.test"; provider = "authmx"; imap = { username = "inbox@mx.test"; }; } );
CONF
	TMPDIR=$D timeout 60 "$BIN" run -c "$D/$1.conf" >"$D/$1.out" 2>"$D/$1.err"
	RC=$?
	J=$D/$1.json OUT=$D/$1.out PROM=$D/$1.prom
}
# j 'STMT; ...; EXPR': Python over the JSON report r; a tuple prints space-separated
j() {
	$PY - "$J" "$1" 2>/dev/null <<'PY'
import json, sys
ns = {"r": json.load(open(sys.argv[1]))}
code = sys.argv[2].split(";")
for c in code[:-1]:
    exec(c.strip(), ns)
v = eval(code[-1].strip(), ns)
print(" ".join(map(str, v)) if isinstance(v, tuple) else v)
PY
}
# the trusted result of METHOD (a pass wins when there are several)
res() { j "v=[x['result'] for x in r['seeds'][0]['auth']['verdicts'] if x['method']=='$1']; 'pass' if 'pass' in v else (v[0] if v else 'absent')"; }
show() { echo "# $1: exit $RC"; sed 's/^/#   /' "$OUT"; }

# 1. all pass
run pass pass.test
show pass
check "pass: outcome inbox" inbox "$(j 'r["seeds"][0]["outcome"]')"
check "pass: spf dkim dmarc" "pass pass pass" "$(res spf) $(res dkim) $(res dmarc)"
check "pass: dkim header.d" pass.test "$(j "[x['properties'].get('header.d') for x in r['seeds'][0]['auth']['verdicts'] if x['method']=='dkim'][0]")"
check "pass: spf smtp.mailfrom (policyd-spf writes the domain)" pass.test "$(j "[x['properties'].get('smtp.mailfrom') for x in r['seeds'][0]['auth']['verdicts'] if x['method']=='spf'][0]")"
check "pass: the MX's fields are all trusted (OpenDKIM, OpenDMARC, policyd-spf)" True \
	"$(j 'a=r["seeds"][0]["auth"]; a["trusted_fields"] >= 3 and a["trusted_fields"] == a["fields"]')"
check "pass: require_auth holds" "True True" "$(j 'g=r["providers"][0]["gates"]["require_auth"]; g["evaluated"], g["ok"]')"
check "pass: exit 0" 0 "$RC"
check "pass: path relay -> mx.auth.test -> LMTP" "relay.auth.test mx.auth.test imap.auth.test" \
	"$(j 'tuple(h["by"] for h in r["seeds"][0]["path"]["hops"])')"
check "pass: the relay's hop carries its queue id" True \
	"$(j 's=r["seeds"][0]; s["path"]["hops"][0]["relay"] and s["path"]["hops"][0]["id"] == s["relay_reply"]["queue_id"]')"
check "pass: both stages measured" "True True" \
	"$(j 'st=r["seeds"][0]["path"]["stages"]; st["relay"] is not None, st["receiving"] is not None')"
grep -q '^inboxprobe_auth_result{config="auth_pass",seed="inbox@mx.test",provider="authmx",method="dkim",result="pass"} 1$' "$PROM" &&
	ok "pass: auth_result series" || not_ok "pass: auth_result series: $(grep auth_result "$PROM")"
grep -q '^inboxprobe_hop_delay_seconds{config="auth_pass",seed="inbox@mx.test",provider="authmx",stage="relay"} ' "$PROM" &&
	ok "pass: hop_delay_seconds relay" || not_ok "pass: hop_delay_seconds relay"

# 2. the DKIM key rotated at the relay without publishing the new one
run rotated rotated.test
show rotated
check "rotated: outcome inbox (p=none)" inbox "$(j 'r["seeds"][0]["outcome"]')"
check "rotated: dkim fail" fail "$(res dkim)"
check "rotated: dmarc fail" fail "$(res dmarc)"
check "rotated: spf pass (for the ESP's envelope domain)" pass "$(res spf)"
check "rotated: require_auth fails" "True False 1" \
	"$(j 'g=r["providers"][0]["gates"]["require_auth"]; g["evaluated"], g["ok"], g["value"]')"
check "rotated: exit 1" 1 "$RC"
grep -q '^  inbox@mx.test: dkim=fail (' "$OUT" && ok "rotated: summary names the failing verdict in full" ||
	not_ok "rotated: summary names the failing verdict in full"
grep -q '^FAIL authmx require_auth: 1 found probe without a pass' "$OUT" && ok "rotated: FAIL line" ||
	not_ok "rotated: FAIL line"
grep -q '^inboxprobe_auth_results_total{config="auth_rotated",provider="authmx",method="dkim",result="fail"} 1$' "$PROM" &&
	ok "rotated: auth_results_total from the state store" ||
	not_ok "rotated: auth_results_total from the state store: $(grep auth_results "$PROM")"

# 3. the relay's IP missing from SPF
run nospf nospf.test
show nospf
check "nospf: outcome inbox" inbox "$(j 'r["seeds"][0]["outcome"]')"
check "nospf: spf fail, dkim pass, dmarc pass" "fail pass pass" "$(res spf) $(res dkim) $(res dmarc)"
check "nospf: exit 1" 1 "$RC"
grep -q '^  inbox@mx.test: spf=fail' "$OUT" && ok "nospf: summary names spf=fail" || not_ok "nospf: summary names spf=fail"

# 4. a sender-added Authentication-Results with the MX's authserv-id
run forged forged.test \
	'headers = ( "Authentication-Results: mx.auth.test; dkim=pass header.d=forged.test header.s=forgery" );'
show forged
check "forged: outcome inbox" inbox "$(j 'r["seeds"][0]["outcome"]')"
check "forged: the forged field reached the mailbox but is not trusted" True \
	"$(j 'a=r["seeds"][0]["auth"]; a["fields"] == a["trusted_fields"] + 1')"
check "forged: no forged verdict merged" "[]" \
	"$(j "[x for x in r['seeds'][0]['auth']['verdicts'] if x['properties'].get('header.s') == 'forgery']")"
check "forged: the MX's own dkim verdict counts" none "$(res dkim)"
check "forged: exit 1 (dkim is not pass)" 1 "$RC"

# 5. p=reject: the MX refuses, the relay's DSN attributes it
run reject reject.test
show reject
check "reject: outcome rejected" rejected "$(j 'r["seeds"][0]["outcome"]')"
case $(j 'r["seeds"][0]["dsn"]["status"]') in
5.7.*) ok "reject: DSN status 5.7.x" ;;
*) not_ok "reject: DSN status 5.7.x: $(j 'r["seeds"][0]["dsn"]')" ;;
esac
case $(j 'r["seeds"][0]["dsn"]["diagnostic"]') in
*DMARC*|*dmarc*) ok "reject: the diagnostic names DMARC" ;;
*) not_ok "reject: the diagnostic names DMARC: $(j 'r["seeds"][0]["dsn"]')" ;;
esac
check "reject: no verdicts (never delivered)" None "$(j 'r["seeds"][0]["auth"]')"

echo "# $CHECKS checks, $FAILS failed"
[ "$CHECKS" -gt 0 ] && [ "$FAILS" -eq 0 ]
