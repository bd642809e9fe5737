# Helpers for the e2e tests (sourced after tests/world/lib.sh).
# assert DESCRIPTION COMMAND [ARGS...]: run COMMAND; ok when it exits 0.
assert() {
	_desc=$1
	shift
	if "$@" >/dev/null 2>&1; then
		ok "$_desc"
	else
		not_ok "$_desc"
	fi
}
# world_run_conf FILE NAME FROM DEADLINE STORE SEEDS [PROBE] [MORE]: a
# configuration for the loopback world (after world_up): the plain relay port
# (envelope sender FROM; connect_timeout 10, timeout 20), probe.deadline
# DEADLINE with poll_interval 1 and cleanup delete, plus PROBE (more probe
# settings), no SLO gate, the world's IMAPS and seed password for every
# seed, the state store STORE (retention 30 days), MORE (top-level lines),
# and SEEDS: "ADDRESS:PROVIDER ..." in that order.
world_run_conf() {
	_seeds=
	for _s in $6; do
		_seeds="$_seeds${_seeds:+,
}  { address = \"${_s%%:*}\"; provider = \"${_s#*:}\"; }"
	done
	cat >"$1" <<CONF
name = "$2";
relay = { url = "smtp://127.0.0.1:$RELAY_PLAIN_PORT"; tls = "none"; from = "$3";
          connect_timeout = 10; timeout = 20; };
probe = { deadline = $4; poll_interval = 1; cleanup = "delete"; ${7:-}};
slo = { min_inbox_ratio = 0.0; };
imap_defaults = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$WORLD_CA"; password_file = "$SEED_PASSFILE"; };
state = { path = "$5"; retention_days = 30; };
${8:-}
seeds = (
$_seeds
);
CONF
}
# ---- a daemon under test against the world: its stderr in $T/d.err,
# /metrics on 127.0.0.1:$PORT ----
# daemon_metric NAME_AND_LABELS: its value in the daemon's /metrics (text), or "".
daemon_metric() {
	curl -fsS "http://127.0.0.1:$PORT/metrics" 2>/dev/null | awk -v k="$1" '$1 == k { print $2 }'
}
# daemon_count_log PATTERN: the number of lines of the daemon's log with PATTERN.
daemon_count_log() {
	grep -c "$1" "$T/d.err"
}
# daemon_rounds: the number of "round N:" lines in the daemon's log.
daemon_rounds() {
	daemon_count_log ': round [0-9]*:'
}
# daemon_wait_log SECS PATTERN: wait (bounded) until the daemon's log holds
# PATTERN; 1 when it does not.
daemon_wait_log() {
	_end=$(($(date +%s) + $1))
	while ! grep -q "$2" "$T/d.err" && [ "$(date +%s)" -lt "$_end" ]; do
		sleep 0.1
	done
	grep -q "$2" "$T/d.err"
}
# daemon_wait_count SECS PATTERN N: until the log holds N lines with PATTERN
# (bounded); 1 when it does not.
daemon_wait_count() {
	_end=$(($(date +%s) + $1))
	while [ "$(daemon_count_log "$2")" -lt "$3" ] && [ "$(date +%s)" -lt "$_end" ]; do
		sleep 0.1
	done
	[ "$(daemon_count_log "$2")" -ge "$3" ]
}
# daemon_wait_rounds N SECS: until N rounds are logged (bounded); 1 when not.
daemon_wait_rounds() {
	daemon_wait_count "$2" ': round [0-9]*:' "$1"
}
# world_test_start NAME [sqlite3]: what a world test begins with (after
# sourcing lib.sh and this file): BIN, the built inboxprobe (exit 99 when
# missing), sqlite3 when asked for (SKIP without it), world_up, and T, a
# fresh directory NAME in the world's.
world_test_start() {
	BIN=${top_builddir:-.}/inboxprobe
	[ -x "$BIN" ] || { echo "no inboxprobe binary at $BIN"; exit 99; }
	if [ "${2:-}" = sqlite3 ]; then
		command -v sqlite3 >/dev/null || { echo "SKIP: no sqlite3 (apt-get install sqlite3)"; exit 77; }
	fi
	world_up
	T=$WORLD_DIR/$1
	mkdir -p "$T"
}
# world_tokens USER...: the X-Inboxprobe-Token of every probe in every
# folder of the users' mailboxes (doveadm), one a line.
world_tokens() {
	for _u in "$@"; do
		doveadm -c "$DOVECOT_CONF" fetch -u "$_u" hdr.x-inboxprobe-token mailbox '*' \
			header X-Inboxprobe-Token "" </dev/null 2>/dev/null |
			sed -n 's/^hdr.x-inboxprobe-token: *//p'
	done
}
# world_wait_token USER TOKEN: wait, bounded by twice the greylisting delay
# plus 40 s, until the probe TOKEN is in USER's mailbox; 1 when it is not.
world_wait_token() {
	_i=0
	until world_tokens "$1" | grep -qx "$2" || [ $_i -ge $((GREYLIST_DELAY * 2 + 80)) ]; do
		sleep 0.5
		_i=$((_i + 1))
	done
	world_tokens "$1" | grep -qx "$2"
}
# free_port: print a free TCP port on 127.0.0.1.
free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# ---- tests against the scripted peers (tests/peers/), no mail world ----
# peer_test_init NAME: what each of them begins with (after setting
# top_srcdir and sourcing this file). Sets top_builddir, BIN (inboxprobe),
# IC (tests/tools/imapcheck), PY, SMTP_PEER; TMP, a fresh directory named
# after NAME, removed at exit once every process in PIDS (and PEER_PID,
# SMTP_PID when set) is killed; CHECKS and FAILS, counted by ok, not_ok and
# check (defined here: the world's lib.sh has its own); and $TMP/seed.pass,
# a seed password file of mode 0600.
peer_test_init() {
	top_builddir=${top_builddir:-.}
	BIN=$top_builddir/inboxprobe
	IC=$top_builddir/tests/tools/imapcheck
	PY=/usr/bin/python3
	SMTP_PEER=$top_srcdir/tests/peers/smtp_peer.py
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || exit 99
	PIDS= PEER_PID= SMTP_PID=
	trap peer_test_cleanup EXIT
	trap 'exit 130' INT TERM
	FAILS=0 CHECKS=0
	ok() { CHECKS=$((CHECKS + 1)); echo "ok - $*"; }
	not_ok() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "not ok - $*"; }
	check() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1 (expected '$2', got '$3')"; fi; }
	printf 'seed-secret-Q7\n' >"$TMP/seed.pass"
	chmod 600 "$TMP/seed.pass"
}
peer_test_cleanup() {
	for _p in $PIDS ${PEER_PID:-} ${SMTP_PID:-}; do kill "$_p" 2>/dev/null; done
	rm -rf "$TMP"
}
# need_built FILE...: exit 99 (hard error) unless every FILE is executable.
need_built() {
	for _f in "$@"; do
		[ -x "$_f" ] || { echo "not built: $_f" >&2; exit 99; }
	done
}
# wait_files FILE...: wait (at most 10 s) until every FILE is non-empty
# (a peer's port file); 1 when one is still empty.
wait_files() {
	_i=0
	while [ $_i -lt 200 ]; do
		_all=1
		for _f in "$@"; do [ -s "$_f" ] || _all=0; done
		[ $_all = 1 ] && return 0
		sleep 0.05
		_i=$((_i + 1))
	done
	return 1
}
# peer_start SCRIPT SCENARIO [ARGS...]: (re)start a scripted IMAP peer,
# stopping the previous one (PEER_PID); sets PEER_PID and PORT (the first
# line the peer prints); exit 99 when it does not start within 10 s.
peer_start() {
	[ -n "${PEER_PID:-}" ] && kill "$PEER_PID" 2>/dev/null
	rm -f "$TMP/port"
	$PY "$@" >"$TMP/port" 2>"$TMP/peer.err" &
	PEER_PID=$!
	wait_files "$TMP/port"
	PORT=$(head -n 1 "$TMP/port")
	[ -n "$PORT" ] || { echo "peer did not start" >&2; cat "$TMP/peer.err" >&2; exit 99; }
}
# smtp_peer_start [ARGS...]: start the scripted relay that accepts every
# probe (tests/peers/smtp_peer.py ok) with ARGS; sets SMTP_PID and
# SMTP_PORT; exit 99 when it does not start within 10 s.
smtp_peer_start() {
	$PY "$SMTP_PEER" ok --port-file "$TMP/smtp.port" "$@" </dev/null >/dev/null 2>"$TMP/smtp.err" &
	SMTP_PID=$!
	wait_files "$TMP/smtp.port"
	SMTP_PORT=$(cat "$TMP/smtp.port" 2>/dev/null)
	[ -n "$SMTP_PORT" ] || { echo "smtp peer did not start" >&2; cat "$TMP/smtp.err" >&2; exit 99; }
}
# peer_daemon_conf FILE NAME DEADLINE INTERVAL TIMEOUT: a daemon
# configuration for one seed, s1@example.test, on the scripted IMAP peer
# ($PORT, no TLS, password $TMP/seed.pass) and the scripted relay
# ($SMTP_PORT): probe.deadline DEADLINE (poll_interval 1, cleanup delete),
# schedule.interval INTERVAL (no jitter), TIMEOUT for the relay's and
# IMAP's timeout (connect_timeout 3), no SLO gate, the store $TMP/state.db,
# /metrics on 127.0.0.1:$WEB.
peer_daemon_conf() {
	cat >"$1" <<CONF
name = "$2";
relay = { url = "smtp://127.0.0.1:$SMTP_PORT"; tls = "none"; from = "probe@example.test";
          connect_timeout = 3; timeout = $5; };
probe = { deadline = $3; poll_interval = 1; cleanup = "delete"; };
slo = { min_inbox_ratio = 0.0; };
imap_limits = { connect_timeout = 3; timeout = $5; };
state = { path = "$TMP/state.db"; };
schedule = { interval = $4; jitter = 0; };
web = { listen_address = "127.0.0.1:$WEB"; };
seeds = ( { address = "s1@example.test"; provider = "peer";
            imap = { url = "imap://127.0.0.1:$PORT"; tls = "none"; username = "s1";
                     password_file = "$TMP/seed.pass"; }; } );
CONF
}
# peer_daemon_start FILE: `inboxprobe daemon -c FILE -v` in the background,
# stdout in $TMP/d.out, stderr in $TMP/d.err; sets DPID, added to PIDS
# (killed at exit).
peer_daemon_start() {
	"$BIN" daemon -c "$1" -v >"$TMP/d.out" 2>"$TMP/d.err" &
	DPID=$!
	PIDS="$PIDS $DPID"
}
# peer_daemon_stop DESC: SIGTERM to $DPID, then wait (20 s at most) for it
# to exit: `not ok` (and SIGKILL) when it is still running, else `check`
# that it exited 0; returns 1 when it had to be killed.
peer_daemon_stop() {
	kill -TERM "$DPID"
	_i=0
	while [ $_i -lt 200 ] && kill -0 "$DPID" 2>/dev/null; do sleep 0.1; _i=$((_i + 1)); done
	if kill -0 "$DPID" 2>/dev/null; then
		not_ok "$1 (still running after 20 s)"
		kill -KILL "$DPID"
		return 1
	fi
	wait "$DPID"
	check "$1 (exit 0)" 0 "$?"
}
# ic_field OUTPUT KEY N: field N of the tab-separated line of
# tests/tools/imapcheck's OUTPUT whose first field is KEY.
ic_field() { printf '%s\n' "$1" | awk -F'\t' -v k="$2" -v n="$3" '$1 == k { print $n; exit }'; }
