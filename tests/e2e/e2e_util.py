"""Helpers for the Python checks of tests/e2e/run_state.sh and run_reports.sh.

Each check prints one TAP-ish line ("ok - ..." / "not ok - ..."); the shell
side (tests/e2e/pycheck.sh) counts them into the world's check totals.
Run with /usr/bin/python3 (Debian's, which has prometheus_client).
"""
import datetime
import json
import math
import re
import sqlite3
import time

BUCKETS = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600]
OUTCOMES = ["inbox", "spam", "missing", "rejected", "deferred", "error"]


def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    return bool(cond)


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def prom_samples(path):
    """Samples of a Prometheus text format 0.0.4 file: [(name, labels, value)]."""
    from prometheus_client.parser import text_string_to_metric_families
    with open(path, encoding="utf-8") as f:
        text = f.read()
    out = []
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.append((s.name, dict(s.labels), float(s.value)))
    return out


def om_samples(path):
    """Samples of an OpenMetrics 1.0 file (parsed by prometheus_client's
    OpenMetrics parser, which refuses a malformed file)."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
    with open(path, encoding="utf-8") as f:
        text = f.read()
    out = []
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.append((s.name, dict(s.labels), float(s.value)))
    return out


def find(samples, name, **labels):
    """Values of the samples called name whose labels include labels."""
    return [v for (n, l, v) in samples
            if n == name and all(l.get(k) == str(x) for k, x in labels.items())]


def one(samples, name, **labels):
    """The single value of that series, or None when absent or repeated."""
    v = find(samples, name, **labels)
    return v[0] if len(v) == 1 else None


def nearest_rank(sorted_vals, q):
    """docs/SPEC.md: nearest-rank quantile, the value at rank ceil(q*n) (1-based)."""
    n = len(sorted_vals)
    if n == 0:
        return None
    r = math.ceil(q * n - 1e-12)
    r = min(max(r, 1), n)
    return sorted_vals[r - 1]


def window_latencies(db, config, provider, now, window):
    """The window's latency samples read from the state store (docs/state.md):
    found probes (in their round, usable latency) plus late arrivals (usable
    late latency), submitted in [now - window, now]; sorted ascending."""
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        rows = con.execute(
            "SELECT latency FROM probes WHERE config = ? AND provider = ? "
            "AND outcome IN ('inbox','spam') AND latency_usable = 1 "
            "AND submit_time >= ? AND submit_time <= ? "
            "UNION ALL SELECT late_latency FROM probes WHERE config = ? AND provider = ? "
            "AND late = 1 AND late_latency_usable = 1 AND submit_time >= ? AND submit_time <= ?",
            (config, provider, now - window, now, config, provider, now - window, now)).fetchall()
    finally:
        con.close()
    return sorted(r[0] for r in rows)


def relay_sent_time(log_path, queue_id, rcpt):
    """Unix time at which the relay's log says queue_id was delivered to rcpt
    (status=sent), or None. Knows syslog-style and ISO 8601 time stamps."""
    with open(log_path, errors="replace") as f:
        for line in f:
            if queue_id not in line or ("to=<%s>" % rcpt) not in line or "status=sent" not in line:
                continue
            m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d:?\d\d|Z)?", line)
            if m:
                return datetime.datetime.fromisoformat(m.group(0).replace("Z", "+00:00")).timestamp()
            m = re.match(r"(\w{3}\s+\d+ \d\d:\d\d:\d\d)", line)
            if m:
                t = datetime.datetime.strptime("%d %s" % (datetime.date.today().year, m.group(1)),
                                               "%Y %b %d %H:%M:%S")
                return time.mktime(t.timetuple())
    return None


def bucket(samples, hist, le, **labels):
    """The cumulative count of histogram hist's bucket le (a number, or
    "+Inf"), whatever spelling the file uses for le; None when absent."""
    vals = []
    for (n, l, v) in samples:
        if n != hist + "_bucket" or not all(l.get(k) == str(x) for k, x in labels.items()):
            continue
        if (le == "+Inf" and l.get("le") == "+Inf") or (le != "+Inf" and l.get("le") != "+Inf"
                                                        and float(l["le"]) == float(le)):
            vals.append(v)
    return vals[0] if len(vals) == 1 else None


def maildir_arrivals(mail):
    """The ground truth of delivery: {token: Unix seconds} for every message
    under the Maildir tree mail that carries X-Inboxprobe-Token, from its
    file name (Dovecot's SECONDS.M<usec>P<pid>...: when saving began, to the
    microsecond). Used by tests/e2e/idle_world.sh and bench/bench_idle.sh,
    bench_scale.sh."""
    import os
    truth = {}
    for root, _, files in os.walk(mail):
        for fn in files:
            m = re.match(r"(\d+)\.M(\d+)P\d+", fn)
            if not m:
                continue
            with open(os.path.join(root, fn), "rb") as f:
                t = re.search(rb"^X-Inboxprobe-Token: *([0-9a-f]+)", f.read(8192), re.M | re.I)
            if t:
                truth[t.group(1).decode()] = int(m.group(1)) + int(m.group(2)) / 1e6
    return truth


def quantile(v, p):
    """The nearest-rank p-quantile (0 < p <= 1) of v; NaN when v is empty."""
    v = sorted(v)
    return v[min(len(v) - 1, max(0, int(-(-p * len(v) // 1)) - 1))] if v else float("nan")
