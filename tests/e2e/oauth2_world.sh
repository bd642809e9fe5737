#!/bin/bash
# OAuth 2.0 end to end against the loopback world (tests/world/oauth2.sh):
# Dovecot's oauth2 passdb introspecting tokens at tests/world/token_server.py,
# Postfix submission with SASL through Dovecot. One round with every token
# source (refresh grant with {username} files and rotation, JWT bearer,
# client credentials, token_command; the relay on the refresh grant),
# XOAUTH2 and OAUTHBEARER; then the cache, expiry, revocation, an endpoint
# that is down, a wrong scope, two concurrent refreshes, bad token commands,
# an unsafe refresh-token file. The token server's request counts prove
# what was fetched; no issued token may appear in any output.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/oauth2.sh"
BIN=${top_builddir:-.}/inboxprobe
[ -x "$BIN" ] || { echo "no inboxprobe binary at $BIN"; exit 99; }
/usr/bin/python3 -c 'import jwt, cryptography' 2>/dev/null || { echo "SKIP: python3-jwt missing"; exit 77; }
world_up
oauth2_world_up || { echo "oauth2 world did not start"; exit 99; }
O=$WORLD_DIR/oauth2
T=$WORLD_DIR/oauth2-test
mkdir -p "$T" "$T/state"

# Consent, as `authorize` would leave it: one refresh token per user.
umask 077
for u in inbox@outlook.test spam@outlook.test relay@sender.test probe@sender.test; do
	curl -s -X POST "$OAUTH_URL/control/add_refresh?user=$u&client=inboxprobe" |
		/usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["refresh_token"])' >"$O/rt-$u"
done
umask 022
# What token_command prints: a token kept fresh by some other tool.
cmd_token() {
	(umask 077
	curl -s -d grant_type=client_credentials -d client_id=app-bulk -d client_secret=s3cret-app \
		"$OAUTH_TOKEN_URL" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' >"$O/cmd.token")
}
cmd_token

# write_conf FILE [RELAY-EXTRA]: the OAuth world configuration.
write_conf() {
	cat >"$1" <<EOF
name = "oauth";
relay = { url = "smtp://localhost:$OAUTH_SUBMIT_PORT"; ca_file = "$WORLD_CA"; ${2:-}
          from = "probe@sender.test"; username = "relay@sender.test";
          oauth2 = { token_url = "$OAUTH_TOKEN_URL"; client_id = "inboxprobe";
                     client_secret_file = "$O/client.secret";
                     refresh_token_file = "$O/rt-relay@sender.test"; scope = "mail"; }; };
probe = { deadline = 40; poll_interval = 1; cleanup = "delete"; };
slo = { min_inbox_ratio = 0.5; max_latency_p99 = 60.0; };
report = { json = "$T/report.json"; };
state = { path = "$T/state/state.db"; };
bounce_mailbox = { url = "imaps://localhost:$OAUTH_IMAPS_PORT"; ca_file = "$WORLD_CA";
                   username = "probe@sender.test";
                   oauth2 = { token_url = "$OAUTH_TOKEN_URL"; client_id = "inboxprobe";
                              client_secret_file = "$O/client.secret";
                              refresh_token_file = "$O/rt-probe@sender.test"; scope = "mail"; }; };
imap_defaults = { url = "imaps://localhost:$OAUTH_IMAPS_PORT"; ca_file = "$WORLD_CA";
                  oauth2 = { token_url = "$OAUTH_TOKEN_URL"; client_id = "inboxprobe";
                             client_secret_file = "$O/client.secret";
                             refresh_token_file = "$O/rt-{username}"; scope = "mail offline_access"; }; };
seeds = (
  { address = "inbox@outlook.test"; provider = "outlook"; },
  { address = "spam@outlook.test"; provider = "outlook"; },
  { address = "inbox@gmail.test"; provider = "gmail";
    imap = { auth_mechanism = "xoauth2"; oauth2 = { service_account_file = "$O/sa.json"; }; }; },
  { address = "spam@gmail.test"; provider = "gmail";
    imap = { auth_mechanism = "xoauth2"; oauth2 = { service_account_file = "$O/sa.json"; }; }; },
  { address = "inbox@yahoo.test"; provider = "yahoo";
    imap = { auth_mechanism = "oauthbearer";
             oauth2 = { token_url = "$OAUTH_TOKEN_URL"; client_id = "app-inbox";
                        client_secret_file = "$O/app.secret";
                        scope = "https://outlook.office365.com/.default"; }; }; },
  { address = "spam@yahoo.test"; provider = "yahoo";
    imap = { oauth2 = { token_url = "$OAUTH_TOKEN_URL"; client_id = "app-spam";
                        client_secret_file = "$O/app.secret";
                        scope = "https://outlook.office365.com/.default"; }; }; },
  { address = "inbox@bulkmail.test"; provider = "bulkmail";
    imap = { oauth2 = { token_command = "cat $O/cmd.token"; }; }; }
);
EOF
}
C=$T/oauth.conf
write_conf "$C"
ALL_OUT=$T/all-output
: >"$ALL_OUT"

# run NAME [ARGS]: inboxprobe run -v; exit code in $rc, output kept.
run() {
	_n=$1
	shift
	"$BIN" run -v -c "$C" "$@" >"$T/$_n.out" 2>"$T/$_n.err"
	rc=$?
	cat "$T/$_n.out" "$T/$_n.err" >>"$ALL_OUT"
	[ -f "$T/report.json" ] && cat "$T/report.json" >>"$ALL_OUT"
}

# outcomes: "address outcome" per seed from the JSON report.
outcomes() {
	/usr/bin/python3 -c 'import json,sys
for s in json.load(open(sys.argv[1]))["seeds"]: print(s["address"], s["outcome"])' "$T/report.json"
}

expect_all_found() {
	_o=$(outcomes)
	for _a in inbox@outlook.test inbox@gmail.test inbox@yahoo.test inbox@bulkmail.test; do
		check "$1: $_a" "$_a inbox" "$(echo "$_o" | grep "^$_a ")"
	done
	for _a in spam@outlook.test spam@gmail.test spam@yahoo.test; do
		check "$1: $_a" "$_a spam" "$(echo "$_o" | grep "^$_a ")"
	done
}

# --- 1. every grant end to end
rt_before=$(cat "$O/rt-inbox@outlook.test")
run first
check "first round exits 0" 0 "$rc"
[ "$rc" = 0 ] || sed 's/^/  /' "$T/first.err"
expect_all_found "first round"
assert "-v names XOAUTH2 for the forced seeds" grep -q "XOAUTH2 with a token from jwt_bearer" "$T/first.err"
assert "-v names OAUTHBEARER chosen from CAPABILITY" grep -q "OAUTHBEARER with a token from refresh_token" "$T/first.err"
assert "-v names client_credentials" grep -q "token from client_credentials" "$T/first.err"
grep -q "relay-oauth.*sasl_method=OAUTHBEARER, sasl_username=relay@sender.test" "$RELAY_LOG" &&
	ok "relay: SMTP AUTH OAUTHBEARER accepted by Postfix via Dovecot" ||
	not_ok "relay: no sasl_method=OAUTHBEARER login in $RELAY_LOG"
stats=$(oauth2_stats)
cur=$(echo "$stats" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["refresh_tokens"]["inbox@outlook.test"])')
check "rotated refresh token written back to rt-inbox@outlook.test" "$cur" "$(cat "$O/rt-inbox@outlook.test")"
[ "$cur" != "$rt_before" ] && ok "the refresh token did rotate" || not_ok "the refresh token did not rotate"
check "refresh-token file mode after write-back" 600 "$(stat -c %a "$O/rt-inbox@outlook.test")"
cache=$(ls "$T/state"/oauth2-*.json 2>/dev/null | head -n 1)
[ -n "$cache" ] && ok "access-token cache beside the state store" || not_ok "no oauth2-*.json beside the state store"
[ -n "$cache" ] && check "cache file mode" 600 "$(stat -c %a "$cache")"
n_refresh=$(oauth2_count refresh_token)
n_all=$(oauth2_count token)
check "one refresh per refresh source (4 users: 2 seeds, relay, bounce mailbox)" 4 "$n_refresh"
cur=$(oauth2_stats | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["refresh_tokens"]["probe@sender.test"])')
check "bounce mailbox: logged in with its rotated grant" "$cur" "$(cat "$O/rt-probe@sender.test")"
assert "bounce mailbox: no error about it" sh -c "! grep -qi 'bounce.*\\(error\\|failed\\)' '$T/first.out' '$T/first.err'"

# --- 2. the next run reuses the cached access tokens; the relay forced to XOAUTH2
write_conf "$C" 'auth_mechanism = "xoauth2";'
run second
check "second round exits 0" 0 "$rc"
[ "$rc" = 0 ] || sed 's/^/  | /' "$T/second.out" "$T/second.err"
check "second round: no token request at all (cached)" "$n_all" "$(oauth2_count token)"
grep -q "relay-oauth.*sasl_method=XOAUTH2, sasl_username=relay@sender.test" "$RELAY_LOG" &&
	ok "relay: auth_mechanism = xoauth2 makes SMTP AUTH XOAUTH2" ||
	not_ok "relay: no sasl_method=XOAUTH2 login in $RELAY_LOG"

# --- 3. tokens expire early at the server: each source is refreshed once
oauth2_control expire
cmd_token
n_all=$((n_all + 1))
run third
check "after expiry: round exits 0" 0 "$rc"
[ "$rc" = 0 ] || sed 's/^/  | /' "$T/third.out" "$T/third.err"
expect_all_found "after expiry"
check "after expiry: one new token per source (4 refresh + 2 jwt + 2 client)" $((n_all + 8)) "$(oauth2_count token)"
assert "after expiry: the rejection was seen and a new token fetched" grep -q "token refused; fetching a new one" "$T/third.err"

# --- 4. a revoked grant: error naming invalid_grant, exit 3
oauth2_control revoke "user=spam@outlook.test"
run revoked
check "revoked grant: exit 3" 3 "$rc"
[ "$rc" = 3 ] || sed 's/^/  | /' "$T/revoked.out" "$T/revoked.err"
check "revoked grant: spam@outlook.test is error" "spam@outlook.test error" "$(outcomes | grep '^spam@outlook.test ')"
assert "revoked grant: diagnostic names invalid_grant" grep -q "invalid_grant" "$T/revoked.err" "$T/revoked.out" "$T/report.json"
check "revoked grant: the others still measured" "inbox@outlook.test inbox" "$(outcomes | grep '^inbox@outlook.test ')"

# --- 4b. a relay that refuses the token (twice): error with its challenge, nothing sent
cp "$C" "$T/relaybad.conf"
C0=$C
C=$T/relaybad.conf
/usr/bin/python3 - "$C" "$O" <<'PY'
import re, sys
p, o = sys.argv[1], sys.argv[2]
s = open(p).read()
s = re.sub(r'(relay = \{.*?)oauth2 = \{.*?\}; \};', r'\1oauth2 = { token_command = "echo not-a-valid-token"; }; };', s, count=1, flags=re.S)
open(p, "w").write(s)
PY
run relaybad
check "relay refusing the token: exit 3" 3 "$rc"
assert "relay refusing the token: said, with the server's decoded challenge" grep -q "relay auth: smtp://localhost:$OAUTH_SUBMIT_PORT: .*token refused (server's challenge: status \"\(401\|invalid_token\)\"" "$T/relaybad.out"
C=$C0

# Small configurations for `folders` (one seed each, own cache directory).
# one_seed NAME OAUTH2-BODY [IMAP-EXTRA]
one_seed() {
	mkdir -p "$T/$1"
	cat >"$T/$1/c.conf" <<EOF
relay = { url = "smtp://127.0.0.1:$RELAY_PLAIN_PORT"; tls = "none"; from = "probe@sender.test"; };
state = { path = "$T/$1/state.db"; };
seeds = ( { address = "inbox@outlook.test"; provider = "outlook";
            imap = { url = "imaps://localhost:$OAUTH_IMAPS_PORT"; ca_file = "$WORLD_CA"; $3
                     oauth2 = { $2 }; }; } );
EOF
}

# --- 5. the token endpoint down
p=$(free_port)
one_seed down "token_url = \"http://127.0.0.1:$p/token\"; client_id = \"inboxprobe\"; client_secret_file = \"$O/client.secret\"; refresh_token_file = \"$O/rt-inbox@outlook.test\";"
"$BIN" folders -c "$T/down/c.conf" >"$T/down.out" 2>&1
cat "$T/down.out" >>"$ALL_OUT"
assert "endpoint down: says unreachable" grep -q "token endpoint http://127.0.0.1:$p/token unreachable" "$T/down.out"

# --- 6. a wrong scope
one_seed scope "token_url = \"$OAUTH_TOKEN_URL\"; client_id = \"app-inbox\"; client_secret_file = \"$O/app.secret\"; scope = \"https://wrong.test/.default\";"
"$BIN" folders -c "$T/scope/c.conf" >"$T/scope.out" 2>&1
cat "$T/scope.out" >>"$ALL_OUT"
assert "wrong scope: names invalid_scope" grep -q "refused: invalid_scope" "$T/scope.out"

# --- 7. two runs refreshing the same grant at once both succeed
oauth2_control expire
one_seed conc "token_url = \"$OAUTH_TOKEN_URL\"; client_id = \"inboxprobe\"; client_secret_file = \"$O/client.secret\"; refresh_token_file = \"$O/rt-inbox@outlook.test\";"
r0=$(oauth2_count refresh_token)
"$BIN" folders -c "$T/conc/c.conf" >"$T/conc1.out" 2>&1 &
p1=$!
"$BIN" folders -c "$T/conc/c.conf" >"$T/conc2.out" 2>&1 &
p2=$!
wait $p1; rc1=$?
wait $p2; rc2=$?
cat "$T/conc1.out" "$T/conc2.out" >>"$ALL_OUT"
check "concurrent refresh: first run lists folders" 0 "$rc1"
check "concurrent refresh: second run lists folders" 0 "$rc2"
assert "concurrent refresh: first run saw INBOX" grep -q "INBOX" "$T/conc1.out"
assert "concurrent refresh: second run saw INBOX" grep -q "INBOX" "$T/conc2.out"
check "concurrent refresh: one refresh between them (the other used the cache)" $((r0 + 1)) "$(oauth2_count refresh_token)"
cur=$(oauth2_stats | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["refresh_tokens"]["inbox@outlook.test"])')
check "concurrent refresh: the file holds the live refresh token" "$cur" "$(cat "$O/rt-inbox@outlook.test")"

# --- 8. token commands that hang or print nothing
one_seed hang "token_command = \"echo waiting >&2; sleep 30\"; command_timeout = 2;"
s0=$(date +%s)
"$BIN" folders -c "$T/hang/c.conf" >"$T/hang.out" 2>&1
s1=$(date +%s)
assert "hanging token_command: killed after its timeout" grep -q "token_command did not finish within 2 s; killed: waiting" "$T/hang.out"
[ $((s1 - s0)) -lt 20 ] && ok "hanging token_command: bounded" || not_ok "hanging token_command took $((s1 - s0)) s"
one_seed empty "token_command = \"true\";"
"$BIN" folders -c "$T/empty/c.conf" >"$T/empty.out" 2>&1
assert "empty token_command: says it printed nothing" grep -q "token_command printed nothing" "$T/empty.out"
one_seed failing "token_command = \"echo secret-stdout; echo no consent >&2; exit 4\";"
"$BIN" folders -c "$T/failing/c.conf" >"$T/failing.out" 2>&1
assert "failing token_command: exit status and stderr shown" grep -q "token_command failed (exit status 4): no consent" "$T/failing.out"
assert "failing token_command: its stdout is not shown" sh -c "! grep -q secret-stdout '$T/failing.out'"

# --- 9. a world-readable refresh-token file is refused at load; check verifies modes
cp "$O/rt-inbox@outlook.test" "$T/rt-open"
chmod 644 "$T/rt-open"
one_seed open "token_url = \"$OAUTH_TOKEN_URL\"; client_id = \"inboxprobe\"; refresh_token_file = \"$T/rt-open\";"
"$BIN" check -c "$T/open/c.conf" >"$T/open.out" 2>&1
check "world-readable refresh-token file: check exits 2" 2 "$?"
assert "world-readable refresh-token file: named with its mode" grep -q "refresh_token_file: $T/rt-open is readable by group or others (mode 0644)" "$T/open.out"
cat "$T/open.out" >>"$ALL_OUT"

# --- 10. consent: `oauth2 authorize` with the device flow (RFC 8628) and the
# loopback redirect with PKCE (RFC 8252, 7636); the stored token then works.
# wait_for FILE PATTERN: until FILE holds PATTERN (30 s at most).
wait_for() {
	_i=0
	while ! grep -q "$2" "$1" 2>/dev/null; do
		_i=$((_i + 1))
		[ $_i -lt 300 ] || return 1
		sleep 0.1
	done
}
one_seed device "token_url = \"$OAUTH_TOKEN_URL\"; client_id = \"public-app\"; refresh_token_file = \"$T/device/rt\"; scope = \"mail offline_access\";"
"$BIN" oauth2 authorize -c "$T/device/c.conf" --seed inbox@outlook.test --device \
	--device-url "$OAUTH_URL/device" --timeout 60 >"$T/device.out" 2>&1 &
pa=$!
wait_for "$T/device.out" "enter the code WDJB-MJHT" && ok "device flow: prints the verification URL and the user code" ||
	not_ok "device flow: no code printed ($(cat "$T/device.out"))"
oauth2_control approve "user=inbox@outlook.test"
wait $pa
check "device flow: authorize exits 0" 0 "$?"
cat "$T/device.out" >>"$ALL_OUT"
check "device flow: slow_down honoured (one slow_down, then the longer interval)" 1 "$(oauth2_count slow_down)"
check "device flow: refresh-token file mode" 600 "$(stat -c %a "$T/device/rt" 2>/dev/null)"
cur=$(oauth2_stats | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["refresh_tokens"]["inbox@outlook.test"])')
check "device flow: the stored refresh token is the live one" "$cur" "$(cat "$T/device/rt" 2>/dev/null)"
"$BIN" folders -c "$T/device/c.conf" >"$T/device-folders.out" 2>&1
assert "device flow: the stored grant logs in (folders lists INBOX)" grep -q "INBOX" "$T/device-folders.out"
cat "$T/device-folders.out" >>"$ALL_OUT"

one_seed browser "token_url = \"$OAUTH_TOKEN_URL\"; client_id = \"public-app\"; refresh_token_file = \"$T/browser/rt\"; scope = \"mail\";"
"$BIN" oauth2 authorize -c "$T/browser/c.conf" --seed inbox@outlook.test --browser \
	--authorize-url "$OAUTH_URL/authorize" --timeout 60 >"$T/browser.out" 2>&1 &
pa=$!
wait_for "$T/browser.out" "^$OAUTH_URL/authorize?" && ok "loopback flow: prints the URL to open" ||
	not_ok "loopback flow: no URL printed ($(cat "$T/browser.out"))"
url=$(grep "^$OAUTH_URL/authorize?" "$T/browser.out")
case $url in
*"redirect_uri=http%3A%2F%2F127.0.0.1%3A"*) ok "loopback flow: redirect to 127.0.0.1" ;;
*) not_ok "loopback flow: no loopback redirect_uri: $url" ;;
esac
case $url in
*"code_challenge_method=S256"*) ok "loopback flow: PKCE S256 (the server checks the verifier)" ;;
*) not_ok "loopback flow: no PKCE S256: $url" ;;
esac
curl -s -L --max-time 20 "$url" >"$T/browser-page.out"
wait $pa
check "loopback flow: authorize exits 0" 0 "$?"
assert "loopback flow: the browser was told to close the window" grep -q "consent received" "$T/browser-page.out"
"$BIN" folders -c "$T/browser/c.conf" >"$T/browser-folders.out" 2>&1
assert "loopback flow: the stored grant logs in (folders lists INBOX)" grep -q "INBOX" "$T/browser-folders.out"
cat "$T/browser.out" "$T/browser-folders.out" >>"$ALL_OUT"

# --- 11. no token, secret or assertion anywhere in the output, reports or state
oauth2_stats | /usr/bin/python3 -c 'import json,sys; print("\n".join(json.load(sys.stdin)["issued"]))' >"$T/issued"
echo "s3cret-app" >>"$T/issued"
echo "s3cret-relay-client" >>"$T/issued"
leaks=0
for f in "$ALL_OUT" "$T/state/state.db"; do
	if grep -aqFf "$T/issued" "$f"; then
		leaks=1
		not_ok "a token or secret appears in $f"
	fi
done
[ $leaks = 0 ] && ok "no issued token or secret in outputs, reports or the state store ($(wc -l <"$T/issued") checked)"
assert "no JWT assertion in outputs" sh -c "! grep -q 'eyJhbGciOiJSUzI1NiIs' '$ALL_OUT'"

echo "# $WORLD_CHECKS checks, $WORLD_FAILS failed"
[ "$WORLD_FAILS" = 0 ]
