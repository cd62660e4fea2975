"""check-defense on encoders the theory cannot bound or that misbehave: no crash, no traceback, clear
verdicts and warnings; a user's own Gaussian-mixture prior; records reused."""

import json
import sys

import numpy as np
import pytest
import torch
from torch import nn

import theory
from empirics.cli import main
from empirics.experiments import check_defense, check_defense_record

ENCODERS = '''
import torch
from torch import nn


class Round(nn.Module):
    def forward(self, x):
        return torch.round(4 * x)


class Step(nn.Module):
    def forward(self, x):
        return (x > 0).float()


class DropBatch(nn.Module):
    def forward(self, x):
        return x.mean(0)


class Integer(nn.Module):
    def forward(self, x):
        return (4 * x).long()


class MixBatch(nn.Module):
    def forward(self, x):
        return x - x.mean(0, keepdim=True)


class Noisy(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(16, 8)

    def forward(self, x):
        z = self.lin(x)
        return z + 0.5 * torch.randn_like(z)


def quantizing():
    return nn.Sequential(nn.Linear(16, 8), Round())


def step():
    return Step()


def batch_dropping():
    return DropBatch()


def integer():
    return Integer()


def batch_mixing():
    return MixBatch()


def noisy():
    return Noisy()


def crashing():
    return nn.Linear(3, 2)


class Overflow(nn.Module):
    def forward(self, x):
        return torch.exp(1e3 * x)


def infinite():
    return Overflow()
'''


@pytest.fixture()
def encs(tmp_path, monkeypatch):
    (tmp_path / "odd_encoders.py").write_text(ENCODERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("odd_encoders", None)
    return tmp_path


def _run(encs, name, *extra, noise="0.01"):
    out = encs / f"out_{name}"
    rc = main(["check-defense", f"odd_encoders:{name}", "--dataset", "synthetic-mixture", "--noise", noise,
               "--out", str(out), "--quick", *extra])
    res = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else None
    return rc, res, out


@pytest.mark.parametrize("name", ["quantizing", "step"])
def test_encoders_without_a_finite_fisher_bound(encs, name):
    """Rounding (zero Jacobian) and a step with no autograd graph: "no finite bound" for the Fisher
    bounds with the reason; attacks, figure and results.json still written (no OverflowError)."""
    rc, res, out = _run(encs, name)
    assert rc == 0
    for k in ("cramer_rao_dfil", "van_trees"):
        b = res["bounds"][k]
        assert b["value"] is None and b["finite"] is False and b["assumptions"].startswith("no finite bound")
    assert any(w.startswith(("piecewise-constant", "non-differentiable")) for w in res["warnings"])
    assert res["attacks"] and (out / "check_defense.png").exists()
    assert all(b["guarantee"] == "none" for b in res["bounds"].values())


@pytest.mark.parametrize("name, needle", [
    ("batch_dropping", "batch dimension first"),
    ("integer", "floating-point"),
    ("batch_mixing", "other inputs of its batch"),
    ("crashing", "forward pass"),
    ("infinite", "NaN or inf"),
])
def test_malformed_encoders_exit_2_with_one_line(encs, capsys, name, needle):
    rc, res, _ = _run(encs, name)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and res is None
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0]


def test_stochastic_encoder_warned_and_declared_noise_counted(encs):
    rc, plain, _ = _run(encs, "noisy")
    assert rc == 0 and any(w.startswith("stochastic encoder") for w in plain["warnings"])
    rc2, declared, _ = _run(encs, "noisy", "--encoder-noise", "0.5")
    assert rc2 == 0 and any("counted as channel noise" in w for w in declared["warnings"])
    floor = lambda r: r["bounds"]["thm1+thm2_kl"]["value"]
    # the internal noise leaves the modelled ẑ for the channel: the estimated floor rises a lot
    assert floor(declared) > 10 * floor(plain)
    assert all(b["guarantee"] == "none" for r in (plain, declared) for b in r["bounds"].values())


def test_declared_noise_on_a_deterministic_encoder_is_ignored(encs):
    rc, res, _ = _run(encs, "quantizing", "--encoder-noise", "0.3")
    assert rc == 0 and any("is ignored" in w for w in res["warnings"])


def test_near_chance_accuracy_is_a_warning(tmp_path):
    """Noise 50 drowns every feature: the head stays at chance, and the verdict says so."""
    res = check_defense(lambda: nn.Linear(16, 2), dataset="synthetic-mixture", noise=50.0, epochs=2,
                        attacks=(), n_mc=2000).to_dict()
    assert any(w.startswith("near chance") for w in res["warnings"])
    assert "near chance" in res["verdict"]


def test_your_own_gaussian_mixture_prior():
    """A 2-d prior of the user's: samples drawn from it, labels = component, bounds certified."""
    gmm = theory.GaussianMixture([0.3, 0.7], [[-2.0, 0.0], [2.0, 1.0]], [np.eye(2), [[1.0, 0.5], [0.5, 2.0]]])
    lin = nn.Linear(2, 3)
    rec = check_defense_record(lin, dataset=gmm, noise=0.5, attacks=(), head=False, n_train=400, n_test=300,
                               n_mc=4000)
    res = rec.result
    assert res["dataset"] == "gaussian-mixture" and res["n_test"] == 300
    assert rec.config["dataset_hash"]
    A = lin.weight.detach().double().numpy()
    mm = theory.mixture_mmse_mc(gmm, A, 0.25 * np.eye(3), 4000, np.random.default_rng(0))
    det = [b for b in res["bounds"].values() if b["guarantee"] == "deterministic" and b["finite"]]
    conf = [b for b in res["bounds"].values() if b["guarantee"] == "confidence" and b["finite"]]
    assert len(det) == 3 and len(conf) == 3  # a Linear encoder: the rounding analysis covers it
    for b in det + conf:  # 4 s.e. of the MMSE estimate (a guaranteed floor is a fixed number)
        assert b["value"] <= mm.value / 2 + 4 * mm.stderr / 2


def test_records_are_reused_by_an_identical_run(tmp_path):
    lin = nn.Linear(16, 4)
    a = check_defense_record(lin, dataset="synthetic-mixture", noise=0.3, attacks=(), head=False, n_mc=2000,
                             out=tmp_path)
    b = check_defense_record(lin, dataset="synthetic-mixture", noise=0.3, attacks=(), head=False, n_mc=2000,
                             out=tmp_path)
    assert a.key == b.key and a.seconds == b.seconds  # the stored record, not a rerun
    c = check_defense_record(lin, dataset="synthetic-mixture", noise=0.4, attacks=(), head=False, n_mc=2000,
                             out=tmp_path)
    assert c.key != a.key
    assert len(list((tmp_path / "records").glob("*.json"))) == 2
    with torch.no_grad():
        lin.weight.mul_(2)  # other weights: another encoder, another record
    d = check_defense_record(lin, dataset="synthetic-mixture", noise=0.3, attacks=(), head=False, n_mc=2000,
                             out=tmp_path)
    assert d.key != a.key


def test_your_own_data_split():
    from empirics.data import ArrayDataset, DataSplit
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (300,), generator=g)
    x = torch.rand(300, 8, generator=g) * 0.5 + 0.5 * y[:, None].float()
    split = DataSplit(ArrayDataset(x[:200], y[:200]), ArrayDataset(x[200:], y[200:]), 2, "my-data")
    rec = check_defense_record(lambda: nn.Linear(8, 4), dataset=split, noise=0.1, epochs=1,
                               attacks=("decoder:epochs=1",), n_mc=2000)
    res = rec.result
    assert res["dataset"] == "data-split" and rec.config["dataset_hash"] and res["n_test"] == 100
    from empirics.registry import DATASETS
    assert "my-data" not in DATASETS  # the library call leaves the registry alone
    assert all(b["guarantee"] == "none" for b in res["bounds"].values())  # the law of your data is unknown
