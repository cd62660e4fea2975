"""Issue 13: the fast bound routes against the old implementation, routes and blocks against each
other, push-forward, declared structures, and failures that name their component.

The reference below is the implementation the package had before issue 13 (every pairwise d×d
matrix materialised, K²·len(alphas) Cholesky factorisations, ``numpy.linalg.solve`` for
triangular systems), kept here privately so the new routes can be checked against it.

Tolerances: the new and old routes compute the same formulas in a different order (potri vs
solve+product, a tridiagonal recurrence vs Cholesky factors, flattened products vs einsum).  On
instances with condition numbers up to 1e6 both lose at most ~1e-12 relative, so the issue's
1e-10 relative (floor 1 nat: bounds near 0 are compared absolutely) leaves room; a wrong formula
moves a bound by far more (≥ 1e-3 on these instances).
"""

import math
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import logsumexp

import theory
import theory._pairwise as pw
from theory.strategies import gaussian_mixtures, psd_matrices, simplex_weights, spd_matrices

REL = 1e-10  # see module docstring

# --- the old reference implementation (pre-issue-13 theory.mixture / theory.bounds, arrays only) ---

_LOG_2PI = math.log(2.0 * math.pi)
_LOG_2PI_E = math.log(2.0 * math.pi * math.e)


def _old_logdet_chol(L):
    return 2.0 * np.sum(np.log(np.diagonal(L, axis1=-2, axis2=-1)), axis=-1)


def _old_spd_inv(L):
    eye = np.broadcast_to(np.eye(L.shape[-1]), L.shape)
    Li = np.tril(np.linalg.solve(L, eye))
    inv = np.swapaxes(Li, -1, -2) @ Li
    return 0.5 * (inv + np.swapaxes(inv, -1, -2))


def _old_pairwise_gauss(means, covs, logdets, alphas):
    K, d = means.shape
    out = np.empty((len(alphas), K, K))
    delta = means[:, None, :] - means[None, :, :]
    for a_idx, a in enumerate(alphas):
        S = (1 - a) * covs[:, None] + a * covs[None, :]
        L = np.linalg.cholesky(S)
        y = np.linalg.solve(L, delta[..., None])[..., 0]
        maha = np.einsum("ijd,ijd->ij", y, y)
        out[a_idx] = (0.5 * a * (1 - a) * maha
                      + 0.5 * (_old_logdet_chol(L) - (1 - a) * logdets[:, None] - a * logdets[None, :]))
    return out


def _old_pairwise_kl(means, covs, chols, logdets):
    K, d = means.shape
    kl = np.empty((K, K))
    for j in range(K):
        inv_j = _old_spd_inv(chols[j])
        diff = means - means[j]
        tr = np.einsum("ab,iba->i", inv_j, covs)
        maha = np.einsum("ia,ab,ib->i", diff, inv_j, diff)
        kl[:, j] = 0.5 * (tr + maha - d + logdets[j] - logdets)
    np.fill_diagonal(kl, 0.0)
    return np.maximum(kl, 0.0)


def _old_pairwise_bound(weights, comp_h, D):
    with np.errstate(divide="ignore"):
        logw = np.log(weights)
    inner = logsumexp(logw[None, :] - D, axis=-1)
    mask = weights > 0
    return float(weights @ comp_h) - np.sum(weights[mask] * inner[..., mask], axis=-1)


def old_mixture_entropy_bounds(w, means, covs, alphas):
    covs = 0.5 * (covs + np.swapaxes(covs, 1, 2))
    alphas = np.asarray(alphas, float)
    K, d = means.shape
    chols = np.linalg.cholesky(covs)
    logdets = _old_logdet_chol(chols)
    comp_h = 0.5 * (d * _LOG_2PI_E + logdets)
    mask = w > 0
    huber = float(np.sum(w[mask] * (-np.log(w[mask]) + comp_h[mask])))
    kl = _old_pairwise_bound(w, comp_h, _old_pairwise_kl(means, covs, chols, logdets))
    chern = _old_pairwise_bound(w, comp_h, _old_pairwise_gauss(means, covs, logdets, alphas))
    S = covs[:, None] + covs[None, :]
    L = np.linalg.cholesky(S)
    delta = means[:, None, :] - means[None, :, :]
    y = np.linalg.solve(L, delta[..., None])[..., 0]
    log_kern = -0.5 * (d * _LOG_2PI + _old_logdet_chol(L) + np.einsum("ijd,ijd->ij", y, y))
    with np.errstate(divide="ignore"):
        logw = np.log(w)
    elk = -float(np.sum(w[mask] * logsumexp(logw[None, :] + log_kern, axis=1)[mask]))
    return {"huber_upper": huber, "kl_upper": float(kl), "elk_lower": elk,
            "chernoff_lower": float(np.max(chern)), "chernoff_by_alpha": np.atleast_1d(chern)}


def old_mutual_information_upper_bounds(w, means, covs, noise):
    covs = 0.5 * (covs + np.swapaxes(covs, 1, 2))
    k = noise.shape[0]
    ld_p = _old_logdet_chol(np.linalg.cholesky(noise))
    ld = _old_logdet_chol(np.linalg.cholesky(covs + noise[None]))
    mask = w > 0
    huber = float(np.sum(w[mask] * (-np.log(w[mask]) + 0.5 * (ld[mask] - ld_p))))
    h_eps = 0.5 * (k * _LOG_2PI_E + ld_p)
    b = old_mixture_entropy_bounds(w, means, covs + noise[None], [0.5])
    dm = means - w @ means
    cz = np.einsum("i,ijk->jk", w, covs + noise[None]) + (w[:, None] * dm).T @ dm
    maxent = 0.5 * (k * _LOG_2PI_E + _old_logdet_chol(np.linalg.cholesky(0.5 * (cz + cz.T)))) - h_eps
    return {"huber": huber, "kl": b["kl_upper"] - h_eps, "maxent": float(maxent)}


def _close(new, old):
    return abs(new - old) <= REL * max(1.0, abs(old))


# --- new == old on random instances (issue 13, "Must show") ---------------------------------------

hard_mixtures = gaussian_mixtures(dim=st.integers(1, 96), n_components=st.integers(1, 4), mean_scale=2.0,
                                  min_eig=1e-6, max_eig=1.0, log_uniform=True, coincident=True)


@pytest.mark.parametrize("route", ["cholesky", "tridiagonal"])
@given(g=hard_mixtures, alphas=st.sampled_from([None, "grid", (0.3,), (0.0, 0.25, 1.0)]))
def test_entropy_bounds_agree_with_old_implementation(route, g, alphas):
    """Every bound of mixture_entropy_bounds = the old implementation to 1e-10 relative, d ≤ 96,
    condition numbers up to 1e6, coincident components; both pair routes for the lower bounds."""
    threshold = 10**9 if route == "cholesky" else 0
    with mock.patch.object(pw, "TRIDIAGONAL_MIN_BETAS", threshold):
        new = theory.mixture_entropy_bounds(g, alphas=alphas)
    a = {None: [0.5], "grid": np.linspace(0, 1, 21)}.get(alphas, alphas)
    old = old_mixture_entropy_bounds(g.weights, g.means, g.covs, a)
    bad = {k: (new[k], old[k]) for k in ("huber_upper", "kl_upper", "elk_lower", "chernoff_lower")
           if not _close(new[k], old[k])}
    assert not bad
    # the reported α attains the maximum (ties between grid points are allowed)
    at = old["chernoff_by_alpha"][int(np.argmin(np.abs(np.asarray(a) - new["chernoff_alpha"])))]
    assert _close(at, old["chernoff_lower"])


@st.composite
def pushforward_instances(draw):
    """ẑ = A x + c for a mixture x in d ≤ 16 and k ≤ 96 outputs: singular covariances when k > d."""
    g = draw(gaussian_mixtures(dim=st.integers(1, 16), n_components=st.integers(1, 4), mean_scale=2.0,
                               min_eig=1e-6, max_eig=1.0, log_uniform=True, coincident=True))
    k = draw(st.integers(1, 96))
    A = np.asarray(draw(st.lists(st.floats(-1, 1), min_size=k * g.dim, max_size=k * g.dim))).reshape(k, g.dim)
    noise = draw(spd_matrices(k, 0.05, 2.0))
    return g, A, noise


@given(pushforward_instances())
def test_mutual_information_bounds_agree_with_old_implementation(inst):
    """mutual_information_upper_bounds = the old route (which built the z-mixture and computed every
    bound), 1e-10 relative, on push-forwards whose covariances are singular when k > d."""
    g, A, noise = inst
    w, means, covs = theory.affine_pushforward(g, A, c=0.5)
    new = theory.mutual_information_upper_bounds(w, means, covs, noise)
    old = old_mutual_information_upper_bounds(w, means, covs, noise)
    bad = {k: (new[k], old[k]) for k in ("huber", "kl", "maxent") if not _close(new[k], old[k])}
    assert not bad
    assert new["best"] == min(new["huber"], new["kl"], new["maxent"])


def _chernoff_hand(mi, ci, mj, cj, a):
    """C_α(N_i ‖ N_j) = α(1−α)/2 ΔᵀS⁻¹Δ + ½ log(|S| / (|Σ_i|^(1−α)|Σ_j|^α)), S = (1−α)Σ_i + αΣ_j."""
    S = (1 - a) * ci + a * cj
    dlt = mj - mi
    return (0.5 * a * (1 - a) * dlt @ np.linalg.solve(S, dlt)
            + 0.5 * (np.linalg.slogdet(S)[1] - (1 - a) * np.linalg.slogdet(ci)[1] - a * np.linalg.slogdet(cj)[1]))


@pytest.mark.parametrize("route", ["cholesky", "tridiagonal"])
@pytest.mark.parametrize("first_ill_conditioned", [False, True])
def test_chernoff_at_an_asymmetric_alpha_by_hand(route, first_ill_conditioned):
    """α = 0.3 (so C_α(i‖j) ≠ C_α(j‖i)) on two 2-D components; with the first one ill-conditioned the
    tridiagonal route whitens by the second (a swapped pair) and must mirror α.  Against the
    closed form typed in with numpy.linalg (1e-12: condition number ≤ 1e4 in d = 2)."""
    c0 = np.diag([1.0, 1e-4]) if first_ill_conditioned else np.array([[1.0, 0.3], [0.3, 0.6]])
    c1 = np.array([[0.8, -0.2], [-0.2, 1.1]])
    w = np.array([0.35, 0.65])
    m = np.array([[0.0, 0.0], [0.6, 0.02]])
    g = theory.GaussianMixture(w, m, [c0, c1])
    a = 0.3
    C = np.array([[0.0, _chernoff_hand(m[0], c0, m[1], c1, a)], [_chernoff_hand(m[1], c1, m[0], c0, a), 0.0]])
    h = 0.5 * np.log((2 * np.pi * np.e) ** 2 * np.array([np.linalg.det(c0), np.linalg.det(c1)]))
    want = float(w @ h - w @ logsumexp(np.log(w)[None, :] - C, axis=1))
    with mock.patch.object(pw, "TRIDIAGONAL_MIN_BETAS", 0 if route == "tridiagonal" else 10**9):
        got = theory.mixture_entropy_bounds(g, alphas=[a], which="chernoff_lower")["chernoff_lower"]
    assert abs(got - want) < 1e-12
    assert abs(C[0, 1] - C[1, 0]) > 1e-3          # the test can tell the two directions apart


def _overlapping_instance(d, K=3, seed=8):
    """K components in d dims that overlap (every KL between them ~1 nat), rank-8 covariances."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(d, 8)) / math.sqrt(8)
    G = base[None] + 0.02 * rng.normal(size=(K, d, 8))
    covs = G @ np.swapaxes(G, 1, 2)
    means = 0.02 * rng.normal(size=(K, d))
    return rng.dirichlet(np.full(K, 3.0)), means, covs, theory.random_spd(rng, d, 0.5, 1.5)


@pytest.mark.parametrize("d", [80, 300])
def test_per_component_and_tiled_routes_agree_with_old_implementation(d):
    """Above 2·TILE = 256 the symmetry checks and copies are tiled (d = 80: one tile, d = 300: several):
    both against the old implementation (1e-10 relative) on overlapping
    components (so the KL and Chernoff terms matter: asserted), with inputs asymmetric by 1e-12
    relative (inside the tolerance; both routes use ½(M + Mᵀ))."""
    w, means, covs, noise = _overlapping_instance(d)
    covs = covs + 1e-12 * np.triu(np.ones((d, d)), 1)            # asymmetric within tolerance
    new = theory.mutual_information_upper_bounds(w, means, covs, noise)
    old = old_mutual_information_upper_bounds(w, means, covs, noise)
    assert not {k: (new[k], old[k]) for k in old if not _close(new[k], old[k])}
    assert new["kl"] < new["huber"] - 0.05
    sym = 0.5 * (covs + np.swapaxes(covs, 1, 2))
    g = theory.GaussianMixture(w, means, sym + noise)
    new = theory.mixture_entropy_bounds(g, alphas=[0.3, 0.5])
    old = old_mixture_entropy_bounds(g.weights, g.means, g.covs, [0.3, 0.5])
    keys = ("huber_upper", "kl_upper", "elk_lower", "chernoff_lower")
    assert not {k: (new[k], old[k]) for k in keys if not _close(new[k], old[k])}
    assert new["chernoff_lower"] < new["huber_upper"] - 0.05


@pytest.mark.parametrize("d", [80, 300])
def test_asymmetry_found_in_any_tile(d):
    w, means, covs, noise = _overlapping_instance(d)
    covs[2, 1, d - 2] += 1e-3 * np.abs(covs[2]).max()             # far from the diagonal tile
    with pytest.raises(ValueError, match=r"covs\[2\] must be symmetric"):
        theory.mutual_information_upper_bounds(w, means, covs, noise)
    with pytest.raises(ValueError, match=r"covs\[2\] must be symmetric"):
        theory.GaussianMixture(w, means, covs + noise)


# --- declared structures: the fast paths equal the full route ---------------------------------

@st.composite
def diagonal_instances(draw):
    k = draw(st.integers(1, 32))
    K = draw(st.integers(1, 5))
    w = draw(simplex_weights(K))
    means = np.asarray(draw(st.lists(st.floats(-3, 3), min_size=K * k, max_size=K * k))).reshape(K, k)
    var = np.asarray(draw(st.lists(st.floats(0.0, 3.0), min_size=K * k, max_size=K * k))).reshape(K, k)
    noise = np.asarray(draw(st.lists(st.floats(0.05, 2.0), min_size=k, max_size=k)))
    return w, means, var, noise


@given(diagonal_instances())
def test_diag_structure_equals_full(inst):
    """structure='diag' (O(K²k)) = the full route on the same diagonal matrices (1e-10 relative:
    two exact routes; variances may be 0, the noise keeps C_i positive definite)."""
    w, means, var, noise = inst
    fast = theory.mutual_information_upper_bounds(w, means, var, noise, structure="diag")
    full = theory.mutual_information_upper_bounds(w, means, np.stack([np.diag(v) for v in var]), np.diag(noise))
    bad = {k: (fast[k], full[k]) for k in full if not _close(fast[k], full[k])}
    assert not bad
    # noise given as a diagonal matrix instead of its diagonal: the same numbers
    assert theory.mutual_information_upper_bounds(w, means, var, np.diag(noise), structure="diag") == fast


@st.composite
def scaled_instances(draw):
    k = draw(st.integers(1, 24))
    K = draw(st.integers(1, 5))
    w = draw(simplex_weights(K))
    means = np.asarray(draw(st.lists(st.floats(-3, 3), min_size=K * k, max_size=K * k))).reshape(K, k)
    scales = np.asarray(draw(st.lists(st.floats(0.0, 4.0), min_size=K, max_size=K)))
    shared = draw(psd_matrices(k, min_eig=0.05, max_eig=3.0))
    noise = draw(spd_matrices(k, 0.05, 2.0))
    return w, means, scales, shared, noise


@given(scaled_instances())
def test_scaled_structure_equals_full(inst):
    """structure='scaled' (Σ_i = s_i Σ, one eigendecomposition after whitening the noise) = the full
    route (1e-10 relative; the bounds are invariant under the whitening and the rotation)."""
    w, means, scales, shared, noise = inst
    fast = theory.mutual_information_upper_bounds(w, means, (scales, shared), noise, structure="scaled")
    full = theory.mutual_information_upper_bounds(w, means, scales[:, None, None] * shared, noise)
    bad = {k: (fast[k], full[k]) for k in full if not _close(fast[k], full[k])}
    assert not bad


def test_structure_is_declared_not_guessed():
    """Diagonal matrices passed as 'full' take the full route (same numbers); a (K, k) array passed
    as 'full' is an error, not silently read as variances."""
    w, mu = [0.5, 0.5], [[0.0, 1.0], [1.0, 0.0]]
    with pytest.raises(ValueError, match=r"covs must have 3 dimension\(s\); got shape \(2, 2\)"):
        theory.mutual_information_upper_bounds(w, mu, [[1.0, 2.0], [3.0, 4.0]], np.eye(2))
    with pytest.raises(ValueError, match="structure must be one of"):
        theory.mutual_information_upper_bounds(w, mu, [np.eye(2)] * 2, np.eye(2), structure="tied")


# --- push-forward -------------------------------------------------------------------------------

@given(gaussian_mixtures(dim=st.integers(1, 4), n_components=st.integers(1, 3)), st.integers(1, 6), st.data())
def test_affine_pushforward_is_the_definition(g, k, data):
    """Σ w_i N(Aμ_i + c, AΣ_iAᵀ), component by component with explicit products (exactly symmetric)."""
    A = np.asarray(data.draw(st.lists(st.floats(-2, 2), min_size=k * g.dim, max_size=k * g.dim))).reshape(k, g.dim)
    c = np.asarray(data.draw(st.lists(st.floats(-2, 2), min_size=k, max_size=k)))
    w, means, covs = theory.affine_pushforward(g, A, c)
    assert np.array_equal(w, g.weights)
    want_means = np.stack([A @ m + c for m in g.means])
    want_covs = np.stack([A @ S @ A.T for S in g.covs])
    # 1e-12: two orders of the same float64 products of O(1) numbers
    assert np.allclose(means, want_means, rtol=1e-12, atol=1e-12)
    assert np.allclose(covs, want_covs, rtol=1e-12, atol=1e-12 * max(1.0, np.abs(A).max() ** 2))
    assert np.array_equal(covs, np.swapaxes(covs, 1, 2))


def test_affine_pushforward_with_more_outputs_than_inputs_feeds_the_bounds():
    """k > d: singular covariances; the noise makes Thm 2 finite and the bounds exact for one component."""
    g = theory.GaussianMixture([1.0], [[0.0]], [[[1.0]]])
    w, means, covs = theory.affine_pushforward(g, [[1.0], [1.0]])
    assert np.linalg.matrix_rank(covs[0]) == 1
    u = theory.mutual_information_upper_bounds(w, means, covs, np.eye(2))
    # z = (x + e1, x + e2): I = ½ log|[[2, 1], [1, 2]]| = ½ log 3 for every route (exact)
    assert {k: round(u[k] - 0.5 * math.log(3.0), 14) for k in ("huber", "kl", "maxent")} == \
        {"huber": 0.0, "kl": 0.0, "maxent": 0.0}
    with pytest.raises(ValueError, match=r"c must be a scalar or have shape \(2,\)"):
        theory.affine_pushforward(g, [[1.0], [1.0]], c=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"A must have shape \(k, 1\)"):
        theory.affine_pushforward(g, np.ones((2, 2)))


# --- bounded memory: results do not depend on the block size ----------------------------------

def test_blocked_routines_match_unblocked():
    """With blocks of one row every Monte-Carlo routine gives the same numbers (1e-12: only the
    order of BLAS summations changes)."""
    rng = np.random.default_rng(3)
    g = theory.random_mixture(rng, 4, K=3)
    A = rng.normal(size=(2, 4))
    cn = theory.random_spd(rng, 2, 0.2, 1.0)
    x = g.sample(7, np.random.default_rng(0))
    z = x @ A.T + rng.normal(size=(7, 2))
    post = theory.mixture_posterior(g, A, cn)

    def everything():
        return [g.component_logpdf(x), g.score(x), post.mean(z), post.trace_cov(z), post.covariance(z),
                post.logpdf(x, z)]

    big = everything()
    with mock.patch.object(pw, "CHUNK_BYTES", 1):
        small = everything()
    differ = [i for i, (a, b) in enumerate(zip(big, small)) if not np.allclose(a, b, rtol=1e-12, atol=1e-12)]
    assert differ == []


# --- bad input: once at the boundary, failures name the component -------------------------------

I2 = np.eye(2)
BAD = np.array([[1.0, 2.0], [2.0, 1.0]])        # eigenvalues 3, -1


@pytest.mark.parametrize("call, message", [
    (lambda: theory.GaussianMixture([0.5, 0.25, 0.25], np.zeros((3, 2)), [I2, I2, BAD]),
     "covs[2] must be positive definite; got smallest eigenvalue -1"),
    (lambda: theory.mutual_information_upper_bounds([0.5, 0.5], np.zeros((2, 2)), [I2, BAD], I2),
     "covs[1] must be positive semidefinite; got smallest eigenvalue -1"),
    (lambda: theory.mutual_information_upper_bounds([0.5, 0.5], np.zeros((2, 2)), [I2, [[1, 1], [0, 1]]], I2),
     "covs[1] must be symmetric; got max |M - M^T| = 1"),
    (lambda: theory.gmm_mutual_information_bound([1.0], [BAD], I2),
     "covs[0] must be positive semidefinite; got smallest eigenvalue -1"),
    (lambda: theory.mutual_information_upper_bounds([1.0], [[0.0, 0.0]], [[-1.0, 1.0]], [1.0, 1.0], structure="diag"),
     "covs must hold non-negative variances"),
    (lambda: theory.mutual_information_upper_bounds([1.0], [[0.0, 0.0]], [[1.0, 1.0]], [[1.0, 0.5], [0.5, 1.0]],
                                                    structure="diag"),
     "noise_cov must be diagonal for structure='diag'"),
    (lambda: theory.mutual_information_upper_bounds([1.0], [[0.0, 0.0]], [[1.0, 1.0]], [1.0, 0.0], structure="diag"),
     "noise_cov must be positive (variances)"),
    (lambda: theory.mutual_information_upper_bounds([1.0], [[0.0, 0.0]], [I2], I2, structure="scaled"),
     "covs must be a pair (scales (K,), shared (k, k))"),
    (lambda: theory.mutual_information_upper_bounds([1.0], [[0.0, 0.0]], ([1.0], BAD), I2, structure="scaled"),
     "covs[1] (shared matrix) must be positive semidefinite; got smallest eigenvalue -1"),
    (lambda: theory.mutual_information_upper_bounds([1.0], [[0.0, 0.0]], ([-1.0], I2), I2, structure="scaled"),
     "covs[0] (scales) must be >= 0"),
    (lambda: theory.mixture_entropy_bounds(theory.GaussianMixture([1.0], [[0.0]], [[[1.0]]]), which="middle"),
     "which must be 'all', 'upper', 'lower' or names from"),
    (lambda: theory.mixture_entropy_bounds(theory.GaussianMixture([1.0], [[0.0]], [[[1.0]]]), alphas="fine"),
     "alphas must be None"),
])
def test_bad_input_names_argument_and_component(call, message):
    with pytest.raises(ValueError) as exc:
        call()
    assert message in str(exc.value)


def test_which_computes_only_what_is_asked():
    """A lower bound alone never factorises a component inverse; the upper bounds never touch pairs."""
    g = theory.GaussianMixture([0.5, 0.5], [[0.0, 0.0], [1.0, 0.0]], [I2, 2 * I2])
    with mock.patch.object(pw, "cholesky_pairs", side_effect=AssertionError("pairs")), \
            mock.patch.object(pw, "tridiagonal_pairs", side_effect=AssertionError("pairs")):
        up = theory.mixture_entropy_bounds(g, which="upper")
    assert sorted(up) == ["huber_upper", "kl_upper", "upper"]
    with mock.patch.object(pw, "full_components", side_effect=AssertionError("components")):
        low = theory.mixture_entropy_bounds(g, which=["elk_lower"])
    assert sorted(low) == ["elk_lower", "lower"]
    full = theory.mixture_entropy_bounds(g)
    assert up["kl_upper"] == full["kl_upper"] and low["elk_lower"] == full["elk_lower"]


@pytest.mark.slow
def test_paper_dimensions_agree_with_the_old_implementation():
    """d = 512, K = 30 (the CEM paper's features), rank-64 component covariances plus noise: every
    bound equals the old implementation (1e-10 relative).  Timings: benchmarks/theory_scale.py."""
    rng = np.random.default_rng(5)
    d, K = 512, 30
    G = rng.normal(size=(K, d, 64)) / 8.0
    covs = G @ np.swapaxes(G, 1, 2)
    w, means = rng.dirichlet(np.full(K, 2.0)), rng.normal(scale=0.05, size=(K, d))
    noise = theory.random_spd(rng, d, 0.5, 1.5)
    new = theory.mutual_information_upper_bounds(w, means, covs, noise)
    old = old_mutual_information_upper_bounds(w, means, covs, noise)
    assert not {k: (new[k], old[k]) for k in old if not _close(new[k], old[k])}
    g = theory.GaussianMixture(w, means, covs + noise)
    new = theory.mixture_entropy_bounds(g, alphas="grid")
    old = old_mixture_entropy_bounds(g.weights, g.means, g.covs, np.linspace(0, 1, 21))
    keys = ("huber_upper", "kl_upper", "elk_lower", "chernoff_lower")
    assert not {k: (new[k], old[k]) for k in keys if not _close(new[k], old[k])}
