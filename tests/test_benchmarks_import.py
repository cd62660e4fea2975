"""Every script in ``benchmarks/`` still imports against the package (a renamed function or module
breaks it here, not months later when someone re-measures).  Module-level code only: each script's
work sits under ``if __name__ == "__main__"``, which importing does not run."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


def test_there_are_benchmarks():
    assert len(SCRIPTS) >= 10


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_imports(path):
    assert '__name__ == "__main__"' in path.read_text(), f"{path.name}: its work must run only as a script"
    spec = importlib.util.spec_from_file_location(f"_bench_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
