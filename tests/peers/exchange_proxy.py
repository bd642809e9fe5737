#!/usr/bin/env python3
"""An IMAP proxy that ends sessions when their OAuth 2.0 token expires, as
Exchange Online does (stdlib only).

    exchange_proxy.py --upstream-port P --ca FILE --token-server URL --record FILE
                      [--lifetime SECONDS]

Listens on 127.0.0.1 (plain text: the client uses tls = "none"), prints its
port, and relays each connection over TLS to the OAuth Dovecot of
tests/world/oauth2.sh (localhost:P, certificate checked against FILE). It
reads the SASL XOAUTH2 / OAUTHBEARER response the client sends (base64 with
"auth=Bearer TOKEN"), asks the token server when that token expires
(POST URL/control/exp), and at that moment, once the server's side of the
stream is quiet at a line's end (an IDLE, or between replies), sends the
client

    * BYE Session invalidated - AccessTokenExpired

(Exchange Online's words) and closes both sides. Dovecot, like most servers,
keeps a session past its token: no open server does this.

--record FILE gets one line per event: "login N TOKEN-HASH EXP TIME" when a
session logs in, "bye N TOKEN-HASH TIME" when it is ended (N: connection
number, TOKEN-HASH: the first 12 hex digits of the token's SHA-256, never
the token; EXP, TIME: Unix seconds).
Serves until --lifetime (default 300 s).
"""
import argparse
import base64
import hashlib
import json
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import urllib.request

BYE = b"* BYE Session invalidated - AccessTokenExpired\r\n"


def bearer_of(line):
    """The bearer token in a client line holding a base64 SASL response."""
    for word in line.split():
        try:
            dec = base64.b64decode(word, validate=True)
        except Exception:
            continue
        i = dec.find(b"auth=Bearer ")
        if i >= 0:
            return dec[i + 12:].split(b"\x01")[0].decode("latin-1")
    return None


class Session:
    def __init__(self, n, client, a):
        self.n, self.c, self.a = n, client, a
        self.lock = threading.Lock()
        self.exp = None               # when the token expires (Unix seconds)
        self.last_down = time.time()  # last bytes from the server
        self.at_eol = True            # the server's last byte ended a line
        self.closed = False
        ctx = ssl.create_default_context(cafile=a.ca)
        raw = socket.create_connection(("127.0.0.1", a.upstream_port), timeout=10)
        self.u = ctx.wrap_socket(raw, server_hostname="localhost")
        self.u.settimeout(None)

    def record(self, text):
        with open(self.a.record, "a") as r:
            r.write(text + "\n")

    def token_seen(self, tok):
        data = urllib.parse.urlencode({"token": tok}).encode()
        with urllib.request.urlopen(self.a.token_server + "/control/exp", data, timeout=5) as r:
            exp = float(json.load(r).get("exp", 0))
        h = hashlib.sha256(tok.encode()).hexdigest()[:12]
        with self.lock:
            self.exp, self.hash = (exp or None), h
        self.record("login %d %s %.3f %.3f" % (self.n, h, exp, time.time()))

    def close(self):
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for s in (self.c, self.u):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def up(self):
        """Client to server: forward, and look for the bearer token."""
        buf = b""
        try:
            while True:
                d = self.c.recv(65536)
                if not d:
                    break
                self.u.sendall(d)
                buf += d
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    tok = bearer_of(line.decode("latin-1"))
                    if tok:
                        self.token_seen(tok)
                buf = buf[-65536:]
        except OSError:
            pass
        self.close()

    def down(self):
        """Server to client: forward, noting quiet line ends."""
        try:
            while True:
                d = self.u.recv(65536)
                if not d:
                    break
                with self.lock:
                    self.c.sendall(d)
                    self.last_down = time.time()
                    self.at_eol = d.endswith(b"\r\n")
        except OSError:
            pass
        self.close()

    def expire(self):
        """At the token's expiry, BYE once the server's side is quiet."""
        while not self.closed:
            time.sleep(0.05)
            with self.lock:
                due = self.exp is not None and time.time() >= self.exp
                quiet = self.at_eol and time.time() - self.last_down >= 0.2
                if due and quiet:
                    try:
                        self.c.sendall(BYE)
                    except OSError:
                        pass
                    h = self.hash
                else:
                    continue
            self.record("bye %d %s %.3f" % (self.n, h, time.time()))
            self.close()
            return


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream-port", type=int, required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--token-server", required=True)
    ap.add_argument("--record", required=True)
    ap.add_argument("--lifetime", type=float, default=300)
    a = ap.parse_args()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    print(ls.getsockname()[1], flush=True)
    threading.Timer(a.lifetime, lambda: __import__("os")._exit(0)).start()
    n = 0
    while True:
        c, _ = ls.accept()
        n += 1
        try:
            s = Session(n, c, a)
        except OSError as e:
            sys.stderr.write("upstream: %s\n" % e)
            c.close()
            continue
        for f in (s.up, s.down, s.expire):
            threading.Thread(target=f, daemon=True).start()


if __name__ == "__main__":
    main()
