#!/usr/bin/env python3
"""suite.py - libwref against real peers (issue 6): `make bench` runs it.

Runs every peer binary (bench/peers/*) in rounds, rotating their order each
round so that every peer sees the same machine conditions, and writes

  bench/results/latest.md   (quick.md with --quick) one row per workload: median and min-max over
                            the rounds for libwref, the physical limit and
                            each peer; libwref/limit and the speed-up of
                            libwref over the best peer, both computed per
                            round (side by side) and then summarised
  bench/results/latest.png  one quantity per panel (gnuplot): throughput
                            vs threads, bytes per item, cost relative to
                            the limit, speed-up over the best peer; each a
                            median with its range over the rounds
  bench/results/latest.tsv  every raw figure (peer, key, round, value)

  --quick       5 short rounds (under a minute on 2 cores); the
                oversubscription rows at 32 threads only
  --rounds N    rounds (default 5 quick, 9 full)
  --ms MS       timed window per measurement (default 15 quick, 200 full)
  --os-ms MS    timed window of the oversubscription rows (default: 50
                quick, --ms full)
  --bindir DIR  where the peer binaries were built (default: cwd)
  --srcdir DIR  the source tree (default: this file's parent's parent)
  --out DIR     results directory (default: SRCDIR/bench/results)
  --name STEM   output file names (default latest, or quick with --quick)
  --only GROUP  run one workload group (e.g. oversub; comma-separated
                for several), one launch per peer and round; rows
                without figures are left out
  --replot      only redraw STEM.png from STEM.tsv
"""
import argparse
import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

PEERS = [  # (column, binary or script, how)
    ("libwref", "bench/peers/wref_bench", "bin"),
    ("limit", "bench/peers/limit_bench", "bin"),
    ("C++", "bench/peers/cxx_bench", "bin"),
    ("GLib", "bench/peers/glib_bench", "bin"),
    ("Rust", "bench/peers/rust_bench", "bin"),
    ("ck", "bench/peers/ck_bench", "bin"),
    ("CPython", "bench/peers/py_bench.py", "py"),
]
COMPETITORS = ["C++", "GLib", "Rust", "ck", "CPython"]
GROUPS = ["memory", "upgrade", "create", "get", "churn", "callbacks",
          "oversub"]
GROUPS_OF = {  # what a peer implements (default all)
    "ck": ["memory", "get"],
    "CPython": ["memory", "upgrade", "create", "get", "churn", "callbacks"],
}
MUTEX_MAPS = ["C++", "GLib", "Rust"]  # lock-based weak caches
# threads outnumbering cores (issue 18, item 5): libwref against every
# locked map; limit_bench's "oversub" group is not a limit but the locked
# C map (pthread_rwlock + chained hash table of refcounted objects)
OS_COLS = ["libwref", "limit", "C++", "GLib", "Rust"]
OS_LOCKED = ["limit", "C++", "GLib", "Rust"]
OS_NAME = {"limit": "locked C map"}
OS_THREADS_FULL = [8, 32, 128]
OS_THREADS_QUICK = [32]
OS_TARGET_T = 32  # the thread count the targets are stated at
# key stem, label, unit, higher is better
OS_ROWS = [
    ("os_mops", "throughput, Mops/s all threads", "Mops", True),
    ("os_p50", "latency p50, ns", "ns", False),
    ("os_p99", "latency p99, ns", "ns", False),
    ("os_p999", "latency p99.9, ns", "ns", False),
    ("os_get_p99", "gets alone: p99, ns", "ns", False),
    ("os_get_p999", "gets alone: p99.9, ns", "ns", False),
    ("os_upd_p99", "set/del/get-or-create alone: p99, ns", "ns", False),
    ("os_upd_p999", "set/del/get-or-create alone: p99.9, ns", "ns", False),
    ("os_hit", "gets that found a live value, %", "%", None),
    ("os_mem", "memory in use at the end of the window, MB", "MB", False),
]
# issue 18's targets at OS_TARGET_T threads: libwref / best locked peer
OS_TARGETS = {"os_mops": (">=", 1.5, "≥ 1.5× best locked peer"),
              "os_p99": ("<=", 1.0, "≤ 1× best locked peer"),
              "os_p999": ("<=", 1 / 3, "≤ 1/3 of best locked peer")}
CB_LAT_P99_TARGET_US = 50  # death → callback latency p99 (issue 18)

# key, label, unit, target
ROWS = [
    ("up_1t", "1. upgrade+release, 1 thread", "ns", "up"),
    ("up_2t_own", "1. upgrade+release, 2 threads, own objects", "ns", "up"),
    ("up_2t_shared", "1. upgrade+release, 2 threads, one object", "ns", "up"),
    ("new_rel", "2. create+release", "ns", None),
    ("new_rel_z", "2. create+release; limit: calloc+free", "ns", "calloc"),
    ("new_rel_weak", "2. create+release, one weak ref", "ns", "weak2x"),
    ("get_hit_1t", "3. map get hit, 1 thread", "ns", "map"),
    ("get_hit_2t", "3. map get hit, 2 threads", "ns", "map"),
    ("get_miss_1t", "3. map get miss, 1 thread", "ns", "map"),
    ("get_miss_2t", "3. map get miss, 2 threads", "ns", "map"),
    ("goc_churn_2t", "4. get-or-create, Zipf churn, 2 threads", "ns", "mutex"),
    ("cb_tput", "5. death callbacks: time per callback", "ns", "cb"),
    ("cb_lat_p50", "5. death→callback latency p50", "µs", None),
    ("cb_lat_p99", "5. death→callback latency p99", "µs", "lat"),
    ("cb_lat_max", "5. death→callback latency max", "µs", None),
    ("mem_obj", "6. bytes per object (16 B payload)", "B", None),
    ("mem_ref", "6. bytes per weak ref (handle + heap)", "B", "mem_ref"),
    ("mem_cbref", "6. bytes per weak ref with a callback (handle + heap)",
     "B", "mem_cbref"),
    ("mem_entry", "6. bytes per map entry", "B", "mem_entry"),
]
# plot labels (the cost and speed-up panels): what each workload is
PLOT_LABEL = {
    "up_1t": "upgrade + release, 1 thread",
    "up_2t_own": "upgrade + release, 2 threads, own objects",
    "up_2t_shared": "upgrade + release, 2 threads, one object",
    "new_rel": "create + release",
    "new_rel_weak": "create + release, with one weak ref",
    "get_hit_1t": "map get, key present, 1 thread",
    "get_hit_2t": "map get, key present, 2 threads",
    "get_miss_1t": "map get, key absent, 1 thread",
    "get_miss_2t": "map get, key absent, 2 threads",
    "goc_churn_2t": "get-or-create, keys dying (Zipf), 2 threads",
    "cb_tput": "death callback, time per callback",
}
MEM_ROWS = [("mem_obj", "per object"), ("mem_ref", "per weak ref"),
            ("mem_entry", "per map entry")]


def thread_counts():
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    t, out = 1, []
    while t < n:
        out.append(t)
        t *= 2
    out.append(n)
    return n, out


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def version(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).splitlines()[0].strip()
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "n/a"


def run_peer(argv, timeout):
    try:
        r = subprocess.run(argv, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return {}, "timeout"
    vals = {}
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                v = float(parts[1])
            except ValueError:
                continue
            if v == v:  # not NaN
                vals[parts[0]] = v
    err = "" if r.returncode == 0 else "exit %d: %s" % (
        r.returncode, r.stderr.strip().splitlines()[-1:] or "")
    return vals, err


def med(xs):
    return statistics.median(xs) if xs else None


def fmt_num(v):
    if v is None:
        return "n/a"
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def iqr(xs):
    """first and third quartile (inclusive method: fine for 5-9 rounds)"""
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def fmt_cell(xs, scale=1.0, spread=True):
    if not xs:
        return "n/a"
    xs = [x * scale for x in xs]
    m = med(xs)
    if not spread or len(xs) < 2 or max(xs) == min(xs):
        return fmt_num(m)
    lo, hi = iqr(xs)
    return "%s (%s–%s)" % (fmt_num(m), fmt_num(lo), fmt_num(hi))


def fmt_ratio(rs):
    if not rs:
        return "n/a"
    m = med(rs)
    if len(rs) < 2 or max(rs) - min(rs) < 0.005:
        return "%.2f×" % m
    lo, hi = iqr(rs)
    return "%.2f× (%.2f–%.2f)" % (m, lo, hi)


def best_ratio(a, b):
    """min(a) / min(b): each side's best round (noise only adds time)"""
    a = [x for x in a if x]
    b = [x for x in b if x]
    return min(a) / min(b) if a and b else None


def per_round(data, peer, key, rounds):
    return [data.get((peer, key, r)) for r in range(rounds)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--ms", type=float)
    ap.add_argument("--lat", type=int)
    ap.add_argument("--os-ms", type=float)
    ap.add_argument("--bindir", default=".")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--srcdir", default=os.path.dirname(here))
    ap.add_argument("--out")
    ap.add_argument("--name", help="file stem (default latest, quick)")
    ap.add_argument("--only", help="workload groups, comma-separated")
    ap.add_argument("--replot", action="store_true",
                    help="only redraw STEM.png from STEM.tsv")
    a = ap.parse_args()
    rounds = a.rounds or (5 if a.quick else 9)
    ms = a.ms or (15.0 if a.quick else 200.0)
    lat = a.lat or (500 if a.quick else 10000)
    # oversubscription: the map is full before the warm-up starts, so a
    # quick run's window only has to hold enough ops for p99.9
    os_ms = a.os_ms or (max(ms, 50.0) if a.quick else ms)
    os_threads = OS_THREADS_QUICK if a.quick else OS_THREADS_FULL
    out = a.out or os.path.join(a.srcdir, "bench", "results")
    # the committed table is the full run's; quick runs write beside it
    stem = a.name or ("quick" if a.quick else "latest")
    if a.replot:
        replot(out, stem)
        return
    os.makedirs(out, exist_ok=True)
    nproc, threads = thread_counts()
    start = time.time()
    load0 = os.getloadavg()[0]

    peers = []
    for name, path, how in PEERS:
        if how == "py":
            p = os.path.join(a.srcdir, path)
            argv = [sys.executable, p]
        else:
            p = os.path.join(a.bindir, path)
            argv = [p]
        if os.path.exists(p):
            peers.append((name, argv + ["--ms", str(ms), "--lat", str(lat),
                                        "--threads",
                                        ",".join(map(str, threads)),
                                        "--os-ms", str(os_ms),
                                        "--os-threads",
                                        ",".join(map(str, os_threads))]))
        else:
            print("suite: %s not built (%s): its column reads n/a" % (name, p),
                  file=sys.stderr)
    names = [p[0] for p in peers]
    if "libwref" not in names:
        sys.exit("suite: bench/peers/wref_bench is not built (it needs a "
                 "non-sanitizer build with jemalloc); run make first")

    data = {}  # (peer, key, round) -> value
    errors = []
    # each round runs one workload group at a time across all peers (in
    # an order rotated by round and group), so the figures a ratio
    # compares are taken seconds apart, not a whole round apart
    # (quick mode: one launch per peer and round, fewer processes)
    groups = [None] if a.quick else GROUPS
    if a.only:
        groups = a.only.split(",")
        unknown = [g for g in groups if g not in GROUPS]
        if unknown:
            sys.exit("suite: unknown group %s (groups: %s)" % (
                ",".join(unknown), ", ".join(GROUPS)))
    for r in range(rounds):
        for gi, group in enumerate(groups):
            ps = [p for p in peers
                  if group is None or group in GROUPS_OF.get(p[0], GROUPS)]
            k = (r + gi) % len(ps)
            for name, argv in ps[k:] + ps[:k]:
                only = ["--only", group] if group else []
                vals, err = run_peer(argv + only,
                                     timeout=60 + ms * 0.2 + os_ms * 0.02)
                if err:
                    errors.append("%s %s round %d: %s" % (name, group, r,
                                                          err))
                for key, v in vals.items():
                    data[(name, key, r)] = v
        print("suite: round %d/%d done (%.0f s)" % (r + 1, rounds,
              time.time() - start), file=sys.stderr)
    # the create + release row against calloc + free (wref_new zeroes):
    # libwref's and the peers' own create + release figures, limit calloc
    for r in range(rounds):
        for c in [p[0] for p in peers]:
            v = data.get((c, "new_rel", r))
            if v is not None and c != "limit":
                data[(c, "new_rel_z", r)] = v
    # CPython's get-or-create is single-threaded: shown in the churn row
    for r in range(rounds):
        v = data.get(("CPython", "goc_churn_1t", r))
        if v is not None:
            data[("CPython", "goc_churn_2t", r)] = v

    cols = ["libwref", "limit"] + [c for c in COMPETITORS]
    lines = []
    now = datetime.datetime.now(datetime.timezone.utc)
    lines.append("# libwref against its peers (`make bench%s`)" %
                 ("-quick" if a.quick else "") +
                 (", groups %s only" % a.only if a.only else ""))
    lines.append("")
    lines.append("* date: %s" % now.strftime("%Y-%m-%d %H:%M UTC"))
    lines.append("* machine: %d CPUs (`nproc`), %s, Linux %s; load average "
                 "%.2f at start" % (nproc, cpu_model(), platform.release(),
                                    load0))
    lines.append("* mode: %s, %d rounds, %g ms per timed window, %d latency "
                 "samples; peer order rotated each round; %.0f s in all" %
                 ("quick" if a.quick else "full", rounds, ms, lat,
                  time.time() - start))
    rev = version(["git", "-C", a.srcdir, "describe", "--always", "--dirty"])
    if rev != "n/a" and not rev.startswith("fatal"):
        lines.append("* libwref: commit %s" % rev)
    lines.append("* compilers: %s; %s; %s; Python %s" % (
        version(["gcc", "--version"]), version(["g++", "--version"]),
        version(["/usr/bin/rustc" if os.path.exists("/usr/bin/rustc")
                 else "rustc", "--version"]), platform.python_version()))
    lines.append("")
    method = "" if a.quick else ("each round runs one workload group at "
                                 "a time across all peers; ")
    lines.append("Cells: median over the rounds (interquartile range).  "
                 "Times are ns per operation per thread (lower is better), "
                 "latencies µs, memory bytes.  `libwref/limit` and "
                 "`speed-up` are computed within each round (side by side), "
                 "then summarised; best-of-rounds = libwref's fastest round "
                 "/ the limit's fastest round (noise only ever adds time); "
                 + method + "speed-up = best peer's cost / libwref's cost "
                 "(> 1: libwref is faster).  Absolute times on a small "
                 "shared machine are noise; the ratios are the result.")
    lines.append("")
    hdr = ["workload"] + cols + ["libwref/limit", "speed-up vs best peer",
                                 "target"]
    hdr_at = len(lines)
    lines.append("| " + " | ".join(hdr) + " |")
    lines.append("|" + "|".join(["---"] * len(hdr)) + "|")

    misses = []
    below_floor = False
    rows = list(ROWS)
    for t in threads:
        rows.append(("scale_get_%d" % t, "7. map get hit, %d thread%s: Mops/s"
                     " total" % (t, "s" if t > 1 else ""), "Mops", "scale"))
    for t in threads:
        rows.append(("scale_up_%d" % t, "7. upgrade+release, one object, %d "
                     "thread%s: Mops/s total" % (t, "s" if t > 1 else ""),
                     "Mops", None))
    if a.only:  # only the rows this run measured
        rows = [row for row in rows if any(
            (c, row[0], r) in data for c in cols for r in range(rounds))]
        if not rows:
            del lines[hdr_at:]
    for key, label, unit, target in rows:
        cells = [label]
        for c in cols:
            xs = [v for v in per_round(data, c, key, rounds) if v is not None]
            if unit == "µs":
                cell = fmt_cell(xs, 1e-3)
                if c in ("C++", "GLib", "Rust", "CPython") and \
                        c in names and not xs:
                    cell = "inline¹"
            elif unit == "Mops":
                t = int(key.rsplit("_", 1)[1])
                cell = fmt_cell([t * 1e3 / x for x in xs])
            else:
                cell = fmt_cell(xs, spread=(unit != "B"))
            if c == "libwref" and not xs and any(
                    v is not None for v in per_round(data, "limit", key,
                                                     rounds)):
                cell = "n/a (not built)"
            if c == "CPython" and key == "goc_churn_2t" and xs:
                cell += " ²"
            cells.append(cell)
        lw = per_round(data, "libwref", key, rounds)
        li = per_round(data, "limit", key, rounds)
        ratio = [w / l for w, l in zip(lw, li) if w and l]
        speed, speed_mx = [], []
        for r in range(rounds):
            w = lw[r]
            best = [data.get((c, key, r)) for c in COMPETITORS]
            best = [b for b in best if b]
            mx = [data.get((c, key, r)) for c in MUTEX_MAPS]
            mx = [b for b in mx if b]
            if w and best:
                speed.append(min(best) / w)
            if w and mx:
                speed_mx.append(min(mx) / w)
        if unit == "B":
            ratio_s = fmt_ratio(ratio[:1])
            speed_s = fmt_ratio(speed[:1])
        else:
            ratio_s = fmt_ratio(ratio)
            speed_s = fmt_ratio(speed)
        if a.quick and unit == "µs":
            # a few hundred samples: tail percentiles and the maximum are
            # not measured, and neither is their ratio
            ratio_s = "not measured in a quick run ³"
        elif unit != "B" and ratio and med(ratio) < 0.95:
            ratio_s += " ⁴"
            below_floor = True
        tgt = ""
        best = best_ratio(lw, li)
        best_s = " (best-of-rounds %.2f×)" % best if best else ""
        def vs_peers(peers_, want):
            # libwref's speed-up over each of @peers_ within each round
            out = []
            for c in peers_:
                xs = [pc / w for w, pc in zip(lw, per_round(data, c, key,
                                                            rounds))
                      if w and pc]
                if xs:
                    ok = med(xs) >= want
                    out.append((c, med(xs), ok))
            return out

        def judge(ok, text, miss):
            if not ok:
                misses.append((label, miss))
            return "%s: %s" % (text, "met" if ok else "**missed**")

        parts = []
        if target in ("up", "calloc", "map", "scale", "mutex", "cb") and \
                ratio:
            lim = {"up": 1.25, "calloc": 1.25, "map": 1.25, "scale": 1.25,
                   "mutex": 2.5, "cb": 2.0}[target]
            parts.append(judge(med(ratio) <= lim, "≤ %.2f× limit%s" % (
                lim, best_s), "%.2f× limit" % med(ratio)))
        if target == "up":
            for c, x, ok in vs_peers(["C++"], 1.0):
                parts.append(judge(ok, "faster than %s (%.2f×)" % (c, x),
                                   "%.2f× %s" % (x, c)))
        if target == "map":
            for c, x, ok in vs_peers(["C++", "GLib"], 1.3):
                parts.append(judge(ok, "≥ 1.3× %s (%.2f×)" % (c, x),
                                   "%.2f× %s" % (x, c)))
        if target == "weak2x":
            for c, x, ok in vs_peers(["C++"], 0.5):
                parts.append(judge(ok, "≤ 2× %s (%.2f×)" % (c, 1 / x),
                                   "%.2f× %s" % (1 / x, c)))
        if target == "lat" and not a.quick:
            xs = [v for v in lw if v is not None]
            if xs:
                ok = med(xs) * 1e-3 <= CB_LAT_P99_TARGET_US
                parts.append(judge(ok, "≤ %d µs" % CB_LAT_P99_TARGET_US,
                                   "%.1f µs" % (med(xs) * 1e-3)))
        if target in ("mem_ref", "mem_cbref", "mem_entry"):
            xs = [v for v in lw if v is not None]
            if xs:
                # the ref rows count the 8-byte pointer the user stores
                # beside the heap; the targets (issue 12: 64 B, 96 B with
                # a callback) are the heap per ref
                ref = target != "mem_entry"
                heap = xs[0] - (8 if ref else 0)
                lim = {"mem_ref": 64, "mem_cbref": 96}.get(target, 80)
                parts.append(judge(heap <= lim, "≤ %d B%s" % (
                    lim, " of heap (%.0f)" % heap if ref else ""),
                    "%.0f B" % heap))
        tgt = "; ".join(parts)
        cells += [ratio_s, speed_s, tgt]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("¹ GLib, C++, Rust and CPython run death callbacks inline on "
                 "the releasing thread (weak notify, deleter, Drop, weakref "
                 "callback); libwref hands them to its executor thread, so "
                 "only libwref and the limit (a wfcqueue hand-off to a "
                 "futex-sleeping consumer) have a latency.  "
                 "² CPython: one thread (the GIL serialises a second).")
    if a.quick:
        lines.append("")
        lines.append("³ A quick run takes %d latency samples: too few for "
                     "p99 and the maximum (a handful of samples each), so "
                     "libwref/limit is not given for the latency rows; "
                     "`make bench` takes 10000." % lat)
    if below_floor:
        lines.append("")
        lines.append("⁴ Below the limit, which is a floor for the same "
                     "work: the machine disturbed this measurement (load "
                     "average %.2f at start); the figure is noise, not a "
                     "result." % load0)
    lines.append("")
    lines.append("Peers: **limit** = raw `fetch_add`/`fetch_sub` (upgrade), "
                 "jemalloc `malloc`/`free` (create; ×2 with a weak ref; the "
                 "calloc row: `calloc`/`free`, as `wref_new` zeroes), "
                 "urcu-bp read lock + `cds_lfht_lookup` + `fetch_add` (map "
                 "get; for get-or-create the same lookup with every key "
                 "present, a lower bound), wfcqueue hand-off (callbacks), "
                 "payload / pointer / lfht node (memory).  **C++**: "
                 "`std::weak_ptr::lock()`, `std::shared_mutex` + "
                 "`std::unordered_map<std::string, std::weak_ptr<T>>` with "
                 "deleter-based removal.  **GLib**: `GWeakRef` on a GObject, "
                 "`GMutex` + `GHashTable` with weak-notify removal.  "
                 "**Rust**: `Arc`/`Weak::upgrade`, `RwLock<HashMap<String, "
                 "Weak<T>>>` with `Drop` removal.  **ck**: `ck_hs` (SPMC) + "
                 "`ck_epoch` + increment-if-not-zero (get path only).  "
                 "**CPython**: `weakref.ref()` call, `WeakValueDictionary`.  "
                 "All native peers use jemalloc as malloc; memory is "
                 "jemalloc `stats.allocated` deltas over 20000 objects "
                 "(CPython: tracemalloc); the weak-ref row adds the handle a user "
                 "stores, the entry row is measured on objects that already "
                 "have a weak ref.")
    lines.append("")
    lines += os_table(data, rounds, os_threads, os_ms, nproc, a.quick,
                      misses)
    if misses:
        lines.append("")
        lines.append("Targets missed in this run: " + "; ".join(
            "%s (%s)" % m for m in misses) + ".")
    if errors:
        lines.append("")
        lines.append("Errors: " + "; ".join(errors))
    lines.append("")
    lines.append("![throughput, memory, cost vs the limit, speed-up "
                 "vs the best peer](%s.png)" % stem)
    md = "\n".join(lines) + "\n"
    with open(os.path.join(out, stem + ".md"), "w") as f:
        f.write(md)
    with open(os.path.join(out, stem + ".tsv"), "w") as f:
        f.write("peer\tkey\tround\tvalue\n")
        for (p, k, r), v in sorted(data.items()):
            f.write("%s\t%s\t%d\t%g\n" % (p, k, r, v))
    plot(out, stem, data, rounds, threads, cols, ratio_rows(data, rounds),
         now, os_threads)
    sys.stdout.write(md)


def os_best(data, key, r, higher):
    """(value, peer) of the best locked peer in round r, or None"""
    vs = [(data.get((c, key, r)), c) for c in OS_LOCKED]
    vs = [v for v in vs if v[0]]
    if not vs:
        return None
    return max(vs) if higher else min(vs)


def os_table(data, rounds, os_threads, os_ms, nproc, quick, misses):
    """the oversubscription rows: one table, a row per thread count and
    quantity, a column per peer, libwref against the best locked peer of
    each round (side by side)"""
    ls = ["## 8. Threads outnumbering cores: mixed ops on a shared key "
          "space", ""]
    ls.append("%s threads on %d CPUs, 4096 keys, each thread: 90%% get "
              "(released at once), 4%% set of a fresh object, 3%% del, 3%% "
              "get-or-create; set and get-or-create results go into the "
              "thread's keep ring of 4096 refs (the release of the ref "
              "they evict is part of the op), so values die and their "
              "entries go as in the other map rows; each thread first sets "
              "its share of the keys.  Every op is timed with the TSC "
              "(calibrated against CLOCK_MONOTONIC over the window) into a "
              "per-thread log-linear histogram (2 significant digits; "
              "a percentile is its bucket's highest value), merged per "
              "run; throughput = ops ended in the %g ms window / the "
              "window.  The timer pair costs about %s ns per op (`os_clock`"
              ", in every figure of every peer).  Best locked peer = the "
              "best of %s in each round; the ratio is libwref's figure / "
              "that peer's (throughput: > 1 = libwref faster; latency: < 1 "
              "= libwref lower), computed per round, then summarised%s." % (
                  "/".join(map(str, os_threads)), nproc, os_ms,
                  fmt_num(med([v for (p, k, r), v in data.items()
                               if k == "os_clock" and p == "libwref"])),
                  ", ".join(OS_NAME.get(c, c) for c in OS_LOCKED),
                  "; a quick run measures 32 threads only, with a short "
                  "window: its tails are noisy" if quick else ""))
    ls.append("")
    hdr = (["threads", "quantity"] + [OS_NAME.get(c, c) for c in OS_COLS] +
           ["libwref / best locked peer", "target (issue 18)"])
    ls.append("| " + " | ".join(hdr) + " |")
    ls.append("|" + "|".join(["---"] * len(hdr)) + "|")
    for t in os_threads:
        for stem, label, unit, higher in OS_ROWS:
            key = "%s_%d" % (stem, t)
            cells = [str(t), label]
            for c in OS_COLS:
                xs = [v for v in per_round(data, c, key, rounds)
                      if v is not None]
                cells.append(fmt_cell(xs))
            ratio, who = [], []
            if higher is not None:
                for r in range(rounds):
                    w = data.get(("libwref", key, r))
                    b = os_best(data, key, r, higher)
                    if w and b:
                        ratio.append(w / b[0])
                        who.append(OS_NAME.get(b[1], b[1]))
            rs = fmt_ratio(ratio)
            if who:
                top = max(set(who), key=who.count)
                rs += " (best: %s%s)" % (top, "" if who.count(top) ==
                                         len(who) else ", %d of %d rounds"
                                         % (who.count(top), len(who)))
            tgt = ""
            if t == OS_TARGET_T and stem in OS_TARGETS and ratio:
                op, lim, text = OS_TARGETS[stem]
                m = med(ratio)
                ok = m >= lim if op == ">=" else m <= lim
                tgt = "%s: %s" % (text, "met" if ok else "**missed**")
                if not ok:
                    misses.append(("%d threads %s" % (t, label),
                                   "%.2f× the best locked peer" % m))
            cells += [rs if ratio else "", tgt]
            ls.append("| " + " | ".join(cells) + " |")
    return ls


STYLE = {  # one look per peer in every panel
    "libwref": "lw 3 pt 7 ps 1.2 lc rgb '#d62728'",
    "limit": "lw 2 dt 2 pt 1 lc rgb 'black'",
    "C++": "lw 2 pt 5 lc rgb '#1f77b4'",
    "GLib": "lw 2 pt 9 lc rgb '#2ca02c'",
    "Rust": "lw 2 pt 11 lc rgb '#ff7f0e'",
    "ck": "lw 2 pt 13 lc rgb '#9467bd'",
    "CPython": "lw 2 pt 3 lc rgb '#8c564b'",
}


def spread(xs):
    """(median, min, max) of the figures that exist, or None"""
    xs = [x for x in xs if x is not None]
    return (med(xs), min(xs), max(xs)) if xs else None


COLOR = {c: re.search(r"#[0-9a-f]{6}|black", st).group(0).replace("black", "#000000") for c, st in STYLE.items()}


def ratio_rows(data, rounds):
    """(label, libwref/limit spread, speed-up spread) per workload, each
    ratio computed within a round (side by side)"""
    rows = []
    for key, label in PLOT_LABEL.items():
        lw = per_round(data, "libwref", key, rounds)
        li = per_round(data, "limit", key, rounds)
        ratio = [w / l for w, l in zip(lw, li) if w and l]
        speed = []
        for r in range(rounds):
            best = [data.get((c, key, r)) for c in COMPETITORS]
            best = [b for b in best if b]
            if lw[r] and best:
                speed.append(min(best) / lw[r])
        rows.append((label, spread(ratio), spread(speed)))
    return rows


def replot(out, stem):
    """the plot again from STEM.tsv (after a change of the plot only)"""
    data = {}
    with open(os.path.join(out, stem + ".tsv")) as f:
        next(f)
        for line in f:
            p, k, r, v = line.rstrip("\n").split("\t")
            data[(p, k, int(r))] = float(v)
    rounds = 1 + max(r for _, _, r in data)
    threads = sorted({int(k.rsplit("_", 1)[1]) for _, k, _ in data
                      if k.startswith("scale_get_")}) or thread_counts()[1]
    mtime = datetime.datetime.fromtimestamp(
        os.path.getmtime(os.path.join(out, stem + ".tsv")),
        datetime.timezone.utc)
    os_threads = sorted({int(k.rsplit("_", 1)[1]) for _, k, _ in data
                         if k.startswith("os_mops_")})
    plot(out, stem, data, rounds, threads,
         ["libwref", "limit"] + COMPETITORS, ratio_rows(data, rounds), mtime,
         os_threads)


# a panel with nothing measured in this run (e.g. suite.py --only): fixed
# ranges, so gnuplot has nothing to autoscale on
EMPTY_PANEL = ("set label 9 'not measured in this run' at graph 0.5,0.5 "
               "center\nplot %s NaN notitle\nunset label 9")


def plot(out, stem, data, rounds, threads, cols, plot_rows, now,
         os_threads=()):
    """eight panels, one quantity each: throughput vs threads (map get;
    upgrade of one shared object), bytes per object / weak ref / entry,
    cost relative to the limit, speed-up over the best peer; threads
    outnumbering cores (mixed ops): throughput, p99 and p99.9 latency vs
    threads.  Points are medians over the rounds, bars the range (min-max)
    over the rounds."""
    gp = shutil.which("gnuplot")
    if not gp:
        print("suite: gnuplot not found (apt-get install gnuplot-nox): no "
              "plot", file=sys.stderr)
        return
    tmp = os.path.join(out, ".plot")
    os.makedirs(tmp, exist_ok=True)

    def scaling(prefix):
        series = []
        for c in cols:
            pts = []
            for t in threads:
                xs = [t * 1e3 / v for v in per_round(
                    data, c, "%s_%d" % (prefix, t), rounds) if v]
                if xs:
                    pts.append((t, med(xs), min(xs), max(xs)))
            if pts:
                fn = os.path.join(tmp, "%s_%d.dat" % (prefix, len(series)))
                with open(fn, "w") as f:
                    for t, m, lo, hi in pts:
                        f.write("%d %g %g %g\n" % (t, m, lo, hi))
                series.append((c, fn))
        return series
    get_series = scaling("scale_get")
    up_series = scaling("scale_up")

    def os_series(stem_key):
        series = []
        for c in OS_COLS:
            pts = []
            for t in os_threads:
                xs = [v for v in per_round(
                    data, c, "%s_%d" % (stem_key, t), rounds) if v]
                if xs:
                    pts.append((t, med(xs), min(xs), max(xs)))
            if pts:
                fn = os.path.join(tmp, "%s_%d.dat" % (stem_key, len(series)))
                with open(fn, "w") as f:
                    for t, m, lo, hi in pts:
                        f.write("%d %g %g %g\n" % (t, m, lo, hi))
                series.append((c, fn))
        return series

    # memory: one row per quantity, one column per peer (bytes)
    mem = os.path.join(tmp, "mem.dat")
    mem_cols = [c for c in cols if any(
        data.get((c, k, r)) is not None for k, _ in MEM_ROWS
        for r in range(rounds))]
    with open(mem, "w") as f:
        f.write('"" %s\n' % " ".join('"%s"' % c for c in mem_cols))
        for k, label in MEM_ROWS:
            vals = []
            for c in mem_cols:
                xs = [v for v in per_round(data, c, k, rounds)
                      if v is not None]
                vals.append("%g" % med(xs) if xs else "NaN")
            f.write('"%s" %s\n' % (label, " ".join(vals)))

    # ratios: one line per workload, y = position (top to bottom)
    rat = os.path.join(tmp, "ratios.dat")
    n = len(plot_rows)
    with open(rat, "w") as f:
        for i, (label, ra, sp) in enumerate(plot_rows):
            y = n - i
            cell = lambda t: "%g %g %g" % t if t else "NaN NaN NaN"
            f.write('%d "%s" %s %s\n' % (y, label, cell(ra), cell(sp)))

    # a run of the oversubscription group alone (suite.py --only oversub):
    # its row only
    only_os = not (get_series or up_series or mem_cols or any(
        ra or sp for _, ra, sp in plot_rows))
    height = 700 if only_os else 1850
    term = "pngcairo size 1900,%d font ',11'" % height
    probe = subprocess.run([gp, "-e", "set terminal pngcairo"],
                           capture_output=True, text=True)
    if probe.returncode != 0 or probe.stderr.strip():
        term = "png size 1900,%d" % height
    title = ("libwref vs peers, %s, %d CPUs, %d rounds%s: point = median "
             "over the rounds, bar = range (min to max)" % (
                 now.strftime("%Y-%m-%d"), threads[-1], rounds,
                 " (make bench-quick: short and noisy)" if stem == "quick"
                 else ""))
    sc = ["set terminal %s" % term,
          "set output '%s'" % os.path.join(out, stem + ".png"),
          "set multiplot title \"%s\"" % title,
          "set grid", "set key top left box opaque",
          "set bars small"]
    upper = []  # the top and middle rows, left out when only_os
    # top row: two scaling panels and memory, each a third of the width
    for k, (ptitle, series) in enumerate((
            ("map get, key present: throughput vs threads", get_series),
            ("upgrade + release of one shared object: throughput vs "
             "threads", up_series))):
        upper += ["set size 0.33,0.31", "set origin %g,0.67" % (k * 0.33),
               "set title '%s'" % ptitle,
               "set xlabel 'threads'",
               "set ylabel 'million operations per second, all threads "
               "(higher is better)'",
               "set xtics (%s)" % ", ".join(str(t) for t in threads),
               "set xrange [0.7:%g]" % (threads[-1] + 0.3),
               "set yrange [0:*]", "set offsets 0, 0, graph 0.3, 0"]
        if series:  # series side by side around each thread count
            upper.append("plot " + ", ".join(
                "'%s' using ($1%+.3f):2:3:4 with yerrorlines %s title '%s'" % (
                    fn, 0.03 * (i - (len(series) - 1) / 2),
                    STYLE.get(c, "lw 2"), c)
                for i, (c, fn) in enumerate(series)))
        else:
            upper.append(EMPTY_PANEL % "[][0:1]")
    upper += ["set size 0.34,0.31", "set origin 0.66,0.67",
           "set title 'memory (jemalloc stats.allocated per item; "
           "CPython: tracemalloc)'",
           "set xlabel \"object: 16-byte payload + header;  weak ref: "
           "handle + heap;\\nmap entry: on an object that already has a "
           "weak ref\"",
           "set ylabel 'bytes (lower is better)'",
           "unset xrange", "set yrange [0:*]", "set offsets 0, 0, 0, 0",
           "set style data histograms",
           "set style histogram clustered gap 1",
           "set style fill solid 0.85 border -1", "set boxwidth 0.9",
           "set xtics scale 0", "set key top left",
           ("plot " + ", ".join(
               "'%s' using %d:xtic(1) title columnheader(%d) lc rgb '%s'" % (
                   mem, i + 2, i + 2, COLOR.get(c, "gray"))
               for i, c in enumerate(mem_cols))) if mem_cols else
           EMPTY_PANEL % "[0:1][0:1]",
           "set style data points", "unset style histogram"]
    # bottom row: cost vs the limit, speed-up vs the best peer
    common = ["set ytics (%s)" % ", ".join(
                  '"%s" %d' % (lab, n - i)
                  for i, (lab, _, _) in enumerate(plot_rows)),
              "set yrange [0.4:%g]" % (n + 0.6), "set ylabel ''",
              "set logscale x", "set xtics auto", "unset key",
              "set grid xtics noytics"]
    upper += ["set size 0.5,0.32", "set origin 0.0,0.34",
           "set lmargin 40"] + common + [
           "set title 'cost of libwref relative to the limit (the "
           "hardware floor for the same work)'",
           "set xlabel 'libwref time / limit time, log scale (lower is "
           "better; 1 = at the limit)'",
           "set xrange [*:*]",
           "set arrow 1 from 1, graph 0 to 1, graph 1 nohead dt 2 lw 2 "
           "lc rgb 'black'",
           ("plot '%s' using 3:1:4:5 with xerrorbars pt 7 ps 1.5 lw 2 "
            "lc rgb '%s' notitle" % (rat, COLOR["libwref"])) if any(
                ra for _, ra, _ in plot_rows) else EMPTY_PANEL % "[0.1:10][]",
           "set origin 0.5,0.34",
           "set title 'speed-up of libwref over the fastest peer in each "
           "round'",
           "set xlabel 'fastest peer time / libwref time, log scale "
           "(higher is better; > 1 = libwref faster)'",
           "set xrange [*:*]",
           ("plot '%s' using 6:1:7:8 with xerrorbars pt 7 ps 1.5 lw 2 "
            "lc rgb '#1f77b4' notitle" % rat) if any(
                sp for _, _, sp in plot_rows) else EMPTY_PANEL % "[0.1:10][]"]
    if not only_os:
        sc += upper
    # bottom row: threads outnumbering cores, mixed ops (log-2 thread axis)
    sc += ["unset arrow 1", "set lmargin -1", "unset logscale",
           "set ytics auto", "set grid", "set key below horizontal box",
           "set bmargin 7",
           "set xlabel 'threads (on %d CPUs)'" % threads[-1],
           "set logscale x 2",
           "set xtics (%s)" % ", ".join(str(t) for t in os_threads or [32]),
           "set xrange [%g:%g]" % (min(os_threads or [32]) / 1.5,
                                   max(os_threads or [32]) * 1.5),
           "set offsets 0, 0, 0, 0"]
    for k, (stem_key, ptitle, ylab, logy) in enumerate((
            ("os_mops", "threads > cores, mixed ops (90% get): throughput",
             "million operations per second, all threads (higher is "
             "better)", False),
            ("os_p99", "threads > cores, mixed ops: p99 latency per op",
             "ns, log scale (lower is better)", True),
            ("os_p999", "threads > cores, mixed ops: p99.9 latency per op",
             "ns, log scale (lower is better)", True))):
        series = os_series(stem_key)
        sc += ["set size 0.33,%g" % (0.93 if only_os else 0.32),
               "set origin %g,0.0" % (k * 0.33),
               "set title '%s'" % ptitle, "set ylabel '%s'" % ylab]
        sc += (["set logscale y", "set yrange [*:*]", "set format y '%g'"]
               if logy else ["unset logscale y", "set yrange [0:*]"])
        if series:  # series side by side around each thread count
            sc.append("plot " + ", ".join(
                "'%s' using ($1*%g):2:3:4 with yerrorlines %s title '%s'" % (
                    fn, 2 ** (0.04 * (i - (len(series) - 1) / 2)),
                    STYLE.get(c, "lw 2"), OS_NAME.get(c, c))
                for i, (c, fn) in enumerate(series)))
        else:
            sc.append(EMPTY_PANEL % "[][1:10]")
    sc.append("unset multiplot")
    r = subprocess.run([gp], input="\n".join(sc) + "\n",
                       capture_output=True, text=True)
    if r.returncode != 0 or r.stderr.strip():
        print("suite: gnuplot: %s" % r.stderr, file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
