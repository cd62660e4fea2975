"""Measure the code's structure: what issue 20 asks to show before and after a refactor.

For each package (``theory``, ``reduction``, ``empirics``) and, with ``--subpackages``, each of
its subpackages:

* the longest module (lines, docstrings included) and the longest function or method (code lines:
  the AST's ``lineno`` .. ``end_lineno`` less its docstring, decorators excluded);
* import cycles among the package's own modules — strongly connected components (Tarjan) of the
  graph of *module-level* imports, and separately of all imports (function bodies included);
* imports placed inside functions: their number, how many name the package's own modules, and,
  for each, whether a comment on that line or the line above says why (``deferred``);
* upward imports: a module of the data layer (everything but ``report``, ``cli``, ``sections``
  and figures) that imports the presentation layer (``empirics.report``, ``empirics.cli``,
  ``empirics.sections``);
* the ``duplicates`` tool's summary line, when the tool is installed, and how many of its pairs
  lie entirely inside docstrings (repeated numpydoc ``Parameters`` blocks, not repeated code).

Run from the repository root::

    python benchmarks/structure.py              # the table
    python benchmarks/structure.py --list       # also every in-function import, with its reason

It reads files as text (``ast``); it imports nothing of the packages, so it runs on any commit
(``git stash``-free: ``git worktree add /tmp/old <rev> && python benchmarks/structure.py --root /tmp/old``).
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGES = ("theory", "reduction", "empirics")
PRESENTATION = ("empirics.report", "empirics.cli", "empirics.sections")


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom | ast.Import) -> list[str]:
    """Absolute names a statement imports (for ``from X import y`` both X and X.y: y may be a module)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = mod.split(".") if is_pkg else mod.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        prefix = ".".join(base + ([node.module] if node.module else []))
    else:
        prefix = node.module or ""
    return [prefix] + [f"{prefix}.{a.name}" for a in node.names]


class _Visitor(ast.NodeVisitor):
    def __init__(self):
        self.functions: list[tuple[str, int]] = []
        self.top_imports: list[ast.AST] = []
        self.func_imports: list[ast.AST] = []
        self._depth = 0
        self._stack: list[str] = []

    def _func(self, node):
        n = node.end_lineno - node.lineno + 1
        b = node.body[0]
        if isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str):
            n -= b.end_lineno - b.lineno + 1  # code lines: the docstring is not counted
        self.functions.append((".".join(self._stack + [node.name]), n))
        self._depth += 1
        self._stack.append(node.name)
        self.generic_visit(node)
        self._stack.pop()
        self._depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = _func

    def visit_ClassDef(self, node):
        self._stack.append(node.name)
        self.generic_visit(node)
        self._stack.pop()

    def _imp(self, node):
        (self.func_imports if self._depth else self.top_imports).append(node)

    visit_Import = visit_ImportFrom = _imp


def _tarjan(graph: dict[str, set[str]]) -> list[list[str]]:
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def _reason(lines: list[str], lineno: int) -> str:
    """The comment that says why an in-function import is deferred: on its line, or on a line of the
    block of imports (and comments) it belongs to, above it ("deferred" / "lazy" in the comment)."""
    i = lineno - 1
    while i >= 0:
        text = lines[i]
        code, _, comment = text.partition("#")
        if any(w in comment.lower() for w in ("deferred", "lazily", "lazy")):
            return comment.strip()
        stripped = code.strip()
        if i < lineno - 1 and stripped and not stripped.startswith(("import ", "from ")):
            return ""
        i -= 1
    return ""


def measure(root: Path, group_by_subpackage: bool = False) -> dict:
    files = {}
    for pkg in PACKAGES:
        for p in sorted((root / pkg).rglob("*.py")):
            files[_module_name(root, p)] = p
    modules = set(files)
    top_graph: dict[str, set[str]] = {m: set() for m in modules}
    all_graph: dict[str, set[str]] = {m: set() for m in modules}
    groups: dict[str, dict] = {}
    deferred, upward = [], []
    for mod, p in files.items():
        text = p.read_text()
        lines = text.splitlines()
        tree = ast.parse(text)
        v = _Visitor()
        v.visit(tree)
        parts = mod.split(".")
        group = ".".join(parts[:2]) if group_by_subpackage and len(parts) > 2 and \
            (root / parts[0] / parts[1]).is_dir() else parts[0]
        g = groups.setdefault(group, {"modules": 0, "lines": 0, "longest_module": ("", 0),
                                      "longest_function": ("", 0), "func_imports": 0, "func_imports_own": 0,
                                      "func_imports_justified": 0})
        g["modules"] += 1
        g["lines"] += len(lines)
        if len(lines) > g["longest_module"][1]:
            g["longest_module"] = (mod, len(lines))
        for name, n in v.functions:
            if n > g["longest_function"][1]:
                g["longest_function"] = (f"{mod}.{name}", n)
        is_pkg = p.name == "__init__.py"
        for node in v.top_imports:
            for t in _resolve(mod, is_pkg, node):
                if t in modules and t != mod and not mod.startswith(t + "."):  # a parent package is
                    top_graph[mod].add(t)                                      # always imported first
                    all_graph[mod].add(t)
                if mod.startswith("empirics") and not mod.startswith(PRESENTATION) and \
                        t.startswith(PRESENTATION) and t in modules:
                    upward.append((mod, t, node.lineno))
        for node in v.func_imports:
            targets = _resolve(mod, is_pkg, node)
            own = any(t.split(".")[0] in PACKAGES for t in targets)
            why = _reason(lines, node.lineno)
            g["func_imports"] += 1
            g["func_imports_own"] += own
            g["func_imports_justified"] += bool(why)
            deferred.append((mod, node.lineno, ast.unparse(node), why, own))
            for t in targets:
                if t in modules and t != mod and not mod.startswith(t + "."):
                    all_graph[mod].add(t)
                if mod.startswith("empirics") and not mod.startswith(PRESENTATION) and \
                        t.startswith(PRESENTATION) and t in modules:
                    upward.append((mod, t, node.lineno))
    return {"groups": groups, "cycles_top": _tarjan(top_graph), "cycles_all": _tarjan(all_graph),
            "deferred": deferred, "upward": sorted(set(upward))}


def _docstring_ranges(path: Path) -> list[tuple[int, int]]:
    """Line ranges of the module, class and function docstrings of a Python file."""
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError, UnicodeDecodeError):
        return []
    out = []
    for n in ast.walk(tree):
        if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body:
            b = n.body[0]
            if isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str):
                out.append((b.lineno, b.end_lineno))
    return out


def duplicates_summary(root: Path) -> str:
    """The ``duplicates`` tool's summary line, and how many of its pairs lie inside docstrings only."""
    tool = shutil.which("duplicates")
    if tool is None:
        return "(duplicates tool not installed)"
    out = subprocess.run([tool, "--repo", str(root), "--seconds", "200", "--most", "200"], capture_output=True,
                         text=True).stdout.strip().splitlines()
    if not out:
        return "(no output)"
    cache: dict[str, list[tuple[int, int]]] = {}

    def in_docstring(path: str, a: int, b: int) -> bool:
        if path not in cache:
            cache[path] = _docstring_ranges(root / path) if path.endswith(".py") else []
        return any(s <= a and b <= e for s, e in cache[path])

    rows = [re.match(r"D\d+ (\S+):(\d+)-(\d+) ~ (\S+):(\d+)-(\d+)", line) for line in out[1:]]
    rows = [m.groups() for m in rows if m]
    docs = sum(in_docstring(p1, int(a1), int(b1)) and in_docstring(p2, int(a2), int(b2))
               for p1, a1, b1, p2, a2, b2 in rows)
    return f"{out[0]}; {docs} of them entirely inside docstrings (numpydoc sections)"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--subpackages", action="store_true", help="one row per subpackage")
    ap.add_argument("--list", action="store_true", help="list every in-function import and its reason")
    ap.add_argument("--no-duplicates", action="store_true")
    args = ap.parse_args(argv)
    m = measure(args.root, args.subpackages)
    print(f"{'package':<22} {'modules':>7} {'lines':>6}  {'longest module':<44} {'longest function':<70} "
          f"{'in-func imports (own, justified)'}")
    for name, g in sorted(m["groups"].items()):
        lm, lf = g["longest_module"], g["longest_function"]
        print(f"{name:<22} {g['modules']:>7} {g['lines']:>6}  {lm[0] + f' ({lm[1]})':<44} "
              f"{lf[0] + f' ({lf[1]})':<70} {g['func_imports']} ({g['func_imports_own']}, "
              f"{g['func_imports_justified']})")
    print(f"import cycles, module-level imports: {len(m['cycles_top'])} {m['cycles_top']}")
    print(f"import cycles, all imports (function bodies included): {len(m['cycles_all'])}"
          + "".join(f"\n  {c}" for c in m["cycles_all"]))
    print(f"upward imports (data layer -> report/cli/sections): {len(m['upward'])}"
          + "".join(f"\n  {a} -> {b} (line {n})" for a, b, n in m["upward"]))
    total = len(m["deferred"])
    own = sum(d[4] for d in m["deferred"])
    print(f"in-function imports: {total} ({own} of the packages' own modules), "
          f"{sum(bool(d[3]) for d in m['deferred'])} with a stated reason")
    if args.list:
        for mod, line, stmt, why, _ in m["deferred"]:
            print(f"  {mod}:{line}: {stmt}" + (f"   # {why}" if why else ""))
    if not args.no_duplicates:
        print(f"duplicates: {duplicates_summary(args.root)}")


if __name__ == "__main__":
    main()
