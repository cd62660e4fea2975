"""Configuration keys are identities: a refactor may not change one.

``config_keys_main.json`` holds the key and canonical configuration of 190 configurations — one of
every kind, every defense and attack with its defaults, both CEM objectives, the experiments'
cell builders and every cell of the repository's sweep specs — computed by
``benchmarks/config_keys.py`` on main's code, *before* ``empirics.runs`` was split (at 34bd28b,
and again at 0776911, where issue 18's ``alpha`` field entered the synthetic-bounds and
check-defense configurations) — so the expected values come from the old code, not from the code
under test.  A changed key would make every stored record of that configuration silently
unreachable.  The 32 cells of ``sweeps/phase_transition.toml`` (the phase-transition kind, new in
issue 21: no record of it existed before) were added to the file when the kind was ported, every
earlier line left byte-identical; from then on they are pinned like the rest.
"""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import config_keys  # noqa: E402

PINNED = json.loads((Path(__file__).parent / "config_keys_main.json").read_text())
NOW = config_keys.keys()


def test_the_same_configurations_are_built():
    assert sorted(NOW) == sorted(PINNED)
    kinds = {v["config"]["kind"] for v in PINNED.values()}
    assert kinds == {"train", "train-attack", "defense-table", "entropy-vs-mse", "synthetic-bounds", "optimality",
                     "dataset-attack", "check-defense", "phase-transition"}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_key_and_canonical_configuration_unchanged(name):
    assert NOW[name]["config"] == PINNED[name]["config"]
    assert NOW[name]["key"] == PINNED[name]["key"]


def test_a_new_cem_setting_at_its_default_leaves_the_key_alone_and_changes_it_otherwise():
    """``log_entropy`` (the released trainer's switch, added after records were written) enters a
    configuration only when it is not the default the old records were computed with."""
    from empirics.specs import DefenseSpec
    base = DefenseSpec.parse("cem:lam=16,objective=code")
    assert "log_entropy" not in dict(base.params)
    assert DefenseSpec.parse("cem:lam=16,objective=code,log_entropy=true") == base
    other = DefenseSpec.parse("cem:lam=16,objective=code,log_entropy=false")
    assert dict(other.params)["log_entropy"] is False and other != base
