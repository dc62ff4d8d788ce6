#!/usr/bin/env python3
"""py_bench.py - the CPython peer (single-threaded reference point).

weakref.ref() call, object creation with and without a weak ref,
WeakValueDictionary.get hit/miss, setdefault-style get-or-create under the
same Zipf churn (one thread: the GIL serialises a second one), weakref
callbacks (run inline at death), and bytes per object / weak ref / entry
from tracemalloc.  Prints the same "key value" lines as the C peers; the
figures include the interpreter's loop overhead, which is what a Python
program pays.
"""
import gc
import sys
import time
import tracemalloc
import weakref

NKEYS = 16384
CHURN_KEYS = 65536
ZIPF_S = 0.99
RING = 256
SEQ = 65536
MEM_N = 20000
M64 = (1 << 64) - 1


class Obj:
    __slots__ = ("key", "pad", "__weakref__")

    def __init__(self):
        self.key = 0
        self.pad = 0


def xs(s):
    s ^= (s << 13) & M64
    s ^= s >> 7
    s ^= (s << 17) & M64
    return s


def key(i):
    return "k:%010u" % i


def zipf_seq(n, length, tid):
    cdf, total = [], 0.0
    for i in range(n):
        total += 1.0 / float(i + 1) ** ZIPF_S
        cdf.append(total)
    import bisect
    s = (0x1234567 + 7919 * (tid + 1)) & M64
    out = []
    for _ in range(length):
        s = xs(s)
        u = (s >> 11) / 9007199254740992.0 * total
        lo = min(bisect.bisect_left(cdf, u), n - 1)
        out.append((lo * 2654435761) % n)
    return out


def timed(ms, fn):
    """runs fn(n) (n ops) until ms elapsed after a warm-up; ns per op"""
    n = 256
    end = time.perf_counter() + ms / 4000.0
    while time.perf_counter() < end:
        fn(n)
    ops, t0 = 0, time.perf_counter()
    end = t0 + ms / 1000.0
    while True:
        fn(n)
        ops += n
        t = time.perf_counter()
        if t >= end:
            break
    return (t - t0) * 1e9 / ops


def out(k, v):
    print("%s %.4f" % (k, v), flush=True)


def main():
    ms, only = 30.0, None
    a = sys.argv[1:]
    for i, x in enumerate(a):
        if x == "--ms":
            ms = float(a[i + 1])
        elif x == "--only":
            only = a[i + 1]

    def want(g):
        return only is None or only == g
    gc.disable()  # no collector pauses inside timed loops (refcounting frees)

    keys = [key(i) for i in range(2 * NKEYS)]
    # 6. memory
    if want("memory"):
        memory(keys)
    if want("upgrade"):
        upgrade(ms)
    if want("create"):
        create(ms)
    if want("get"):
        get(ms, keys)
    if want("churn"):
        churn(ms)
    if want("callbacks"):
        callbacks(ms)


def memory(keys):
    tracemalloc.start()
    objs = [None] * MEM_N
    refs = [None] * MEM_N
    m0 = tracemalloc.get_traced_memory()[0]
    for i in range(MEM_N):
        objs[i] = Obj()
    m1 = tracemalloc.get_traced_memory()[0]
    for i in range(MEM_N):
        refs[i] = weakref.ref(objs[i])
    m2 = tracemalloc.get_traced_memory()[0]
    d = weakref.WeakValueDictionary()
    for i in range(MEM_N):
        d[keys[i]] = objs[i]
    m3 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    out("mem_obj", (m1 - m0) / MEM_N)
    out("mem_ref", (m2 - m1) / MEM_N + 8)  # + the list slot holding it
    out("mem_entry", (m3 - m2) / MEM_N)
    del objs, refs, d


def upgrade(ms):
    # 1. upgrade + release: call the ref, drop the result
    o = Obj()
    r = weakref.ref(o)

    def up(n):
        for _ in range(n):
            r()
    out("up_1t", timed(ms, up))
    out("scale_up_1", timed(ms, up))


def create(ms):
    # 2. create + release
    def new(n):
        for _ in range(n):
            Obj()

    def new_weak(n):
        ref = weakref.ref
        for _ in range(n):
            x = Obj()
            w = ref(x)
            del x, w
    out("new_rel", timed(ms, new))
    out("new_rel_weak", timed(ms, new_weak))


def get(ms, keys):
    # 3. WeakValueDictionary get
    d = weakref.WeakValueDictionary()
    keep = [Obj() for _ in range(NKEYS)]
    for i in range(NKEYS):
        d[keys[i]] = keep[i]
    s = 0x9e3779b97f4a7c15
    hit_seq, miss_seq = [], []
    for _ in range(4096):
        s = xs(s)
        hit_seq.append(keys[s & (NKEYS - 1)])
        miss_seq.append(keys[NKEYS + (s & (NKEYS - 1))])

    def get_run(seq):
        def f(n):
            g = d.get
            for i in range(n):
                g(seq[i & 4095])
        return f
    out("get_hit_1t", timed(ms, get_run(hit_seq)))
    out("get_miss_1t", timed(ms, get_run(miss_seq)))
    out("scale_get_1", timed(ms, get_run(hit_seq)))


def churn(ms):
    # 4. get-or-create under churn (1 thread; reported as such)
    ck = [key(i) for i in range(CHURN_KEYS)]
    zs = zipf_seq(CHURN_KEYS, SEQ, 0)
    cache = weakref.WeakValueDictionary()
    ring = [None] * RING
    pos = [0]

    def goc(n):
        p = pos[0]
        g = cache.get
        for _ in range(n):
            k = ck[zs[p & (SEQ - 1)]]
            x = g(k)
            if x is None:
                x = cache.setdefault(k, Obj())
            ring[p & (RING - 1)] = x
            p += 1
        pos[0] = p
    out("goc_churn_1t", timed(ms, goc))


def callbacks(ms):
    # 5. weakref callbacks, inline at death
    cnt = [0]

    def cb(w):
        cnt[0] += 1

    def cbs(n):
        ref = weakref.ref
        for _ in range(n):
            x = Obj()
            w = ref(x, cb)
            del x
            del w
    out("cb_tput", timed(ms, cbs))


if __name__ == "__main__":
    main()
