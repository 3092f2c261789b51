#!/usr/bin/env python3
"""Fail when the files of src/ import each other in a circle (docs/design.md, "Layers").

Reads every path a file names: `use crate::…` trees (braces expanded), `crate::…`, `super::…`,
`self::…` and a child module's name in expressions, `relu::…` in main.rs, and the exported macros
(`errln!`, `with_element!`, …) by the file that defines them. Each path is resolved to the file
of its longest module prefix, so `crate::format::npy::MAGIC` points at src/format/npy.rs and
`crate::format::Format` at src/format/mod.rs. lib.rs only declares modules and is left out, as are
a file's own inline modules (`mod tests`) referring back to it.

Prints each circle found (file → file → … → file) and exits 1; prints the layers, top first,
and exits 0 when there is none. Python 3 standard library only.
"""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
CRATE = "relu"


def strip(text):
    """The code without comments, string and char literals (kept as blanks, lines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    out.append("\n" if text[i] == "\n" else "")
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'":
            # a char literal ('a', '\n', '\u{..}') or a lifetime ('a): only the former is skipped
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:])
            if m:
                out.append("' '")
                i += m.end()
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def module_files():
    """{module path tuple: file}, e.g. ('format', 'npy'): 'format/npy.rs'."""
    mods = {}
    for dirpath, _, files in os.walk(ROOT):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), ROOT).replace(os.sep, "/")
            parts = rel[:-3].split("/")
            if parts[-1] == "mod":
                parts = parts[:-1]
            if rel in ("lib.rs", "main.rs"):
                parts = [] if rel == "lib.rs" else ["<main>"]
            mods[tuple(parts)] = rel
    return mods


def expand(tree):
    """`a::{b, c::{d as f, e}}` → ['a::b', 'a::c::d@f', 'a::c::e'] (`@`: renamed)."""
    tree = re.sub(r"\s+", "", re.sub(r"\s+as\s+", "@", tree))
    i = tree.find("{")
    if i < 0:
        return [tree]
    prefix, depth, parts, start = tree[:i], 0, [], i + 1
    for j in range(i, len(tree)):
        if tree[j] == "{":
            depth += 1
        elif tree[j] == "}":
            depth -= 1
            if depth == 0:
                parts.append(tree[start:j])
                break
        elif tree[j] == "," and depth == 1:
            parts.append(tree[start:j])
            start = j + 1
    return [p for part in parts if part for p in expand(prefix + part)]


def main():
    mods = module_files()
    files = {f: m for m, f in mods.items()}
    macros = {}
    for m, f in mods.items():
        code = strip(open(os.path.join(ROOT, f), encoding="utf-8").read())
        for name in re.findall(r"#\[macro_export\]\s*macro_rules!\s*(\w+)", code):
            macros[name] = f

    edges = {f: {} for f in files if f != "lib.rs"}
    for f, mod in files.items():
        if f == "lib.rs":
            continue
        code = strip(open(os.path.join(ROOT, f), encoding="utf-8").read())
        if f == "main.rs":
            code = re.sub(r"\b" + CRATE + r"::", "crate::", code)
        children = {m[len(mod)] for m in mods if len(m) == len(mod) + 1 and m[:len(mod)] == mod}

        # inline modules: the module path at each offset
        stack, spans = [], []
        depth = 0
        for tok in re.finditer(r"\bmod\s+(\w+)\s*\{|[{}]", code):
            if tok.group(1):
                stack.append((tok.group(1), depth))
                depth += 1
                spans.append((tok.start(), tuple(s for s, _ in stack)))
            elif tok.group(0) == "{":
                depth += 1
            else:
                depth -= 1
                if stack and stack[-1][1] == depth:
                    stack.pop()
                    spans.append((tok.start(), tuple(s for s, _ in stack)))

        def inner_at(pos):
            cur = ()
            for start, s in spans:
                if start > pos:
                    break
                cur = s
            return cur

        paths, aliases = [], {}
        for m in re.finditer(r"\buse\s+([^;]+);", code):
            for p in expand(m.group(1)):
                p, _, name = p.partition("@")
                p = re.sub(r"::self$", "", p)
                paths.append((m.start(), p))
                segs = p.split("::")
                if segs[0] in ("crate", "super", "self") or segs[0] in children:
                    aliases[name or segs[-1]] = p
        for m in re.finditer(r"(?<![\w:])(\$?crate|super|self|\w+)((?:::\w+)+)", code):
            head = m.group(1)
            if head in aliases and head not in ("crate", "super", "self"):
                head = aliases[head]
            paths.append((m.start(), head + m.group(2)))
        for m in re.finditer(r"(?<![\w:])(\w+)!", code):
            if m.group(1) in macros:
                paths.append((m.start(), "crate::" + m.group(1)))

        for pos, p in paths:
            segs = [s for s in p.split("::") if s]
            inner = inner_at(pos)
            here = list(mod) + list(inner)
            if not segs:
                continue
            head = segs[0].lstrip("$")
            if head == "crate":
                target = segs[1:]
                if len(target) == 1 and target[0] in macros:
                    to = macros[target[0]]
                    if to != f and to != "lib.rs":
                        edges[f].setdefault(to, p)
                    continue
            elif head in ("super", "self"):
                base = here
                while segs and segs[0] in ("super", "self"):
                    if segs[0] == "super":
                        base = base[:-1]
                    segs = segs[1:]
                target = base + segs
            elif not inner and head in children:
                target = list(mod) + segs
            else:
                continue
            # the longest prefix that is a file
            best = None
            for k in range(len(target), -1, -1):
                if tuple(target[:k]) in mods:
                    best = mods[tuple(target[:k])]
                    break
            if best and best != f and best != "lib.rs":
                edges[f].setdefault(best, p)

    # strongly connected components (Tarjan, iterative enough for 100 files)
    index, low, on, st, comps = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        st.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = st.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)

    cycles = [sorted(c) for c in comps if len(c) > 1]
    if cycles:
        for comp in cycles:
            # one shortest circle through the component's first file, for the message
            start, members = comp[0], set(comp)
            prev, queue = {start: None}, [start]
            circle = None
            while queue and circle is None:
                nxt = []
                for v in queue:
                    for w in sorted(edges[v]):
                        if w not in members:
                            continue
                        if w == start:
                            circle = [v]
                            while prev[circle[-1]] is not None:
                                circle.append(prev[circle[-1]])
                            circle.reverse()
                            break
                        if w not in prev:
                            prev[w] = v
                            nxt.append(w)
                    if circle:
                        break
                queue = nxt
            steps = []
            for a, b in zip(circle, circle[1:] + [start]):
                steps.append(f"  {a} -> {b}   ({edges[a][b]})")
            print(f"check_layers: import circle among {len(comp)} files: {' '.join(comp)}")
            print("\n".join(steps))
        return 1

    # layers: a file stands one above the highest file it imports
    level = {}

    def height(v):
        if v not in level:
            level[v] = 1 + max((height(w) for w in edges[v]), default=-1)
        return level[v]

    for v in edges:
        height(v)
    for h in range(max(level.values()), -1, -1):
        print(f"{h:3}  " + " ".join(sorted(v for v in level if level[v] == h)))
    print("check_layers: no import circle in src/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
