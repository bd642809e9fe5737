#!/usr/bin/env python3
"""A TCP proxy in front of the world's Postfix that kills the relay mid-DATA.

usage: kill_proxy.py UPSTREAM_PORT [--port-file FILE] [--log FILE]
                     [--kills N] [--lifetime SECONDS]

Listens on a free port of 127.0.0.1 (printed as "PORT <n>" and written to
--port-file) and forwards every connection to 127.0.0.1:UPSTREAM_PORT. In
the first N connections (default 1), once the client has sent DATA, the
server has answered 354 and the client has sent the first bytes of the
message, it forwards half of those bytes, then finds the smtpd process
serving that upstream connection (ss -tnp) and kills it with SIGKILL:
the relay dies mid-DATA, before the final dot. What it did goes to --log
("killed smtpd pid N mid-DATA after M bytes"). Exits after --lifetime
seconds (default 120). python3 stdlib only.
"""
import argparse
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time


def smtpd_pid(upstream_port, local_port):
    out = subprocess.run(["ss", "-Htnp", "state", "established",
                          f"( sport = :{upstream_port} and dport = :{local_port} )"],
                         capture_output=True, text=True).stdout
    m = re.search(r'pid=(\d+)', out)
    return int(m.group(1)) if m else None


def serve(client, upstream_port, kill, log):
    up = socket.create_connection(("127.0.0.1", upstream_port))
    state = "cmd" if kill else "pass"
    sent_body = 0
    try:
        while True:
            r, _, _ = select.select([client, up], [], [], 60)
            if not r:
                return
            if up in r:
                data = up.recv(65536)
                if not data:
                    return
                if state == "data" and data.startswith(b"354"):
                    state = "body"
                client.sendall(data)
            if client in r:
                data = client.recv(65536)
                if not data:
                    return
                if state == "cmd" and re.search(rb'(^|\r\n)DATA\r\n', data, re.I):
                    state = "data"
                elif state == "body":
                    half = data[:max(1, len(data) // 2)]
                    up.sendall(half)
                    sent_body += len(half)
                    pid = smtpd_pid(upstream_port, up.getsockname()[1])
                    if pid:
                        os.kill(pid, signal.SIGKILL)
                    log(f"killed smtpd pid {pid} mid-DATA after {sent_body} of {len(data)} bytes")
                    state = "pass"
                    continue
                up.sendall(data)
    finally:
        for s in (client, up):
            try:
                s.close()
            except OSError:
                pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("upstream", type=int)
    ap.add_argument("--port-file")
    ap.add_argument("--log")
    ap.add_argument("--kills", type=int, default=1)
    ap.add_argument("--lifetime", type=float, default=120)
    a = ap.parse_args()
    lock = threading.Lock()

    def log(msg):
        with lock:
            if a.log:
                with open(a.log, "a") as f:
                    f.write(msg + "\n")

    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    port = srv.getsockname()[1]
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(f"{port}\n")
        os.rename(a.port_file + ".tmp", a.port_file)
    print(f"PORT {port}", flush=True)
    threading.Timer(a.lifetime, lambda: os._exit(0)).start()
    n = 0
    while True:
        c, _ = srv.accept()
        n += 1
        t = threading.Thread(target=serve, args=(c, a.upstream, n <= a.kills, log), daemon=True)
        t.start()


if __name__ == "__main__":
    sys.exit(main())
