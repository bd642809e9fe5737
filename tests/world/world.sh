#!/bin/bash
# The loopback mail world for inboxprobe's tests.
#
#   world.sh start DIR   build and start everything inside DIR, write DIR/env
#   world.sh stop DIR    stop everything started from DIR (idempotent)
#   world.sh status DIR  exit 0 when the world in DIR is running
#
# Components (all on 127.0.0.1, on free ports chosen at start, all state in DIR):
#   - a self-signed certificate CN=localhost, SAN DNS:localhost only (WORLD_CA),
#     and an expired variant served by a second Dovecot (IMAPS_EXPIRED_PORT);
#   - Postfix as the relay: plain, STARTTLS (may), STARTTLS+AUTH required, SMTPS+AUTH;
#     plus three smtpd listeners playing misbehaving receiving MXs
#     (greylist.test via postgrey, reject.test 550 5.7.1, defer.test 451 4.7.1);
#   - Dovecot: IMAP+STARTTLS, IMAPS, LMTP with a sieve_before script that
#     routes by envelope recipient and the X-Test-Spam header, SASL auth for
#     Postfix over inet; a third Dovecot without any TLS (IMAP_NOTLS_PORT);
#   - postgrey for greylist.test.
# Everything the tests need is written as shell assignments to DIR/env.
#
# WORLD_SEEDS=N (default 0) adds N seed mailboxes for benches, bNNNN@yahoo.test
# (WORLD_SEED_FMT, numbered from 1, password SEED_PASSFILE, folders Bulk and
# Trash), and sizes the world for them: Dovecot's process and client limits
# (two IDLE sessions per seed, each an imap process; imap-login serves many
# clients per process), Postfix's LMTP concurrency, and, as root, the
# per-uid inotify instances (Dovecot's IDLE needs one per session; past
# fs.inotify.max_user_instances it checks every 30 s instead).
#
# Outside DIR this changes only /etc/postfix/main.cf: Postfix refuses
# `postfix -c DIR` unless that file lists DIR in alternate_config_directories.
# DIR/postfix is added there at start and removed at stop (under a lock).
set -eu

PROG=${0##*/}
WORLD_HOME=$(cd "$(dirname "$0")" && pwd)   # tests/world: the files world.sh uses
die() { echo "$PROG: $*" >&2; exit 1; }
note() { [ -n "${WORLD_QUIET:-}" ] || echo "$PROG: $*" >&2; }

# Provider-like domains served by Dovecot: name, spam folder, special-use of the
# spam folder (- for none), trash folder, special-use of the trash folder.
PROVIDERS="gmail outlook yahoo bulkmail intl"
spam_folder_of() {
	case $1 in
	gmail) echo '[Gmail]/Spam' ;;
	outlook) echo 'Junk' ;;
	yahoo) echo 'Bulk' ;;
	bulkmail) echo 'Bulk Mail' ;;
	intl) echo 'Courrier indésirable' ;;
	esac
}
trash_folder_of() {
	case $1 in
	gmail) echo '[Gmail]/Trash' ;;
	outlook) echo 'Deleted Items' ;;
	yahoo) echo 'Trash' ;;
	bulkmail) echo 'Trash' ;;
	intl) echo 'Corbeille' ;;
	esac
}
GREYLIST_DELAY=${GREYLIST_DELAY:-8}
WORLD_SEEDS=${WORLD_SEEDS:-0}
case $WORLD_SEEDS in
'' | *[!0-9]*) echo "$PROG: WORLD_SEEDS must be a number of seeds, not '$WORLD_SEEDS'" >&2; exit 2 ;;
esac
WORLD_SEED_FMT='b%04d@yahoo.test'
LOCKFILE=/tmp/.inboxprobe-world.lock
MAINCF=/etc/postfix/main.cf

# ---------------------------------------------------------------- helpers

# free_ports N: N distinct free TCP ports on 127.0.0.1, one per line.
free_ports() {
	/usr/bin/python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
    s.close()
EOF
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
	timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# wait_ports SECONDS PORT...: wait (bounded) until every port answers.
wait_ports() {
	local limit=$1 p deadline
	shift
	deadline=$(($(date +%s) + limit))
	for p in "$@"; do
		until port_open "$p"; do
			[ "$(date +%s)" -lt "$deadline" ] || return 1
			sleep 0.2
		done
	done
}

pid_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

pidfile_pid() { [ -s "$1" ] && tr -dc 0-9 <"$1" || true; }

# alt_dirs add|del CONFDIR: maintain alternate_config_directories in /etc/postfix/main.cf.
alt_dirs() {
	local op=$1 dir=$2
	mkdir -p /etc/postfix
	(
		flock -w 30 9 || die "cannot lock $LOCKFILE"
		if [ ! -f "$MAINCF" ]; then
			printf '%s\n' \
				'# Created by inboxprobe tests/world/world.sh: Postfix needs this file to' \
				'# list the configuration directories of the loopback test worlds.' \
				'compatibility_level = 3.6' >"$MAINCF"
		fi
		local cur new d
		cur=$(sed -n 's/^alternate_config_directories[[:space:]]*=[[:space:]]*//p' "$MAINCF" | tail -n 1)
		new=
		for d in $(echo "$cur" | tr ',' ' '); do
			[ "$d" = "$dir" ] && continue
			# drop worlds whose directory is gone (left by a killed test)
			case $d in
			*/postfix) [ -d "$d" ] || continue ;;
			esac
			new="$new${new:+ }$d"
		done
		[ "$op" = add ] && new="$new${new:+ }$dir"
		local tmp="$MAINCF.world.$$"
		grep -v '^alternate_config_directories[[:space:]]*=' "$MAINCF" >"$tmp" || true
		[ -n "$new" ] && echo "alternate_config_directories = $new" >>"$tmp"
		chmod 644 "$tmp"
		mv -f "$tmp" "$MAINCF"
	) 9>>"$LOCKFILE"
}

# ---------------------------------------------------------------- generation

gen_tls() {
	local t=$DIR/tls
	mkdir -p "$t" "$t/ca"
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
		-keyout "$t/key.pem" -out "$t/cert.pem" \
		-subj /CN=localhost -addext subjectAltName=DNS:localhost >/dev/null 2>&1 ||
		die "openssl could not make the certificate"
	# Expired variant, same name: valid from 2020-01-01 to 2020-02-01.
	: >"$t/ca/index.txt"
	echo 01 >"$t/ca/serial"
	cat >"$t/ca/ca.cnf" <<EOF
[ ca ]
default_ca = world
[ world ]
dir = $t/ca
database = $t/ca/index.txt
new_certs_dir = $t/ca
serial = $t/ca/serial
default_md = sha256
policy = any
email_in_dn = no
unique_subject = no
[ any ]
commonName = supplied
[ ext ]
basicConstraints = critical,CA:TRUE
subjectAltName = DNS:localhost
EOF
	openssl req -new -newkey rsa:2048 -nodes -keyout "$t/expired-key.pem" \
		-subj /CN=localhost -out "$t/ca/expired.csr" >/dev/null 2>&1 &&
		openssl ca -batch -config "$t/ca/ca.cnf" -selfsign -keyfile "$t/expired-key.pem" \
			-in "$t/ca/expired.csr" -out "$t/expired.pem" -notext -extensions ext \
			-startdate 20200101000000Z -enddate 20200201000000Z >/dev/null 2>&1 ||
		die "openssl could not make the expired certificate"
	chmod 600 "$t/key.pem" "$t/expired-key.pem"
	chmod 644 "$t/cert.pem" "$t/expired.pem"
}

gen_secrets() {
	local s=$DIR/secrets
	mkdir -p "$s"
	chmod 700 "$s"
	umask 077
	openssl rand -hex 12 >"$s/seed.pass"
	openssl rand -hex 12 >"$s/relay.pass"
	openssl rand -hex 12 >"$s/bounce.pass"
	echo "wrong-$(openssl rand -hex 6)" >"$s/wrong.pass"
	umask 022
	chmod 600 "$s"/*.pass
}

# All mailbox users: "address" lines.
all_users() {
	local p
	for p in $PROVIDERS; do
		echo "inbox@$p.test"
		echo "spam@$p.test"
		echo "marker@$p.test"
	done
	echo inbox@greylist.test
	echo inbox@reject.test
	echo inbox@defer.test
	echo probe@sender.test
	echo relay@sender.test
}

# The WORLD_SEEDS bench seeds, one address a line.
bulk_users() {
	local i
	for ((i = 1; i <= WORLD_SEEDS; i++)); do
		printf "$WORLD_SEED_FMT\n" "$i"
	done
}

gen_dovecot() {
	local d=$DIR/dovecot u pw
	mkdir -p "$d" "$d/sieve" "$DIR/mail"
	pw=$(cat "$DIR/secrets/seed.pass")
	{
		for u in $(all_users); do
			case $u in
			probe@sender.test) echo "$u:{PLAIN}$(cat "$DIR/secrets/bounce.pass")::::::" ;;
			relay@sender.test) echo "$u:{PLAIN}$(cat "$DIR/secrets/relay.pass")::::::" ;;
			*) echo "$u:{PLAIN}$pw::::::" ;;
			esac
		done
		for u in $(bulk_users); do
			echo "$u:{PLAIN}$pw::::::"
		done
	} >"$d/users"
	chown root:dovecot "$d/users"
	chmod 640 "$d/users"
	chown dovecot:dovecot "$DIR/mail"

	# Sieve: route by envelope recipient and header.
	{
		echo 'require ["fileinto", "mailbox", "envelope"];'
		local p f
		for p in $PROVIDERS; do
			f=$(spam_folder_of "$p")
			echo "if envelope :is \"to\" \"spam@$p.test\" { fileinto :create \"$f\"; stop; }"
			echo "if allof (envelope :is \"to\" \"marker@$p.test\", header :is \"X-Test-Spam\" \"yes\") { fileinto :create \"$f\"; stop; }"
		done
		# a greylisted probe that lands in the spam folder (X-Test-Spam: yes)
		echo 'if allof (envelope :is "to" "inbox@greylist.test", header :is "X-Test-Spam" "yes") { fileinto :create "Junk"; stop; }'
	} >"$d/sieve/before.sieve"
	chown -R dovecot:dovecot "$d/sieve"

	gen_dovecot_conf main >"$d/main.conf"
	gen_dovecot_conf notls >"$d/notls.conf"
	gen_dovecot_conf expired >"$d/expired.conf"
}

# Limits of the main Dovecot for WORLD_SEEDS bench seeds (nothing without
# them): every IMAP session is an imap process (client_limit 1), at most two
# per seed plus the floors' and the tests' own; imap-login runs in
# "high-performance" mode (service_count 0: one process serves many TLS
# clients, as a busy server is run) instead of a process per connection.
scale_dovecot_conf() {
	[ "$WORLD_SEEDS" -gt 0 ] || return 0
	cat <<EOF
default_process_limit = $((WORLD_SEEDS * 2 + 200))
default_client_limit = $((WORLD_SEEDS * 6 + 1000))
default_vsz_limit = 512M
mail_max_userip_connections = 20
EOF
}

scale_login_conf() {
	[ "$WORLD_SEEDS" -gt 0 ] || return 0
	cat <<EOF
  service_count = 0
  process_min_avail = 2
  process_limit = 8
  client_limit = $((WORLD_SEEDS * 4 + 1000))
EOF
}

# gen_dovecot_conf main|notls|expired
gen_dovecot_conf() {
	local kind=$1 d=$DIR/dovecot
	local dh=
	[ -f /usr/share/dovecot/dh.pem ] && dh="ssl_dh = </usr/share/dovecot/dh.pem"
	cat <<EOF
# Generated by world.sh ($kind instance).
instance_name = world-$kind-$WORLD_ID
base_dir = $d/run-$kind
state_dir = $d/state-$kind
log_path = $d/$kind.log
info_log_path = $d/$kind.log
debug_log_path = $d/$kind.log
listen = 127.0.0.1
auth_mechanisms = plain login
auth_verbose = yes
auth_verbose_passwords = no
auth_debug_passwords = no
verbose_ssl = yes
first_valid_uid = $(id -u dovecot)
first_valid_gid = $(id -g dovecot)
mail_location = maildir:$DIR/mail/%d/%n
mail_home = $DIR/mail/%d/%n
postmaster_address = postmaster@sender.test
hostname = imap.world.test
login_greeting = world $kind ready.
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $d/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $d/users
  default_fields = uid=dovecot gid=dovecot home=$DIR/mail/%d/%n
}
namespace inbox {
  inbox = yes
  separator = /
  mailbox "[Gmail]/Spam" {
    special_use = \\Junk
  }
  mailbox "[Gmail]/Trash" {
    special_use = \\Trash
  }
  mailbox "Junk" {
    special_use = \\Junk
  }
  mailbox "Deleted Items" {
    special_use = \\Trash
  }
  mailbox "Bulk" {
    special_use = \\Junk
  }
  mailbox "Trash" {
    special_use = \\Trash
  }
}
EOF
	case $kind in
	main)
		cat <<EOF
protocols = imap lmtp
ssl = yes
ssl_cert = <$DIR/tls/cert.pem
ssl_key = <$DIR/tls/key.pem
$dh
disable_plaintext_auth = yes
$(scale_dovecot_conf)
service imap-login {
$(scale_login_conf)
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $IMAPS_PORT
    ssl = yes
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP_PORT
  }
}
service auth {
  inet_listener auth-postfix {
    address = 127.0.0.1
    port = $DOVECOT_AUTH_PORT
  }
}
# Quota: no limit unless a user's passwd-file entry sets one
# (userdb_quota_rule=*:storage=1K), for over-quota seeds.
mail_plugins = quota
protocol lmtp {
  mail_plugins = \$mail_plugins sieve
}
plugin {
  quota = maildir:User quota
  sieve = file:~/sieve;active=~/.dovecot.sieve
  sieve_before = $d/sieve/before.sieve
}
EOF
		;;
	notls)
		cat <<EOF
protocols = imap
ssl = no
disable_plaintext_auth = no
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_NOTLS_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
EOF
		;;
	expired)
		cat <<EOF
protocols = imap
ssl = required
ssl_cert = <$DIR/tls/expired.pem
ssl_key = <$DIR/tls/expired-key.pem
$dh
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $IMAPS_EXPIRED_PORT
    ssl = yes
  }
}
EOF
		;;
	esac
}

# Postfix for WORLD_SEEDS bench seeds (nothing without them): a round hands
# the queue manager WORLD_SEEDS messages for one LMTP destination at once.
scale_postfix_conf() {
	[ "$WORLD_SEEDS" -gt 0 ] || return 0
	cat <<EOF
default_process_limit = 300
lmtp_destination_concurrency_limit = 64
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
EOF
}

gen_postfix() {
	local c=$DIR/postfix p
	mkdir -p "$c" "$c/queue"
	{
		for p in $PROVIDERS sender; do
			echo "$p.test lmtp:inet:127.0.0.1:$LMTP_PORT"
		done
		echo "greylist.test smtp:[127.0.0.1]:$MX_GREYLIST_PORT"
		echo "reject.test smtp:[127.0.0.1]:$MX_REJECT_PORT"
		echo "defer.test smtp:[127.0.0.1]:$MX_DEFER_PORT"
	} >"$c/transport"
	local domains
	domains=$(for p in $PROVIDERS greylist reject defer sender; do printf '%s.test ' "$p"; done)
	cat >"$c/main.cf" <<EOF
# Generated by world.sh: the relay of a loopback test world.
compatibility_level = 3.6
queue_directory = $c/queue
data_directory = $c/data
mail_owner = postfix
setgid_group = postdrop
myhostname = relay.world.test
mydomain = world.test
myorigin = \$myhostname
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 no local delivery in the test world
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = $domains
relay_recipient_maps =
transport_maps = texthash:$c/transport
maillog_file = $c/maillog
maillog_file_prefixes = $DIR
smtpd_banner = \$myhostname ESMTP world relay
biff = no
smtpd_peername_lookup = no
smtp_host_lookup = native
lmtp_host_lookup = native
smtputf8_enable = no
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 4s
delay_warning_time = 10s
maximal_queue_lifetime = 1h
$(scale_postfix_conf)
bounce_queue_lifetime = 1h
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtpd_tls_cert_file = $DIR/tls/cert.pem
smtpd_tls_key_file = $DIR/tls/key.pem
smtpd_tls_loglevel = 1
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:$DOVECOT_AUTH_PORT
smtpd_sasl_auth_enable = no
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
# Receiving-MX behaviours, used by the extra smtpd listeners in master.cf.
world_greylist_restrictions = check_policy_service inet:127.0.0.1:$POSTGREY_PORT, check_client_access static:{FILTER lmtp:inet:127.0.0.1:$LMTP_PORT}
world_reject_restrictions = check_client_access static:{550 5.7.1 Message rejected as spam by reject.test policy}
world_defer_restrictions = check_client_access static:{451 4.7.1 Try again later, defer.test is busy}
EOF
	cat >"$c/master.cf" <<EOF
# Generated by world.sh. No chroot anywhere.
127.0.0.1:$RELAY_PLAIN_PORT inet n - n - - smtpd
  -o syslog_name=postfix/relay-plain
127.0.0.1:$RELAY_STARTTLS_PORT inet n - n - - smtpd
  -o syslog_name=postfix/relay-starttls
  -o smtpd_tls_security_level=may
127.0.0.1:$RELAY_TLSREQ_PORT inet n - n - - smtpd
  -o syslog_name=postfix/relay-tlsreq
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
127.0.0.1:$RELAY_SMTPS_PORT inet n - n - - smtpd
  -o syslog_name=postfix/relay-smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
127.0.0.1:$MX_GREYLIST_PORT inet n - n - - smtpd
  -o syslog_name=postfix/mx-greylist
  -o myhostname=mx.greylist.test
  -o smtpd_recipient_restrictions=\$world_greylist_restrictions
127.0.0.1:$MX_REJECT_PORT inet n - n - - smtpd
  -o syslog_name=postfix/mx-reject
  -o myhostname=mx.reject.test
  -o smtpd_client_restrictions=\$world_reject_restrictions
127.0.0.1:$MX_DEFER_PORT inet n - n - - smtpd
  -o syslog_name=postfix/mx-defer
  -o myhostname=mx.defer.test
  -o smtpd_client_restrictions=\$world_defer_restrictions
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
EOF
	cat "$WORLD_HOME/postfix-services.cf" >>"$c/master.cf"
}

gen_env() {
	local p P
	{
		echo "# Loopback mail world, generated by world.sh. Source it (sh syntax)."
		printf "%s='%s'\n" \
			WORLD_DIR "$DIR" \
			WORLD_ID "$WORLD_ID" \
			WORLD_CA "$DIR/tls/cert.pem" \
			WORLD_CERT "$DIR/tls/cert.pem" \
			WORLD_KEY "$DIR/tls/key.pem" \
			WORLD_EXPIRED_CA "$DIR/tls/expired.pem" \
			WORLD_CONF "$DIR/inboxprobe.conf" \
			WORLD_PROVIDERS "$PROVIDERS" \
			WORLD_HOST 127.0.0.1 \
			RELAY_HOST 127.0.0.1 \
			RELAY_PLAIN_PORT "$RELAY_PLAIN_PORT" \
			RELAY_STARTTLS_PORT "$RELAY_STARTTLS_PORT" \
			RELAY_TLSREQ_PORT "$RELAY_TLSREQ_PORT" \
			RELAY_SMTPS_PORT "$RELAY_SMTPS_PORT" \
			RELAY_USER relay@sender.test \
			RELAY_PASSFILE "$DIR/secrets/relay.pass" \
			RELAY_CONFIG_DIR "$DIR/postfix" \
			RELAY_QUEUE_DIR "$DIR/postfix/queue" \
			RELAY_LOG "$DIR/postfix/maillog" \
			RELAY_QUEUE_CMD "$DIR/bin/relay-queue" \
			RELAY_FLUSH_CMD "$DIR/bin/relay-flush" \
			MX_GREYLIST_PORT "$MX_GREYLIST_PORT" \
			MX_REJECT_PORT "$MX_REJECT_PORT" \
			MX_DEFER_PORT "$MX_DEFER_PORT" \
			POSTGREY_PORT "$POSTGREY_PORT" \
			GREYLIST_DELAY "$GREYLIST_DELAY" \
			DELAY_WARNING_TIME 10 \
			IMAP_HOST localhost \
			IMAP_PORT "$IMAP_PORT" \
			IMAPS_PORT "$IMAPS_PORT" \
			IMAPS_EXPIRED_PORT "$IMAPS_EXPIRED_PORT" \
			IMAP_NOTLS_PORT "$IMAP_NOTLS_PORT" \
			LMTP_PORT "$LMTP_PORT" \
			DOVECOT_AUTH_PORT "$DOVECOT_AUTH_PORT" \
			DOVECOT_CONF "$DIR/dovecot/main.conf" \
			DOVECOT_LOG "$DIR/dovecot/main.log" \
			DOVECOT_NOTLS_CONF "$DIR/dovecot/notls.conf" \
			DOVECOT_NOTLS_LOG "$DIR/dovecot/notls.log" \
			DOVECOT_EXPIRED_LOG "$DIR/dovecot/expired.log" \
			MAIL_DIR "$DIR/mail" \
			SEED_PASSFILE "$DIR/secrets/seed.pass" \
			BOUNCE_USER probe@sender.test \
			BOUNCE_PASSFILE "$DIR/secrets/bounce.pass" \
			WRONG_PASSFILE "$DIR/secrets/wrong.pass" \
			WORLD_SEEDS "$WORLD_SEEDS" \
			WORLD_SEED_FMT "$WORLD_SEED_FMT"
		for p in $PROVIDERS; do
			P=$(echo "$p" | tr a-z A-Z)
			printf "SPAM_FOLDER_%s='%s'\n" "$P" "$(spam_folder_of "$p")"
			printf "TRASH_FOLDER_%s='%s'\n" "$P" "$(trash_folder_of "$p")"
		done
		echo "SPAM_FOLDER_INTL_WIRE='Courrier ind&AOk-sirable'"
		echo "export WORLD_DIR WORLD_CA WORLD_CONF RELAY_PLAIN_PORT RELAY_STARTTLS_PORT RELAY_TLSREQ_PORT RELAY_SMTPS_PORT RELAY_USER RELAY_PASSFILE RELAY_LOG RELAY_QUEUE_DIR RELAY_QUEUE_CMD IMAP_PORT IMAPS_PORT IMAPS_EXPIRED_PORT IMAP_NOTLS_PORT DOVECOT_LOG DOVECOT_NOTLS_LOG GREYLIST_DELAY SEED_PASSFILE BOUNCE_USER BOUNCE_PASSFILE WRONG_PASSFILE"
	} >"$DIR/env.tmp"
	mv -f "$DIR/env.tmp" "$DIR/env"

	mkdir -p "$DIR/bin"
	cat >"$DIR/bin/relay-queue" <<EOF
#!/bin/sh
# List the relay's queue (postqueue -p).
exec postqueue -c '$DIR/postfix' -p
EOF
	cat >"$DIR/bin/relay-flush" <<EOF
#!/bin/sh
# Ask the relay to retry every deferred message now.
exec postqueue -c '$DIR/postfix' -f
EOF
	chmod 755 "$DIR/bin/relay-queue" "$DIR/bin/relay-flush"
}

gen_inboxprobe_conf() {
	local c=$DIR/inboxprobe.conf p u first=1
	mkdir -p "$DIR/reports" "$DIR/state"
	{
		cat <<EOF
# inboxprobe configuration for the loopback world in $DIR (generated by world.sh).
name = "world";
relay = {
  url = "smtp://127.0.0.1:$RELAY_PLAIN_PORT";
  tls = "none";
  from = "probe@sender.test";
  connect_timeout = 10;
  timeout = 30;
};
probe = {
  deadline = 60;
  poll_interval = 2;
  cleanup = "delete";
  subject_prefix = "inboxprobe";
};
imap_limits = { per_host = 32; per_account = 1; connect_timeout = 10; timeout = 30; };
slo = {
  min_inbox_ratio = 0.5;
  max_latency_p99 = 60.0;
  evaluate = "round";
  min_samples = 1;
};
report = {
  textfile = "$DIR/reports/inboxprobe.prom";
  openmetrics = "$DIR/reports/inboxprobe.om.txt";
  json = "$DIR/reports/inboxprobe.json";
  junit = "$DIR/reports/inboxprobe.junit.xml";
};
imap_defaults = { url = "imaps://localhost:$IMAPS_PORT"; tls = "required"; ca_file = "$DIR/tls/cert.pem"; };
bounce_mailbox = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$DIR/tls/cert.pem";
                   username = "probe@sender.test"; password_file = "$DIR/secrets/bounce.pass"; };
state = { path = "$DIR/state/state.db"; retention_days = 30; };
seeds = (
EOF
		for u in $(all_users); do
			case $u in
			*@sender.test) continue ;;
			esac
			p=${u#*@}
			p=${p%.test}
			[ $first = 1 ] || echo ","
			first=0
			printf '  { address = "%s"; provider = "%s";\n' "$u" "$p"
			printf '    imap = { url = "imaps://localhost:%s"; tls = "required"; ca_file = "%s";\n' "$IMAPS_PORT" "$DIR/tls/cert.pem"
			printf '             username = "%s"; password_file = "%s"; }; }' "$u" "$DIR/secrets/seed.pass"
		done
		printf '\n);\n'
	} >"$c"
	chmod 644 "$c"
}

# ---------------------------------------------------------------- start/stop

is_running() {
	local f
	[ -f "$DIR/world.started" ] || return 1
	for f in $(world_pidfiles); do
		pid_alive "$(pidfile_pid "$f")" && return 0
	done
	return 1
}

start_postgrey() {
	mkdir -p "$DIR/postgrey"
	chown postfix:postfix "$DIR/postgrey"
	chmod 700 "$DIR/postgrey"
	postgrey --inet="127.0.0.1:$POSTGREY_PORT" --delay="$GREYLIST_DELAY" \
		--auto-whitelist-clients=0 --max-age=1 \
		--dbdir="$DIR/postgrey" --pidfile="$DIR/postgrey/postgrey.pid" \
		--greylist-text="Greylisted by greylist.test, retry in %s seconds" \
		--daemonize --user=postfix --group=postfix \
		</dev/null >"$DIR/postgrey/start.log" 2>&1 ||
		{ cat "$DIR/postgrey/start.log" >&2; die "postgrey did not start"; }
}

start_dovecot() {
	local kind=$1
	dovecot -c "$DIR/dovecot/$kind.conf" </dev/null >"$DIR/dovecot/$kind.start.log" 2>&1 ||
		{ cat "$DIR/dovecot/$kind.start.log" >&2; die "dovecot ($kind) did not start"; }
}

start_postfix() {
	postfix -c "$DIR/postfix" start </dev/null >"$DIR/postfix/start.log" 2>&1 ||
		{ cat "$DIR/postfix/start.log" >&2; [ -f "$DIR/postfix/maillog" ] && tail -n 20 "$DIR/postfix/maillog" >&2; die "postfix did not start"; }
}

# The WORLD_SEEDS bench seeds' Maildirs (Maildir++, as Dovecot lays them out:
# INBOX, .Bulk, .Trash), made directly: a doveadm call per seed would take
# minutes for 1,000 seeds.
create_bulk_folders() {
	local u m f
	for u in $(bulk_users); do
		m=$DIR/mail/${u#*@}/${u%@*}
		for f in "" /.Bulk /.Trash; do
			mkdir -p "$m$f/cur" "$m$f/new" "$m$f/tmp"
			[ -z "$f" ] || : >"$m$f/maildirfolder"
		done
		printf 'Bulk\nTrash\n' >"$m/subscriptions"
	done
	[ "$WORLD_SEEDS" -eq 0 ] || chown -R dovecot:dovecot "$DIR/mail"
}

# As root, enough inotify instances for WORLD_SEEDS seeds in IDLE (one per
# IDLE session and uid: all world users are uid dovecot). Only ever raised.
raise_inotify() {
	local need=$((WORLD_SEEDS * 4 + 512)) cur
	[ "$WORLD_SEEDS" -gt 0 ] && [ "$(id -u)" = 0 ] || return 0
	cur=$(cat /proc/sys/fs/inotify/max_user_instances 2>/dev/null) || return 0
	if [ "$cur" -lt "$need" ]; then
		note "raising fs.inotify.max_user_instances from $cur to $need for $WORLD_SEEDS seeds"
		sysctl -qw "fs.inotify.max_user_instances=$need" ||
			note "could not raise fs.inotify.max_user_instances: Dovecot's IDLE will poll every 30 s past $cur sessions"
	fi
}

create_folders() {
	local p u f t conf=$DIR/dovecot/main.conf
	for p in $PROVIDERS; do
		f=$(spam_folder_of "$p")
		t=$(trash_folder_of "$p")
		for u in inbox spam marker; do
			doveadm -c "$conf" mailbox create -s -u "$u@$p.test" "$f" "$t" </dev/null ||
				die "doveadm could not create folders for $u@$p.test"
		done
	done
	# The misbehaving MXs' seeds are ordinary mailboxes with a Junk folder
	# (\Junk, as at outlook.test), so a probe there is inbox, spam or absent.
	for u in inbox@greylist.test inbox@reject.test inbox@defer.test; do
		doveadm -c "$conf" mailbox create -s -u "$u" Junk Trash </dev/null ||
			die "doveadm could not create folders for $u"
	done
	create_bulk_folders
	# Materialize INBOX for everyone else.
	for u in probe@sender.test relay@sender.test; do
		doveadm -c "$conf" mailbox status -u "$u" messages INBOX </dev/null >/dev/null ||
			die "doveadm could not open INBOX of $u"
	done
}

do_start() {
	mkdir -p "$DIR"
	DIR=$(cd "$DIR" && pwd -P)
	if is_running; then
		die "a world is already running in $DIR (stop it first)"
	fi
	# Stale leftovers of a previous world in the same DIR: stop, then rebuild.
	if [ -f "$DIR/world.started" ]; then
		WORLD_QUIET=1 do_stop || true
	fi
	rm -rf "$DIR/postfix" "$DIR/dovecot" "$DIR/postgrey" "$DIR/mail" "$DIR/tls" \
		"$DIR/secrets" "$DIR/bin" "$DIR/env"
	chmod 755 "$DIR" # daemons that dropped root must reach their files
	WORLD_ID=$(basename "$DIR" | tr -c 'A-Za-z0-9_\n-' '_')
	local ports
	ports=$(free_ports 14) || die "cannot pick free ports"
	set -- $ports
	RELAY_PLAIN_PORT=$1 RELAY_STARTTLS_PORT=$2 RELAY_TLSREQ_PORT=$3 RELAY_SMTPS_PORT=$4
	MX_GREYLIST_PORT=$5 MX_REJECT_PORT=$6 MX_DEFER_PORT=$7 POSTGREY_PORT=$8
	IMAP_PORT=$9 IMAPS_PORT=${10} IMAPS_EXPIRED_PORT=${11} IMAP_NOTLS_PORT=${12}
	LMTP_PORT=${13} DOVECOT_AUTH_PORT=${14}

	gen_tls
	gen_secrets
	gen_dovecot
	gen_postfix
	gen_inboxprobe_conf
	gen_env
	touch "$DIR/world.started"

	# From here on, a failure stops what was started.
	trap 'echo "$PROG: start failed, stopping" >&2; WORLD_QUIET=1 do_stop || true' EXIT
	raise_inotify
	alt_dirs add "$DIR/postfix"
	start_dovecot main
	start_dovecot notls
	start_dovecot expired
	start_postgrey
	start_postfix
	wait_ports 30 "$IMAP_PORT" "$IMAPS_PORT" "$LMTP_PORT" "$DOVECOT_AUTH_PORT" \
		"$IMAP_NOTLS_PORT" "$IMAPS_EXPIRED_PORT" "$POSTGREY_PORT" ||
		die "Dovecot/postgrey ports did not answer within 30 s (see $DIR/dovecot/*.log)"
	sievec -c "$DIR/dovecot/main.conf" "$DIR/dovecot/sieve/before.sieve" </dev/null ||
		die "sieve script does not compile"
	chown -R dovecot:dovecot "$DIR/dovecot/sieve"
	create_folders
	wait_ports 30 "$RELAY_PLAIN_PORT" "$RELAY_STARTTLS_PORT" "$RELAY_TLSREQ_PORT" \
		"$RELAY_SMTPS_PORT" "$MX_GREYLIST_PORT" "$MX_REJECT_PORT" "$MX_DEFER_PORT" ||
		die "Postfix ports did not answer within 30 s (see $DIR/postfix/maillog)"
	trap - EXIT
	note "world running in $DIR (source $DIR/env)"
}

# The pid files of every daemon of the world in DIR.
world_pidfiles() {
	echo "$DIR/postfix/queue/pid/master.pid"
	echo "$DIR/dovecot/run-main/master.pid"
	echo "$DIR/dovecot/run-notls/master.pid"
	echo "$DIR/dovecot/run-expired/master.pid"
	echo "$DIR/postgrey/postgrey.pid"
	# daemons added by tests/world/oauth2.sh (token server, Dovecot "oauth")
	cat "$DIR/oauth2/pidfiles" 2>/dev/null || true
	# daemons a test added (e.g. notify_world.sh's Dovecot instances)
	cat "$DIR/extra.pidfiles" 2>/dev/null || true
}

do_stop() {
	[ -d "$DIR" ] || return 0
	DIR=$(cd "$DIR" && pwd -P)
	local f pid pids= i
	# TERM every master (Postfix and Dovecot masters stop their children),
	# wait up to 10 s for all of them, then KILL what is left.
	for f in $(world_pidfiles); do
		pid=$(pidfile_pid "$f")
		if pid_alive "$pid"; then
			kill -TERM "$pid" 2>/dev/null || true
			pids="$pids $pid"
		fi
	done
	for i in $(seq 100); do
		local alive=
		for pid in $pids; do
			pid_alive "$pid" && alive="$alive $pid"
		done
		pids=$alive
		[ -n "$pids" ] || break
		sleep 0.1
	done
	for pid in $pids; do
		note "pid $pid did not stop, killing it"
		kill -KILL "$pid" 2>/dev/null || true
	done
	if [ -f "$MAINCF" ] && grep -q "^alternate_config_directories.*$DIR/postfix" "$MAINCF"; then
		alt_dirs del "$DIR/postfix"
	fi
	rm -f "$DIR/world.started"
	note "world in $DIR stopped"
}

[ $# -eq 2 ] || { echo "usage: $PROG start|stop|status DIR" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "must run as root (Postfix and Dovecot need it)"
DIR=$2
case $DIR in
*[!A-Za-z0-9/._-]*) die "DIR must consist of letters, digits and / . _ - (Postfix and Dovecot configurations hold its path): $DIR" ;;
esac
case $1 in
start) do_start ;;
stop) do_stop ;;
status) [ -d "$DIR" ] && DIR=$(cd "$DIR" && pwd -P) && is_running ;;
*) echo "usage: $PROG start|stop|status DIR" >&2; exit 2 ;;
esac
