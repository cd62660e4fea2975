"""check_defense / `invlimits check-defense` on a user-written encoder module, and its errors."""

import json
import math
import sys

import numpy as np
import pytest

from empirics.cli import main
from empirics.experiments import load_factory

ENCODER = '''
import torch.nn as nn

def make_encoder():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1), nn.Sigmoid())

def lazy_encoder():
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(16), nn.Sigmoid())

def not_a_module():
    return 42

def failing_factory():
    raise RuntimeError("no GPU here")
'''


@pytest.fixture()
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_encoders.py").write_text(ENCODER)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_encoders", None)
    return tmp_path


@pytest.mark.parametrize("dataset", ["synthetic-mixture", "digits"])
def test_check_defense_cli_on_user_encoder(user_module, dataset, capsys):
    factory = "my_encoders:make_encoder" if dataset == "digits" else "my_encoders:lazy_encoder"
    out = user_module / "out"
    rc = main(["check-defense", factory, "--dataset", dataset, "--noise", "0.1", "--out", str(out), "--quick"])
    res = json.loads((out / "results.json").read_text())
    assert rc == 0  # no floor is guaranteed for a nonlinear encoder, so nothing can be a bug
    assert {"attacks", "bounds", "comparisons", "warnings", "verdict", "encoder_trained", "certifiable_mse"} <= set(res)
    assert res["encoder_trained"] is True and res["n_checks"] == 0
    assert {a["name"] for a in res["attacks"]} == {"decoder", "optimization"}  # no bayes: posterior unknown
    for b in res["bounds"].values():
        assert set(b) == {"value", "stderr", "guarantee", "confidence", "finite", "assumptions"}
        assert b["guarantee"] == "none" and b["confidence"] is None  # nonlinear: the mixture is fitted, estimates
    for r in res["comparisons"]:
        assert {"attack", "bound", "difference", "stderr", "z", "status"} <= set(r)
        assert r["status"] in ("violated", "consistent", "inconclusive")
    if dataset == "digits":  # [0,1]-valued data: H(x) <= 0 caps the certificate at 1/(2πe)
        assert 0 < res["certifiable_mse"] <= 1 / (2 * math.pi * math.e) + 1e-12
    assert res["verdict"].startswith("no certificate")
    printed = capsys.readouterr().out
    assert res["verdict"] in printed and "PASS" not in printed  # the verdict on the terminal, no PASS over 0 checks
    report = (out / "report.md").read_text()
    assert "PASS" not in report and res["verdict"] in report.split("## ")[0]  # the verdict heads report.md
    assert (out / "check_defense.png").exists()
    assert len(list((out / "records").glob("*.json"))) == 1


def test_check_defense_lazy_encoder_on_synthetic_mixture(user_module):
    from empirics.experiments import check_defense_record
    rec = check_defense_record("my_encoders:lazy_encoder", dataset="synthetic-mixture", noise=0.3, epochs=2,
                               attack_epochs=2, attacks=("decoder",), n_mc=2000)
    assert rec.result["attacks"][0]["mse"] > 0 and "thm1+thm2_huber" in rec.result["bounds"]
    assert rec.config["encoder"] == "my_encoders:lazy_encoder" and rec.config["encoder_hash"]


@pytest.mark.parametrize("spec, match", [
    ("no_such_module_xyz:f", "could not import"),
    ("my_encoders:missing", "no callable"),
    ("my_encoders:not_a_module", "nn.Module"),
    ("my_encoders:failing_factory", "no GPU here"),
    ("my_encoders", "MODULE:FUNCTION"),
])
def test_bad_factories_give_clear_errors(user_module, spec, match):
    from empirics.experiments import check_defense
    with pytest.raises(ValueError, match=match):
        check_defense(spec, dataset="digits", noise=0.1, epochs=1)


@pytest.mark.parametrize("kw, match", [({"noise": -1.0}, "noise"), ({"noise": float("nan")}, "noise"),
                                       ({"encoder_noise": -0.1}, "encoder_noise"),
                                       ({"attacks": ("truncation",)}, "attacks")])
def test_bad_settings(user_module, kw, match):
    from empirics.experiments import check_defense
    with pytest.raises(ValueError, match=match):
        check_defense("my_encoders:make_encoder", **{"noise": 0.1, **kw})


def test_cli_exit_code_2_on_a_bad_factory(user_module, capsys):
    rc = main(["check-defense", "no_such_module_xyz:f", "--out", str(user_module / "o2")])
    assert rc == 2
    assert "could not import" in capsys.readouterr().err


def test_import_failure_inside_user_module(tmp_path, monkeypatch):
    (tmp_path / "broken_enc.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="boom"):
        load_factory("broken_enc:f")


def test_check_defense_trains_an_affine_factory_and_certifies_it(tmp_path):
    """An affine encoder trained on the known mixture: ẑ is exactly a mixture, so its Thm 1+2
    floors are certificates (deterministic and at confidence 0.999) — below the exact MMSE of the
    trained map, below every attack — and the README's verdict line reads "certified"."""
    import torch
    from torch import nn

    import theory
    from empirics.experiments import check_defense, exact_affine_map, load_dataset

    enc = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    res = check_defense(enc, dataset="synthetic-mixture", noise=0.3, train_encoder=True, epochs=2, attack_epochs=5,
                        opt_steps=50, fisher_samples=32, n_mc=4000, out=tmp_path).to_dict()
    assert res["encoder_trained"] is True
    thm = {k: b for k, b in res["bounds"].items() if k.startswith("thm1+thm2")}
    assert len(thm) == 6 and all(b["finite"] for b in thm.values())
    assert sorted(b["guarantee"] for b in thm.values()) == ["confidence"] * 3 + ["deterministic"] * 3
    assert res["bounds"]["cramer_rao_dfil"]["guarantee"] == "none"
    split = load_dataset("synthetic-mixture")
    amap, _ = exact_affine_map(enc, (16,), split.test.x)
    assert np.array_equal(amap.A, enc[1].weight.detach().double().numpy())  # the trained, deployed weights
    mm = theory.mixture_mmse_mc(split.meta["gmm"], amap.A, 0.09 * np.eye(4), 4000, np.random.default_rng(3))
    for b in thm.values():  # 4 s.e. of the MMSE estimate
        assert b["value"] <= mm.value / 16 + 4 * mm.stderr / 16
    assert {a["name"] for a in res["attacks"]} == {"decoder", "optimization", "bayes"}
    assert res["verdict"].startswith("certified") and res["bug"] is False
    assert res["certifiable_mse"] >= max(b["value"] for b in thm.values())
    saved = json.loads((tmp_path / "check_defense.json").read_text())
    assert saved["verdict"] == res["verdict"]
    assert torch.is_tensor(enc[1].weight)
