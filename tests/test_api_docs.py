"""The public API is discoverable: every module lists its names in ``__all__``, and every public
function of theory, reduction and empirics has a numpydoc docstring — a summary, a ``Parameters``
section naming each parameter, and ``Returns`` (or ``Yields``).

Public = listed in ``__all__`` of a module whose path has no private (``_``) part; the command-line
adapters (``empirics.cli``, ``empirics.sections``) are the CLI's, documented by ``--help``.
Shapes are stated in the types (``shape (n, d)``); that part is read by reviewers, not by this test.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules():
    for pkg in ("theory", "reduction", "empirics"):
        for p in sorted((ROOT / pkg).rglob("*.py")):
            rel = p.relative_to(ROOT)
            if any(part.startswith("_") and part != "__init__.py" for part in rel.parts):
                continue
            yield rel


def _all(tree):
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return node
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == "__all__":
            return node
    return None


@pytest.mark.parametrize("rel", list(_modules()), ids=str)
def test_module_declares_all(rel):
    assert _all(ast.parse((ROOT / rel).read_text())) is not None, f"{rel}: no __all__"


def _public_functions():
    for rel in _modules():
        if str(rel).startswith(("empirics/sections", "empirics/cli")):
            continue
        tree = ast.parse((ROOT / rel).read_text())
        node = _all(tree)
        try:
            names = set(ast.literal_eval(node.value)) if node is not None else set()
        except ValueError:  # computed (a lazy package): its names are documented where defined
            continue
        for f in tree.body:
            if isinstance(f, ast.FunctionDef) and f.name in names:
                yield f"{rel}::{f.name}", f


FUNCTIONS = dict(_public_functions())


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_public_function_has_numpydoc(name):
    f = FUNCTIONS[name]
    doc = ast.get_docstring(f) or ""
    assert doc.strip(), f"{name}: no docstring"
    params = [a.arg for a in f.args.posonlyargs + f.args.args + f.args.kwonlyargs if a.arg not in ("self", "cls")]
    if f.args.vararg:
        params.append("*" + f.args.vararg.arg)
    if f.args.kwarg:
        params.append("**" + f.args.kwarg.arg)
    if params:
        assert "Parameters\n----------" in doc, f"{name}: no Parameters section"
        section = doc.split("Parameters\n----------", 1)[1]
        for p in params:
            assert p.lstrip("*") in section.split("Returns")[0], f"{name}: parameter {p} not described"
    returns_none = isinstance(f.returns, ast.Constant) and f.returns.value is None
    if not returns_none and any(isinstance(n, ast.Return) and n.value is not None for n in ast.walk(f)):
        assert "Returns\n-------" in doc or "Yields\n------" in doc, f"{name}: no Returns section"


def test_sources_compile_without_warnings():
    """No invalid escape sequences in docstrings (a warning today, an error under ``-W error`` and
    in later Pythons): formulas with backslashes belong in raw docstrings."""
    import warnings
    for pkg in ("theory", "reduction", "empirics", "benchmarks", "notebooks"):
        for p in sorted((ROOT / pkg).rglob("*.py")):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                compile(p.read_text(), str(p), "exec")
