"""Measurement (Thm 2 variants, dFIL), the experiment drivers (resume/skip), the CLI sections."""

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import theory.bounds as tb
from empirics import experiments as E
from empirics.cli import main
from empirics.defenses import make_defense
from empirics.models import SplitModel


def _linear_model(d=6, k=3, sigma=0.2, seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        enc = nn.Linear(d, k, bias=False)
        head = nn.Linear(k, 2)
    return SplitModel(enc, head, defenses=[make_defense("noise", sigma=sigma)], input_shape=(d,))


def test_fisher_information_of_linear_encoder():
    """z = Ax + N(0, σ²I): dFIL = ‖A‖_F²/(σ² d) for every x.  Hutchinson with Gaussian probes is
    unbiased; 5 standard errors (of the mean over samples × probes) bound the test's false-alarm
    rate below 1e-6."""
    m = _linear_model()
    x = torch.rand(200, 6)
    r = E.fisher_information(m, (x, torch.zeros(200, dtype=torch.long)), probes=16, max_samples=200)
    A = m.encoder.weight.detach().double()
    exact = float((A ** 2).sum() / (0.04 * 6))
    assert abs(r["dfil"] - exact) <= 5 * r["dfil_stderr"] + 1e-12
    with pytest.raises(ValueError, match="sigma"):
        E.fisher_information(m, (x, torch.zeros(200, dtype=torch.long)), sigma=0.0)


def test_conditional_entropy_variants_ordering_and_noise_monotonicity():
    """KL-pairwise U ≤ Huber U (= Thm 2) ⇒ H_kl ≥ H_huber; more noise ⇒ larger H(x|z) (I(z;ẑ)
    decreases in σ for a fixed encoder)."""
    m = _linear_model(d=6, k=3)
    g = torch.Generator().manual_seed(0)
    y = torch.arange(600) % 2
    x = torch.randn(600, 6, generator=g) + 3 * y[:, None]
    lo = E.conditional_entropy(m, (x, y), k_per_class=2, noise_var=0.04)
    hi = E.conditional_entropy(m, (x, y), k_per_class=2, noise_var=0.25)
    assert lo["kl"] >= lo["huber"] - 1e-9
    for key in ("huber", "kl", "maxent"):
        assert hi[key] > lo[key]
    assert lo["guarantee"] == "none" and "relative" in lo["assumptions"]


def test_conditional_entropy_needs_noise():
    m = _linear_model()
    m.defenses = []
    with pytest.raises(ValueError, match="noise"):
        E.conditional_entropy(m, (torch.rand(40, 6), torch.arange(40) % 2), k_per_class=1)


def _tiny_digits():
    from empirics.data import ArrayDataset, DataSplit, digits
    full = digits()
    return DataSplit(ArrayDataset(full.train.x[:200], full.train.y[:200]),
                     ArrayDataset(full.test.x[:60], full.test.y[:60]), 10, "digits-tiny")


def test_entropy_vs_mse_resumes_reuses_and_never_reuses_other_settings(tmp_path, monkeypatch):
    from empirics.experiments import common
    from empirics.kinds import entropy_mse as M
    calls = []
    real = common.train_model

    def counting(cfg, ctx):
        calls.append(cfg.key())
        return real(cfg, ctx)
    monkeypatch.setattr(M, "train_model", counting)
    kw = dict(dataset=_tiny_digits(), sigmas=(0.1, 0.4, 0.8), lams=(0.0,), epochs=1, attack_epochs=1,
              progress=False, k_per_class=1)
    s1 = E.entropy_vs_mse(tmp_path, **kw)
    assert len(calls) == 3 and s1["n_cells"] == 3
    # an interrupted run: one record missing, one torn -> exactly those two are recomputed
    recs = sorted((tmp_path / "records").glob("*.json"))
    recs[0].unlink()
    recs[1].write_text(recs[1].read_text()[:40])
    with pytest.warns(UserWarning, match="invalid"):
        s2 = E.entropy_vs_mse(tmp_path, **kw)
    assert len(calls) == 5 and s2["n_cells"] == 3
    # the same command again: nothing runs
    E.entropy_vs_mse(tmp_path, **kw)
    assert len(calls) == 5
    # more attack epochs: every cell runs afresh (the records of 1 epoch are not reused)
    s3 = E.entropy_vs_mse(tmp_path, **{**kw, "attack_epochs": 2})
    assert len(calls) == 8
    assert all(r.config["attack"]["params"]["epochs"] == 2 for r in s3["record_list"])
    assert len(list((tmp_path / "records").glob("*.json"))) == 6


def test_entropy_vs_mse_rejects_zero_noise(tmp_path):
    with pytest.raises(ValueError, match="noise"):
        E.entropy_vs_mse(tmp_path, sigmas=(0.0,), epochs=1, attack_epochs=1, progress=False)


def _cells(acc_mse):
    recs = []
    for (b, c), vals in acc_mse.items():
        for seed, (acc, mse) in enumerate(vals):
            recs.append({"baseline": b, "cem": c, "seed": seed, "accuracy": acc, "decoder_test_mse": mse,
                         "status": "ok" if acc is not None else "failed"})
    return recs


def test_defense_table_verdicts_are_tests_not_means():
    """helps: MSE higher with CEM (Welch p < 0.05) and accuracy CI above −1 point; a mean difference
    inside the noise is 'inconclusive'; a clear accuracy loss 'hurts accuracy'."""
    recs = _cells({
        ("a", False): [(0.903, 0.010), (0.904, 0.011), (0.905, 0.0105)],
        ("a", True): [(0.905, 0.020), (0.904, 0.021), (0.906, 0.0205)],
        ("b", False): [(0.90, 0.010), (0.91, 0.011), (0.90, 0.0105)],
        ("b", True): [(0.80, 0.020), (0.81, 0.021), (0.80, 0.0205)],
        ("c", False): [(0.90, 0.010), (0.91, 0.012), (0.90, 0.011)],
        ("c", True): [(0.90, 0.0115), (0.91, 0.010), (0.90, 0.012)],
    })
    summ = E.summarise_defense_table(recs, ["a", "b", "c"])
    v = {n: x["verdict"] for n, x in summ["verdicts"].items()}
    assert v == {"a": "helps", "b": "hurts accuracy", "c": "inconclusive"}
    assert summ["cem_helps_count"] == 1 and summ["compared"] == 3
    # the same means with seed-to-seed spread of a point: equal accuracy cannot be shown -> inconclusive
    loose = _cells({("a", False): [(0.90, 0.010), (0.91, 0.011), (0.90, 0.0105)],
                    ("a", True): [(0.905, 0.020), (0.90, 0.021), (0.91, 0.0205)]})
    assert E.summarise_defense_table(loose, ["a"])["verdicts"]["a"]["verdict"] == "inconclusive"


def test_defense_table_excludes_and_counts_failed_seeds():
    recs = _cells({("a", False): [(0.90, 0.010), (0.92, 0.011), (0.91, 0.012)],
                   ("a", True): [(0.90, 0.02), (0.91, 0.021), (None, None)]})
    summ = E.summarise_defense_table(recs, ["a"])
    rows = {r["cem"]: r for r in summ["rows"]}
    assert rows[True]["seeds"] == "2 of 3" and rows[False]["seeds"] == "3 of 3"
    assert rows[True]["accuracy"] == pytest.approx(0.905)
    assert 0.0 <= rows[True]["accuracy_low"] <= rows[True]["accuracy_high"] <= 1.0  # clipped to [0, 1]
    assert len(summ["failed"]) == 1


def test_defense_table_bad_baseline():
    with pytest.raises(ValueError, match="baselines"):
        E.defense_table_cells(baselines=["nosuch"], seeds=(0,))


def test_defenses_section_quick_via_cli(tmp_path):
    """The verify battery: objective = theory, low-rank = dense, guaranteed floors hold on a known
    mixture; every model is a record listed in results.json."""
    rc = main(["defenses", "--quick", "--out", str(tmp_path)])
    assert rc == 0
    res = json.loads((tmp_path / "results.json").read_text())
    sec = res["sections"]["defenses"]
    assert sec["n_checks"] >= 5 and sec["passed"]
    assert {r["kind"] for r in res["records"]} == {"synthetic-bounds", "entropy-vs-mse"}
    assert all(set(r) >= {"key", "config", "result", "status"} for r in res["records"])


def test_paper_preset_says_what_is_missing(tmp_path):
    from empirics.sections import paper_preset
    with pytest.raises(ValueError, match="CIFAR-10") as e:
        paper_preset.run(SimpleNamespace(cifar_root=tmp_path, out=tmp_path, seed=0, device="auto"))
    assert "data_batch_1" in str(e.value)
    if not torch.cuda.is_available():
        assert "CUDA" in str(e.value)
    rc = main(["verify", "--preset", "paper", "--out", str(tmp_path / "v")])
    assert rc == 2


@pytest.mark.slow
def test_bench_quick_runs(tmp_path):
    rc = main(["bench", "--quick", "--out", str(tmp_path)])
    res = json.loads((tmp_path / "results.json").read_text())
    routes = {r["route"]: r for r in res["bench"]["overhead"]}
    assert routes["ours, full"]["epoch_ratio"] < routes["naive, full"]["epoch_ratio"]
    assert rc == 0


def test_paper_preset_pipeline_on_tiny_cifar_files_resumes(tmp_path, monkeypatch):
    """The pipeline a GPU user runs (CIFAR-10 python batches -> VGG11-BN split -> three models ->
    decoder attack), on tiny files in the CIFAR format, one epoch on the CPU; a rerun skips
    finished models."""
    import pickle

    from empirics.data import load_cifar10
    from empirics.sections import paper_preset

    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [int(v) for v in np.arange(20) % 10]
        with open(folder / name, "wb") as fh:
            pickle.dump({b"labels": labels, b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8)}, fh,
                        protocol=2)
    data = load_cifar10(tmp_path)
    out = tmp_path / "out"
    rows = paper_preset.run_models(data, out, epochs=1, attack_epochs=1, device="cpu", progress=False)
    assert [r["name"] for r in rows] == [c[0] for c in paper_preset.CONFIGS]
    assert all(0 <= r["accuracy"] <= 1 for r in rows)
    assert all(np.isfinite(r["decoder_test_mse"]) for r in rows if r["status"] == "ok")
    calls = []
    monkeypatch.setattr("empirics.kinds.train_attack.train_model", lambda *a, **k: calls.append(1))
    again = paper_preset.run_models(data, out, epochs=1, attack_epochs=1, device="cpu", progress=False)
    strip = [{k: v for k, v in r.items() if k != "record"} for r in rows]
    assert [{k: v for k, v in r.items() if k != "record"} for r in again] == strip and not calls
