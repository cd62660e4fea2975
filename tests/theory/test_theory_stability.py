"""Posteriors, MMSE and the affine I(z; ẑ) bounds at every scale (issue 18), against mpmath.

The references below are written separately from ``theory``: the textbook formulas (posterior
precision Σ⁻¹ + AᵀΣn⁻¹A, marginal covariance AΣAᵀ + Σn, their inverses and determinants) evaluated
in mpmath at 50 significant digits from the very float64 inputs, so the naive additions that lose
everything in float64 are exact there.  Scales ‖A‖/σ from 1e-6 to 1e10; rank-deficient A,
duplicated rows and more outputs than inputs.
"""

import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import theory
from theory.strategies import gaussian_mixtures

seeds = st.integers(0, 2 ** 31 - 1)

mp.mp.dps = 50
SCALES = [1e-6, 1e-3, 1.0, 1e3, 1e6, 1e10]


def _m(a):
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    return mp.matrix([[mp.mpf(float(v)) for v in row] for row in a])


def _vec(a):
    return mp.matrix([mp.mpf(float(v)) for v in np.asarray(a, dtype=np.float64).ravel()])


def _tr(M):
    return sum(M[i, i] for i in range(M.rows))


def _shapes():
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=3), rng.normal(size=3)
    return {"full": rng.normal(size=(3, 3)), "rank1": np.outer(rng.normal(size=2), a),
            "duplicated": np.vstack([a, a, b]), "wide": rng.normal(size=(5, 3)),
            "wide_rank2": np.vstack([a, b, a + b, 2 * a, b])}


SHAPES = _shapes()
PRIOR = theory.GaussianMixture([0.5, 0.3, 0.2], [[0.0, 1.0, -1.0], [2.0, -1.0, 0.5], [-1.5, 0.0, 1.0]],
                               [np.diag([1.0, 0.5, 2.0]), [[1.0, 0.3, 0.0], [0.3, 0.8, 0.1], [0.0, 0.1, 0.6]],
                                0.3 * np.eye(3)])


def _mp_posterior(g, A, s2, z):
    """Reference: (E[x|z], Tr Cov(x|z), weights) of the mixture prior by the textbook formulas in mpmath."""
    Am, k = _m(A), A.shape[0]
    zz = _vec(z)
    logs, means, trs = [], [], []
    for w, mu, S in zip(g.weights, g.means, g.covs):
        Sm, mum = _m(S), _vec(mu)
        prec = Sm ** -1 + Am.T * Am / mp.mpf(s2)
        P = prec ** -1
        m = mum + P * Am.T * (zz - Am * mum) / mp.mpf(s2)
        C = Am * Sm * Am.T + mp.mpf(s2) * mp.eye(k)
        r = zz - Am * mum
        q = (r.T * C ** -1 * r)[0]
        logs.append(mp.log(mp.mpf(float(w))) - (k * mp.log(2 * mp.pi) + mp.log(mp.det(C)) + q) / 2)
        means.append(m)
        trs.append(_tr(P))
    top = max(logs)
    ws = [mp.exp(v - top) for v in logs]
    tot = sum(ws)
    ws = [v / tot for v in ws]
    mbar = sum((wi * mi for wi, mi in zip(ws, means)), mp.matrix(len(means[0]), 1))
    tc = sum(wi * (ti + sum((mi[j] - mbar[j]) ** 2 for j in range(mi.rows))) for wi, mi, ti in zip(ws, means, trs))
    return np.array([float(v) for v in mbar]), float(tc), np.array([float(v) for v in ws])


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_linear_gaussian_channel_against_mpmath(shape, scale):
    A = scale * SHAPES[shape]
    cx = PRIOR.covs[1]
    cn = np.eye(A.shape[0])
    Am, P = _m(A), (_m(cx) ** -1 + _m(A).T * _m(A)) ** -1
    mmse = float(_tr(P))
    h = float((3 * mp.log(2 * mp.pi * mp.e) + mp.log(mp.det(P))) / 2)
    mi = float(mp.log(mp.det(Am * _m(cx) * Am.T + mp.eye(A.shape[0]))) / 2)
    z = A @ np.array([0.3, -1.0, 2.0]) + 0.1
    m = P * Am.T * _vec(z)
    # float64 on the singular values of a 10¹⁰-scaled channel: relative errors ~1e-15·cond; 1e-9 leaves
    # room for the conditioning of these instances, and a naive sum loses everything (see the crash test)
    assert theory.linear_gaussian_mmse(A, cx, cn) == pytest.approx(mmse, rel=1e-9)
    assert theory.linear_gaussian_conditional_entropy(A, cx, cn) == pytest.approx(h, rel=1e-9, abs=1e-9)
    assert theory.linear_gaussian_mutual_information(A, cx, cn) == pytest.approx(mi, rel=1e-9, abs=1e-12)
    got = theory.linear_gaussian_posterior_mean(A, cx, cn, z)
    # float64 resolves the singular values of a channel of norm s only to ~eps·s (backward stable SVD):
    # rows that are dependent up to rounding (wide_rank2 at 1e10) leave a direction it cannot resolve
    tol = 1e-9 + 1e-15 * scale
    np.testing.assert_allclose(got, [float(v) for v in m], rtol=tol, atol=tol * (1 + float(mp.norm(m))))
    np.testing.assert_allclose(theory.linear_gaussian_posterior_cov(A, cx, cn),
                               np.array(P.tolist(), dtype=float), rtol=1e-7, atol=1e-9 * mmse)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_mixture_posterior_against_mpmath(shape, scale):
    """E[x|z], Tr Cov(x|z) and the component weights at observations drawn from the channel."""
    A = scale * SHAPES[shape]
    s2 = 1.0
    rng = np.random.default_rng(3)
    x = PRIOR.sample(4, rng)
    z = x @ A.T + rng.standard_normal((4, A.shape[0]))
    post = theory.mixture_posterior(PRIOR, A, s2 * np.eye(A.shape[0]))
    mean, tc, w = post.mean(z), post.trace_cov(z), post.weights(z)
    for i in range(len(z)):
        m_ref, tc_ref, w_ref = _mp_posterior(PRIOR, A, s2, z[i])
        # z of size ‖A‖·|x| carries float64 rounding eps·|z| (1e-6 at 1e10): the posterior at such z is
        # resolved to ~1e-6 relative in its null-space part; elsewhere to ~1e-12
        tol = 1e-9 + 1e-15 * scale
        np.testing.assert_allclose(w[i], w_ref, atol=tol)
        np.testing.assert_allclose(mean[i], m_ref, rtol=tol, atol=tol * (1 + np.abs(m_ref).max()))
        assert tc[i] == pytest.approx(tc_ref, rel=tol, abs=1e-300)


@pytest.mark.parametrize("a, sigma", [(2.5e3, 1e-4), (1e5, 1e-4)])
def test_the_reported_crashes_now_compute(a, sigma):
    """Weights ~2.5e3 (and a BatchNorm with running variance 1e-10: gain 1e5) at σ = 1e-4 crashed with
    "posterior precision[0] must be positive definite; got smallest eigenvalue −4.89".  Now the
    posterior is finite and its MMSE matches mpmath."""
    rng = np.random.default_rng(0)
    A = a * np.vstack([rng.normal(size=(2, 3))] * 2)          # duplicated rows: rank 2 of 4 outputs
    post = theory.mixture_posterior(PRIOR, A, sigma ** 2 * np.eye(4))
    z = PRIOR.sample(3, rng) @ A.T + sigma * rng.standard_normal((3, 4))
    for i in range(3):
        _, tc_ref, _ = _mp_posterior(PRIOR, A, sigma ** 2, z[i])
        assert post.trace_cov(z[i:i + 1])[0] == pytest.approx(tc_ref, rel=1e-6)


def _mp_affine_bounds(g, A, s2):
    """huber, kl and maxent upper bounds on I(z; ẑ) from mpmath covariances C_i = AΣ_iAᵀ + s2·I."""
    Am, k = _m(A), A.shape[0]
    C = [Am * _m(S) * Am.T + mp.mpf(s2) * mp.eye(k) for S in g.covs]
    nu = [Am * _vec(mu) for mu in g.means]
    w = [mp.mpf(float(v)) for v in g.weights]
    ld = [mp.log(mp.det(c)) for c in C]
    ldp = k * mp.log(mp.mpf(s2))
    huber = sum(wi * (-mp.log(wi) + (l - ldp) / 2) for wi, l in zip(w, ld))
    K = len(w)
    kl = [[(_tr(C[j] ** -1 * C[i]) - k + ld[j] - ld[i] + ((nu[i] - nu[j]).T * C[j] ** -1 * (nu[i] - nu[j]))[0]) / 2
           for j in range(K)] for i in range(K)]
    ku = sum(w[i] * (ld[i] - ldp) / 2 for i in range(K)) - sum(
        w[i] * mp.log(sum(w[j] * mp.exp(-kl[i][j]) for j in range(K))) for i in range(K))
    nbar = sum((wi * n for wi, n in zip(w, nu)), mp.matrix(k, 1))
    cov = sum((wi * (c - mp.mpf(s2) * mp.eye(k) + (n - nbar) * (n - nbar).T) for wi, c, n in zip(w, C, nu)),
              mp.matrix(k, k)) + mp.mpf(s2) * mp.eye(k)
    return {"huber": float(huber), "kl": float(ku), "maxent": float((mp.log(mp.det(cov)) - ldp) / 2)}


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_affine_information_bounds_against_mpmath(shape, scale):
    A = scale * SHAPES[shape]
    u = theory.affine_mutual_information_upper_bounds(PRIOR, A, np.eye(A.shape[0]))
    ref = _mp_affine_bounds(PRIOR, A, 1.0)
    for m in ("huber", "kl", "maxent"):
        # the float64 error is far inside the stated rounding allowance, which the certificate pays
        assert abs(u[m] - ref[m]) <= max(u["rounding"], 1e-12 * (1 + abs(ref[m]))), (m, u[m], ref[m], u["rounding"])
        # and is tight: ~eps·‖A‖/σ (float64's resolution of the channel's singular values), 1e-9 below 1e6
        assert abs(u[m] - ref[m]) <= 1e-9 * (1 + abs(ref[m])) + 1e-15 * scale


@given(gaussian_mixtures(dim=st.integers(1, 4), n_components=st.integers(1, 3)), seeds,
       st.integers(1, 6), st.floats(0.05, 3.0))
@settings(max_examples=60)
def test_affine_bounds_equal_the_pushforward_bounds(g, seed, k, noise):
    """At moderate scales the stable route equals mutual_information_upper_bounds on the pushed-forward
    mixture (its own Cholesky-based code), for any shape of A."""
    A = np.random.default_rng(seed).normal(size=(k, g.dim))
    u = theory.affine_mutual_information_upper_bounds(g, A, noise * np.eye(k))
    v = theory.mutual_information_upper_bounds(*theory.affine_pushforward(g, A), noise * np.eye(k))
    for m in ("huber", "kl", "maxent", "best"):
        assert u[m] == pytest.approx(v[m], rel=1e-8, abs=1e-8)


@given(gaussian_mixtures(dim=st.integers(1, 3), n_components=st.integers(1, 3)), seeds, st.integers(1, 4))
@settings(max_examples=30)
def test_fisher_trace_upper_bound_holds(g, seed, k):
    """Tr J(ζ) ≤ Σ w_i Tr C_i⁻¹ (convexity of Fisher information) against Monte Carlo ± 5 s.e."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(k, g.dim))
    bound = theory.affine_output_fisher_trace_upper(g, A, 0.5 * np.eye(k))
    zeta = g.linear_transform(A / math.sqrt(0.5), np.eye(k))
    mc = theory.mixture_prior_fisher_mc(zeta, 4000, rng)
    assert mc.value <= bound + 5 * mc.stderr + 1e-12
    assert bound <= k + 1e-12


def test_fisher_trace_upper_bound_is_exact_for_one_gaussian():
    A = np.array([[2.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    g = theory.GaussianMixture([1.0], [[0.0, 0.0]], [np.eye(2)])
    exact = np.trace(np.linalg.inv(A @ A.T + np.eye(3)))
    assert theory.affine_output_fisher_trace_upper(g, A, np.eye(3)) == pytest.approx(exact, rel=1e-12)


# --- the entropy's confidence limit ------------------------------------------------------------

def _maurer_reference(g, n, rng, alpha):
    """The limit written out from the formula (Maurer 2003 with the χ² second-moment bound)."""
    d = g.dim
    peaks = [math.log(w) - 0.5 * (d * math.log(2 * math.pi) + np.linalg.slogdet(S)[1]) for w, S in
             zip(g.weights, g.covs)]
    c = -np.logaddexp.reduce(peaks)
    V = sum(w * ((-p - c) ** 2 + (-p - c) * d + d * (d + 2) / 4) for w, p in zip(g.weights, peaks))
    v = -g.logpdf(g.sample(n, rng))
    return v.mean() - math.sqrt(2 * V * math.log(1 / alpha) / n), V


@pytest.mark.parametrize("n, alpha", [(1, 0.5), (2, 1e-3), (50, 0.05), (3000, 1e-3)])
def test_entropy_limit_is_the_stated_formula(n, alpha):
    g = theory.random_mixture(np.random.default_rng(4), 5)
    lim = theory.mixture_entropy_lower_limit(g, n, np.random.default_rng(9), alpha=alpha)
    ref, V = _maurer_reference(g, n, np.random.default_rng(9), alpha)
    assert lim.value == pytest.approx(ref, rel=1e-12) and lim.second_moment == pytest.approx(V, rel=1e-12)
    assert lim.alpha == alpha and lim.n == n


@given(gaussian_mixtures(dim=st.integers(1, 6), n_components=st.integers(1, 4)), seeds)
@settings(max_examples=40)
def test_entropy_second_moment_bound_holds(g, seed):
    """E[(−log p − c)²] ≤ V: the Monte-Carlo second moment (± 5 s.e.) never exceeds the proven V."""
    lim = theory.mixture_entropy_lower_limit(g, 10, np.random.default_rng(seed))
    x = g.sample(20000, np.random.default_rng(seed + 1))
    sq = (-g.logpdf(x) - lim.shift) ** 2
    assert sq.mean() <= lim.second_moment + 5 * sq.std(ddof=1) / math.sqrt(len(sq))
    assert (-g.logpdf(x) - lim.shift).min() >= -1e-9    # X ≥ 0: the density never exceeds e^(−c)


def test_entropy_limit_covers_at_small_n():
    """N(0, I₄), exact H known: over 400 independent runs with n = 3 at α = 0.05 the limit is above H
    in at most as many runs as a binomial(400, 0.05) allows at the 1e-4 level (it is conservative:
    expect none), where the CLT limit mean − 1.645 s.e. fails far more often at n = 3."""
    from scipy.stats import binom
    g = theory.GaussianMixture([1.0], [np.zeros(4)], [np.eye(4)])
    h = 2 * math.log(2 * math.pi * math.e)
    over = sum(theory.mixture_entropy_lower_limit(g, 3, np.random.default_rng(s), alpha=0.05).value > h
               for s in range(400))
    assert over <= binom.isf(1e-4, 400, 0.05)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 2.0, float("nan"), True])
def test_entropy_limit_refuses_a_level_outside_0_1(alpha):
    with pytest.raises(ValueError, match="alpha"):
        theory.mixture_entropy_lower_limit(PRIOR, 10, np.random.default_rng(0), alpha=alpha)


def test_entropy_mc_standard_error_is_the_sample_sd_over_root_n():
    """Estimate.stderr = sd(ddof=1)/√n of the very draws (recomputed from the same generator state)."""
    e = theory.mixture_entropy_mc(PRIOR, 7, np.random.default_rng(5))
    v = -PRIOR.logpdf(PRIOR.sample(7, np.random.default_rng(5)))
    assert e.value == pytest.approx(v.mean(), rel=1e-14)
    assert e.stderr == pytest.approx(v.std(ddof=1) / math.sqrt(7), rel=1e-12)
