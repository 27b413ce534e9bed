#!/usr/bin/env python3
"""Checks the module import graph of the workspace's crates: no loops between modules and no upward imports.

A module's imports are its `use` lines and the `crate::`/`super::` paths in its code (test modules excluded: a
test may read its parent). An import is *upward* when it names something defined in an ancestor module's own
file (the crate root included), e.g. `use super::Checkpoint` from `models/bert.rs` when `Checkpoint` lives in
`models/mod.rs`; a parent importing its children and siblings importing each other are fine. A *loop* is a
set of modules that import each other, directly or through others.

Usage: .ci/check_imports.py [CRATE_SRC_DIR ...]   (default: every crate of the workspace). Exit 1 on findings.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CRATES = ["shared/src", "native/src", "edge/src", "edge/host/src"]

USE = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?use\s+([^;]+);", re.M | re.S)
INLINE = re.compile(r"\b((?:crate|super)(?:::[A-Za-z_][A-Za-z0-9_]*)+)")
MOD_DECL = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;", re.M)


def module_of(src: Path, file: Path) -> tuple:
    rel = file.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts in (["lib"], ["main"]):
        return ()
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


def code_without_tests(text: str) -> str:
    """The file up to its `#[cfg(test)]` module, without comments."""
    cut = re.search(r"^\s*#\[cfg\(test\)\]\s*\n\s*(?:pub(?:\([^)]*\))?\s+)?mod\s", text, re.M)
    if cut:
        text = text[: cut.start()]
    text = re.sub(r"//[^\n]*", "", text)
    return text


def expand(tree: str) -> list:
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e] (aliases and globs dropped)."""
    tree = re.sub(r"\s+as\s+[A-Za-z_][A-Za-z0-9_]*", "", tree)
    tree = re.sub(r"\s+", "", tree)
    brace = tree.find("{")
    if brace < 0:
        return [tree]
    prefix, inner = tree[:brace], tree[brace + 1 : tree.rfind("}")]
    items, depth, current = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        current += ch
    items.append(current)
    out = []
    for item in filter(None, items):
        for path in expand(item):
            out.append(prefix + path if path != "self" else prefix.rstrip(":"))
    return out


def resolve(path: str, here: tuple, modules: set, children: set) -> tuple | None:
    """The module that `path` (as written in module `here`) points into; None for other crates."""
    parts = [p for p in path.split("::") if p and p != "*"]
    if not parts:
        return None
    if parts[0] == "crate":
        base, rest = (), parts[1:]
    elif parts[0] == "super":
        base, rest = here, parts
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    elif parts[0] == "self":
        base, rest = here, parts[1:]
    elif parts[0] in children:
        base, rest = here, parts
    else:
        return None
    target = base
    for part in rest:
        if target + (part,) in modules:
            target = target + (part,)
        else:
            break
    return target


def check(src: Path) -> list:
    files = {module_of(src, f): f for f in src.rglob("*.rs") if "bin" not in f.relative_to(src).parts[:1]}
    files = {m: f for m, f in files.items() if "tests" not in m}
    modules = set(files)
    # Modules declared inline (`mod x { ... }`) are not tracked; declared file modules are.
    edges, problems = {}, []
    for module, file in sorted(files.items()):
        text = code_without_tests(file.read_text())
        children = {c for c in MOD_DECL.findall(text)}
        paths = [p for tree in USE.findall(text) for p in expand(tree)]
        paths += INLINE.findall(USE.sub("", text))
        for path in paths:
            target = resolve(path, module, modules, children)
            if target is None or target == module:
                continue
            if module[: len(target)] == target:
                problems.append(f"{file.relative_to(ROOT)}: upward import `{path}` (defined in {files[target].relative_to(ROOT)})")
                continue
            if target[: len(module)] == module:
                continue  # a parent using its own child
            edges.setdefault(module, set()).add(target)
    problems += [f"{src.relative_to(ROOT)}: import loop between {', '.join(sorted('::'.join(m) or 'crate' for m in scc))}" for scc in loops(edges)]
    return problems


def loops(edges: dict) -> list:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                out.append(scc)

    for v in list(edges):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    crates = sys.argv[1:] or DEFAULT_CRATES
    problems = [p for crate in crates for p in check(ROOT / crate)]
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} import problem(s)")
        return 1
    print(f"imports: no loops, no upward imports in {', '.join(crates)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
