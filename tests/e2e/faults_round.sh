#!/bin/sh
# Faults a round outlives, end to end against the loopback world:
#  1. the relay killed mid-DATA: a proxy in front of Postfix SIGKILLs the
#     smtpd serving the first transaction after half of the message
#     (tests/peers/kill_proxy.py). That seed ends `error` with a diagnostic
#     saying the probe may have been delivered; the other seed is measured;
#     the round writes complete reports and exits 3; the cut message never
#     reaches a mailbox and nothing stays in the relay's queue.
#  2. the IMAP server killed mid-IDLE, then (--no-idle) mid-search: the
#     seed's probe is greylisted (it arrives after GREYLIST_DELAY), and
#     while the round waits for it the Dovecot imap process serving that
#     session is SIGKILLed. The round reconnects, finds the probe in the
#     inbox, cleans it up and exits 0.
#  3. seed mailboxes over quota (Dovecot's quota plugin, a 100-byte limit from
#     the user's passwd-file entry): LMTP answers 552 5.2.2, and 452 4.2.2
#     for a user with quota_full_tempfail. Postfix bounces the first and
#     defers the second; their DSNs make them `rejected` and `deferred`,
#     measured outcomes, not errors: the run exits 0 (the provider's
#     inbox gate is 0 here).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
BIN=${top_builddir:-.}/inboxprobe
SRC=${top_srcdir:-$(dirname "$0")/../..}
[ -x "$BIN" ] || { echo "no inboxprobe binary at $BIN"; exit 99; }
command -v ss >/dev/null || { echo "SKIP: no ss (apt-get install iproute2)"; exit 77; }
world_up
T=$WORLD_DIR/rfaults
mkdir -p "$T"
PROXY=
trap '_st=$?; [ -n "$PROXY" ] && kill "$PROXY" 2>/dev/null; (exit $_st); world_down' EXIT

# conf NAME RELAY_PORT DEADLINE SEEDS
conf() {
	cat >"$T/$1.conf" <<CONF
name = "$1";
lock_dir = "$T";
relay = { url = "smtp://127.0.0.1:$2"; tls = "none"; from = "probe@sender.test";
          connect_timeout = 10; timeout = 10; };
probe = { deadline = $3; poll_interval = 1; cleanup = "delete"; };
slo = { min_inbox_ratio = 0.5; max_latency_p99 = 120.0; };
imap_defaults = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$WORLD_CA"; password_file = "$SEED_PASSFILE"; };
seeds = ( $4 );
CONF
}
# probes_in USER: how many messages with an X-Inboxprobe-Token the user has.
probes_in() {
	doveadm -c "$DOVECOT_CONF" search -u "$1" mailbox '*' header X-Inboxprobe-Token "" 2>/dev/null | wc -l
}
# json EXPR FILE: evaluate a Python expression over the JSON report r.
json() {
	python3 -c 'import json,sys; r = json.load(open(sys.argv[2])); print(eval(sys.argv[1]))' "$1" "$2" 2>&1
}

# ---- 1. the relay killed mid-DATA -----------------------------------------
python3 "$SRC/tests/peers/kill_proxy.py" "$RELAY_PLAIN_PORT" --port-file "$T/proxy.port" \
	--log "$T/proxy.log" --kills 1 --lifetime 120 >/dev/null 2>&1 &
PROXY=$!
for i in 1 2 3 4 5 6 7 8 9 10; do [ -s "$T/proxy.port" ] && break; sleep 0.3; done
conf relaykill "$(cat "$T/proxy.port")" 20 \
	'{ address = "inbox@gmail.test"; provider = "gmail"; }, { address = "inbox@yahoo.test"; provider = "yahoo"; }'
"$BIN" run -c "$T/relaykill.conf" --json "$T/relaykill.json" --textfile "$T/relaykill.prom" \
	>"$T/relaykill.out" 2>"$T/relaykill.err"
rc=$?
sed 's/^/#   /' "$T/proxy.log" "$T/relaykill.out"
assert "relay kill: the proxy killed an smtpd mid-DATA" grep -q "killed smtpd pid [0-9][0-9]* mid-DATA" "$T/proxy.log"
check "relay kill: the round completes and exits 3 (one seed unmeasured)" 3 "$rc"
check "relay kill: one seed error, one inbox" "error inbox" \
	"$(json '" ".join(sorted(s["outcome"] for s in r["seeds"]))' "$T/relaykill.json")"
check "relay kill: the error names the drop after DATA" True \
	"$(json 'any(s["outcome"] == "error" and "may have been delivered" in s["diagnostic"] for s in r["seeds"])' "$T/relaykill.json")"
assert "relay kill: the textfile is complete" grep -q '^inboxprobe_last_run_success{config="relaykill"} 0$' "$T/relaykill.prom"
cut=$(json '[s["token"] for s in r["seeds"] if s["outcome"] == "error"][0]' "$T/relaykill.json")
sleep 2
check "relay kill: nothing left in the relay's queue" "" "$("$RELAY_QUEUE_CMD" 2>/dev/null | grep -E '^[0-9A-F]{6,}')"
check "relay kill: the cut probe $cut reached no mailbox" "" \
	"$(find "$MAIL_DIR" -path '*/cur/*' -o -path '*/new/*' | xargs -r grep -l "$cut" 2>/dev/null)"
kill "$PROXY" 2>/dev/null
PROXY=

# ---- 2. the IMAP server killed mid-IDLE and mid-search --------------------
# imap_kill TAG FROM [RUN ARGS]: a round for the greylisted seed with
# envelope sender FROM (a new sender makes a new greylisting triplet);
# SIGKILL the imap process serving its session while the round waits.
imap_kill() {
	_tag=$1
	_from=$2
	shift 2
	conf "$_tag" "$RELAY_PLAIN_PORT" 45 '{ address = "inbox@greylist.test"; provider = "greylist"; }'
	sed -i "s/from = \"probe@sender.test\"/from = \"$_from\"/" "$T/$_tag.conf"
	"$BIN" run -c "$T/$_tag.conf" --json "$T/$_tag.json" -v "$@" >"$T/$_tag.out" 2>"$T/$_tag.err" &
	_run=$!
	# Wait until the round holds an IMAP session for the seed, then kill
	# the imap process behind it (the probe is still greylisted then).
	pid=
	for i in $(seq 1 40); do
		pid=$(doveadm -c "$DOVECOT_CONF" who -1 2>/dev/null | awk '$1 == "inbox@greylist.test" && $2 == "imap" { print $3 }' | tr -dc '0-9\n' | head -n 1)
		[ -n "$pid" ] && break
		sleep 0.25
	done
	sleep 1
	found_before=$(probes_in inbox@greylist.test)
	[ -n "$pid" ] && kill -9 "$pid"
	echo "# $_tag: killed imap pid '$pid' (probe in the maildir already: $found_before)"
	wait "$_run"
	rc=$?
	sed 's/^/#   /' "$T/$_tag.out"
	grep -i "reconnect\|lost" "$T/$_tag.err" | sed 's/^/#   stderr: /'
	assert "$_tag: an imap process served the seed's session and was killed" [ -n "$pid" ]
	check "$_tag: the probe had not arrived when the server was killed" 0 "$found_before"
	check "$_tag: the round completes and exits 0" 0 "$rc"
	check "$_tag: the probe is found in the inbox after the reconnect" inbox \
		"$(json 'r["seeds"][0]["outcome"]' "$T/$_tag.json")"
	assert "$_tag: the run says it reconnected" grep -qi "reconnect" "$T/$_tag.err"
	check "$_tag: the probe was cleaned up" 0 "$(probes_in inbox@greylist.test)"
}
# IDLE is the default where the server offers it (Dovecot does).
imap_kill imapkill-idle probe@sender.test
assert "imapkill-idle: the session was in IDLE when killed" grep -q "IDLE" "$T/imapkill-idle.err"
imap_kill imapkill-poll other@sender.test --no-idle

# ---- 3. seed mailboxes over quota ----------------------------------------
# Dovecot re-reads the passwd-file when its mtime (seconds) changes.
sleep 1.1
pw=$(cat "$SEED_PASSFILE")
printf '%s\n' "full@gmail.test:{PLAIN}$pw::::::userdb_quota_rule=*:storage=100B" \
	"fulltmp@gmail.test:{PLAIN}$pw::::::userdb_quota_rule=*:storage=100B userdb_quota_full_tempfail=yes" \
	>>"$(dirname "$DOVECOT_CONF")/users"
for u in full fulltmp; do
	doveadm -c "$DOVECOT_CONF" mailbox create -s -u "$u@gmail.test" Junk Trash </dev/null
done
conf quota "$RELAY_PLAIN_PORT" 40 '{ address = "inbox@gmail.test"; provider = "gmail"; },
  { address = "full@gmail.test"; provider = "quota"; },
  { address = "fulltmp@gmail.test"; provider = "quota"; }'
sed -i 's/^slo = .*/slo = { min_inbox_ratio = 0.5; max_latency_p99 = 120.0; providers = { quota = { min_inbox_ratio = 0.0; }; }; };/' "$T/quota.conf"
# One relay connection: the relay kill of section 1 may leave Postfix's master
# throttling the relay's smtpd service (no new process for 60 s after a child
# it counts as a bad start), and a second connection opened at once then waits
# in the listen queue for a greeting that never comes (seen twice in CI: the
# seed error "timed out at the greeting"). This section tests quota DSNs.
sed -i 's/timeout = 10; };/timeout = 10; connections = 1; };/' "$T/quota.conf"
cat >>"$T/quota.conf" <<CONF
bounce_mailbox = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$WORLD_CA";
                   username = "$BOUNCE_USER"; password_file = "$BOUNCE_PASSFILE"; };
CONF
"$BIN" run -c "$T/quota.conf" --json "$T/quota.json" >"$T/quota.out" 2>"$T/quota.err"
rc=$?
sed 's/^/#   /' "$T/quota.out"
check "quota: the run exits 0 (over quota is measured, not an error)" 0 "$rc"
check "quota: outcomes inbox, rejected, deferred" "inbox rejected deferred" \
	"$(json '" ".join(s["outcome"] for s in r["seeds"])' "$T/quota.json")"
check "quota: the 552's DSN says failed 5.2.2" "failed 5.2.2" \
	"$(json '(r["seeds"][1]["dsn"] or {}).get("action", "-") + " " + (r["seeds"][1]["dsn"] or {}).get("status", "-")' "$T/quota.json")"
check "quota: the 452's DSN says delayed 4.2.2" "delayed 4.2.2" \
	"$(json '(r["seeds"][2]["dsn"] or {}).get("action", "-") + " " + (r["seeds"][2]["dsn"] or {}).get("status", "-")' "$T/quota.json")"
assert "quota: LMTP answered 552 and 452 (relay log)" \
	sh -c "grep -q 'said: 552 5.2.2' '$RELAY_LOG' && grep -q 'said: 452 4.2.2' '$RELAY_LOG'"
"$RELAY_QUEUE_CMD" 2>/dev/null | grep -q fulltmp@gmail.test && postsuper -c "$RELAY_CONFIG_DIR" -d ALL deferred >/dev/null 2>&1

world_result
