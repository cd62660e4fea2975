"""Bad input: ValueError naming the argument, what was expected and what came (issue 2, "Bad input")."""

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import theory

I2 = np.eye(2)
NONSYM = np.array([[1.0, 0.5], [0.0, 1.0]])
NOT_PD = np.array([[1.0, 2.0], [2.0, 1.0]])            # eigenvalues 3, -1
SINGULAR = np.array([[1.0, 1.0], [1.0, 1.0]])
NAN2 = np.array([[np.nan, 0.0], [0.0, 1.0]])
INF2 = np.array([[np.inf, 0.0], [0.0, 1.0]])


def _gmm():
    return theory.GaussianMixture([0.5, 0.5], [[0.0, 0.0], [1.0, 1.0]], [I2, I2])


@pytest.mark.parametrize("bad, words", [
    (NONSYM, ["cov", "symmetric", "got"]),
    (NOT_PD, ["cov", "positive definite", "-1"]),
    (SINGULAR, ["cov", "positive definite"]),
    (NAN2, ["cov", "finite", "nan"]),
    (INF2, ["cov", "finite", "inf"]),
    (np.ones((2, 3)), ["cov", "square", "(2, 3)"]),
    (np.ones(3), ["cov", "2 dimension", "(3,)"]),
    (np.zeros((0, 0)), ["cov", "d >= 1", "(0, 0)"]),
    ("abc", ["cov", "real numbers"]),
])
def test_gaussian_entropy_bad_cov(bad, words):
    with pytest.raises(ValueError) as exc:
        theory.gaussian_entropy(bad)
    missing = [w for w in words if w not in str(exc.value)]
    assert not missing, str(exc.value)


@pytest.mark.parametrize("fn", [theory.linear_gaussian_mmse, theory.linear_gaussian_posterior_cov,
                                theory.linear_gaussian_conditional_entropy,
                                theory.linear_gaussian_mutual_information])
@pytest.mark.parametrize("args, words", [
    ((np.eye(2), NOT_PD, I2), ["cov_x", "positive definite"]),
    ((np.eye(2), NONSYM, I2), ["cov_x", "symmetric"]),
    ((np.eye(2), I2, NOT_PD), ["cov_noise", "positive definite"]),
    ((np.eye(2), I2, np.eye(3)), ["cov_noise", "(2, 2)", "(3, 3)"]),
    ((np.eye(3, 2), I2, I2), ["cov_noise", "(3, 3)", "(2, 2)"]),
    ((np.eye(2, 3), I2, I2), ["cov_x", "(3, 3)", "(2, 2)"]),
    ((np.array([[np.nan, 0], [0, 1.0]]), I2, I2), ["A", "finite", "nan"]),
    ((np.ones(2), I2, I2), ["A", "2 dimension"]),
])
def test_linear_gaussian_bad_input(fn, args, words):
    with pytest.raises(ValueError) as exc:
        fn(*args)
    missing = [w for w in words if w not in str(exc.value)]
    assert not missing, str(exc.value)


@pytest.mark.parametrize("kwargs, words", [
    (dict(weights=[0.5, 0.6], means=[[0.0], [1.0]], covs=[[[1.0]], [[1.0]]]), ["weights", "simplex", "1.1"]),
    (dict(weights=[1.5, -0.5], means=[[0.0], [1.0]], covs=[[[1.0]], [[1.0]]]), ["weights", ">= 0", "-0.5"]),
    (dict(weights=[1.0], means=[[0.0], [1.0]], covs=[[[1.0]], [[1.0]]]), ["weights", "K=2", "1 weights"]),
    (dict(weights=[0.5, 0.5], means=[[0.0], [1.0]], covs=[[[1.0]]]), ["covs", "(2, 1, 1)", "(1, 1, 1)"]),
    (dict(weights=[0.5, 0.5], means=[[0.0], [1.0]], covs=[[[1.0]], [[-1.0]]]), ["covs", "positive definite"]),
    (dict(weights=[1.0], means=[[0.0, 0.0]], covs=[NONSYM]), ["covs", "symmetric"]),
    (dict(weights=[1.0], means=[[np.inf, 0.0]], covs=[I2]), ["means", "finite", "inf"]),
    (dict(weights=[np.nan], means=[[0.0]], covs=[[[1.0]]]), ["weights", "finite", "nan"]),
    (dict(weights=[1.0], means=np.zeros((1, 0)), covs=np.zeros((1, 0, 0))), ["means", "d >= 1"]),
    (dict(weights=[1.0], means=[0.0, 1.0], covs=[I2]), ["means", "2 dimension"]),
])
def test_gaussian_mixture_bad_input(kwargs, words):
    with pytest.raises(ValueError) as exc:
        theory.GaussianMixture(**kwargs)
    missing = [w for w in words if w not in str(exc.value)]
    assert not missing, str(exc.value)


def test_mixture_methods_bad_input():
    g = _gmm()
    with pytest.raises(ValueError, match=r"x must have shape \(N, 2\).*\(3,\)"):
        g.logpdf(np.zeros(3))
    with pytest.raises(ValueError, match="x must be finite; got an array containing nan"):
        g.logpdf([np.nan, 0.0])
    with pytest.raises(ValueError, match="n must be an integer >= 1; got 0"):
        g.sample(0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="rng must be a numpy.random.Generator"):
        g.sample(3, "seed")
    with pytest.raises(ValueError, match="gmm must be a theory.GaussianMixture; got ndarray"):
        theory.mixture_entropy_mc(np.eye(2), 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n must be an integer >= 2; got 1"):
        theory.mixture_entropy_mc(g, 1, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"alphas must lie in \[0, 1\]"):
        theory.mixture_entropy_bounds(g, alphas=[0.5, 1.5])
    with pytest.raises(ValueError, match=r"A must have shape \(k, 2\); got \(1, 3\)"):
        theory.mixture_posterior(g, np.ones((1, 3)), [[1.0]])
    with pytest.raises(ValueError, match="cov_noise must be positive definite"):
        theory.mixture_mmse_mc(g, np.ones((1, 2)), [[0.0]], 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="method must be 'posterior' or 'error'"):
        theory.mixture_mmse_mc(g, np.ones((1, 2)), [[1.0]], 10, np.random.default_rng(0), method="x")
    post = theory.mixture_posterior(g, np.ones((1, 2)), [[1.0]])
    with pytest.raises(ValueError, match=r"z must have shape \(N, 1\)"):
        post.mean(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="same number of rows"):
        post.logpdf(np.zeros((3, 2)), np.zeros((2, 1)))


@pytest.mark.parametrize("call, words", [
    (lambda: theory.mse_lower_bound(1.0, 0), ["dim", "positive integer", "0"]),
    (lambda: theory.mse_lower_bound(1.0, 2.5), ["dim", "positive integer", "2.5"]),
    (lambda: theory.mse_lower_bound(np.nan, 2), ["cond_entropy", "finite", "nan"]),
    (lambda: theory.mse_lower_bound(np.inf, 2), ["cond_entropy", "finite", "inf"]),
    (lambda: theory.implied_entropy(0.0, 2), ["mse", "> 0", "0.0"]),
    (lambda: theory.implied_entropy(-1.0, 2), ["mse", "> 0", "-1.0"]),
    (lambda: theory.mse_lower_bound(1.0, 2, base=1), ["base", "!= 1"]),
    (lambda: theory.gmm_mutual_information_bound([0.3, 0.3], [I2, I2], I2), ["weights", "simplex", "0.6"]),
    (lambda: theory.gmm_mutual_information_bound([0.5, 0.5, 0.0], [I2, I2], I2), ["weights", "length 2", "3"]),
    (lambda: theory.gmm_mutual_information_bound([1.0], [NOT_PD], I2), ["covs", "positive semidefinite", "-1"]),
    (lambda: theory.gmm_mutual_information_bound([1.0], [I2], SINGULAR), ["noise_cov", "positive definite"]),
    (lambda: theory.gmm_mutual_information_bound([1.0], [I2], np.eye(3)), ["noise_cov", "(2, 2)", "(3, 3)"]),
    (lambda: theory.conditional_entropy_lower_bound(0.0, [1.0], [[0.0, 0.0]], [I2], I2, method="nope"),
     ["method", "huber", "nope"]),
    (lambda: theory.conditional_entropy_lower_bound(np.nan, [1.0], [[0.0, 0.0]], [I2], I2), ["h_x", "finite"]),
    (lambda: theory.conditional_entropy_lower_bound(0.0, [1.0], [[0.0, 0.0, 0.0]], [I2], I2, method="kl"),
     ["means", "(1, 2)", "(1, 3)"]),
    (lambda: theory.conditional_entropy_lower_bound(0.0, [1.0], None, [I2], I2, method="kl"), ["means must be given"]),
    (lambda: theory.certifiable_mse([1.0], [[0.0, 0.0]], [I2], I2, 0), ["dim", "positive integer"]),
    (lambda: theory.cramer_rao_mse(NOT_PD), ["fisher_info", "positive semidefinite"]),
    (lambda: theory.van_trees_mse(I2, -1.0), ["prior_fisher", ">= 0"]),
    (lambda: theory.van_trees_mse(I2, np.eye(3)), ["prior_fisher", "(2, 2)", "(3, 3)"]),
    (lambda: theory.van_trees_mse(I2, 1.0, matrix=True), ["prior_fisher", "matrix"]),
    (lambda: theory.fisher_information_linear(np.eye(2), NONSYM), ["cov_noise", "symmetric"]),
    (lambda: theory.mutual_information_upper_bounds([1.0], [[0.0, 0.0]], [I2], I2, structure="full", base=1),
     ["base", "!= 1"]),
    (lambda: theory.affine_pushforward(np.eye(2), np.eye(2)), ["gmm", "GaussianMixture", "ndarray"]),
    (lambda: theory.mixture_mmse_importance_sampling(_gmm(), np.eye(2), I2, 1, np.random.default_rng(0)),
     ["n must be an integer >= 2", "1"]),
    (lambda: theory.mixture_mmse_importance_sampling(_gmm(), np.eye(2), NOT_PD, 10, np.random.default_rng(0)),
     ["cov_noise", "positive definite"]),
    (lambda: theory.mixture_mmse_importance_sampling(_gmm(), np.eye(2), I2, 10, np.random.default_rng(0),
                                                     n_proposal=0), ["n_proposal", ">= 1", "0"]),
    (lambda: theory.random_spd(np.random.default_rng(0), 3, lo=2.0, hi=1.0), ["hi must be >= lo"]),
    (lambda: theory.random_spd(np.random.default_rng(0), 0), ["d must be a positive integer"]),
    (lambda: theory.random_mixture(np.random.default_rng(0), 2, K=0), ["K must be an integer >= 1", "0"]),
    (lambda: theory.random_mixture("seed", 2), ["rng must be a numpy.random.Generator"]),
])
def test_bounds_bad_input(call, words):
    with pytest.raises(ValueError) as exc:
        call()
    missing = [w for w in words if w not in str(exc.value)]
    assert not missing, str(exc.value)


def test_no_silent_nan_on_extreme_but_valid_input():
    # very small variances: Cholesky/slogdet in float64 stay finite
    c = 1e-150 * np.eye(3)
    h = theory.gaussian_entropy(c)
    assert math.isfinite(h)
    # exp overflow in Thm 1 is an honest inf, not nan or an OverflowError
    assert theory.mse_lower_bound(1e6, 1) == math.inf
    assert theory.mse_lower_bound(-1e6, 1) == 0.0


def test_estimate_is_frozen_dataclass():
    e = theory.Estimate(1.0, 0.5, 10)
    with pytest.raises(Exception):
        e.value = 2.0
    assert e.to_dict() == {"value": 1.0, "stderr": 0.5, "n": 10}


def test_maxent_alone_checks_the_covariance_it_uses():
    """The max-entropy bound needs no mixture assumption: alone it checks Cov ẑ (symmetric, PSD), not
    each component; the mixture bounds check each component (docs/ground-truths.md)."""
    odd = np.array([[1.0, 0.0], [0.0, -0.2]])                    # not a covariance
    w, mu = [0.5, 0.5], [[0.0, 0.0], [0.0, 2.0]]                # spread 1 along the second axis
    u = theory.conditional_entropy_lower_bound(0.0, w, mu, [I2, odd], I2, method="maxent")
    cov_zhat = 0.5 * (I2 + odd) + np.diag([0.0, 1.0])
    assert abs(-u - 0.5 * np.log(np.linalg.det(cov_zhat + I2))) < 1e-12
    with pytest.raises(ValueError, match=r"covs\[1\] must be positive semidefinite"):
        theory.conditional_entropy_lower_bound(0.0, w, mu, [I2, odd], I2, method="huber")
    with pytest.raises(ValueError, match="the covariance of ẑ.*must be positive semidefinite"):
        theory.conditional_entropy_lower_bound(0.0, w, [[0.0, 0.0]] * 2, [I2, -3 * I2], I2, method="maxent")
    with pytest.raises(ValueError, match=r"Σ_i w_i covs\[i\] must be symmetric"):
        theory.conditional_entropy_lower_bound(0.0, w, mu, [NONSYM, I2], I2, method="maxent")
    with pytest.raises(ValueError, match=r"covs\[0\] must be symmetric"):
        theory.conditional_entropy_lower_bound(0.0, w, mu, [NONSYM, I2], I2, method="kl")


@given(st.integers(2, 40), st.floats(1e-300, 1e300), st.integers(0, 2**32 - 1))
def test_diagonal_cholesky_shortcut_is_the_factorisation(d, scale, seed):
    """A diagonal matrix skips the O(d³) factorisation: its factor is the elementwise square root,
    bit for bit what LAPACK returns; a non-positive diagonal entry is refused like any non-PD matrix."""
    from theory._validate import cholesky
    dg = scale * np.random.default_rng(seed).uniform(0.01, 1.0, d)
    m = np.diag(dg)
    assert np.array_equal(cholesky(m, "m"), np.linalg.cholesky(m))
    m[d // 2, d // 2] = -dg[d // 2]
    with pytest.raises(ValueError, match=r"m must be positive definite; got smallest eigenvalue -"):
        cholesky(m, "m")
    m[d // 2, d // 2] = 0.0
    with pytest.raises(ValueError, match="m must be positive definite"):
        cholesky(m, "m")
