#!/bin/sh
# Proof before action (docs/SPEC.md "Finding the probe", issue 12 section 1), end to
# end against the real loopback world: a seed owner's own mail that names a
# pending probe's token (a reply "Re: inboxprobe TOKEN", a forward quoting
# the probe's header, a client-copied X-Inboxprobe-Token field flagged
# \Deleted, a forward as attachment, a "[SPAM]"-rewritten subject) must
# survive byte-identical, with its flags, while the real probe is cleaned
# up (both copies of it, when it was delivered twice): with and without
# secret_file (HMAC), under cleanup "delete" and "trash", in INBOX and in the
# spam folder.
# How: round 1 of each configuration arms its seed (without IDLE, its first
# poll an hour away), its probe is accepted and delivered, and the round is
# stopped (SIGTERM): the probe is left pending (outcome error) in the state
# store; the user's messages are APPENDed (tests/e2e/usermail.py,
# imaplib over TLS) next to the delivered probe; round 2 logs in and must
# clean up only the probe. Compared: BODY[], FLAGS and INTERNALDATE of every
# user message before and after, and that no probe is left.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/pycheck.sh"
BIN=${top_builddir:-.}/inboxprobe
UM=$E2E_DIR/usermail.py
[ -x "$BIN" ] || { echo "no inboxprobe binary at $BIN"; exit 99; }
world_up
T=$WORLD_DIR/proof
mkdir -p "$T"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/secret"
chmod 600 "$T/secret"

# conf NAME SEED PROVIDER CLEANUP SECRET(0|1) PASSFILE [POLL]
# POLL: "slow" for round 1 (no IDLE, the first poll an hour away)
conf() {
	_sec=
	[ "$5" = 1 ] && _sec="secret_file = \"$T/secret\";"
	_poll="poll_interval = 1;"
	[ "${7:-}" = slow ] && _poll="poll_interval = 3600; idle = false;"
	cat >"$T/$1.conf" <<CONF
name = "$1";
relay = { url = "smtp://127.0.0.1:$RELAY_PLAIN_PORT"; tls = "none"; from = "probe@sender.test";
          connect_timeout = 3; timeout = 10; };
probe = { deadline = 20; $_poll cleanup = "$4"; $_sec };
slo = { min_inbox_ratio = 0.0; };
imap_defaults = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$WORLD_CA"; password_file = "$6"; };
state = { path = "$T/$1.db"; retention_days = 30; };
seeds = ( { address = "$2"; provider = "$3"; } );
CONF
}
um() {
	_c=$1 _u=$2
	shift 2
	"$PY" "$UM" "$_c" localhost "$IMAPS_PORT" "$WORLD_CA" "$_u" "$SEED_PASSFILE" "$@" </dev/null
}
jtok() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["seeds"][0]["token"] or "")' "$1"; }

# NAME SEED PROVIDER CLEANUP SECRET FOLDER(where the probe lands) TRASH
cat >"$T/variants" <<'V'
plain-delete inbox@gmail.test gmail delete 0 INBOX [Gmail]/Trash
plain-trash inbox@outlook.test outlook trash 0 INBOX Deleted_Items
hmac-delete spam@yahoo.test yahoo delete 1 Bulk Trash
hmac-trash spam@gmail.test gmail trash 1 [Gmail]/Spam [Gmail]/Trash
V

# Round 1 of every variant: armed, accepted, delivered, stopped -> pending.
while read -r name seed prov mode sec folder trash; do
	conf "$name" "$seed" "$prov" "$mode" "$sec" "$SEED_PASSFILE" slow
	n0=$(grep -c "to=<$seed>.*status=sent" "$RELAY_LOG")
	"$BIN" run -c "$T/$name.conf" --json "$T/$name.1.json" </dev/null >"$T/$name.1.out" 2>"$T/$name.1.err" &
	rp=$!
	i=0
	while [ "$(grep -c "to=<$seed>.*status=sent" "$RELAY_LOG")" -le "$n0" ] && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -TERM $rp
	wait $rp
	echo "$?" >"$T/$name.1.rc"
done <"$T/variants"
while read -r name seed prov mode sec folder trash; do
	folder=$(printf '%s' "$folder" | tr _ ' ')
	trash=$(printf '%s' "$trash" | tr _ ' ')
	check "$name: round 1 exits 3 (stopped after delivery)" 3 "$(cat "$T/$name.1.rc")"
	tok=$(jtok "$T/$name.1.json")
	printf '%s\n' "$tok" >"$T/$name.tok"
	case $tok in ????????????????????????????????*) ok "$name: round 1 submitted a probe" ;;
		*) not_ok "$name: round 1 submitted a probe (token '$tok')" ;; esac
	seen=$(wait_token 30 "$seed" "$tok")
	check "$name: the probe reached $folder" "$folder" "${seen% * *}"
	um plant "$seed" "$folder" "$tok" probe@sender.test >/dev/null ||
		not_ok "$name: planting the user's messages"
	# the probe gets a UID above the user's messages: a finder that takes
	# the first match meets a user's message first
	um bump "$seed" "$folder" "$tok" probe@sender.test >/dev/null ||
		not_ok "$name: moving the probe above the user's messages"
	# and a second, byte-identical copy of the probe (delivered twice)
	um dup "$seed" "$folder" "$tok" probe@sender.test >/dev/null ||
		not_ok "$name: a second copy of the probe"
	um snap "$seed" "$folder" "$trash" >"$T/$name.before"
	check "$name: 5 user messages naming the token planted" 5 "$(wc -l <"$T/$name.before")"
	check "$name: 2 copies of the probe before round 2" 2 \
		"$(um count "$seed" "$folder" "$tok" probe@sender.test)"
done <"$T/variants"

# Round 2: logs in; finds the pending probe among the user's messages.
while read -r name seed prov mode sec folder trash; do
	folder=$(printf '%s' "$folder" | tr _ ' ')
	trash=$(printf '%s' "$trash" | tr _ ' ')
	conf "$name" "$seed" "$prov" "$mode" "$sec" "$SEED_PASSFILE"
	"$BIN" run -c "$T/$name.conf" --json "$T/$name.2.json" </dev/null >"$T/$name.2.out" 2>"$T/$name.2.err"
	rc=$?
	sed 's/^/#   /' "$T/$name.2.out"
	case $rc in 0|1) ok "$name: round 2 measured its seed (exit $rc)" ;;
		*) not_ok "$name: round 2 exit $rc: $(cat "$T/$name.2.err")" ;; esac
	tok=$(cat "$T/$name.tok")
	um snap "$seed" "$folder" "$trash" >"$T/$name.after"
	if cmp -s "$T/$name.before" "$T/$name.after"; then
		ok "$name: every user message survived byte-identical with its flags ($(wc -l <"$T/$name.after"))"
	else
		not_ok "$name: user messages changed: $(diff "$T/$name.before" "$T/$name.after" | tr '\n' '|')"
	fi
	check "$name: both copies of the pending probe are gone from $folder" 0 \
		"$(um count "$seed" "$folder" "$tok" probe@sender.test)"
	tok2=$(jtok "$T/$name.2.json")
	check "$name: round 2's own probe is gone from $folder" 0 \
		"$(um count "$seed" "$folder" "$tok2" probe@sender.test)"
	if [ "$mode" = trash ]; then
		check "$name: both copies of the pending probe are in $trash" 2 \
			"$(um count "$seed" "$trash" "$tok" probe@sender.test)"
	fi
	grep -q "cleaned up: $seed probe $(printf %.8s "$tok")" "$T/$name.2.out" &&
		ok "$name: the summary says the earlier probe was cleaned up" ||
		not_ok "$name: the summary says the earlier probe was cleaned up"
done <"$T/variants"
world_result
