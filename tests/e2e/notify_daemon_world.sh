#!/bin/sh
# `inboxprobe daemon` with NOTIFY (RFC 5465) between rounds, against the
# real loopback world: inbox@greylist.test is watched by one session (the
# world's Dovecot offers NOTIFY), its probe carries X-Test-Spam: yes (the
# world's Sieve files it into Junk) and postgrey defers it for
# GREYLIST_DELAY s, so it lands in the spam folder after its round's 3 s
# deadline. The kept session, in IDLE on INBOX, is told by an untagged
# STATUS; the keeper searches Junk, records the late arrival at once
# (before round 2) and cleans the probe up; the session is still the one
# login, and round 2 measures the seed again.
# Exit 0 pass, 1 fail, 77 skip.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
BIN=${top_builddir:-.}/inboxprobe
[ -x "$BIN" ] || { echo "no inboxprobe binary at $BIN"; exit 99; }
command -v sqlite3 >/dev/null || { echo "SKIP: no sqlite3 (Debian package sqlite3)"; exit 77; }
world_up
T=$WORLD_DIR/notifyd
mkdir -p "$T"
DPID=""
stop_all() {
	_st=$?
	[ -n "$DPID" ] && kill -KILL "$DPID" 2>/dev/null
	(exit $_st)
	world_down
}
trap stop_all EXIT
cat >"$T/d.conf" <<CONF
name = "notifyd";
relay = { url = "smtp://127.0.0.1:$RELAY_PLAIN_PORT"; tls = "none"; from = "probe@sender.test";
          connect_timeout = 3; timeout = 10; };
probe = { deadline = 3; poll_interval = 1; cleanup = "delete"; headers = ( "X-Test-Spam: yes" ); };
slo = { min_inbox_ratio = 0.0; max_latency_p99 = 60.0; };
state = { path = "$T/state.db"; };
schedule = { interval = 40; jitter = 0; };
seeds = ( { address = "inbox@greylist.test"; provider = "greylist";
            imap = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$WORLD_CA";
                     password_file = "$SEED_PASSFILE"; }; } );
CONF

"$BIN" daemon -c "$T/d.conf" -v </dev/null >"$T/d.out" 2>"$T/d.err" &
DPID=$!

# wait_log SECS PATTERN: until the daemon's log has a line matching PATTERN
wait_log() {
	_end=$(($(date +%s) + $1))
	while ! grep -q "$2" "$T/d.err"; do
		[ "$(date +%s)" -lt "$_end" ] || return 1
		kill -0 "$DPID" 2>/dev/null || return 1
		sleep 0.2
	done
}

assert "round 1 watched the seed with NOTIFY (one session)" \
	wait_log 30 'inbox@greylist.test: armed (notify;'
assert "round 1 ended, the probe missing" wait_log 30 ': round 1: .*missing 1'
assert "the late probe found between rounds in Junk" \
	wait_log 40 'inbox@greylist.test: late probe .* found between rounds in Junk'
grep -E 'round 1:|found between rounds|NOTIFY|lost between' "$T/d.err" | sed 's/^/# /'
check "found before round 2 began" 0 "$(grep -c ': round 2:' "$T/d.err")"
row=$(sqlite3 "$T/state.db" "SELECT outcome, late, late_folder, late_latency >= 7.5 FROM probes" 2>&1)
check "the store: missing in its round, late, in the spam folder, latency about the greylisting delay or more" \
	"missing|1|spam|1" "$row"
check "one IMAP session of the seed (NOTIFY watches both folders)" 1 \
	"$(doveadm -c "$WORLD_DIR/dovecot/main.conf" who -1 inbox@greylist.test 2>/dev/null </dev/null |
		awk '$2 == "imap"' | wc -l)"
check "the probe was cleaned up from Junk" "" \
	"$(doveadm -c "$WORLD_DIR/dovecot/main.conf" search -u inbox@greylist.test mailbox Junk \
		header X-Inboxprobe-Token '' 2>/dev/null </dev/null)"
world_result
