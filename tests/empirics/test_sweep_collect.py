"""Aggregation of a sweep's records into Fig. 3 and Table 1 (records made by hand: no training).

The numbers are chosen so the answers are known: log MSE exactly linear in H with slope 2/d, so
the fitted slope is 2/d and Spearman ρ is 1; Table 1 groups share the cells without CEM."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from empirics.store import RecordStore, make_record
from empirics.sweep.collect import collect_sections, group_signature
from empirics.sweep.spec import expand, load_spec as parse_spec_file, parse_spec


def _fig3_spec():
    return parse_spec({"sweep": {"experiment": "entropy-vs-mse", "name": "t"},
                       "grid": {"sigma": [0.1, 0.2, 0.3, 0.4, 0.5], "lam": [0.0, 0.01], "seed": [0]},
                       "settings": {"epochs": 2, "attack_epochs": 2}})


def _fig3_record(cell, d=64):
    c = cell.config
    h = -40.0 + 50.0 * c.sigma + 3.0 * c.lam  # any increasing function of σ
    mse = math.exp(2.0 / d * h - math.log(2 * math.pi * math.e))  # Thm 1 tight: slope exactly 2/d
    return make_record(c, "ok", result=dict(accuracy=0.9, chance=0.1, n_test=450, h_huber=h, h_kl=h, h_maxent=h,
                                            h_x=0.0, d=d, d_features=16, mse=mse, mse_stderr=mse / 100))


def test_fig3_one_fit_per_lambda_with_known_slope(tmp_path):
    spec = _fig3_spec()
    cells = expand(spec)
    recs = [_fig3_record(c) for c in cells]
    recs[0] = make_record(cells[0].config, "error", reason="ValueError: boom")  # excluded from the fit
    recs[1] = None  # not run yet
    secs = collect_sections(spec, cells, recs, tmp_path)
    assert [s.key for s in secs] == ["fig3_1", "fig3_2"]  # λ = 0 and λ = 0.01
    n_models = []
    for s in secs:
        (fit,) = next(v for k, v in s.tables.items() if k.startswith("fit"))
        assert fit["slope"] == pytest.approx(2 / 64, rel=1e-9)  # exact up to float rounding
        assert fit["spearman"] == pytest.approx(1.0)
        n_models.append(fit["n_models"])
        assert (tmp_path / s.figures[0].split("/")[-1]).is_file()
    assert n_models == [4, 4]  # cells 0 (λ = 0, error) and 1 (λ = 0.01, missing) are left out


def _table_spec():
    return parse_spec({"sweep": {"experiment": "defense-table", "name": "t"},
                       "grid": {"baseline": ["noise", "dropout"], "lam": [0.01, 0.02], "seed": [0, 1, 2]},
                       "settings": {"epochs": 2, "attack_epochs": 2, "attacks": ["decoder"], "eval_train": False}})


def _table_record(cell, i):
    c = cell.config
    mse = 0.02 + (0.01 if c.cem else 0.0) + 0.001 * i % 3
    return make_record(c, "ok", result=dict(accuracy=0.8 + 0.001 * (i % 5), chance=0.1, n_test=450,
                                            attacks={"decoder": {"test": {"mse": mse, "mse_stderr": 1e-4, "n": 450}}}))


def test_table1_one_table_per_lambda_sharing_the_cells_without_cem(tmp_path):
    spec = _table_spec()
    cells = expand(spec)
    assert len(cells) == 2 * 3 * 3  # baselines × seeds × (no CEM, CEM at 0.01, CEM at 0.02)
    recs = [_table_record(c, i) for i, c in enumerate(cells)]
    j = next(i for i, c in enumerate(cells) if c.config.baseline == "dropout" and not c.config.cem)
    recs[j] = make_record(cells[j].config, "failed", result={"accuracy": 0.1, "chance": 0.1, "n_test": 450},
                          reason="near chance")
    secs = collect_sections(spec, cells, recs, tmp_path)
    assert len(secs) == 2 and "λ = 0.01" in secs[0].title and "λ = 0.02" in secs[1].title
    for s in secs:
        rows = {(r["baseline"], r["cem"]): r["seeds"] for r in next(iter(s.tables.values()))}
        assert rows == {("noise", "no"): "3 of 3", ("noise", "yes"): "3 of 3",
                        ("dropout", "no"): "2 of 3", ("dropout", "yes"): "3 of 3"}
        assert len(s.records) == 12  # the 6 cells without CEM belong to both tables
        assert s.tables["failed models"][0]["reason"] == "near chance"


def test_group_signature_ignores_exactly_the_summarised_axes():
    spec = _table_spec()
    cells = expand(spec)
    sigs = {group_signature("defense-table", c.config.to_dict()) for c in cells}
    assert len(sigs) == 1
    spec2 = parse_spec({"sweep": {"experiment": "defense-table"},
                        "grid": {"baseline": ["noise"], "sigma": [0.025, 0.1], "seed": [0]}})
    assert len({group_signature("defense-table", c.config.to_dict()) for c in expand(spec2)}) == 2  # σ kept


def test_collect_command_lists_records_and_exits_1_on_errors(tmp_path, capsys):
    from empirics.cli import main
    spec = _fig3_spec()
    path = tmp_path / "s.toml"
    path.write_text('[sweep]\nexperiment = "entropy-vs-mse"\nname = "t"\n[grid]\nsigma = [0.1, 0.2, 0.3, 0.4, 0.5]\n'
                    'lam = [0.0, 0.01]\nseed = [0]\n[settings]\nepochs = 2\nattack_epochs = 2\n')
    out = tmp_path / "out"
    store = RecordStore(out / "records")
    cells = expand(spec)
    for c in cells[1:]:
        store.put(_fig3_record(c))
    assert main(["sweep", str(path), "--out", str(out), "--collect"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert len(res["records"]) == 9 and res["sweep"]["counts"] == {"ok": 9, "failed": 0, "error": 0, "missing": 1}
    assert len(res["figures"]) == 2
    store.put(make_record(cells[0].config, "error", reason="RuntimeError: x"))
    assert main(["sweep", str(path), "--out", str(out), "--collect"]) == 1
    assert "1 error" in capsys.readouterr().out


def test_dry_run_lists_cells_resources_and_an_estimate(tmp_path, capsys):
    """Digits: a real timed step; every cell listed with its key; nothing runs."""
    from empirics.cli import main
    spec = Path(__file__).resolve().parents[2] / "sweeps" / "digits_tiny.toml"
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--dry-run"]) == 0
    res = json.loads((out / "results.json").read_text())
    rows = res["sections"]["dry-run"]["tables"]["cells"]
    cells = expand(parse_spec_file(spec))
    assert [r["key"] for r in rows] == [c.key for c in cells] and all(r["done"] == "no" for r in rows)
    est = res["sweep"]["estimate"]
    assert est["device"] == "cpu" and est["hours_total"] > 0 and est["models_timed"] == 1
    assert all(r["est_hours"] == pytest.approx(est["hours_total"] / 8) for r in rows)  # one architecture
    assert not (out / "records").exists()


def test_dry_run_of_the_paper_table_needs_no_data(tmp_path, monkeypatch):
    """CIFAR-10 absent: cells and resources are listed, keys wait for --data-root; the estimate
    scales a timed step (stubbed here: 2 s) by 391 steps per epoch × 240 epochs."""
    from empirics.cli import main
    from empirics.sweep import estimate
    monkeypatch.setattr(estimate, "time_training_step", lambda *a, **k: 2.0)
    spec = Path(__file__).resolve().parents[2] / "sweeps" / "paper_table1.toml"
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--dry-run"]) == 0
    res = json.loads((out / "results.json").read_text())
    rows = res["sections"]["dry-run"]["tables"]["cells"]
    assert len(rows) == 30 and all(r["key"] == "(needs --data-root)" for r in rows)
    assert all((r["num_cpus"], r["num_gpus"]) == (4, 1) for r in rows)
    assert rows[0]["est_hours"] == pytest.approx(2.0 * 391 * 240 / 3600)
    assert res["sweep"]["estimate"]["datasets"]["cifar10"]["n_train"] == 50_000


def test_a_local_file_dataset_without_data_root_is_refused_before_running(tmp_path, capsys):
    from empirics.cli import main
    spec = Path(__file__).resolve().parents[2] / "sweeps" / "paper_fig3.toml"
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--data-root" in err[0]
