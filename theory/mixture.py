r"""Gaussian mixtures: density, sampling, entropy (Monte Carlo and bounds), exact posterior.

* :class:`GaussianMixture` -- validated :math:`p(x) = \sum_i w_i \mathcal N(x; \mu_i, \Sigma_i)`.
* :func:`mixture_entropy_mc` -- :math:`H = -E\log p(x)` by Monte Carlo, with a standard error.
* :func:`mixture_entropy_bounds` -- closed-form bounds on the mixture entropy:

  - ``huber_upper`` (Huber, Bailey, Durrant-Whyte & Hanebeck 2008):
    :math:`\sum_i w_i(-\log w_i + H_i)`, :math:`H_i` the component entropies;
  - ``kl_upper`` (Kolchinsky & Tracey 2017, pairwise distance :math:`D = \mathrm{KL}`):
    :math:`\sum_i w_i H_i - \sum_i w_i\log\sum_j w_j e^{-\mathrm{KL}(p_i\|p_j)}`;
  - ``chernoff_lower`` (Kolchinsky & Tracey 2017, :math:`D = C_\alpha`, the Chernoff
    :math:`\alpha`-divergence :math:`-\log\int p_i^\alpha p_j^{1-\alpha}`), maximised over a grid of
    :math:`\alpha` (:math:`\alpha=\tfrac12` is the Bhattacharyya bound);
  - ``elk_lower`` (Huber et al. 2008, Jensen on the expected likelihood kernel):
    :math:`-\sum_i w_i \log\sum_j w_j \mathcal N(\mu_i; \mu_j, \Sigma_i + \Sigma_j)`.

  Order: ``elk_lower``, ``chernoff_lower`` :math:`\le H \le` ``kl_upper`` :math:`\le` ``huber_upper``.
  Neither lower bound dominates the other.
* :class:`MixturePosterior` -- for a mixture prior seen through :math:`z = Ax + \varepsilon`,
  :math:`\varepsilon\sim\mathcal N(0,\Sigma_n)`, the posterior is again a mixture (DESIGN.md §3):

  .. math::
     p(x|z) = \sum_i w_i(z)\,\mathcal N(x; m_i(z), P_i),\quad
     P_i = (\Sigma_i^{-1} + A^\top\Sigma_n^{-1}A)^{-1},\quad
     m_i(z) = \mu_i + P_iA^\top\Sigma_n^{-1}(z - A\mu_i),

  .. math:: w_i(z) \propto w_i\,\mathcal N(z; A\mu_i, A\Sigma_iA^\top + \Sigma_n),

  so :math:`E[x|z]` is exact and the MMSE of CEM Prop. 1 is a Monte-Carlo average of the exact
  :math:`\operatorname{Tr}\operatorname{Cov}(x|z)` (:func:`mixture_mmse_mc`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import logsumexp

from ._validate import (Estimate, as_array, as_count, as_cov, as_matrix, as_points, as_rng,
                        as_weights, cholesky, inv_lower, log_base, logdet_chol,
                        spd_inverse_from_chol)

__all__ = [
    "GaussianMixture",
    "mixture_entropy_mc",
    "mixture_entropy_bounds",
    "MixturePosterior",
    "mixture_posterior",
    "mixture_mmse_mc",
    "mixture_conditional_entropy_mc",
    "mixture_prior_fisher_mc",
]

LOG_2PI = math.log(2.0 * math.pi)
LOG_2PI_E = math.log(2.0 * math.pi * math.e)


def _batched_mahalanobis(x: np.ndarray, means: np.ndarray, inv_chols: np.ndarray) -> np.ndarray:
    """‖L_i⁻¹(x_n − μ_i)‖² for all n, i; x (N, d), means (K, d), inv_chols (K, d, d) -> (N, K)."""
    out = np.empty((x.shape[0], means.shape[0]))
    for i in range(means.shape[0]):
        y = (x - means[i]) @ inv_chols[i].T
        out[:, i] = np.einsum("nd,nd->n", y, y)
    return out


class GaussianMixture:
    r"""A validated Gaussian mixture :math:`\sum_i w_i\,\mathcal N(\mu_i, \Sigma_i)` in float64.

    Parameters
    ----------
    weights : array_like, shape (K,)
        On the simplex (non-negative, summing to 1 within 1e-8).
    means : array_like, shape (K, d)
    covs : array_like, shape (K, d, d)
        Symmetric positive definite.

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
        c = as_cov(covs, "covs", batch=True)
        if c.shape != (K, d, d):
            raise ValueError(f"covs must have shape (K, d, d) = ({K}, {d}, {d}) to match means; got {c.shape}")
        self.weights = w
        self.means = m
        self.covs = c
        self._chols = cholesky(c, "covs")
        self._inv_chols = inv_lower(self._chols)
        self._logdets = logdet_chol(self._chols)
        with np.errstate(divide="ignore"):
            self._logw = np.log(w)
        for arr in (self.weights, self.means, self.covs, self._chols):
            arr.setflags(write=False)

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
        c = np.einsum("i,ijk->jk", self.weights, self.covs) + (self.weights[:, None] * dm).T @ dm
        return 0.5 * (c + c.T)

    def component_entropies(self) -> np.ndarray:
        """Entropies :math:`\\tfrac12\\log((2\\pi e)^d|\\Sigma_i|)` of the components (nats), shape (K,)."""
        return 0.5 * (self.dim * LOG_2PI_E + self._logdets)

    # --- densities --------------------------------------------------------------------------
    def component_logpdf(self, x) -> np.ndarray:
        """log N(x; μ_i, Σ_i) for each point and component, shape (N, K)."""
        xx, _ = as_points(x, "x", self.dim)
        maha = _batched_mahalanobis(xx, self.means, self._inv_chols)
        return -0.5 * (self.dim * LOG_2PI + self._logdets[None, :] + maha)

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
        g = np.zeros_like(xx)
        for i in range(self.n_components):
            prec = self._inv_chols[i].T @ self._inv_chols[i]
            g -= r[:, i:i + 1] * ((xx - self.means[i]) @ prec)
        return g[0] if single else g

    # --- sampling and transforms ------------------------------------------------------------
    def sample(self, n, rng, return_labels: bool = False):
        """Draw ``n`` samples with the numpy Generator ``rng``; shape (n, d) (and labels (n,))."""
        n = as_count(n, "n", minimum=1)
        rng = as_rng(rng)
        labels = rng.choice(self.n_components, size=n, p=self.weights)
        eps = rng.standard_normal((n, self.dim))
        x = self.means[labels] + np.einsum("nij,nj->ni", self._chols[labels], eps)
        return (x, labels) if return_labels else x

    def linear_transform(self, A, cov_noise=None) -> "GaussianMixture":
        r"""Distribution of :math:`Ax + \varepsilon`: weights w_i, means Aμ_i, covs AΣ_iAᵀ + Σ_n.

        Without ``cov_noise`` the transformed covariances must still be positive definite
        (``A`` of full row rank).
        """
        Am = as_matrix(A, "A", cols=self.dim)
        covs = np.einsum("kd,ide,le->ikl", Am, self.covs, Am)
        if cov_noise is not None:
            covs = covs + as_cov(cov_noise, "cov_noise", dim=Am.shape[0])[None]
        return GaussianMixture(self.weights, self.means @ Am.T, covs)


def _as_gmm(gmm, name="gmm") -> GaussianMixture:
    if not isinstance(gmm, GaussianMixture):
        raise ValueError(f"{name} must be a theory.GaussianMixture; got {type(gmm).__name__}")
    return gmm


def mixture_entropy_mc(gmm: GaussianMixture, n, rng, base=None) -> Estimate:
    r"""Entropy :math:`H = -E\log p(x)` of a mixture by Monte Carlo, ± its standard error.

    Unbiased: the mean of :math:`-\log p(x_j)` over ``n`` i.i.d. samples; ``stderr`` is the
    sample standard deviation over :math:`\sqrt n`.

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


def _pairwise_gauss(means, covs, chols, logdets, alphas):
    """Chernoff α-divergences C_α(p_i‖p_j) = −log∫p_i^α p_j^{1−α}, shape (len(alphas), K, K).

    For Gaussians, with S = (1−α)Σ_i + αΣ_j and Δ = μ_i − μ_j:
    C_α = α(1−α)/2 ΔᵀS⁻¹Δ + ½(log|S| − (1−α)log|Σ_i| − α log|Σ_j|).
    """
    K, d = means.shape
    out = np.empty((len(alphas), K, K))
    delta = means[:, None, :] - means[None, :, :]                     # (K, K, d)
    for a_idx, a in enumerate(alphas):
        S = (1 - a) * covs[:, None] + a * covs[None, :]                 # (K, K, d, d)
        L = np.linalg.cholesky(S)
        y = np.linalg.solve(L, delta[..., None])[..., 0]
        maha = np.einsum("ijd,ijd->ij", y, y)
        out[a_idx] = (0.5 * a * (1 - a) * maha
                      + 0.5 * (logdet_chol(L) - (1 - a) * logdets[:, None] - a * logdets[None, :]))
    return out


def _pairwise_kl(means, covs, chols, logdets):
    """KL(p_i ‖ p_j) for Gaussian components, shape (K, K)."""
    K, d = means.shape
    kl = np.empty((K, K))
    for j in range(K):
        inv_j = spd_inverse_from_chol(chols[j])
        diff = means - means[j]
        tr = np.einsum("ab,iba->i", inv_j, covs)
        maha = np.einsum("ia,ab,ib->i", diff, inv_j, diff)
        kl[:, j] = 0.5 * (tr + maha - d + logdets[j] - logdets)
    np.fill_diagonal(kl, 0.0)
    return np.maximum(kl, 0.0)


def _pairwise_bound(weights, comp_h, D):
    """Kolchinsky–Tracey estimator Σ w_i H_i − Σ w_i log Σ_j w_j exp(−D_ij)."""
    with np.errstate(divide="ignore"):
        logw = np.log(weights)
    inner = logsumexp(logw[None, :] - D, axis=-1)                     # (..., K)
    mask = weights > 0
    return float(weights @ comp_h) - np.sum(weights[mask] * inner[..., mask], axis=-1)


def mixture_entropy_bounds(gmm: GaussianMixture, alphas=None, base=None) -> dict:
    r"""Closed-form lower and upper bounds on the entropy of a Gaussian mixture.

    Returns a dict with ``huber_upper``, ``kl_upper``, ``elk_lower``, ``chernoff_lower``,
    ``chernoff_alpha`` (the grid point attaining ``chernoff_lower``), ``lower`` (max of the two
    lower bounds) and ``upper`` (= ``kl_upper``, never looser than Huber). Formulas in the module
    docstring; references: Huber et al. (2008), "On entropy approximation for Gaussian mixture
    random vectors"; Kolchinsky & Tracey (2017), "Estimating mixture entropy with pairwise
    distances", Thm 2 (lower, Chernoff-α) and Thm 1 (upper, KL).

    Parameters
    ----------
    gmm : GaussianMixture
    alphas : array_like, optional
        Grid of α in [0, 1] for the Chernoff bound (default: 21 points 0, 0.05, ..., 1).
    base : float, optional

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
    """
    g = _as_gmm(gmm)
    if alphas is None:
        alphas = np.linspace(0.0, 1.0, 21)
    alphas = as_array(alphas, "alphas", ndim=1)
    if np.any((alphas < 0) | (alphas > 1)):
        raise ValueError(f"alphas must lie in [0, 1]; got min {alphas.min()}, max {alphas.max()}")
    w, K, d = g.weights, g.n_components, g.dim
    comp_h = g.component_entropies()
    mask = w > 0
    huber = float(np.sum(w[mask] * (-np.log(w[mask]) + comp_h[mask])))
    kl = _pairwise_bound(w, comp_h, _pairwise_kl(g.means, g.covs, g._chols, g._logdets))
    C = _pairwise_gauss(g.means, g.covs, g._chols, g._logdets, alphas)
    chern = _pairwise_bound(w, comp_h, C)
    best = int(np.argmax(chern))
    # ELK: N(μ_i; μ_j, Σ_i + Σ_j)
    S = g.covs[:, None] + g.covs[None, :]
    L = np.linalg.cholesky(S)
    delta = g.means[:, None, :] - g.means[None, :, :]
    y = np.linalg.solve(L, delta[..., None])[..., 0]
    log_kern = -0.5 * (d * LOG_2PI + logdet_chol(L) + np.einsum("ijd,ijd->ij", y, y))
    with np.errstate(divide="ignore"):
        logw = np.log(w)
    elk = -float(np.sum(w[mask] * logsumexp(logw[None, :] + log_kern, axis=1)[mask]))
    lb = log_base(base)
    out = {
        "huber_upper": huber / lb,
        "kl_upper": float(kl) / lb,
        "elk_lower": elk / lb,
        "chernoff_lower": float(chern[best]) / lb,
        "chernoff_alpha": float(alphas[best]),
    }
    out["lower"] = max(out["elk_lower"], out["chernoff_lower"])
    out["upper"] = min(out["kl_upper"], out["huber_upper"])
    return out


class MixturePosterior:
    r"""Exact posterior of a Gaussian-mixture prior through :math:`z = Ax + \varepsilon`.

    See the module docstring for the closed form. Attributes: ``prior`` (GaussianMixture of x),
    ``A`` (k, d), ``cov_noise`` (k, k), ``covs`` (K, d, d) the component posterior covariances
    :math:`P_i`, ``gains`` (K, d, k) the matrices :math:`P_iA^\top\Sigma_n^{-1}`, ``marginal``
    (GaussianMixture of z).

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
        self.cov_noise = as_cov(cov_noise, "cov_noise", dim=k)
        Ln = cholesky(self.cov_noise, "cov_noise")
        B = inv_lower(Ln) @ self.A                                      # Ln⁻¹A
        info = B.T @ B                                                 # AᵀΣn⁻¹A
        ainv = spd_inverse_from_chol(Ln) @ self.A                      # Σn⁻¹A  (k, d)
        K, d = self.prior.n_components, self.prior.dim
        covs = np.empty((K, d, d))
        for i in range(K):
            prec = spd_inverse_from_chol(self.prior._chols[i]) + info
            Li = cholesky(0.5 * (prec + prec.T), "posterior precision")
            covs[i] = spd_inverse_from_chol(Li)
        self.covs = covs
        self.gains = np.einsum("ide,ke->idk", covs, ainv)              # P_i Aᵀ Σn⁻¹
        self.marginal = self.prior.linear_transform(self.A, self.cov_noise)
        self._cov_chols = cholesky(covs, "posterior covariances")
        self._cov_inv_chols = inv_lower(self._cov_chols)
        self._cov_logdets = logdet_chol(self._cov_chols)

    @property
    def dim(self) -> int:
        return self.prior.dim

    def _z(self, z):
        return as_points(z, "z", self.A.shape[0])

    def weights(self, z) -> np.ndarray:
        """Posterior component weights w_i(z), shape (N, K)."""
        zz, _ = self._z(z)
        return self.marginal.responsibilities(zz)

    def component_means(self, z) -> np.ndarray:
        """Component posterior means m_i(z), shape (N, K, d)."""
        zz, _ = self._z(z)
        resid = zz[:, None, :] - (self.prior.means @ self.A.T)[None]   # (N, K, k)
        return self.prior.means[None] + np.einsum("idk,nik->nid", self.gains, resid)

    def mean(self, z) -> np.ndarray:
        """Exact posterior mean E[x|z], shape (N, d) (or (d,) for a single z of shape (k,))."""
        _, single = self._z(z)
        m = np.einsum("ni,nid->nd", self.weights(z), self.component_means(z))
        return m[0] if single else m

    def trace_cov(self, z) -> np.ndarray:
        r"""Exact :math:`\operatorname{Tr}\operatorname{Cov}(x|z)` per z, shape (N,)."""
        w = self.weights(z)
        cm = self.component_means(z)
        m = np.einsum("ni,nid->nd", w, cm)
        tr_p = np.trace(self.covs, axis1=1, axis2=2)
        second = w @ tr_p + np.einsum("ni,nid,nid->n", w, cm, cm)
        return np.maximum(second - np.einsum("nd,nd->n", m, m), 0.0)

    def covariance(self, z) -> np.ndarray:
        """Exact Cov(x|z) per z (law of total variance), shape (N, d, d)."""
        w = self.weights(z)
        cm = self.component_means(z)
        m = np.einsum("ni,nid->nd", w, cm)
        dm = cm - m[:, None, :]
        return (np.einsum("ni,ide->nde", w, self.covs)
                + np.einsum("ni,nid,nie->nde", w, dm, dm))

    def logpdf(self, x, z) -> np.ndarray:
        """log p(x | z) for paired rows of x (N, d) and z (N, k), shape (N,)."""
        zz, _ = self._z(z)
        xx, _ = as_points(x, "x", self.dim)
        if xx.shape[0] != zz.shape[0]:
            raise ValueError(f"x and z must have the same number of rows; got {xx.shape[0]} and {zz.shape[0]}")
        with np.errstate(divide="ignore"):
            lw = np.log(self.weights(zz))
        cm = self.component_means(zz)                                  # (N, K, d)
        K, d = self.prior.n_components, self.dim
        comp = np.empty((xx.shape[0], K))
        for i in range(K):
            y = (xx - cm[:, i]) @ self._cov_inv_chols[i].T
            comp[:, i] = -0.5 * (d * LOG_2PI + self._cov_logdets[i] + np.einsum("nd,nd->n", y, y))
        return logsumexp(lw + comp, axis=1)


def mixture_posterior(gmm: GaussianMixture, A, cov_noise) -> MixturePosterior:
    """The exact posterior of ``gmm`` through ``z = A x + N(0, cov_noise)`` (:class:`MixturePosterior`)."""
    return MixturePosterior(gmm, A, cov_noise)


def mixture_mmse_mc(gmm: GaussianMixture, A, cov_noise, n, rng, method: str = "posterior") -> Estimate:
    r"""Total MMSE :math:`E\|x - E[x|z]\|^2` for a mixture prior and a linear Gaussian channel.

    ``method="posterior"`` (default, Rao–Blackwellised): average of the exact
    :math:`\operatorname{Tr}\operatorname{Cov}(x|z)` over ``n`` draws of z (CEM Prop. 1, Eq. 1).
    ``method="error"``: average of :math:`\|x - E[x|z]\|^2` over ``n`` joint draws. Both are
    unbiased; the first has the smaller variance. Divide by ``d`` for the per-dimension ξ.

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
    x = post.prior.sample(n, rng)
    L = cholesky(post.cov_noise, "cov_noise")
    z = x @ post.A.T + rng.standard_normal((n, post.A.shape[0])) @ L.T
    if method == "posterior":
        v = post.trace_cov(z)
    else:
        v = np.sum((x - post.mean(z)) ** 2, axis=1)
    se = float(v.std(ddof=1) / math.sqrt(n))
    if se < 1e-15 * max(1.0, abs(float(v.mean()))):
        se = 0.0
    return Estimate(float(v.mean()), se, n)


def mixture_conditional_entropy_mc(gmm: GaussianMixture, A, cov_noise, n, rng, base=None) -> Estimate:
    r""":math:`H(x|z) = -E\log p(x|z)` by Monte Carlo with the exact mixture posterior.

    Unbiased (joint draws of (x, z)); ``stderr`` = sample sd / sqrt(n).
    """
    post = MixturePosterior(gmm, A, cov_noise)
    n = as_count(n, "n")
    rng = as_rng(rng)
    x = post.prior.sample(n, rng)
    L = cholesky(post.cov_noise, "cov_noise")
    z = x @ post.A.T + rng.standard_normal((n, post.A.shape[0])) @ L.T
    v = -post.logpdf(x, z) / log_base(base)
    return Estimate(float(v.mean()), float(v.std(ddof=1) / math.sqrt(n)), n)


def mixture_prior_fisher_mc(gmm: GaussianMixture, n, rng) -> Estimate:
    r"""Trace of the prior Fisher information :math:`\operatorname{Tr}J(p) = E\|\nabla\log p(x)\|^2`.

    Used by the van Trees bound (:func:`theory.van_trees_mse`) for a mixture prior.
    """
    g = _as_gmm(gmm)
    n = as_count(n, "n")
    x = g.sample(n, as_rng(rng))
    v = np.sum(g.score(x) ** 2, axis=1)
    return Estimate(float(v.mean()), float(v.std(ddof=1) / math.sqrt(n)), n)
