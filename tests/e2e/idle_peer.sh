#!/bin/sh
# Rounds against the scripted IDLE peer (tests/peers/idle_peer.py) and a
# scripted relay: IDLE with EXISTS (INBOX and spam folder), IDLE ended by a
# BYE, a server without IDLE (polling), a drop and a BYE at each step of a
# session with exactly one reconnect, connections closed before the
# greeting then a free slot, special-use attributes given only with
# LIST RETURN (SPECIAL-USE) and a BAD to RETURN, STARTTLS refused with NO,
# NOTIFY with a literal mailbox name in its STATUS, NOTIFY refused with BAD.
# Exit 0 pass, 1 fail.
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$top_srcdir/tests/e2e/common.sh"
peer_test_init idlepeer
srcdir=$top_srcdir
PEER=$srcdir/tests/peers/idle_peer.py
need_built "$BIN"
XDG_RUNTIME_DIR=$TMP
export XDG_RUNTIME_DIR

smtp_peer_start --log "$TMP/smtp.log" --lifetime 170

# round SCENARIO [URL-SCHEME] [TLS]: a peer, one round with one seed
# (one session: per_account 1), JSON in $J, the peer's stats in $S.
round() {
	name=$1
	rm -f "$TMP/port"
	$PY "$PEER" "$1" --record "$TMP/$name.rec" --stats "$TMP/$name.stats" --lifetime 20 \
		>"$TMP/port" 2>"$TMP/$name.peer.err" &
	pp=$!
	PIDS="$PIDS $pp"
	i=0
	while [ ! -s "$TMP/port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	port=$(head -n 1 "$TMP/port")
	cat >"$TMP/$name.conf" <<CONF
name = "ip_$name";
relay = { url = "smtp://127.0.0.1:$SMTP_PORT"; tls = "none"; from = "probe@example.test";
          connect_timeout = 3; timeout = 5; };
probe = { deadline = 8; poll_interval = 1; cleanup = "delete"; };
imap_limits = { per_account = 1; connect_timeout = 3; timeout = 5; };
report = { json = "$TMP/$name.json"; };
seeds = ( { address = "seed@peer.example"; provider = "peer";
            imap = { url = "${2:-imap}://127.0.0.1:$port"; tls = "${3:-none}";
                     username = "seed"; password_file = "$TMP/seed.pass"; }; } );
CONF
	timeout 40 "$BIN" run -c "$TMP/$name.conf" -v >"$TMP/$name.out" 2>"$TMP/$name.err"
	RC=$?
	kill "$pp" 2>/dev/null
	J=$TMP/$name.json
	S=$TMP/$name.stats
}
j() { $PY -c "import json,sys; r=json.load(open(sys.argv[1])); s=r['seeds'][0]; print(eval(sys.argv[2]))" "$J" "$1" 2>&1; }
st() { $PY -c "import json,sys; s=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$S" "$1" 2>&1; }

round idle
check "idle: found in INBOX" "inbox INBOX" "$(j 's["outcome"] + " " + str(s["folder"])')"
check "idle: announced by IDLE, watch idle+poll" "True idle+poll" "$(j 'str(s["announced_by_idle"]) + " " + s["watch"]')"
check "idle: the EXISTS was sent during IDLE" 1 "$(st 's["exists_sent"]')"
check "idle: one login" 1 "$(st 's["logins"]')"
grep -q "^1 DONE$" "$TMP/idle.rec" && ok "idle: IDLE ended with DONE" || not_ok "idle: IDLE ended with DONE"
check "idle: cleaned up" deleted "$(j 's["cleanup"]')"
# one UID FETCH finds and reads the probe (UID, INTERNALDATE and the whole
# header: proof and trace), one more proves it again before the cleanup
check "idle: 2 UID FETCHes, the whole header in one (no second FETCH for the trace)" "2 1" \
	"$(awk '$3 == "UID" && $4 == "FETCH" { n++; if ($0 ~ /BODY\.PEEK\[HEADER\]/) h++ } END { printf "%d %d", n, h }' "$TMP/idle.rec")"

round idle-spam
check "idle-spam: found in Junk" "spam Junk" "$(j 's["outcome"] + " " + str(s["folder"])')"

# NOTIFY (RFC 5465): the spam folder announced by an untagged STATUS whose
# mailbox name comes as a literal; one session, one login.
round notify-literal
check "notify-literal: found in Junk" "spam Junk" "$(j 's["outcome"] + " " + str(s["folder"])')"
check "notify-literal: announced, watch notify" "True notify" "$(j 'str(s["announced_by_idle"]) + " " + s["watch"]')"
check "notify-literal: the STATUS was sent, one login" "1 1" "$(st '"%d %d" % (s["status_sent"], s["logins"])')"
grep -q '^1 [^ ]* NOTIFY SET STATUS (selected (MessageNew MessageExpunge)) (mailboxes "Junk" (MessageNew MessageExpunge))' \
	"$TMP/notify-literal.rec" && ok "notify-literal: NOTIFY SET STATUS sent" || not_ok "notify-literal: NOTIFY SET STATUS sent"
# its reply had no STATUS of Junk: the UIDNEXT asked with a STATUS command
# (the fallback), after the NOTIFY SET
check "notify-literal: no STATUS in the NOTIFY reply, so one STATUS command after it" "NOTIFY STATUS" \
	"$(awk '$1 == 1 && ($3 == "NOTIFY" || $3 == "STATUS") { printf "%s%s", sep, $3; sep = " " }' "$TMP/notify-literal.rec")"
grep -q '^1 [^ ]* SELECT "*Junk"*$' "$TMP/notify-literal.rec" && ok "notify-literal: Junk selected after the STATUS" ||
	not_ok "notify-literal: Junk selected after the STATUS"
# NOTIFY SET STATUS answered with Junk's STATUS (as Dovecot 2.3.19): its
# UIDNEXT is the armed one, no STATUS command; the later STATUS announces.
round notify-status
check "notify-status: found in Junk, announced, watch notify" "spam True notify" \
	"$(j 's["outcome"] + " " + str(s["announced_by_idle"]) + " " + s["watch"]')"
check "notify-status: NOTIFY SET STATUS once, no STATUS command" "1 0" \
	"$(awk '$3 == "NOTIFY" { n++ } $3 == "STATUS" { s++ } END { printf "%d %d", n, s }' "$TMP/notify-status.rec")"
# NOTIFY SET STATUS's reply whose STATUS cannot arm Junk (another mailbox,
# no UIDNEXT, UIDNEXT 0, "junk" for "Junk", after the tagged OK): a STATUS
# command asks; twice (UIDNEXT 3 then 2): the last, lower, is armed, no
# STATUS command. Never an armed UIDNEXT that skips the probe: found,
# announced.
for v in other:1 nouidnext:1 zero:1 case:1 late:1 dup:0; do
	sc=notify-status-${v%:*}
	round $sc
	check "$sc: found in Junk, announced, watch notify; STATUS commands" "spam True notify ${v#*:}" \
		"$(j 's["outcome"] + " " + str(s["announced_by_idle"]) + " " + s["watch"]') $(awk '$3 == "STATUS" { n++ } END { print n + 0 }' "$TMP/$sc.rec")"
done
# A STATUS of Junk before the probe arrives with a UIDNEXT over 32 bits
# (notify-huge), or from before Junk was recreated (notify-uidvalidity, a
# larger UIDNEXT at another UIDVALIDITY): the arrival's STATUS (UIDNEXT 4)
# still announces it (breakit: the larger UIDNEXT was kept, no later STATUS
# was new mail, and the probe was not found before the deadline).
for sc in notify-huge notify-uidvalidity; do
	round $sc
	check "$sc: found in Junk" "spam Junk" "$(j 's["outcome"] + " " + str(s["folder"])')"
	check "$sc: announced, watch notify" "True notify" "$(j 'str(s["announced_by_idle"]) + " " + s["watch"]')"
done
# Junk deleted and created again between its arming (STATUS: UIDNEXT 50,
# UIDVALIDITY 41) and the probe's arrival (UIDVALIDITY 42, the probe UID 3,
# a user's message UID 4 after it): "UID 50:*" is "4:50" and skips the
# probe. The UIDVALIDITY change seen at the search's SELECT re-bases the
# search to the whole folder (fix: the probe was missing); the user's
# messages are fetched (the SINCE fallback) but never flagged or removed.
round spam-recreated
check "spam-recreated: found in Junk, cleaned up" "spam Junk deleted" \
	"$(j 's["outcome"] + " " + str(s["folder"]) + " " + str(s["cleanup"])')"
grep -q "Junk: UIDVALIDITY changed from 41 to 42 since arming" "$TMP/spam-recreated.err" &&
	ok "spam-recreated: the UIDVALIDITY change is logged" ||
	not_ok "spam-recreated: the UIDVALIDITY change is logged ($(grep -i uidvalidity "$TMP/spam-recreated.err" | head -n 2))"
check "spam-recreated: STORE/EXPUNGE/MOVE/COPY only of UID 3 (no user's message touched)" "0 2" \
	"$(awk '$3 == "UID" && ($4 == "STORE" || $4 == "EXPUNGE" || $4 == "MOVE" || $4 == "COPY") { if ($5 == "3") ok++; else bad++ } END { printf "%d %d", bad, ok }' "$TMP/spam-recreated.rec")"
check "spam-recreated: a user's message was fetched (the proof was put to the test)" 1 \
	"$(awk '$3 == "UID" && $4 == "FETCH" && $5 ~ /(^|[,:])(4|\*)($|[,:])/ { n = 1 } END { print n + 0 }' "$TMP/spam-recreated.rec")"
# A server that lies with UIDNEXT 4294967295: in the STATUS that armed Junk
# (uidnext-max: every search "UID 4294967295:*" skips the probe, UID 3, and
# names the user's UID 4 after it), or in NOTIFY's STATUS before the probe
# arrived (notify-max: the arrival's STATUS, UIDNEXT 4, is then no new
# mail). The last search before the deadline, over the whole folder by the
# token, finds the probe (breakit: it was missing at the deadline). It was
# not announced; its latency is not negative; only our probe is touched.
for sc in uidnext-max notify-max; do
	round $sc
	check "$sc: found in Junk by the last whole-folder search, cleaned up, not announced" \
		"spam Junk deleted False" \
		"$(j 's["outcome"] + " " + str(s["folder"]) + " " + str(s["cleanup"]) + " " + str(s["announced_by_idle"])')"
	check "$sc: latency measured, not negative; seen not before its arrival" "True True" \
		"$(j 'str(s["latency_seconds"] is not None and s["latency_seconds"] >= 0) + " " + str(s["discovery_lag_seconds"] >= 0)')"
	grep -q "probe found only by the last search of the whole folders" "$TMP/$sc.err" &&
		ok "$sc: the last search's find is logged" ||
		not_ok "$sc: the last search's find is logged ($(grep -i 'found' "$TMP/$sc.err" | head -n 2))"
	check "$sc: STORE/EXPUNGE/MOVE/COPY only of UID 3 (no user's message touched)" "0 2" \
		"$(awk '$3 == "UID" && ($4 == "STORE" || $4 == "EXPUNGE" || $4 == "MOVE" || $4 == "COPY") { if ($5 == "3") ok++; else bad++ } END { printf "%d %d", bad, ok }' "$TMP/$sc.rec")"
done
check "uidnext-max: the user's message after the probe was fetched (the proof was put to the test)" 1 \
	"$(awk '$3 == "UID" && $4 == "FETCH" && $5 ~ /(^|[,:])(4|4294967295|\*)($|[,:])/ { n = 1 } END { print n + 0 }' "$TMP/uidnext-max.rec")"
# An EXISTS read before the probe arrived, then an EXPUNGE and the probe's
# arrival at a sequence number that EXISTS covered, before the search: the
# probe was not announced by it, and is seen when the search answered, not
# before it arrived (breakit: it was "announced" 1.5 s before it arrived).
round expunge-race
check "expunge-race: found in INBOX, not announced by the earlier EXISTS" "inbox False" \
	"$(j 's["outcome"] + " " + str(s["announced_by_idle"])')"
check "expunge-race: seen (arrival + discovery lag) not before the probe arrived" True \
	"$($PY -c "import json,sys; s=json.load(open(sys.argv[1]))['seeds'][0]; a=json.load(open(sys.argv[2]))['arrived_unix']; print(s['arrival_unix'] + s['discovery_lag_seconds'] >= a - 0.01)" "$J" "$S" 2>&1)"
# NOTIFY offered but refused (BAD): INBOX in IDLE, the spam folder polled.
round notify-bad
check "notify-bad: found in Junk by polling, watch idle+poll" "spam idle+poll" "$(j 's["outcome"] + " " + s["watch"]')"

round noidle
check "noidle: found by polling" "inbox False poll" "$(j 's["outcome"] + " " + str(s["announced_by_idle"]) + " " + s["watch"]')"
if grep -q " IDLE$" "$TMP/noidle.rec"; then not_ok "noidle: no IDLE sent"; else ok "noidle: no IDLE sent"; fi

round idlebye
check "idlebye: found after the IDLE's BYE" inbox "$(j 's["outcome"]')"
check "idlebye: exactly one reconnect (2 connections, 2 logins)" "2 2" "$(st '"%d %d" % (s["connections"], s["logins"])')"
grep -q "Idle timeout (test)" "$TMP/idlebye.err" && ok "idlebye: the BYE text is reported" ||
	not_ok "idlebye: the BYE text is reported ($(grep -i bye "$TMP/idlebye.err" | head -n 2))"

round expired
check "BYE AccessTokenExpired: a new login that is not the one reconnect; then a drop: found" inbox "$(j 's["outcome"]')"
check "  ... 3 connections (the new login, then the one reconnect)" 3 "$(st 's["connections"]')"
grep -q "logging in again" "$TMP/expired.err" && ok "  ... said it logs in again" ||
	not_ok "  ... said it logs in again ($(grep -i 'expired' "$TMP/expired.err" | head -n 2))"

for kind in drop bye; do
	for step in greeting capability login list select status idle search fetch store expunge; do
		round "$kind-$step"
		check "$kind at $step: found (inbox), cleaned up" "inbox deleted" "$(j 's["outcome"] + " " + str(s["cleanup"])')"
		check "$kind at $step: exactly one reconnect (2 connections)" 2 "$(st 's["connections"]')"
	done
done
for step in login select search; do
	grep -q "server said BYE: $step failure (test)" "$TMP/bye-$step.err" &&
		ok "bye at $step: the BYE's text is reported as such" ||
		not_ok "bye at $step: the BYE's text is reported as such ($(grep -i "bye\|closed" "$TMP/bye-$step.err" | head -n 3))"
done

round refused
check "refused twice, then a free slot: found" inbox "$(j 's["outcome"]')"
check "refused: 3 connections" 3 "$(st 's["connections"]')"

round specialuse
check "special-use only with RETURN: spam folder found" "spam Spam-Ordner" "$(j 's["outcome"] + " " + str(s["folder"])')"
grep -q 'LIST "" "\*" RETURN (SPECIAL-USE)' "$TMP/specialuse.rec" && ok "specialuse: LIST RETURN (SPECIAL-USE) sent" ||
	not_ok "specialuse: LIST RETURN (SPECIAL-USE) sent"

round specialuse-bad
check "RETURN answered BAD: plain LIST resolves the spam folder" "spam Spam-Ordner" "$(j 's["outcome"] + " " + str(s["folder"])')"

round starttls-no imap required
check "STARTTLS refused: error, not sent" "error True" "$(j 's["outcome"] + " " + str(s["not_sent"])')"
case $(j 's["diagnostic"]') in
*"TLS is down for maintenance (test)"*) ok "STARTTLS refused: the server's text is shown" ;;
*) not_ok "STARTTLS refused: the server's text is shown ($(j 's["diagnostic"]'))" ;;
esac
grep -q " LOGIN " "$TMP/starttls-no.rec" && not_ok "STARTTLS refused: no LOGIN sent" || ok "STARTTLS refused: no LOGIN sent"

# ---- submission over reused connections (relay.connections) -------------
# 8 seeds on the scripted IMAP peer's "count" mailboxes (nothing is found),
# a relay answering each probe with its own queue id.
$PY "$srcdir/tests/peers/imap_peer.py" count --lifetime 120 >"$TMP/count.port" 2>/dev/null &
PIDS="$PIDS $!"
i=0
while [ ! -s "$TMP/count.port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
seeds=""
for n in 1 2 3 4 5 6 7 8; do
	seeds="$seeds${seeds:+,} { address = \"s$n@count.example\"; provider = \"count\"; imap = { username = \"u$n\"; }; }"
done
# smtp SCENARIO CONNECTIONS: one round; sets J, L (the relay's log)
smtp() {
	rm -f "$TMP/sp.port"
	$PY "$SMTP_PEER" "$1" --port-file "$TMP/sp.port" --log "$TMP/$1.log" --lifetime 60 \
		</dev/null >/dev/null 2>&1 &
	sp=$!
	PIDS="$PIDS $sp"
	i=0
	while [ ! -s "$TMP/sp.port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	cat >"$TMP/$1.conf" <<CONF
name = "ip_smtp_$1";
relay = { url = "smtp://127.0.0.1:$(cat "$TMP/sp.port")"; tls = "none"; from = "probe@example.test";
          connect_timeout = 3; timeout = 5; connections = $2; };
probe = { deadline = 8; poll_interval = 1; };
report = { json = "$TMP/$1.json"; };
imap_defaults = { url = "imap://127.0.0.1:$(head -n 1 "$TMP/count.port")"; tls = "none";
                  password_file = "$TMP/seed.pass"; };
seeds = ( $seeds );
CONF
	timeout 40 "$BIN" run -c "$TMP/$1.conf" --deadline 4 >"$TMP/$1.out" 2>"$TMP/$1.err"
	kill "$sp" 2>/dev/null
	J=$TMP/$1.json
	L=$TMP/$1.log
}
jr() { $PY -c "import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$J" "$1" 2>&1; }
attributed='all(s["relay_reply"]["queue_id"] == "Q" + s["address"].split("@")[0] for s in r["seeds"])'

smtp multi 2
check "8 probes over relay.connections = 2: 2 connections (EHLO)" 2 "$(grep -c '^EHLO' "$L")"
check "  ... 8 transactions" 8 "$(grep -c '^RCPT' "$L")"
check "  ... every probe accepted, each with its own queue id" "True True" \
	"$(jr 'str(all(s["outcome"] == "missing" for s in r["seeds"])) + " " + str('"$attributed"')')"

smtp close1 2
check "relay closing after each transaction: reopened, 8 connections for 8 probes" 8 "$(grep -c '^EHLO' "$L")"
check "  ... every probe accepted and attributed" True "$(jr "$attributed")"

smtp 421mid 1
check "421 mid-stream: the refused probe is retried and accepted, the others untouched" "True True" \
	"$(jr 'str(all(s["outcome"] == "missing" for s in r["seeds"])) + " " + str('"$attributed"')')"
check "  ... one probe needed two attempts, the others one" "[1, 1, 1, 1, 1, 1, 1, 2]" \
	"$(jr 'sorted(s["attempts"] for s in r["seeds"])')"

echo "# $CHECKS checks, $FAILS failed"
[ "$CHECKS" -gt 0 ] && [ "$FAILS" -eq 0 ]
