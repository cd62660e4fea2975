"""Attacks: one interface, deployed features, optimality against the exact MMSE, bad input."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

import theory
from empirics.attacks import (DecoderAttack, GANAttack, OptimizationAttack, TruncationAttack, make_attack,
                              truncate_topk)
from empirics.checks import compare_all
from empirics.attacks.optimality import (linear_setting, nonlinear_setting, run_optimality,
                                         snis_posterior_mean)
from empirics.data import ArrayDataset, default_mixture, digits
from empirics.defenses.noise import GaussianNoise
from empirics.models import SplitModel, make_model
from empirics.training import train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def small_run():
    # d = 8 keeps this in the default budget; the d = 16 Must-show run is the slow test below
    return run_optimality(d=8, sigmas_linear=(0.5,), sigmas_nonlinear=(0.3,),
                          attacks=("decoder", "gan", "optimization"), n_aux=4000, n_test=1000, epochs=10,
                          pool=20000, n_entropy=1000, seed=1, device="cpu", quick=True)


def test_no_attack_beats_the_mmse(small_run):
    """No attack's test-set MSE is significantly below the exact Bayes estimator's on the same inputs,
    nor below the Thm 1 bound (one-sided tests, family-wise 0.1 % over all of them)."""
    assert {r.attack for r in small_run} == {"decoder", "gan", "optimization"}
    pairs = [dict(value=r.mse, bound=r.bayes_mse, paired_stderr=r.diff_stderr) for r in small_run]
    pairs += [dict(value=r.mse, bound=r.thm1_bound, value_stderr=r.mse_stderr, bound_stderr=r.thm1_bound_stderr or 0.0)
              for r in small_run if r.thm1_bound is not None]
    assert len(pairs) > len(small_run)  # the Thm 1 comparisons are there too
    for p, c in zip(pairs, compare_all(pairs, alpha=1e-3)):
        assert c.status != "violated", (p, c)


# Thresholds from the spread over seeds 1-12 of this exact setting (d = 8, σ = 0.5, 4000 aux, 10 epochs;
# benchmarks/optimality_threshold.py): decoder MSE / Bayes MSE on the same inputs: mean 1.0279,
# sd 0.0129, max 1.0572 -> mean + 4 sd = 1.080; optimization MSE / decoder MSE: mean 2.218, sd 0.190,
# min 1.931 -> mean - 4 sd = 1.46.  A correct implementation fails either at a rate ~3e-5 (normal model).
DECODER_OVER_BAYES_MAX = 1.080
OPT_OVER_DECODER_MIN = 1.46


def test_decoder_near_optimal_small(small_run):
    lin = [r for r in small_run if r.attack == "decoder" and r.setting.startswith("linear")][0]
    # 10 epochs on 4000 samples: near the Bayes estimator (the 1.05 claim at full budget is the slow test)
    assert lin.mse / lin.bayes_mse <= DECODER_OVER_BAYES_MAX, lin
    opt = [r for r in small_run if r.attack == "optimization" and r.setting.startswith("linear")][0]
    assert opt.mse / lin.mse >= OPT_OVER_DECODER_MIN, (opt, lin)  # an unregularised MLE ignores the prior


@pytest.mark.slow
def test_decoder_within_5_percent_of_mmse_d16():
    recs = run_optimality(d=16, sigmas_linear=(0.2, 0.5, 1.0), sigmas_nonlinear=(), attacks=("decoder",),
                          n_aux=40000, n_test=2000, epochs=20, seed=0, device="cpu")  # CLI defaults
    for r in recs:
        assert r.ratio <= 1.05, r
        assert r.mse >= r.bayes_mse - 4 * r.diff_stderr


def test_snis_matches_exact_posterior_mean_on_linear_channel():
    gmm = default_mixture(8, 3, separation=1.0, seed=2)
    model, A = linear_setting(gmm, 0.5, k=3, seed=2)
    rng = np.random.default_rng(0)
    x = torch.tensor(gmm.sample(400, rng), dtype=torch.float32)
    with torch.no_grad():
        z = model.client_features(x, generator=torch.Generator().manual_seed(0))
        pool = torch.tensor(gmm.sample(40000, np.random.default_rng(1)), dtype=torch.float32)
        xh, ess = snis_posterior_mean(z, pool, model.encode(pool), 0.5)
    post = theory.mixture_posterior(gmm, A, 0.25 * np.eye(3))
    exact = post.mean(z.double().numpy())
    err = ((xh.numpy() - exact) ** 2).sum(1)
    # SNIS variance ≈ Tr Cov(x|z)/ESS per point: its mean error must be of that order (factor 3 slack
    # for the O(1/ESS) bias and heavy-tailed weights)
    expect = post.trace_cov(z.double().numpy()) / ess.numpy()
    assert err.mean() < 3 * expect.mean()
    assert float(ess.median()) > 100  # the proposal is adequate for most z


def test_attacks_see_deployed_noise():
    model = make_model("synthetic", num_classes=2, input_shape=(5,), defenses=[GaussianNoise(0.3)])
    x = torch.rand(16, 5)
    att = DecoderAttack()
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    o1 = att.observe(model, x, generator=g1)
    with torch.no_grad():
        o2 = model.client_features(x, training=False, generator=g2)
    assert torch.equal(o1, o2)
    assert not torch.equal(o1, model.encode(x).detach())  # noise is on at deployment
    clean = make_model("synthetic", num_classes=2, input_shape=(5,))
    assert torch.equal(att.observe(clean, x), clean.encode(x).detach())


def test_optimization_attack_inverts_noiseless_linear_encoder():
    torch.manual_seed(0)
    d = 6
    enc = torch.nn.Linear(d, d, bias=False)
    with torch.no_grad():
        enc.weight.copy_(torch.eye(d) + 0.1 * torch.randn(d, d))
    model = SplitModel(enc, torch.nn.Linear(d, 2), input_shape=(d,))
    x = torch.randn(10, d)
    att = OptimizationAttack(steps=1500, lr=0.02).fit(model, ArrayDataset(torch.randn(50, d), torch.zeros(50)),
                                                      device="cpu")
    xh = att.reconstruct(model.encode(x).detach())
    # convex least squares with a well-conditioned A: Adam converges to x up to its step-size jitter
    assert float((xh - x).abs().max()) < 2e-2


@given(st.integers(2, 12), st.data())
def test_truncate_topk_keeps_the_m_largest(k, data):
    m = data.draw(st.integers(1, k))
    p = torch.softmax(torch.tensor(data.draw(st.lists(st.floats(-5, 5), min_size=k, max_size=k))), 0)[None]
    t = truncate_topk(p, m)
    kept = t[0] > 0
    assert int(kept.sum()) <= m  # ≤: softmax of floats is never 0, but ties leave exactly m kept
    assert int((t[0] == p[0]).sum()) >= m
    assert float(t[0][~kept].sum()) == 0.0
    if int(kept.sum()) == m and m < k:
        assert float(p[0][kept].min()) >= float(p[0][~kept].max())


def test_truncation_trained_beats_untruncated_at_m1():
    ds = digits(seed=0)
    model = make_model("digits", num_classes=10, seed=0)
    train(model, ds.train, epochs=8, lr=3e-3, device="cpu", progress=False)
    res = {}
    for label, tm in (("trunc", 1), ("full", None)):
        att = TruncationAttack(1, train_m=tm, epochs=10, hidden=128, depth=2)
        att.fit(model, ds.train, device="cpu", progress=False)
        res[label] = att.evaluate(model, ds.test)
    # Yang et al. Fig. 7: the aligned (truncation-trained) inversion model wins at small m; the
    # measured gap is > 20 s.e., so requiring it to be positive is a real test
    assert res["trunc"]["mse"] + 4 * res["trunc"]["mse_stderr"] < res["full"]["mse"]


@pytest.mark.slow
def test_digits_decoder_psnr_and_truncation_trend(tmp_path):
    from empirics.cli import main

    rc = main(["attack", "--dataset", "digits", "--out", str(tmp_path), "--device", "cpu"])
    res = json.loads((tmp_path / "results.json").read_text())
    assert rc == 0, res["sections"]["attack"]["checks"]
    assert res["dataset_attacks"][0]["psnr"] >= 25
    assert (tmp_path / "reconstructions_digits.png").exists()


def test_bad_input():
    model = make_model("digits", num_classes=10)
    att = DecoderAttack(epochs=1)
    with pytest.raises(ValueError, match="call fit"):
        att.reconstruct(torch.zeros(2, 8, 8, 8))
    with pytest.raises(ValueError, match="expected inputs of shape"):
        att.fit(model, ArrayDataset(torch.rand(4, 1, 6, 6), torch.zeros(4)), device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        att.fit(model, ArrayDataset(2 * torch.rand(4, 1, 8, 8), torch.zeros(4)), device="cpu", progress=False)
    att.fit(model, ArrayDataset(torch.rand(8, 1, 8, 8), torch.zeros(8)), device="cpu", progress=False)
    with pytest.raises(ValueError, match="as seen at fit time"):
        att.reconstruct(torch.zeros(2, 4, 8, 8))
    with pytest.raises(ValueError, match="NaN"):
        att.reconstruct(torch.full((2, 8, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="SplitModel"):
        att.fit(torch.nn.Linear(2, 2), ArrayDataset(torch.rand(4, 2), torch.zeros(4)))
    with pytest.raises(ValueError, match="attack"):
        make_attack("nope")
    with pytest.raises(ValueError, match="m: expected"):
        TruncationAttack(0)
    with pytest.raises(ValueError, match="m: expected 1 <= m"):
        truncate_topk(torch.rand(2, 3), 4)
    with pytest.raises(ValueError, match="adv_weight"):
        GANAttack(adv_weight=-1)


def test_optimality_benchmark_resumes_finished_records(monkeypatch):
    """An interrupted optimality run resumes: finished (attack, setting) pairs are not re-run."""
    from empirics.attacks import optimality as O

    kw = dict(d=4, sigmas_linear=(0.5,), sigmas_nonlinear=(), attacks=("decoder", "optimization"),
              n_aux=200, n_test=50, epochs=1, pool=500, n_entropy=200, quick=True)
    first = O.run_optimality(**kw)
    fits = []
    real = O._attacks

    def counting(*a, **k):
        atts = real(*a, **k)
        for name, att in atts.items():
            orig = att.fit
            att.fit = lambda *aa, _n=name, _o=orig, **kk: (fits.append(_n), _o(*aa, **kk))[1]
        return atts
    monkeypatch.setattr(O, "_attacks", counting)
    half = [first[0].to_dict()]  # as if interrupted after the first record
    again = O.run_optimality(**kw, resume=half)
    assert fits == ["optimization"]
    assert again[0] == first[0] and again[1].attack == "optimization"
    assert O.run_optimality(**kw, resume=[r.to_dict() for r in first]) == first and fits == ["optimization"]
