#!/usr/bin/env python3
"""mkman.py - libwref's section-3 manual pages, made at build time.

One source per page: include/wref.h gives every page its SYNOPSIS (the
types and prototypes, verbatim) and the per-function entries of its
DESCRIPTION (the comment above each prototype); man/AREA.3.in gives the
rest (overview, RETURN VALUE, ERRORS, THREAD SAFETY, SEE ALSO) in troff,
with @FUNCTIONS@ where the per-function entries go.  Every public function
that has no page of its own gets a link page (".so man3/AREA.3").

  mkman.py --header include/wref.h --in man --out man [--version V]
      write the pages
  mkman.py --header include/wref.h --mk
      print man/man.mk (the page list for Makefile.am); make check compares
      it with the committed one, so a new function cannot miss its page
"""
import argparse
import os
import re
import sys

# page, one-line summary, types shown in its SYNOPSIS, function prefixes
AREAS = [
    ("wref", "thread-safe weak references and weak containers", [], []),
    ("wref_object", "wref objects: create, retain, release, inspect",
     ["WREF_TYPE_NO_WEAK", "wref_type"],
     ["wref_new", "wref_retain", "wref_release", "wref_type_of",
      "wref_strong_count", "wref_weak_count", "wref_weak_refs"]),
    ("wref_ref", "weak references with death callbacks",
     ["wref_callback"], ["wref_ref_"]),
    ("wref_method", "weakly bound methods (WeakMethod)",
     ["wref_method_fn"], ["wref_method_"]),
    ("wref_finalize", "finalizers: run a function when an object dies",
     ["WREF_FIN_ATEXIT"], ["wref_finalize", "wref_finalizer_"]),
    ("wref_valmap", "weak-value map (WeakValueDictionary)",
     ["WREF_MAP_BY_VALUE", "WREF_MAP_CREATE_ONCE", "wref_map_options"],
     ["wref_valmap_"]),
    ("wref_keymap", "weak-key map (WeakKeyDictionary)",
     ["WREF_MAP_BY_VALUE", "wref_map_options"], ["wref_keymap_"]),
    ("wref_set", "weak set (WeakSet)",
     ["WREF_MAP_BY_VALUE", "wref_map_options"], ["wref_set_"]),
    ("wref_signal", "signals with weakly held subscribers",
     ["wref_method_fn"], ["wref_signal_"]),
    ("wref_runtime", "executor, flush, shutdown and statistics",
     ["WREF_EXEC_THREAD", "wref_config", "wref_stats"],
     ["wref_init", "wref_flush", "wref_shutdown", "wref_stats"]),
]


def comment_text(c):
    """the text of a /* ... */ comment, one string per line"""
    c = c.strip()
    assert c.startswith("/*") and c.endswith("*/")
    lines = c[2:-2].split("\n")
    out = []
    for ln in lines:
        ln = re.sub(r"^\s*\* ?", "", ln) if re.match(r"^\s*\*", ln) else \
            ln.strip(" ")
        out.append(ln.rstrip())
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    return out


def parse(header):
    text = open(header).read()
    funcs = []  # (name, prototype, comment lines)
    for m in re.finditer(r"WREF_API\s+([^;]*?)\b(wref_\w+)\s*\(([^;]*?)\)\s*;",
                         text, re.S):
        ret, name, params = m.group(1), m.group(2), m.group(3)
        # verbatim, as the header breaks it (tabs expanded)
        proto = m.group(0)[len("WREF_API"):].lstrip().expandtabs(8)
        before = text[:m.start()].rstrip()
        com = []
        if before.endswith("*/"):
            com = comment_text(before[before.rindex("/*"):])
        funcs.append((name, proto, com))
    return text, funcs


def find_type(text, t):
    """the declaration of type or constant @t, verbatim"""
    pats = [
        r"^typedef struct %s \{.*?^\} %s;" % (t, t),
        r"^struct %s \{.*?^\};" % t,
        r"^typedef [^;]*\(\*%s\)\([^;]*\);" % t,
        r"^#define %s\b.*?$" % t,
        r"^enum \{[^}]*\b%s\b[^}]*\};" % t,
    ]
    for p in pats:
        m = re.search(p, text, re.S | re.M)
        if m:
            return m.group(0)
    sys.exit("mkman: type %s not found in the header" % t)


def esc(s):
    """plain text to troff: backslashes, and no line may start a request"""
    s = s.replace("\\", "\\e")
    return s


def prose(lines, fname=None):
    """comment lines to troff paragraphs; @arg in italics"""
    out = []
    code = False
    for i, ln in enumerate(lines):
        if i == 0 and fname and ln.startswith(fname + " - "):
            ln = ln[len(fname) + 3:]
            ln = ln[0].upper() + ln[1:] if ln else ln
        is_code = ln.startswith("\t") or ln.startswith("        ")
        if is_code and not code:
            out += [".PP", ".in +4n", ".EX"]
            code = True
        elif not is_code and code and ln.strip():
            out += [".EE", ".in", ".PP"]
            code = False
        if code:
            out.append(esc(ln.replace("\t", "", 1)) if ln.strip() else "")
            continue
        if not ln.strip():
            out.append(".PP")
            continue
        s = esc(ln.strip())
        s = re.sub(r"@(\w+)", r"\\fI\1\\fP", s)
        if s.startswith(("- ", "-")) and re.match(r"^-\s", s):
            out += [".IP \\(bu 2"]
            s = s[2:]
        if s[:1] in (".", "'"):
            s = "\\&" + s
        out.append(s)
    if code:
        out += [".EE", ".in"]
    # blank lines inside an example block stay blank; elsewhere none
    return [x for x in out if x != "" or code]


def members(funcs, prefixes):
    out = []
    for f in funcs:
        for p in prefixes:
            if f[0] == p or (p.endswith("_") and f[0].startswith(p)):
                out.append(f)
                break
    return out


def synopsis(text, types, fs):
    out = [".nf", ".B #include <wref.h>", ""]
    for t in types:
        decl = find_type(text, t)
        out += [esc(ln) if ln.strip() else "" for ln in
                decl.expandtabs(8).split("\n")]
        out.append("")
    for name, proto, _ in fs:
        p = esc(proto)
        out += p.replace(name + "(", "\\fB" + name + "\\fP(", 1).split("\n")
    while out and out[-1] == "":
        out.pop()
    out.append(".fi")
    # troff: a blank line in no-fill mode is a blank output line, fine; a
    # line starting with a dot or quote is not text
    return ["\\&" + x if x[:1] in (".", "'") and not x.startswith(
        (".nf", ".fi", ".B ")) else x for x in out]


def page(area, text, funcs, srcdir, version):
    name, summary, types, prefixes = area
    fs = members(funcs, prefixes)
    src = open(os.path.join(srcdir, name + ".3.in")).read()
    names = [f[0] for f in fs] or [name]
    head = ['.\\" Generated by man/mkman.py from include/wref.h and',
            '.\\" man/%s.3.in: edit those, not this file.' % name,
            '.TH %s 3 "" "libwref %s" "libwref Manual"' % (name.upper(),
                                                          version),
            ".SH NAME",
            "%s \\- %s" % (", ".join(names), summary),
            ".SH SYNOPSIS"]
    head += synopsis(text, types, fs) if fs else [
        ".nf", ".B #include <wref.h>", ".PP",
        ".B cc prog.c $(pkg\\-config \\-\\-cflags \\-\\-libs wref)", ".fi"]
    entries = []
    for fname, proto, com in fs:
        entries += [".TP", ".BR %s ()" % fname]
        body = prose(com, fname)
        # .TP entries: paragraphs inside them are .IP, not .PP
        entries += [".IP" if x == ".PP" else x for x in body]
    entries.append(".PP")
    body = src.replace("@FUNCTIONS@\n", "\n".join(entries) + "\n")
    if "@" in re.sub(r"\\\(at|@\w+\.\w+", "", body):
        sys.exit("mkman: %s.3.in: unknown @ marker" % name)
    return "\n".join(head) + "\n" + body


def links(funcs):
    pages = {a[0] for a in AREAS}
    out = []
    for area in AREAS:
        for f in members(funcs, area[3]):
            if f[0] not in pages:
                out.append((f[0], area[0]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--header", required=True)
    ap.add_argument("--in", dest="srcdir")
    ap.add_argument("--out")
    ap.add_argument("--version", default="")
    ap.add_argument("--mk", action="store_true")
    a = ap.parse_args()
    text, funcs = parse(a.header)
    placed = {f[0] for area in AREAS for f in members(funcs, area[3])}
    missing = [f[0] for f in funcs if f[0] not in placed]
    if missing:
        sys.exit("mkman: no manual page area for %s (add it to AREAS in "
                 "man/mkman.py)" % ", ".join(missing))
    lk = links(funcs)
    if a.mk:
        print("## man.mk: generated by `python3 man/mkman.py --header "
              "include/wref.h --mk`;")
        print("## make check fails when it no longer matches the header.")
        print("MAN_AREA_PAGES = \\")
        print(" \\\n".join("\tman/%s.3" % x[0] for x in AREAS))
        print("MAN_LINK_PAGES = \\")
        print(" \\\n".join("\tman/%s.3" % n for n, _ in lk))
        print("MAN_IN_FILES = \\")
        print(" \\\n".join("\tman/%s.3.in" % x[0] for x in AREAS))
        return
    os.makedirs(a.out, exist_ok=True)
    for area in AREAS:
        with open(os.path.join(a.out, area[0] + ".3"), "w") as f:
            f.write(page(area, text, funcs, a.srcdir, a.version))
    for n, target in lk:
        with open(os.path.join(a.out, n + ".3"), "w") as f:
            f.write(".so man3/%s.3\n" % target)


if __name__ == "__main__":
    main()
