"""Gaussian mixtures: density, entropy bounds vs Monte Carlo, exact posterior vs brute force.

Monte-Carlo tolerances.  Each property below makes at most 4 one-sided comparisons per example
and runs 200 examples, so ~800 comparisons per test.  At 5 standard errors the one-sided normal
tail is 2.9e-7, so the family-wise chance of a false failure per test is < 2.3e-4 (at 4 s.e. it
would be ~2.5%).  Seeds come from hypothesis (``seed`` argument) so a failure replays exactly.
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import integrate
from scipy.special import logsumexp

import theory
from theory.strategies import gaussian_mixtures

K_SE = 5.0  # see module docstring
seeds = st.integers(0, 2**32 - 1)


def test_logpdf_matches_direct_sum():
    rng = np.random.default_rng(0)
    g = theory.GaussianMixture([0.2, 0.5, 0.3], rng.normal(size=(3, 2)),
                               [np.eye(2), np.diag([2.0, 0.5]), [[1.0, 0.3], [0.3, 1.0]]])
    x = rng.normal(size=(7, 2))
    direct = np.zeros(7)
    for w, m, c in zip(g.weights, g.means, g.covs):
        diff = x - m
        q = np.einsum("ni,ij,nj->n", diff, np.linalg.inv(c), diff)
        direct += w * np.exp(-0.5 * q) / np.sqrt((2 * np.pi) ** 2 * np.linalg.det(c))
    assert np.allclose(g.logpdf(x), np.log(direct), rtol=1e-12, atol=1e-12)


def test_density_integrates_to_one_1d():
    g = theory.GaussianMixture([0.3, 0.7], [[-2.0], [1.0]], [[[0.5]], [[2.0]]])
    val, err = integrate.quad(lambda t: math.exp(g.logpdf([t])), -30, 30)
    assert abs(val - 1) < 1e-8


def test_sample_moments():
    g = theory.GaussianMixture([0.3, 0.7], [[-2.0, 0.0], [1.0, 1.0]], [np.eye(2), 0.5 * np.eye(2)])
    n = 40000
    x, lab = g.sample(n, np.random.default_rng(1), return_labels=True)
    se = x.std(0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(x.mean(0) - g.mean()) <= 5 * se)
    assert abs((lab == 1).mean() - 0.7) <= 5 * math.sqrt(0.21 / n)
    # covariance: entry-wise 5 s.e. with the s.e. of a product moment
    c = np.cov(x.T)
    dx = x - x.mean(0)
    se_c = np.array([[np.std(dx[:, i] * dx[:, j], ddof=1) for j in range(2)] for i in range(2)]) / math.sqrt(n)
    assert np.all(np.abs(c - g.covariance()) <= 5 * se_c)


def test_same_seed_same_samples():
    g = theory.GaussianMixture([0.5, 0.5], [[0.0], [3.0]], [[[1.0]], [[1.0]]])
    a = g.sample(10, np.random.default_rng(5))
    b = g.sample(10, np.random.default_rng(5))
    assert np.array_equal(a, b)


def test_score_matches_finite_differences():
    g = theory.GaussianMixture([0.4, 0.6], [[0.0, 1.0], [2.0, -1.0]], [np.eye(2), [[1.0, 0.4], [0.4, 0.8]]])
    x = np.array([[0.3, 0.2], [1.5, -0.5]])
    h = 1e-6
    fd = np.stack([(g.logpdf(x + h * e) - g.logpdf(x - h * e)) / (2 * h) for e in np.eye(2)], axis=1)
    assert np.allclose(g.score(x), fd, atol=1e-7)


# --- entropy bounds ----------------------------------------------------------------------------

def test_chernoff_divergence_formula_by_quadrature():
    """C_α(p‖q) = −log∫p^α q^{1−α} in 1-D against numerical quadrature (checks the α convention)."""
    from theory.mixture import _pairwise_gauss

    means = np.array([[0.0], [1.5]])
    covs = np.array([[[0.7]], [[2.0]]])
    chols = np.sqrt(covs)
    logdets = np.log(covs[:, 0, 0])
    alphas = np.array([0.0, 0.2, 0.5, 0.9, 1.0])
    C = _pairwise_gauss(means, covs, chols, logdets, alphas)

    def pdf(t, i):
        return math.exp(-0.5 * (t - means[i, 0]) ** 2 / covs[i, 0, 0]) / math.sqrt(2 * math.pi * covs[i, 0, 0])

    for a_idx, a in enumerate(alphas):
        val, _ = integrate.quad(lambda t: pdf(t, 0) ** a * pdf(t, 1) ** (1 - a), -40, 40)
        assert abs(C[a_idx, 0, 1] - (-math.log(val))) < 1e-9


def test_bounds_one_component_equal_entropy():
    g = theory.GaussianMixture([1.0], [[1.0, 2.0, 3.0]], [np.diag([1.0, 2.0, 0.5])])
    b = theory.mixture_entropy_bounds(g)
    h = theory.gaussian_entropy(g.covs[0])
    for k in ("huber_upper", "kl_upper", "chernoff_lower"):
        assert abs(b[k] - h) < 1e-12
    assert b["elk_lower"] < h


def test_bounds_far_apart_components_approach_huber():
    """Well-separated components: H -> Σw(−log w + H_i), every pairwise bound converges to it."""
    g = theory.GaussianMixture([0.25, 0.75], [[0.0], [1e3]], [[[1.0]], [[1.0]]])
    b = theory.mixture_entropy_bounds(g)
    assert abs(b["kl_upper"] - b["huber_upper"]) < 1e-12
    assert abs(b["chernoff_lower"] - b["huber_upper"]) < 1e-12


@given(gaussian_mixtures(dim=st.integers(1, 3), n_components=st.integers(1, 4)), seeds)
def test_entropy_bounds_sandwich_monte_carlo(g, seed):
    """Huber et al. 2008, Kolchinsky & Tracey 2017: elk, chernoff <= H <= kl <= huber, within 4 s.e.

    4 s.e. (the issue's tolerance) rather than K_SE: the bounds are rarely tight against the Monte-Carlo
    H, so the multiplicity argument of the module docstring is very conservative here — over 4000
    examples of this strategy the largest standardised violation seen was 2.98 s.e."""
    b = theory.mixture_entropy_bounds(g)
    est = theory.mixture_entropy_mc(g, 2000, np.random.default_rng(seed))
    tol = 4.0 * est.stderr
    assert b["elk_lower"] <= est.value + tol
    assert b["chernoff_lower"] <= est.value + tol
    assert est.value <= b["kl_upper"] + tol
    assert b["kl_upper"] <= b["huber_upper"] + 1e-12
    assert b["lower"] <= b["upper"] + 1e-12


def test_entropy_mc_one_component_is_exact():
    g = theory.GaussianMixture([1.0], [[0.0, 0.0]], [[[2.0, 0.5], [0.5, 1.0]]])
    est = theory.mixture_entropy_mc(g, 20000, np.random.default_rng(0))
    assert abs(est.value - theory.gaussian_entropy(g.covs[0])) <= 5 * est.stderr
    assert est.n == 20000 and est.stderr > 0


# --- exact posterior ---------------------------------------------------------------------------

def test_posterior_one_component_is_linear_gaussian():
    rng = np.random.default_rng(2)
    A = rng.normal(size=(2, 3))
    cx = np.diag([1.0, 0.5, 2.0])
    cn = np.array([[0.3, 0.1], [0.1, 0.4]])
    mu = np.array([0.5, -1.0, 2.0])
    post = theory.mixture_posterior(theory.GaussianMixture([1.0], [mu], [cx]), A, cn)
    z = rng.normal(size=(5, 2))
    assert np.allclose(post.mean(z), theory.linear_gaussian_posterior_mean(A, cx, cn, z, mean_x=mu), atol=1e-12)
    assert np.allclose(post.covs[0], theory.linear_gaussian_posterior_cov(A, cx, cn), atol=1e-12)
    assert np.allclose(post.trace_cov(z), theory.linear_gaussian_mmse(A, cx, cn), atol=1e-12)
    est = theory.mixture_mmse_mc(post.prior, A, cn, 50, np.random.default_rng(0))
    assert abs(est.value - theory.linear_gaussian_mmse(A, cx, cn)) < 1e-12


def _quad_posterior_1d(g, a, s2, z):
    """Posterior mean and variance of x given z = a x + N(0, s2) by quadrature (1-D)."""
    t = np.linspace(-40, 40, 200001)
    lp = g.logpdf(t[:, None]) - 0.5 * (z - a * t) ** 2 / s2
    w = np.exp(lp - lp.max())
    w /= w.sum()
    m = np.sum(w * t)
    return m, np.sum(w * (t - m) ** 2)


@pytest.mark.parametrize("z", [-3.0, -0.4, 0.0, 1.1, 5.0])
def test_posterior_mean_and_variance_by_quadrature_1d(z):
    g = theory.GaussianMixture([0.3, 0.5, 0.2], [[-2.0], [0.5], [3.0]], [[[0.4]], [[1.0]], [[0.2]]])
    post = theory.mixture_posterior(g, [[1.3]], [[0.5]])
    m, v = _quad_posterior_1d(g, 1.3, 0.5, z)
    # quadrature on a 4e-4 grid over ±40: error far below 1e-8 for these smooth densities
    assert abs(post.mean([z])[0] - m) < 1e-8
    assert abs(post.trace_cov([[z]])[0] - v) < 1e-8
    assert abs(post.covariance([[z]])[0, 0, 0] - v) < 1e-8


def test_posterior_logpdf_normalised_1d():
    g = theory.GaussianMixture([0.4, 0.6], [[-1.0], [2.0]], [[[0.5]], [[1.5]]])
    post = theory.mixture_posterior(g, [[0.8]], [[0.3]])
    val, _ = integrate.quad(lambda t: math.exp(post.logpdf([[t]], [[0.7]])[0]), -30, 30)
    assert abs(val - 1) < 1e-8


def _brute_force_mmse(g, A, cn, n_outer, n_inner, rng):
    """MMSE by self-normalised importance sampling of E[x|z] with the prior as proposal.

    Returns (mean error, its s.e., estimated SNIS bias).  The SNIS estimate x̂ of E[x|z] has
    variance ≈ Σ_j w̃_j² ‖x_j − x̂‖² (delta method), which inflates E‖x − x̂‖² by that amount
    on average: we report its mean as the estimator's bias.
    """
    d, k = g.dim, A.shape[0]
    Ln = np.linalg.cholesky(cn)
    Wn = np.linalg.inv(Ln)                                # whitening: ‖Wn r‖² = rᵀ Σn⁻¹ r
    x = g.sample(n_outer, rng)
    z = x @ A.T + rng.standard_normal((n_outer, k)) @ Ln.T
    errs, bias = np.empty(n_outer), np.empty(n_outer)
    for s in range(0, n_outer, 50):
        xs = g.sample(n_inner, rng)                       # fresh proposal draws for each block
        zz = z[s:s + 50]
        r = (zz @ Wn.T)[:, None, :] - (xs @ (Wn @ A).T)[None]   # whitened residuals (B, M, k)
        logw = -0.5 * np.sum(r * r, axis=2)
        w = np.exp(logw - logsumexp(logw, axis=1, keepdims=True))
        xhat = w @ xs
        errs[s:s + 50] = np.sum((x[s:s + 50] - xhat) ** 2, axis=1)
        dev = np.sum((xs[None] - xhat[:, None]) ** 2, axis=2)
        bias[s:s + 50] = np.sum(w ** 2 * dev, axis=1)
    return errs.mean(), errs.std(ddof=1) / math.sqrt(n_outer), bias.mean()


CASES = {
    "d1": (theory.GaussianMixture([0.3, 0.7], [[-2.0], [1.5]], [[[0.5]], [[1.0]]]), [[1.0]], [[0.5]]),
    "d2": (theory.GaussianMixture([0.5, 0.2, 0.3], [[-1.5, 0.0], [1.0, 2.0], [2.0, -1.0]],
                                  [np.eye(2) * 0.4, [[0.8, 0.3], [0.3, 0.5]], np.eye(2) * 0.6]),
           [[1.0, 0.5]], [[0.4]]),
    "d3": (theory.GaussianMixture([0.6, 0.4], [[-1.0, 0.0, 1.0], [1.5, 1.0, -1.0]],
                                  [np.diag([0.5, 1.0, 0.7]), np.eye(3) * 0.6]),
           [[1.0, 0.0, 0.5], [0.0, 1.0, -0.5]], np.eye(2) * 0.5),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_mixture_mmse_matches_brute_force_importance_sampling(case):
    g, A, cn = CASES[case]
    A, cn = np.asarray(A, float), np.asarray(cn, float)
    exact = theory.mixture_mmse_mc(g, A, cn, 20000, np.random.default_rng(11))
    bf, bf_se, bias = _brute_force_mmse(g, A, cn, 2000, 20000, np.random.default_rng(12))
    se = math.hypot(exact.stderr, bf_se)
    # 4 s.e. of the difference (issue requirement; 3 cases -> false-failure rate ~2e-4) plus the
    # SNIS estimator's own upward bias, estimated from the same draws (~1e-4 of the MMSE here).
    assert -4 * se <= bf - exact.value <= 4 * se + bias, (bf, exact, bias)
    # and the two MMSE estimators of mixture_mmse_mc agree with each other
    err = theory.mixture_mmse_mc(g, A, cn, 20000, np.random.default_rng(13), method="error")
    assert abs(err.value - exact.value) <= 4 * math.hypot(err.stderr, exact.stderr)


@given(gaussian_mixtures(dim=st.integers(1, 3), n_components=st.integers(1, 3)), seeds,
       st.floats(0.05, 2.0))
def test_mmse_estimators_agree_and_posterior_mean_beats_prior_mean(g, seed, noise):
    d = g.dim
    A, cn = np.eye(d), noise * np.eye(d)
    a = theory.mixture_mmse_mc(g, A, cn, 1000, np.random.default_rng(seed))
    b = theory.mixture_mmse_mc(g, A, cn, 1000, np.random.default_rng(seed + 1), method="error")
    assert abs(a.value - b.value) <= K_SE * math.hypot(a.stderr, b.stderr)
    # MMSE <= Tr Cov(x) (the prior mean is one estimator) and <= MMSE of the linear (LMMSE) estimator
    lmmse = theory.linear_gaussian_mmse(A, g.covariance(), cn)
    assert a.value <= lmmse * (1 + 1e-10) + K_SE * a.stderr


@given(gaussian_mixtures(dim=st.integers(1, 3), n_components=st.integers(1, 3)), seeds)
def test_conditional_entropy_mc_matches_entropy_identity(g, seed):
    """H(x|z) = H(x) + H(ε) − H(z) for z = x + ε (each side by Monte Carlo)."""
    d = g.dim
    cn = 0.5 * np.eye(d)
    rng = np.random.default_rng(seed)
    hxz = theory.mixture_conditional_entropy_mc(g, np.eye(d), cn, 2000, rng)
    hx = theory.mixture_entropy_mc(g, 2000, rng)
    hz = theory.mixture_entropy_mc(g.linear_transform(np.eye(d), cn), 2000, rng)
    rhs = hx.value + theory.gaussian_entropy(cn) - hz.value
    se = math.sqrt(hxz.stderr ** 2 + hx.stderr ** 2 + hz.stderr ** 2)
    assert abs(hxz.value - rhs) <= K_SE * se


@pytest.mark.parametrize("case", sorted(CASES))
def test_exact_posterior_mean_matches_importance_sampling_pointwise(case):
    """E[x|z] in closed form vs self-normalised importance sampling at 100 z's per case.

    The SNIS estimate x̂ has delta-method variance Σ_j w̃_j²(x_j − x̂)² per coordinate (estimated
    from the same draws); its O(1/M) bias is ~1e-5 here, far below 5 s.e. 100·d two-sided
    comparisons at 5 s.e. per case: false-failure rate < 2e-4.
    """
    g, A, cn = CASES[case]
    A, cn = np.asarray(A, float), np.asarray(cn, float)
    rng = np.random.default_rng(21)
    post = theory.mixture_posterior(g, A, cn)
    x = g.sample(100, rng)
    z = x @ A.T + rng.standard_normal((100, A.shape[0])) @ np.linalg.cholesky(cn).T
    xs = g.sample(50000, rng)
    Wn = np.linalg.inv(np.linalg.cholesky(cn))             # whitening: ‖Wn r‖² = rᵀ Σn⁻¹ r
    r = (z @ Wn.T)[:, None, :] - (xs @ (Wn @ A).T)[None]
    logw = -0.5 * np.sum(r * r, axis=2)
    w = np.exp(logw - logsumexp(logw, axis=1, keepdims=True))
    xhat = w @ xs
    se = np.sqrt(np.einsum("bm,bmd->bd", w ** 2, (xs[None] - xhat[:, None]) ** 2))
    assert np.all(np.abs(post.mean(z) - xhat) <= 5 * se)
