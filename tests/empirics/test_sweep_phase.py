"""The phase-transition experiment as a sweep kind (``empirics/kinds/phase_transition.py``,
``sweeps/phase_transition.toml``; issue 22's experiment, its logic in ``reduction.phase``)."""

import json
from pathlib import Path

import pytest

from empirics.cli import main
from empirics.kinds.phase_transition import PhaseTransitionConfig
from empirics.records import config_from_dict
from empirics.sweep.spec import _toml_loads, count_cells, expand, load_spec, parse_spec
from reduction.phase import PhaseCellConfig, run_cell

ROOT = Path(__file__).resolve().parents[2]

_TINY = """
[sweep]
experiment = "phase-transition"
name = "pt-tiny"
[grid]
density = [2.0, 6.0]
[settings]
n = 6
formulas = 3
attacks = ["lbfgsb"]
steps = 20
restarts = 2
"""


def test_shipped_spec_expands():
    spec = load_spec(ROOT / "sweeps" / "phase_transition.toml")
    cells = expand(spec)
    assert count_cells(spec) == len(cells) == len({c.key for c in cells}) == 32
    c = cells[0].config
    assert c.kind == "phase-transition" and (c.n, c.density, c.formulas) == (10, 2.0, 100)
    assert "n=10" in cells[0].label()


def test_the_kind_is_the_reductions_cell_and_its_record_round_trips():
    """Same fields and validation as reduction.phase.PhaseCellConfig; the stored dict reads back to the same key;
    its runner's numbers are run_cell's."""
    cfg = PhaseTransitionConfig(n=6, density=2.0, formulas=2, attacks=())
    plain = PhaseCellConfig(n=6, density=2.0, formulas=2, attacks=())
    assert {k: v for k, v in cfg.to_dict().items() if k != "kind"} == plain.to_dict()
    assert config_from_dict(json.loads(json.dumps(cfg.to_dict()))).key() == cfg.key()
    with pytest.raises(ValueError, match="n: expected an integer >= 3"):
        PhaseTransitionConfig(n=2, density=2.0)
    from empirics.kinds.phase_transition import run_phase_cell
    out = run_phase_cell(cfg, None)
    ref = run_cell(plain)
    assert out.status == "ok" and (out.result.n_sat, out.result.agree) == (ref.n_sat, ref.agree)


def test_tiny_sweep_runs_collects_and_reuses(tmp_path, capsys):
    spec = tmp_path / "pt.toml"
    spec.write_text(_TINY)
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1"]) == 0
    res = json.loads((out / "results.json").read_text())
    sec = res["sections"]["phase-transition"]
    assert sec["passed"]
    rows = sec["tables"]["phase transition"]
    assert [(r["n"], r["m/n"], r["formulas"]) for r in rows] == [(6, 2.0, 3), (6, 6.0, 3)]
    assert len(list((out / "records").glob("*.json"))) == 2
    rec = json.loads(next((out / "records").glob("*.json")).read_text())
    assert rec["kind"] == "phase-transition" and rec["config"]["formulas"] == 3 and rec["digest"]
    capsys.readouterr()
    assert main(["sweep", str(spec), "--out", str(out), "--workers", "1", "--force"]) == 0
    assert "0 cells ran" in capsys.readouterr().out
    assert main(["sweep", str(spec), "--out", str(out), "--dry-run", "--force"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["sweep"]["estimate"] is None and [r["done"] for r in res["sections"]["dry-run"]["tables"]["cells"]] \
        == ["ok", "ok"]


@pytest.mark.parametrize("extra,msg", [
    ('n = 2\n', "settings.n: expected an integer >= 3"),
    ('n = 8\nnorm = "l2"\n', "norm: expected 'linf' or 'l1'"),
    ('n = 8\ndataset = "digits"\n', "unknown key for experiment 'phase-transition'"),
    ('n = 8\nattacks = ["decoder"]\n', "attacks: expected names from ['lbfgsb', 'pgd']"),
    ('formulas = 3\n', "n: required for phase-transition"),
], ids=["n", "norm", "dataset", "attacks", "missing-n"])
def test_bad_phase_spec_refused_before_running(tmp_path, extra, msg):
    text = '[sweep]\nexperiment = "phase-transition"\n[grid]\ndensity = [2.0]\n[settings]\n' + extra
    with pytest.raises(ValueError, match=msg.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        expand(parse_spec(_toml_loads(text), where="t.toml"))
