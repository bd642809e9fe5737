#!/bin/sh
# Issue 12 sections 3 and 4 end to end, no mail world needed: files are not
# followed, blocked on or shared (a symbolic link or FIFO planted at the
# report's PATH.tmp, a FIFO or /dev/zero as -c, a symbolic link or FIFO as
# the run lock, the holder's pid named); secrets and bad bytes refused at
# load (CR/LF in password_env, an inline password in a readable file, 8-bit
# seed addresses, an empty report path); and the LOGIN line on the wire
# quotes what RFC 3501 says must be quoted.
# The rounds run against a relay that refuses connections: every probe is
# `error`, the round ends at once and the reports are still written (exit 3).
set -u
srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${top_builddir:-.}/inboxprobe
[ -x "$BIN" ] || { echo "no inboxprobe binary at $BIN"; exit 99; }
WORLD_FAILS=0 WORLD_CHECKS=0
ok() { WORLD_CHECKS=$((WORLD_CHECKS + 1)); echo "ok - $*"; }
not_ok() { WORLD_CHECKS=$((WORLD_CHECKS + 1)); WORLD_FAILS=$((WORLD_FAILS + 1)); echo "not ok - $*"; }
. "$srcdir/tests/e2e/common.sh"
check() { if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1 (expected '$2', got '$3')"; fi; }

T=$(mktemp -d)
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null; done; rm -rf "$T"; }
trap cleanup EXIT
closed=$(free_port)   # nothing listens there: the relay refuses at once
printf 'seedpass\n' >"$T/seed.pass"; chmod 600 "$T/seed.pass"
printf 'precious\n' >"$T/victim"; chmod 600 "$T/victim"

# conf NAME [EXTRA]: a configuration with its run lock in $T.
conf() {
	cat >"$T/$1.conf" <<CONF
name = "$1";
lock_dir = "$T";
relay = { url = "smtp://127.0.0.1:$closed"; tls = "none"; from = "probe@example.test";
          connect_timeout = 2; timeout = 2; };
probe = { deadline = 5; poll_interval = 1; };
imap_defaults = { url = "imap://127.0.0.1:$closed"; tls = "none"; password_file = "$T/seed.pass"; };
seeds = ( { address = "a@gmail.example"; provider = "gmail"; } );
${2:-}
CONF
	chmod 600 "$T/$1.conf"
}
victim_intact() { [ "$(cat "$T/victim")" = precious ]; }

# 1. A symbolic link at the report's PATH.tmp: not followed, report written.
conf tmplink
ln -s "$T/victim" "$T/tmplink.json.tmp"
timeout 60 "$BIN" run -c "$T/tmplink.conf" --json "$T/tmplink.json" >"$T/tmplink.out" 2>&1
check "symlink at PATH.tmp: the round ends (exit 3: relay refused)" 3 $?
assert "symlink at PATH.tmp: the victim is untouched" victim_intact
assert "symlink at PATH.tmp: the JSON report is written" \
	/usr/bin/python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/tmplink.json"
assert "symlink at PATH.tmp: still the planted link" test -L "$T/tmplink.json.tmp"
check "symlink at PATH.tmp: no temporary file left" "" "$(ls "$T" | grep 'tmplink.json.tmp.')"

# 2. A FIFO at PATH.tmp: never opened (it would block), report written.
conf tmpfifo
mkfifo "$T/tmpfifo.prom.tmp"
timeout 60 "$BIN" run -c "$T/tmpfifo.conf" --textfile "$T/tmpfifo.prom" >"$T/tmpfifo.out" 2>&1
check "FIFO at PATH.tmp: no hang, exit 3" 3 $?
assert "FIFO at PATH.tmp: the textfile is written" grep -q '^inboxprobe_last_run_timestamp_seconds' "$T/tmpfifo.prom"

# 3. A FIFO at the report path itself: refused, left alone; exit 3.
conf outfifo
mkfifo "$T/outfifo.json"
timeout 60 "$BIN" run -c "$T/outfifo.conf" --json "$T/outfifo.json" >"$T/outfifo.out" 2>&1
check "FIFO as the report path: exit 3" 3 $?
assert "FIFO as the report path: message says so" grep -q 'outfifo.json: is a FIFO, not a regular file' "$T/outfifo.out"
assert "FIFO as the report path: still a FIFO" test -p "$T/outfifo.json"

# 4. A FIFO or /dev/zero as -c: refused at once with exit 2.
mkfifo "$T/fifo.conf"
timeout 20 "$BIN" check -c "$T/fifo.conf" >"$T/fifoc.out" 2>&1
check "FIFO as -c: exit 2, no hang" 2 $?
assert "FIFO as -c: message names it" grep -q 'fifo.conf: is a FIFO, not a regular file' "$T/fifoc.out"
timeout 20 "$BIN" run -c /dev/zero >"$T/zero.out" 2>&1
check "/dev/zero as -c: exit 2, no hang" 2 $?
assert "/dev/zero as -c: message names it" grep -q '/dev/zero: is a character device' "$T/zero.out"

# 5. @include of a directory: FILE:LINE.
mkdir "$T/incdir"
conf incdir '@include "incdir"'
"$BIN" check -c "$T/incdir.conf" >"$T/incdir.out" 2>&1
check "@include of a directory: exit 2" 2 $?
assert "@include of a directory: FILE:LINE" grep -q "incdir.conf:[0-9]*: @include \"incdir\": .*is a directory" "$T/incdir.out"

# 6. The run lock: a symbolic link or a FIFO planted there is refused and
# never followed; nothing is sent (exit 3 before the round).
conf locklink
ln -s "$T/victim" "$T/locklink.lock"
timeout 20 "$BIN" run -c "$T/locklink.conf" >"$T/locklink.out" 2>&1
check "symlink as the run lock: exit 3" 3 $?
assert "symlink as the run lock: refused by name" grep -q 'locklink.lock: is a symbolic link: refusing to follow it' "$T/locklink.out"
assert "symlink as the run lock: the victim is untouched" victim_intact
conf lockfifo
mkfifo "$T/lockfifo.lock"
timeout 20 "$BIN" run -c "$T/lockfifo.conf" >"$T/lockfifo.out" 2>&1
check "FIFO as the run lock: exit 3, no hang" 3 $?
assert "FIFO as the run lock: refused" grep -q 'lockfifo.lock: is a FIFO, not a regular file' "$T/lockfifo.out"
# a lock directory every user may write to is refused
mkdir "$T/open"; chmod 1777 "$T/open"
conf opendir "lock_dir = \"$T/open\";"
sed -i '/^lock_dir = "'"$(printf '%s' "$T" | sed 's/[\/&]/\\&/g')"'";$/d' "$T/opendir.conf"
timeout 20 "$BIN" run -c "$T/opendir.conf" >"$T/opendir.out" 2>&1
check "world-writable lock_dir: exit 3" 3 $?
assert "world-writable lock_dir: says why" grep -q 'writable by every user (mode 1777)' "$T/opendir.out"

# 7. Another run holds the lock (a holder that never wrote its pid): the
# message names the holder's pid anyway (/proc/locks).
conf held
: >"$T/held.lock"
/usr/bin/python3 -c 'import fcntl,sys,time
f = open(sys.argv[1], "r"); fcntl.flock(f, fcntl.LOCK_EX); print("locked", flush=True); time.sleep(30)' \
	"$T/held.lock" >"$T/holder.out" &
holder=$!
pids="$pids $holder"
i=0
while ! grep -q locked "$T/holder.out" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
timeout 20 "$BIN" run -c "$T/held.conf" >"$T/held.out" 2>&1
check "lock held: exit 3" 3 $?
assert "lock held: the holder's pid is named" grep -q "another inboxprobe run holds $T/held.lock (pid $holder)" "$T/held.out"
# 7b. /proc/locks shows nothing (systemd's ProcSubset=pid hides it; here an
# empty file is mounted over it in a mount namespace of the run's own):
# the message says the pid is unknown, why, and how to find the holder.
noproc() {
	unshare --mount sh -c 'mount --bind /dev/null /proc/locks && exec timeout 20 "$@"' sh "$@"
}
if noproc true 2>/dev/null; then
	noproc "$BIN" run -c "$T/held.conf" >"$T/held2.out" 2>&1
	check "lock held, /proc/locks hidden, no pid in the file: exit 3" 3 $?
	assert "lock held, /proc/locks hidden, no pid in the file: says the pid is unknown and why" \
		grep -q "holds $T/held.lock (its pid is unknown: /proc/locks does not list the holder.*fuser -v $T/held.lock" "$T/held2.out"
	# the file names a pid that is not running: stale, said so
	echo "4194302 2026-01-01T00:00:00Z" >"$T/held.lock"
	noproc "$BIN" run -c "$T/held.conf" >"$T/held3.out" 2>&1
	assert "lock held, /proc/locks hidden, a stale pid in the file: named as not running" \
		grep -q "lock file names pid 4194302, which is not running here" "$T/held3.out"
	# the holder wrote its pid and start time (as inboxprobe does)
	echo "$holder 2026-01-01T00:00:00Z" >"$T/held.lock"
	noproc "$BIN" run -c "$T/held.conf" >"$T/held4.out" 2>&1
	assert "lock held, /proc/locks hidden: the pid and start time from the lock file" \
		grep -q "holds $T/held.lock (pid $holder, started 2026-01-01T00:00:00Z, as the lock file says; /proc/locks does not list the holder" "$T/held4.out"
	sed 's/^/# /' "$T/held2.out" "$T/held4.out"
else
	echo "# no mount namespace here (unshare --mount): /proc/locks cases skipped"
fi
kill "$holder" 2>/dev/null

# 8. CR/LF in password_env: refused at load, the value never printed.
conf envpw
sed -i 's#password_file = "[^"]*"#password_env = "IBP_E2E_PW"#' "$T/envpw.conf"
IBP_E2E_PW=$(printf 'pw\r\nA2 DELETE INBOX') "$BIN" check -c "$T/envpw.conf" >"$T/envpw.out" 2>&1
check "CRLF in password_env: exit 2" 2 $?
assert "CRLF in password_env: names the setting and the variable" \
	grep -q 'imap_defaults.password_env: environment variable IBP_E2E_PW holds a CR or LF' "$T/envpw.out"
assert "CRLF in password_env: the value is not printed" sh -c "! grep -q DELETE '$T/envpw.out'"

# 9. An inline password in a configuration readable by others: exit 2.
conf inline
sed -i 's#password_file = "[^"]*"#password = "inline-Secret-42"#' "$T/inline.conf"
chmod 644 "$T/inline.conf"
"$BIN" check -c "$T/inline.conf" >"$T/inline.out" 2>&1
check "inline password, mode 0644: exit 2" 2 $?
assert "inline password, mode 0644: says so" grep -q 'holds a password and is readable by group or others (mode 0644)' "$T/inline.out"
assert "inline password, mode 0644: the password is not printed" sh -c "! grep -q inline-Secret-42 '$T/inline.out'"

# 10. An 8-bit seed address: exit 2, the bytes not echoed.
conf addr8
sed -i 's#a@gmail.example#j\xc3\xbcrgen@gmail.example#' "$T/addr8.conf"
"$BIN" check -c "$T/addr8.conf" >"$T/addr8.out" 2>&1
check "8-bit seed address: exit 2" 2 $?
assert "8-bit seed address: says so" grep -q 'contains a non-ASCII (8-bit) byte' "$T/addr8.out"

# 11. An empty report path on the command line: usage error before anything.
conf emptyp
"$BIN" run -c "$T/emptyp.conf" --textfile '' >"$T/emptyp.out" 2>&1
check "empty --textfile: exit 2" 2 $?
assert "empty --textfile: says so" grep -q -- '--textfile: empty path' "$T/emptyp.out"

# 12. LOGIN on the wire: a password with a quote, a backslash, a space and
# braces reaches the server as one RFC 3501 string (quoted with \" and \\,
# or a literal), never splitting the command.
printf 'a"b\\c d{5}\n' >"$T/odd.pass"; chmod 600 "$T/odd.pass"
/usr/bin/python3 - "$T/wireport" "$T/wire.log" <<'PY' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(1)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
s.settimeout(30)
c, _ = s.accept(); c.settimeout(10)
f = c.makefile("rb"); log = open(sys.argv[2], "wb")
c.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] wire\r\n")
while True:
    line = f.readline()
    if not line:
        break
    tag = line.split(b" ", 1)[0]
    if b" CAPABILITY" in line.upper():
        c.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n")
        continue
    if line.rstrip(b"\r\n").endswith(b"}"):
        n = int(line.rstrip(b"\r\n").rsplit(b"{", 1)[1][:-1].rstrip(b"+"))
        c.sendall(b"+ go on\r\n")
        line = line + f.read(n) + f.readline()
    log.write(line)
    if b" LOGIN " in line.upper():
        c.sendall(tag + b" NO [AUTHENTICATIONFAILED] recorded\r\n")
        log.close()
        break
PY
pids="$pids $!"
i=0
while [ ! -s "$T/wireport" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
cat >"$T/wire.conf" <<CONF
name = "wire";
lock_dir = "$T";
relay = { url = "smtp://127.0.0.1:$closed"; tls = "none"; from = "probe@example.test"; };
seeds = ( { address = "a@gmail.example"; provider = "gmail";
            imap = { url = "imap://127.0.0.1:$(cat "$T/wireport")"; tls = "none";
                     username = "user name"; password_file = "$T/odd.pass"; }; } );
CONF
timeout 30 "$BIN" folders -c "$T/wire.conf" >"$T/wire.out" 2>&1
# the arguments of LOGIN exactly, and how RFC 3501 says they must look:
# quoted, with \" and \\ (or each a literal {n}\r\n...)
wire=$(/usr/bin/python3 -c '
import re, sys
data = open(sys.argv[1], "rb").read()
m = re.search(rb"LOGIN (.*)\r\n$", data, re.S)
if not m:
    print("NONE")
else:
    got = m.group(1)
    quoted = b"\"user name\" \"a\\\"b\\\\c d{5}\""
    literal = re.fullmatch(rb"(\"user name\"|\{9\}\r\nuser name) \{10\}\r\na\"b\\c d\{5\}", got)
    print("OK" if got == quoted or literal else "BAD " + repr(got))' "$T/wire.log" 2>/dev/null)
printf '# LOGIN arguments on the wire: %s\n' "$(tail -c 40 "$T/wire.log" | od -An -c | tr -s ' ' | tr -d '\n')"
check "LOGIN on the wire: username and password quoted per RFC 3501, quote and backslash escaped" OK "$wire"
assert "LOGIN refused: folders reports it" grep -q 'AUTHENTICATIONFAILED\|auth' "$T/wire.out"

echo "$WORLD_CHECKS checks, $WORLD_FAILS failed"
[ "$WORLD_FAILS" -eq 0 ]
