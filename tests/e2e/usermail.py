#!/usr/bin/env python3
"""A seed owner's own mail for the proof-before-action tests (stdlib only).

    usermail.py plant HOST PORT CAFILE USER PASSFILE FOLDER TOKEN FROM
        APPEND to FOLDER what users do with a probe whose token is TOKEN
        (FROM: the probe's From): a reply "Re: inboxprobe TOKEN", a forward
        quoting the probe's header in its body, a message whose client
        copied the X-Inboxprobe-Token field (flagged \\Deleted: a plain
        EXPUNGE would remove it), a forward as attachment (message/rfc822
        holding the whole probe), and a "[SPAM]"-rewritten subject. Each
        carries X-Test-Id and its own flags. Prints one line per message.
    usermail.py snap HOST PORT CAFILE USER PASSFILE FOLDER...
        One line per message carrying X-Test-Id in those folders:
        "ID FOLDER SHA256(BODY[]) FLAGS INTERNALDATE", sorted by ID. Two
        snaps are equal when every user message survived byte-identical,
        with its flags, in its folder.
    usermail.py bump HOST PORT CAFILE USER PASSFILE FOLDER TOKEN FROM
        Give the probe (as count finds it) a UID above the user's messages:
        UID MOVE it to a scratch folder and back (RFC 6851), bytes unchanged,
        so a client that stops at the first match meets the user's first.
    usermail.py dup HOST PORT CAFILE USER PASSFILE FOLDER TOKEN FROM
        APPEND a byte-identical copy of the probe to FOLDER (a relay that
        delivered it twice): both copies are the probe.
    usermail.py count HOST PORT CAFILE USER PASSFILE FOLDER TOKEN FROM
        How many messages of FOLDER are the probe: X-Inboxprobe-Token TOKEN,
        From FROM and no X-Test-Id.
Talks IMAP over TLS (imaplib) to the world's Dovecot, as a mail client would.
"""
import email.utils
import hashlib
import imaplib
import re
import ssl
import sys
import time


def connect(host, port, cafile, user, passfile):
    ctx = ssl.create_default_context(cafile=cafile)
    c = imaplib.IMAP4_SSL(host, int(port), ssl_context=ctx)
    with open(passfile, encoding="utf-8") as f:
        pw = f.readline().rstrip("\r\n")
    c.login(user, pw)
    return c


def quote(folder):
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def user_messages(user, token, probe_from):
    date = email.utils.formatdate(localtime=False)
    probe = ("From: %s\r\nTo: %s\r\nDate: %s\r\nMessage-ID: <%s@sender.test>\r\n"
             "Subject: inboxprobe %s\r\nX-Inboxprobe-Token: %s\r\n\r\nprobe %s\r\n"
             % (probe_from, user, date, token, token, token, token))
    out = []
    out.append(("reply", r"(\Seen \Answered)",
                "From: Colleague <colleague@example.test>\r\nTo: %s\r\nDate: %s\r\n"
                "Subject: Re: inboxprobe %s\r\nIn-Reply-To: <%s@sender.test>\r\n"
                "References: <%s@sender.test>\r\nX-Test-Id: reply\r\n\r\n"
                "What is this?\r\n\r\n> X-Inboxprobe-Token: %s\r\n> probe %s\r\n"
                % (user, date, token, token, token, token, token)))
    out.append(("forward", r"(\Seen \Flagged)",
                "From: Seed Owner <%s>\r\nTo: %s\r\nDate: %s\r\nSubject: Fwd: inboxprobe %s\r\n"
                "X-Test-Id: forward\r\n\r\n---------- Forwarded message ---------\r\n%s"
                % (user, user, date, token, probe)))
    out.append(("copied-header", r"(\Deleted \Seen)",
                "From: friend@example.test\r\nTo: %s\r\nDate: %s\r\nSubject: about %s\r\n"
                "X-Inboxprobe-Token: %s\r\nX-Test-Id: copied-header\r\n\r\nmine, flagged \\Deleted\r\n"
                % (user, date, token, token)))
    out.append(("attached", r"($Forwarded)",
                "From: Seed Owner <%s>\r\nTo: %s\r\nDate: %s\r\nSubject: Fwd: inboxprobe %s\r\n"
                "X-Test-Id: attached\r\nMIME-Version: 1.0\r\n"
                "Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
                "--b1\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
                "--b1\r\nContent-Type: message/rfc822\r\n\r\n%s--b1--\r\n"
                % (user, user, date, token, probe)))
    out.append(("rewritten", r"()",
                "From: Colleague <colleague@example.test>\r\nTo: %s\r\nDate: %s\r\n"
                "Subject: [SPAM] Re: inboxprobe %s\r\nX-Test-Id: rewritten\r\n\r\nfiltered\r\n"
                % (user, date, token)))
    return out


def plant(a):
    host, port, ca, user, pf, folder, token, probe_from = a
    c = connect(host, port, ca, user, pf)
    for (tid, flags, text) in user_messages(user, token, probe_from):
        typ, data = c.append(quote(folder), flags, imaplib.Time2Internaldate(time.time()),
                             text.encode())
        if typ != "OK":
            sys.exit("APPEND %s: %s %s" % (tid, typ, data))
        print("planted", tid, folder)
    c.logout()


def snap(a):
    host, port, ca, user, pf = a[:5]
    c = connect(host, port, ca, user, pf)
    rows = []
    for folder in a[5:]:
        typ, _ = c.select(quote(folder), readonly=True)
        if typ != "OK":
            sys.exit("SELECT %s failed" % folder)
        typ, data = c.uid("SEARCH", None, "HEADER", "X-Test-Id", '""')
        for uid in (data[0] or b"").split():
            typ, d = c.uid("FETCH", uid, "(FLAGS INTERNALDATE BODY.PEEK[])")
            meta = b"".join(x[0] if isinstance(x, tuple) else x for x in d)
            body = next(x[1] for x in d if isinstance(x, tuple))
            tid = re.search(rb"X-Test-Id: (\S+)", body).group(1).decode()
            # \Recent is per session (RFC 3501 2.3.2), not the message's
            flags = " ".join(sorted(f for f in re.search(rb"FLAGS \(([^)]*)\)", meta).group(1)
                                    .decode().split() if f != "\\Recent"))
            idate = re.search(rb'INTERNALDATE "([^"]+)"', meta).group(1).decode()
            rows.append("%s %s %s [%s] %s" % (tid, folder, hashlib.sha256(body).hexdigest(),
                                             flags, idate))
    c.logout()
    for r in sorted(rows):
        print(r)


def probe_uids(c, folder, token, probe_from):
    c.select(quote(folder))
    typ, data = c.uid("SEARCH", None, "HEADER", "X-Inboxprobe-Token", token,
                      "HEADER", "From", probe_from, "NOT", "HEADER", "X-Test-Id", '""')
    return (data[0] or b"").split()


def bump(a):
    host, port, ca, user, pf, folder, token, probe_from = a
    c = connect(host, port, ca, user, pf)
    c.create("bump-scratch")
    for uid in probe_uids(c, folder, token, probe_from):
        typ, data = c.uid("MOVE", uid, "bump-scratch")
        if typ != "OK":
            sys.exit("UID MOVE %s: %s %s" % (uid, typ, data))
    c.select("bump-scratch")
    typ, data = c.uid("SEARCH", None, "ALL")
    for uid in (data[0] or b"").split():
        typ, d = c.uid("MOVE", uid, quote(folder))
        if typ != "OK":
            sys.exit("UID MOVE back %s: %s %s" % (uid, typ, d))
    c.select("INBOX")
    c.delete("bump-scratch")
    c.logout()


def dup(a):
    host, port, ca, user, pf, folder, token, probe_from = a
    c = connect(host, port, ca, user, pf)
    uids = probe_uids(c, folder, token, probe_from)
    if len(uids) != 1:
        sys.exit("dup: %d probes with that token" % len(uids))
    typ, d = c.uid("FETCH", uids[0], "(BODY.PEEK[])")
    body = next(x[1] for x in d if isinstance(x, tuple))
    typ, data = c.append(quote(folder), None, imaplib.Time2Internaldate(time.time()), body)
    if typ != "OK":
        sys.exit("APPEND copy: %s %s" % (typ, data))
    c.logout()


def count(a):
    host, port, ca, user, pf, folder, token, probe_from = a
    c = connect(host, port, ca, user, pf)
    c.select(quote(folder), readonly=True)
    typ, data = c.uid("SEARCH", None, "HEADER", "X-Inboxprobe-Token", token,
                      "HEADER", "From", probe_from, "NOT", "HEADER", "X-Test-Id", '""')
    print(len((data[0] or b"").split()))
    c.logout()


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"plant": plant, "snap": snap, "count": count, "bump": bump, "dup": dup}[cmd](args)
