# Shell library for tests against the loopback mail world. Source it:
#
#   . "$top_srcdir/tests/world/lib.sh"   (or relative to the test script)
#   world_up          # fresh mktemp -d dir, world started, DIR/env sourced,
#                     # `trap world_down EXIT` installed (exit status kept)
#   ...               # use $RELAY_PLAIN_PORT, $IMAPS_PORT, $WORLD_CA, ...
#
# Other helpers:
#   world_down                stop the world and remove its directory
#                             (kept when WORLD_KEEP=1, for debugging)
#   world_skip_unless_root    exit 77 (automake SKIP) when not root
#   world_queue               list the relay queue (postqueue -p)
#   world_fetch USER SEARCH   doveadm fetch "mailbox date.saved.unixtime hdr.subject"
#   world_folder_of USER TOK  print the folder holding the message whose
#                             X-Test-Token header is TOK ("" when not there)
#   world_wait_folder SECS USER TOK   wait (bounded) for that message; print folder
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
