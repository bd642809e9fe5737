#!/bin/bash
# `inboxprobe daemon` with OAuth 2.0 access tokens that expire (docs/SPEC.md
# "Daemon", "OAuth 2.0"), against the loopback OAuth world
# (tests/world/oauth2.sh: the token server and Dovecot's oauth2 passdb)
# behind tests/peers/exchange_proxy.py, which ends a session the moment its
# token expires with Exchange Online's "* BYE Session invalidated -
# AccessTokenExpired" (Dovecot itself keeps a session past its token).
# Tokens live 8 s; rounds every 10 s (deadline 3 s) for about 30 s; one seed
# (refresh grant) with its kept session(s): one where the server offers
# NOTIFY (Dovecot does: INBOX and the spam folder on one session), else two:
#  1. every round measures the seed (the BYEs fall between and in rounds);
#  2. each BYE gets exactly one new login, at once (no backoff): the
#     daemon's imap_logins_total = the proxy's logins = the sessions + the
#     BYEs answered; that is one login per session per token lifetime;
#  3. every login carries a token that has not expired (refreshed before
#     its expiry), and the token endpoint was asked once per lifetime: the
#     refresh grants = the distinct tokens the proxy saw, the account's
#     sessions sharing each.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/pycheck.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/oauth2.sh"
BIN=${top_builddir:-.}/inboxprobe
[ -x "$BIN" ] || { echo "no inboxprobe binary at $BIN"; exit 99; }
/usr/bin/python3 -c 'import jwt, cryptography' 2>/dev/null || { echo "SKIP: python3-jwt missing"; exit 77; }
world_up
oauth2_world_up || { echo "oauth2 world did not start"; exit 99; }
O=$WORLD_DIR/oauth2
T=$WORLD_DIR/daemon-oauth
mkdir -p "$T"
DPID=""
XPID=""
stop_all() {
	_st=$?
	[ -n "$DPID" ] && kill -KILL "$DPID" 2>/dev/null
	[ -n "$XPID" ] && kill "$XPID" 2>/dev/null
	(exit $_st)
	world_down
}
trap stop_all EXIT
umask 077
curl -s -X POST "$OAUTH_URL/control/add_refresh?user=inbox@outlook.test&client=inboxprobe" |
	"$PY" -c 'import json,sys; print(json.load(sys.stdin)["refresh_token"])' >"$O/rt-inbox@outlook.test"
umask 022
oauth2_control lifetime s=8
"$PY" "${top_srcdir:-.}/tests/peers/exchange_proxy.py" --upstream-port "$OAUTH_IMAPS_PORT" \
	--ca "$WORLD_CA" --token-server "$OAUTH_URL" --record "$T/proxy.rec" --lifetime 120 \
	</dev/null >"$T/proxy.port" 2>"$T/proxy.err" &
XPID=$!
i=0
while [ ! -s "$T/proxy.port" ] && [ $i -lt 50 ]; do i=$((i + 1)); sleep 0.1; done
XPORT=$(head -n 1 "$T/proxy.port")
PORT=$(free_port)
: >"$T/proxy.rec"
cat >"$T/d.conf" <<CONF
name = "xoauth";
relay = { url = "smtp://127.0.0.1:$RELAY_PLAIN_PORT"; tls = "none"; from = "probe@sender.test";
          connect_timeout = 3; timeout = 10; };
probe = { deadline = 3; poll_interval = 1; cleanup = "delete"; };
slo = { min_inbox_ratio = 0.5; max_latency_p99 = 60.0; };
state = { path = "$T/state.db"; };
report = { textfile = "$T/d.prom"; };
schedule = { interval = 10; jitter = 0; };
web = { listen_address = "127.0.0.1:$PORT"; };
seeds = ( { address = "inbox@outlook.test"; provider = "outlook";
            imap = { url = "imap://127.0.0.1:$XPORT"; tls = "none"; auth_mechanism = "xoauth2";
                     oauth2 = { token_url = "$OAUTH_TOKEN_URL"; client_id = "inboxprobe";
                                client_secret_file = "$O/client.secret";
                                refresh_token_file = "$O/rt-inbox@outlook.test"; scope = "mail"; }; }; } );
CONF
G0=$(oauth2_count refresh_token)
"$BIN" daemon -v -c "$T/d.conf" </dev/null >"$T/d.out" 2>"$T/d.err" &
DPID=$!
_end=$(($(date +%s) + 60))
while [ "$(grep -c ': round [0-9]*:' "$T/d.err")" -lt 4 ] && [ "$(date +%s)" -lt "$_end" ]; do sleep 0.2; done
L=$(curl -fsS "http://127.0.0.1:$PORT/metrics" 2>/dev/null | awk '$1 == "inboxprobe_imap_logins_total{config=\"xoauth\"}" { print $2 }')
NOW=$("$PY" -c 'import time; print(time.time())')
cp "$T/proxy.rec" "$T/proxy.snap"
G=$(($(oauth2_count refresh_token) - G0))
kill -TERM "$DPID"
wait "$DPID"
check "SIGTERM: exit 0" 0 "$?"
DPID=""
grep ': round [0-9]*:' "$T/d.err" | sed 's/^/# /'
grep 'AccessTokenExpired' "$T/d.err" | head -n 6 | sed 's/^/# /'
nb=$(grep -c 'server said BYE: Session invalidated - AccessTokenExpired' "$T/d.err")
check "each BYE between rounds logs in again at once, not after a backoff" "$nb 0" \
	"$(grep -c 'AccessTokenExpired; logging in again (new credentials)' "$T/d.err") $(grep -c 'reconnecting with backoff\|reconnect [0-9]* failed' "$T/d.err")"
n=$(grep -c ': round [0-9]*:' "$T/d.err")
assert "4 rounds ran ($n)" [ "$n" -ge 4 ]
check "every round measured the seed (inbox)" "$n" "$(grep -c ': round [0-9]*: .*1 seeds: inbox 1;' "$T/d.err")"
echo "# daemon: $L logins; token endpoint: $G refresh grants"
pycheck logins "$T/proxy.snap" "$NOW" "${L:-0}" "$G" <<'PY'
import sys
ev = [l.split() for l in open(sys.argv[1]) if l.strip()]
now, logins_metric, grants = float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
logins = [(float(e[4]), e[2], float(e[3])) for e in ev if e[0] == "login"]
byes = [float(e[3]) for e in ev if e[0] == "bye"]
# a BYE in the last second may not have its new login yet
answered = [b for b in byes if b < now - 1.0]
# the sessions: the logins before the first BYE
sessions = len([t for t, _, _ in logins if not byes or t < min(byes)])
span = now - min(t for t, _, _ in logins) if logins else 0
print(f"# proxy: {len(logins)} logins, {len(byes)} BYEs over {span:.1f} s (tokens live 8 s)")
print(("ok" if len(byes) >= 3 * sessions and sessions >= 1 else "not ok") + f" - the proxy ended the {sessions} session(s) at token expiry {len(byes)} times (3 lifetimes)")
print(("ok" if logins_metric == len(logins) else "not ok") + f" - imap_logins_total ({logins_metric}) = the logins the proxy saw ({len(logins)})")
ok = len(logins) in (sessions + len(answered), sessions + len(byes))
print(("ok" if ok else "not ok") + f" - logins ({len(logins)}) = {sessions} session(s) + the BYEs answered ({len(answered)}): one per session per token lifetime")
# each BYE's new login followed (5 s: a loaded machine; the log below says it was at once)
late = [b for b in answered if not any(b <= t <= b + 5.0 for t, _, _ in logins)]
print(("ok" if not late else "not ok") + f" - every BYE was followed by a new login within 5 s ({len(late)} not)")
stale = [(t, x) for t, _, x in logins if x <= t]
print(("ok" if not stale else "not ok") + f" - every login carried a token not yet expired ({len(stale)} expired)")
distinct = len({h for _, h, _ in logins})
print(("ok" if grants == distinct else "not ok") + f" - refresh grants ({grants}) = distinct tokens used ({distinct}): one per lifetime, shared by the account's sessions")
PY
world_result
