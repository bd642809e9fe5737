#!/usr/bin/env python3
"""timeline.py - read a round's timeline (INBOXPROBE_TIMELINE, test-only; written by
bench_scale.sh with TIMELINE=DIR) and print where the round's time went: per step
the median and p90 of its duration per seed, the moments the first, middle and last
seed reached each event, and the waits (gate, SMTP slot).

    bench/timeline.py FILE [FILE...]
"""
import collections, sys

STEPS = [  # (event, previous event): the step's duration is event - previous
    ("gate", "thread"), ("open", "gate"), ("login", "open"), ("list", "login"),
    ("status", "list"), ("uidnext", "status"), ("spamwatch", "uidnext"), ("armed", "spamwatch"),
    ("smtp_slot", "smtp_wait"), ("smtp_done", "smtp_slot"),
    ("exists", "smtp_done"), ("found", "exists"), ("exit", "found"),
]
ORDER = ["thread", "gate", "open", "login", "list", "status", "uidnext", "spamwatch", "armed",
         "smtp_wait", "smtp_slot", "smtp_done", "watch", "exists", "found", "exit"]


def q(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


def rounds(path):
    """The rounds of a timeline file (the daemon appends one per round)."""
    ev, rnd = None, None
    for line in open(path):
        t, i, e = line.split()
        t, i = float(t), int(i)
        if i == -1 and e == "start":
            if ev:
                yield ev, rnd
            ev, rnd = collections.defaultdict(dict), {}
        if ev is None:
            continue
        if i < 0:
            rnd.setdefault(e, t)
        elif e not in ev[i]:  # first occurrence (a reconnect repeats steps)
            ev[i][e] = t
    if ev:
        yield ev, rnd


def one(path, ev, rnd, k):
    t0 = rnd["start"]
    print(f"# {path} round {k}: {len(ev)} seeds; round joined {rnd.get('joined', t0) - t0:.2f} s, "
          f"ended {rnd.get('end', t0) - t0:.2f} s after its start")
    print(f"{'step':>22} {'n':>5} {'p50 ms':>8} {'p90 ms':>8} {'max ms':>8}")
    for e, prev in STEPS:
        d = [(v[e] - v[prev]) * 1000 for v in ev.values() if e in v and prev in v]
        print(f"{prev + '->' + e:>22} {len(d):>5} {q(d, .5):>8.1f} {q(d, .9):>8.1f} "
              f"{(max(d) if d else float('nan')):>8.1f}")
    print(f"{'event':>12} {'n':>5} {'first s':>8} {'p10 s':>8} {'p50 s':>8} {'p90 s':>8} {'last s':>8}")
    for e in ORDER:
        ts = [v[e] - t0 for v in ev.values() if e in v]
        if ts:
            print(f"{e:>12} {len(ts):>5} {min(ts):>8.2f} {q(ts, .1):>8.2f} {q(ts, .5):>8.2f} "
                  f"{q(ts, .9):>8.2f} {max(ts):>8.2f}")
    arm = [v["armed"] - v["thread"] for v in ev.values() if "armed" in v]
    print(f"# arming per seed (thread start to armed): p50 {q(arm, .5):.3f} s, p90 {q(arm, .9):.3f} s")
    last = max(max(v.values()) for v in ev.values()) - t0
    row = [sum(1 for v in ev.values() if v.get("armed", 1e18) <= t0 + k) for k in range(int(last) + 2)]
    print("# seeds armed after 0, 1, 2... s:", " ".join(map(str, row)))
    done = sorted(v["smtp_done"] - t0 for v in ev.values() if "smtp_done" in v)
    if len(done) > 1:
        print(f"# submissions: {len(done)} done from {done[0]:.2f} to {done[-1]:.2f} s: "
              f"{(len(done) - 1) / max(done[-1] - done[0], 1e-9):.0f}/s")
    # the critical path: the last seed armed, then its probe's way to found
    la = max((v for v in ev.values() if "armed" in v), key=lambda v: v["armed"])
    parts = [("armed", "armed"), ("smtp_done", "submitted"), ("exists", "announced"),
             ("found", "found"), ("exit", "its worker done")]
    print("# last seed armed: " + ", ".join(f"{label} {la[e] - t0:.2f} s" for e, label in parts if e in la)
          + f"; round ended {rnd.get('end', t0) - t0:.2f} s")


for p in sys.argv[1:]:
    for k, (ev, rnd) in enumerate(rounds(p), 1):
        if ev:
            one(p, ev, rnd, k)
