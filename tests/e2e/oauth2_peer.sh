#!/bin/sh
# SASL XOAUTH2 / OAUTHBEARER refusals against a scripted IMAP peer
# (tests/peers/imap_oauth_peer.py) shaped like Gmail and Microsoft:
# the initial responses on the wire byte for byte, the challenge answered
# as each mechanism requires (empty line / "AQ==") so the NO comes, one
# new token after a refusal and then success, Gmail's challenge decoded in
# the message, Microsoft's bare "NO AUTHENTICATE failed." said plainly,
# no SASL-IR (the response after "+"), a forced mechanism the server lacks.
# Exit 0 pass, 1 fail.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top_srcdir/tests/e2e/common.sh"
peer_test_init oauthpeer
PEER=$top_srcdir/tests/peers/imap_oauth_peer.py
need_built "$BIN"
has() { if grep -qF -- "$3" "$2"; then ok "$1"; else not_ok "$1 (no '$3' in $(cat "$2"))"; fi; }

# start_peer SCENARIO: sets PORT, PEER_PID
start_peer() {
	rm -f "$TMP/record"
	peer_start "$PEER" "$1" --record "$TMP/record" --lifetime 30
}

# folders_with MECH TOKENS...: the token command prints the given tokens,
# one per run (its count in $TMP/n); runs `inboxprobe folders -v`.
folders_with() {
	mech=$1
	shift
	: >"$TMP/n"
	printf '%s\n' "$@" >"$TMP/tokens"
	cat >"$TMP/c.conf" <<EOF
relay = { url = "smtp://127.0.0.1:25"; tls = "none"; from = "probe@example.test"; };
seeds = ( { address = "seed@example.test"; provider = "p";
            imap = { url = "imap://127.0.0.1:$PORT"; tls = "none"; $mech
                     oauth2 = { token_command = "echo x >>$TMP/n; sed -n \$(wc -l <$TMP/n)p $TMP/tokens"; }; }; } );
EOF
	"$BIN" folders -v -c "$TMP/c.conf" >"$TMP/out" 2>&1
	cat "$TMP/out" | sed 's/^/  | /'
	sed 's/^/  > /' "$TMP/record"
}
runs() { wc -l <"$TMP/n" | tr -d ' '; }

# 1. Gmail, XOAUTH2 forced: a refused token's challenge answered with an
#    empty line, one new token, then success
start_peer gmail
folders_with 'auth_mechanism = "xoauth2";' bad-token good-token
has "gmail xoauth2: initial response inline (SASL-IR), byte-exact" "$TMP/record" \
	"AUTHENTICATE XOAUTH2 dXNlcj1zZWVkQGV4YW1wbGUudGVzdAFhdXRoPUJlYXJlciBiYWQtdG9rZW4BAQ== => user=seed@example.test^Aauth=Bearer bad-token^A^A"
check "gmail xoauth2: the challenge answered with an empty line" 1 "$(grep -c '^$' "$TMP/record")"
check "gmail xoauth2: the token command ran twice (one refresh)" 2 "$(runs)"
has "gmail xoauth2: logged in with the new token" "$TMP/record" "auth=Bearer good-token^A^A"
has "gmail xoauth2: folders listed" "$TMP/out" "INBOX"
has "gmail xoauth2: -v names the mechanism and source" "$TMP/out" "XOAUTH2 with a token from token_command"

# 2. Gmail, OAUTHBEARER chosen from CAPABILITY: answered with AQ==
start_peer gmail
folders_with '' bad-token good-token
has "gmail oauthbearer: chosen when both are offered; GS2 header, host and port" "$TMP/record" \
	"=> n,a=seed@example.test,^Ahost=127.0.0.1^Aport=$PORT^Aauth=Bearer bad-token^A^A"
has "gmail oauthbearer: the challenge answered with AQ== (%x01)" "$TMP/record" "AQ== => ^A"
has "gmail oauthbearer: logged in with the new token" "$TMP/out" "INBOX"

# 3. Gmail refusing both tokens: error with the decoded challenge
start_peer gmail
folders_with '' bad-token worse-token
check "gmail refused twice: two tokens tried, no third" 2 "$(runs)"
has "gmail refused: the message names the mechanism and the decoded challenge" "$TMP/out" \
	'OAUTHBEARER login of seed@example.test refused by the mail server: [AUTHENTICATIONFAILED] Invalid credentials (Failure) (server'"'"'s challenge: status "401", schemes "bearer mac", scope "https://mail.google.com/")'
if grep -q "worse-token\|bad-token" "$TMP/out"; then not_ok "a token appears in the output"; else ok "no token in the output"; fi

# 4. Microsoft: no SASL-IR, XOAUTH2 only, a bare NO
start_peer microsoft
folders_with '' bad-token worse-token
has "microsoft: XOAUTH2 chosen (the only one offered), response after '+'" "$TMP/record" "AUTHENTICATE XOAUTH2"
check "microsoft: the response sent on its own line" 2 "$(grep -c '^dXNlcj1zZWVk' "$TMP/record")"
has "microsoft: the bare NO said plainly" "$TMP/out" \
	"XOAUTH2 login of seed@example.test refused by the mail server: AUTHENTICATE failed. (the server gives no reason"

# 5. a forced mechanism the server does not offer: no AUTHENTICATE at all
start_peer microsoft
folders_with 'auth_mechanism = "oauthbearer";' good-token
has "microsoft + oauthbearer forced: said so" "$TMP/out" "the server offers no OAUTHBEARER"
check "microsoft + oauthbearer forced: nothing sent" 0 "$(grep -c AUTHENTICATE "$TMP/record")"
check "microsoft + oauthbearer forced: no token fetched" 0 "$(runs)"

echo "# $CHECKS checks, $FAILS failed"
[ "$FAILS" = 0 ]
