"""Guarantee labels, the equality case, bad input and --quick (issue 18)."""

import json
import math
import sys

import numpy as np
import pytest
import torch
from torch import nn

import theory
from empirics.cli import build_parser, main
from empirics.experiments import check_defense, check_defense_record
from empirics.kinds.check_defense import ALPHA, min_mc_draws


def _identity(d):
    lin = nn.Linear(d, d)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(d))
        lin.bias.zero_()
    return lin.requires_grad_(False)


def test_equality_case_standard_normal_identity_unit_noise():
    """x ~ N(0, I), identity, σ = 1: the MMSE per element is exactly ½ and Thm 1 + 2 is exact (K = 1:
    the entropy bounds are exact).  The deterministic floor is ≤ ½ and within 1e-5 of it (the float32
    rounding allowance), the same at every seed and every n_mc (nothing random enters it); the
    confidence floor is ≤ ½ and uses one Monte-Carlo quantity (H(x)) at the full level α."""
    d = 4
    g = theory.GaussianMixture([1.0], [np.zeros(d)], [np.eye(d)])
    runs = [check_defense(_identity(d), dataset=g, noise=1.0, attacks=(), head=False, n_train=200, n_test=300,
                          n_mc=n, seed=s).to_dict() for n, s in ((2000, 0), (3000, 1))]
    det = [r["bounds"]["thm1+thm2_kl.deterministic"]["value"] for r in runs]
    assert det[0] == det[1]
    assert 0.5 * (1 - 1e-5) <= det[0] <= 0.5
    for r in runs:
        for m in ("huber", "kl", "maxent"):
            assert r["bounds"][f"thm1+thm2_{m}.deterministic"]["value"] == det[0]  # one Gaussian: U's all exact
            assert r["bounds"][f"thm1+thm2_{m}.confidence"]["value"] <= 0.5
        aff, ce = r["affine"], r["conditional_entropy"]
        assert aff["mc_quantities"] == 1 and aff["alpha_each"] == ALPHA
        lim = ce["h_x_limit"]
        want = lim["mean"] - math.sqrt(2 * lim["second_moment"] * math.log(1 / ALPHA) / lim["n"])
        assert ce["h_x_confidence"] == pytest.approx(want, rel=1e-12)
        assert ce["h_x_deterministic"] == pytest.approx(0.5 * d * math.log(2 * math.pi * math.e), rel=1e-8)
        assert "(deterministic;" in r["verdict"] and "at confidence 0.999" in r["verdict"]
        f = r["floors"]
        assert f["deterministic"]["value"] == det[0] and f["confidence"]["confidence"] == 1 - ALPHA
        assert f["confidence"]["value"] == max(r["bounds"][f"thm1+thm2_{m}.confidence"]["value"]
                                               for m in ("huber", "kl", "maxent"))


def test_guarantee_labels_are_consistent():
    """Every bound and every comparison carries one of the three labels; a confidence floor states
    its level; comparisons carry their bound's label; the stored JSON says the same."""
    from empirics.experiments.check_bounds import GUARANTEES
    rec = check_defense_record(nn.Linear(16, 4), dataset="synthetic-mixture", noise=0.3, attacks=(), head=False,
                               n_mc=2000, alpha=0.01)
    res = rec.result
    for b in res["bounds"].values():
        assert b["guarantee"] in GUARANTEES and "rigorous" not in b
        assert (b["confidence"] == 0.99) is (b["guarantee"] == "confidence")
    for r in res["comparisons"]:
        want = res["bounds"][r["bound"]]["guarantee"] if r["bound"] != "cramer_rao_dfil" else "none"
        assert r["guarantee"] == want
    assert rec.config["alpha"] == 0.01 and "at confidence 0.99 " in res["verdict"]


ENCODER = '''
import pathlib
pathlib.Path(__file__).with_name("imported.marker").write_text("imported")
import torch
from torch import nn

def identity():
    lin = nn.Linear(16, 16)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(16))
        lin.bias.zero_()
    return lin.requires_grad_(False)
'''


@pytest.fixture()
def marked(tmp_path, monkeypatch):
    (tmp_path / "marked_enc.py").write_text(ENCODER)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("marked_enc", None)
    return tmp_path


@pytest.mark.parametrize("extra, needle", [
    (["--n-mc", "2"], f"at least {min_mc_draws(ALPHA)}"),
    (["--quick", "--n-mc", "100"], f"at least {min_mc_draws(ALPHA)}"),
    (["--alpha", "1e-6", "--n-mc", "5000"], f"at least {min_mc_draws(1e-6)}"),
    (["--alpha", "0"], "alpha"),
    (["--alpha", "1"], "alpha"),
    (["--alpha", "-0.1"], "alpha"),
    (["--alpha", "nan"], "alpha"),
])
def test_bad_monte_carlo_settings_exit_2_before_any_work(marked, capsys, extra, needle):
    """Below the minimum draws, or a level outside (0, 1): one line, exit 2 — before the encoder's
    module is even imported, and nothing is written."""
    out = marked / "out"
    rc = main(["check-defense", "marked_enc:identity", "--dataset", "synthetic-mixture", "--noise", "0.3",
               "--out", str(out), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0] and "Traceback" not in err[0]
    assert not (marked / "imported.marker").exists()
    assert not (out / "records").exists() and not (out / "results.json").exists()


@pytest.mark.parametrize("kw, needle", [({"n_mc": 2}, "n_mc"), ({"alpha": 1.5}, "alpha"), ({"alpha": 0.0}, "alpha"),
                                        ({"n_mc": 5000, "alpha": 1e-6}, "13576")])
def test_bad_monte_carlo_settings_in_the_library(kw, needle):
    with pytest.raises(ValueError, match=needle):
        check_defense(_identity(16), dataset="synthetic-mixture", noise=0.3, attacks=(), head=False, **kw)


def _settings(argv):
    from empirics.sections.check_defense_section import settings
    return settings(build_parser().parse_args(["check-defense", "m:f", *argv]))


def test_explicit_options_win_over_quick():
    from empirics.kinds.check_defense import N_MC
    from empirics.sections.check_defense_section import QUICK
    assert _settings(["--quick", "--n-mc", "3000", "--epochs", "2"]) == {
        **QUICK, "n_mc": 3000, "epochs": 2, "alpha": ALPHA}
    assert _settings(["--quick", "--attack-epochs", "7"])["attack_epochs"] == 7
    assert _settings(["--quick"]) == {**QUICK, "alpha": ALPHA}
    assert _settings([]) == {"epochs": 15, "attack_epochs": 20, "n_mc": N_MC, "alpha": ALPHA}
    assert _settings(["--epochs", "4", "--alpha", "0.01"])["epochs"] == 4


def test_defenses_explicit_options_win_over_quick():
    from types import SimpleNamespace

    from empirics.sections.defenses_section import _size
    assert _size(SimpleNamespace(quick=True, epochs=9), "epochs", 4, 15) == 9
    assert _size(SimpleNamespace(quick=True, epochs=None), "epochs", 4, 15) == 4
    assert _size(SimpleNamespace(quick=False, epochs=None), "epochs", 4, 15) == 15


class _FirstCoordinateRelu(nn.Module):
    """ReLU(x₀): its Jacobian vanishes exactly where x₀ < 0 (a fraction of the inputs, not all)."""

    def forward(self, x):
        return torch.relu(x[:, :1]) + 0.0 * x[:, 1:2]


def test_partial_zero_jacobian_is_reported_as_a_fraction_not_as_piecewise_constant():
    """A ReLU encoder whose Jacobian vanishes on some held-out inputs: the warning says on what
    fraction (the measured one), and never calls the encoder piecewise constant.  The fitted floors
    are estimates whose s.e. is Thm 1's delta method: floor·2·s.e.(H(x))/d."""
    from empirics.experiments import load_dataset
    res = check_defense(_FirstCoordinateRelu(), dataset="synthetic-mixture", noise=0.3, attacks=(), head=False,
                        fisher_samples=64, n_mc=2000).to_dict()
    x0 = load_dataset("synthetic-mixture").test.x[:64, 0]
    frac = float((x0 <= 0).double().mean())
    assert 0.05 < frac < 0.95  # the instance: neither none nor all
    assert not any(w.startswith("piecewise-constant") for w in res["warnings"])
    assert any(f"zero on {frac:.1%}" in w for w in res["warnings"]), res["warnings"]
    h_se = res["conditional_entropy"]["h_x_stderr"]
    for m in ("huber", "kl", "maxent"):
        b = res["bounds"][f"thm1+thm2_{m}"]
        assert b["guarantee"] == "none"
        assert b["stderr"] == pytest.approx(2 * b["value"] / 16 * h_se, rel=1e-12)


def test_cli_quick_run_keeps_an_explicit_n_mc(marked):
    out = marked / "out"
    rc = main(["check-defense", "marked_enc:identity", "--dataset", "synthetic-mixture", "--noise", "0.3",
               "--out", str(out), "--quick", "--n-mc", "2500", "--no-head"])
    assert rc == 0
    rec = json.loads(next((out / "records").glob("*.json")).read_text())
    assert rec["config"]["n_mc"] == 2500 and rec["config"]["epochs"] == 3  # explicit wins; the rest is --quick
    res = json.loads((out / "results.json").read_text())
    assert {b["guarantee"] for b in res["bounds"].values()} == {"deterministic", "confidence", "none"}
    assert set(res["floors"]) == {"deterministic", "confidence"}
