#!/bin/sh
# smtp_peer.sh - smtp_submit (via tests/tools/smtpsend) against the scripted
# SMTP peer tests/peers/smtp_peer.py: one scenario per peer, asserting the
# exact smtp_err name, reply code, enhanced code and stage.
set -u
srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=${top_builddir:-.}
SEND=$builddir/tests/tools/smtpsend
PEER=$srcdir/tests/peers/smtp_peer.py
[ -x "$SEND" ] || { echo "SKIP: $SEND not built (make check builds it)"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }

tmp=$(mktemp -d)
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM
fail=0

# start_peer SCENARIO -> sets PORT
n=0
start_peer() {
	rm -f "$tmp/port"
	n=$((n + 1))
	LOG=$tmp/log.$n.$1
	python3 "$PEER" "$1" --port-file "$tmp/port" --log "$LOG" --lifetime 60 \
		</dev/null >/dev/null 2>"$tmp/peer.err" &
	pids="$pids $!"
	i=0
	while [ ! -s "$tmp/port" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	PORT=$(cat "$tmp/port" 2>/dev/null) || { echo "FAIL: peer $1 did not start"; cat "$tmp/peer.err"; exit 1; }
}

field() { sed -n "s/^$1=//p" "$tmp/out"; }

# check SCENARIO ERR CODE ENHANCED STAGE [extra env...]
check() {
	scen=$1 err=$2 code=$3 enh=$4 stage=$5
	shift 5
	start_peer "$scen"
	env SMTP_TLS=none "$@" "$SEND" "smtp://127.0.0.1:$PORT" probe@example.test seed@example.test - \
		>"$tmp/out" 2>"$tmp/err"
	got="$(field err) $(field code) [$(field enhanced)] $(field stage)"
	want="$err $code [$enh] $stage"
	if [ "$got" = "$want" ]; then
		echo "ok   $scen: $got ($(field diagnostic))"
	else
		echo "FAIL $scen: got '$got' want '$want'"; cat "$tmp/out" "$tmp/err"; fail=1
	fi
}

check ok        ok      250 2.0.0  data
[ "$(field queue_id)" = 4XyZ1B2c3Dz ] || { echo "FAIL ok: queue_id '$(field queue_id)'"; fail=1; }
[ "$(field submit_time_ok)" = 1 ] || { echo "FAIL ok: submit time outside the transaction"; fail=1; }
# libcurl dot-stuffs: the peer saw the body lines "." and ".dot" as ".." and "..dot"
if ! grep -qx "DOTLINE \.\." "$LOG" || ! grep -qx "DOTLINE \.\.dot" "$LOG"; then
	echo "FAIL ok: body not dot-stuffed as expected"; cat "$LOG"; fail=1
fi
# concurrent submissions from 8 threads (each with its own handle)
start_peer ok
SMTP_TLS=none SMTP_THREADS=8 "$SEND" "smtp://127.0.0.1:$PORT" probe@example.test seed@example.test - \
	>"$tmp/out" 2>"$tmp/err"
if [ "$(field err)" = ok ] && [ "$(field threads_ok)" = 8 ]; then
	echo "ok   threads: 9 concurrent submissions accepted"
else
	echo "FAIL threads"; cat "$tmp/out" "$tmp/err"; fail=1
fi
check greet421  temp    421 4.7.0  connect
check greet554  perm    554 5.7.0  connect
check mail451   temp    451 4.7.1  mail
check rcpt452   temp    452 4.5.3  rcpt
check rcpt550   perm    550 5.1.1  rcpt
check data554   perm    554 5.7.1  data
check drop      drop    0   ""     data
# a multi-line reply with mixed codes: libcurl acts on the last line; the
# reply is kept with that code and its raw text
check mixed     ok      251 ""     data
# libcurl offers AUTH in clear text when tls = "none" (loopback tests only):
# the peer advertises AUTH PLAIN LOGIN without STARTTLS and answers 535.
printf 'not-the-password\n' >"$tmp/pass"
check auth535   auth    535 5.7.8  auth SMTP_USER=probe@example.test SMTP_PASSFILE="$tmp/pass"
if grep -q "not-the-password" "$tmp/out" "$tmp/err"; then echo "FAIL auth535: password printed"; fail=1; fi
check stall     timeout 0   ""     connect SMTP_TIMEOUT=2
el=$(field elapsed); case $el in 1.*|2.*|3.*) ;; *) echo "FAIL stall: took $el s for a 2 s timeout"; fail=1;; esac
check stalldata timeout 0   ""     data SMTP_TIMEOUT=2
el=$(field elapsed); case $el in 1.*|2.*|3.*) ;; *) echo "FAIL stalldata: took $el s for a 2 s timeout"; fail=1;; esac
check stalldata timeout 0   ""     data SMTP_DEADLINE=1.5
# a relay that never answers QUIT after the 250: accepted, and the wait for
# QUIT's reply is cut to about a second (it used to take the whole timeout)
check quitstall ok      250 2.0.0  data SMTP_TIMEOUT=10
el=$(field elapsed); case $el in 0.*|1.*|2.*) ;; *) echo "FAIL quitstall: took $el s (QUIT wait not cut)"; fail=1;; esac
# STARTTLS required, the peer offers none: no AUTH, no MAIL in clear
start_peer ok
SMTP_USER=probe@example.test SMTP_PASSFILE="$tmp/pass" "$SEND" "smtp://127.0.0.1:$PORT" \
	probe@example.test seed@example.test - >"$tmp/out" 2>&1
sleep 0.2
if [ "$(field err)" = tls ] && ! grep -q -e AUTH -e MAIL "$LOG"; then
	echo "ok   starttls-not-offered: tls"
else
	echo "FAIL starttls-not-offered"; cat "$tmp/out" "$LOG"; fail=1
fi
# nothing listening
"$SEND" "smtp://127.0.0.1:1" probe@example.test seed@example.test - >"$tmp/out" 2>&1
[ "$(field err)" = connect ] && echo "ok   refused: connect" || { echo "FAIL refused"; cat "$tmp/out"; fail=1; }
exit $fail
