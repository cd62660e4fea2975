r"""Theorem 1, Theorem 2 and competing bounds on the minimal reconstruction MSE.

**Theorem 1** (CEM paper, Xia et al. CVPR 2025, Thm 1 and supp. S.1): for any attacker, the
per-dimension MSE satisfies

.. math:: \xi \ge \frac{1}{2\pi e}\exp\!\Big(\frac{2H(x|z)}{d}\Big)

(:func:`mse_lower_bound`; inverse :func:`implied_entropy`). The proof chain -- max-entropy,
eigenvalue AM–GM, Jensen over z -- is checked symbolically in :mod:`theory.symbolic`; equality iff
Cov(x|z) is isotropic and the same for every z, with x|z Gaussian.

**Theorem 2** (CEM Prop. 2, Thm 2, Eq. 3, supp. S.2): if :math:`\hat z = f(x)` is deterministic and
distributed as :math:`\sum_i\pi_i\mathcal N(\mu_i,\Sigma_i)` and :math:`z = \hat z + \varepsilon`,
:math:`\varepsilon\sim\mathcal N(0,\Sigma_p)`, then

.. math:: H(x|z) \ge H(x) - \sum_i \pi_i\Big(-\log\pi_i + \tfrac12\log\frac{|\Sigma_i+\Sigma_p|}{|\Sigma_p|}\Big).

The sum is exactly the Huber upper bound on :math:`H(z)` minus :math:`H(\varepsilon)`
(:func:`gmm_mutual_information_bound`). Any upper bound :math:`U \ge H(z)` gives
:math:`H(x|z) \ge H(x) + H(\varepsilon) - U`; :func:`conditional_entropy_lower_bound` offers
``huber`` (= Thm 2 as printed), ``kl`` (Kolchinsky–Tracey, never looser than Huber), ``maxent``
(Gaussian with Cov z, no mixture assumption) and ``best``.

*Errata / caveats* (docs/errata.md). Thm 2 as printed holds -- it is Huber's bound -- but it is
a guaranteed floor only if :math:`\hat z` *is* a Gaussian mixture and :math:`H(x)` is
lower-bounded: deterministically by :func:`theory.mixture_entropy_bounds` (``lower``), or at a
stated confidence by :func:`theory.mixture_entropy_lower_limit` -- never by a Monte-Carlo point
estimate.  For an affine encoder :func:`affine_mutual_information_upper_bounds` computes the
upper bounds stably at any scale of A. For data in :math:`[0,1]^d`, :math:`H(x)\le 0`, so Thms 1+2 can never certify a
per-dimension MSE above :func:`certifiable_mse` (at most :math:`1/(2\pi e)\approx 0.0585`).
Typos in the supplementary proofs (S.1–S.2), harmless to the results: Eq. 13 / S5 reads
:math:`\tfrac d2\log(2\pi e\,\varepsilon)` where :math:`\xi` is meant (and the step is an
equality, :math:`E_z\operatorname{Tr}\operatorname{Cov}(x|z) = d\xi`); the step called "Jensen" in
Eq. 11 / S3 is AM–GM on the eigenvalues (Jensen for log over the spectrum); Eqs. 14–15 / S6–S7
write :math:`(2\pi e)^d` with d the *input* dimension where the dimension of z is meant -- the
factors cancel in Eq. 16. Theorem 1 states no equality condition: it is tight iff x|z is Gaussian
with isotropic covariance whose trace does not depend on z.

**Fisher-information bounds** (Maeng et al. 2023; van Trees 1968; docs/ground-truths.md). For
:math:`z = f(x) + \mathcal N(0,\Sigma_n)` the Fisher information is
:math:`I_F(x) = J_f^\top\Sigma_n^{-1}J_f`, dFIL = Tr I_F / d. Unbiased attackers:
MSE/d ≥ 1/dFIL (:func:`cramer_rao_mse`). Any attacker (van Trees):
:math:`\mathrm{MSE}/d \ge d / (\operatorname{Tr}E[I_F] + \operatorname{Tr}J_{prior})`
(:func:`van_trees_mse`). With the exact :math:`H(x|z)`, Thm 1's bound is never below van Trees
(Stam's inequality applied to the posterior, then Jensen).
"""

from __future__ import annotations

import math

import numpy as np
from . import _pairwise as pw
from ._validate import (SYM_RTOL, as_array, as_cov, as_dim, as_matrix, as_scalar, as_weights, check_psd,
                        check_symmetric_only, cholesky, inv_lower, log_base, logdet_chol,
                        spd_inverse_from_chol)
from .gaussian import LOG_2PI_E, channel_svd
from .mixture import _as_gmm

__all__ = [
    "mse_lower_bound",
    "implied_entropy",
    "gmm_mutual_information_bound",
    "mutual_information_upper_bounds",
    "affine_mutual_information_upper_bounds",
    "affine_output_fisher_trace_upper",
    "conditional_entropy_lower_bound",
    "certifiable_mse",
    "fisher_information_linear",
    "expected_fisher_information",
    "cramer_rao_mse",
    "van_trees_mse",
    "fisher_bounds",
]

METHODS = ("huber", "kl", "maxent", "best")


def mse_lower_bound(cond_entropy, dim, base=None) -> float:
    r"""Theorem 1: per-dimension MSE lower bound :math:`\exp(2H(x|z)/d)/(2\pi e)`.

    Parameters
    ----------
    cond_entropy : float
        :math:`H(x|z)` (nats, or units of ``base``); may be negative (differential entropy).
    dim : int
        Input dimension d.
    base : float, optional
        Base in which ``cond_entropy`` is expressed.

    Returns
    -------
    float
        The bound per dimension (``inf`` on overflow).

    Examples
    --------
    Equality case x ~ N(0, 1), z = x + N(0, 1/4): H(x|z) = ½ log(2πe · 0.2).

    >>> round(mse_lower_bound(0.5 * np.log(2 * np.pi * np.e * 0.2), 1), 12)
    0.2
    """
    h = as_scalar(cond_entropy, "cond_entropy")
    d = as_dim(dim, "dim")
    h_nats = h * log_base(base)
    t = 2.0 * h_nats / d - LOG_2PI_E
    return math.inf if t > 709.0 else float(math.exp(t))  # honest overflow to inf, never an error/nan


def implied_entropy(mse, dim, base=None) -> float:
    r"""Inverse of Theorem 1: :math:`\tfrac d2\log(2\pi e\,\xi)`, the largest H(x|z) compatible
    with a per-dimension MSE ξ (if an attacker reaches ξ, then H(x|z) ≤ this).

    Parameters
    ----------
    mse : float
        A per-dimension MSE ξ > 0 (e.g. an attack's).
    dim : int
        The input dimension d.
    base : float, optional
        Logarithm base of the result (nats by default).

    Returns
    -------
    float
        :math:`\tfrac d2\log(2\pi e\,\xi)`.

    Examples
    --------
    >>> round(implied_entropy(mse_lower_bound(-3.0, 5), 5), 12)
    -3.0
    """
    m = as_scalar(mse, "mse", positive=True)
    d = as_dim(dim, "dim")
    return float(0.5 * d * (LOG_2PI_E + math.log(m)) / log_base(base))


STRUCTURES = ("full", "diag", "scaled")


def _means(means, K, k, required):
    if means is None:
        if required:
            raise ValueError("means must be given (shape (K, k))")
        return None
    mu = as_array(means, "means", ndim=2)
    if mu.shape != (K, k):
        raise ValueError(f"means must have shape (K, k) = ({K}, {k}) to match covs; got {mu.shape}")
    return mu


def _diag_noise(noise_cov, k):
    """Noise variances (k,) from a (k,) vector or a diagonal (k, k) SPD matrix."""
    if np.ndim(noise_cov) == 1:
        p = as_array(noise_cov, "noise_cov", ndim=1)
        if p.shape != (k,):
            raise ValueError(f"noise_cov must have shape ({k},) or ({k}, {k}); got {p.shape}")
        if np.any(p <= 0):
            raise ValueError(f"noise_cov must be positive (variances); got min {float(p.min()):.3g}")
        return p
    cn = as_cov(noise_cov, "noise_cov", dim=k)
    off = cn - np.diag(np.diag(cn))
    scale = max(1.0, float(np.max(np.abs(cn))))
    if np.max(np.abs(off), initial=0.0) > SYM_RTOL * scale:
        raise ValueError("noise_cov must be diagonal for structure='diag'; got max |off-diagonal| = "
                         f"{float(np.max(np.abs(off))):.3g}")
    return np.diag(cn).copy()


def _scatter_logdet(w, mu, diag_cov):
    r"""log|D + Σ_i w_i(μ_i − μ̄)(μ_i − μ̄)ᵀ| for diagonal D (k,): with V = U D^{-1/2}, U the rows
    √w_i(μ_i − μ̄), this is :math:`\sum\log D + \sum_s\log(1 + \sigma_s^2)` over the singular values
    of the K×k matrix V (O(K²k); the determinant lemma through a K×K Cholesky factorisation would
    lose digits when the spread of the means dwarfs D)."""
    V = (mu - w @ mu) * np.sqrt(w)[:, None] / np.sqrt(diag_cov)[None, :]
    sv = np.linalg.svd(V, compute_uv=False)
    return float(np.sum(np.log(diag_cov)) + np.sum(np.log1p(sv ** 2)))


def _upper_parts(weights, means, covs, noise_cov, structure, *, huber=True, kl=True, maxent=True):
    r"""Upper bounds on I(z; ẑ) in nats, those asked for (see :func:`mutual_information_upper_bounds`).

    Validates everything once.  The mixture bounds (huber, kl) check every component covariance
    symmetric and positive semidefinite (one factorisation each); the max-entropy bound needs no
    mixture assumption, only :math:`\operatorname{Cov}\hat z`, so alone it checks that matrix
    (symmetric, positive semidefinite: one factorisation in all), not each component.
    """
    mixture = huber or kl
    if structure not in STRUCTURES:
        raise ValueError(f"structure must be one of {STRUCTURES}; got {structure!r}")
    if structure == "full":
        cv = as_array(covs, "covs", ndim=3)
        if cv.shape[1] != cv.shape[2]:
            raise ValueError(f"covs must be square matrices (K, k, k); got shape {cv.shape}")
        K, k = cv.shape[0], cv.shape[1]
        w = as_weights(weights, "weights", n=K)
        cn, Ln = as_cov(noise_cov, "noise_cov", dim=k, return_chol=True)
        mu = _means(means, K, k, kl or maxent)
        ld_p = float(logdet_chol(Ln))
        if mixture:
            logdets, KL = pw.full_components(mu if mu is not None else np.zeros((K, k)), cv, cn, kl=kl, psd=True)
        if maxent:
            czhat = np.tensordot(w, cv, axes=1)                    # Σ_i w_i Σ_i
            if not mixture:       # alone: the bound uses only Cov ẑ, so that is what is checked
                check_symmetric_only(czhat, "Σ_i w_i covs[i]")
            u = (mu - w @ mu) * np.sqrt(w)[:, None]
            czhat += u.T @ u                                        # + Σ_i w_i(μ_i − μ̄)(μ_i − μ̄)ᵀ
            if not mixture:
                check_psd(czhat, "the covariance of ẑ, Σ_i w_i(covs[i] + μ_iμ_iᵀ) − μ̄μ̄ᵀ,")
            czhat += cn
            ld_z = float(logdet_chol(cholesky(czhat, "covariance of z")))   # reads one triangle
    else:
        if structure == "diag":
            var = as_array(covs, "covs", ndim=2)
            K, k = var.shape
            if np.any(var < 0):
                raise ValueError("covs must hold non-negative variances for structure='diag' (shape (K, k)); "
                                 f"got min {float(var.min()):.3g}")
            w = as_weights(weights, "weights", n=K)
            p = _diag_noise(noise_cov, k)
            mu = _means(means, K, k, kl or maxent)
            c = var + p
        else:
            if not (isinstance(covs, (tuple, list)) and len(covs) == 2):
                raise ValueError("covs must be a pair (scales (K,), shared (k, k)) for structure='scaled' "
                                 f"(Σ_i = scales[i]·shared); got {type(covs).__name__}")
            s = as_array(covs[0], "covs[0] (scales)", ndim=1)
            if np.any(s < 0):
                raise ValueError(f"covs[0] (scales) must be >= 0; got min {float(s.min()):.3g}")
            S = as_cov(covs[1], "covs[1] (shared matrix)", psd=True)
            K, k = s.shape[0], S.shape[0]
            w = as_weights(weights, "weights", n=K)
            cn, Ln = as_cov(noise_cov, "noise_cov", dim=k, return_chol=True)
            mu = _means(means, K, k, kl or maxent)
            # I(z; ẑ) and all three bounds are invariant under z ↦ Tz (T invertible): whiten the
            # noise (T = Ln⁻¹), then rotate to the eigenbasis Q of Ln⁻¹ S Ln⁻ᵀ: every component
            # becomes diagonal, s_i·λ + 1, and the noise the identity.
            Wn = inv_lower(Ln)
            St = Wn @ S @ Wn.T
            lam, Q = np.linalg.eigh(0.5 * (St + St.T))
            lam = np.maximum(lam, 0.0)          # S is PSD (checked): negatives are round-off
            c = s[:, None] * lam[None, :] + 1.0
            p = np.ones(k)
            if mu is not None:
                mu = mu @ (Wn.T @ Q)
        ld_p = float(np.sum(np.log(p)))
        logdets, KL = pw.diag_components(mu if mu is not None else np.zeros((K, k)), c, kl=kl)
        if maxent:
            ld_z = _scatter_logdet(w, mu, w @ c)
    mask = w > 0
    wp = w[mask]
    out = {}
    if huber:
        out["huber"] = float(np.sum(wp * (-np.log(wp) + 0.5 * (logdets[mask] - ld_p))))
    if kl:
        comp_h = 0.5 * (k * LOG_2PI_E + logdets[mask])
        out["kl"] = float(pw.kt_bound(wp, comp_h, KL[np.ix_(mask, mask)])) - 0.5 * (k * LOG_2PI_E + ld_p)
    if maxent:
        out["maxent"] = 0.5 * (ld_z - ld_p)
    return out


def gmm_mutual_information_bound(weights, covs, noise_cov, base=None) -> float:
    r"""Theorem 2's sum exactly as printed (CEM Eq. 3 / Eq. 16):

    .. math:: I(z;\hat z) \le \sum_i\pi_i\Big(-\log\pi_i + \tfrac12\log\frac{|\Sigma_i+\Sigma_p|}{|\Sigma_p|}\Big).

    Assumes :math:`\hat z\sim\sum_i\pi_i\mathcal N(\mu_i,\Sigma_i)` (``covs`` positive
    semidefinite, may be singular) and :math:`z=\hat z+\varepsilon`,
    :math:`\varepsilon\sim\mathcal N(0,\Sigma_p)` (``noise_cov`` SPD). Equals
    ``mixture_entropy_bounds(z)["huber_upper"] - gaussian_entropy(noise_cov)``.  One Cholesky
    factorisation per component (and one to check it is semidefinite).

    Parameters
    ----------
    weights : array_like, shape (k,)
        Mixture weights πᵢ on the simplex.
    covs : array_like, shape (k, m, m)
        Component covariances Σᵢ of ẑ (positive semidefinite).
    noise_cov : array_like, shape (m, m)
        Σp of the Gaussian noise (symmetric positive definite).
    base : float, optional
        Logarithm base of the result (nats by default).

    Returns
    -------
    float
        The bound on I(z; ẑ), i.e. Theorem 2 reads H(x|z) ≥ H(x) − this.

    Examples
    --------
    One component, Σ = Σp = I₂: ½ log det(2I) = log 2; two such components with weights ½ add
    the label entropy log 2.

    >>> round(float(gmm_mutual_information_bound([1.0], [np.eye(2)], np.eye(2)) - np.log(2)), 12)
    0.0
    >>> round(float(gmm_mutual_information_bound([0.5, 0.5], [np.eye(2)] * 2, np.eye(2)) - 2 * np.log(2)), 12)
    0.0
    """
    return float(_upper_parts(weights, None, covs, noise_cov, "full", kl=False, maxent=False)["huber"]
                 / log_base(base))


def mutual_information_upper_bounds(weights, means, covs, noise_cov, base=None, *, structure="full") -> dict:
    r"""Upper bounds on :math:`I(z;\hat z) = H(z) - H(\varepsilon)` for a Gaussian-mixture
    :math:`\hat z\sim\sum_i w_i\mathcal N(\mu_i,\Sigma_i)` plus Gaussian noise
    :math:`\varepsilon\sim\mathcal N(0,\Sigma_p)`, with :math:`C_i = \Sigma_i + \Sigma_p`:

    * ``huber`` (= Thm 2 as printed): :math:`\sum_i w_i(-\log w_i + \tfrac12\log|C_i|/|\Sigma_p|)`;
    * ``kl`` (Kolchinsky & Tracey 2017, Thm 1): :math:`\sum_i w_i\tfrac12\log|C_i|/|\Sigma_p|
      - \sum_i w_i\log\sum_j w_j e^{-\mathrm{KL}(N_i\|N_j)}`, :math:`N_i = \mathcal N(\mu_i, C_i)`;
      never looser than ``huber``;
    * ``maxent``: :math:`\tfrac12\log|\operatorname{Cov}z|/|\Sigma_p|`, valid for any :math:`\hat z`
      with that covariance;
    * ``best``: their minimum.

    Cost (K components, k dims, ``structure="full"``): one Cholesky factorisation and one inverse
    per component plus one product of K×k² matrices, O(K k³ + K² k²) time, O(K k²) memory
    (d = 512, K = 30: ~0.3 s; see ``benchmarks/theory_scale.py``).

    Parameters
    ----------
    weights : (K,)
    means : (K, k)
    covs : see ``structure``
        Positive semidefinite, may be singular (e.g. from :func:`theory.affine_pushforward` with
        more outputs than inputs): only :math:`C_i` must be positive definite.
    noise_cov : (k, k) SPD (``structure="diag"``: diagonal, or its diagonal (k,))
    base : float, optional
        Logarithm base (nats by default).
    structure : {"full", "diag", "scaled"}
        Declared by the caller, never guessed: ``"full"`` -- ``covs`` (K, k, k);
        ``"diag"`` -- ``covs`` (K, k), the variances of diagonal :math:`\Sigma_i`, O(K² k);
        ``"scaled"`` -- ``covs = (scales, shared)`` with :math:`\Sigma_i = s_i\,\Sigma` for one
        shared PSD :math:`\Sigma` (k, k) (tied covariances, or a spherical-component prior pushed
        through a linear encoder: :math:`s_i = \sigma_i^2`, :math:`\Sigma = AA^\top`): one
        eigendecomposition, then O(K² k).

    Returns
    -------
    dict
        ``{"huber", "kl", "maxent", "best"}`` → float (units of ``base``).

    Examples
    --------
    One component N(0, I₂) plus noise N(0, I₂): every bound is ½ log|2I| = log 2 (exact).

    >>> u = mutual_information_upper_bounds([1.0], [[0.0, 0.0]], [np.eye(2)], np.eye(2))
    >>> {m: round(v - float(np.log(2)), 12) for m, v in u.items()}
    {'huber': 0.0, 'kl': 0.0, 'maxent': 0.0, 'best': 0.0}

    Two far-apart halves: the pairwise bounds add exactly log 2 (the label), the maximum-entropy
    bound pays for the spread of the means (variance 1 + 1 + 10⁶ along the first axis).

    >>> u = mutual_information_upper_bounds([0.5, 0.5], [[-1e3, 0.0], [1e3, 0.0]], [np.eye(2)] * 2, np.eye(2))
    >>> round(u["kl"] - 2 * float(np.log(2)), 12), round(u["maxent"] - 0.5 * float(np.log(2 * (2 + 1e6))), 12)
    (0.0, 0.0)
    >>> v = mutual_information_upper_bounds([0.5, 0.5], [[-1e3, 0.0], [1e3, 0.0]], [[1.0, 1.0], [1.0, 1.0]],
    ...                                     [1.0, 1.0], structure="diag")    # the same mixture, declared diagonal
    >>> {m: abs(round(v[m] - u[m], 12)) for m in u}
    {'huber': 0.0, 'kl': 0.0, 'maxent': 0.0, 'best': 0.0}
    """
    out = _upper_parts(weights, means, covs, noise_cov, structure)
    out["best"] = min(out["huber"], out["kl"], out["maxent"])
    lb = log_base(base)
    return {k: float(v / lb) for k, v in out.items()}


#: the SVD of an m×n matrix M is exact for some M + E with ‖E‖₂ ≤ p·eps·‖M‖₂ (LAPACK's backward
#: error, p a modest function of the sizes); forming M = L_n⁻¹AL_i adds n·eps·‖|L_n⁻¹A||L_i|‖.  We
#: take p = SVD_SLACK·(m + n), a generous constant, for the rounding allowance of
#: :func:`affine_mutual_information_upper_bounds`
SVD_SLACK = 8.0


def _affine_factors(gmm, A, cov_noise):
    """Whitened components of ẑ = Ax (x ~ gmm) plus N(0, cov_noise): weights, whitened channel
    matrices M_i = L_n⁻¹AL_i (K, k, d), their left singular vectors (K, k, r) and values (K, r),
    the whitening B = L_n⁻¹A, and the largest ‖|B||L_i|‖_F (for the rounding allowance)."""
    g = _as_gmm(gmm)
    Am = as_matrix(A, "A", cols=g.dim)
    k = Am.shape[0]
    _, Ln = as_cov(cov_noise, "cov_noise", dim=k, return_chol=True)
    B = inv_lower(Ln) @ Am
    keep = g.weights > 0
    w, mu, chols = g.weights[keep], g.means[keep], g._chols[keep]
    M = np.matmul(B[None], chols)
    r = min(k, g.dim)
    U = np.empty((len(w), k, r))
    sv = np.empty((len(w), r))
    for i in range(len(w)):
        Ui, si, _ = channel_svd(M[i])
        U[i], sv[i] = Ui, si[:r]
    scale = max(float(np.linalg.norm(np.abs(B) @ np.abs(c))) for c in chols)
    return w, mu, M, U, sv, B, scale


def affine_mutual_information_upper_bounds(gmm, A, cov_noise, base=None) -> dict:
    r"""Upper bounds on :math:`I(z;\hat z)` for :math:`\hat z = Ax + c`, :math:`x\sim` ``gmm``, and
    :math:`z = \hat z + \mathcal N(0,\Sigma_n)`, stable at any scale of :math:`A` (issue 18).

    The same three bounds as :func:`mutual_information_upper_bounds` on the pushed-forward mixture
    (:func:`theory.affine_pushforward`) — ``huber`` (Thm 2 as printed), ``kl`` (Kolchinsky–Tracey),
    ``maxent`` — and ``best``, but computed in whitened coordinates from the SVD of each
    component's channel :math:`M_i = L_n^{-1}AL_i = U_i\,\mathrm{diag}(s_i)V_i^\top`, so no
    covariance :math:`A\Sigma_iA^\top` (singular, or 10²⁰ beside a noise of 1) is ever added to
    :math:`\Sigma_n`.  With :math:`C_i = I + M_iM_i^\top` (whitened), :math:`\log|C_i| =
    \sum_l\log(1+s_{il}^2)`, :math:`C_j^{-1/2} = I - U_j\,\mathrm{diag}(1-(1+s_j^2)^{-1/2})U_j^\top`:

    .. math:: \mathrm{KL}(N_i\|N_j) = \tfrac12\Big(\|C_j^{-1/2}M_i\|_F^2 - \sum_l\frac{s_{jl}^2}{1+s_{jl}^2}
              + \log|C_j| - \log|C_i| + \|C_j^{-1/2}L_n^{-1}A(\mu_i-\mu_j)\|^2\Big),

    and ``maxent`` is :math:`\tfrac12\sum\log(1+\varsigma^2)` over the singular values ς of
    :math:`[\sqrt{w_i}M_i,\ \sqrt{w_i}L_n^{-1}A(\mu_i-\bar\mu)]_i`, whose Gram matrix is the
    whitened :math:`\operatorname{Cov}\hat z`.  The offset c changes none of them.

    Returns the bounds and ``rounding``: an allowance (nats) for float64 rounding, from the SVD's
    backward error :math:`\Delta = p\,\varepsilon\,\max_i\|\,|L_n^{-1}A|\,|L_i|\,\|_F` with
    :math:`p =` :data:`SVD_SLACK`·(k + d): each :math:`\log(1+s^2)` moves by at most
    :math:`\Delta + \Delta^2` when s moves by Δ, so every bound moves by at most
    ``rounding`` = 4k(Δ + Δ²) (a generous multiple; ~10⁻¹⁰ nats at ‖A‖/σ ~ 100, and it grows
    with ‖A‖/σ: at 10¹¹ float64 itself resolves the channel only to ~10⁻⁵).

    Cost: K SVDs of k×d matrices and K² products of r×k by k×d matrices, O(K² k d min(k, d)).

    Parameters
    ----------
    gmm : GaussianMixture
        The prior of x: ``weights (K,)``, ``means (K, d)``, ``covs (K, d, d)``.
    A : array_like, shape (k, d)
        The encoder's matrix (any scale, rank-deficient or with repeated rows).
    cov_noise : array_like, shape (k, k)
        Σn, symmetric positive definite.
    base : float, optional
        Logarithm base (nats by default).

    Returns
    -------
    dict
        ``{"huber", "kl", "maxent", "best", "rounding"}`` → float.

    Examples
    --------
    x ~ N(0, I₂) through A = 10⁸·[[1, 1], [1, 1]] (rank one, duplicated rows), noise I: every bound
    is the exact ½ log(1 + 4·10¹⁶) (the mutual information of a rank-one Gaussian channel).

    >>> from theory import GaussianMixture
    >>> g = GaussianMixture([1.0], [[0.0, 0.0]], [np.eye(2)])
    >>> u = affine_mutual_information_upper_bounds(g, 1e8 * np.ones((2, 2)), np.eye(2))
    >>> {m: round(u[m] - 0.5 * float(np.log1p(4e16)), 9) for m in ("huber", "kl", "maxent")}
    {'huber': 0.0, 'kl': 0.0, 'maxent': 0.0}
    """
    w, mu, M, U, sv, B, scale = _affine_factors(gmm, A, cov_noise)
    K, k, d = M.shape
    s2 = sv * sv
    logdets = np.sum(np.log1p(s2), axis=1)
    coef = -np.expm1(-0.5 * np.log1p(s2))                                  # 1 − (1 + s²)^(-1/2), accurate for small s
    tr_shift = -np.sum(s2 / (1.0 + s2), axis=1)                            # tr(C_j⁻¹) − k
    KL = np.zeros((K, K))
    for j in range(K):
        Uj = U[j]
        T = np.einsum("kr,ikd->ird", Uj, M)                                # U_jᵀM_i
        Y = M - np.einsum("kr,r,ird->ikd", Uj, coef[j], T)                 # C_j^(-1/2) M_i
        D = (mu - mu[j]) @ B.T                                             # L_n⁻¹A(μ_i − μ_j), (K, k)
        Dy = D - ((D @ Uj) * coef[j][None, :]) @ Uj.T
        KL[:, j] = 0.5 * (np.einsum("ikd,ikd->i", Y, Y) + tr_shift[j] + logdets[j] - logdets
                          + np.einsum("ik,ik->i", Dy, Dy))
    np.fill_diagonal(KL, 0.0)
    KL = np.maximum(KL, 0.0)
    mbar = w @ mu
    F = np.concatenate([np.sqrt(w)[:, None, None] * M,
                        (np.sqrt(w)[:, None] * ((mu - mbar) @ B.T))[:, :, None]], axis=2)   # (K, k, d + 1)
    sF = np.linalg.svd(np.swapaxes(F, 0, 1).reshape(k, K * (d + 1)), compute_uv=False)
    out = {"huber": float(np.sum(w * (-np.log(w) + 0.5 * logdets))),
           "kl": float(pw.kt_bound(w, 0.5 * logdets, KL)),
           "maxent": float(0.5 * np.sum(np.log1p(sF * sF)))}
    out["best"] = min(out.values())
    delta = SVD_SLACK * (k + d) * np.finfo(np.float64).eps * scale
    lb = log_base(base)
    res = {m: v / lb for m, v in out.items()}
    res["rounding"] = float(4 * k * (delta + delta * delta) / lb)
    return res


def affine_output_fisher_trace_upper(gmm, A, cov_noise) -> float:
    r"""An upper bound on :math:`\operatorname{Tr}J(\zeta)`, the Fisher information (location
    family) of the whitened output :math:`\zeta = L_n^{-1}(Ax + c + \varepsilon)` of the affine
    Gaussian channel, :math:`x\sim` ``gmm``.

    ζ is the mixture :math:`\sum_i w_i\mathcal N(\nu_i, C_i)`, :math:`C_i = I + M_iM_i^\top`.  Fisher
    information is convex in the density (:math:`\nabla p\nabla p^\top/p` is jointly convex in
    :math:`(p, \nabla p)`), and :math:`J(\mathcal N(\nu, C)) = C^{-1}`, so

    .. math:: \operatorname{Tr}J(\zeta) \le \sum_i w_i\operatorname{Tr}C_i^{-1}
              = \sum_i w_i\Big(k - r + \sum_l \frac{1}{1+s_{il}^2}\Big) \le k.

    Parameters
    ----------
    gmm : GaussianMixture
        The prior of x: ``weights (K,)``, ``means (K, d)``, ``covs (K, d, d)``.
    A : array_like, shape (k, d)
        The encoder's matrix.
    cov_noise : array_like, shape (k, k)
        Σn, symmetric positive definite.

    Returns
    -------
    float
        The bound on Tr J(ζ), at most k.

    Examples
    --------
    One standard Gaussian through the identity with unit noise: ζ ~ N(0, 2I), J = I/2, so the
    bound is exact, k/2.

    >>> from theory import GaussianMixture
    >>> affine_output_fisher_trace_upper(GaussianMixture([1.0], [[0.0, 0.0, 0.0]], [np.eye(3)]), np.eye(3), np.eye(3))
    1.5
    """
    w, _, M, _, sv, _, _ = _affine_factors(gmm, A, cov_noise)
    k, r = M.shape[1], sv.shape[1]
    return float(np.sum(w * ((k - r) + np.sum(1.0 / (1.0 + sv * sv), axis=1))))


def _method_bound(weights, means, covs, noise_cov, method, structure):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if method == "best":
        return mutual_information_upper_bounds(weights, means, covs, noise_cov, structure=structure)["best"]
    return _upper_parts(weights, means, covs, noise_cov, structure, huber=method == "huber",
                        kl=method == "kl", maxent=method == "maxent")[method]


def conditional_entropy_lower_bound(h_x, weights, means, covs, noise_cov, method: str = "huber",
                                    base=None, *, structure="full") -> float:
    r"""Lower bound on :math:`H(x|z)` from :math:`H(x)` (CEM Prop. 2 + an upper bound on H(z)).

    .. math:: H(x|z) = H(x) - I(z;\hat z) \ge H(x) - U_{\text{method}}

    where :math:`U` is an upper bound on :math:`I(z;\hat z)` from
    :func:`mutual_information_upper_bounds`: ``"huber"`` reproduces Theorem 2 exactly,
    ``"kl"`` is never looser, ``"maxent"`` needs no mixture assumption, ``"best"`` takes the
    tightest. ``means`` may be ``None`` for ``"huber"``.  Only the bound asked for is computed:
    ``"maxent"`` alone makes no mixture assumption, so it checks the covariance of ẑ it uses
    (symmetric, positive semidefinite), not each component.

    Assumptions: :math:`\hat z = f(x)` deterministic, distributed as the given mixture (the
    bound is an *estimate* when the mixture is fitted), ``h_x`` is the true H(x) or a lower bound.

    Parameters
    ----------
    h_x : float
        H(x) in nats (or ``base`` units).
    weights : (K,), means : (K, k) or None, covs : (K, k, k) PSD, noise_cov : (k, k) SPD
    method : {"huber", "kl", "maxent", "best"}
    structure : {"full", "diag", "scaled"}
        As in :func:`mutual_information_upper_bounds`.

    Returns
    -------
    float
        H(x) − U_method.

    Examples
    --------
    Gaussian x in d = 1 through z = x + N(0, 1/4): every method is exact.

    >>> hx = 0.5 * np.log(2 * np.pi * np.e)
    >>> b = conditional_entropy_lower_bound(hx, [1.0], [[0.0]], [[[1.0]]], [[0.25]], method="best")
    >>> round(float(b - 0.5 * np.log(2 * np.pi * np.e * 0.2)), 12)
    0.0
    """
    h = as_scalar(h_x, "h_x")
    lb = log_base(base)
    u = _method_bound(weights, means, covs, noise_cov, method, structure)
    return float(h - u / lb)


def certifiable_mse(weights, means, covs, noise_cov, dim, *, h_x_upper=0.0, method: str = "best",
                    structure="full") -> float:
    r"""The largest per-dimension MSE that Theorems 1+2 can certify.

    For data in :math:`[0,1]^d` the uniform law maximises entropy, so :math:`H(x)\le 0`
    (``h_x_upper``; give a different value for another support). Theorem 2 (with ``method``'s
    upper bound on :math:`I(z;\hat z)`) then gives at best :math:`H(x|z)\ge h_{x,\max} - U`, and
    Theorem 1 turns that into

    .. math:: \xi_{\text{cert}} = \frac{1}{2\pi e}\exp\Big(\frac{2(h_{x,\max} - U)}{d}\Big)
              \le \frac{1}{2\pi e}\approx 0.0585 .

    A claim of certified MSE above this value is not supported by the theorems; the actual
    certificate needs a *lower* bound on H(x), which for real data is unknown (and may be −∞
    when data lie on a low-dimensional set).

    Parameters
    ----------
    weights : array_like, shape (k,)
        Mixture weights of ẑ.
    means : array_like, shape (k, m)
        Component means of ẑ.
    covs : array_like, shape (k, m, m)
        Component covariances of ẑ (positive semidefinite).
    noise_cov : array_like, shape (m, m) (or (m,) with ``structure="diag"``)
        Covariance Σp of the feature noise.
    dim : int
        Input dimension d.
    h_x_upper : float
        An upper bound on H(x) in nats (0 for data in [0, 1]^d).
    method : {'best', 'huber', 'kl', 'maxent'}
        Which upper bound U on I(z; ẑ); ``'best'`` takes the smallest.
    structure : {'full', 'diag', 'scaled'}
        The declared structure of the covariances (see :func:`mutual_information_upper_bounds`).

    Returns
    -------
    float
        ξ_cert, per dimension.

    Examples
    --------
    >>> c = certifiable_mse([1.0], [[0.0]], [[[0.0]]], [[1.0]], 1)     # no information leaked
    >>> round(c * 2 * np.pi * np.e, 12)
    1.0
    """
    d = as_dim(dim, "dim")
    hmax = as_scalar(h_x_upper, "h_x_upper")
    u = _method_bound(weights, means, covs, noise_cov, method, structure)
    return mse_lower_bound(hmax - u, d)


# --- Fisher information ------------------------------------------------------------------------

def fisher_information_linear(A, cov_noise) -> np.ndarray:
    r"""Fisher information :math:`A^\top\Sigma_n^{-1}A` of :math:`z = Ax + \mathcal N(0,\Sigma_n)`
    about x (the same for every x; for a nonlinear f use its Jacobian as A).

    Parameters
    ----------
    A : array_like, shape (m, d)
        The linear encoder (or the Jacobian of a nonlinear one at a point).
    cov_noise : array_like, shape (m, m)
        Σn, symmetric positive definite.

    Returns
    -------
    numpy.ndarray, shape (d, d)
        :math:`I_F = A^\top\Sigma_n^{-1}A` (float64, symmetric).

    Examples
    --------
    >>> fisher_information_linear(np.eye(2), 0.25 * np.eye(2))
    array([[4., 0.],
           [0., 4.]])
    """
    Am = as_matrix(A, "A")
    cn = as_cov(cov_noise, "cov_noise", dim=Am.shape[0])
    Ln = cholesky(cn, "cov_noise")
    B = inv_lower(Ln) @ Am
    F = B.T @ B
    return 0.5 * (F + F.T)


def expected_fisher_information(jacobians, cov_noise) -> np.ndarray:
    r"""Expected Fisher information :math:`E_x[J_f(x)^\top\Sigma_n^{-1}J_f(x)]` of a nonlinear encoder
    :math:`z = f(x) + \mathcal N(0,\Sigma_n)`, averaged over a batch of Jacobians.

    Parameters
    ----------
    jacobians : array_like, shape (N, k, d)
        :math:`J_f(x_n)` for N samples of the data (e.g. from ``torch.func.jacrev``).
    cov_noise : array_like, shape (k, k), SPD

    Returns
    -------
    ndarray, shape (d, d) -- feed to :func:`cramer_rao_mse` / :func:`van_trees_mse`.

    >>> J = np.stack([np.eye(2), 3 * np.eye(2)])            # two samples
    >>> expected_fisher_information(J, np.eye(2))           # (1 + 9) / 2 = 5
    array([[5., 0.],
           [0., 5.]])
    """
    J = as_array(jacobians, "jacobians", ndim=3)
    cn = as_cov(cov_noise, "cov_noise", dim=J.shape[1])
    B = inv_lower(cholesky(cn, "cov_noise")) @ J                     # (N, k, d)
    F = np.einsum("nkd,nke->de", B, B) / J.shape[0]
    return 0.5 * (F + F.T)


def _ratio(d: int, total_information: float) -> float:
    """d / information, with an honest ``inf`` (no overflow warning) for (near-)zero information."""
    if total_information <= 0 or d / 1e300 >= total_information:
        return math.inf
    return float(d / total_information)


def _fisher(fisher_info, name="fisher_info"):
    return as_cov(fisher_info, name, psd=True)


def cramer_rao_mse(fisher_info, matrix: bool = False) -> float:
    r"""Cramér–Rao bound on the per-dimension MSE of *unbiased* attackers.

    ``matrix=False`` (default, Maeng et al. 2023): :math:`1/\mathrm{dFIL}`,
    :math:`\mathrm{dFIL} = \operatorname{Tr}I_F/d`. ``matrix=True``: :math:`\operatorname{Tr}(I_F^{-1})/d`
    (tighter; ``inf`` when :math:`I_F` is singular -- no unbiased estimator exists).

    Parameters
    ----------
    fisher_info : array_like, shape (d, d)
        The Fisher information matrix :math:`I_F` about x.
    matrix : bool
        Use :math:`\operatorname{Tr}(I_F^{-1})/d` instead of :math:`1/\mathrm{dFIL}`.

    Returns
    -------
    float
        The bound per dimension (``inf`` when no unbiased estimator exists).

    Examples
    --------
    >>> cramer_rao_mse(4 * np.eye(3))
    0.25
    """
    F = _fisher(fisher_info)
    d = F.shape[0]
    if matrix:
        ev = np.linalg.eigvalsh(F)
        if ev.min() <= max(1e-12 * ev.max(), 1e-300):   # (numerically) singular: Tr F⁻¹ is infinite
            return math.inf
        return float(np.sum(1.0 / ev) / d)
    tr = float(np.trace(F))
    return _ratio(d, tr)


def van_trees_mse(fisher_info, prior_fisher, matrix: bool = False) -> float:
    r"""Van Trees (Bayesian Cramér–Rao) bound on the per-dimension MSE of *any* attacker.

    .. math:: \mathrm{MSE}/d \ge \frac{d}{\operatorname{Tr}E[I_F] + \operatorname{Tr}J_{prior}}
              \quad(\text{docs/ground-truths.md}),

    or, with ``matrix=True``, :math:`\operatorname{Tr}((E[I_F]+J_{prior})^{-1})/d` (tighter; needs
    both matrices). Assumes a prior density that is differentiable and vanishes at the boundary
    (e.g. Gaussian mixtures).

    Parameters
    ----------
    fisher_info : array_like (d, d)
        Expected Fisher information of the channel, :math:`E_x[I_F(x)]`.
    prior_fisher : array_like (d, d) or float
        Prior Fisher information :math:`J = E[\nabla\log p\,\nabla\log p^\top]`, or its trace.
    matrix : bool
        The matrix form (both arguments matrices).

    Returns
    -------
    float
        The bound per dimension.

    Examples
    --------
    Gaussian prior N(0, I), z = x + N(0, 1/4): d/(4d + d) = 0.2 (equals the MMSE here).

    >>> round(van_trees_mse(4 * np.eye(3), np.eye(3)), 12)
    0.2
    """
    F = _fisher(fisher_info)
    d = F.shape[0]
    if np.ndim(prior_fisher) == 0:
        if matrix:
            raise ValueError("prior_fisher must be a (d, d) matrix when matrix=True; got a scalar")
        tj = as_scalar(prior_fisher, "prior_fisher", nonneg=True)
        return _ratio(d, float(np.trace(F)) + tj)
    J = as_cov(prior_fisher, "prior_fisher", dim=d, psd=True)
    if matrix:
        M = F + J
        L = cholesky(M, "fisher_info + prior_fisher")
        return float(np.trace(spd_inverse_from_chol(L)) / d)
    return _ratio(d, float(np.trace(F) + np.trace(J)))


def fisher_bounds(A, cov_noise, prior_fisher=None) -> dict:
    r"""Fisher-information bounds for :math:`z = Ax + \mathcal N(0,\Sigma_n)`, per dimension.

    Returns ``dfil``, ``cramer_rao`` (1/dFIL, unbiased attackers), ``cramer_rao_matrix``
    (Tr I_F⁻¹ / d) and, when ``prior_fisher`` (matrix or trace) is given, ``van_trees`` (and
    ``van_trees_matrix`` for a matrix).

    Parameters
    ----------
    A : array_like, shape (m, d)
        The linear encoder.
    cov_noise : array_like, shape (m, m)
        Σn, symmetric positive definite.
    prior_fisher : array_like, shape (d, d), or float, optional
        The prior's Fisher information :math:`J(\text{prior})` (a matrix, or its trace).

    Returns
    -------
    dict
        ``{"dfil", "cramer_rao", "cramer_rao_matrix"[, "van_trees"[, "van_trees_matrix"]]}``, floats
        per dimension.

    Examples
    --------
    >>> b = fisher_bounds(np.eye(2), 0.25 * np.eye(2), prior_fisher=np.eye(2))
    >>> b["dfil"], b["cramer_rao"], round(b["van_trees"], 12)
    (4.0, 0.25, 0.2)
    """
    F = fisher_information_linear(A, cov_noise)
    d = F.shape[0]
    out = {"dfil": float(np.trace(F) / d), "cramer_rao": cramer_rao_mse(F),
           "cramer_rao_matrix": cramer_rao_mse(F, matrix=True)}
    if prior_fisher is not None:
        out["van_trees"] = van_trees_mse(F, prior_fisher)
        if np.ndim(prior_fisher) == 2:
            out["van_trees_matrix"] = van_trees_mse(F, prior_fisher, matrix=True)
    return out
