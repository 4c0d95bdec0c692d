#!/usr/bin/env python3
# Vendored from the project's shared tools (shared/tools/module-cycles.py), so that CI runs it on a
# clean clone; `.ci/run` checks that the parts of src/ import one another without a cycle.
"""Import cycles between the files of a Rust crate.

Reads every `crate::`, `super::` and `self::` path in the .rs files under a source folder
(default: src/), in `use` lines and inside function bodies alike, resolves each to the file
that defines that module, and prints every group of files that import one another in a
circle (a strongly connected component), with the names each file takes from the next.
Exit status 1 if there is a circle, 0 if the files form layers.

    python3 ../shared/tools/module-cycles.py [SRC_DIR] [--by-folder] [--ignore DIR_OR_FILE ...]

--by-folder counts each top-level module folder (src/lockfree/ and the like) as one node, so
only circles between parts of the crate are reported, not those inside one folder.

It reads text, not the compiler's view: a path in a comment or string counts too, and a
re-export is seen as an import of the file that re-exports. Check a reported edge in the code.
"""
import os
import re
import sys
from collections import defaultdict

def module_files(src):
    files = {}
    for root, _, names in os.walk(src):
        for n in names:
            if n.endswith(".rs"):
                p = os.path.join(root, n)
                rel = os.path.relpath(p, src)[:-3].split(os.sep)
                if rel[-1] in ("mod", "lib", "main"):
                    rel = rel[:-1]
                files[tuple(rel)] = p
    return files

def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(l.split("//", 1)[0] for l in text.splitlines())

def expand_use(tree):
    """'a::{b, c::{d, e}}' -> ['a::b', 'a::c::d', 'a::c::e']"""
    tree = tree.strip()
    m = re.match(r"^([\w:]*?)::\{(.*)\}$", tree, flags=re.S)
    if not m:
        return [tree]
    head, body = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "{": depth += 1
        if ch == "}": depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur); cur = ""
        else:
            cur += ch
    parts.append(cur)
    out = []
    for p in parts:
        p = p.strip()
        if p:
            out += [head + "::" + q for q in expand_use(p)]
    return out

def paths_in(text, children):
    text = strip_comments(text)
    heads = ["crate", "super", "self"] + sorted(children)
    alt = "|".join(map(re.escape, heads))
    found = []
    for m in re.finditer(r"\buse\s+((?:" + alt + r")\b[^;]*);", text, flags=re.S):
        found += expand_use(re.sub(r"\s+", "", m.group(1)))
    for m in re.finditer(r"(?<![\w:])((?:" + alt + r")(?:::\w+)+)", text):
        found.append(m.group(1))
    return found

def resolve(path, key, files, children):
    """The file (module key) that `path`, written in module `key`, names, and the item."""
    segs = path.split("::")
    if segs[0] == "crate":
        base, rest = [], segs[1:]
    elif segs[0] in ("super", "self"):
        base = list(key)
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                base = base[:-1]
            segs = segs[1:]
        rest = segs
    elif segs[0] in children:
        base, rest = list(key), segs
    else:
        return None
    rest = [s for s in rest if s not in ("*",)]
    best = None
    for i in range(len(rest) + 1):
        k = tuple(base + rest[:i])
        if k in files:
            best = (k, rest[i] if i < len(rest) else "")
    return best

def main():
    args = sys.argv[1:]
    ignore = []
    if "--ignore" in args:
        i = args.index("--ignore"); ignore = args[i + 1:]; args = args[:i]
    by_folder = "--by-folder" in args
    args = [a for a in args if a != "--by-folder"]
    src = args[0] if args else "src"
    files = module_files(src)
    skip = lambda p: any(os.path.relpath(p, src).startswith(x.rstrip("/")) for x in ignore)
    edges = defaultdict(lambda: defaultdict(set))
    def node_of(p):
        rel = os.path.relpath(p, src).split(os.sep)
        return os.path.join(src, rel[0]) + "/" if len(rel) > 1 else p
    for key, p in files.items():
        if skip(p): continue
        children = {k[-1] for k in files if len(k) == len(key) + 1 and k[:-1] == key} \
            if p.endswith(("mod.rs", "lib.rs", "main.rs")) else set()
        for path in paths_in(open(p, encoding="utf-8").read(), children):
            r = resolve(path, key, files, children)
            if r and r[0] != key and not skip(files[r[0]]) and r[0] != ():
                a, b = p, files[r[0]]
                if by_folder:
                    a, b = node_of(a), node_of(b)
                    if a == b: continue
                edges[a][b].add(r[1] or "(module)")
    # Tarjan
    index, low, stack, on, comps, n = {}, {}, [], set(), [], [0]
    nodes = sorted({(node_of(p) if by_folder else p) for p in files.values() if not skip(p)})
    sys.setrecursionlimit(10000)
    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            c = []
            while True:
                w = stack.pop(); on.discard(w); c.append(w)
                if w == v: break
            if len(c) > 1: comps.append(sorted(c))
    for v in nodes:
        if v not in index: visit(v)
    if not comps:
        print(f"no import cycles among {len(nodes)} files under {src}")
        return 0
    for i, c in enumerate(comps, 1):
        print(f"cycle {i}: {len(c)} files")
        for a in c:
            for b in sorted(edges[a]):
                if b in c:
                    print(f"  {a} -> {b}: {', '.join(sorted(edges[a][b]))}")
    return 1

if __name__ == "__main__":
    sys.exit(main())
