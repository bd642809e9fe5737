#!/usr/bin/env python3
"""A scripted IMAP server for inboxprobe's tests (python3 stdlib only).

    imap_peer.py SCENARIO [--record FILE] [--stats FILE] [--mailbox FILE] [--lifetime SECONDS]

Listens on 127.0.0.1, port 0, prints the port on stdout (one line), then
serves connections (one thread per connection) until --lifetime seconds
pass (default 30). Every command line received is appended to --record
FILE (literals inlined as quoted strings), so a test can check what reached
the server, and what did not (e.g. that no LOGIN or plain EXPUNGE was sent).
--stats FILE is rewritten (JSON) whenever a connection opens, logs in or
closes: {"max": N, "active": N, "connections": N, "logins": {USER: N},
"max_per_user": {USER: N}, "first_login": {USER: seconds since the
peer started}}.

Scenarios:
  bye          BYE right after SELECT, then the connection drops
  fallback     UID SEARCH HEADER answers empty; UID SEARCH SINCE + UID FETCH
               return UIDs 7 and 9, only 9 carries the token (TOKEN below)
  unavailable  LOGIN -> NO [UNAVAILABLE] Too many simultaneous connections
  authapp      LOGIN -> NO [ALERT] Application-specific password required
  authfail     LOGIN -> NO [AUTHENTICATIONFAILED] Authentication failed.
  stall        greeting, then never answers
  list         LIST without special-use flags, localized names ('.' delimiter)
  garbled      UID SEARCH answered with an unparsable untagged line
  nostarttls   CAPABILITY without STARTTLS (a client requiring TLS must
               not send LOGIN)
  bigline      greeting "* OK " followed by an endless line, sent as fast as
               the client reads (a client must cut it off, bounded in time
               and memory)
  biglit       normal server; UID SEARCH answers UID 9 and UID FETCH answers
               a literal announced as {100000000}, streamed without end
  existsflood  normal server; SELECT is answered by an endless stream of
               "* N EXISTS" lines, as fast as the client reads (libetpan keeps
               each parsed untagged response: the budget of a non-FETCH
               command must stop it early)
  trickle      greeting "* OK " followed by an endless line at ~50 KB/s (the
               socket keeps getting data: the per-command timeout must hold)
  silenttls    accepts TCP and never sends a byte (a TLS client waits for
               the ServerHello; the handshake must be bounded by the timeout)
  manyuids     UID SEARCH HEADER names UIDs 1..1000 for any token (a hostile
               server); UID FETCH answers as in fallback
  ctrlnames    LIST names with control characters: "Spam&AAA-Trap" (U+0000
               in modified UTF-7), "Junk&ABs-" (ESC), a literal name with a raw
               ESC byte "Esc\x1b[31mRed", a raw DEL "Del\x7fX", raw UTF-8
               "Caf\xc3\xa9", and INBOX; no special-use flags
Cleanup scenarios (docs/SPEC.md "Cleanup"): folders hold UIDs 7 and 9 (UIDVALIDITY
42); UID SEARCH for a 32+ hex-digit token in the scenario's "hit" folder
answers UID 9, and UID FETCH returns, for every UID asked for, the header
of a probe (From: probe@example.test) carrying the token last searched for
(TOKEN before any search), so a round with a random token finds its probe;
elsewhere SEARCH answers nothing. Commands
the capabilities do not allow (UID MOVE without MOVE, UID EXPUNGE without
UIDPLUS, XLIST without XLIST) get BAD; COPY/MOVE to an unknown folder gets
NO [TRYCREATE]; SELECT of an unknown folder gets NO [NONEXISTENT].
  gmail            X-GM-EXT-1 XLIST UIDPLUS MOVE, no SPECIAL-USE: XLIST
                   answers \\Inbox, \\Spam [Gmail]/Spam, \\Trash [Gmail]/Trash,
                   \\AllMail; LIST answers the same names without attributes;
                   hit folder INBOX
  gmail-nomove     the same without MOVE
  gmail-xlistbad   like gmail, but XLIST (still announced) answers BAD
  nouidplus-nomove IMAP4rev1 only; LIST: INBOX, Junk, Trash (no attributes)
  nouidplus-move   MOVE but no UIDPLUS; same LIST
  uidplus          UIDPLUS but no MOVE; same LIST; INBOX holds UIDs 7, 9, 12
  uidvalidity      UIDPLUS MOVE; SELECT answers UIDVALIDITY 1700000001
  localized        UIDPLUS MOVE; LIST ('.' delimiter, no attributes): INBOX,
                   "INBOX.Courrier ind&AOk-sirable", Papierkorb, Archive;
                   hit folder "INBOX.Courrier ind&AOk-sirable"
  count            any LOGIN succeeds; LIST: INBOX and Junk (\\Junk);
                   SEARCH answers nothing; see --stats
Failed-cleanup scenarios (issue 12: a failed cleanup keeps the probe
pending): one mailbox shared by every connection, INBOX, Junk and Trash
(UIDVALIDITY 42). A UID SEARCH in INBOX that names a 32+ hex-digit token
never seen before delivers a probe with that token (From probe@example.test)
as the next UID, so each round's probe "arrives"; SEARCH answers the UIDs
whose token it names; UID FETCH returns their headers. UID STORE +FLAGS
(\\Deleted), UID EXPUNGE, UID COPY and UID MOVE work on the mailbox, except
that the scenario's command fails: "drop" closes the connection without a
reply, the first two times it is sent (the command, and its retry after the
client's one reconnect), "no" answers NO, the first time. --mailbox FILE is rewritten
(JSON {folder: {uid: token}}) after every change.
  fault-drop-store fault-no-store fault-drop-expunge fault-no-expunge
                   UIDPLUS, no MOVE (delete: UID STORE then UID EXPUNGE)
  fault-drop-copy  UIDPLUS, no MOVE (trash: UID COPY, STORE, UID EXPUNGE)
  fault-drop-move fault-no-move
                   UIDPLUS MOVE (trash: UID MOVE)
  gmail-tabs       like gmail; the probe (UID 9) sits in the Promotions tab:
                   UID SEARCH UID 9 X-GM-RAW "category:promotions" answers 9,
                   the other categories nothing (Gmail's replies); UID FETCH
                   9 BODY.PEEK[HEADER] answers a Gmail-shaped header (below)
  gmail-notabs     the same with categories turned off: no category matches
In the gmail scenarios, UID FETCH 9 (BODY.PEEK[HEADER]<0.N>) answers
GMAIL_HEADER: Gmail's inner hop "by 2002:a05:...", its MX hop "by
mx.google.com", the relay's own hop "by relay.example.test (Postfix) ...
id 4XyZ1B2c3Dz" (tests/peers/smtp_peer.py's queue id), Gmail's
Authentication-Results (mx.google.com: dkim, spf, dmarc pass) above it, and
below it a sender-forged "Authentication-Results: mx.google.com; dkim=fail"
and an ARC-Authentication-Results, neither of which may count. Hop dates:
relay now-7 s, MX now-2 s, inner now.
"""
import json
import os
import re
import socket
import socketserver
import sys
import threading
import time

import peerlib
from peerlib import HEXTOK, MONTHS, astring, internaldate_now, options, serve_for, split_command

TOKEN = "0123456789abcdef0123456789abcdef"
FROM = "probe@example.test"   # the From of every message the peer serves (the tests' relay.from)
OTHER = "fedcba9876543210fedcba9876543210"

CAPS = "IMAP4rev1 UIDPLUS MOVE"

OLD = ("bye", "fallback", "unavailable", "authapp", "authfail", "stall", "list", "garbled",
       "nostarttls", "bigline", "biglit", "trickle", "silenttls", "ctrlnames", "manyuids",
       "existsflood")

CHUNK = b"x" * 65536

STD_LIST = [('()', "/", "INBOX"), ('()', "/", "Junk"), ('()', "/", "Trash")]
GMAIL_XLIST = [
    ("(\\HasNoChildren \\Inbox)", "/", "Inbox"),
    ("(\\Noselect \\HasChildren)", "/", "[Gmail]"),
    ("(\\HasNoChildren \\AllMail)", "/", "[Gmail]/All Mail"),
    ("(\\HasNoChildren \\Drafts)", "/", "[Gmail]/Drafts"),
    ("(\\HasNoChildren \\Sent)", "/", "[Gmail]/Sent Mail"),
    ("(\\HasNoChildren \\Spam)", "/", "[Gmail]/Spam"),
    ("(\\HasNoChildren \\Trash)", "/", "[Gmail]/Trash"),
]
GMAIL_LIST = [("()", "/", "INBOX")] + [("()", d, n) for (_, d, n) in GMAIL_XLIST[1:]]

# name -> capabilities, LIST, XLIST, UIDVALIDITY, hit folder, INBOX UIDs
SCEN = {
    "gmail": dict(caps="IMAP4rev1 UIDPLUS MOVE XLIST X-GM-EXT-1 ID", list=GMAIL_LIST,
                  xlist=GMAIL_XLIST, hit="INBOX"),
    "gmail-tabs": dict(caps="IMAP4rev1 UIDPLUS MOVE XLIST X-GM-EXT-1 ID", list=GMAIL_LIST,
                       xlist=GMAIL_XLIST, hit="INBOX", tab="promotions"),
    "gmail-notabs": dict(caps="IMAP4rev1 UIDPLUS MOVE XLIST X-GM-EXT-1 ID", list=GMAIL_LIST,
                         xlist=GMAIL_XLIST, hit="INBOX", tab=None),
    "gmail-nomove": dict(caps="IMAP4rev1 UIDPLUS XLIST X-GM-EXT-1 ID", list=GMAIL_LIST,
                         xlist=GMAIL_XLIST, hit="INBOX"),
    "gmail-xlistbad": dict(caps="IMAP4rev1 UIDPLUS MOVE XLIST X-GM-EXT-1 ID", list=GMAIL_LIST,
                           xlist=GMAIL_XLIST, hit="INBOX", xlist_bad=True),
    "nouidplus-nomove": dict(caps="IMAP4rev1", list=STD_LIST, hit="INBOX"),
    "nouidplus-move": dict(caps="IMAP4rev1 MOVE", list=STD_LIST, hit="INBOX"),
    "uidplus": dict(caps="IMAP4rev1 UIDPLUS", list=STD_LIST, hit="INBOX", uids=[7, 9, 12]),
    "uidvalidity": dict(caps="IMAP4rev1 UIDPLUS MOVE", list=STD_LIST, hit="INBOX",
                        uidvalidity=1700000001),
    "localized": dict(caps="IMAP4rev1 UIDPLUS MOVE",
                      list=[("(\\HasChildren)", ".", "INBOX"),
                            ("()", ".", "INBOX.Courrier ind&AOk-sirable"),
                            ("()", ".", "Papierkorb"),
                            ("()", ".", "Archive")],
                      hit="INBOX.Courrier ind&AOk-sirable"),
    "count": dict(caps="IMAP4rev1 UIDPLUS MOVE", list=[("(\\HasNoChildren)", "/", "INBOX"),
                                                       ("(\\HasNoChildren \\Junk)", "/", "Junk")],
                  hit=None),
}



def rfc5322_date(t):
    g = time.gmtime(t)
    return "%s, %d %s %04d %02d:%02d:%02d +0000" % (
        ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[g.tm_wday], g.tm_mday,
        MONTHS[g.tm_mon - 1], g.tm_year, g.tm_hour, g.tm_min, g.tm_sec)


def gmail_header(token):
    """A delivered probe's header in the shape Gmail writes (see the
    scenario notes; shapes from public samples cited in
    tests/unit/test_authres.c)."""
    now = time.time()
    return ("Delivered-To: seed@gmail.example\r\n"
            "Received: by 2002:a05:6a10:8e0a:b0:5a1:2c3e:1f90 with SMTP id ab10csp123456pxb;\r\n"
            "        %s\r\n"
            "ARC-Authentication-Results: i=1; mx.google.com;\r\n"
            "       dkim=fail header.i=@example.test\r\n"
            "Return-Path: <probe@example.test>\r\n"
            "Received: from relay.example.test (relay.example.test. [192.0.2.25])\r\n"
            "        by mx.google.com with ESMTPS id s8si1925252pji.72.2026.12.01.23.11.48\r\n"
            "        for <seed@gmail.example>\r\n"
            "        (version=TLS1_3 cipher=TLS_AES_256_GCM_SHA384 bits=256/256);\r\n"
            "        %s\r\n"
            "Received-SPF: pass (google.com: domain of probe@example.test designates 192.0.2.25 as permitted sender) client-ip=192.0.2.25;\r\n"
            "Authentication-Results: mx.google.com;\r\n"
            "       dkim=pass header.i=@example.test header.s=sel1 header.b=AbCdEf12;\r\n"
            "       spf=pass (google.com: domain of probe@example.test designates 192.0.2.25 as permitted sender) smtp.mailfrom=probe@example.test;\r\n"
            "       dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example.test\r\n"
            "Received: from client.example.test (unknown [127.0.0.1])\r\n"
            "\tby relay.example.test (Postfix) with ESMTPSA id 4XyZ1B2c3Dz\r\n"
            "\tfor <seed@gmail.example>; %s\r\n"
            "Authentication-Results: mx.google.com; dkim=fail (forged by the sender) header.d=example.test\r\n"
            "From: %s\r\n"
            "X-Inboxprobe-Token: %s\r\n"
            "Subject: inboxprobe %s\r\n"
            "\r\n" % (rfc5322_date(now), rfc5322_date(now - 2), rfc5322_date(now - 7), FROM, token,
                       token))


def quote(name):
    if re.fullmatch(r"[A-Za-z0-9._&/\-]+", name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def uid_set(s):
    """UIDs named by a sequence set like 9 or 7,9 or 7:12 (no '*')."""
    out = set()
    for part in s.split(","):
        if ":" in part:
            a, b = part.split(":", 1)
            if a.isdigit() and b.isdigit():
                lo, hi = sorted((int(a), int(b)))
                out.update(range(lo, hi + 1))
        elif part.isdigit():
            out.add(int(part))
    return out


class Handler(socketserver.StreamRequestHandler):
    timeout = 20

    def send(self, s):
        self.wfile.write(s.encode("utf-8", "surrogateescape") + b"\r\n")
        self.wfile.flush()

    def record(self, line):
        if self.server.record:
            with self.server.lock:
                with open(self.server.record, "a", encoding="utf-8", errors="replace") as f:
                    f.write(line + "\n")

    def readline(self):
        raw = self.rfile.readline(65536)
        if not raw:
            return None
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        # synchronizing literal {n}: ask for it and read it
        while line.endswith("}") and "{" in line:
            n = line[line.rindex("{") + 1:-1].rstrip("+")
            if not n.isdigit():
                break
            if not line[line.rindex("{") + 1:-1].endswith("+"):
                self.send("+ go ahead")
            lit = self.rfile.read(int(n)).decode("utf-8", "replace")
            rest = self.rfile.readline(65536).decode("utf-8", "replace").rstrip("\r\n")
            line = line[:line.rindex("{")] + '"' + lit + '"' + rest
        self.record(line)
        return line

    def handle(self):
        self.user = None
        self.server.conn_event(self, +1)
        try:
            if self.server.scenario in OLD:
                self.serve()
            elif self.server.scenario in FAULTS:
                serve_faulty(self, self.server.scenario)
            else:
                self.serve_scripted(SCEN[self.server.scenario])
        except (ConnectionError, OSError):
            pass   # the client went away: that is what several scenarios test
        finally:
            self.server.conn_event(self, -1)

    # ---- the scripted servers of the cleanup scenarios ----
    def serve_scripted(self, sc):
        caps = sc["caps"]
        capset = set(caps.upper().split())
        folders = {n for (_, _, n) in sc["list"]} | {n for (_, _, n) in sc.get("xlist", [])}
        folders.discard("[Gmail]")
        folders.add("INBOX")
        uidvalidity = sc.get("uidvalidity", 42)
        inbox_uids = sc.get("uids", [7, 9])
        selected, uids, token = None, [], None
        self.send("* OK [CAPABILITY %s] peer ready" % caps)
        while True:
            line = self.readline()
            if line is None:
                return
            c = split_command(line)
            if c is None:
                self.send("* BAD no tag")
                continue
            tag, cmd, args = c
            need = {"UID MOVE": "MOVE", "MOVE": "MOVE", "UID EXPUNGE": "UIDPLUS", "XLIST": "XLIST"}
            if (cmd in need and need[cmd] not in capset) or (cmd == "XLIST" and sc.get("xlist_bad")):
                self.send("%s BAD %s not supported" % (tag, cmd))
                continue
            if cmd == "CAPABILITY":
                self.send("* CAPABILITY %s" % caps)
                self.send("%s OK done" % tag)
            elif cmd == "LOGIN":
                self.user, _ = astring(args)
                self.server.login_event(self)
                self.send("%s OK [CAPABILITY %s] logged in" % (tag, caps))
            elif cmd == "LOGOUT":
                self.send("* BYE bye")
                self.send("%s OK logged out" % tag)
                return
            elif cmd == "NOOP":
                self.send("%s OK noop" % tag)
            elif cmd in ("LIST", "XLIST"):
                for (fl, d, n) in (sc["xlist"] if cmd == "XLIST" else sc["list"]):
                    self.send('* %s %s "%s" %s' % (cmd, fl, d, quote(n)))
                self.send("%s OK %s done" % (tag, cmd))
            elif cmd in ("SELECT", "EXAMINE"):
                name, _ = astring(args)
                if name.upper() == "INBOX":
                    name = "INBOX"
                if name not in folders:
                    selected = None
                    self.send("%s NO [NONEXISTENT] Mailbox doesn't exist: %s" % (tag, name))
                    continue
                selected = name
                uids = list(inbox_uids) if name == "INBOX" else [7, 9]
                self.send("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)")
                self.send("* %d EXISTS" % len(uids))
                self.send("* 0 RECENT")
                self.send("* OK [UIDVALIDITY %d] UIDs valid" % uidvalidity)
                # UID 9 is the probe: it arrives after the client armed
                # the folder, so UIDNEXT (what arming records) is 9
                self.send("* OK [UIDNEXT %d] next" % (9 if 9 in uids else max(uids) + 1))
                self.send("%s OK [READ-WRITE] selected" % tag)
            elif cmd == "STATUS":
                name, rest = astring(args)
                if name.upper() == "INBOX":
                    name = "INBOX"
                if name not in folders:
                    self.send("%s NO [NONEXISTENT] Mailbox doesn't exist: %s" % (tag, name))
                    continue
                self.send("* STATUS %s (UIDNEXT 9)" % quote(name))
                self.send("%s OK status done" % tag)
            elif selected is None and cmd not in ("ENABLE", "ID"):
                self.send("%s BAD no mailbox selected" % tag)
            elif cmd == "UID SEARCH" and "X-GM-RAW" in args.upper() and "X-GM-EXT-1" in capset:
                # Gmail: UID SEARCH UID 9 X-GM-RAW "category:promotions"
                m = re.search(r'category:(\w+)', args)
                want = uid_set(args.split(" ")[1]) if args.upper().startswith("UID ") else set(uids)
                if m and "tab" in sc and sc["tab"] == m.group(1) and 9 in want and 9 in uids:
                    self.send("* SEARCH 9")
                else:
                    self.send("* SEARCH")
                self.send("%s OK SEARCH completed (Success)" % tag)
            elif cmd == "UID SEARCH":
                m = HEXTOK.search(args)
                if m and sc["hit"] is not None and selected == sc["hit"] and 9 in uids:
                    token = m.group(1)
                    self.send("* SEARCH 9")
                else:
                    self.send("* SEARCH")
                self.send("%s OK search done" % tag)
            elif cmd == "UID FETCH" and "BODY.PEEK[HEADER]" in args.upper() and "X-GM-EXT-1" in capset:
                want = uid_set(args.split(" ", 1)[0])
                if token and 9 in want and 9 in uids:
                    hdr = gmail_header(token).encode()
                    # INTERNALDATE too: the token search's one FETCH asks for
                    # UID, INTERNALDATE and the whole header together
                    self.send('* %d FETCH (UID 9 INTERNALDATE "%s" BODY[HEADER]<0> {%d}'
                              % (uids.index(9) + 1, internaldate_now(), len(hdr)))
                    self.wfile.write(hdr + b")\r\n")
                self.send("%s OK Success" % tag)
            elif cmd == "UID FETCH":
                # every message is the probe of the token last searched
                # for (TOKEN before any search), from FROM
                want = uid_set(args.split(" ", 1)[0])
                for u in sorted(want & set(uids)):
                    hdr = "X-Inboxprobe-Token: %s\r\nFrom: %s\r\n\r\n" % (token or TOKEN, FROM)
                    self.send('* %d FETCH (UID %d INTERNALDATE "%s" '
                              'BODY[HEADER.FIELDS (X-Inboxprobe-Token From)] {%d}'
                              % (uids.index(u) + 1, u, internaldate_now(), len(hdr.encode())))
                    self.wfile.write(hdr.encode() + b")\r\n")
                self.send("%s OK fetch done" % tag)
            elif cmd in ("UID COPY", "UID MOVE"):
                setarg, _, rest = args.partition(" ")
                dest, _ = astring(rest)
                if dest.upper() == "INBOX":
                    dest = "INBOX"
                if dest not in folders:
                    self.send("%s NO [TRYCREATE] Mailbox doesn't exist: %s" % (tag, dest))
                    continue
                moved = sorted(uid_set(setarg) & set(uids))
                code = ""
                if moved and "UIDPLUS" in capset:
                    code = "[COPYUID %d %s %s] " % (uidvalidity, ",".join(map(str, moved)),
                                                   ",".join(str(100 + u) for u in moved))
                if cmd == "UID MOVE":
                    if code:
                        self.send("* OK %sMoved UIDs." % code)
                        code = ""
                    for u in moved:
                        self.send("* %d EXPUNGE" % (uids.index(u) + 1))
                        uids.remove(u)
                self.send("%s OK %s%s completed" % (tag, code, cmd))
            elif cmd in ("UID STORE", "STORE"):
                self.send("%s OK store completed" % tag)
            elif cmd in ("UID EXPUNGE", "EXPUNGE", "CLOSE"):
                # only what the test gave: a plain EXPUNGE or CLOSE is
                # recorded (and a test fails on it), not simulated
                if cmd == "UID EXPUNGE":
                    for u in sorted(uid_set(args.split(" ", 1)[0]) & set(uids)):
                        self.send("* %d EXPUNGE" % (uids.index(u) + 1))
                        uids.remove(u)
                if cmd == "CLOSE":
                    selected = None
                self.send("%s OK %s completed" % (tag, cmd))
            else:
                self.send("%s BAD unknown command" % tag)

    def stream_forever(self, chunk, pause):
        """Send chunk after chunk (no CRLF) until the client goes away or
        the peer's lifetime ends."""
        end = time.monotonic() + self.server.lifetime
        while time.monotonic() < end:
            self.wfile.write(chunk)
            self.wfile.flush()
            if pause:
                time.sleep(pause)

    # ---- the original scenarios ----
    def serve(self):
        sc = self.server.scenario
        if sc == "silenttls":
            time.sleep(self.server.lifetime)
            return
        if sc in ("bigline", "trickle"):
            self.wfile.write(b"* OK ")
            if sc == "bigline":
                self.stream_forever(CHUNK, 0)
            else:
                self.stream_forever(b"x" * 1024, 0.02)
            return
        caps = CAPS if sc != "nostarttls" else "IMAP4rev1 UIDPLUS"
        self.send("* OK [CAPABILITY %s] peer ready" % caps)
        if sc == "stall":
            time.sleep(self.server.lifetime)
            return
        selected = None
        while True:
            line = self.readline()
            if line is None:
                return
            c = split_command(line)
            if c is None:
                self.send("* BAD no tag")
                continue
            tag, cmd, args = c
            if cmd == "CAPABILITY":
                self.send("* CAPABILITY %s" % caps)
                self.send("%s OK done" % tag)
            elif cmd == "LOGIN":
                if sc == "unavailable":
                    self.send("%s NO [UNAVAILABLE] Too many simultaneous connections. (Failure)" % tag)
                elif sc == "authapp":
                    self.send("%s NO [ALERT] Application-specific password required: "
                              "https://support.example/apppasswords (Failure)" % tag)
                elif sc == "authfail":
                    self.send("%s NO [AUTHENTICATIONFAILED] Authentication failed." % tag)
                else:
                    self.send("%s OK [CAPABILITY %s] logged in" % (tag, caps))
            elif cmd == "LOGOUT":
                self.send("* BYE bye")
                self.send("%s OK logged out" % tag)
                return
            elif cmd == "NOOP":
                self.send("%s OK noop" % tag)
            elif cmd == "LIST":
                if sc == "ctrlnames":
                    self.send('* LIST () "/" INBOX')
                    self.send('* LIST () "/" "Spam&AAA-Trap"')
                    self.send('* LIST () "/" "Junk&ABs-"')
                    name = b"Esc\x1b[31mRed"
                    self.wfile.write(b'* LIST () "/" {%d}\r\n' % len(name) + name + b"\r\n")
                    name = b"Del\x7fX"
                    self.wfile.write(b'* LIST () "/" {%d}\r\n' % len(name) + name + b"\r\n")
                    self.wfile.write(b'* LIST () "/" "Caf\xc3\xa9"\r\n')
                elif sc == "list":
                    self.send('* LIST (\\HasChildren) "." INBOX')
                    self.send('* LIST (\\HasNoChildren) "." INBOX.Pourriel')
                    self.send('* LIST (\\HasNoChildren) "." INBOX.Papierkorb')
                    self.send('* LIST (\\HasNoChildren) "." "INBOX.Gel&APY-schte Elemente"')
                    self.send('* LIST (\\Noselect) "." Archive')
                else:
                    self.send('* LIST () "/" INBOX')
                self.send("%s OK list done" % tag)
            elif cmd in ("SELECT", "EXAMINE"):
                if sc == "bye":
                    self.send("* BYE server shutting down")
                    return
                if sc == "existsflood":
                    self.stream_forever(b"".join(b"* %d EXISTS\r\n" % (3 + i) for i in range(4096)), 0)
                    return
                selected = args
                self.send("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)")
                self.send("* 2 EXISTS")
                self.send("* 0 RECENT")
                self.send("* OK [UIDVALIDITY 42] UIDs valid")
                self.send("* OK [UIDNEXT 10] next")
                self.send("%s OK [READ-WRITE] selected" % tag)
            elif cmd == "UID SEARCH":
                if sc == "biglit":
                    self.send("* SEARCH 9")
                    self.send("%s OK search done" % tag)
                elif sc == "garbled":
                    self.send("* SEARCH 1 2 (((\x01garbage")
                    self.send("%s OK search done" % tag)
                elif sc == "manyuids":
                    self.send("* SEARCH " + " ".join(str(u) for u in range(1, 1001)))
                    self.send("%s OK search done" % tag)
                elif "HEADER" in args.upper():
                    self.send("* SEARCH")
                    self.send("%s OK search done" % tag)
                else:
                    self.send("* SEARCH 7 9")
                    self.send("%s OK search done" % tag)
            elif cmd == "UID FETCH" and sc == "biglit":
                self.wfile.write(b'* 2 FETCH (UID 9 INTERNALDATE "17-Jul-1996 02:44:25 -0700" '
                                 b'BODY[HEADER.FIELDS (X-Inboxprobe-Token From)] {100000000}\r\n')
                self.stream_forever(CHUNK, 0)
                return
            elif cmd == "UID FETCH":
                for seq, uid, tok in ((1, 7, OTHER + "0"), (2, 9, TOKEN)):
                    if str(uid) not in args.split(" ", 1)[0].split(","):
                        continue
                    hdr = ("X-Inboxprobe-Token: %s\r\nFrom: %s\r\n\r\n" % (tok, FROM))
                    self.send('* %d FETCH (UID %d INTERNALDATE "17-Jul-1996 02:44:25 -0700" '
                              'BODY[HEADER.FIELDS (X-Inboxprobe-Token From)] {%d}'
                              % (seq, uid, len(hdr.encode())))
                    self.wfile.write(hdr.encode() + b")\r\n")
                self.send("%s OK fetch done" % tag)
            else:
                self.send("%s BAD unknown command" % tag)


FAULTS = ("fault-drop-store", "fault-no-store", "fault-drop-expunge", "fault-no-expunge",
          "fault-drop-copy", "fault-drop-move", "fault-no-move")


class FaultyMailbox:
    """The mailbox the fault-* scenarios share between connections."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.path = path
        self.folders = {"INBOX": {}, "Junk": {}, "Trash": {}}
        self.deleted = set()
        self.seen = set()
        self.next_uid = 100
        self.failed = 0   # times the scenario's command failed

    def save(self):
        if self.path:
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                json.dump({k: {str(u): t for u, t in v.items()} for k, v in self.folders.items()},
                          f, sort_keys=True)
            os.replace(tmp, self.path)


def serve_faulty(h, scenario):
    """One connection of a fault-* scenario (h: the Handler)."""
    mb = h.server.mailbox
    how, what = scenario.split("-")[1], scenario.split("-")[2].upper()
    caps = "IMAP4rev1 UIDPLUS MOVE" if what == "MOVE" else "IMAP4rev1 UIDPLUS"
    selected = None
    h.send("* OK [CAPABILITY %s] peer ready" % caps)
    while True:
        line = h.readline()
        if line is None:
            return
        tag, cmd, args = split_command(line) or (line, "", "")
        with mb.lock:
            # a drop fails twice: the command and its retry after the one
            # reconnect inboxprobe allows; NO leaves the session, fails once
            if cmd == "UID " + what and mb.failed < (2 if how == "drop" else 1):
                mb.failed += 1
                if how == "drop":
                    return   # the connection drops: no reply at all
                h.send("%s NO [SERVERBUG] %s failed" % (tag, cmd))
                continue
            if cmd == "CAPABILITY":
                h.send("* CAPABILITY %s" % caps)
                h.send("%s OK done" % tag)
            elif cmd == "LOGIN":
                h.user, _ = astring(args)
                h.server.login_event(h)
                h.send("%s OK [CAPABILITY %s] logged in" % (tag, caps))
            elif cmd == "LOGOUT":
                h.send("* BYE bye")
                h.send("%s OK logged out" % tag)
                return
            elif cmd == "NOOP":
                h.send("%s OK noop" % tag)
            elif cmd == "LIST":
                h.send('* LIST () "/" INBOX')
                h.send('* LIST (\\Junk) "/" Junk')
                h.send('* LIST (\\Trash) "/" Trash')
                h.send("%s OK list done" % tag)
            elif cmd in ("SELECT", "EXAMINE"):
                name, _ = astring(args)
                selected = "INBOX" if name.upper() == "INBOX" else name
                if selected not in mb.folders:
                    selected = None
                    h.send("%s NO [NONEXISTENT] no such mailbox" % tag)
                    continue
                uids = sorted(mb.folders[selected])
                h.send("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)")
                h.send("* %d EXISTS" % len(uids))
                h.send("* OK [UIDVALIDITY 42] UIDs valid")
                h.send("* OK [UIDNEXT %d] next" % mb.next_uid)
                h.send("%s OK [READ-WRITE] selected" % tag)
            elif selected is None:
                h.send("%s BAD no mailbox selected" % tag)
            elif cmd == "UID SEARCH":
                toks = HEXTOK.findall(args)
                if selected == "INBOX":
                    for t in toks:
                        if t not in mb.seen:
                            mb.seen.add(t)
                            mb.folders["INBOX"][mb.next_uid] = t
                            mb.next_uid += 1
                    mb.save()
                found = [u for u, t in sorted(mb.folders[selected].items()) if t in toks]
                h.send("* SEARCH" + "".join(" %d" % u for u in found))
                h.send("%s OK search done" % tag)
            elif cmd == "UID FETCH":
                box = mb.folders[selected]
                uids = sorted(box)
                for u in sorted(uid_set(args.split(" ", 1)[0]) & set(box)):
                    hdr = "X-Inboxprobe-Token: %s\r\nFrom: %s\r\n\r\n" % (box[u], FROM)
                    h.send('* %d FETCH (UID %d INTERNALDATE "%s" '
                           'BODY[HEADER.FIELDS (X-Inboxprobe-Token From)] {%d}'
                           % (uids.index(u) + 1, u, internaldate_now(), len(hdr.encode())))
                    h.wfile.write(hdr.encode() + b")\r\n")
                h.send("%s OK fetch done" % tag)
            elif cmd in ("UID STORE", "UID EXPUNGE", "UID COPY", "UID MOVE"):
                box = mb.folders[selected]
                setarg, _, rest = args.partition(" ")
                hit = sorted(uid_set(setarg) & set(box))
                if cmd == "UID STORE":
                    mb.deleted.update((selected, u) for u in hit)
                elif cmd == "UID EXPUNGE":
                    uids = sorted(box)
                    for u in reversed(hit):
                        if (selected, u) in mb.deleted:
                            h.send("* %d EXPUNGE" % (uids.index(u) + 1))
                            del box[u]
                else:
                    dest, _ = astring(rest)
                    uids = sorted(box)
                    for u in hit:
                        mb.folders[dest][mb.next_uid] = box[u]
                        mb.next_uid += 1
                    if cmd == "UID MOVE":
                        for u in reversed(hit):
                            h.send("* %d EXPUNGE" % (uids.index(u) + 1))
                            del box[u]
                mb.save()
                h.send("%s OK %s completed" % (tag, cmd))
            else:
                h.send("%s BAD unknown command" % tag)


class Server(peerlib.Server):
    request_queue_size = 32

    def setup_stats(self, path):
        self.lock = threading.Lock()
        self.stats_path = path
        self.stats = {"max": 0, "active": 0, "connections": 0, "logins": {}, "max_per_user": {},
                      "first_login": {}}
        self.t0 = time.monotonic()
        self.active_user = {}

    def write_stats(self):
        if not self.stats_path:
            return
        tmp = self.stats_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.stats, f, sort_keys=True)
        os.replace(tmp, self.stats_path)

    def conn_event(self, h, delta):
        with self.lock:
            st = self.stats
            st["active"] += delta
            if delta > 0:
                st["connections"] += 1
            st["max"] = max(st["max"], st["active"])
            if delta < 0 and h.user is not None:
                self.active_user[h.user] -= 1
            self.write_stats()

    def login_event(self, h):
        with self.lock:
            st = self.stats
            u = h.user
            st["logins"][u] = st["logins"].get(u, 0) + 1
            st["first_login"].setdefault(u, round(time.monotonic() - self.t0, 2))
            self.active_user[u] = self.active_user.get(u, 0) + 1
            st["max_per_user"][u] = max(st["max_per_user"].get(u, 0), self.active_user[u])
            self.write_stats()


def main():
    args = sys.argv[1:]
    if not args or args[0] not in OLD + tuple(SCEN) + FAULTS:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    opt = options(args[1:], ("record", "stats", "mailbox"), __doc__)
    srv = Server(("127.0.0.1", 0), Handler)
    srv.scenario = args[0]
    srv.record = opt["record"]
    srv.lifetime = opt["lifetime"]
    srv.setup_stats(opt["stats"])
    srv.mailbox = FaultyMailbox(opt["mailbox"])
    serve_for(srv, opt["lifetime"])


if __name__ == "__main__":
    main()
