#!/bin/sh
# Watching INBOX and the spam folder (SPEC "What it is"; issue 9 "Watching
# both folders") against the real loopback world, in the order of
# preference, with two more Dovecot instances on the world's mail store:
# - "rawnotify" offers NOTIFY (RFC 5465) and keeps a raw log of each IMAP
#   session (rawlog_dir): one session per seed watches both folders; the
#   raw log shows the sequence NOTIFY SET, IDLE, "* STATUS Junk", DONE,
#   SELECT Junk, UID SEARCH, SELECT INBOX, IDLE; one login per seed, also
#   with per_account 1; at intl.test (a modified UTF-7 spam folder name,
#   which Dovecot 2.3 announces nothing for) the fallbacks take over;
# - "nonotify" leaves NOTIFY out of imap_capability: a second session IDLEs
#   on the spam folder (per_account 2, two logins per seed), or INBOX's IDLE
#   is interrupted every poll_interval (per_account 1, one login);
# - --no-idle polls;
# - the sequence after a STATUS while the probe is still awaited: a user's
#   message lands in the spam folder of inbox@greylist.test right after IDLE
#   started, while postgrey holds the probe back for GREYLIST_DELAY seconds:
#   DONE, SELECT Junk, UID SEARCH, SELECT INBOX, UID SEARCH, IDLE, then the
#   probe's EXISTS; the user's message stays untouched.
# Every probe must be found where it was delivered. Exit 0 pass, 1 fail, 77 skip.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/world/lib.sh"
. "${top_srcdir:-$(dirname "$0")/../..}/tests/e2e/common.sh"
BIN=${top_builddir:-.}/inboxprobe
[ -x "$BIN" ] || { echo "no inboxprobe binary at $BIN"; exit 99; }
world_up

T=$WORLD_DIR/notifytest
D=$WORLD_DIR/dovecot
mkdir -p "$T" "$T/rawlog"
chown dovecot:dovecot "$T/rawlog"
PROVIDERS="gmail outlook yahoo bulkmail intl"
USERS=
GREY=inbox@greylist.test
for p in $PROVIDERS; do
	for u in inbox spam marker; do
		USERS="$USERS $u@$p.test"
	done
done

NOTIFY_PORT=$(free_port)
world_extra_dovecot rawnotify "$NOTIFY_PORT" "rawlog_dir = $T/rawlog/%u" || exit 99
NONOTIFY_PORT=$(free_port)
world_extra_dovecot nonotify "$NONOTIFY_PORT" "$WORLD_CAPS_NO_NOTIFY" || exit 99

# conf NAME PORT PER_ACCOUNT
conf() {
	{
		cat <<EOF
name = "notify";
relay = { url = "smtp://127.0.0.1:$RELAY_PLAIN_PORT"; tls = "none"; from = "probe@sender.test"; };
probe = { deadline = 30; poll_interval = 1; cleanup = "delete"; };
imap_limits = { per_host = 64; per_account = $3; connect_timeout = 10; timeout = 20; };
slo = { min_inbox_ratio = 0.1; max_latency_p99 = 60.0; };
lock_dir = "$T";
report = { json = "$T/$1.json"; };
seeds = (
EOF
		_sep=
		for a in $USERS; do
			printf '%s  { address = "%s"; provider = "%s";\n' "$_sep" "$a" "${a#*@}"
			printf '    imap = { url = "imaps://localhost:%s"; ca_file = "%s"; username = "%s"; password_file = "%s"; }; }' \
				"$2" "$WORLD_CA" "$a" "$SEED_PASSFILE"
			_sep=",
"
		done
		printf '\n);\n'
	} >"$T/$1.conf"
}

# run NAME LOG [ARGS]: one round; the instance log's new lines go to NAME.log
run() {
	_name=$1
	_log=$2
	shift 2
	_before=$(wc -l <"$D/$_log.log")
	find "$T/rawlog" -type f -delete
	timeout 90 "$BIN" run -c "$T/$_name.conf" -v "$@" >"$T/$_name.out" 2>"$T/$_name.err"
	echo $? >"$T/$_name.rc"
	tail -n +"$((_before + 1))" "$D/$_log.log" >"$T/$_name.log"
}

for u in $USERS $GREY; do
	mkdir -p "$T/rawlog/$u"
	chown dovecot:dovecot "$T/rawlog/$u"
done
conf notify "$NOTIFY_PORT" 2
conf notify1 "$NOTIFY_PORT" 1
conf nonotify "$NONOTIFY_PORT" 2
conf nonotify1 "$NONOTIFY_PORT" 1
run notify rawnotify
# the raw IMAP sessions of the NOTIFY round, kept for the checks
cp -r "$T/rawlog" "$T/rawlog.notify"
run notify1 rawnotify
run nonotify nonotify
run nonotify1 nonotify
run poll rawnotify -c "$T/notify.conf" --json "$T/poll.json" --no-idle

# The greylisted seed: a user's message into its Junk once IDLE has begun.
USERS=$GREY
conf grey "$NOTIFY_PORT" 2
sed -i 's/deadline = 30;/deadline = 45;/' "$T/grey.conf"
/usr/bin/python3 - "$T/rawlog/$GREY" "$D/main.conf" "$GREY" <<'PY' >"$T/grey.saver" 2>&1 &
import glob, subprocess, sys, time
d, conf, user = sys.argv[1:4]
end = time.time() + 60
while time.time() < end:
    for f in glob.glob(d + "/*.in"):
        if any(l.split(" ", 1)[-1].strip().endswith(" IDLE") for l in open(f, errors="replace")):
            msg = b"From: friend@example.org\r\nSubject: not a probe\r\nX-Test-Token: user-junk\r\n\r\nhello\r\n"
            subprocess.run(["doveadm", "-c", conf, "save", "-u", user, "-m", "Junk"], input=msg, check=True)
            print("saved at", time.time())
            sys.exit(0)
    time.sleep(0.02)
print("no IDLE seen")
PY
SAVER=$!
run grey rawnotify
wait $SAVER
cat "$T/grey.saver"
cp -r "$T/rawlog" "$T/rawlog.grey"
world_folder_of "$GREY" user-junk >"$T/grey.userjunk"

for f in notify notify1 nonotify nonotify1 poll; do
	sed "s/^/$f stderr: /" "$T/$f.err" | grep -v ": debug: " | tail -n 20
done

/usr/bin/python3 - "$T" <<'PY' >"$T/checks.out" 2>&1
import glob, json, os, re, sys
T = sys.argv[1]
def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what)

# run -> (watch of most seeds, watch at intl.test, logins per seed, at intl.test)
expect = {
    "notify": ("notify", "idle", 1, 2),
    "notify1": ("notify", "idle+poll", 1, 1),
    "nonotify": ("idle", "idle", 2, 2),
    "nonotify1": ("idle+poll", "idle+poll", 1, 1),
    "poll": ("poll", "poll", 1, 1),
}
for name, (watch, intl_watch, logins, intl_logins) in expect.items():
    rep = json.load(open(os.path.join(T, name + ".json")))
    rc = int(open(os.path.join(T, name + ".rc")).read())
    check(rc == 0, f"{name}: exit 0, got {rc}")
    log = open(os.path.join(T, name + ".log"), errors="replace").read()
    errs, lerrs = [], []
    for s in rep["seeds"]:
        a = s["address"]
        intl = a.endswith("@intl.test")
        want = "spam" if a.startswith("spam@") else "inbox"
        if s["outcome"] != want:
            errs.append(f"{a}: {s['outcome']} {s.get('diagnostic')}")
        w = intl_watch if intl else watch
        if s.get("watch") != w:
            errs.append(f"{a}: watch {s.get('watch')} != {w}")
        # events announce the probe; with idle+poll the spam-folder tick
        # (every poll_interval, 1 s) also searches INBOX and may find the
        # probe before Dovecot's EXISTS (0.5 s after delivery) comes
        announced = w in ("notify", "idle")
        if w != "idle+poll" and bool(s.get("announced_by_idle")) != announced:
            errs.append(f"{a}: announced {s.get('announced_by_idle')} (watch {w})")
        n = len(re.findall(r"Login: user=<%s>" % re.escape(a), log))
        if n != (intl_logins if intl else logins):
            lerrs.append(f"{a}: {n} logins")
    check(not errs, f"{name}: every probe found where delivered, watched by {watch} "
          f"(intl.test: {intl_watch}) ({'; '.join(errs[:4])})")
    check(not lerrs, f"{name}: {logins} login(s) per seed, {intl_logins} at intl.test "
          f"({'; '.join(lerrs[:4])})")

# The NOTIFY sequence on the wire: Dovecot's raw log of the session, its
# client (.in) and server (.out) lines merged by their time stamps.
def transcript(run, user):
    ins = glob.glob(os.path.join(T, "rawlog." + run, user, "*.in"))
    if len(ins) != 1:
        return None, len(ins)
    lines = []
    for ext, who in ((".in", "C: "), (".out", "S: ")):
        for i, l in enumerate(open(ins[0][:-3] + ext, errors="replace")):
            ts, _, text = l.rstrip("\r\n").partition(" ")
            try:
                lines.append((float(ts), 0 if who == "C: " else 1, i, who + text))
            except ValueError:
                pass   # a literal's continuation: not needed here
    return "\n".join(x[3] for x in sorted(lines)), 1
def order(text, pats):
    pos = 0
    for p in pats:
        m = re.compile(p, re.M | re.I).search(text, pos)
        if not m:
            return p
        pos = m.end()
    return None
NOTIFY_SET = (r'^C: \S+ NOTIFY SET STATUS \(selected \(MessageNew MessageExpunge\)\) \(mailboxes "%s" '
              r'\(MessageNew MessageExpunge\)\)')
for user, folder in (("spam@outlook.test", "Junk"), ("spam@gmail.test", r"\[Gmail\]/Spam")):
    tr, n = transcript("notify", user)
    check(n == 1, f"{user}: one IMAP session in the NOTIFY round ({n})")
    if tr is None:
        continue
    miss = order(tr, [NOTIFY_SET % folder, r"^C: \S+ IDLE$",
                      r"^S: \* STATUS %s \((?=.*UIDNEXT)(?=.*MESSAGES)" % folder, r"^C: DONE$",
                      r'^C: \S+ SELECT "?%s"?$' % folder, r"^C: \S+ UID SEARCH", r"^C: \S+ UID FETCH"])
    check(miss is None, f"{user}: NOTIFY SET, IDLE, * STATUS (MESSAGES, UIDNEXT), DONE, SELECT spam, "
          f"UID SEARCH, UID FETCH in that order (missing: {miss})")
    # RFC 5465 3: NOTIFY SET STATUS is answered, before its OK, by the
    # spam folder's STATUS; its UIDNEXT is the armed one: no STATUS command
    miss = order(tr, [NOTIFY_SET % folder, r"^S: \* STATUS %s \((?=.*UIDNEXT)" % folder,
                      r"^S: \S+ OK NOTIFY", r"^C: \S+ IDLE$"])
    cmds = re.findall(r"^C: \S+ STATUS .*$", tr, re.M)
    check(miss is None and not cmds,
          f"{user}: the spam folder's UIDNEXT from the NOTIFY SET STATUS reply, no STATUS command "
          f"(missing: {miss}; STATUS commands: {cmds})")
tr, n = transcript("notify", "inbox@outlook.test")
check(tr is not None and order(tr, [NOTIFY_SET % "Junk", r"^C: \S+ IDLE$", r"^S: \* \d+ EXISTS",
                                    r"^C: DONE$", r"^C: \S+ UID SEARCH"]) is None and
      not re.search(r"^C: \S+ SELECT \"?Junk", tr.split(" IDLE", 1)[-1], re.M),
      "inbox@outlook.test: the INBOX probe came by EXISTS; the spam folder was not selected after IDLE")

# The greylisted seed: spam folder visited, INBOX selected and IDLE again,
# then the probe.
rep = json.load(open(os.path.join(T, "grey.json")))
s = rep["seeds"][0]
check(s["outcome"] == "inbox" and s.get("watch") == "notify" and s.get("announced_by_idle"),
      f"grey: probe found in INBOX, watched by NOTIFY, announced ({s['outcome']}, {s.get('watch')}, "
      f"{s.get('announced_by_idle')}, {s.get('diagnostic')})")
tr, n = transcript("grey", "inbox@greylist.test")
miss = order(tr or "", [NOTIFY_SET % "Junk", r"^C: \S+ IDLE$", r"^S: \* STATUS Junk \(", r"^C: DONE$",
                        r'^C: \S+ SELECT "?Junk"?$', r"^C: \S+ UID SEARCH", r'^C: \S+ SELECT "?INBOX"?$',
                        r"^C: \S+ UID SEARCH", r"^C: \S+ IDLE$", r"^S: \* \d+ EXISTS", r"^C: DONE$",
                        r"^C: \S+ UID SEARCH", r"^C: \S+ UID FETCH"])
check(n == 1 and miss is None, f"grey: NOTIFY SET, IDLE, * STATUS Junk, DONE, SELECT Junk, UID SEARCH, "
      f"SELECT INBOX, UID SEARCH, IDLE, * EXISTS, DONE, UID SEARCH, UID FETCH (missing: {miss})")
m = re.search(r'^C: \S+ SELECT "?Junk"?$(.*?)^C: \S+ SELECT "?INBOX"?$', tr or "", re.M | re.S)
check(m is not None and not re.search(r"^C: \S+ UID (STORE|EXPUNGE|MOVE|COPY)", m.group(1), re.M),
      "grey: nothing touched in the spam folder (no STORE, EXPUNGE, MOVE or COPY while it was selected)")
check(open(os.path.join(T, "grey.userjunk")).read().strip() == "Junk",
      "grey: the user's message is still in Junk")
print("done")
PY
cat "$T/checks.out"
grep -q "^not ok" "$T/checks.out" && exit 1
grep -q "^done" "$T/checks.out" || exit 1
exit 0
