#!/usr/bin/env python3
"""suite.py - libwref against real peers (issue 6): `make bench` runs it.

Runs every peer binary (bench/peers/*) in rounds, rotating their order each
round so that every peer sees the same machine conditions, and writes

  bench/results/latest.md   (quick.md with --quick) one row per workload: median and min-max over
                            the rounds for libwref, the physical limit and
                            each peer; libwref/limit and the speed-up of
                            libwref over the best peer, both computed per
                            round (side by side) and then summarised
  bench/results/latest.png  thread scaling of map get + the per-workload
                            ratios (gnuplot)
  bench/results/latest.tsv  every raw figure (peer, key, round, value)

  --quick       5 short rounds (under a minute on 2 cores)
  --rounds N    rounds (default 5 quick, 9 full)
  --ms MS       timed window per measurement (default 15 quick, 200 full)
  --bindir DIR  where the peer binaries were built (default: cwd)
  --srcdir DIR  the source tree (default: this file's parent's parent)
  --out DIR     results directory (default: SRCDIR/bench/results)
  --name STEM   output file names (default latest, or quick with --quick)
  --replot      only redraw STEM.png from STEM.tsv
"""
import argparse
import datetime
import os
import platform
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
GROUPS = ["memory", "upgrade", "create", "get", "churn", "callbacks"]
GROUPS_OF = {"ck": ["memory", "get"]}  # what a peer implements (default all)
MUTEX_MAPS = ["C++", "GLib", "Rust"]  # lock-based weak caches

# key, label, unit, target
ROWS = [
    ("up_1t", "1. upgrade+release, 1 thread", "ns", "up"),
    ("up_2t_own", "1. upgrade+release, 2 threads, own objects", "ns", "up"),
    ("up_2t_shared", "1. upgrade+release, 2 threads, one object", "ns", "up"),
    ("new_rel", "2. create+release", "ns", None),
    ("new_rel_weak", "2. create+release, one weak ref", "ns", None),
    ("get_hit_1t", "3. map get hit, 1 thread", "ns", "map"),
    ("get_hit_2t", "3. map get hit, 2 threads", "ns", "map"),
    ("get_miss_1t", "3. map get miss, 1 thread", "ns", "map"),
    ("get_miss_2t", "3. map get miss, 2 threads", "ns", "map"),
    ("goc_churn_2t", "4. get-or-create, Zipf churn, 2 threads", "ns", "mutex"),
    ("cb_tput", "5. death callbacks: time per callback", "ns", None),
    ("cb_lat_p50", "5. death→callback latency p50", "µs", None),
    ("cb_lat_p99", "5. death→callback latency p99", "µs", None),
    ("cb_lat_max", "5. death→callback latency max", "µs", None),
    ("mem_obj", "6. bytes per object (16 B payload)", "B", None),
    ("mem_ref", "6. bytes per weak ref (handle + heap)", "B", None),
    ("mem_entry", "6. bytes per map entry", "B", None),
]
SHORT = {
    "up_1t": "up 1t", "up_2t_own": "up 2t own", "up_2t_shared": "up 2t shr",
    "new_rel": "new", "new_rel_weak": "new+weak", "get_hit_1t": "hit 1t",
    "get_hit_2t": "hit 2t", "get_miss_1t": "miss 1t", "get_miss_2t": "miss 2t",
    "goc_churn_2t": "goc churn", "cb_tput": "callback", "mem_obj": "B/obj",
    "mem_ref": "B/ref", "mem_entry": "B/entry",
}


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
    ap.add_argument("--bindir", default=".")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--srcdir", default=os.path.dirname(here))
    ap.add_argument("--out")
    ap.add_argument("--name", help="file stem (default latest, quick)")
    ap.add_argument("--replot", action="store_true",
                    help="only redraw STEM.png from STEM.tsv")
    a = ap.parse_args()
    rounds = a.rounds or (5 if a.quick else 9)
    ms = a.ms or (15.0 if a.quick else 200.0)
    lat = a.lat or (500 if a.quick else 10000)
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
                                        ",".join(map(str, threads))]))
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
    for r in range(rounds):
        for gi, group in enumerate(groups):
            ps = [p for p in peers
                  if group is None or group in GROUPS_OF.get(p[0], GROUPS)]
            k = (r + gi) % len(ps)
            for name, argv in ps[k:] + ps[:k]:
                only = ["--only", group] if group else []
                vals, err = run_peer(argv + only, timeout=60 + ms * 0.2)
                if err:
                    errors.append("%s %s round %d: %s" % (name, group, r,
                                                          err))
                for key, v in vals.items():
                    data[(name, key, r)] = v
        print("suite: round %d/%d done (%.0f s)" % (r + 1, rounds,
              time.time() - start), file=sys.stderr)
    # CPython's get-or-create is single-threaded: shown in the churn row
    for r in range(rounds):
        v = data.get(("CPython", "goc_churn_1t", r))
        if v is not None:
            data[("CPython", "goc_churn_2t", r)] = v

    cols = ["libwref", "limit"] + [c for c in COMPETITORS]
    lines = []
    now = datetime.datetime.now(datetime.timezone.utc)
    lines.append("# libwref against its peers (`make bench%s`)" %
                 ("-quick" if a.quick else ""))
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
    lines.append("| " + " | ".join(hdr) + " |")
    lines.append("|" + "|".join(["---"] * len(hdr)) + "|")

    misses = []
    rows = list(ROWS)
    for t in threads:
        rows.append(("scale_get_%d" % t, "7. map get hit, %d thread%s: Mops/s"
                     " total" % (t, "s" if t > 1 else ""), "Mops", "scale"))
    for t in threads:
        rows.append(("scale_up_%d" % t, "7. upgrade+release, one object, %d "
                     "thread%s: Mops/s total" % (t, "s" if t > 1 else ""),
                     "Mops", None))
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
        tgt = ""
        best = best_ratio(lw, li)
        best_s = " (best-of-rounds %.2f×)" % best if best else ""
        if target == "up" and ratio:
            ok = med(ratio) <= 1.10
            tgt = "≤ 1.10× limit: %s%s" % ("met" if ok else "**missed**",
                                          best_s)
            if not ok:
                misses.append((label, "%.2f× limit" % med(ratio)))
        elif target in ("map", "scale") and ratio:
            ok = med(ratio) <= 1.25
            tgt = "≤ 1.25× limit: %s%s" % ("met" if ok else "**missed**",
                                          best_s)
            if not ok:
                misses.append((label, "%.2f× limit" % med(ratio)))
            if target == "map" and speed_mx:
                ok2 = med(speed_mx) >= 3
                tgt += "; ≥ 3× mutex maps: %s (%.1f×)" % (
                    "met" if ok2 else "**missed**", med(speed_mx))
                if not ok2:
                    misses.append((label, "%.1f× the best mutex map" %
                                   med(speed_mx)))
        elif target == "mutex" and speed_mx:
            ok2 = med(speed_mx) >= 3
            tgt = "≥ 3× mutex maps: %s (%.1f×)" % (
                "met" if ok2 else "**missed**", med(speed_mx))
            if not ok2:
                misses.append((label, "%.1f× the best mutex map" %
                               med(speed_mx)))
        cells += [ratio_s, speed_s, tgt]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("¹ GLib, C++, Rust and CPython run death callbacks inline on "
                 "the releasing thread (weak notify, deleter, Drop, weakref "
                 "callback); libwref hands them to its executor thread, so "
                 "only libwref and the limit (a wfcqueue hand-off to a "
                 "futex-sleeping consumer) have a latency.  "
                 "² CPython: one thread (the GIL serialises a second).")
    lines.append("")
    lines.append("Peers: **limit** = raw `fetch_add`/`fetch_sub` (upgrade), "
                 "jemalloc `malloc`/`free` (create; ×2 with a weak ref), "
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
    if misses:
        lines.append("")
        lines.append("Targets missed in this run: " + "; ".join(
            "%s (%s)" % m for m in misses) + ".")
    if errors:
        lines.append("")
        lines.append("Errors: " + "; ".join(errors))
    lines.append("")
    lines.append("![scaling and ratios](%s.png)" % stem)
    md = "\n".join(lines) + "\n"
    with open(os.path.join(out, stem + ".md"), "w") as f:
        f.write(md)
    with open(os.path.join(out, stem + ".tsv"), "w") as f:
        f.write("peer\tkey\tround\tvalue\n")
        for (p, k, r), v in sorted(data.items()):
            f.write("%s\t%s\t%d\t%g\n" % (p, k, r, v))
    plot(out, stem, data, rounds, threads, cols, ratio_rows(data, rounds),
         now)
    sys.stdout.write(md)


STYLE = {  # one look per peer in every panel
    "libwref": "lw 3 pt 7 ps 1.2 lc rgb '#d62728'",
    "limit": "lw 2 dt 2 pt 1 lc rgb 'black'",
    "C++": "lw 2 pt 5 lc rgb '#1f77b4'",
    "GLib": "lw 2 pt 9 lc rgb '#2ca02c'",
    "Rust": "lw 2 pt 11 lc rgb '#ff7f0e'",
    "ck": "lw 2 pt 13 lc rgb '#9467bd'",
    "CPython": "lw 2 pt 3 lc rgb '#8c564b'",
}


def ratio_rows(data, rounds):
    """(short label, median libwref/limit, median speed-up) per workload"""
    rows = []
    for key, short in SHORT.items():
        lw = per_round(data, "libwref", key, rounds)
        li = per_round(data, "limit", key, rounds)
        ratio = [w / l for w, l in zip(lw, li) if w and l]
        speed = []
        for r in range(rounds):
            best = [data.get((c, key, r)) for c in COMPETITORS]
            best = [b for b in best if b]
            if lw[r] and best:
                speed.append(min(best) / lw[r])
        rows.append((short, med(ratio) if ratio else None,
                     med(speed) if speed else None))
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
                      if k.startswith("scale_get_")})
    mtime = datetime.datetime.fromtimestamp(
        os.path.getmtime(os.path.join(out, stem + ".tsv")),
        datetime.timezone.utc)
    plot(out, stem, data, rounds, threads,
         ["libwref", "limit"] + COMPETITORS, ratio_rows(data, rounds), mtime)


def plot(out, stem, data, rounds, threads, cols, plot_rows, now):
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
                xs = [v for v in per_round(data, c, "%s_%d" % (prefix, t),
                                           rounds) if v]
                if xs:
                    pts.append((t, t * 1e3 / med(xs)))
            if pts:
                fn = os.path.join(tmp, "%s_%d.dat" % (prefix, len(series)))
                with open(fn, "w") as f:
                    for t, v in pts:
                        f.write("%d %g\n" % (t, v))
                series.append((c, fn))
        return series
    get_series = scaling("scale_get")
    up_series = scaling("scale_up")
    bars = os.path.join(tmp, "bars.dat")
    with open(bars, "w") as f:
        for lab, ra, sp in plot_rows:
            f.write('"%s" %s %s\n' % (lab, "%g" % ra if ra else "NaN",
                                      "%g" % sp if sp else "NaN"))
    term = "pngcairo size 1900,640 font ',10'"
    probe = subprocess.run([gp, "-e", "set terminal pngcairo"],
                           capture_output=True, text=True)
    if probe.returncode != 0 or probe.stderr.strip():
        term = "png size 1900,640"
    script = ["set terminal %s" % term,
              "set output '%s'" % os.path.join(out, stem + ".png"),
              "set multiplot layout 1,3 title 'libwref vs peers, %s, %d CPUs"
              " (medians of the rounds)'" % (now.strftime("%Y-%m-%d"),
                                            threads[-1]),
              "set xlabel 'threads'", "set ylabel 'Mops/s (total)'",
              "set key top left", "set grid",
              "set offsets 0, 0, graph 0.35, 0",  # headroom for the key
              "set xtics (%s)" % ", ".join(str(t) for t in threads),
              "set xrange [0.8:%g]" % (threads[-1] + 0.2),
              "set yrange [0:*]"]
    for title, series in (("map get hit: throughput vs threads", get_series),
                          ("upgrade+release of one shared object",
                           up_series)):
        script.append("set title '%s'" % title)
        if series:
            script.append("plot " + ", ".join(
                "'%s' using 1:2 with linespoints %s title '%s'" % (
                    fn, STYLE.get(c, "lw 2"), c)
                for c, fn in series))
        else:
            script.append("plot NaN notitle")
    script += ["set title 'per workload'",
               "set xlabel ''", "set ylabel 'ratio (log scale)'",
               "set logscale y", "set yrange [*:*]", "unset xrange",
               "set offsets 0, 0, 0, 0",
               "set style data histograms",
               "set style histogram clustered gap 1",
               "set style fill solid 0.8 border -1", "set boxwidth 0.9",
               "set xtics auto", "set xtics rotate by -45 scale 0",
               "set key top right",
               "plot '%s' using 2:xtic(1) title 'libwref / limit (cost, 1 = "
               "at the limit)', '' using 3 title 'speed-up vs best peer "
               "(> 1: libwref faster)', 1 with lines dt 2 lc rgb 'black' "
               "notitle" % bars,
               "unset multiplot"]
    r = subprocess.run([gp], input="\n".join(script) + "\n",
                       capture_output=True, text=True)
    if r.returncode != 0:
        print("suite: gnuplot failed: %s" % r.stderr, file=sys.stderr)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
