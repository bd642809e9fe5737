#!/bin/sh
# Demo: start the loopback mail world, run one inboxprobe round against it
# (BINARY run -c DIR/inboxprobe.conf), show its output and reports, stop the
# world. Exits 0 when the round gave a verdict (run's exit 0, 1 or 3), else
# the run's exit code. Set WORLD_KEEP=1 to keep DIR.
#   usage: demo.sh BINARY
here=$(cd "$(dirname "$0")" && pwd)
. "${top_srcdir:-$here/../..}/tests/world/lib.sh"

BIN=${1:-}
[ -n "$BIN" ] || { echo "usage: $0 BINARY" >&2; exit 2; }
if [ "$(id -u)" != 0 ]; then
	echo "demo: the mail world needs root (Postfix, Dovecot)" >&2
	exit 77
fi
world_up
echo "demo: world started in $WORLD_DIR (configuration $WORLD_CONF)"

if [ ! -x "$BIN" ]; then
	echo "demo: $BIN is missing or not executable; the world started fine, stopping it"
	exit 0
fi

echo "demo: $BIN run -c $WORLD_CONF"
echo "demo: seeds at gmail/outlook/yahoo/bulkmail/intl-like providers: inbox@ files every message in"
echo "demo: INBOX, spam@ in the provider's spam folder, marker@ in spam only when it carries"
echo "demo: X-Test-Spam: yes (the probe does not, so INBOX); plus a greylisting MX (the probe arrives"
echo "demo: after the greylist delay), a rejecting MX (550 5.7.1 after the relay's 250: a DSN explains"
echo "demo: it) and a deferring MX (451 4.7.1 forever). AUTH is \"none trusted\": these MXs write no"
echo "demo: Authentication-Results (tests/e2e/auth_world.sh runs one that does)."
# Progress lines go to the terminal as the round runs (stderr is left alone).
"$BIN" run -c "$WORLD_CONF" </dev/null >"$WORLD_DIR/run.out"
rc=$?
cat "$WORLD_DIR/run.out"
echo
for f in "$WORLD_DIR"/reports/*; do
	[ -s "$f" ] && echo "demo: wrote $f ($(wc -l <"$f") lines)"
done
if [ -s "$WORLD_DIR/reports/inboxprobe.prom" ]; then
	echo "demo: a few series from the textfile:"
	grep -E '^inboxprobe_(placement_ratio\{[^}]*folder="inbox"|slo_ok\{[^}]*min_inbox_ratio|delivery_latency_last_seconds\{[^}]*greylist|relay_reply\{[^}]*reject)' \
		"$WORLD_DIR/reports/inboxprobe.prom" | head -n 24 | sed 's/^/  /'
fi
case $rc in
0) echo "demo: exit 0: every gate holds and every seed was measured" ;;
1) echo "demo: exit 1: a gate failed. Expected here: the reject and defer providers deliver nothing to the inbox, so min_inbox_ratio fails for them" ;;
3) echo "demo: exit 3: some seeds could not be measured (see the diagnostics above)" ;;
*) echo "demo: run exited with $rc" ;;
esac
if [ "${WORLD_KEEP:-0}" = 1 ]; then
	echo "demo: keeping $WORLD_DIR (configuration, reports, state store); the world's servers are stopped"
else
	echo "demo: stopping the world and removing $WORLD_DIR with its reports;"
	echo "demo: WORLD_KEEP=1 make demo keeps the directory to look at them"
fi
# The round ran: exit codes 0, 1 and 3 are verdicts, not demo failures.
case $rc in
0|1|3) exit 0 ;;
*) exit $rc ;;
esac
