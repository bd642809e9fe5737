#!/bin/sh
# examples_check.sh - every configuration in examples/ passes
# `inboxprobe check` ("configuration OK", exit 0), with placeholder secret
# files this test creates (mode 0600) where the example names them, and the
# paths under /etc/inboxprobe, /var/lib and /run/credentials moved into a
# temporary directory. The OAuth examples (those with an oauth2 block) are
# checked only when this build knows `oauth2 = { ... }`; otherwise they are
# listed as not checked. Also: the CI examples are well-formed YAML and gate
# on the exit code and publish the JUnit file.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
BIN=${top_builddir:-.}/inboxprobe
[ -x "$BIN" ] || { echo "no inboxprobe binary at $BIN"; exit 99; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Does this build know oauth2 blocks?
cat >"$tmp/probe.conf" <<CONF
relay = { url = "smtp://127.0.0.1:25"; tls = "none"; from = "a@example.net"; };
imap_defaults = { url = "imaps://imap.example.net"; oauth2 = { token_command = "true"; }; };
seeds = ( { address = "s@example.net"; provider = "p"; } );
CONF
if "$BIN" check -c "$tmp/probe.conf" 2>&1 | grep -q "unknown setting 'oauth2'"; then
	oauth=no
else
	oauth=yes
fi
echo "# oauth2 support in this build: $oauth"

n=0
for ex in "$srcdir"/examples/*.conf; do
	name=$(basename "$ex" .conf)
	if grep -q '^[[:space:]]*oauth2 = {' "$ex" && [ "$oauth" = no ]; then
		echo "# not checked: examples/$name.conf (oauth2 blocks are not supported by this build)"
		continue
	fi
	d=$tmp/$name
	mkdir -p "$d/etc" "$d/var" "$d/cred"
	sed -e "s|/etc/inboxprobe/|$d/etc/|g" -e "s|/var/lib/[a-z/-]*/|$d/var/|g" \
		-e "s|/run/credentials/[^/\"]*/|$d/cred/|g" "$ex" >"$d/$name.conf"
	# the files the example names: secrets and keys get a placeholder, a
	# template a real message
	for f in $(sed -n 's/.*\(password_file\|client_secret_file\|secret_file\|service_account_file\) = "\([^"]*\)".*/\2/p' "$d/$name.conf"); do
		mkdir -p "$(dirname "$f")"
		case $f in
		*.json) printf '{"type":"service_account","client_email":"x@example.iam.gserviceaccount.com","private_key":"placeholder","token_uri":"https://oauth2.googleapis.com/token"}\n' >"$f" ;;
		*.key) head -c 32 /dev/urandom >"$f" ;;
		*) printf 'placeholder-secret\n' >"$f" ;;
		esac
		chmod 600 "$f"
	done
	for f in $(sed -n 's/.*template = "\([^"]*\)".*/\1/p' "$d/$name.conf"); do
		printf 'From: OTP <probe@example.net>\nSubject: Your code {{token}}\n\nYour code is {{token}}.\n' >"$f"
	done
	envs=$(sed -n 's/.*password_env = "\([A-Za-z_][A-Za-z0-9_]*\)".*/\1=placeholder-secret/p' "$d/$name.conf")
	out=$(env $envs "$BIN" check -c "$d/$name.conf" 2>&1)
	rc=$?
	# check also prints the round's file descriptor budget (fd_limit_peer.sh tests it)
	out=$(printf '%s\n' "$out" | grep -v '^file descriptors: a round needs ')
	check "inboxprobe check examples/$name.conf" "0:configuration OK" "$rc:$out"
	n=$((n + 1))
done
assert "at least 6 examples checked ($n)" [ "$n" -ge 6 ]

# every example names where its facts come from, and is in README.md
for ex in "$srcdir"/examples/*.conf; do
	b=$(basename "$ex")
	assert "examples/README.md lists $b" grep -qF "\`$b\`" "$srcdir/examples/README.md"
done

# the CI examples: valid YAML, gate on the exit code, publish the JUnit file
if /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
	out=$(/usr/bin/python3 - "$srcdir/examples/ci/gitlab-ci.yml" "$srcdir/examples/ci/github-actions.yml" <<'PY' 2>&1
import sys, yaml
gl, gh = (yaml.safe_load(open(p)) for p in sys.argv[1:3])
job = gl["inboxprobe"]
script = "\n".join(job["script"])
assert "inboxprobe run" in script and "--junit" in script, script
assert job["artifacts"]["reports"]["junit"] == "inboxprobe.junit.xml"
assert job["artifacts"]["when"] == "always"
deploy = gl["deploy"]
assert "inboxprobe" in [n if isinstance(n, str) else n["job"] for n in deploy["needs"]], deploy
jobs = gh["jobs"]
steps = jobs["inboxprobe"]["steps"]
run = [s for s in steps if "inboxprobe run" in s.get("run", "")]
assert run and "--junit" in run[0]["run"], steps
pub = [s for s in steps if "junit" in str(s.get("with", {})).lower() or "junit" in s.get("name", "").lower()]
assert pub and pub[0].get("if", "").startswith("always()"), pub
assert jobs["deploy"]["needs"] == "inboxprobe" or "inboxprobe" in jobs["deploy"]["needs"]
print("ok")
PY
)
	check "CI examples: run with --junit, publish always, deploy needs the gate" ok "$out"
fi

echo "# $WORLD_CHECKS checks, $WORLD_FAILS failed"
[ "$WORLD_FAILS" = 0 ]
