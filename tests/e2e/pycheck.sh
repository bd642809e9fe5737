# Helpers shared by tests/e2e/run_state.sh and run_reports.sh (sourced after
# tests/world/lib.sh and tests/e2e/common.sh).
#
# PY: Debian's python3 (has prometheus_client); the one on PATH may not.
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
E2E_DIR=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/e2e
export PYTHONPATH="$E2E_DIR${PYTHONPATH:+:$PYTHONPATH}"

# pycheck NAME [ARGS...] < SCRIPT: run the Python SCRIPT (stdin) with ARGS;
# each "ok - "/"not ok - " line it prints counts as one check; a script that
# crashes (non-zero exit) counts as a failed check.
pycheck() {
	_name=$1
	shift
	_out=$WORLD_DIR/pycheck.$$.out
	"$PY" - "$@" >"$_out" 2>&1
	_rc=$?
	while IFS= read -r _l; do
		case $_l in
		"ok - "*) ok "${_l#ok - }" ;;
		"not ok - "*) not_ok "${_l#not ok - }" ;;
		*) echo "# $_l" ;;
		esac
	done <"$_out"
	[ "$_rc" = 0 ] || not_ok "$_name: the Python checks ended with status $_rc"
	rm -f "$_out"
}

# wait_token SECS USER TOKEN: wait (bounded) until USER's mailbox holds the
# message carrying X-Inboxprobe-Token TOKEN; print "FOLDER RECEIVED SAVED"
# (Unix seconds from doveadm: date.received is the IMAP INTERNALDATE).
wait_token() {
	_deadline=$(($(date +%s) + $1))
	while :; do
		_f=$(doveadm -c "$WORLD_DIR/dovecot/main.conf" fetch -u "$2" \
			"mailbox date.received.unixtime date.saved.unixtime" \
			mailbox '*' HEADER X-Inboxprobe-Token "$3" </dev/null 2>/dev/null |
			awk '/^mailbox: /{m=substr($0,10)} /^date.received.unixtime: /{r=$2}
			     /^date.saved.unixtime: /{s=$2} END{if (m != "") print m, r, s}')
		if [ -n "$_f" ]; then
			printf '%s\n' "$_f"
			return 0
		fi
		[ "$(date +%s)" -lt "$_deadline" ] || return 1
		sleep 0.5
	done
}
