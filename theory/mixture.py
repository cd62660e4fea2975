r"""Gaussian mixtures: density, sampling, entropy (Monte Carlo and bounds), exact posterior.

* :class:`GaussianMixture` -- validated :math:`p(x) = \sum_i w_i \mathcal N(x; \mu_i, \Sigma_i)`.
* :func:`affine_pushforward` -- the mixture :math:`\sum_i w_i\mathcal N(A\mu_i + c, A\Sigma_iA^\top)`
  of :math:`Ax + c` (covariances may be singular: more outputs than inputs).
* :func:`mixture_entropy_mc` -- :math:`H = -E\log p(x)` by Monte Carlo, with a standard error;
  :func:`mixture_entropy_lower_limit` -- a one-sided confidence limit from the same kind of draws
  that does not rely on the CLT (a confidence floor's H(x), issue 18).
* :func:`mixture_entropy_bounds` -- closed-form bounds on the mixture entropy, each computed only
  when asked for (``which=``):

  - ``huber_upper`` (Huber, Bailey, Durrant-Whyte & Hanebeck 2008):
    :math:`\sum_i w_i(-\log w_i + H_i)`, :math:`H_i` the component entropies;
  - ``kl_upper`` (Kolchinsky & Tracey 2017, pairwise distance :math:`D = \mathrm{KL}`):
    :math:`\sum_i w_i H_i - \sum_i w_i\log\sum_j w_j e^{-\mathrm{KL}(p_i\|p_j)}`;
  - ``chernoff_lower`` (Kolchinsky & Tracey 2017, :math:`D = C_\alpha`, the Chernoff
    :math:`\alpha`-divergence :math:`-\log\int p_i^\alpha p_j^{1-\alpha}`), at
    :math:`\alpha=\tfrac12` (the Bhattacharyya bound) unless a grid of :math:`\alpha` is given;
  - ``elk_lower`` (Huber et al. 2008, Jensen on the expected likelihood kernel):
    :math:`-\sum_i w_i \log\sum_j w_j \mathcal N(\mu_i; \mu_j, \Sigma_i + \Sigma_j)`.

  Order: ``elk_lower``, ``chernoff_lower`` :math:`\le H \le` ``kl_upper`` :math:`\le` ``huber_upper``.
  Neither lower bound dominates the other.  Costs at d = 512, K = 30 and the algorithms: see
  ``theory/_pairwise.py`` and ``benchmarks/theory_scale.py``.
* :class:`MixturePosterior` -- for a mixture prior seen through :math:`z = Ax + \varepsilon`,
  :math:`\varepsilon\sim\mathcal N(0,\Sigma_n)`, the posterior is again a mixture (docs/ground-truths.md):

  .. math::
     p(x|z) = \sum_i w_i(z)\,\mathcal N(x; m_i(z), P_i),\quad
     P_i = (\Sigma_i^{-1} + A^\top\Sigma_n^{-1}A)^{-1},\quad
     m_i(z) = \mu_i + P_iA^\top\Sigma_n^{-1}(z - A\mu_i),

  .. math:: w_i(z) \propto w_i\,\mathcal N(z; A\mu_i, A\Sigma_iA^\top + \Sigma_n),

  so :math:`E[x|z]` is exact and the MMSE of CEM Prop. 1 is a Monte-Carlo average of the exact
  :math:`\operatorname{Tr}\operatorname{Cov}(x|z)` (:func:`mixture_mmse_mc`).
* :func:`mixture_mmse_importance_sampling` -- the same MMSE by brute force (self-normalised
  importance sampling with the prior as proposal), an independent check of the closed form.

Monte-Carlo routines work through the samples in blocks, so their temporaries stay below
64 MiB (``theory._pairwise.CHUNK_BYTES``) whatever the number of samples, components and dimension.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np
from scipy.special import logsumexp

from . import _pairwise as pw
from ._validate import (Estimate, as_array, as_count, as_cov, as_matrix, as_points, as_rng,
                        as_weights, cholesky, inv_lower, log_base, logdet_chol)
from .gaussian import channel_svd

__all__ = [
    "GaussianMixture",
    "affine_pushforward",
    "mixture_entropy_mc",
    "EntropyLimit",
    "mixture_entropy_lower_limit",
    "mixture_entropy_bounds",
    "ENTROPY_BOUNDS",
    "MixturePosterior",
    "mixture_posterior",
    "mixture_mmse_mc",
    "ImportanceEstimate",
    "mixture_mmse_importance_sampling",
    "mixture_conditional_entropy_mc",
    "mixture_prior_fisher_mc",
]

LOG_2PI = math.log(2.0 * math.pi)
LOG_2PI_E = math.log(2.0 * math.pi * math.e)

#: the bounds :func:`mixture_entropy_bounds` can compute, upper bounds first
ENTROPY_BOUNDS = ("huber_upper", "kl_upper", "elk_lower", "chernoff_lower")
_UPPER = ENTROPY_BOUNDS[:2]
_LOWER = ENTROPY_BOUNDS[2:]
#: the α grid of ``alphas="grid"``: 0, 0.05, ..., 1
ALPHA_GRID = np.linspace(0.0, 1.0, 21)


def _blocks(n: int, bytes_per_row: int):
    """Slices of ``range(n)`` whose per-row temporaries fit in one block of CHUNK_BYTES."""
    step = pw.rows_per_block(bytes_per_row)
    for a in range(0, n, step):
        yield slice(a, min(n, a + step))


class GaussianMixture:
    r"""A validated Gaussian mixture :math:`\sum_i w_i\,\mathcal N(\mu_i, \Sigma_i)` in float64.

    Parameters
    ----------
    weights : array_like, shape (K,)
        On the simplex (non-negative, summing to 1 within 1e-8).
    means : array_like, shape (K, d)
    covs : array_like, shape (K, d, d)
        Symmetric positive definite (factorised once here; an error names the component).

    Examples
    --------
    >>> g = GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[[1.0]], [[1.0]]])
    >>> g.dim, g.n_components
    (1, 2)
    >>> float(g.covariance()[0, 0])      # 1 + Var of the means
    2.0
    >>> round(float(g.logpdf([0.0]) + 0.5 * np.log(2 * np.pi) + 0.5), 12)   # both terms equal N(1; 0, 1)
    0.0
    """

    def __init__(self, weights, means, covs):
        m = as_array(means, "means", ndim=2)
        K, d = m.shape
        w = as_weights(weights, "weights")
        if w.shape[0] != K:
            raise ValueError(f"weights must have one entry per component: means has K={K} rows; "
                             f"got {w.shape[0]} weights")
        c = as_array(covs, "covs", ndim=3)
        if c.shape != (K, d, d):
            raise ValueError(f"covs must have shape (K, d, d) = ({K}, {d}, {d}) to match means; got {c.shape}")
        c, L = as_cov(c, "covs", batch=True, return_chol=True)
        self.weights = w
        self.means = m
        self.covs = c
        self._chols = L
        self._logdets = logdet_chol(L)
        self._inv_chols_cache = None
        with np.errstate(divide="ignore"):
            self._logw = np.log(w)
        for arr in (self.weights, self.means, self.covs, self._chols):
            arr.setflags(write=False)

    @property
    def _inv_chols(self) -> np.ndarray:
        """L_i⁻¹ (K, d, d), computed on first use (density evaluations and lower bounds need it)."""
        if self._inv_chols_cache is None:
            W = inv_lower(self._chols)
            W.setflags(write=False)
            self._inv_chols_cache = W
        return self._inv_chols_cache

    # --- basic properties -------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    def __repr__(self) -> str:
        return f"GaussianMixture(n_components={self.n_components}, dim={self.dim})"

    def mean(self) -> np.ndarray:
        """Mixture mean :math:`\\sum_i w_i\\mu_i`, shape (d,)."""
        return self.weights @ self.means

    def covariance(self) -> np.ndarray:
        r"""Mixture covariance :math:`\sum_i w_i(\Sigma_i + \mu_i\mu_i^\top) - \bar\mu\bar\mu^\top`."""
        mu = self.mean()
        dm = self.means - mu
        c = np.tensordot(self.weights, self.covs, axes=1) + (self.weights[:, None] * dm).T @ dm
        return 0.5 * (c + c.T)

    def component_entropies(self) -> np.ndarray:
        """Entropies :math:`\\tfrac12\\log((2\\pi e)^d|\\Sigma_i|)` of the components (nats), shape (K,)."""
        return 0.5 * (self.dim * LOG_2PI_E + self._logdets)

    # --- densities --------------------------------------------------------------------------
    def component_logpdf(self, x) -> np.ndarray:
        """log N(x; μ_i, Σ_i) for each point and component, shape (N, K)."""
        xx, _ = as_points(x, "x", self.dim)
        K, d = self.n_components, self.dim
        W = self._inv_chols
        out = np.empty((xx.shape[0], K))
        for s in _blocks(xx.shape[0], 16 * K * d):
            y = np.matmul(xx[None, s] - self.means[:, None, :], np.swapaxes(W, 1, 2))   # (K, n, d)
            maha = np.einsum("knd,knd->nk", y, y)
            out[s] = -0.5 * (d * LOG_2PI + self._logdets[None, :] + maha)
        return out

    def logpdf(self, x) -> np.ndarray | float:
        """log p(x) for x of shape (N, d) -> (N,), or a single point of shape (d,) -> float."""
        _, single = as_points(x, "x", self.dim)
        lp = logsumexp(self.component_logpdf(x) + self._logw[None, :], axis=1)
        return float(lp[0]) if single else lp

    def responsibilities(self, x) -> np.ndarray:
        """Posterior component probabilities p(i | x), shape (N, K)."""
        lj = self.component_logpdf(x) + self._logw[None, :]
        return np.exp(lj - logsumexp(lj, axis=1, keepdims=True))

    def score(self, x) -> np.ndarray:
        r"""Gradient :math:`\nabla_x\log p(x) = -\sum_i r_i(x)\Sigma_i^{-1}(x-\mu_i)`, shape (N, d)."""
        xx, single = as_points(x, "x", self.dim)
        r = self.responsibilities(xx)
        W = self._inv_chols
        K, d = self.n_components, self.dim
        g = np.empty_like(xx)
        for s in _blocks(xx.shape[0], 24 * K * d):
            y = np.matmul(xx[None, s] - self.means[:, None, :], np.swapaxes(W, 1, 2))   # L_i⁻¹(x − μ_i)
            v = np.matmul(y, W)                                                           # Σ_i⁻¹(x − μ_i)
            g[s] = -np.einsum("nk,knd->nd", r[s], v)
        return g[0] if single else g

    # --- sampling and transforms ------------------------------------------------------------
    def sample(self, n, rng, return_labels: bool = False):
        """Draw ``n`` samples with the numpy Generator ``rng``; shape (n, d) (and labels (n,))."""
        n = as_count(n, "n", minimum=1)
        rng = as_rng(rng)
        labels = rng.choice(self.n_components, size=n, p=self.weights)
        eps = rng.standard_normal((n, self.dim))
        x = np.empty((n, self.dim))
        for i in range(self.n_components):
            idx = np.flatnonzero(labels == i)
            if idx.size:
                x[idx] = self.means[i] + eps[idx] @ self._chols[i].T
        return (x, labels) if return_labels else x

    def linear_transform(self, A, cov_noise=None) -> "GaussianMixture":
        r"""Distribution of :math:`Ax + \varepsilon`: weights w_i, means Aμ_i, covs AΣ_iAᵀ + Σ_n.

        Without ``cov_noise`` the transformed covariances must still be positive definite
        (``A`` of full row rank); :func:`affine_pushforward` returns the possibly singular ones.
        """
        Am = as_matrix(A, "A", cols=self.dim)
        covs = np.matmul(np.matmul(Am, self.covs), Am.T)
        if cov_noise is not None:
            covs = covs + as_cov(cov_noise, "cov_noise", dim=Am.shape[0])[None]
        return GaussianMixture(self.weights, self.means @ Am.T, covs)


def _as_gmm(gmm, name="gmm") -> GaussianMixture:
    if not isinstance(gmm, GaussianMixture):
        raise ValueError(f"{name} must be a theory.GaussianMixture; got {type(gmm).__name__}")
    return gmm


def affine_pushforward(gmm: GaussianMixture, A, c=0.0):
    r"""The mixture of :math:`\hat z = Ax + c` for :math:`x \sim` ``gmm``, as arrays.

    .. math:: \hat z \sim \sum_i w_i\,\mathcal N(A\mu_i + c,\; A\Sigma_iA^\top)

    Unlike :meth:`GaussianMixture.linear_transform` the covariances may be singular (an encoder
    with more outputs than inputs): Theorem 2 and :func:`theory.mutual_information_upper_bounds`
    need them only with the noise added.  The covariances are symmetrised exactly.

    Parameters
    ----------
    gmm : GaussianMixture (K components in d dimensions)
    A : array_like, shape (k, d)
    c : float or array_like, shape (k,)

    Returns
    -------
    weights : (K,), means : (K, k), covs : (K, k, k) positive semidefinite

    Examples
    --------
    >>> g = GaussianMixture([0.25, 0.75], [[0.0], [2.0]], [[[1.0]], [[4.0]]])
    >>> w, m, S = affine_pushforward(g, [[1.0], [2.0]], c=[0.0, 1.0])
    >>> m
    array([[0., 1.],
           [2., 5.]])
    >>> S[1]                            # 4·[1, 2]ᵀ[1, 2]: rank one
    array([[ 4.,  8.],
           [ 8., 16.]])
    """
    g = _as_gmm(gmm)
    Am = as_matrix(A, "A", cols=g.dim)
    k = Am.shape[0]
    cv = as_array(c, "c", ndim=(0, 1))
    if np.ndim(cv) == 1 and cv.shape != (k,):
        raise ValueError(f"c must be a scalar or have shape ({k},) (one offset per row of A); got {cv.shape}")
    covs = np.matmul(np.matmul(Am, g.covs), Am.T)
    covs = 0.5 * (covs + np.swapaxes(covs, 1, 2))
    return g.weights.copy(), g.means @ Am.T + cv, covs


def mixture_entropy_mc(gmm: GaussianMixture, n, rng, base=None) -> Estimate:
    r"""Entropy :math:`H = -E\log p(x)` of a mixture by Monte Carlo, ± its standard error.

    Unbiased: the mean of :math:`-\log p(x_j)` over ``n`` i.i.d. samples; ``stderr`` is the
    sample standard deviation over :math:`\sqrt n`.

    Parameters
    ----------
    gmm : GaussianMixture
        The prior (``weights (K,)``, ``means (K, d)``, ``covs (K, d, d)``).
    n : int
        Number of samples (≥ 2).
    rng : numpy.random.Generator
        The random stream.
    base : float, optional
        Logarithm base (nats by default).

    Returns
    -------
    Estimate
        ``value`` ± ``stderr`` from ``n`` samples.

    Examples
    --------
    >>> g = GaussianMixture([1.0], [[0.0]], [[[1.0]]])
    >>> e = mixture_entropy_mc(g, 20000, np.random.default_rng(0))
    >>> bool(abs(e.value - 0.5 * np.log(2 * np.pi * np.e)) < 5 * e.stderr)
    True
    """
    g = _as_gmm(gmm)
    n = as_count(n, "n")
    x = g.sample(n, as_rng(rng))
    v = -g.logpdf(x) / log_base(base)
    return Estimate(float(v.mean()), float(v.std(ddof=1) / math.sqrt(n)), n)


@dataclass(frozen=True)
class EntropyLimit:
    """A one-sided lower confidence limit on a mixture's entropy (:func:`mixture_entropy_lower_limit`).

    ``value`` holds with probability ≥ 1 − ``alpha`` over the draws; ``mean`` ± ``stderr`` is the
    Monte-Carlo estimate from the same ``n`` draws; ``second_moment`` is the proven bound V on
    E[(−log p(x) − ``shift``)²] the limit uses.
    """

    value: float
    mean: float
    stderr: float
    n: int
    alpha: float
    second_moment: float
    shift: float

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("value", "mean", "stderr", "n", "alpha", "second_moment", "shift")}


def mixture_entropy_lower_limit(gmm: GaussianMixture, n, rng, alpha: float = 1e-3, base=None) -> EntropyLimit:
    r"""A lower confidence limit on :math:`H(x)` from ``n`` draws that does not rely on the CLT.

    With :math:`c = -\log\sum_j w_j(2\pi)^{-d/2}|\Sigma_j|^{-1/2}` (so :math:`p \le e^{-c}`), the
    draws :math:`X = -\log p(x) - c` are non-negative, and for a draw from component j,
    :math:`X \le a_j + Q/2` with :math:`a_j = -\log w_j + \tfrac12(d\log 2\pi + \log|\Sigma_j|) - c
    \ge 0` and :math:`Q\sim\chi^2_d` (drop all other terms of the mixture).  Hence

    .. math:: E X^2 \le V = \sum_j w_j\Big(a_j^2 + a_j d + \frac{d(d+2)}4\Big)

    exactly, and the one-sided inequality for sums of independent non-negative variables (Maurer
    2003, "A bound on the deviation probability for sums of non-negative random variables", JIPAM
    4(1), art. 15: :math:`P(E S - S \ge t) \le \exp(-t^2/(2\sum E X_i^2))`) gives, with
    probability at least 1 − α,

    .. math:: H(x) \ge \overline{-\log p} - \sqrt{2V\log(1/\alpha)/n}.

    Valid for every n ≥ 1 (no normal approximation); the price is the width, about
    :math:`\tfrac d2\sqrt{2\log(1/\alpha)/n}` nats, which Theorem 1 turns into a factor
    :math:`\exp(-\sqrt{2\log(1/\alpha)/n})` on the MSE floor whatever d is (2.6 % at n = 20000,
    α = 10⁻³).

    Parameters
    ----------
    gmm : GaussianMixture
        The distribution (``weights (K,)``, ``means (K, d)``, ``covs (K, d, d)``).
    n : int
        Draws.
    rng : numpy.random.Generator
        The random stream.
    alpha : float
        The limit fails with probability at most ``alpha``.
    base : float, optional
        Logarithm base (nats by default).

    Returns
    -------
    EntropyLimit
        ``value`` (the limit), ``mean``, ``stderr``, ``second_moment`` (V), ``n``, ``alpha``.

    Examples
    --------
    N(0, 1): H = ½ log(2πe); c = ½ log 2π, a = 0, V = ¾.

    >>> g = GaussianMixture([1.0], [[0.0]], [[[1.0]]])
    >>> lim = mixture_entropy_lower_limit(g, 20000, np.random.default_rng(0))
    >>> h = 0.5 * np.log(2 * np.pi * np.e)
    >>> lim.second_moment, bool(h - 0.03 < lim.value < h), lim.n
    (0.75, True, 20000)
    """
    g = _as_gmm(gmm)
    n = as_count(n, "n", minimum=1)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha: expected a number in (0, 1), got {alpha!r}")
    d = g.dim
    keep = g.weights > 0
    w, logdets = g.weights[keep], g._logdets[keep]
    log_peak = np.log(w) - 0.5 * (d * LOG_2PI + logdets)                 # log(w_j · sup N_j)
    c = -float(logsumexp(log_peak))
    a = np.maximum(-log_peak - c, 0.0)
    V = float(np.sum(w * (a * a + a * d + d * (d + 2) / 4.0)))
    v = -g.logpdf(g.sample(n, as_rng(rng)))
    mean = float(v.mean())
    se = float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    lb = log_base(base)
    lim = mean - math.sqrt(2.0 * V * math.log(1.0 / alpha) / n)
    return EntropyLimit(lim / lb, mean / lb, se / lb, n, float(alpha), V, c)


def _which(which) -> tuple[str, ...]:
    if isinstance(which, str):
        groups = {"all": ENTROPY_BOUNDS, "upper": _UPPER, "lower": _LOWER}
        if which in groups:
            return groups[which]
        names = (which,)
    else:
        try:
            names = tuple(which)
        except TypeError:
            names = (which,)
    bad = [n for n in names if n not in ENTROPY_BOUNDS]
    if bad or not names:
        raise ValueError(f"which must be 'all', 'upper', 'lower' or names from {ENTROPY_BOUNDS}; "
                         f"got {which!r}")
    return tuple(n for n in ENTROPY_BOUNDS if n in names)


def _alphas(alphas) -> np.ndarray:
    if alphas is None:
        return np.array([0.5])
    if isinstance(alphas, str):
        if alphas != "grid":
            raise ValueError(f"alphas must be None (α = ½), 'grid' (0, 0.05, ..., 1) or values in [0, 1]; "
                             f"got {alphas!r}")
        return ALPHA_GRID.copy()
    a = as_array(alphas, "alphas", ndim=(0, 1)).reshape(-1)
    if np.any((a < 0) | (a > 1)):
        raise ValueError(f"alphas must lie in [0, 1]; got min {a.min()}, max {a.max()}")
    return a


def mixture_entropy_bounds(gmm: GaussianMixture, alphas=None, base=None, *, which="all") -> dict:
    r"""Closed-form lower and upper bounds on the entropy of a Gaussian mixture, only those asked for.

    Returns a dict with the requested bounds among ``huber_upper``, ``kl_upper``, ``elk_lower``,
    ``chernoff_lower`` (with ``chernoff_alpha``, the α attaining it), and ``upper`` / ``lower``:
    the tightest computed bound on that side (with the default ``which="all"``: ``upper`` =
    ``kl_upper``, never looser than Huber; ``lower`` = max of the two lower bounds).  Formulas in
    the module docstring; references: Huber et al. (2008), "On entropy approximation for Gaussian
    mixture random vectors"; Kolchinsky & Tracey (2017), "Estimating mixture entropy with pairwise
    distances", Thm 2 (lower, Chernoff-α) and Thm 1 (upper, KL).

    Parameters
    ----------
    gmm : GaussianMixture
    alphas : None, "grid" or array_like, optional
        α values for the Chernoff bound, which takes the best of them: ``None`` (default) is
        α = ½ (Bhattacharyya), ``"grid"`` the 21 points 0, 0.05, ..., 1.
    base : float, optional
    which : {"all", "upper", "lower"}, a bound name, or a list of bound names
        Compute only these (costs, K components, d dims: upper bounds O(K d³ + K² d²); lower
        bounds one d×d factorisation per pair of components).

    Returns
    -------
    dict
        The bounds asked for (floats, in units of ``base``).

    Examples
    --------
    A single Gaussian: the Huber, KL and Chernoff bounds equal its entropy log(2πe) in d = 2;
    the ELK bound is log(4π) (Jensen's gap).

    >>> g = GaussianMixture([1.0], [[0.0, 0.0]], [np.eye(2)])
    >>> b = mixture_entropy_bounds(g)
    >>> [round(float(b[k] - np.log(2 * np.pi * np.e)), 12) for k in ("huber_upper", "kl_upper", "chernoff_lower")]
    [0.0, 0.0, 0.0]
    >>> round(float(b["elk_lower"] - np.log(4 * np.pi)), 12)
    0.0

    Two far-apart halves in d = 1 (every pairwise divergence is ~10⁵, so ``exp(-D)`` underflows to
    0): the pairwise bounds reach Huber's ``log 2 + ½ log(2πe)``; ELK's kernel has variance 1 + 1,
    so it gives ``log 2 + ½ log(4π)``.

    >>> g2 = GaussianMixture([0.5, 0.5], [[-500.0], [500.0]], [[[1.0]], [[1.0]]])
    >>> b2 = mixture_entropy_bounds(g2, alphas="grid")
    >>> [round(float(b2[k] - np.log(2) - 0.5 * np.log(2 * np.pi * np.e)), 12)
    ...  for k in ("huber_upper", "kl_upper", "chernoff_lower")]
    [0.0, 0.0, 0.0]
    >>> round(float(b2["elk_lower"] - np.log(2) - 0.5 * np.log(4 * np.pi)), 12)
    0.0
    >>> sorted(mixture_entropy_bounds(g2, which="upper"))
    ['huber_upper', 'kl_upper', 'upper']
    """
    g = _as_gmm(gmm)
    names = _which(which)
    a = _alphas(alphas)
    keep = g.weights > 0                       # empty components drop out of every bound
    if keep.all():
        keep = slice(None)                     # no copies of the (K, d, d) arrays
    w, means, covs = g.weights[keep], g.means[keep], g.covs[keep]
    chols, logdets = g._chols[keep], g._logdets[keep]
    d = g.dim
    comp_h = 0.5 * (d * LOG_2PI_E + logdets)
    out: dict[str, float] = {}
    if "huber_upper" in names:
        out["huber_upper"] = pw.huber_upper(w, comp_h)
    if "kl_upper" in names:
        _, KL = pw.full_components(means, covs, chols=chols)
        out["kl_upper"] = float(pw.kt_bound(w, comp_h, KL))
    chern, elk = "chernoff_lower" in names, "elk_lower" in names
    best_alpha = None
    if chern or elk:
        betas = pw.betas_for(a if chern else [], elk)
        if len(betas) >= pw.TRIDIAGONAL_MIN_BETAS:
            W = g._inv_chols[keep]
            cond = np.trace(covs, axis1=1, axis2=2) * np.einsum("kij,kij->k", W, W)   # ≥ cond₂(Σ_i)
            lS, mS = pw.tridiagonal_pairs(means, covs, chols, cond, betas)
        else:
            lS, mS = pw.cholesky_pairs(means, covs, betas)
        if elk:
            out["elk_lower"] = pw.elk_lower(w, logdets, d, betas, lS, mS)
        if chern:
            C = pw.chernoff_matrices(a, betas, lS, mS, logdets)
            vals = np.atleast_1d(pw.kt_bound(w, comp_h, C))
            best = int(np.argmax(vals))
            out["chernoff_lower"] = float(vals[best])
            best_alpha = float(a[best])
    lb = log_base(base)
    out = {k: v / lb for k, v in out.items()}
    if best_alpha is not None:
        out["chernoff_alpha"] = best_alpha
    lowers = [out[k] for k in _LOWER if k in out]
    uppers = [out[k] for k in _UPPER if k in out]
    if lowers:
        out["lower"] = max(lowers)
    if uppers:
        out["upper"] = min(uppers)
    return out


class MixturePosterior:
    r"""Exact posterior of a Gaussian-mixture prior through :math:`z = Ax + \varepsilon`.

    See the module docstring for the closed form. Attributes: ``prior`` (GaussianMixture of x),
    ``A`` (k, d), ``cov_noise`` (k, k), ``covs`` (K, d, d) the component posterior covariances
    :math:`P_i`, ``gains`` (K, d, k) the matrices :math:`P_iA^\top\Sigma_n^{-1}`, ``marginal``
    (GaussianMixture of z, built on demand).  Methods taking many z work through them in blocks
    (bounded memory).

    Stable at any scale (issue 18): per component the whitened channel
    :math:`M_i = L_n^{-1}AL_i = U\,\mathrm{diag}(s)V^\top` (:func:`theory.gaussian.channel_svd`)
    gives :math:`P_i = L_iV(I+S^2)^{-1}V^\top L_i^\top`, the gain
    :math:`L_iV\,S(I+S^2)^{-1}U^\top L_n^{-1}` and the weights' covariances
    :math:`I + M_iM_i^\top` (:meth:`log_marginal_components`) without ever adding
    :math:`A^\top\Sigma_n^{-1}A` to :math:`\Sigma_i^{-1}` or :math:`A\Sigma_iA^\top` to
    :math:`\Sigma_n`; ‖A‖/σ from 10⁻⁶ to 10¹⁰, rank-deficient A and duplicated rows are tested
    against mpmath.

    Examples
    --------
    One component reduces to the linear-Gaussian posterior:

    >>> g = GaussianMixture([1.0], [[0.0]], [[[1.0]]])
    >>> post = mixture_posterior(g, np.eye(1), 0.25 * np.eye(1))
    >>> post.mean(np.array([[1.0]]))
    array([[0.8]])
    >>> post.covs
    array([[[0.2]]])
    """

    def __init__(self, prior: GaussianMixture, A, cov_noise):
        self.prior = _as_gmm(prior, "prior")
        self.A = as_matrix(A, "A", cols=self.prior.dim)
        k = self.A.shape[0]
        self.cov_noise, Ln = as_cov(cov_noise, "cov_noise", dim=k, return_chol=True)
        self._Wn = inv_lower(Ln)                                          # Ln⁻¹: whitens z
        B = self._Wn @ self.A                                             # Ln⁻¹A (k, d)
        K, d = self.prior.n_components, self.prior.dim
        r = min(k, d)
        covs = np.empty((K, d, d))
        gains = np.empty((K, d, k))
        prec_factors = np.empty((K, d, d))
        tr = np.empty(K)
        self._U = np.empty((K, k, r))                                     # left singular vectors
        self._s = np.empty((K, d))                                        # singular values, 0-padded
        for i in range(K):
            L = self.prior._chols[i]
            U, sv, V = channel_svd(B @ L)                                 # M_i = Ln⁻¹ A L_i = U S Vᵀ
            s2 = sv * sv
            LV = L @ V
            F = LV / np.sqrt(1.0 + s2)[None, :]                           # P_i = F Fᵀ
            FF = F @ F.T
            covs[i] = 0.5 * (FF + FF.T)
            tr[i] = float(np.sum(F * F))                                  # Tr P_i: a sum of squares
            gains[i] = (LV[:, :r] * (sv[:r] / (1.0 + s2[:r]))[None, :]) @ (U.T @ self._Wn)   # P_i Aᵀ Σn⁻¹
            # P_i⁻¹ = R Rᵀ with R = L_i⁻ᵀ V diag(√(1 + s²)): rows of (x − m)ᵀR give the Mahalanobis norm
            prec_factors[i] = np.linalg.solve(L.T, V) * np.sqrt(1.0 + s2)[None, :]
            self._U[i], self._s[i] = U, sv
        self.covs = covs
        self.gains = gains
        self._prec_chols = prec_factors                                   # R_i R_iᵀ = P_i⁻¹ (not triangular)
        self._cov_logdets = self.prior._logdets - np.sum(np.log1p(self._s ** 2), axis=1)   # log|P_i|
        self._marg_logdets = np.sum(np.log1p(self._s ** 2), axis=1)      # log|I + M_iM_iᵀ|
        self._tr_covs = tr
        self._Amu = self.prior.means @ self.A.T                          # (K, k)
        self._marginal = None

    @property
    def marginal(self) -> GaussianMixture:
        """The law of z, a :class:`GaussianMixture` (built on first use; it needs AΣ_iAᵀ + Σn
        positive definite *as computed*, which fails at extreme scales — the posterior itself never
        builds it, see :meth:`log_marginal_components`)."""
        if self._marginal is None:
            self._marginal = self.prior.linear_transform(self.A, self.cov_noise)
        return self._marginal

    @property
    def dim(self) -> int:
        return self.prior.dim

    def _z(self, z):
        return as_points(z, "z", self.A.shape[0])

    def _row_bytes(self) -> int:
        K, d, k = self.prior.n_components, self.dim, self.A.shape[0]
        return 8 * K * (3 * d + 2 * k)

    def log_marginal_components(self, z) -> np.ndarray:
        r"""log w_i + log N(ζ; ν_i, I + M_iM_iᵀ) per z and component, shape (N, K), in whitened units.

        ζ = L_n⁻¹z, ν_i = L_n⁻¹Aμ_i; equal to :math:`\log w_i\,\mathcal N(z; A\mu_i,
        A\Sigma_iA^\top + \Sigma_n)` up to the constant :math:`\log|L_n|` shared by all components.
        With :math:`e = \zeta - \nu_i` and :math:`M_i = U\,\mathrm{diag}(s)V^\top`, the quadratic
        form is :math:`\sum_j (u_j^\top e)^2/(1+s_j^2) + \|e - UU^\top e\|^2` (the second term only
        when k > d): the residual is formed as a vector before its norm, so a ζ of size 10¹⁰ with an
        O(1) null-space part keeps that part to ~10⁻⁶.
        """
        zz, _ = self._z(z)
        k = self.A.shape[0]
        K = self.prior.n_components
        r = self._U.shape[2]
        zw = zz @ self._Wn.T                                              # ζ (n, k)
        out = np.empty((zz.shape[0], K))
        for i in range(K):
            e = zw - (self._Amu[i] @ self._Wn.T)[None, :]
            c = e @ self._U[i]                                           # (n, r)
            q = np.sum(c * c / (1.0 + self._s[i, :r] ** 2)[None, :], axis=1)
            if k > r:
                res = e - c @ self._U[i].T
                q = q + np.einsum("nk,nk->n", res, res)
            out[:, i] = self.prior._logw[i] - 0.5 * (k * LOG_2PI + self._marg_logdets[i] + q)
        return out

    def weights(self, z) -> np.ndarray:
        """Posterior component weights w_i(z), shape (N, K)."""
        lj = self.log_marginal_components(z)
        return np.exp(lj - logsumexp(lj, axis=1, keepdims=True))

    def _cm(self, zz: np.ndarray) -> np.ndarray:
        """m_i(z) for a block of z (n, k): shape (n, K, d)."""
        resid = zz[None, :, :] - self._Amu[:, None, :]                  # (K, n, k)
        cm = np.matmul(resid, np.swapaxes(self.gains, 1, 2))            # (K, n, d)
        cm += self.prior.means[:, None, :]
        return np.swapaxes(cm, 0, 1)

    def component_means(self, z) -> np.ndarray:
        """Component posterior means m_i(z), shape (N, K, d) (the whole array: N·K·d floats)."""
        zz, _ = self._z(z)
        return self._cm(zz)

    def mean(self, z) -> np.ndarray:
        """Exact posterior mean E[x|z], shape (N, d) (or (d,) for a single z of shape (k,))."""
        zz, single = self._z(z)
        w = self.weights(zz)
        m = np.empty((zz.shape[0], self.dim))
        for s in _blocks(zz.shape[0], self._row_bytes()):
            m[s] = np.einsum("ni,nid->nd", w[s], self._cm(zz[s]))
        return m[0] if single else m

    def trace_cov(self, z) -> np.ndarray:
        r"""Exact :math:`\operatorname{Tr}\operatorname{Cov}(x|z) = \sum_i w_i(z)\big(\operatorname{Tr}P_i
        + \|m_i(z) - E[x|z]\|^2\big)` per z, shape (N,)."""
        zz, _ = self._z(z)
        w = self.weights(zz)
        out = np.empty(zz.shape[0])
        for s in _blocks(zz.shape[0], self._row_bytes()):
            cm = self._cm(zz[s])
            m = np.einsum("ni,nid->nd", w[s], cm)
            dev = cm - m[:, None, :]
            out[s] = w[s] @ self._tr_covs + np.einsum("ni,nid,nid->n", w[s], dev, dev)
        return out

    def covariance(self, z) -> np.ndarray:
        """Exact Cov(x|z) per z (law of total variance), shape (N, d, d)."""
        zz, _ = self._z(z)
        w = self.weights(zz)
        d = self.dim
        out = np.empty((zz.shape[0], d, d))
        for s in _blocks(zz.shape[0], self._row_bytes() + 8 * d * d):
            cm = self._cm(zz[s])
            m = np.einsum("ni,nid->nd", w[s], cm)
            dm = cm - m[:, None, :]
            out[s] = (np.tensordot(w[s], self.covs, axes=1)
                      + np.einsum("ni,nid,nie->nde", w[s], dm, dm))
        return out

    def logpdf(self, x, z) -> np.ndarray:
        """log p(x | z) for paired rows of x (N, d) and z (N, k), shape (N,)."""
        zz, _ = self._z(z)
        xx, _ = as_points(x, "x", self.dim)
        if xx.shape[0] != zz.shape[0]:
            raise ValueError(f"x and z must have the same number of rows; got {xx.shape[0]} and {zz.shape[0]}")
        lj = self.log_marginal_components(zz)
        lw = lj - logsumexp(lj, axis=1, keepdims=True)
        d = self.dim
        out = np.empty(zz.shape[0])
        for s in _blocks(zz.shape[0], 2 * self._row_bytes()):
            diff = xx[s][:, None, :] - self._cm(zz[s])                     # (n, K, d)
            y = np.matmul(np.swapaxes(diff, 0, 1), self._prec_chols)      # (K, n, d): rows (x − m_i)ᵀR_i
            q = np.einsum("knd,knd->nk", y, y)
            comp = -0.5 * (d * LOG_2PI + self._cov_logdets[None, :] + q)
            out[s] = logsumexp(lw[s] + comp, axis=1)
        return out


def mixture_posterior(gmm: GaussianMixture, A, cov_noise) -> MixturePosterior:
    """The exact posterior of ``gmm`` through ``z = A x + N(0, cov_noise)`` (:class:`MixturePosterior`).

    Parameters
    ----------
    gmm : GaussianMixture
        The prior (``weights (K,)``, ``means (K, d)``, ``covs (K, d, d)``).
    A : array_like, shape (m, d)
        The channel matrix.
    cov_noise : array_like, shape (m, m)
        The noise covariance Σn (symmetric positive definite).

    Returns
    -------
    MixturePosterior
        Its ``mean(z)`` (n, m) → (n, d), ``trace_cov(z)`` (n, m) → (n,), ``logpdf(x, z)`` and
        component weights, all in closed form.
    """
    return MixturePosterior(gmm, A, cov_noise)


def _joint_draws(post: MixturePosterior, n: int, rng):
    x = post.prior.sample(n, rng)
    L = cholesky(post.cov_noise, "cov_noise")
    z = x @ post.A.T + rng.standard_normal((n, post.A.shape[0])) @ L.T
    return x, z


def mixture_mmse_mc(gmm: GaussianMixture, A, cov_noise, n, rng, method: str = "posterior") -> Estimate:
    r"""Total MMSE :math:`E\|x - E[x|z]\|^2` for a mixture prior and a linear Gaussian channel.

    ``method="posterior"`` (default, Rao–Blackwellised): average of the exact
    :math:`\operatorname{Tr}\operatorname{Cov}(x|z)` over ``n`` draws of z (CEM Prop. 1, Eq. 1).
    ``method="error"``: average of :math:`\|x - E[x|z]\|^2` over ``n`` joint draws. Both are
    unbiased; the first has the smaller variance. Divide by ``d`` for the per-dimension ξ.

    Parameters
    ----------
    gmm : GaussianMixture
        The prior (``weights (K,)``, ``means (K, d)``, ``covs (K, d, d)``).
    A : array_like, shape (m, d)
        The channel matrix.
    cov_noise : array_like, shape (m, m)
        The noise covariance Σn (symmetric positive definite).
    n : int
        Number of draws (≥ 2).
    rng : numpy.random.Generator
        The random stream.
    method : {'posterior', 'error'}
        Average the exact posterior trace (default) or the squared error of E[x|z].

    Returns
    -------
    Estimate
        The total MMSE ± its standard error.

    Examples
    --------
    >>> g = GaussianMixture([1.0], [[0.0]], [[[1.0]]])
    >>> e = mixture_mmse_mc(g, np.eye(1), 0.25 * np.eye(1), 100, np.random.default_rng(0))
    >>> round(e.value, 12), e.stderr      # one component: Tr Cov(x|z) = 0.2 for every z
    (0.2, 0.0)
    """
    post = MixturePosterior(gmm, A, cov_noise)
    n = as_count(n, "n")
    rng = as_rng(rng)
    if method not in ("posterior", "error"):
        raise ValueError(f"method must be 'posterior' or 'error'; got {method!r}")
    x, z = _joint_draws(post, n, rng)
    if method == "posterior":
        v = post.trace_cov(z)
    else:
        v = np.sum((x - post.mean(z)) ** 2, axis=1)
    se = float(v.std(ddof=1) / math.sqrt(n))
    if se < 1e-15 * max(1.0, abs(float(v.mean()))):
        se = 0.0
    return Estimate(float(v.mean()), se, n)


@dataclass(frozen=True)
class ImportanceEstimate(Estimate):
    """An :class:`Estimate` from self-normalised importance sampling, with its estimated ``bias``.

    >>> ImportanceEstimate(1.0, 0.1, 100, 0.01).to_dict()
    {'value': 1.0, 'stderr': 0.1, 'n': 100, 'bias': 0.01}
    """

    bias: float = 0.0


def mixture_mmse_importance_sampling(gmm: GaussianMixture, A, cov_noise, n, rng, *, n_proposal=20000,
                                     block=50) -> ImportanceEstimate:
    r"""Total MMSE by brute force: self-normalised importance sampling of E[x|z], prior as proposal.

    An estimate of :math:`E\|x - E[x|z]\|^2` that uses neither the closed-form posterior nor its
    weights -- only the prior's samples and the likelihood :math:`\mathcal N(z; Ax, \Sigma_n)` --
    so it checks :func:`mixture_mmse_mc` independently (docs/ground-truths.md).  For ``n`` joint draws
    :math:`(x_b, z_b)`, with ``n_proposal`` fresh prior draws :math:`x'_m` per block of ``block``
    z's:

    .. math:: \hat x_b = \sum_m \tilde w_{bm} x'_m,\qquad
              \tilde w_{bm} \propto \exp\big(-\tfrac12\|z_b - Ax'_m\|^2_{\Sigma_n^{-1}}\big),

    and the estimate is the mean of :math:`\|x_b - \hat x_b\|^2` (``stderr`` = its sample sd /
    :math:`\sqrt n`).  :math:`\hat x_b` has delta-method variance
    :math:`\sum_m\tilde w_{bm}^2\|x'_m - \hat x_b\|^2`, which inflates the squared error by that
    much on average: ``bias`` is its mean, an estimate of the (upward) bias.  Useful in low
    dimension only: the prior is a poor proposal once the likelihood is sharp.

    Parameters
    ----------
    gmm : GaussianMixture
        The prior (``weights (K,)``, ``means (K, d)``, ``covs (K, d, d)``).
    A : array_like, shape (m, d)
        The channel matrix.
    cov_noise : array_like, shape (m, m)
        The noise covariance Σn (symmetric positive definite).
    n : int
        Number of joint draws (x, z).
    rng : numpy.random.Generator
        The random stream.
    n_proposal : int
        Prior draws per block of z's.
    block : int
        Number of z's that share one set of prior draws.

    Returns
    -------
    ImportanceEstimate
        ``value`` ± ``stderr`` (total MMSE), ``n`` and ``bias`` (the estimated upward bias).

    Examples
    --------
    One component, z = x + N(0, ¼): the MMSE is 0.2 (linear-Gaussian closed form).

    >>> g = GaussianMixture([1.0], [[0.0]], [[[1.0]]])
    >>> e = mixture_mmse_importance_sampling(g, [[1.0]], [[0.25]], 2000, np.random.default_rng(0))
    >>> bool(abs(e.value - 0.2) < 4 * e.stderr + e.bias), e.n
    (True, 2000)
    """
    g = _as_gmm(gmm)
    post_a = as_matrix(A, "A", cols=g.dim)
    k = post_a.shape[0]
    cn, Ln = as_cov(cov_noise, "cov_noise", dim=k, return_chol=True)
    n = as_count(n, "n")
    n_proposal = as_count(n_proposal, "n_proposal", minimum=1)
    block = as_count(block, "block", minimum=1)
    rng = as_rng(rng)
    Wn = inv_lower(Ln)                                  # whitening: ‖Wn r‖² = rᵀ Σn⁻¹ r
    WA = Wn @ post_a
    x = g.sample(n, rng)
    z = x @ post_a.T + rng.standard_normal((n, k)) @ Ln.T
    errs, bias = np.empty(n), np.empty(n)
    for s in range(0, n, block):
        xs = g.sample(n_proposal, rng)                  # fresh proposal draws for each block
        a = z[s:s + block] @ Wn.T                         # (B, k)
        bm = xs @ WA.T                                    # (M, k)
        # −½‖a − b‖² up to a per-row constant (−½‖a‖², which the normalisation removes)
        logw = a @ bm.T - 0.5 * np.einsum("mk,mk->m", bm, bm)[None, :]
        w = np.exp(logw - logsumexp(logw, axis=1, keepdims=True))
        xhat = w @ xs
        errs[s:s + block] = np.sum((x[s:s + block] - xhat) ** 2, axis=1)
        for r in range(w.shape[0]):
            dev = np.sum((xs - xhat[r]) ** 2, axis=1)
            bias[s + r] = (w[r] ** 2) @ dev
    return ImportanceEstimate(float(errs.mean()), float(errs.std(ddof=1) / math.sqrt(n)), n,
                              float(bias.mean()))


def mixture_conditional_entropy_mc(gmm: GaussianMixture, A, cov_noise, n, rng, base=None) -> Estimate:
    r""":math:`H(x|z) = -E\log p(x|z)` by Monte Carlo with the exact mixture posterior.

    Unbiased (joint draws of (x, z)); ``stderr`` = sample sd / sqrt(n).

    Parameters
    ----------
    gmm : GaussianMixture
        The prior (``weights (K,)``, ``means (K, d)``, ``covs (K, d, d)``).
    A : array_like, shape (m, d)
        The channel matrix.
    cov_noise : array_like, shape (m, m)
        The noise covariance Σn (symmetric positive definite).
    n : int
        Number of joint draws.
    rng : numpy.random.Generator
        The random stream.
    base : float, optional
        Logarithm base (nats by default).

    Returns
    -------
    Estimate
        H(x|z) ± its standard error.

    Examples
    --------
    One component, z = x + N(0, ¼): x|z ~ N(m(z), 0.2) for every z, so H(x|z) = ½ log(2πe · 0.2)
    (Monte Carlo, within 5 s.e.).

    >>> g = GaussianMixture([1.0], [[0.0]], [[[1.0]]])
    >>> e = mixture_conditional_entropy_mc(g, [[1.0]], [[0.25]], 20000, np.random.default_rng(0))
    >>> bool(abs(e.value - 0.5 * np.log(2 * np.pi * np.e * 0.2)) < 5 * e.stderr)
    True
    """
    post = MixturePosterior(gmm, A, cov_noise)
    n = as_count(n, "n")
    rng = as_rng(rng)
    x, z = _joint_draws(post, n, rng)
    v = -post.logpdf(x, z) / log_base(base)
    return Estimate(float(v.mean()), float(v.std(ddof=1) / math.sqrt(n)), n)


def mixture_prior_fisher_mc(gmm: GaussianMixture, n, rng) -> Estimate:
    r"""Trace of the prior Fisher information :math:`\operatorname{Tr}J(p) = E\|\nabla\log p(x)\|^2`.

    Used by the van Trees bound (:func:`theory.van_trees_mse`) for a mixture prior.

    Parameters
    ----------
    gmm : GaussianMixture
        The prior (``weights (K,)``, ``means (K, d)``, ``covs (K, d, d)``).
    n : int
        Number of prior draws.
    rng : numpy.random.Generator
        The random stream.

    Returns
    -------
    Estimate
        Tr J(p) ± its standard error.

    Examples
    --------
    One Gaussian N(0, 2 I₃): ∇log p = −x/2, so Tr J = Tr Σ⁻¹ = 3/2 (Monte Carlo, within 5 s.e.).

    >>> g = GaussianMixture([1.0], [[0.0, 0.0, 0.0]], [2 * np.eye(3)])
    >>> e = mixture_prior_fisher_mc(g, 20000, np.random.default_rng(0))
    >>> bool(abs(e.value - 1.5) < 5 * e.stderr)
    True
    """
    g = _as_gmm(gmm)
    n = as_count(n, "n")
    x = g.sample(n, as_rng(rng))
    v = np.sum(g.score(x) ** 2, axis=1)
    return Estimate(float(v.mean()), float(v.std(ddof=1) / math.sqrt(n)), n)
