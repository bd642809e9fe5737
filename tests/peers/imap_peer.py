#!/usr/bin/env python3
"""A scripted IMAP server for inboxprobe's tests (python3 stdlib only).

    imap_peer.py SCENARIO [--record FILE] [--lifetime SECONDS]

Listens on 127.0.0.1, port 0, prints the port on stdout (one line), then
serves connections (one at a time) until --lifetime seconds pass
(default 30). Every line received is appended to --record FILE, so a test
can check what reached the server (e.g. that no LOGIN was sent).

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
"""
import socket
import socketserver
import sys
import threading
import time

TOKEN = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"

CAPS = "IMAP4rev1 UIDPLUS MOVE"


class Handler(socketserver.StreamRequestHandler):
    timeout = 20

    def send(self, s):
        self.wfile.write(s.encode("utf-8", "surrogateescape") + b"\r\n")
        self.wfile.flush()

    def record(self, line):
        if self.server.record:
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
        try:
            self.serve()
        except (ConnectionError, OSError):
            pass   # the client went away: that is what several scenarios test

    def serve(self):
        sc = self.server.scenario
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
            parts = line.split(" ", 2)
            if len(parts) < 2:
                self.send("* BAD no tag")
                continue
            tag, cmd = parts[0], parts[1].upper()
            args = parts[2] if len(parts) > 2 else ""
            if cmd == "UID":
                sub = args.split(" ", 1)
                cmd = "UID " + sub[0].upper()
                args = sub[1] if len(sub) > 1 else ""
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
                if sc == "list":
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
                selected = args
                self.send("* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)")
                self.send("* 2 EXISTS")
                self.send("* 0 RECENT")
                self.send("* OK [UIDVALIDITY 42] UIDs valid")
                self.send("* OK [UIDNEXT 10] next")
                self.send("%s OK [READ-WRITE] selected" % tag)
            elif cmd == "UID SEARCH":
                if sc == "garbled":
                    self.send("* SEARCH 1 2 (((\x01garbage")
                    self.send("%s OK search done" % tag)
                elif "HEADER" in args.upper():
                    self.send("* SEARCH")
                    self.send("%s OK search done" % tag)
                else:
                    self.send("* SEARCH 7 9")
                    self.send("%s OK search done" % tag)
            elif cmd == "UID FETCH":
                for seq, uid, tok in ((1, 7, OTHER + "0"), (2, 9, TOKEN)):
                    if str(uid) not in args.split(" ", 1)[0].split(","):
                        continue
                    hdr = ("X-Inboxprobe-Token: %s\r\nSubject: inboxprobe %s\r\n\r\n" % (tok, tok))
                    self.send('* %d FETCH (UID %d INTERNALDATE "17-Jul-1996 02:44:25 -0700" '
                              'BODY[HEADER.FIELDS (X-Inboxprobe-Token Subject)] {%d}'
                              % (seq, uid, len(hdr.encode())))
                    self.wfile.write(hdr.encode() + b")\r\n")
                self.send("%s OK fetch done" % tag)
            else:
                self.send("%s BAD unknown command" % tag)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    scenario = args[0]
    record, lifetime = None, 30.0
    i = 1
    while i < len(args):
        if args[i] == "--record":
            record = args[i + 1]
            i += 2
        elif args[i] == "--lifetime":
            lifetime = float(args[i + 1])
            i += 2
        else:
            print("unknown option %s" % args[i], file=sys.stderr)
            sys.exit(2)
    srv = Server(("127.0.0.1", 0), Handler)
    srv.scenario = scenario
    srv.record = record
    srv.lifetime = lifetime
    print(srv.server_address[1], flush=True)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    time.sleep(lifetime)
    srv.shutdown()
    srv.server_close()


if __name__ == "__main__":
    main()
