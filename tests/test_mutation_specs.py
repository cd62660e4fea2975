"""benchmarks/mutation_check.py cannot rot: every mutation's source occurs exactly once and its
test paths exist (the script itself runs outside the default suite: it takes minutes)."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("mutation_check", ROOT / "benchmarks" / "mutation_check.py")
mc = importlib.util.module_from_spec(_spec)
sys.modules["mutation_check"] = mc  # dataclasses resolve their module by name
_spec.loader.exec_module(mc)


def test_at_least_sixteen_distinct_mutations():
    assert len(mc.MUTATIONS) >= 16 and len({m.id for m in mc.MUTATIONS}) == len(mc.MUTATIONS)


@pytest.mark.parametrize("mu", mc.MUTATIONS, ids=lambda m: m.id)
def test_mutation_applies_exactly_once(mu):
    text = (ROOT / mu.file).read_text()
    assert text.count(mu.old) == 1, f"{mu.id}: the mutated source changed; update benchmarks/mutation_check.py"
    assert mu.old != mu.new
    assert all((ROOT / t).exists() for t in mu.tests)
