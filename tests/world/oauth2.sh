# OAuth 2.0 for the loopback world (sourced after world_up; bash or sh).
#
#   oauth2_world_up   start, inside the running world in $WORLD_DIR:
#     - tests/world/token_server.py on a free port (OAUTH_TOKEN_URL, /introspect,
#       /stats, /control/...), with a test RSA key for the JWT bearer grant;
#     - a Dovecot instance "oauth" on the world's maildirs: an oauth2 passdb
#       (introspection_mode = post against the token server) for XOAUTH2 and
#       OAUTHBEARER, beside the passwd-file passdb restricted to
#       `mechanisms = plain login none` (none: LMTP/doveadm user lookups);
#       IMAPS on OAUTH_IMAPS_PORT, its auth service on OAUTH_AUTH_PORT;
#     - a Postfix submission listener (STARTTLS required, SASL through that
#       Dovecot's auth service) on OAUTH_SUBMIT_PORT, so SMTP XOAUTH2 and
#       OAUTHBEARER are real.
# The daemons' pid files are listed in $WORLD_DIR/oauth2/pidfiles, which
# world.sh stop reads. Secrets: $WORLD_DIR/oauth2/*.
# Requires python3-jwt (and python3-cryptography) for RS256.

oauth2_free_ports() {
	/usr/bin/python3 - "$1" <<'PY'
import socket, sys
ss = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); ss.append(s)
print(" ".join(str(s.getsockname()[1]) for s in ss))
PY
}

# oauth2_world_up: see above. Sets and exports OAUTH_* variables.
oauth2_world_up() {
	_o=$WORLD_DIR/oauth2
	mkdir -p "$_o"
	chmod 755 "$_o"
	set -- $(oauth2_free_ports 4)
	OAUTH_PORT=$1 OAUTH_IMAPS_PORT=$2 OAUTH_AUTH_PORT=$3 OAUTH_SUBMIT_PORT=$4
	OAUTH_TOKEN_URL=http://127.0.0.1:$OAUTH_PORT/token
	OAUTH_URL=http://127.0.0.1:$OAUTH_PORT
	export OAUTH_PORT OAUTH_IMAPS_PORT OAUTH_AUTH_PORT OAUTH_SUBMIT_PORT OAUTH_TOKEN_URL OAUTH_URL

	# The service account's key (Google's JSON key shape) and its public half.
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$_o/sa.pem" 2>/dev/null
	openssl pkey -in "$_o/sa.pem" -pubout -out "$_o/sa.pub" 2>/dev/null
	/usr/bin/python3 - "$_o/sa.pem" "$_o/sa.json" "$OAUTH_TOKEN_URL" <<'PY'
import json, os, sys
key = open(sys.argv[1]).read()
os.umask(0o077)
json.dump({"type": "service_account", "client_email": "prober@world-project.iam.test",
           "private_key": key, "token_uri": sys.argv[3]}, open(sys.argv[2], "w"))
PY
	chmod 600 "$_o/sa.json" "$_o/sa.pem"
	umask 077
	echo "s3cret-app" >"$_o/app.secret"
	echo "s3cret-relay-client" >"$_o/client.secret"
	umask 022
	cat >"$_o/server.json" <<EOF
{"clients": {"inboxprobe": {"secret": "s3cret-relay-client"},
             "public-app": {"secret": null},
             "app-inbox": {"secret": "s3cret-app", "mailbox": "inbox@yahoo.test"},
             "app-spam": {"secret": "s3cret-app", "mailbox": "spam@yahoo.test"},
             "app-bulk": {"secret": "s3cret-app", "mailbox": "inbox@bulkmail.test"}},
 "jwt_public_key": "$_o/sa.pub", "jwt_client_email": "prober@world-project.iam.test",
 "scopes": ["mail", "offline_access", "https://mail.google.com/",
            "https://outlook.office365.com/.default", "https://outlook.office.com/IMAP.AccessAsUser.All"],
 "lifetime": 3600}
EOF
	/usr/bin/python3 "${top_srcdir:-.}/tests/world/token_server.py" --port "$OAUTH_PORT" \
		--config "$_o/server.json" --pidfile "$_o/token_server.pid" \
		</dev/null >"$_o/token_server.log" 2>&1 &
	echo "$_o/token_server.pid" >"$_o/pidfiles"
	echo "$WORLD_DIR/dovecot/run-oauth/master.pid" >>"$_o/pidfiles"

	oauth2_dovecot_conf >"$WORLD_DIR/dovecot/oauth.conf"
	dovecot -c "$WORLD_DIR/dovecot/oauth.conf" </dev/null >"$WORLD_DIR/dovecot/oauth.start.log" 2>&1 ||
		{ cat "$WORLD_DIR/dovecot/oauth.start.log" >&2; return 1; }
	oauth2_postfix_submission || return 1
	_i=0
	for _p in $OAUTH_PORT $OAUTH_IMAPS_PORT $OAUTH_AUTH_PORT $OAUTH_SUBMIT_PORT; do
		while ! (exec 3<>/dev/tcp/127.0.0.1/$_p) 2>/dev/null; do
			_i=$((_i + 1))
			[ $_i -lt 300 ] || { echo "oauth2 world: port $_p did not open" >&2; return 1; }
			sleep 0.1
		done
	done
}

oauth2_dovecot_conf() {
	_d=$WORLD_DIR/dovecot
	cat >"$_d/oauth2.conf.ext" <<EOF
introspection_mode = post
introspection_url = $OAUTH_URL/introspect
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
EOF
	cat <<EOF
# The world's OAuth 2.0 Dovecot (tests/world/oauth2.sh): same maildirs as main.
instance_name = world-oauth-$WORLD_ID
base_dir = $_d/run-oauth
state_dir = $_d/state-oauth
log_path = $_d/oauth.log
info_log_path = $_d/oauth.log
listen = 127.0.0.1
protocols = imap
auth_mechanisms = plain login xoauth2 oauthbearer
auth_verbose = yes
first_valid_uid = $(id -u dovecot)
first_valid_gid = $(id -g dovecot)
mail_location = maildir:$WORLD_DIR/mail/%d/%n
mail_home = $WORLD_DIR/mail/%d/%n
ssl = required
ssl_cert = <$WORLD_DIR/tls/cert.pem
ssl_key = <$WORLD_DIR/tls/key.pem
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $_d/oauth2.conf.ext
}
passdb {
  driver = passwd-file
  mechanisms = plain login none
  args = scheme=PLAIN username_format=%u $_d/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $_d/users
  default_fields = uid=dovecot gid=dovecot home=$WORLD_DIR/mail/%d/%n
}
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $OAUTH_IMAPS_PORT
    ssl = yes
  }
}
service auth {
  inet_listener auth-oauth {
    address = 127.0.0.1
    port = $OAUTH_AUTH_PORT
  }
}
EOF
	sed -n '/^namespace inbox {/,/^}/p' "$_d/main.conf"
}

# A submission listener: STARTTLS required, AUTH through the oauth Dovecot.
oauth2_postfix_submission() {
	_c=$WORLD_DIR/postfix
	_s=127.0.0.1:$OAUTH_SUBMIT_PORT/inet
	postconf -c "$_c" -M "$_s=127.0.0.1:$OAUTH_SUBMIT_PORT inet n - n - - smtpd" &&
	postconf -c "$_c" -P "$_s/syslog_name=postfix/relay-oauth" \
		"$_s/smtpd_tls_security_level=encrypt" "$_s/smtpd_tls_auth_only=yes" \
		"$_s/smtpd_sasl_auth_enable=yes" "$_s/smtpd_sasl_path=inet:127.0.0.1:$OAUTH_AUTH_PORT" \
		"$_s/smtpd_relay_restrictions=permit_sasl_authenticated,reject" &&
	postfix -c "$_c" reload </dev/null >/dev/null 2>&1
}

# oauth2_stats: the token server's /stats JSON on stdout.
oauth2_stats() {
	curl -s "$OAUTH_URL/stats"
}

# oauth2_count GRANT: how many /token requests of that grant_type ("token": all).
oauth2_count() {
	oauth2_stats | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"].get(sys.argv[1], 0))' "$1"
}

# oauth2_control WHAT [QUERY]: POST /control/WHAT?QUERY.
oauth2_control() {
	curl -s -X POST "$OAUTH_URL/control/$1${2:+?$2}" >/dev/null
}
