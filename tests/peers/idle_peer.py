#!/usr/bin/env python3
"""A scripted IMAP server for inboxprobe's IDLE and reconnect tests
(python3 stdlib only).

    idle_peer.py SCENARIO [--record FILE] [--stats FILE] [--lifetime SECONDS]

Listens on 127.0.0.1, port 0, prints the port (one line), serves each
connection in a thread until --lifetime (default 30 s). --record FILE gets
one line per command received: "<connection number> <tag> <command...>".
--stats FILE (JSON, rewritten on every event): {"connections": N,
"logins": N, "idle": N (IDLE commands), "exists_sent": N, "status_sent": N
(NOTIFY STATUS responses)}.

The mailbox: INBOX, Junk (\\Junk), Trash (\\Trash), each holding UIDs 1 and
2 (UIDNEXT 3). The probe "arrives" as UID 3 of its folder ARRIVE seconds
(0.3) after the first IDLE on that folder, or, when the client does not
IDLE there, after its first SELECT of it; clients idling on that folder
get "* 3 EXISTS" then. UID SEARCH naming a 32+ hex-digit token answers 3
once it arrived (and only in its folder); UID FETCH 3 returns that token
with our From. Capabilities: IMAP4rev1 UIDPLUS IDLE, unless said.

Scenarios:
  idle          the probe arrives in INBOX
  idle-spam     the probe arrives in Junk
  noidle        no IDLE capability (the client polls)
  idlebye       the first IDLE is ended by "* BYE Idle timeout" after 0.2 s
                and the connection closed; the probe arrives 0.3 s after
                the next IDLE
  drop-STEP     the first connection is closed without a word at STEP
  bye-STEP      the first connection gets "* BYE STEP failure (test)" at STEP
                and is closed; STEP is one of greeting capability login list
                select status idle search fetch store expunge
  expired       the first IDLE is ended by "* BYE Session invalidated -
                AccessTokenExpired" (Exchange Online's words); the second
                connection drops at its first UID SEARCH
  refused       the first two connections are closed before the greeting
  specialuse    capabilities add SPECIAL-USE LIST-EXTENDED; the spam folder
                is "Spam-Ordner" (not a known name): plain LIST gives no
                attributes, LIST "" "*" RETURN (SPECIAL-USE) gives \\Junk;
                the probe arrives there
  specialuse-bad  as specialuse, but LIST ... RETURN answers BAD and plain
                LIST carries the attributes
  starttls-no   STARTTLS answered "NO [UNAVAILABLE] TLS is down for
                maintenance (test)"
  notify-literal  capabilities add NOTIFY (RFC 5465); NOTIFY SET is accepted;
                the probe arrives in Junk and a client idling on INBOX with
                NOTIFY set gets "* STATUS {4}" and "Junk (MESSAGES 3 UIDNEXT 4)"
                (the name as a literal, as Dovecot sends some names)
  notify-status  as notify-literal, but NOTIFY SET STATUS is answered, before
                its OK, with "* STATUS Junk (MESSAGES 2 UIDNEXT 3 UIDVALIDITY
                42 UNSEEN 2)", as Dovecot 2.3.19 does (RFC 5465 3); notify-literal
                sends no such STATUS (a server that ignores the indicator)
  notify-status-other, -nouidnext, -zero, -dup, -case, -late  as
                notify-status, but the reply's STATUS is of INBOX (UIDNEXT
                99), has no UIDNEXT, has UIDNEXT 0, comes twice (UIDNEXT 3,
                then 2), names "junk" (UIDNEXT 99), or comes after the
                tagged OK (UIDNEXT 99); see NOTIFY_STATUS
  notify-bad    capabilities add NOTIFY, but NOTIFY SET is answered BAD; the
                probe arrives in Junk
  notify-huge   as notify-literal, but the first IDLE with NOTIFY set gets at
                once "* STATUS Junk (MESSAGES 2 UIDNEXT 4294967296)" (a
                UIDNEXT over 32 bits: no UIDNEXT); the probe arrives 0.3 s
                after the next IDLE
  notify-max    as notify-huge, but the early STATUS says "UIDNEXT 4294967295"
                (the largest UID there can be: a lie the client cannot tell
                apart), so the arrival's STATUS (UIDNEXT 4) is no new mail
  notify-uidvalidity  as notify-literal, but the first IDLE with NOTIFY set
                gets at once "* STATUS Junk (MESSAGES 2 UIDNEXT 900
                UIDVALIDITY 41)", and the arrival's STATUS carries UIDVALIDITY
                42 (Junk was recreated: its UIDs start anew)
  spam-recreated  the probe arrives in Junk, which was deleted and created
                again after the client armed it: STATUS Junk answers "UIDNEXT 50
                UIDVALIDITY 41" (the old folder), SELECT Junk "UIDVALIDITY 42"
                with the user's UIDs 1 and 2; the probe arrives as UID 3 and a
                user's message as UID 4 right after it. UID SEARCH honours a
                "UID n:*" range (RFC 3501 6.4.8: "*" is the largest UID, so
                "50:*" is "4:50" and skips the probe) and SINCE answers every
                UID; UID FETCH returns the user's messages (From
                user@example.org, no token) for UIDs 1, 2 and 4
  uidnext-max   the probe arrives in Junk; STATUS Junk answers "UIDNEXT
                4294967295 UIDVALIDITY 42" (a lie); the rest as spam-recreated
                (SELECT Junk's UIDVALIDITY 42 too): the probe arrives as UID
                3 and a user's message as UID 4; "UID 4294967295:*" is
                "4:4294967295" and skips the probe
  keeper-recreated  the probe does not arrive during the round: 5 s after
                the first IDLE, Junk is deleted and created again (STATUS and
                SELECT said UIDVALIDITY 41, now 42) holding the probe as UID 1
                and a user's message as UID 2 (UIDNEXT 3 before and after, so
                "UID 3:*" is "2:3" and skips the probe); UID SEARCH and UID
                FETCH honour UID ranges; INBOX and the old Junk hold the user's
                UIDs 1 and 2 (the daemon's kept sessions between rounds)
  expunge-race  0.3 s into the first IDLE on INBOX a user's mail arrives:
                "* 3 EXISTS"; the DONE is answered 1.5 s later, after "* 1
                EXPUNGE" (the user deleted a message) and the probe's
                arrival as sequence number 3 ("* 3 EXISTS"): an EXISTS read
                before the probe arrived with a sequence number covering it.
                --stats adds "arrived_unix", the arrival's time
  byeloop       as idle, but once the probe was expunged every IDLE is ended
                after 0.2 s by "* BYE Server shutting down (test)" and the
                connection closed: a server that takes each login and drops
                the session (the daemon's kept sessions between rounds)
  byeloop-expired  as byeloop, with Exchange Online's "* BYE Session
                invalidated - AccessTokenExpired" (a new login asked for)
  byehang       as byeloop, and every connection made after the probe was
                expunged gets no greeting (the server accepts and hangs)
  slowline      as idle, but once the probe was expunged every IDLE is
                answered by a line that never ends: "* OK " then one byte a
                second, no CRLF
  flood         as idle, but once the probe was expunged every IDLE is
                answered by an endless stream of "* N EXISTS" lines, as fast
                as the client reads them, until it closes the connection
"""
import json
import re
import socketserver
import sys
import threading
import time

from peerlib import HEXTOK, Server, astring, internaldate_now, options, serve_for, split_command

ARRIVE = 0.3
# notify-status*: the untagged STATUS lines answering NOTIFY SET STATUS
# before its OK (SPAM: the spam folder's name)
NOTIFY_STATUS = {
    "notify-status": ["SPAM (MESSAGES 2 UIDNEXT 3 UIDVALIDITY 42 UNSEEN 2)"],
    "notify-status-other": ["INBOX (MESSAGES 2 UIDNEXT 99)"],
    "notify-status-nouidnext": ["SPAM (MESSAGES 2 UIDVALIDITY 42)"],
    "notify-status-zero": ["SPAM (MESSAGES 2 UIDNEXT 0)"],
    "notify-status-dup": ["SPAM (MESSAGES 2 UIDNEXT 3)", "SPAM (MESSAGES 1 UIDNEXT 2)"],
    "notify-status-case": ["junk (MESSAGES 2 UIDNEXT 99)"],
    "notify-status-late": [],
}
# the scenarios whose Junk holds a user's message after the probe (UID 4)
# and whose UID SEARCH and UID FETCH honour UID ranges
RANGED = ("spam-recreated", "uidnext-max")
STEPS = ("greeting", "capability", "login", "list", "select", "status", "idle", "search",
         "fetch", "store", "expunge")


class State:
    def __init__(self, scenario):
        self.scenario = scenario
        self.lock = threading.Lock()
        self.conns = 0
        self.logins = 0
        self.idles = 0
        self.exists_sent = 0
        self.status_sent = 0
        self.arrived = None          # folder the probe is in, once arrived
        self.arrival_timer = None
        self.idlers = {}             # handler -> folder it idles on
        self.spam = "Spam-Ordner" if scenario.startswith("specialuse") else "Junk"
        self.target = self.spam if scenario in ("idle-spam", "specialuse", "specialuse-bad",
                                                "notify-literal", "notify-bad", "notify-huge",
                                                "notify-uidvalidity", "notify-max") + RANGED \
                                    or scenario.startswith("notify-status") \
            else "INBOX"
        self.stats_path = None
        self.record = None
        self.token = None            # the probe's token, from the first SEARCH naming one
        self.arrived_unix = None     # expunge-race: when the probe arrived
        self.recreated = False       # keeper-recreated: Junk was recreated (UIDVALIDITY 42)
        self.recreate_timer = None
        self.probe_gone = False      # keeper-recreated: the probe was expunged

    def write_stats(self):
        if self.stats_path:
            with open(self.stats_path + ".tmp", "w") as f:
                json.dump({"connections": self.conns, "logins": self.logins, "idle": self.idles,
                           "exists_sent": self.exists_sent, "status_sent": self.status_sent,
                           "arrived_unix": self.arrived_unix}, f)
            import os
            os.replace(self.stats_path + ".tmp", self.stats_path)

    def schedule_recreate(self, delay):
        """keeper-recreated: Junk recreated with the probe delay s from now (once)."""
        with self.lock:
            if self.recreate_timer is None:
                self.recreate_timer = threading.Timer(delay, self.recreate)
                self.recreate_timer.daemon = True
                self.recreate_timer.start()

    def recreate(self):
        with self.lock:
            self.recreated = True

    def schedule_arrival(self, folder, delay):
        """The probe arrives in its folder delay seconds from now (once);
        folder None: whatever folder the client watches."""
        with self.lock:
            if (folder is not None and folder != self.target) or self.arrival_timer is not None \
                    or self.arrived:
                return
            self.arrival_timer = threading.Timer(delay, self.arrive)
            self.arrival_timer.daemon = True
            self.arrival_timer.start()

    def arrive(self):
        with self.lock:
            self.arrived = self.target
            idlers = [h for h, f in self.idlers.items() if f == self.target]
            notified = [h for h, f in self.idlers.items() if f != self.target and h.notify]
            self.exists_sent += len(idlers)
            self.status_sent += len(notified)
            self.write_stats()
        for h in idlers:
            try:
                h.send("* 3 EXISTS")
                h.send("* 1 RECENT")
            except OSError:
                pass
        for h in notified:
            try:
                h.send("* STATUS {%d}" % len(self.target))
                h.send("%s (MESSAGES 3 UIDNEXT 4%s)" % (
                    self.target, " UIDVALIDITY 42" if self.scenario == "notify-uidvalidity" else ""))
            except OSError:
                pass


def kr_probe_there(st, folder):
    """keeper-recreated: the probe is UID 1 of folder."""
    return st.recreated and folder == st.spam and not st.probe_gone and st.token is not None


def kr_search(st, folder, args, token):
    """keeper-recreated: "* SEARCH ..." for a UID SEARCH of folder (UIDs 1
    and 2; the token names UID 1 of the recreated Junk; a "UID n:*" range
    limits it)."""
    if token:
        st.token = token.group(1)
    uids = [1, 2]
    hits = ([1] if kr_probe_there(st, folder) else []) if token else uids
    r = re.search(r"\bUID ([0-9*:,]+)", args)
    if r:
        hits = [u for u in hits if u in uid_set(r.group(1), uids)]
    return " ".join(["* SEARCH"] + [str(u) for u in hits])


def uids_of(st, folder):
    """RANGED scenarios: the UIDs in folder: 1 and 2, and once the probe
    arrived there 3 (the probe) and 4 (a user's message after it)."""
    return [1, 2, 3, 4] if st.arrived == folder and folder == st.spam else [1, 2]


def uid_set(text, uids):
    """The UIDs among uids that an RFC 3501 sequence set of UIDs names
    ("*" is the largest UID in use, so "50:*" with 4 the largest is 4:50)."""
    top = max(uids) if uids else 0
    out = set()
    for part in text.split(","):
        lo, _, hi = part.partition(":")
        try:
            a = top if lo == "*" else int(lo)
            b = a if not hi else (top if hi == "*" else int(hi))
        except ValueError:
            continue
        a, b = min(a, b), max(a, b)
        out.update(u for u in uids if a <= u <= b)
    return sorted(out)


def recreated_search(st, folder, args, token):
    """RANGED scenarios: "* SEARCH ..." for a UID SEARCH: the token names UID
    3 (the probe) once it arrived, SINCE names every UID; a "UID n:*"
    range limits either."""
    uids = uids_of(st, folder)
    hits = ([3] if 3 in uids else []) if token else uids
    r = re.search(r"\bUID ([0-9*:,]+)", args)
    if r:
        hits = [u for u in hits if u in uid_set(r.group(1), uids)]
    if token and hits:
        st.token = token.group(1)
    return " ".join(["* SEARCH"] + [str(u) for u in hits])


class Handler(socketserver.StreamRequestHandler):
    def send(self, s):
        with self.wlock:
            self.wfile.write(s.encode() + b"\r\n")
            self.wfile.flush()

    def user_fetch(self, args, selected):
        """RANGED scenarios: a user's message (no token) for each of UIDs 1,
        2 and 4 that a UID FETCH names."""
        for uid in uid_set(args.split(" ", 1)[0], uids_of(self.server.st, selected)):
            if uid == 3:
                continue
            hdr = "From: user@example.org\r\nSubject: hello %d\r\n\r\n" % uid
            self.send('* %d FETCH (UID %d INTERNALDATE "%s" BODY[HEADER.FIELDS '
                      '(X-Inboxprobe-Token Subject From)] {%d}'
                      % (uid, uid, internaldate_now(), len(hdr.encode())))
            with self.wlock:
                self.wfile.write(hdr.encode() + b")\r\n")
                self.wfile.flush()

    def kr_fetch(self, args, selected):
        """keeper-recreated: each of UIDs 1 and 2 a UID FETCH names: the
        probe (UID 1 of the recreated Junk) or a user's message."""
        st = self.server.st
        for uid in uid_set(args.split(" ", 1)[0], [1, 2]):
            if uid == 1 and kr_probe_there(st, selected):
                hdr = ("From: probe@example.test\r\nX-Inboxprobe-Token: %s\r\n"
                       "Subject: inboxprobe %s\r\n\r\n" % (st.token, st.token))
            else:
                hdr = "From: user@example.org\r\nSubject: hello %d\r\n\r\n" % uid
            self.send('* %d FETCH (UID %d INTERNALDATE "%s" BODY[HEADER.FIELDS '
                      '(X-Inboxprobe-Token Subject From)] {%d}'
                      % (uid, uid, internaldate_now(), len(hdr.encode())))
            with self.wlock:
                self.wfile.write(hdr.encode() + b")\r\n")
                self.wfile.flush()

    def fail_here(self, step):
        """True (and the connection ends) when this connection misbehaves at step."""
        sc = self.server.st.scenario
        if self.n != 1 or sc not in ("drop-" + step, "bye-" + step):
            return False
        if sc.startswith("bye-"):
            self.send("* BYE %s failure (test)" % step)
        raise ConnectionAbortedError()

    def handle(self):
        st = self.server.st
        self.wlock = threading.Lock()
        self.notify = False
        self.early = False
        with st.lock:
            st.conns += 1
            self.n = st.conns
            st.write_stats()
        try:
            self.serve()
        except (ConnectionError, OSError):
            pass
        finally:
            with st.lock:
                st.idlers.pop(self, None)

    def serve(self):
        st = self.server.st
        sc = st.scenario
        caps = "IMAP4rev1 UIDPLUS" + ("" if sc == "noidle" else " IDLE")
        if sc.startswith("specialuse"):
            caps += " SPECIAL-USE LIST-EXTENDED"
        if sc == "starttls-no":
            caps += " STARTTLS"
        if sc.startswith("notify"):
            caps += " NOTIFY"
        if sc == "refused" and self.n <= 2:
            return
        if sc == "byehang" and st.arrived == "gone":
            time.sleep(3600)
            return
        self.fail_here("greeting")
        if sc.endswith("-capability"):
            # no capabilities in the greeting: the client must ask (the
            # CAPABILITY step of the drop/bye scenarios)
            self.send("* OK idle peer ready")
        else:
            self.send("* OK [CAPABILITY %s] idle peer ready" % caps)
        selected = None
        while True:
            raw = self.rfile.readline(65536)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if st.record:
                with st.lock, open(st.record, "a") as f:
                    f.write("%d %s\n" % (self.n, line))
            c = split_command(line)
            if c is None:
                self.send("* BAD no tag")
                continue
            tag, cmd, args = c
            if cmd == "CAPABILITY":
                self.fail_here("capability")
                self.send("* CAPABILITY %s" % caps)
                self.send("%s OK done" % tag)
            elif cmd == "STARTTLS":
                self.send("%s NO [UNAVAILABLE] TLS is down for maintenance (test)" % tag)
            elif cmd == "LOGIN":
                self.fail_here("login")
                with st.lock:
                    st.logins += 1
                    st.write_stats()
                self.send("%s OK [CAPABILITY %s] logged in" % (tag, caps))
            elif cmd == "LOGOUT":
                self.send("* BYE bye")
                self.send("%s OK logged out" % tag)
                return
            elif cmd == "NOOP":
                self.send("%s OK noop" % tag)
            elif cmd == "NOTIFY" and (sc in ("notify-literal", "notify-huge", "notify-uidvalidity", "notify-max")
                                      or sc.startswith("notify-status")):
                self.notify = True
                if sc.startswith("notify-status") and args.upper().startswith("SET STATUS"):
                    for status in NOTIFY_STATUS[sc]:
                        self.send("* STATUS " + status.replace("SPAM", st.spam))
                self.send("%s OK NOTIFY completed" % tag)
                if sc == "notify-status-late":
                    self.send("* STATUS %s (MESSAGES 2 UIDNEXT 99)" % st.spam)
            elif cmd == "LIST":
                self.fail_here("list")
                ret = "RETURN" in args.upper()
                if ret and sc == "specialuse-bad":
                    self.send("%s BAD RETURN not supported here (test)" % tag)
                    continue
                attrs = ret or sc in ("specialuse-bad", "idle", "idle-spam", "spam-recreated", "uidnext-max", "keeper-recreated", "noidle", "idlebye", "expunge-race",
                                      "byeloop", "byeloop-expired", "byehang", "slowline", "flood",
                                      "notify-literal", "notify-bad",
                                      "notify-huge", "notify-uidvalidity", "notify-max") \
                    or sc.startswith(("drop-", "bye-", "refused", "notify-status"))
                self.send('* LIST (\\HasNoChildren) "/" INBOX')
                self.send('* LIST (\\HasNoChildren%s) "/" %s' % (" \\Junk" if attrs else "", st.spam))
                self.send('* LIST (\\HasNoChildren%s) "/" Trash' % (" \\Trash" if attrs else ""))
                self.send("%s OK list done" % tag)
            elif cmd == "STATUS":
                self.fail_here("status")
                name, _ = astring(args)
                if sc == "spam-recreated" and name == st.spam:
                    self.send("* STATUS %s (UIDNEXT 50 UIDVALIDITY 41)" % name)
                elif sc == "keeper-recreated" and name == st.spam:
                    self.send("* STATUS %s (UIDNEXT 3 UIDVALIDITY %d)" % (name, 42 if st.recreated else 41))
                elif sc == "uidnext-max" and name == st.spam:
                    self.send("* STATUS %s (UIDNEXT 4294967295 UIDVALIDITY 42)" % name)
                else:
                    self.send("* STATUS %s (UIDNEXT 3)" % name)
                self.send("%s OK status done" % tag)
            elif cmd in ("SELECT", "EXAMINE"):
                self.fail_here("select")
                name, _ = astring(args)
                name = "INBOX" if name.upper() == "INBOX" else name
                if name not in ("INBOX", st.spam, "Trash"):
                    self.send("%s NO [NONEXISTENT] no such folder" % tag)
                    continue
                selected = name
                there = st.arrived == name
                extra = 1 if there and sc in RANGED else 0   # the user's UID 4
                self.send("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)")
                self.send("* %d EXISTS" % ((3 if there else 2) + extra))
                self.send("* OK [UIDVALIDITY %d] UIDs valid" % (
                    41 if sc == "keeper-recreated" and name == st.spam and not st.recreated else 42))
                self.send("* OK [UIDNEXT %d] next" % ((4 if there else 3) + extra))
                self.send("%s OK [READ-WRITE] selected" % tag)
                if sc == "noidle":
                    st.schedule_arrival(name, ARRIVE)
            elif cmd == "IDLE":
                self.fail_here("idle")
                with st.lock:
                    st.idles += 1
                    st.idlers[self] = selected
                    st.write_stats()
                    nidle = st.idles
                self.send("+ idling")
                if sc == "idlebye" and nidle == 1:
                    time.sleep(0.2)
                    self.send("* BYE Idle timeout (test)")
                    return
                if sc.startswith(("byeloop", "byehang")) and st.arrived == "gone":
                    time.sleep(0.2)
                    self.send("* BYE Session invalidated - AccessTokenExpired" if sc == "byeloop-expired"
                              else "* BYE Server shutting down (test)")
                    return
                if sc == "slowline" and st.arrived == "gone":
                    with self.wlock:
                        self.wfile.write(b"* OK ")
                        self.wfile.flush()
                    while True:
                        time.sleep(1)
                        with self.wlock:
                            self.wfile.write(b"x")
                            self.wfile.flush()
                if sc == "flood" and st.arrived == "gone":
                    chunk = b"".join(b"* %d EXISTS\r\n" % (4 + i) for i in range(512))
                    while True:
                        with self.wlock:
                            self.wfile.write(chunk)
                            self.wfile.flush()
                early = sc in ("notify-huge", "notify-uidvalidity", "notify-max") and self.notify and not self.early
                if early:
                    # before the probe arrives (at the next IDLE): a STATUS
                    # whose UIDNEXT is over 32 bits, or of the folder before
                    # it was recreated
                    self.early = True
                    self.send("* STATUS %s (MESSAGES 2 %s)" % (st.spam, {
                        "notify-huge": "UIDNEXT 4294967296", "notify-max": "UIDNEXT 4294967295"}.get(
                            sc, "UIDNEXT 900 UIDVALIDITY 41")))
                if sc == "expired" and nidle == 1:
                    time.sleep(0.2)
                    self.send("* BYE Session invalidated - AccessTokenExpired")
                    return
                race = sc == "expunge-race" and nidle == 1
                if race:
                    time.sleep(ARRIVE)
                    self.send("* 3 EXISTS")   # a user's mail, not the probe
                elif sc == "keeper-recreated":
                    st.schedule_recreate(5.0)
                elif not early:
                    st.schedule_arrival(None, ARRIVE)
                done = self.rfile.readline(65536)
                with st.lock:
                    st.idlers.pop(self, None)
                if not done:
                    return
                if st.record:
                    with st.lock, open(st.record, "a") as f:
                        f.write("%d %s\n" % (self.n, done.decode("utf-8", "replace").rstrip("\r\n")))
                if race:
                    # the user deletes a message; the probe arrives as number 3
                    time.sleep(1.5)
                    self.send("* 1 EXPUNGE")
                    with st.lock:
                        st.arrived = "INBOX"
                        st.arrived_unix = time.time()
                        st.write_stats()
                    self.send("* 3 EXISTS")
                self.send("%s OK idle done" % tag)
            elif selected is None:
                self.send("%s BAD no mailbox selected" % tag)
            elif cmd == "UID SEARCH":
                self.fail_here("search")
                if sc == "expired" and self.n == 2:
                    return   # the connection drops: no reply
                m = HEXTOK.search(args)
                if sc == "keeper-recreated":
                    self.send(kr_search(st, selected, args, m))
                    self.send("%s OK search done" % tag)
                    continue
                if sc in RANGED:
                    self.send(recreated_search(st, selected, args, m))
                    self.send("%s OK search done" % tag)
                    continue
                if m and st.arrived == selected:
                    st.token = m.group(1)
                    self.send("* SEARCH 3")
                else:
                    self.send("* SEARCH")
                self.send("%s OK search done" % tag)
            elif cmd == "UID FETCH":
                self.fail_here("fetch")
                token = st.token
                if sc == "keeper-recreated":
                    self.kr_fetch(args, selected)
                    self.send("%s OK fetch done" % tag)
                    continue
                if sc in RANGED:
                    self.user_fetch(args, selected)
                fset = args.split(" ", 1)[0]
                if token and st.arrived == selected and (
                        3 in uid_set(fset, uids_of(st, selected)) if sc in RANGED
                        else "3" in re.split(r"[,:]", fset)):
                    hdr = ("From: probe@example.test\r\nX-Inboxprobe-Token: %s\r\n"
                           "Subject: inboxprobe %s\r\n\r\n" % (token, token))
                    self.send('* 3 FETCH (UID 3 INTERNALDATE "%s" BODY[HEADER.FIELDS '
                              '(X-Inboxprobe-Token Subject From)] {%d}'
                              % (internaldate_now(), len(hdr.encode())))
                    with self.wlock:
                        self.wfile.write(hdr.encode() + b")\r\n")
                        self.wfile.flush()
                self.send("%s OK fetch done" % tag)
            elif cmd == "UID STORE":
                self.fail_here("store")
                self.send("%s OK store done" % tag)
            elif cmd == "UID EXPUNGE":
                self.fail_here("expunge")
                if sc == "keeper-recreated" and kr_probe_there(st, selected) and \
                        1 in uid_set(args.split(" ")[0], [1, 2]):
                    self.send("* 1 EXPUNGE")
                    st.probe_gone = True
                if st.arrived == selected and "3" in args:
                    self.send("* 3 EXPUNGE")
                    st.arrived = "gone"
                self.send("%s OK expunge done" % tag)
            else:
                self.send("%s BAD unknown command (test)" % tag)


def main():
    args = sys.argv[1:]
    valid = ("idle", "idle-spam", "noidle", "idlebye", "expired", "refused", "specialuse", "specialuse-bad",
             "starttls-no", "notify-literal", "notify-status", "notify-bad", "notify-huge", "notify-uidvalidity", "notify-max", "expunge-race", "keeper-recreated") + RANGED + tuple(NOTIFY_STATUS) + ("byeloop", "byeloop-expired", "byehang", "slowline", "flood") + tuple("%s-%s" % (k, s) for k in ("drop", "bye") for s in STEPS)
    if not args or args[0] not in valid:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    st = State(args[0])
    opt = options(args[1:], ("record", "stats"), __doc__)
    st.record, st.stats_path = opt["record"], opt["stats"]
    srv = Server(("127.0.0.1", 0), Handler)
    srv.st = st
    st.write_stats()
    serve_for(srv, opt["lifetime"])


if __name__ == "__main__":
    main()
