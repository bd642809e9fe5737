#!/bin/sh
# debian_package.sh - the Debian package, checked by Debian's own tools, on
# this machine as an operator would use it:
#   1. `make distdir` into a temporary directory (the source tree and the
#      build tree stay clean), then `dpkg-buildpackage -us -uc -b` there
#      (debhelper compat 13; the package's test step runs the unit tests);
#   2. Build-Depends covers every library configure.ac requires, Depends
#      comes from ${shlibs:Depends};
#   3. lintian: no error (warnings and the tag list are printed);
#   4. dpkg -i; inboxprobe --version; dpkg -L inboxprobe lists the binary,
#      both man pages, the units, the examples; man finds inboxprobe.conf(5);
#      the sysusers.d user exists; systemd-analyze verify --man=no on
#      inboxprobe@ci.service and inboxprobe@ci.timer from the installed tree;
#      systemd-analyze security's exposure score is printed;
#   5. dpkg --purge removes every file.
# Runs once per CI job: skipped in the sanitizer build (same package).
# Needs root (dpkg -i). Takes about a minute.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
builddir=${top_builddir:-.}
[ "$(id -u)" = 0 ] || { echo "SKIP: dpkg -i needs root"; exit 77; }
for t in dpkg-buildpackage dh lintian; do
	command -v $t >/dev/null || { echo "SKIP: $t not installed (debhelper, dpkg-dev, lintian)"; exit 77; }
done
if grep -q '^SANITIZER_FLAGS = -fsanitize' "$builddir/Makefile"; then
	echo "SKIP: sanitizer build; the package is checked by the plain build"
	exit 77
fi
if dpkg -s inboxprobe >/dev/null 2>&1; then
	echo "SKIP: a package inboxprobe is already installed here; not touching it"
	exit 77
fi
tmp=$(mktemp -d)
installed=0
cleanup() {
	[ "$installed" = 1 ] && dpkg --purge inboxprobe >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
# one package test at a time on this machine (dpkg -i is global)
exec 9>/tmp/.inboxprobe-deb-test.lock
flock -w 600 9 || { echo "could not take /tmp/.inboxprobe-deb-test.lock"; exit 99; }

version=$(sed -n 's/^PACKAGE_VERSION = //p' "$builddir/Makefile")
src=$tmp/inboxprobe-$version
if ! make -s -C "$builddir" distdir distdir="$src" >"$tmp/dist.log" 2>&1; then
	cat "$tmp/dist.log"
	echo "make distdir failed"
	exit 1
fi
ok "make distdir inboxprobe-$version"

# --- 1. build ---
# A clean make environment: `make check TESTS=...` would hand its TESTS
# (and jobserver) to the package's own make through MAKEFLAGS.
if (cd "$src" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u TESTS -u top_srcdir -u top_builddir \
	DEB_BUILD_OPTIONS="parallel=2" dpkg-buildpackage -us -uc -b) >"$tmp/build.log" 2>&1; then
	ok "dpkg-buildpackage -us -uc -b"
else
	tail -40 "$tmp/build.log"
	not_ok "dpkg-buildpackage -us -uc -b"
	exit 1
fi
deb=$(ls "$tmp"/inboxprobe_"$version"_*.deb)
assert "built $(basename "$deb")" test -s "$deb"
assert "the package's test step ran the unit tests (check-unit, no failure)" \
	sh -c "grep -q 'make check-unit' '$tmp/build.log' && grep -q '^# FAIL:  0' '$tmp/build.log'"
units=$(grep -c '^PASS: tests/unit/' "$tmp/build.log")
echo "# unit tests run by the package build: $units"

# --- 2. dependencies ---
missing=""
for p in $( { sed -n 's/^IP_NEED(\[[A-Z_0-9]*\], *\[[^]]*\], *\[\([a-z0-9.+-]*\)\]).*/\1/p' "$srcdir/configure.ac"
	grep 'not found' "$srcdir/configure.ac" | sed -n 's/.*apt-get install \([a-z0-9.+-]*\).*/\1/p'; } | sort -u); do
	grep -q "^[[:space:]]*\(Build-Depends: \)\?$p\b" "$srcdir/debian/control" || missing="$missing $p"
done
check "debian/control Build-Depends names every library configure.ac requires" "" "$missing"
dep=$(dpkg-deb -f "$deb" Depends)
echo "# Depends: $dep"
assert "Depends from \${shlibs:Depends} (libcurl3-gnutls, libetpan, libssl3)" \
	sh -c "echo '$dep' | grep -q libcurl3-gnutls && echo '$dep' | grep -q libetpan && echo '$dep' | grep -q libssl3"

# --- 3. lintian ---
lintian --tag-display-limit 0 "$tmp"/inboxprobe_"$version"_*.changes >"$tmp/lintian.log" 2>&1
sed -e '/running with root privileges/d' -e 's/^/# lintian: /' "$tmp/lintian.log"
errors=$(grep -c '^E: ' "$tmp/lintian.log")
warnings=$(grep -c '^W: ' "$tmp/lintian.log")
echo "# lintian: $errors errors, $warnings warnings"
check "lintian: no error" 0 "$errors"

# --- 4. install and use ---
if dpkg -i "$deb" >"$tmp/install.log" 2>&1; then
	installed=1
	ok "dpkg -i $(basename "$deb")"
else
	cat "$tmp/install.log"
	not_ok "dpkg -i"
	exit 1
fi
v=$(/usr/bin/inboxprobe --version)
check "inboxprobe --version" "inboxprobe $version" "$v"
dpkg -L inboxprobe >"$tmp/files"
for f in /usr/bin/inboxprobe /usr/share/man/man1/inboxprobe.1.gz /usr/share/man/man5/inboxprobe.conf.5.gz \
	/lib/systemd/system/inboxprobe@.service /lib/systemd/system/inboxprobe@.timer \
	/usr/lib/sysusers.d/inboxprobe.conf /usr/share/doc/inboxprobe/examples/gmail-app-password.conf \
	/usr/share/doc/inboxprobe/runbook.md /usr/share/doc/inboxprobe/contrib/inboxprobe.rules.yml; do
	assert "dpkg -L inboxprobe lists $f (and it exists)" sh -c "grep -qx '$f' '$tmp/files' && test -s '$f'"
done
echo "# dpkg -L inboxprobe: $(wc -l <"$tmp/files") entries"
page=$(MANWIDTH=100 man -P cat inboxprobe.conf 2>&1)
echo "$page" | grep -q 'per_host (integer, 1..' && ok "man inboxprobe.conf shows the installed page" \
	|| not_ok "man inboxprobe.conf: $(echo "$page" | head -3)"
assert "postinst created the user inboxprobe (sysusers.d)" getent passwd inboxprobe
if command -v systemd-analyze >/dev/null; then
	vunits="inboxprobe@ci.service inboxprobe@ci.timer"
	[ -f /lib/systemd/system/inboxprobe-daemon@.service ] && vunits="$vunits inboxprobe-daemon@ci.service"
	out=$(cd /lib/systemd/system && systemd-analyze verify --man=no $vunits 2>&1)
	rc=$?
	check "systemd-analyze verify --man=no $vunits (installed)" "0:" "$rc:$out"
	score=$(systemd-analyze security --offline=true /lib/systemd/system/inboxprobe@ci.service 2>/dev/null |
		sed -n 's/.*Overall exposure level for inboxprobe@ci.service: \(.*\)/\1/p')
	echo "# systemd-analyze security inboxprobe@ci.service: $score"
	assert "systemd-analyze security gives an exposure level" [ -n "$score" ]
fi

# --- 5. remove ---
if dpkg --purge inboxprobe >"$tmp/purge.log" 2>&1; then
	installed=0
	ok "dpkg --purge inboxprobe"
else
	cat "$tmp/purge.log"
	not_ok "dpkg --purge inboxprobe"
fi
left=""
while read -r f; do
	[ -f "$f" ] && left="$left $f"
done <"$tmp/files"
check "no file of the package is left" "" "$left"

echo "# $WORLD_CHECKS checks, $WORLD_FAILS failed"
[ "$WORLD_FAILS" = 0 ]
