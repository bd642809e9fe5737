#!/bin/sh
# `inboxprobe daemon` between rounds, against the real loopback mail world:
# the kept sessions sit in IDLE (scheduler/keeper.c, docs/SPEC.md "Daemon").
# Rounds every 20 s (deadline 2 s); seeds inbox@greylist.test (postgrey
# defers the first probe for GREYLIST_DELAY = 4 s, Postfix retries every
# 2-4 s: it lands 4-8 s after its round began, after that round's deadline) and
# inbox@gmail.test; a bounce mailbox. INBOXPROBE_TEST_IDLE_RENEW=2 (the
# tests-only knob) renews IDLE every 2 s instead of 25 min.
#  1. the greylisted probe is `missing` in round 1 and recorded as a late
#     arrival between rounds 1 and 2: the store's row (late, found_at,
#     late_latency) and /metrics' late_arrivals_total and latency histogram
#     say so while rounds_total is still 1; its latency is real (at least
#     the greylisting delay, at most the time since its submission) and its
#     INTERNALDATE matches the Maildir file's delivery time; the probe was
#     cleaned up (the seed's INBOX holds no probe);
#  2. IDLE renewed between rounds (DONE + IDLE, logged with -v) on every
#     kept session, with no new login (Dovecot's `doveadm who` still lists
#     the sessions);
#  3. `doveadm kick` of inbox@gmail.test between rounds: its session is
#     re-established between rounds with backoff (first attempt 1-1.25 s);
#  4. Dovecot stopped between rounds: reconnect attempts fail and the waits
#     grow (1, 2, 4, 8 s stretched by 0..25 % jitter, as logged); started
#     again: the sessions come back (by the keeper or, at the latest, by
#     the round) and the next round measures every seed;
#  5. logins over the 3 rounds = 3 sessions (1 per seed: the world's Dovecot
#     offers NOTIFY, so one session watches INBOX and the spam folder; and
#     the bounce mailbox's) + 1 after the kick + 3 after the restart;
#  6. SMTP: with INBOXPROBE_TEST_SMTP_MAXAGE=10 (tests only; 118 s, libcurl's
#     CURLOPT_MAXAGE_CONN, otherwise) below the 17 s between rounds, the
#     daemon closes its SMTP connections after round 1: the relay logs QUIT
#     on each before round 2;
#  7. one session per seed (imap_limits.per_account = 1) at a Dovecot
#     without NOTIFY (world_extra_dovecot): a probe held in
#     the relay's queue (access(5) HOLD) past its round, then released
#     (postsuper -H), lands in the spam folder; the session IDLEs on INBOX
#     and the spam folder is searched at its renewal: the late arrival
#     (folder spam) is recorded before round 2.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/pycheck.sh"
BIN=${top_builddir:-.}/inboxprobe
[ -x "$BIN" ] || { echo "no inboxprobe binary at $BIN"; exit 99; }
for t in curl sqlite3; do
	command -v $t >/dev/null || { echo "SKIP: no $t (Debian packages curl, sqlite3)"; exit 77; }
done
# postgrey's delay: the greylisted probe passes at Postfix's second or third
# retry (2-4 s apart), 4-8 s after its submission: after its round's 2 s
# deadline, well before the next round even on a loaded machine.
GREYLIST_DELAY=4
export GREYLIST_DELAY
world_up
T=$WORLD_DIR/keep
mkdir -p "$T"
DPID=""
stop_all() {
	_st=$?
	[ -n "$DPID" ] && kill -KILL "$DPID" 2>/dev/null
	(exit $_st)
	world_down
}
trap stop_all EXIT
PORT=$(free_port)
cat >"$T/d.conf" <<CONF
name = "keep";
relay = { url = "smtp://127.0.0.1:$RELAY_PLAIN_PORT"; tls = "none"; from = "probe@sender.test";
          connect_timeout = 3; timeout = 10; };
probe = { deadline = 2; poll_interval = 1; cleanup = "delete"; };
slo = { min_inbox_ratio = 0.5; max_latency_p99 = 60.0; };
imap_defaults = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$WORLD_CA"; password_file = "$SEED_PASSFILE"; };
bounce_mailbox = { url = "imaps://localhost:$IMAPS_PORT"; ca_file = "$WORLD_CA";
                   username = "$BOUNCE_USER"; password_file = "$BOUNCE_PASSFILE"; };
state = { path = "$T/state.db"; };
report = { textfile = "$T/d.prom"; };
schedule = { interval = 20; jitter = 0; };
web = { listen_address = "127.0.0.1:$PORT"; };
seeds = ( { address = "inbox@greylist.test"; provider = "greylist"; },
          { address = "inbox@gmail.test"; provider = "gmail"; } );
CONF
port_open() {
	"$PY" -c 'import socket,sys; s=socket.socket(); s.settimeout(0.5); sys.exit(s.connect_ex(("127.0.0.1", int(sys.argv[1]))))' "$1"
}
probes_in() {   # USER: probe messages in the user's INBOX (header X-Inboxprobe-Token)
	doveadm -c "$DOVECOT_CONF" search -u "$1" mailbox INBOX header X-Inboxprobe-Token "" 2>/dev/null </dev/null | wc -l
}

RL0=$(wc -l <"$RELAY_LOG")   # the relay's log before the daemon
INBOXPROBE_TEST_IDLE_RENEW=2 INBOXPROBE_TEST_SMTP_MAXAGE=10 "$BIN" daemon -v -c "$T/d.conf" </dev/null >"$T/d.out" 2>"$T/d.err" &
DPID=$!
assert "round 1 reported" daemon_wait_log 30 ': round 1:'
r1=$(grep ': round 1:' "$T/d.err")
echo "# $r1"
assert "round 1: the greylisted probe is missing, the other in the inbox" \
	sh -c "echo '$r1' | grep -q '2 seeds: inbox 1 missing 1;'"

# ---- 1. the late arrival, recorded between rounds --------------------------
assert "the greylisted probe is found between rounds" daemon_wait_log 30 'late arrival: inbox@greylist.test'
grep 'found between rounds\|late arrival' "$T/d.err" | sed 's/^/# /'
check "rounds_total is still 1 when the late arrival is recorded" 1 \
	"$(daemon_metric 'inboxprobe_rounds_total{config="keep"}')"
check "/metrics between rounds: late_arrivals_total{greylist,inbox} = 1" 1 \
	"$(daemon_metric 'inboxprobe_late_arrivals_total{config="keep",provider="greylist",folder="inbox"}')"
check "/metrics between rounds: the greylist latency histogram holds 1 observation" 1 \
	"$(daemon_metric 'inboxprobe_delivery_latency_seconds_count{config="keep",provider="greylist"}')"
check "the textfile was written again with the late arrival" 1 \
	"$(awk '$1 == "inboxprobe_late_arrivals_total{config=\"keep\",provider=\"greylist\",folder=\"inbox\"}" { print $2 }' "$T/d.prom")"
sqlite3 -separator ' ' "$T/state.db" "SELECT p.outcome, p.late, p.late_folder, p.submit_time, p.late_internaldate, p.late_latency, p.found_at, (SELECT COUNT(*) FROM rounds) FROM probes p WHERE p.seed = 'inbox@greylist.test' ORDER BY p.submit_time LIMIT 1" >"$T/late.row"
echo "# store: $(cat "$T/late.row")"
NOW=$("$PY" -c 'import time; print(time.time())')
pycheck late_row "$T/late.row" "$NOW" "$GREYLIST_DELAY" <<'PY'
import sys
f = open(sys.argv[1]).read().split()
now, delay = float(sys.argv[2]), float(sys.argv[3])
outcome, late, folder = f[0], f[1], f[2]
submit, idate, lat, found, nrounds = map(float, f[3:8])
print(("ok" if outcome == "missing" else "not ok") + f" - its round's outcome stays missing ({outcome})")
print(("ok" if late == "1" and folder == "inbox" else "not ok") + f" - the row is a late arrival in the inbox ({late} {folder})")
print(("ok" if nrounds == 1 else "not ok") + f" - recorded while the store holds 1 round ({nrounds:.0f})")
ok = delay - 1 <= lat <= found - submit
print(("ok" if ok else "not ok") + f" - latency {lat:.3f} s is real: at least the greylisting delay {delay:.0f} s - 1, at most found - submit {found - submit:.3f} s")
ok = idate <= found < idate + 5
print(("ok" if ok else "not ok") + f" - seen {found - idate:.3f} s after its INTERNALDATE (at once, not at the next round)")
PY
check "the late probe was cleaned up (no probe left in inbox@greylist.test)" 0 "$(probes_in inbox@greylist.test)"

# ---- SMTP connections after a round (INBOXPROBE_TEST_SMTP_MAXAGE=10 < the 17 s gap) --
assert "the daemon closed its SMTP connections after round 1" \
	grep -q 'SMTP connections\{0,1\} closed: the next round starts in' "$T/d.err"
tail -n +$((RL0 + 1)) "$RELAY_LOG" >"$T/relay.log"
nc=$(grep -c 'postfix/relay-plain/smtpd\[[0-9]*\]: connect from' "$T/relay.log")
nd=$(grep 'postfix/relay-plain/smtpd\[[0-9]*\]: disconnect from' "$T/relay.log" | grep -c 'quit=1')
grep "postfix/relay-plain/" "$T/relay.log" | grep "connect from" | sed "s/^/# relay: /"
echo "# relay: $nc connections from round 1, $nd ended by QUIT"
assert "the relay saw QUIT on each of round 1's $nc connections before round 2" \
	[ "$nc" -ge 1 -a "$nd" -eq "$nc" ]

# ---- 2. IDLE renewals -------------------------------------------------------------
L1=$(daemon_metric 'inboxprobe_imap_logins_total{config="keep"}')
assert "IDLE renewed between rounds" daemon_wait_count 20 'IDLE on .* renewed after' 10
for u in inbox@gmail.test inbox@greylist.test "$BOUNCE_USER"; do
	n=$(grep -c "$u: IDLE on .* renewed after" "$T/d.err")
	assert "IDLE of $u's kept sessions renewed ($n times)" [ "$n" -ge 2 ]
done
check "no login for the renewals" "$L1" "$(daemon_metric 'inboxprobe_imap_logins_total{config="keep"}')"
check "Dovecot lists the 3 kept sessions" 3 \
	"$(doveadm -c "$DOVECOT_CONF" who -1 2>/dev/null </dev/null | awk '$2 == "imap"' | wc -l)"
check "logins after round 1: 3 sessions (1 per seed with NOTIFY, 1 bounce mailbox)" 3 "$L1"
assert "round 2 reported" daemon_wait_log 30 ': round 2:'
r2=$(grep ': round 2:' "$T/d.err")
echo "# $r2"
assert "round 2 measures both seeds (inbox 2)" sh -c "echo '$r2' | grep -q '2 seeds: inbox 2;'"

# ---- 3. doveadm kick between rounds -------------------------------------------------
sleep 1
doveadm -c "$DOVECOT_CONF" kick inbox@gmail.test </dev/null >/dev/null 2>&1
assert "the kicked session is re-established between rounds" \
	daemon_wait_count 10 'inbox@gmail.test: kept session (.*) re-established between rounds' 1
grep 'inbox@gmail.test: kept session' "$T/d.err" | sed 's/^/# /'
check "1 login for the kicked session" $((L1 + 1)) "$(daemon_metric 'inboxprobe_imap_logins_total{config="keep"}')"

# ---- 4. Dovecot stopped between rounds ---------------------------------------------------
# Its imap processes outlive `doveadm stop` here: they are ended (by pid,
# from `doveadm who`) once the listener is gone, so no reconnect gets in.
pids=$(doveadm -c "$DOVECOT_CONF" who -1 2>/dev/null </dev/null | awk '$2 == "imap" { print $3 }' | tr -dc '0-9\n')
doveadm -c "$DOVECOT_CONF" stop </dev/null
i=0
while port_open "$IMAPS_PORT" && [ $i -lt 100 ]; do i=$((i + 1)); sleep 0.1; done
for p in $pids; do kill "$p" 2>/dev/null; done
# (the kicked session, re-established moments ago, is logged as lost "N s
# after it was re-established": keeper.c continues its backoff)
assert "the 3 sessions are lost when Dovecot's imap processes end" \
	daemon_wait_count 10 'kept session (.*) lost between rounds' 4
assert "reconnects fail while Dovecot is down, 3 attempts" daemon_wait_count 15 'reconnect 3 failed' 1
dovecot -c "$DOVECOT_CONF" </dev/null >"$T/dovecot.restart.log" 2>&1
i=0
while ! port_open "$IMAPS_PORT" && [ $i -lt 100 ]; do
	i=$((i + 1))
	sleep 0.1
	# a loaded machine: the old master may still have been on its way out
	[ $((i % 30)) -eq 0 ] && dovecot -c "$DOVECOT_CONF" </dev/null >>"$T/dovecot.restart.log" 2>&1
done
assert "Dovecot listens again" port_open "$IMAPS_PORT"
nb=$(daemon_rounds)   # rounds reported before Dovecot was back
grep -o '[^ ]*: reconnect [0-9]* failed: .*next attempt in [0-9.]* s' "$T/d.err" | sed 's/: imap.*;/:/; s/^/# /' | head -n 12
grep -o '[^ ]*: reconnect [0-9]* failed: .*next attempt in [0-9.]* s' "$T/d.err" |
	sed 's/\([^ ]*\): reconnect \([0-9]*\) failed: .*next attempt in \([0-9.]*\) s/\1 \2 \3/' >"$T/waits"
# a session lost soon after a reconnect (the kicked one) goes on from its
# backoff: its attempt n waits 2^(n + flaps) s
grep -o '[^ ]*: kept session (.*) lost between rounds [0-9.]* s after it was re-established ([0-9]* time' \
	"$T/d.err" | sed 's/^\([^ ]*\): .*(\([0-9]*\) time$/\1 \2/' >"$T/flaps"
pycheck backoff "$T/waits" "$T/flaps" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
flaps = {u: int(f) for u, f in (l.split() for l in open(sys.argv[2]) if l.strip())}
ok = len(rows) >= 3
rows = [(n, w, flaps.get(u, 0)) for u, n, w in rows]
for n, w, f in rows:
    n, w = int(n), float(w)
    base = min(2 ** (n + f), 300)
    # each logged wait lies in [base, 1.25 base], capped at 5 min (a few ms of slack for the log's rounding)
    ok &= base - 0.2 <= w <= min(1.25 * base, 300) + 0.1
print(("ok" if ok else "not ok") + f" - {len(rows)} waits after failed reconnects double with 0..25 % jitter: " +
      ", ".join(f"#{n} {w} s" for n, w, f in rows[:8]))
PY
# the first round that starts with Dovecot back (round 3, or round 4 on a
# machine so loaded that Dovecot came back after round 3 began)
nr=$((nb + 1))
grep -q ": round $nr started" "$T/d.err" && nr=$((nr + 1))
assert "round $nr reported" daemon_wait_log 45 ": round $nr:"
r3=$(grep ": round $nr:" "$T/d.err")
echo "# $r3"
assert "round $nr, the first after the restart, measures every seed (inbox 2)" sh -c "echo '$r3' | grep -q '2 seeds: inbox 2;'"

# ---- 5. logins --------------------------------------------------------------------
L=$(awk '$1 == "inboxprobe_imap_logins_total{config=\"keep\"}" { print $2 }' "$T/d.prom")
echo "# logins over 3 rounds: $L"
check "logins over 3 rounds = 3 sessions + 1 after the kick + 3 after the restart" 7 "$L"
kill -TERM "$DPID"
i=0
while kill -0 "$DPID" 2>/dev/null && [ $i -lt 50 ]; do i=$((i + 1)); sleep 0.1; done
wait "$DPID"
check "SIGTERM between rounds: exit 0" 0 "$?"
DPID=""
grep -v 'renewed after' "$T/d.err" | sed 's/^/# daemon: /' | tail -n 40

# ---- 7. one session per seed: a probe held in the relay's queue lands in spam ------
# A Dovecot without NOTIFY on the same mail store, and imap_limits.per_account
# = 1: spam@outlook.test's only session IDLEs on INBOX.
# The relay's plain listener puts every message on hold (access(5) HOLD);
# after round 1 (missing) `postsuper -H ALL` releases it and it lands in
# Junk, which the keeper searches at its next renewal (2 s here).
postconf -c "$RELAY_CONFIG_DIR" -P "127.0.0.1:$RELAY_PLAIN_PORT/inet/smtpd_recipient_restrictions=check_recipient_access,static:HOLD" &&
	postfix -c "$RELAY_CONFIG_DIR" reload </dev/null >/dev/null 2>&1
sed -e 's/^name = "keep";/name = "keep1";/' -e "s|^schedule = .*|schedule = { interval = 12; jitter = 0; };|" \
	-e "s|$T/state.db|$T/state1.db|; s|$T/d.prom|$T/d1.prom|" -e '/^bounce_mailbox/,/password_file/d' \
	-e '/^seeds = /,$d' "$T/d.conf" >"$T/d1.conf"
NN_PORT=$(free_port)
world_extra_dovecot nonotify "$NN_PORT" "$WORLD_CAPS_NO_NOTIFY" || not_ok "a Dovecot without NOTIFY started"
sed -i "s|localhost:$IMAPS_PORT|localhost:$NN_PORT|" "$T/d1.conf"
cat >>"$T/d1.conf" <<CONF
imap_limits = { per_account = 1; };
seeds = ( { address = "spam@outlook.test"; provider = "outlook"; } );
CONF
: >"$T/d.err"
INBOXPROBE_TEST_IDLE_RENEW=2 "$BIN" daemon -v -c "$T/d1.conf" </dev/null >"$T/d.out" 2>"$T/d.err" &
DPID=$!
assert "one session: round 1 reported" daemon_wait_log 30 ': round 1:'
r1=$(grep ': round 1:' "$T/d.err")
echo "# $r1"
assert "one session: round 1's probe is held in the relay's queue: missing" \
	sh -c "echo '$r1' | grep -q '1 seeds: missing 1;'"
assert "one session: the seed was watched by one session (idle+poll)" grep -q 'spam@outlook.test: armed (idle+poll;' "$T/d.err"
postsuper -c "$RELAY_CONFIG_DIR" -H ALL </dev/null >/dev/null 2>&1
assert "one session: the released probe is found in the spam folder between rounds" \
	daemon_wait_log 15 'late arrival: spam@outlook.test probe .* found in Junk'
grep 'found between rounds' "$T/d.err" | sed 's/^/# /'
check "one session: late_arrivals_total{outlook,spam} = 1 while rounds_total is 1" "1 1" \
	"$(daemon_metric 'inboxprobe_late_arrivals_total{config="keep1",provider="outlook",folder="spam"}') $(daemon_metric 'inboxprobe_rounds_total{config="keep1"}')"
check "one session: one login" 1 "$(daemon_metric 'inboxprobe_imap_logins_total{config="keep1"}')"
kill -TERM "$DPID"
wait "$DPID"
DPID=""
world_result