#!/bin/sh
# install_tree.sh - `make install DESTDIR=...` puts what an operator expects
# where they expect it, checked by the ecosystem's own tools:
#   - the binary, both man pages, the examples under $(docdir)/examples,
#     the systemd units and the sysusers.d file;
#   - mandoc -Tlint (warnings and errors) on both pages, and man(1) finds
#     and renders inboxprobe.conf(5) from the installed tree;
#   - the annotated example of inboxprobe.conf(5) is examples/otp.conf, and
#     `inboxprobe check` accepts it (secret files created by this test);
#   - systemd-analyze verify on an instance of the installed units (with
#     ExecStart pointed at the DESTDIR binary), and the hardening the unit
#     promises is there (systemd-analyze security --offline, exposure <= 2.0).
# `make uninstall` then leaves no file behind.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=${top_builddir:-.}
[ -x "$builddir/inboxprobe" ] || { echo "no inboxprobe binary in $builddir"; exit 99; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest

if ! make -C "$builddir" install DESTDIR="$dest" >"$tmp/install.log" 2>&1; then
	cat "$tmp/install.log"
	echo "make install failed"
	exit 1
fi
ok "make install DESTDIR=..."
# the configured directories, as make sees them
dirs=$(make -s -C "$builddir" --no-print-directory -f Makefile -f - print-dirs <<'MK'
print-dirs:
	@echo "bindir='$(bindir)' mandir='$(mandir)' docdir='$(docdir)' unitdir='$(systemdsystemunitdir)' sysusersdir='$(sysusersdir)'"
MK
)
eval "$dirs"
for f in "$bindir/inboxprobe" "$mandir/man1/inboxprobe.1" "$mandir/man5/inboxprobe.conf.5" \
	"$docdir/examples/otp.conf" "$docdir/examples/README.md" "$docdir/metrics.md" "$docdir/runbook.md" \
	"$docdir/contrib/inboxprobe.rules.yml" "$docdir/contrib/inboxprobe.rules.test.yml" "$docdir/contrib/inboxprobe.json" \
	"$unitdir/inboxprobe@.service" "$unitdir/inboxprobe@.timer" "$sysusersdir/inboxprobe.conf"; do
	assert "installed: $f" test -s "$dest$f"
done
assert "installed binary is executable and prints its version" sh -c "'$dest$bindir/inboxprobe' --version | grep -q '^inboxprobe [0-9]'"
# every example of the source tree is installed
for f in "$srcdir"/examples/* "$srcdir"/examples/ci/*; do
	[ -f "$f" ] || continue
	r=${f#"$srcdir"/}
	assert "installed: $r" cmp -s "$f" "$dest$docdir/$r"
done

# --- man pages ---
if command -v mandoc >/dev/null; then
	out=$(cd "$dest$mandir" && mandoc -Tlint -W warning man1/inboxprobe.1 man5/inboxprobe.conf.5 2>&1 | grep -v 'outdated mandoc.db')
	check "mandoc -Tlint -W warning: clean" "" "$out"
	style=$(cd "$dest$mandir" && mandoc -Tlint -W style man1/inboxprobe.1 man5/inboxprobe.conf.5 2>&1 | grep -v 'mandoc.db' | grep -v 'referenced manual not found')
	check "mandoc -Tlint -W style: clean (but for cross references to pages not indexed)" "" "$style"
else
	not_ok "mandoc not installed (Debian package mandoc)"
fi
if command -v groff >/dev/null; then
	out=$(cd "$dest$mandir" && LC_ALL=C.UTF-8 groff -mandoc -ww -z -Tutf8 man1/inboxprobe.1 man5/inboxprobe.conf.5 2>&1)
	check "groff -mandoc -ww (what lintian runs): no warning" "" "$out"
fi
if command -v man >/dev/null; then
	page=$(MANPATH="$dest$mandir" MANWIDTH=100 man -P cat inboxprobe.conf 2>"$tmp/man.err")
	echo "$page" | grep -q 'min_inbox_ratio (number, 0..1)' && ok "man inboxprobe.conf renders the page from the installed tree" \
		|| not_ok "man inboxprobe.conf: $(head -c 300 "$tmp/man.err")"
	echo "$page" | grep -q 'per_host (integer, 1..' && ok "man inboxprobe.conf: per_host with its type and range" || not_ok "man inboxprobe.conf lacks per_host"
	page=$(MANPATH="$dest$mandir" man -P cat 1 inboxprobe 2>/dev/null)
	echo "$page" | grep -q 'EXIT STATUS' && ok "man inboxprobe renders, with EXIT STATUS" || not_ok "man inboxprobe"
fi

# --- inboxprobe.conf(5) documents every key the code accepts, and the keys
# it marks "not in this version" are refused by this build ---
out=$(/usr/bin/python3 - "$srcdir/seeds/config.c" "$srcdir/seeds/oauth2_conf.c" "$srcdir/man/inboxprobe.conf.5" <<'PY' 2>&1
import re, sys
code = "".join(open(f).read() for f in sys.argv[1:3] if __import__("os").path.exists(f))
page = open(sys.argv[3]).read()
keys = set()
for arr in re.findall(r"static const char \*const \w*keys\[\] = \{(.*?)\};", code, re.S):
    keys |= set(re.findall(r'"([a-z_0-9]+)"', arr))
documented = set(re.findall(r"^\.It Ic ([a-z_0-9]+)", page, re.M)) | set(re.findall(r"^\.It Ic [a-z_0-9]+ , ([a-z_0-9]+)", page, re.M)) | set(re.findall(r"^\.It Ic [a-z_0-9]+ , [a-z_0-9]+ , ([a-z_0-9]+)", page, re.M)) | set(re.findall(r"^\.Ic ([a-z_0-9]+)", page, re.M))
missing = sorted(keys - documented)
print("missing:", " ".join(missing) if missing else "none", f"({len(keys)} keys in the code)")
planned = re.findall(r"^\.It Ic ([a-z_0-9]+) Pq [^\n]*\n\.Sy Not in this version", page, re.M)
print("planned:", " ".join(planned))
PY
)
echo "$out" | sed 's/^/# /'
check "inboxprobe.conf(5) has an entry for every key of seeds/config.c" "none" "$(echo "$out" | sed -n 's/^missing: \([^(]*\) (.*/\1/p' | sed 's/ *$//')"
for k in $(echo "$out" | sed -n 's/^planned: //p'); do
	case $k in
	connections) blk='relay = { url = "smtp://127.0.0.1:25"; tls = "none"; from = "a@example.net"; connections = 2; };' ;;
	idle) blk='relay = { url = "smtp://127.0.0.1:25"; tls = "none"; from = "a@example.net"; }; probe = { idle = true; };' ;;
	*) not_ok "inboxprobe.conf(5) marks $k as not in this version: this test does not know where it goes"; continue ;;
	esac
	printf '%s\nseeds = ( { address = "s@example.net"; provider = "p"; imap = { url = "imaps://imap.example.net"; password = "x"; }; } );\n' "$blk" >"$tmp/planned.conf"
	if "$builddir/inboxprobe" check -c "$tmp/planned.conf" 2>&1 | grep -q "unknown setting '$k'"; then
		ok "$k, marked not in this version, is refused by this build"
	else
		not_ok "$k is accepted by this build: remove 'Not in this version' from inboxprobe.conf(5)"
	fi
done

# --- the page's annotated example is examples/otp.conf, and it checks ---
sed -n '/^A complete, annotated configuration:/,/^\.Ed/p' "$srcdir/man/inboxprobe.conf.5" | sed '1,2d;$d' |
	sed 's/\\e/\\/g' >"$tmp/page.conf"
grep -v '^# otp.conf - \|^# inboxprobe.conf(5))' "$srcdir/examples/otp.conf" >"$tmp/ex.conf"
assert "inboxprobe.conf(5) example == examples/otp.conf" cmp -s "$tmp/page.conf" "$tmp/ex.conf"
mkdir -p "$tmp/etc" "$tmp/var"
for s in relay.secret bounce.secret seed1.secret; do printf 'placeholder\n' >"$tmp/etc/$s"; chmod 600 "$tmp/etc/$s"; done
head -c 32 /dev/urandom >"$tmp/etc/token.key"
chmod 600 "$tmp/etc/token.key"
printf 'From: OTP <probe@example.net>\nSubject: Your code {{token}}\n\nYour code is {{token}}.\n' >"$tmp/etc/otp.eml"
sed -e "s|/etc/inboxprobe/|$tmp/etc/|g" -e "s|/var/lib/[a-z/-]*/|$tmp/var/|g" "$srcdir/examples/otp.conf" >"$tmp/otp.conf"
out=$(SEED2_PASSWORD=placeholder "$builddir/inboxprobe" check -c "$tmp/otp.conf" 2>&1 |
	grep -v '^file descriptors: a round needs ')   # the budget line: fd_limit_peer.sh tests it
check "inboxprobe check on examples/otp.conf" "configuration OK" "$out"

# --- systemd units ---
if command -v systemd-analyze >/dev/null; then
	u=$tmp/units
	mkdir "$u"
	sed "s|^ExecStart=$bindir/inboxprobe |ExecStart=$dest$bindir/inboxprobe |" "$dest$unitdir/inboxprobe@.service" >"$u/inboxprobe@.service"
	cp "$dest$unitdir/inboxprobe@.timer" "$u/"
	assert "unit ExecStart names the installed binary" grep -q "^ExecStart=$bindir/inboxprobe run " "$dest$unitdir/inboxprobe@.service"
	out=$(systemd-analyze verify --man=no "$u/inboxprobe@ci.service" "$u/inboxprobe@ci.timer" 2>&1)
	rc=$?
	check "systemd-analyze verify inboxprobe@ci.service inboxprobe@ci.timer: exit 0, silent" "0:" "$rc:$out"
	for k in 'Type=oneshot' 'ProtectSystem=strict' 'ProtectHome=yes' 'PrivateTmp=yes' 'NoNewPrivileges=yes' \
		'CapabilityBoundingSet=' 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' \
		'SystemCallFilter=@system-service' 'StateDirectory=inboxprobe' \
		'LoadCredential=secret:/etc/inboxprobe/%i.credentials' 'ReadWritePaths=-/var/lib/prometheus/node-exporter' \
		'User=inboxprobe'; do
		assert "unit sets $k" grep -qxF "$k" "$u/inboxprobe@.service"
	done
	score=$(systemd-analyze security --offline=true "$u/inboxprobe@ci.service" 2>/dev/null |
		sed -n 's/.*Overall exposure level for inboxprobe@ci.service: \([0-9.]*\).*/\1/p')
	echo "# systemd-analyze security exposure: ${score:-?}"
	assert "systemd-analyze security exposure $score <= 2.0" awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }'
	# the daemon's unit (issue 14): Type=notify, reload, watchdog
	sed "s|^ExecStart=$bindir/inboxprobe |ExecStart=$dest$bindir/inboxprobe |" "$dest$unitdir/inboxprobe-daemon@.service" >"$u/inboxprobe-daemon@.service"
	assert "daemon unit ExecStart names the installed binary" grep -q "^ExecStart=$bindir/inboxprobe daemon " "$dest$unitdir/inboxprobe-daemon@.service"
	out=$(systemd-analyze verify --man=no "$u/inboxprobe-daemon@ci.service" 2>&1)
	rc=$?
	check "systemd-analyze verify inboxprobe-daemon@ci.service: exit 0, silent" "0:" "$rc:$out"
	for k in 'Type=notify' 'NotifyAccess=main' 'ExecReload=/bin/kill -HUP $MAINPID' 'WatchdogSec=60' \
		'RestartPreventExitStatus=2' 'ProtectSystem=strict' 'NoNewPrivileges=yes' 'User=inboxprobe'; do
		assert "daemon unit sets $k" grep -qxF "$k" "$u/inboxprobe-daemon@.service"
	done
	score=$(systemd-analyze security --offline=true "$u/inboxprobe-daemon@ci.service" 2>/dev/null |
		sed -n 's/.*Overall exposure level for inboxprobe-daemon@ci.service: \([0-9.]*\).*/\1/p')
	echo "# systemd-analyze security exposure (daemon): ${score:-?}"
	assert "systemd-analyze security exposure (daemon) $score <= 2.0" awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }'
	assert "sysusers.d line for the user inboxprobe" grep -q '^u inboxprobe ' "$dest$sysusersdir/inboxprobe.conf"
else
	not_ok "systemd-analyze not installed"
fi

make -C "$builddir" uninstall DESTDIR="$dest" >"$tmp/uninstall.log" 2>&1 || { cat "$tmp/uninstall.log"; not_ok "make uninstall"; }
left=$(find "$dest" -type f | sed "s|^$dest||")
check "make uninstall leaves no file" "" "$left"

echo "# $WORLD_CHECKS checks, $WORLD_FAILS failed"
[ "$WORLD_FAILS" = 0 ]
