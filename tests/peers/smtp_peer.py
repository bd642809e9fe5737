#!/usr/bin/env python3
"""Scripted SMTP server for tests (python3 stdlib only, 127.0.0.1).

usage: smtp_peer.py SCENARIO [--port-file FILE] [--log FILE] [--lifetime SECONDS]

Listens on 127.0.0.1 on a free port, prints "PORT <n>" on stdout (and writes
the number to --port-file), serves connections one at a time following
SCENARIO, and exits after --lifetime seconds (default 60) so a test can
never leave it running. Every command received is appended to --log, AUTH
payloads replaced by "AUTH <redacted>".

Scenarios:
  ok           250 2.0.0 Ok: queued as 4XyZ1B2c3Dz after DATA
  greet421     multi-line 421 4.7.0 greeting, then close
  greet554     554 5.7.0 greeting, then close
  rcpt452      452 4.5.3 Too many recipients after RCPT
  rcpt550      550 5.1.1 unknown mailbox after RCPT
  mail451      451 4.7.1 after MAIL FROM
  data554      554 5.7.1 after the end of DATA
  drop         connection closed after DATA's final dot, no reply
  auth535      advertises AUTH PLAIN LOGIN (no TLS); 535 5.7.8 to AUTH
  stall        accepts the connection, never answers
  stalldata    answers everything, stalls after DATA's final dot
  quitstall    250 after DATA, then never answers QUIT
  mixed        multi-line end-of-DATA reply with mixed codes (250-/251 )
  garbled      a garbled final reply to DATA ("999 \x01 garbled"), then close:
               the relay may have delivered it
  multi        250 after DATA with a queue id per recipient ("Q" + the
               recipient's local part, letters and digits): per-probe
               attribution over reused connections can be checked
  close1       as multi, then closes the connection after each transaction
  421mid       as multi, but the 3rd MAIL FROM the peer sees is answered
               "421 4.7.0 closing, try again later" and the connection closed
  flaky        as ok, but the first connection is accepted and never greeted
               (the peer waits until the client closes it), and the second
               is closed without a word after its RCPT TO: neither sent a
               message
"""
import argparse
import base64
import socket
import sys
import threading
import time

QUEUE_ID = "4XyZ1B2c3Dz"
MAILS = [0]   # MAIL FROM commands seen (421mid)
MAILS_LOCK = threading.Lock()
CONNS = [0]   # connections accepted (flaky)


def serve(conn, scenario, log):
    f = conn.makefile("rb")

    def send(s):
        conn.sendall(s.encode())

    def logline(s):
        if log:
            with open(log, "a") as fh:
                fh.write(s + "\n")

    if scenario == "stall":
        time.sleep(120)
        return
    with MAILS_LOCK:
        CONNS[0] += 1
        nconn = CONNS[0]
    if scenario == "flaky" and nconn == 1:
        logline("CONNECTION 1 not greeted")
        f.read()   # until the client gives up and closes
        return
    if scenario == "greet421":
        send("421-4.7.0 mx.example.test Service not available\r\n"
             "421-4.7.0 too many connections from your host\r\n"
             "421 4.7.0 try again later\r\n")
        return
    if scenario == "greet554":
        send("554 5.7.0 mx.example.test Your access to this mail system has been rejected\r\n")
        return
    send("220 mx.example.test ESMTP smtp_peer\r\n")
    in_auth = False
    while True:
        line = f.readline(4096)
        if not line:
            return
        cmd = line.decode("latin-1").rstrip("\r\n")
        verb = cmd.split(" ", 1)[0].upper()
        if in_auth:
            logline("AUTH <redacted>")
            send("535 5.7.8 Error: authentication failed: authentication failure\r\n")
            in_auth = False
            continue
        logline("AUTH <redacted>" if verb == "AUTH" else cmd)
        if verb in ("EHLO", "HELO"):
            caps = ["mx.example.test", "PIPELINING", "SIZE 10240000", "8BITMIME",
                    "ENHANCEDSTATUSCODES"]
            if scenario == "auth535":
                caps.append("AUTH PLAIN LOGIN")
            out = "".join("250-%s\r\n" % c for c in caps[:-1]) + "250 %s\r\n" % caps[-1]
            send(out)
        elif verb == "AUTH":
            parts = cmd.split(" ")
            if len(parts) >= 3:
                send("535 5.7.8 Error: authentication failed: authentication failure\r\n")
            else:
                in_auth = True
                send("334 \r\n" if parts[1].upper() == "PLAIN" else
                     "334 " + base64.b64encode(b"Username:").decode() + "\r\n")
        elif verb == "MAIL":
            with MAILS_LOCK:
                MAILS[0] += 1
                nmail = MAILS[0]
            if scenario == "421mid" and nmail == 3:
                send("421 4.7.0 closing, try again later\r\n")
                return
            if scenario == "mail451":
                send("451 4.7.1 Service unavailable - try again later\r\n")
            else:
                send("250 2.1.0 Ok\r\n")
        elif verb == "RCPT":
            rcpt = cmd.split(":", 1)[1].strip().strip("<>") if ":" in cmd else ""
            if scenario == "flaky" and nconn == 2:
                logline("CONNECTION 2 closed after RCPT")
                conn.shutdown(socket.SHUT_RDWR)
                return
            if scenario == "rcpt452":
                send("452 4.5.3 Error: too many recipients\r\n")
            elif scenario == "rcpt550":
                send("550 5.1.1 <nobody@example.test>: Recipient address rejected: "
                     "User unknown in virtual mailbox table\r\n")
            else:
                send("250 2.1.5 Ok\r\n")
        elif verb == "DATA":
            send("354 End data with <CR><LF>.<CR><LF>\r\n")
            data = []
            while True:
                l = f.readline(65536)
                if not l:
                    return
                if l == b".\r\n":
                    break
                data.append(l)
                if l.startswith(b"."):
                    logline("DOTLINE " + l.decode("latin-1").rstrip("\r\n"))
            logline("DATA %d lines" % len(data))
            if scenario == "drop":
                conn.shutdown(socket.SHUT_RDWR)
                return
            if scenario == "stalldata":
                time.sleep(120)
                return
            if scenario == "data554":
                send("554 5.7.1 Message rejected as spam by Content Filtering\r\n")
            elif scenario == "mixed":
                send("250-2.0.0 Ok\r\n251 2.0.0 odd\r\n")
            elif scenario == "garbled":
                send("999 \x01 garbled\r\n")
                conn.shutdown(socket.SHUT_RDWR)
                return
            elif scenario in ("multi", "close1", "421mid"):
                qid = "Q" + "".join(ch for ch in rcpt.split("@")[0] if ch.isalnum())
                send("250 2.0.0 Ok: queued as %s\r\n" % qid)
                if scenario == "close1":
                    return
            else:
                send("250 2.0.0 Ok: queued as %s\r\n" % QUEUE_ID)
        elif verb == "QUIT":
            if scenario == "quitstall":
                time.sleep(120)
                return
            send("221 2.0.0 Bye\r\n")
            return
        elif verb in ("RSET", "NOOP"):
            send("250 2.0.0 Ok\r\n")
        else:
            send("502 5.5.2 Error: command not recognized\r\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario")
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--lifetime", type=float, default=60)
    a = ap.parse_args()

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as fh:
            fh.write("%d\n" % port)
        import os
        os.rename(a.port_file + ".tmp", a.port_file)
    print("PORT %d" % port, flush=True)

    def handle(conn):
        try:
            serve(conn, a.scenario, a.log)
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    end = time.monotonic() + a.lifetime
    srv.settimeout(0.5)
    while time.monotonic() < end:
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            continue
        t = threading.Thread(target=handle, args=(conn,), daemon=True)
        t.start()
    srv.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
