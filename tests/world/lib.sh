# Shell library for tests against the loopback mail world. Source it:
#
#   . "$top_srcdir/tests/world/lib.sh"   (or relative to the test script)
#   world_up          # fresh mktemp -d dir, world started, DIR/env sourced,
#                     # `trap world_down EXIT` installed (exit status kept)
#   ...               # use $RELAY_PLAIN_PORT, $IMAPS_PORT, $WORLD_CA, ...
#
# Other helpers:
#   world_up_sized SIZES      world_up sized for the largest of SIZES seeds
#                             (WORLD_SEEDS, exported: the benches)
#   world_down                stop the world and remove its directory
#                             (kept when WORLD_KEEP=1, for debugging)
#   world_skip_unless_root    exit 77 (automake SKIP) when not root
#   world_queue               list the relay queue (postqueue -p)
#   world_fetch USER SEARCH   doveadm fetch "mailbox date.saved.unixtime hdr.subject"
#   world_folder_of USER TOK  print the folder holding the message whose
#                             X-Test-Token header is TOK ("" when not there)
#   world_wait_folder SECS USER TOK   wait (bounded) for that message; print folder
#   world_extra_dovecot NAME PORT SETTINGS   one more Dovecot instance on the
#                             world's mail store serving IMAPS on PORT, the
#                             SETTINGS lines appended (imap_capability, rawlog_dir);
#                             stopped with the world; returns 1 when it fails
#   $WORLD_CAPS_NO_NOTIFY     an imap_capability line: Dovecot 2.3.19's
#                             post-login capabilities without NOTIFY
#   ok / not_ok / check       TAP-ish result lines, counted in WORLD_FAILS
# Works in POSIX sh and bash.

WORLD_SH=${WORLD_SH:-}
if [ -z "$WORLD_SH" ]; then
	for _w in "${top_srcdir:-}/tests/world/world.sh" "$(dirname "$0")/world.sh" \
		"$(dirname "$0")/../world/world.sh"; do
		if [ -f "$_w" ]; then
			WORLD_SH=$_w
			break
		fi
	done
	unset _w
fi
WORLD_FAILS=0
WORLD_CHECKS=0

world_skip_unless_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "SKIP: the mail world needs root (Postfix, Dovecot)"
		exit 77
	fi
}

world_up() {
	world_skip_unless_root
	[ -n "$WORLD_SH" ] || { echo "world.sh not found (set top_srcdir or WORLD_SH)" >&2; exit 99; }
	WORLD_DIR=$(mktemp -d "${TMPDIR:-/tmp}/world.XXXXXX") || exit 99
	trap world_down EXIT
	trap 'exit 130' INT TERM HUP
	if ! bash "$WORLD_SH" start "$WORLD_DIR" </dev/null; then
		echo "world did not start" >&2
		exit 99
	fi
	. "$WORLD_DIR/env"
	# inboxprobe's run lock comes from the configuration alone (state
	# store or lock_dir), never the environment: each test's configurations
	# set lock_dir (or a state store) inside its own directory, so suites
	# running side by side never see each other's runs as "still active".
}

# world_up_sized SIZES: world_up with the world sized for the largest of
# SIZES (numbers of seeds): WORLD_SEEDS, exported, is that number (the
# benches' bNNNN@yahoo.test mailboxes, Dovecot, Postfix and inotify limits).
world_up_sized() {
	WORLD_SEEDS=0
	for _n in $1; do
		[ "$_n" -gt "$WORLD_SEEDS" ] && WORLD_SEEDS=$_n
	done
	export WORLD_SEEDS
	world_up
}

world_down() {
	_rc=$?
	trap - EXIT
	if [ -n "${WORLD_DIR:-}" ] && [ -d "$WORLD_DIR" ]; then
		WORLD_QUIET=1 bash "$WORLD_SH" stop "$WORLD_DIR" </dev/null >/dev/null 2>&1 || true
		if [ "${WORLD_KEEP:-0}" = 1 ]; then
			echo "world kept in $WORLD_DIR" >&2
		else
			rm -rf "$WORLD_DIR"
		fi
	fi
	exit $_rc
}

world_queue() {
	postqueue -c "$WORLD_DIR/postfix" -p
}

world_fetch() {
	_u=$1
	shift
	doveadm -c "$WORLD_DIR/dovecot/main.conf" fetch -u "$_u" \
		"mailbox date.saved.unixtime hdr.subject" "$@" </dev/null
}

world_folder_of() {
	doveadm -c "$WORLD_DIR/dovecot/main.conf" fetch -u "$1" mailbox \
		mailbox '*' HEADER X-Test-Token "$2" </dev/null 2>/dev/null |
		sed -n 's/^mailbox: //p' | head -n 1
}

world_wait_folder() {
	_deadline=$(($(date +%s) + $1))
	while :; do
		_f=$(world_folder_of "$2" "$3")
		if [ -n "$_f" ]; then
			printf '%s\n' "$_f"
			return 0
		fi
		[ "$(date +%s)" -lt "$_deadline" ] || return 1
		sleep 0.5
	done
}

ok() {
	WORLD_CHECKS=$((WORLD_CHECKS + 1))
	echo "ok - $*"
}

not_ok() {
	WORLD_CHECKS=$((WORLD_CHECKS + 1))
	WORLD_FAILS=$((WORLD_FAILS + 1))
	echo "not ok - $*"
}

# check DESCRIPTION EXPECTED ACTUAL
check() {
	if [ "$2" = "$3" ]; then
		ok "$1"
	else
		not_ok "$1 (expected '$2', got '$3')"
	fi
}

# world_result: exit status for the test (1 when any check failed or none ran).
world_result() {
	echo "# $WORLD_CHECKS checks, $WORLD_FAILS failed"
	[ "$WORLD_CHECKS" -gt 0 ] && [ "$WORLD_FAILS" -eq 0 ]
}

WORLD_CAPS_NO_NOTIFY="imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ SPECIAL-USE"

# world_extra_dovecot NAME PORT SETTINGS (see the top of this file)
world_extra_dovecot() {
	_n=$1
	_p=$2
	_d=$WORLD_DIR/dovecot
	{
		sed -n '1,/^namespace inbox {/p' "$_d/main.conf" | sed '$d' |
			sed -e "s/^instance_name = .*/instance_name = world-$_n-$WORLD_ID/" \
				-e "s|^base_dir = .*|base_dir = $_d/run-$_n|" \
				-e "s|^state_dir = .*|state_dir = $_d/state-$_n|" \
				-e "s#^\(log_path\|info_log_path\|debug_log_path\) = .*#\1 = $_d/$_n.log#" \
				-e "s/^login_greeting = .*/login_greeting = world $_n ready./"
		sed -n '/^namespace inbox {/,/^}/p' "$_d/main.conf"
		cat <<EOF
protocols = imap
ssl = yes
ssl_cert = <$WORLD_CERT
ssl_key = <$WORLD_KEY
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $_p
    ssl = yes
  }
}
$3
EOF
	} >"$_d/$_n.conf"
	echo "$_d/run-$_n/master.pid" >>"$WORLD_DIR/extra.pidfiles"
	dovecot -c "$_d/$_n.conf" </dev/null >"$_d/$_n.start.log" 2>&1 ||
		{ cat "$_d/$_n.start.log" "$_d/$_n.log" >&2; return 1; }
	/usr/bin/python3 - "$_p" <<'PY' || { echo "dovecot $_n: port $_p does not answer" >&2; return 1; }
import socket, sys, time
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
PY
}
