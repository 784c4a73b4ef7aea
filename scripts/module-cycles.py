#!/usr/bin/env python3
"""Finds import cycles between the modules of every crate of the workspace.

A module is a source file (`src/a.rs` or `src/a/mod.rs` is `a`, `src/a/b.rs` is `a::b`); inline
`mod tests` blocks belong to their file. An edge A -> B is any path in A's code that names B
(`use crate::b::X`, `crate::b::f()`, `super::b`, grouped `use crate::{b::X, c}`), except edges
from a module to its own descendants (a parent owns and re-exports its children) and edges to
the crate root. A cycle is a strongly connected component of two or more modules. Each binary
(`src/main.rs`, `src/bin/*.rs`) is its own crate root and is checked the same way.

Usage: scripts/module-cycles.py [--verbose] [CRATE_DIR ...]   (default: every workspace member)
Exit status 1 when any crate has a cycle, with the modules of each cycle and the lines that
make its edges.
"""

import re
import sys
import tomllib
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_comments_and_strings(text: str) -> str:
    """Blanks comments, string and char literals, keeping line numbers."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = len(re.match(r"r(#*)", text[i:]).group(1))
            end = '"' + "#" * hashes
            j = text.find(end, i + 2 + hashes)
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]) or (c == "'" and re.match(r"'\\u\{[0-9a-fA-F]+\}'", text[i:i + 12])):
            j = text.find("'", i + 2) + 1
            out.append("' '")
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand_use_tree(tree: str) -> list[str]:
    """`a::{b::C, d}` -> [`a::b::C`, `a::d`]."""
    tree = re.sub(r"\s+as\s+" + IDENT, "", tree)
    tree = re.sub(r"\s+", "", tree)
    results = []

    def walk(prefix: str, s: str) -> None:
        depth, start, parts = 0, 0, []
        for k, ch in enumerate(s):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                parts.append(s[start:k])
                start = k + 1
        parts.append(s[start:])
        for part in parts:
            if not part:
                continue
            brace = part.find("{")
            if brace >= 0 and part.endswith("}"):
                walk(prefix + part[:brace], part[brace + 1:-1])
            else:
                results.append(prefix + part)

    walk("", tree)
    return results


def module_files(src: Path, root_file: Path) -> dict[tuple[str, ...], Path]:
    """Module path -> file, following `mod x;` declarations from the crate root."""
    modules: dict[tuple[str, ...], Path] = {}

    def visit(path: tuple[str, ...], file: Path, dir_for_children: Path) -> None:
        modules[path] = file
        text = strip_comments_and_strings(file.read_text())
        for m in re.finditer(r"(?m)^\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(" + IDENT + r")\s*;", text):
            name = m.group(1)
            candidates = [dir_for_children / f"{name}.rs", dir_for_children / name / "mod.rs"]
            child = next((c for c in candidates if c.exists()), None)
            if child is None:
                continue
            child_dir = child.parent if child.name == "mod.rs" else child.parent / name
            visit(path + (name,), child, child_dir)

    visit((), root_file, root_file.parent if root_file.name in ("lib.rs", "main.rs", "mod.rs") else root_file.parent / root_file.stem)
    return modules


def resolve(path: list[str], here: tuple[str, ...], modules) -> tuple[str, ...] | None:
    """The module a path names (its longest prefix that is a module), or None."""
    if not path:
        return None
    if path[0] == "crate":
        base, rest = (), path[1:]
    elif path[0] == "super":
        base, rest = here, path
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    elif path[0] == "self":
        base, rest = here, path[1:]
    else:
        return None
    best = base if base in modules else None
    cur = base
    for seg in rest:
        cur = cur + (seg,)
        if cur in modules:
            best = cur
        else:
            break
    return best


def edges_of(modules) -> dict[tuple[str, ...], dict[tuple[str, ...], int]]:
    """Module -> {module it names: first line number}."""
    edges: dict = {}
    for here, file in modules.items():
        text = strip_comments_and_strings(file.read_text())
        found: dict = {}

        def add(target, pos):
            if target is None or target == here or target == ():
                return
            if target[: len(here)] == here:  # a descendant: owned, not a dependency
                return
            found.setdefault(target, text.count("\n", 0, pos) + 1)

        for m in re.finditer(r"\buse\s+((?:crate|super|self)\b[^;]*);", text):
            for p in expand_use_tree(m.group(1)):
                add(resolve(p.split("::"), here, modules), m.start())
        for m in re.finditer(r"\b((?:crate|super|self)(?:\s*::\s*" + IDENT + r")+)", text):
            # `use` trees were handled above; a plain path such as `crate::a::f(...)`.
            segs = [s.strip() for s in m.group(1).split("::")]
            add(resolve(segs, here, modules), m.start())
        # Paths inside inline `mod tests { use super::* }` resolve against the file's module:
        # `super` there is the file itself, so they produce no edge, as wanted.
        edges[here] = found
    return edges


def cycles(edges) -> list[list[tuple[str, ...]]]:
    """Strongly connected components with two or more modules (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
            if w not in edges:
                continue
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in edges:
        if v not in index:
            strong(v)
    return out


def name(path: tuple[str, ...]) -> str:
    return "::".join(path) or "crate"


def workspace_members(root: Path) -> list[Path]:
    manifest = tomllib.loads((root / "Cargo.toml").read_text())
    return [root / m for m in manifest["workspace"]["members"]]


def main() -> int:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    verbose = "--verbose" in sys.argv
    root = Path(__file__).resolve().parent.parent
    crates = [Path(a) for a in args] or workspace_members(root)
    failed = False
    for crate in crates:
        src = crate / "src"
        roots = [f for f in (src / "lib.rs", src / "main.rs") if f.exists()]
        roots += sorted((src / "bin").glob("*.rs")) if (src / "bin").is_dir() else []
        for root_file in roots:
            modules = module_files(src, root_file)
            edges = edges_of(modules)
            found = cycles(edges)
            label = f"{crate.name}/{root_file.relative_to(crate)}"
            n_edges = sum(len(v) for v in edges.values())
            if verbose:
                for a in sorted(edges):
                    for b, line in sorted(edges[a].items()):
                        print(f"  {label}: {name(a)} -> {name(b)} ({modules[a].relative_to(crate)}:{line})")
            if found:
                failed = True
                for comp in found:
                    print(f"{label}: import cycle among {', '.join(name(m) for m in comp)}")
                    for a in comp:
                        for b, line in sorted(edges[a].items()):
                            if b in comp:
                                print(f"    {name(a)} -> {name(b)}  ({modules[a].relative_to(crate)}:{line})")
            else:
                print(f"{label}: {len(modules)} modules, {n_edges} edges, no cycle")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
