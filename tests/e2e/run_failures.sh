#!/bin/sh
# Failure paths of `inboxprobe run` against the loopback mail world:
# a wrong IMAP password, the relay down, a placement below min_inbox_ratio,
# a broken configuration (exit 2, nothing sent), a group-readable password
# file, `check`, and a second run while the first is active.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
BIN=${top_builddir:-.}/inboxprobe
[ -x "$BIN" ] || { echo "no inboxprobe binary at $BIN"; exit 99; }
world_up
T=$WORLD_DIR/failtests
mkdir -p "$T"

# conf NAME RELAYURL SEEDS_BLOCK [EXTRA]: write a small configuration.
conf() {
	cat >"$T/$1.conf" <<CONF
name = "$1";
lock_dir = "$T";
relay = { url = "$2"; tls = "none"; from = "probe@sender.test"; connect_timeout = 3; timeout = 10; };
probe = { deadline = 20; poll_interval = 1; cleanup = "delete"; };
slo = { min_inbox_ratio = 0.9; max_latency_p99 = 60.0; };
report = { json = "$T/$1.json"; textfile = "$T/$1.prom"; };
imap_defaults = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$WORLD_CA"; password_file = "$SEED_PASSFILE"; };
seeds = ( $3 );
$4
CONF
}
relay="smtp://127.0.0.1:$RELAY_PLAIN_PORT"
jfield() { /usr/bin/python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

# 1. Wrong IMAP password: that seed is error, the other inbox; exit 3.
conf wrongpw "$relay" "{ address = \"inbox@gmail.test\"; provider = \"gmail\"; },
  { address = \"inbox@outlook.test\"; provider = \"outlook\"; imap = { password_file = \"$WRONG_PASSFILE\"; }; }"
"$BIN" run -c "$T/wrongpw.conf" >"$T/wrongpw.out" 2>&1; rc=$?
assert "wrong IMAP password: exit 3 (got $rc)" [ "$rc" = 3 ]
assert "wrong IMAP password: outlook seed is error" [ "$(jfield "$T/wrongpw.json" 'r["seeds"][1]["outcome"]')" = error ]
assert "wrong IMAP password: diagnostic says authentication" \
	sh -c "jq_out=\$(/usr/bin/python3 -c 'import json;print(json.load(open(\"$T/wrongpw.json\"))[\"seeds\"][1][\"diagnostic\"])'); echo \"\$jq_out\" | grep -qi 'authentication'"
assert "wrong IMAP password: the other seed is inbox" [ "$(jfield "$T/wrongpw.json" 'r["seeds"][0]["outcome"]')" = inbox ]
assert "wrong IMAP password: the password is not printed" sh -c "! grep -qF \"\$(cat '$WRONG_PASSFILE')\" '$T/wrongpw.out'"

# 2. The relay down: every seed error, exit 3, textfile still has every seed.
dead=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
conf relaydown "smtp://127.0.0.1:$dead" "{ address = \"inbox@gmail.test\"; provider = \"gmail\"; },
  { address = \"inbox@yahoo.test\"; provider = \"yahoo\"; }"
"$BIN" run -c "$T/relaydown.conf" >"$T/relaydown.out" 2>&1; rc=$?
assert "relay down: exit 3 (got $rc)" [ "$rc" = 3 ]
assert "relay down: both seeds error" [ "$(jfield "$T/relaydown.json" '",".join(s["outcome"] for s in r["seeds"])')" = "error,error" ]
assert "relay down: textfile has error=1 for yahoo" \
	grep -q 'inboxprobe_probe_outcome{config="relaydown",seed="inbox@yahoo.test",provider="yahoo",outcome="error"} 1' "$T/relaydown.prom"
assert "relay down: no relay_reply series (no reply at all)" sh -c "! grep -q '^inboxprobe_relay_reply' '$T/relaydown.prom'"

# 3. Placement below min_inbox_ratio: exit 1.
conf lowinbox "$relay" "{ address = \"inbox@yahoo.test\"; provider = \"yahoo\"; },
  { address = \"spam@yahoo.test\"; provider = \"yahoo\"; }"
"$BIN" run -c "$T/lowinbox.conf" >"$T/lowinbox.out" 2>&1; rc=$?
assert "inbox share 0.5 < 0.9: exit 1 (got $rc)" [ "$rc" = 1 ]
assert "summary names the failed gate" grep -q 'yahoo min_inbox_ratio' "$T/lowinbox.out"
assert "slo_ok 0 for yahoo min_inbox_ratio" \
	grep -q 'inboxprobe_slo_ok{config="lowinbox",slo="min_inbox_ratio",provider="yahoo"} 0' "$T/lowinbox.prom"
assert "placement_ratio spam 0.5" \
	grep -q 'inboxprobe_placement_ratio{config="lowinbox",provider="yahoo",folder="spam"} 0.5' "$T/lowinbox.prom"

# 4. A broken configuration: exit 2, FILE:LINE for each error, nothing sent.
before=$(grep -c 'from=<probe@sender.test>' "$RELAY_LOG" || true)
cat >"$T/broken.conf" <<CONF
relay = { url = "smtp://127.0.0.1:$RELAY_PLAIN_PORT"; tls = "none"; from = "probe@sender.test"; };
probe = { deadline = -5; };
slo = { min_inbox_ratio = 1.5; };
seeds = ( { address = "inbox@gmail.test"; provider = "gmail";
            imap = { url = "imaps://localhost:$IMAPS_PORT"; password_file = "$SEED_PASSFILE"; }; } );
CONF
"$BIN" run -c "$T/broken.conf" >"$T/broken.out" 2>"$T/broken.err"; rc=$?
cat "$T/broken.err"
assert "broken config: exit 2 (got $rc)" [ "$rc" = 2 ]
assert "broken config: deadline error at line 2" grep -q "broken.conf:2:.*deadline" "$T/broken.err"
assert "broken config: ratio error at line 3 in the same run" grep -q "broken.conf:3:.*min_inbox_ratio" "$T/broken.err"
sleep 1
after=$(grep -c 'from=<probe@sender.test>' "$RELAY_LOG" || true)
assert "broken config: nothing sent ($before == $after relay log lines)" [ "$before" = "$after" ]
"$BIN" check -c "$T/broken.conf" >/dev/null 2>&1; rc=$?
assert "check on broken config: exit 2" [ "$rc" = 2 ]
assert "check on a good config prints 'configuration OK'" sh -c "'$BIN' check -c '$T/lowinbox.conf' | grep -qx 'configuration OK'"
echo 'relay = { url = "smtp://x"; ' >"$T/syntax.conf"
"$BIN" check -c "$T/syntax.conf" 2>"$T/syntax.err"; rc=$?
assert "syntax error: exit 2 with FILE:LINE (got $rc: $(cat "$T/syntax.err"))" sh -c "[ $rc = 2 ] && grep -q 'syntax.conf:[0-9]' '$T/syntax.err'"
# check warns (exit 0) about the directories the runs write to when they are
# missing; run then exits 3 and says which setting names that directory.
# (A missing last directory of state.path is created, mode 0700; two are not.)
# A configuration without OAuth 2.0 is not warned about a token cache.
sed -e "s|^lock_dir = .*|state = { path = \"$T/nodir/sub/s.db\"; };|" \
	-e "s|textfile = \"[^\"]*\"|textfile = \"$T/noprom/x.prom\"|" "$T/lowinbox.conf" >"$T/nodir.conf"
"$BIN" check -c "$T/nodir.conf" >"$T/nodir.out" 2>"$T/nodir.err"; rc=$?
cat "$T/nodir.err"
assert "check, state.path in a missing directory: exit 0 (got $rc)" [ "$rc" = 0 ]
assert "check names state.path and its directory" grep -q "nodir.conf: state.path: directory $T/nodir/sub: No such file" "$T/nodir.err"
assert "check names report.textfile and its directory" grep -q "report.textfile: directory $T/noprom: No such file" "$T/nodir.err"
assert "check without oauth2: no warning about an OAuth token cache" sh -c "! grep -q oauth2 '$T/nodir.err'"
"$BIN" run -c "$T/nodir.conf" >/dev/null 2>"$T/nodir.run.err"; rc=$?
assert "run, state.path in a missing directory: exit 3 (got $rc)" [ "$rc" = 3 ]
assert "run names the lock directory as state.path's" grep -q "run lock directory $T/nodir/sub: No such file or directory (the directory of state.path" "$T/nodir.run.err"
# folders: a configured spam_folder the server neither lists nor knows is
# an error (exit 3; a round would make that seed error), named with the fix.
conf badspam "$relay" "{ address = \"inbox@yahoo.test\"; provider = \"yahoo\"; spam_folder = \"NoSuchSpam\"; }"
timeout 60 "$BIN" folders -c "$T/badspam.conf" >"$T/badspam.out" 2>&1; rc=$?
cat "$T/badspam.out"
assert "folders, spam_folder unknown to the server: exit 3 (got $rc)" [ "$rc" = 3 ]
assert "folders names the folder, STATUS's refusal and the fix" \
	grep -q "spam:  error: NoSuchSpam (config) is not listed by the server and STATUS refused it (.*): fix spam_folder" "$T/badspam.out"
"$BIN" run -c "$T/broken.conf" --format nagios >"$T/broken.nagios" 2>/dev/null; rc=$?
assert "broken config with --format nagios: UNKNOWN (3) and one status line" \
	sh -c "[ $rc = 3 ] && [ \$(wc -l < '$T/broken.nagios') = 1 ] && grep -q '^INBOXPROBE UNKNOWN' '$T/broken.nagios'"

# 5. A group-readable password file is refused with exit 2.
cp "$SEED_PASSFILE" "$T/readable.pass"; chmod 640 "$T/readable.pass"
conf readable "$relay" "{ address = \"inbox@gmail.test\"; provider = \"gmail\"; imap = { password_file = \"$T/readable.pass\"; }; }"
"$BIN" run -c "$T/readable.conf" >"$T/readable.out" 2>&1; rc=$?
assert "group-readable password file: exit 2 (got $rc)" [ "$rc" = 2 ]
assert "group-readable password file: message names the file" grep -q "readable.pass" "$T/readable.out"
assert "group-readable password file: secret not printed" sh -c "! grep -qF \"\$(cat '$SEED_PASSFILE')\" '$T/readable.out'"

# 6. A second run while the first is active sends nothing and exits 3.
conf slow "$relay" "{ address = \"inbox@defer.test\"; provider = \"defer\"; spam_folder = \"INBOX\"; }" 'state = { path = "'"$T"'/slow.db"; };'
"$BIN" run -c "$T/slow.conf" --deadline 8 >"$T/slow1.out" 2>&1 &
first=$!
sleep 2
before=$(grep -c 'to=<inbox@defer.test>' "$RELAY_LOG" || true)
"$BIN" run -c "$T/slow.conf" >"$T/slow2.out" 2>&1; rc=$?
wait $first
assert "second run while the first is active: exit 3 (got $rc)" [ "$rc" = 3 ]
assert "second run says another run is active" grep -qi "another inboxprobe run\|another run" "$T/slow2.out"

# 6b. A bounce mailbox that cannot be watched is not silent: the probe the
#     rejecting MX refused stays missing, and the run says why (exit 3).
conf nobounce "$relay" "{ address = \"inbox@reject.test\"; provider = \"reject\"; },
  { address = \"inbox@gmail.test\"; provider = \"gmail\"; }" \
	"bounce_mailbox = { url = \"imaps://localhost:$IMAPS_PORT\"; ca_file = \"$WORLD_CA\"; username = \"$BOUNCE_USER\"; password_file = \"$WRONG_PASSFILE\"; };"
sed -i 's/deadline = 20;/deadline = 8;/; s/min_inbox_ratio = 0.9;/min_inbox_ratio = 0.0;/' "$T/nobounce.conf"
"$BIN" run -c "$T/nobounce.conf" >"$T/nobounce.out" 2>&1; rc=$?
cat "$T/nobounce.out"
assert "broken bounce mailbox: exit 3 (got $rc)" [ "$rc" = 3 ]
assert "broken bounce mailbox: JSON names it, reject.test stays missing" /usr/bin/python3 -c "
import json; r = json.load(open('$T/nobounce.json'))
assert r['bounce_mailbox_error'] and 'authentication' in r['bounce_mailbox_error'].lower(), r['bounce_mailbox_error']
assert r['seeds'][0]['outcome'] == 'missing', r['seeds'][0]"
assert "broken bounce mailbox: inboxprobe_bounce_mailbox_up 0" \
	grep -q '^inboxprobe_bounce_mailbox_up{config="nobounce"} 0' "$T/nobounce.prom"
assert "broken bounce mailbox: the summary says so" grep -q '^bounce mailbox: ' "$T/nobounce.out"

# 7. SIGTERM mid-round: the round stops, writes its reports and records what
#    it measured (exit 3); the probe it could not wait for is error, and the
#    next round finds it only to clean it up (not a late arrival).
conf term "$relay" "{ address = \"inbox@greylist.test\"; provider = \"greylist\"; }" 'state = { path = "'"$T"'/term.db"; };'
"$BIN" run -v -c "$T/term.conf" --deadline 60 >"$T/term1.out" 2>"$T/term1.err" &
pid=$!
# SIGTERM once the relay accepted the probe (greylisted for a minute, so the
# round is still waiting for it): a fixed sleep raced a loaded machine's setup.
i=0
until grep -q 'inbox@greylist.test: accepted by relay' "$T/term1.err"; do
	i=$((i + 1)); [ $i -gt 300 ] && break; sleep 0.2
done
sleep 0.5
t0=$(date +%s)
kill -TERM $pid
wait $pid; rc=$?
t1=$(date +%s)
cat "$T/term1.out" "$T/term1.err"
assert "SIGTERM: exit 3 (got $rc)" [ "$rc" = 3 ]
assert "SIGTERM: stopped within 5 s ($((t1 - t0)) s)" [ $((t1 - t0)) -le 5 ]
assert "SIGTERM: JSON written, outcome error, diagnostic says interrupted" /usr/bin/python3 -c "
import json; s = json.load(open('$T/term.json'))['seeds'][0]
assert s['outcome'] == 'error' and 'interrupted' in s['diagnostic'], s"
assert "SIGTERM: textfile written with the seed" grep -q 'inboxprobe_probe_outcome{config="term",seed="inbox@greylist.test",provider="greylist",outcome="error"} 1' "$T/term.prom"
assert "SIGTERM: the store recorded the round (probes_total error 1)" \
	grep -q 'inboxprobe_probes_total{config="term",provider="greylist",outcome="error"} 1' "$T/term.prom"
tok=$(/usr/bin/python3 -c "import json; print(json.load(open('$T/term.json'))['seeds'][0]['token'])")
i=0
until doveadm -c "$DOVECOT_CONF" search -u inbox@greylist.test mailbox INBOX HEADER X-Inboxprobe-Token "$tok" 2>/dev/null | grep -q .; do
	i=$((i + 1)); [ $i -gt 60 ] && break; sleep 1
done
assert "SIGTERM: the interrupted probe arrived later (greylist delay)" [ $i -le 60 ]
"$BIN" run -c "$T/term.conf" --deadline 20 >"$T/term2.out" 2>"$T/term2.err"; rc=$?
cat "$T/term2.out"
assert "next round: the interrupted probe is cleaned up" grep -q "^cleaned up: inbox@greylist.test probe ${tok%????????????????????????}" "$T/term2.out"
assert "next round: it is not a late arrival" sh -c "! grep -q '^late arrival' '$T/term2.out'"
assert "next round: late_arrivals_total stays 0" grep -q 'inboxprobe_late_arrivals_total{config="term",provider="greylist",folder="inbox"} 0' "$T/term.prom"
assert "next round: the message is gone from the mailbox" sh -c "! doveadm -c '$DOVECOT_CONF' search -u inbox@greylist.test mailbox INBOX HEADER X-Inboxprobe-Token '$tok' 2>/dev/null | grep -q ."

world_result
