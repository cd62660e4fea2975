"""Soundness fuzz of check-defense's guaranteed floors (issue 18), the way a verifier is tested.

Hypothesis draws an affine encoder — Linear or Conv1d, weights at scale 10^U(−6, 6), rank 1 … d,
duplicated rows or channels, biases up to 1e8, float32 as deployed — a Gaussian-mixture prior,
σ ∈ [1e-5, 3] and n_mc from the minimum up, and runs :func:`check_defense` on it.  Every finite
floor with a guarantee is compared with

* the exact MMSE of the float64 channel, computed here by an implementation written separately
  from ``theory``: per component the posterior by Householder QR of the stacked least-squares
  problem [A/σ; L⁻¹] (no normal equations, so no precision matrix is formed), the weights from the
  least-squares residual (the Mahalanobis form of the marginal) and the determinant lemma, then
  the Rao–Blackwellised Monte-Carlo average of Tr Cov(x|z) over ≥ 10⁵ draws, with its s.e.  Every
  floor of the deployed channel is ≤ the float64 channel's floor (a departure price ≥ 0, a rounding
  term that only lowers it), which is ≤ that MMSE;
* the exact Bayes attack's MSE on the deployed observations (the held-out inputs), which no
  floor of the deployed channel may exceed either.

"Significantly above" is a one-sided z-test at z = 5 (per comparison 3e-7).  A deterministic floor
may never be; a confidence floor may be at most at its stated rate α: the count of examples with
any confidence floor above is tested against binomial(n, α) at level 1e-3.  The counts are
printed (run with ``-s``); the large run is ``slow``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from scipy.linalg import solve_triangular
from scipy.special import logsumexp
from scipy.stats import binom
from torch import nn

import theory
from empirics.experiments import check_defense
from empirics.kinds.check_defense import min_mc_draws
from theory.strategies import gaussian_mixtures

Z = 5.0
ALPHA = 1e-3
N_TRUTH = 100_000


def independent_mmse(prior, A, sigma, n, rng):
    """E Tr Cov(x|z)/d of z = Ax + N(0, σ²I) by QR least squares (module docstring), ± s.e."""
    k, d = A.shape
    x, lab = prior.sample(n, rng, return_labels=True)
    z = x @ A.T + sigma * rng.standard_normal((n, k))
    logs, means, trs = [], [], []
    for w, mu, S in zip(prior.weights, prior.means, prior.covs):
        L = np.linalg.cholesky(S)
        Li = solve_triangular(L, np.eye(d), lower=True)
        Q, R = np.linalg.qr(np.vstack([A / sigma, Li]), mode="complete")   # large rows first
        R1 = R[:d]
        R1i = solve_triangular(R1, np.eye(d), lower=False)
        trs.append(float(np.sum(R1i ** 2)))                               # Tr (R1ᵀR1)⁻¹
        c = np.hstack([z / sigma, np.broadcast_to(Li @ mu, (n, d))]) @ Q  # Qᵀc per row
        means.append(c[:, :d] @ R1i.T)                                     # R1⁻¹c₁: the component posterior mean
        quad = np.sum(c[:, d:] ** 2, axis=1)                               # the least-squares residual
        logdet = 2 * k * math.log(sigma) + 2 * np.sum(np.log(np.abs(np.diag(R1)))) + np.linalg.slogdet(S)[1]
        logs.append(math.log(w) - 0.5 * (k * math.log(2 * math.pi) + logdet + quad))
    lw = np.stack(logs, axis=1)
    wz = np.exp(lw - logsumexp(lw, axis=1, keepdims=True))
    M = np.stack(means, axis=1)                                            # (n, K, d)
    mbar = np.einsum("nk,nkd->nd", wz, M)
    v = wz @ np.array(trs) + np.einsum("nk,nkd->n", wz, (M - mbar[:, None, :]) ** 2)
    return float(v.mean() / d), float(v.std(ddof=1) / math.sqrt(n) / d)


def test_the_independent_mmse_agrees_with_theory():
    """The reference itself, against theory.mixture_mmse_mc on a moderate case (5 s.e. combined)."""
    g = theory.random_mixture(np.random.default_rng(0), 3)
    A = np.array([[1.0, 0.5, 0.0], [1.0, 0.5, 0.0], [0.0, 2.0, -1.0]])
    m, se = independent_mmse(g, A, 0.7, 50_000, np.random.default_rng(1))
    t = theory.mixture_mmse_mc(g, A, 0.49 * np.eye(3), 50_000, np.random.default_rng(2))
    assert abs(m - t.value / 3) <= 5 * math.hypot(se, t.stderr / 3)


@st.composite
def affine_cases(draw):
    prior = draw(gaussian_mixtures(dim=st.integers(2, 5), n_components=st.integers(1, 3)))
    d = prior.dim
    kind = draw(st.sampled_from(["linear", "conv"]))
    scale = 10.0 ** draw(st.floats(-6, 6))
    bias_scale = 10.0 ** draw(st.floats(-2, 8)) if draw(st.booleans()) else 0.0
    seed = draw(st.integers(0, 2 ** 31 - 1))
    rng = np.random.default_rng(seed)
    if kind == "linear":
        k = draw(st.integers(1, 6))
        r = draw(st.integers(1, min(k, d)))
        W = rng.normal(size=(k, r)) @ rng.normal(size=(r, d))
        if k > 1 and draw(st.booleans()):                                  # duplicated rows
            W[1:][rng.random(k - 1) < 0.5] = W[0]
        enc = nn.Linear(d, k)
        with torch.no_grad():
            enc.weight.copy_(torch.as_tensor(scale * W))
            enc.bias.copy_(torch.as_tensor(bias_scale * rng.normal(size=k)))
    else:
        ch = draw(st.integers(1, 3))
        ks = draw(st.sampled_from([2, 3]))
        conv = nn.Conv1d(1, ch, ks, padding=1)
        w = rng.normal(size=(ch, 1, ks))
        if ch > 1 and draw(st.booleans()):                                 # duplicated channels
            w[1:] = w[0]
        with torch.no_grad():
            conv.weight.copy_(torch.as_tensor(scale * w))
            conv.bias.copy_(torch.as_tensor(bias_scale * rng.normal(size=ch)))
        enc = nn.Sequential(nn.Unflatten(1, (1, d)), conv, nn.Flatten())
    enc = enc.eval().requires_grad_(False)
    sigma = 10.0 ** draw(st.floats(-5, math.log10(3.0)))
    n_mc = draw(st.integers(min_mc_draws(ALPHA), 2 * min_mc_draws(ALPHA)))
    return prior, kind, enc, sigma, n_mc, seed


def _float64_matrix(enc, d):
    """A of the float32 parameters in float64, with the biases zeroed (a copy): exact products."""
    import copy
    e = copy.deepcopy(enc).double()
    with torch.no_grad():
        for m in e.modules():
            if getattr(m, "bias", None) is not None:
                m.bias.zero_()
        return e(torch.eye(d, dtype=torch.float64)).numpy().T


def _fuzz(n_examples: int, seed: int) -> dict:
    counts = {"examples": 0, "linear": 0, "conv": 0, "deterministic_floors": 0, "confidence_floors": 0,
              "deterministic_above_mmse": 0, "confidence_examples_above_mmse": 0,
              "deterministic_above_bayes": 0, "confidence_examples_above_bayes": 0, "worst_ratio_to_mmse": 0.0}

    @hypothesis_seed(seed)
    @settings(max_examples=n_examples, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              phases=["generate"])
    @given(case=affine_cases())
    def one(case):
        prior, kind, enc, sigma, n_mc, s = case
        res = check_defense(enc, dataset=prior, noise=sigma, attacks=(), head=False, n_train=200, n_test=500,
                            n_mc=n_mc, seed=s % 1000, alpha=ALPHA).to_dict()
        A = _float64_matrix(enc, prior.dim)
        mmse, se = independent_mmse(prior, A, sigma, N_TRUTH, np.random.default_rng(s))
        bayes = next(a for a in res["attacks"] if a["name"] == "bayes")
        counts["examples"] += 1
        counts[kind] += 1
        conf_above_mmse = conf_above_bayes = False
        for name, b in res["bounds"].items():
            if b["guarantee"] == "none" or not b["finite"]:
                continue
            v = b["value"]
            above_mmse = v > mmse + Z * se
            above_bayes = v > bayes["mse"] + Z * bayes["mse_stderr"]
            counts["worst_ratio_to_mmse"] = max(counts["worst_ratio_to_mmse"], v / mmse)
            if b["guarantee"] == "deterministic":
                counts["deterministic_floors"] += 1
                counts["deterministic_above_mmse"] += above_mmse
                counts["deterministic_above_bayes"] += above_bayes
                assert not above_mmse and not above_bayes, (name, v, mmse, se, bayes, kind, sigma)
            else:
                counts["confidence_floors"] += 1
                conf_above_mmse |= above_mmse
                conf_above_bayes |= above_bayes
        counts["confidence_examples_above_mmse"] += conf_above_mmse
        counts["confidence_examples_above_bayes"] += conf_above_bayes

    one()
    return counts


def _judge(c: dict) -> None:
    print("\nfuzz counts:", c)
    assert c["examples"] > 0 and c["confidence_floors"] >= 3 * c["examples"]
    assert c["deterministic_above_mmse"] == 0 and c["deterministic_above_bayes"] == 0
    for key in ("confidence_examples_above_mmse", "confidence_examples_above_bayes"):
        # not significantly more often than the stated rate α (one-sided binomial test at 1e-3)
        assert binom.sf(c[key] - 1, c["examples"], ALPHA) >= 1e-3 or c[key] == 0, (key, c)


def test_guaranteed_floors_fuzz_small():
    """Default suite: a few examples (each a full check_defense and a 10⁵-draw truth)."""
    _judge(_fuzz(6, 0))


@pytest.mark.slow
def test_guaranteed_floors_fuzz_large():
    _judge(_fuzz(300, 1))
