#!/usr/bin/env python3
"""check_imports.py - lib/ imports only downward (issue 14 item 2).

The import graph of lib/: module A imports module B when A's object file
references a global symbol B's object file defines (nm over the static
core library, one member per lib/*.c).  The graph must have no cycle;
the test prints it in topological order, lowest layer first.  As a
control, a graph with a cycle is checked first and must be reported (so a
broken checker cannot pass vacuously).

usage: check_imports.py [ARCHIVE]   (default lib/.libs/libwref_core.a)
exit 77 (SKIP) without the archive or nm.
"""
import collections
import re
import shutil
import subprocess
import sys


def graph_of(archive):
    out = subprocess.run(["nm", "-A", archive], capture_output=True,
                         text=True, check=True).stdout
    defs, uses = {}, collections.defaultdict(set)
    for line in out.splitlines():
        m = re.match(r"[^:]*:(?:\w+_la-)?(\w+)\.o:\s*(?:[0-9a-f]+)?\s+(\w)\s+(\S+)$",
                     line)
        if not m:
            continue
        mod, kind, sym = m.groups()
        uses.setdefault(mod, set())
        if kind == "U":
            uses[mod].add(sym)
        elif kind.isupper():
            defs[sym] = mod
    g = {mod: set() for mod in uses}
    why = collections.defaultdict(set)
    for mod, syms in uses.items():
        for s in syms:
            d = defs.get(s)
            if d and d != mod:
                g[mod].add(d)
                why[(mod, d)].add(s)
    return g, why


def find_cycle(g):
    """a cycle as a list of modules, or None (iterative DFS)"""
    WHITE, GREY, BLACK = 0, 1, 2
    color = {v: WHITE for v in g}
    for root in sorted(g):
        if color[root] != WHITE:
            continue
        stack = [(root, iter(sorted(g[root])))]
        path = [root]
        color[root] = GREY
        while stack:
            v, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                color[v] = BLACK
                stack.pop()
                path.pop()
                continue
            if color.get(nxt, WHITE) == GREY:
                return path[path.index(nxt):] + [nxt]
            if color.get(nxt, WHITE) == WHITE:
                color[nxt] = GREY
                stack.append((nxt, iter(sorted(g.get(nxt, ())))))
                path.append(nxt)
    return None


def layers(g):
    """topological order, lowest first (modules importing nothing first)"""
    order, done = [], set()
    while len(done) < len(g):
        ready = sorted(v for v in g if v not in done and g[v] <= done)
        order.append(ready)
        done.update(ready)
    return order


def main():
    control = {"object": {"ref"}, "ref": {"alloc", "object"}, "alloc": set()}
    if find_cycle(control) != ["object", "ref", "object"]:
        print("FAIL: the control graph's cycle object -> ref -> object "
              "was not found")
        return 1
    archive = sys.argv[1] if len(sys.argv) > 1 else "lib/.libs/libwref_core.a"
    if not shutil.which("nm"):
        print("SKIP: no nm")
        return 77
    try:
        g, why = graph_of(archive)
    except (OSError, subprocess.CalledProcessError):
        print("SKIP: cannot read", archive)
        return 77
    if len(g) < 10:
        print("FAIL: only %d modules found in %s" % (len(g), archive))
        return 1
    cyc = find_cycle(g)
    if cyc:
        print("FAIL: import cycle in lib/: " + " -> ".join(cyc))
        for a, b in zip(cyc, cyc[1:]):
            print("  %s -> %s: %s" % (a, b, ", ".join(sorted(why[(a, b)]))))
        return 1
    print("lib/ import graph (no cycle), lowest layer first:")
    for i, layer in enumerate(layers(g)):
        for v in layer:
            print("  %d %-9s -> %s" % (i, v, " ".join(sorted(g[v])) or "-"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
