"""check_defense / `invlimits check-defense` on a user-written encoder module, and its errors."""

import json
import subprocess
import sys
import time

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
'''


@pytest.fixture()
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_encoders.py").write_text(ENCODER)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_encoders", None)
    return tmp_path


@pytest.mark.parametrize("dataset", [
    "synthetic-mixture",  # fast default variant
    "digits",  # images, conv encoder: ~5 s idle, up to ~2.5 min measured on 2 heavily shared cores
])
def test_check_defense_cli_on_user_encoder(user_module, dataset):
    t0 = time.perf_counter()
    factory = "my_encoders:make_encoder" if dataset == "digits" else "my_encoders:lazy_encoder"
    rc = main(["check-defense", factory, "--dataset", dataset, "--noise", "0.1",
               "--out", str(user_module / "out"), "--quick"])
    seconds = time.perf_counter() - t0
    res = json.loads((user_module / "out" / "results.json").read_text())
    assert rc in (0, 1)  # 1 only if a rigorous bound were violated (none is rigorous on digits)
    assert {"attacks", "bounds", "certifiable_mse", "verdict"} <= set(res)
    assert {a["name"] for a in res["attacks"]} == {"decoder", "optimization"}
    for b in res["bounds"].values():
        assert set(b) == {"value", "rigorous", "assumptions"}
        assert b["rigorous"] is False  # nonlinear encoder: the mixture is fitted, every bound is an estimate
    if dataset == "digits":  # [0,1]-valued data: H(x) <= 0 caps the certificate at 1/(2πe)
        assert 0 < res["certifiable_mse"] <= 1 / (2 * 3.141592653589793 * 2.718281828459045) + 1e-12
    assert res["certifiable_mse"] > 0
    assert (user_module / "out" / "check_defense.png").exists()
    assert seconds < 180


def test_check_defense_lazy_encoder_on_synthetic_mixture(user_module):
    from empirics.experiments import check_defense
    res = check_defense("my_encoders:lazy_encoder", dataset="synthetic-mixture", noise=0.3, epochs=2,
                        attack_epochs=2, attacks=("decoder",))
    assert res["attacks"][0]["mse"] > 0 and "thm1+thm2_huber" in res["bounds"]


@pytest.mark.parametrize("spec, match", [
    ("no_such_module_xyz:f", "could not import"),
    ("my_encoders:missing", "no callable"),
    ("my_encoders:not_a_module", "nn.Module"),
    ("my_encoders", "MODULE:FUNCTION"),
])
def test_bad_factories_give_clear_errors(user_module, spec, match):
    from empirics.experiments import check_defense
    with pytest.raises(ValueError, match=match):
        check_defense(spec, dataset="digits", noise=0.1, epochs=1)


def test_bad_noise_and_cli_exit_code(user_module, capsys):
    from empirics.experiments import check_defense
    with pytest.raises(ValueError, match="noise"):
        check_defense("my_encoders:make_encoder", noise=-1.0)
    rc = main(["check-defense", "no_such_module_xyz:f", "--out", str(user_module / "o2")])
    assert rc == 2
    assert "could not import" in capsys.readouterr().err


def test_import_failure_inside_user_module(tmp_path, monkeypatch):
    (tmp_path / "broken_enc.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="boom"):
        load_factory("broken_enc:f")


def test_affine_encoder_map_detects_affine_and_rejects_relu():
    import torch
    from torch import nn

    from empirics.experiments import affine_encoder_map
    from empirics.models import SplitModel

    torch.manual_seed(0)
    x = torch.randn(64, 5)
    lin = nn.Linear(5, 3)
    m = SplitModel(lin, nn.Linear(3, 2), input_shape=(5,))
    A, c = affine_encoder_map(m, x)
    assert abs(A - lin.weight.detach().double().numpy()).max() < 1e-6
    assert abs(c - lin.bias.detach().double().numpy()).max() < 1e-6
    relu = SplitModel(nn.Sequential(nn.Linear(5, 3), nn.ReLU()), nn.Linear(3, 2), input_shape=(5,))
    assert affine_encoder_map(relu, x) is None

    # a ReLU that is never active on the probed inputs is still not affine on the whole space
    lin2 = nn.Linear(5, 3)
    with torch.no_grad():
        lin2.bias.fill_(100.0)
    shifted = SplitModel(nn.Sequential(lin2, nn.ReLU()), nn.Linear(3, 2), input_shape=(5,))
    assert affine_encoder_map(shifted, x) is None

    class Hidden(nn.Module):  # affine leaves, nonlinear forward: rejected by construction
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(5, 3)

        def forward(self, v):
            return torch.tanh(self.lin(v))
    assert affine_encoder_map(SplitModel(Hidden(), nn.Linear(3, 2), input_shape=(5,)), x) is None


def test_check_defense_marks_affine_encoder_on_mixture_rigorous(tmp_path):
    """Affine encoder on a known mixture: ẑ is exactly a mixture, so the bounds are certificates —
    below the exact MMSE of that very encoder and below every attack."""
    import numpy as np
    import torch
    from torch import nn

    from empirics.experiments import check_defense
    from theory.mixture import mixture_mmse_mc

    torch.manual_seed(0)
    enc = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    res = check_defense(enc, dataset="synthetic-mixture", noise=0.3, epochs=2, attack_epochs=5,
                        opt_steps=50, fisher_samples=32, out=tmp_path)
    thm = {k: b for k, b in res["bounds"].items() if k.startswith("thm1+thm2")}
    assert len(thm) == 3 and all(b["rigorous"] for b in thm.values())
    assert res["bounds"]["cramer_rao_dfil"]["rigorous"] is False
    assert res["bounds"]["van_trees"]["rigorous"] is True  # exact Tr I_F for an affine encoder
    lin = enc[1]
    A = lin.weight.detach().double().numpy()
    from empirics.experiments import load_dataset
    gmm = load_dataset("synthetic-mixture").meta["gmm"]
    mm = mixture_mmse_mc(gmm, A, 0.09 * np.eye(4), 4000, np.random.default_rng(3))
    d = A.shape[1]
    for b in list(thm.values()) + [res["bounds"]["van_trees"]]:
        assert b["value"] <= (mm.value + 4 * mm.stderr) / d
    for a in res["attacks"]:
        assert a["mse"] >= max(b["value"] for b in thm.values())
    assert res["certifiable_mse"] >= max(b["value"] for b in thm.values())
    assert "certify" in res["verdict"]
    assert (tmp_path / "check_defense.json").exists()
