"""What the scripted IMAP peers share (python3 stdlib only): the IMAP
bits they parse and print, the command-line options, and serving on a free
loopback port for a lifetime. Imported by idle_peer.py and imap_peer.py
(their directory is on sys.path when they run as scripts)."""
import re
import socketserver
import sys
import threading
import time

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# a probe token: 32 hex digits, or 48 with the HMAC (inboxprobe's token_generate)
HEXTOK = re.compile(r"\b([0-9a-f]{32}(?:[0-9a-f]{16})?)\b")


def internaldate_now():
    """Now as an IMAP date-time (RFC 3501 INTERNALDATE), in UTC."""
    t = time.gmtime()
    return "%02d-%s-%04d %02d:%02d:%02d +0000" % (t.tm_mday, MONTHS[t.tm_mon - 1], t.tm_year,
                                                  t.tm_hour, t.tm_min, t.tm_sec)


def astring(s):
    """Parse one IMAP astring at the start of s: (value, rest)."""
    s = s.lstrip(" ")
    if s.startswith('"'):
        out, i = [], 1
        while i < len(s) and s[i] != '"':
            if s[i] == "\\" and i + 1 < len(s):
                i += 1
            out.append(s[i])
            i += 1
        return "".join(out), s[i + 1:].lstrip(" ")
    v, _, rest = s.partition(" ")
    return v, rest


def split_command(line):
    """A command line into (tag, COMMAND, args); "UID X" is one command
    ("UID FETCH"). None when the line has no command after its tag."""
    parts = line.split(" ", 2)
    if len(parts) < 2:
        return None
    tag, cmd = parts[0], parts[1].upper()
    args = parts[2] if len(parts) > 2 else ""
    if cmd == "UID":
        sub = args.split(" ", 1)
        cmd = "UID " + sub[0].upper()
        args = sub[1] if len(sub) > 1 else ""
    return tag, cmd, args


def options(args, names, usage):
    """--NAME VALUE pairs of args into a dict (names: the allowed NAMEs);
    --lifetime is a float, 30 by default. Exits 2 on anything else."""
    out = {n: None for n in names}
    out["lifetime"] = 30.0
    i = 0
    while i < len(args):
        name = args[i][2:] if args[i].startswith("--") else None
        if name not in out or i + 1 >= len(args):
            print("unknown option %s" % args[i], file=sys.stderr)
            print(usage, file=sys.stderr)
            sys.exit(2)
        out[name] = float(args[i + 1]) if name == "lifetime" else args[i + 1]
        i += 2
    return out


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve_for(srv, lifetime):
    """Print srv's port (one line), serve in a thread for lifetime seconds,
    then stop."""
    print(srv.server_address[1], flush=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    time.sleep(lifetime)
    srv.shutdown()
    srv.server_close()
