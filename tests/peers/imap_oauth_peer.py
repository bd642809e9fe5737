#!/usr/bin/env python3
"""A scripted IMAP server for SASL XOAUTH2 / OAUTHBEARER refusals (stdlib only).

    imap_oauth_peer.py SCENARIO --record FILE [--lifetime SECONDS]

Listens on 127.0.0.1 (plain text), prints the port, serves until --lifetime.
Every line the client sends is appended to --record FILE, base64 responses
decoded after " => " with \\x01 shown as ^A, so a test sees the exact bytes.
The token "good-token" is accepted; any other is refused.

  gmail      CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER. A refused
             token gets Gmail's challenge, base64 of
             {"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"}
             (developers.google.com/gmail/imap/xoauth2-protocol, "Error response");
             the client must answer it (XOAUTH2: an empty line; OAUTHBEARER:
             "AQ==", RFC 7628 3.2.3) before the tagged NO comes. Any other
             answer gets BAD.
  microsoft  CAPABILITY IMAP4rev1 AUTH=XOAUTH2 (no SASL-IR, no OAUTHBEARER),
             as outlook.office365.com: "+ " asks for the response; a refused
             token gets a bare "NO AUTHENTICATE failed." (no challenge).
After a successful login: LIST answers INBOX and Junk (\\Junk); LOGOUT ends.
"""
import base64
import json
import socket
import sys
import threading
import time

GMAIL_CHALLENGE = base64.b64encode(json.dumps(
    {"status": "401", "schemes": "bearer mac", "scope": "https://mail.google.com/"},
    separators=(",", ":")).encode()).decode()


def shown(b64):
    try:
        return base64.b64decode(b64).decode("latin-1").replace("\x01", "^A")
    except Exception:
        return "(not base64)"


class Conn:
    def __init__(self, sock, scenario, record):
        self.s = sock
        self.f = sock.makefile("rb")
        self.scenario = scenario
        self.record = record

    def send(self, line):
        self.s.sendall(line.encode() + b"\r\n")

    def recv(self):
        raw = self.f.readline()
        if not raw:
            return None
        line = raw.decode("latin-1").rstrip("\r\n")
        with open(self.record, "a") as r:
            parts = line.split(" ")
            dec = ""
            if len(parts) == 4 and parts[1].upper() == "AUTHENTICATE":
                dec = " => " + shown(parts[3])
            elif len(parts) == 1 and parts[0] not in ("", "*"):
                dec = " => " + shown(parts[0])
            r.write(line + dec + "\n")
        return line

    def caps(self):
        if self.scenario == "gmail":
            return "IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER"
        return "IMAP4rev1 AUTH=XOAUTH2"

    def authenticate(self, tag, mech, ir):
        if ir is None:
            self.send("+ ")
            ir = self.recv()
            if ir is None:
                return False
        text = shown(ir)
        if "auth=Bearer good-token^A" in text:
            self.send(tag + " OK [CAPABILITY " + self.caps() + "] authenticated")
            return True
        if self.scenario == "microsoft":
            self.send(tag + " NO AUTHENTICATE failed.")
            return False
        self.send("+ " + GMAIL_CHALLENGE)
        answer = self.recv()
        want = "AQ==" if mech == "OAUTHBEARER" else ""
        if answer != want:
            self.send(tag + " BAD wrong answer to the challenge")
        else:
            self.send(tag + " NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)")
        return False

    def serve(self):
        self.send("* OK [CAPABILITY " + self.caps() + "] scripted " + self.scenario + " ready")
        while True:
            line = self.recv()
            if line is None:
                return
            p = line.split(" ")
            tag, cmd = p[0], (p[1].upper() if len(p) > 1 else "")
            if cmd == "CAPABILITY":
                self.send("* CAPABILITY " + self.caps())
                self.send(tag + " OK done")
            elif cmd == "AUTHENTICATE" and len(p) >= 3:
                self.authenticate(tag, p[2].upper(), p[3] if len(p) > 3 else None)
            elif cmd == "LIST":
                self.send('* LIST (\\HasNoChildren) "/" INBOX')
                self.send('* LIST (\\HasNoChildren \\Junk) "/" Junk')
                self.send(tag + " OK LIST done")
            elif cmd == "LOGOUT":
                self.send("* BYE bye")
                self.send(tag + " OK LOGOUT done")
                return
            else:
                self.send(tag + " OK " + cmd.lower() + " done")


def main():
    scenario = sys.argv[1]
    record = sys.argv[sys.argv.index("--record") + 1]
    lifetime = float(sys.argv[sys.argv.index("--lifetime") + 1]) if "--lifetime" in sys.argv else 60
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(8)
    print(ls.getsockname()[1], flush=True)
    ls.settimeout(0.5)
    end = time.time() + lifetime
    while time.time() < end:
        try:
            s, _ = ls.accept()
        except socket.timeout:
            continue
        threading.Thread(target=lambda: Conn(s, scenario, record).serve(), daemon=True).start()


if __name__ == "__main__":
    main()
