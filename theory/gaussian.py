r"""Gaussian entropy and the linear-Gaussian channel: the exact ground truth for Theorem 1.

Setting (CEM paper, Xia et al. CVPR 2025, Prop. 1 and Thm 1; docs/ground-truths.md): a prior
:math:`x \sim \mathcal N(\mu, \Sigma_x)` in :math:`\mathbb R^d` observed through a linear channel

.. math:: z = A x + \varepsilon, \qquad \varepsilon \sim \mathcal N(0, \Sigma_n), \quad A \in \mathbb R^{k\times d}.

The posterior is Gaussian with covariance independent of :math:`z`,

.. math:: P = (\Sigma_x^{-1} + A^\top \Sigma_n^{-1} A)^{-1},

so the minimal (total) MSE of Prop. 1 is :math:`\operatorname{Tr} P`, the conditional entropy is
:math:`H(x|z) = \tfrac12\log((2\pi e)^d \det P)` and
:math:`I(x;z) = H(x) - H(x|z) = \tfrac12 \log\det(A\Sigma_x A^\top + \Sigma_n)/\det\Sigma_n`.
Theorem 1 holds with equality iff :math:`P` is isotropic (all eigenvalues equal).

All computations are float64; entropies are in nats unless ``base`` is given.

**Numerical stability at any scale** (issue 18).  The precision :math:`\Sigma_x^{-1} +
A^\top\Sigma_n^{-1}A` is never formed: with :math:`\Sigma_x = L_xL_x^\top`,
:math:`\Sigma_n = L_nL_n^\top` and the whitened channel :math:`M = L_n^{-1}AL_x = U\,\mathrm{diag}(s)
\,V^\top` (an SVD; V completed to a square orthogonal matrix, s padded with zeros),

.. math:: P = L_xV\,\mathrm{diag}\big((1+s^2)^{-1}\big)V^\top L_x^\top,\qquad
          \log\det P = \log\det\Sigma_x - \textstyle\sum_j\log(1+s_j^2),

.. math:: PA^\top\Sigma_n^{-1} = L_xV\,\mathrm{diag}\big(s/(1+s^2)\big)U^\top L_n^{-1}.

Every quantity is a product of well-scaled factors: nothing of size 10²⁰ is added to something of
size 1, so rank-deficient A, duplicated rows and :math:`\|A\|/\sigma` from 10⁻⁶ to 10¹⁰ are exact
to float64's relative precision on the singular values (the SVD is backward stable).  A direct
addition lost the smallest eigenvalue (≥ 1 in whitened units) when :math:`\|A\|/\sigma\approx 10^{10}`
and reported it as −4.89; the tests compare with mpmath at 50 digits.
"""

from __future__ import annotations

import math

import numpy as np
from ._validate import as_array, as_cov, as_matrix, as_points, cholesky, inv_lower, log_base, logdet_chol

__all__ = [
    "gaussian_entropy",
    "linear_gaussian_posterior_cov",
    "linear_gaussian_posterior_mean",
    "linear_gaussian_mmse",
    "linear_gaussian_conditional_entropy",
    "linear_gaussian_mutual_information",
]

LOG_2PI_E = math.log(2.0 * math.pi * math.e)


def gaussian_entropy(cov, base=None) -> float:
    r"""Differential entropy of :math:`\mathcal N(\mu, \Sigma)`.

    .. math:: H = \tfrac12 \log\big((2\pi e)^d \det\Sigma\big)

    Parameters
    ----------
    cov : array_like, shape (d, d)
        Symmetric positive-definite covariance.
    base : float, optional
        Logarithm base (``2`` for bits); nats when omitted.

    Returns
    -------
    float

    Examples
    --------
    >>> round(gaussian_entropy(np.eye(1)), 12)     # 0.5 * log(2*pi*e)
    1.418938533205
    >>> round(gaussian_entropy(np.eye(3) / (2 * np.pi * np.e)), 12)
    0.0
    """
    c = as_cov(cov, "cov")
    L = cholesky(c, "cov")
    d = c.shape[0]
    return float(0.5 * (d * LOG_2PI_E + logdet_chol(L)) / log_base(base))


def _channel(A, cov_x, cov_noise):
    Am = as_matrix(A, "A")
    k, d = Am.shape
    cx = as_cov(cov_x, "cov_x", dim=d)
    cn = as_cov(cov_noise, "cov_noise", dim=k)
    return Am, cx, cn


def channel_svd(M: np.ndarray):
    r"""SVD of a whitened channel ``M`` (k, d): ``(U, s, V)`` with ``M = U[:, :r] diag(s[:r]) V[:, :r]ᵀ``.

    ``V`` (d, d) is square orthogonal and ``s`` (d,) is padded with zeros beyond r = min(k, d), so
    :math:`I + M^\top M = V\,\mathrm{diag}(1 + s^2)V^\top` exactly; ``U`` is (k, r).

    >>> U, s, V = channel_svd(np.array([[3.0, 0.0, 0.0]]))
    >>> s.tolist(), V.shape, U.shape
    ([3.0, 0.0, 0.0], (3, 3), (1, 1))
    """
    k, d = M.shape
    U, s, Vh = np.linalg.svd(M, full_matrices=k < d)
    if k < d:
        s = np.concatenate([s, np.zeros(d - k)])
    return U, s, Vh.T


def _factors(Am, cx, cn):
    """Cholesky factors Lx, Ln and the SVD of the whitened channel Ln⁻¹ A Lx."""
    Lx = cholesky(cx, "cov_x")
    Ln = cholesky(cn, "cov_noise")
    Wn = inv_lower(Ln)
    U, s, V = channel_svd(Wn @ Am @ Lx)
    return Lx, Wn, U, s, V


def _posterior_factor(Lx, s, V) -> np.ndarray:
    """F with P = F Fᵀ: Lx V diag((1 + s²)^(-1/2))."""
    return (Lx @ V) / np.sqrt(1.0 + s * s)[None, :]


def linear_gaussian_posterior_cov(A, cov_x, cov_noise) -> np.ndarray:
    r"""Posterior covariance of :math:`x` given :math:`z = Ax + \varepsilon` (Gaussian prior).

    .. math:: P = (\Sigma_x^{-1} + A^\top \Sigma_n^{-1} A)^{-1}

    It does not depend on :math:`z` or on the prior mean (docs/ground-truths.md).

    Parameters
    ----------
    A : array_like, shape (k, d)
    cov_x : array_like, shape (d, d), SPD prior covariance
    cov_noise : array_like, shape (k, k), SPD noise covariance

    Returns
    -------
    numpy.ndarray, shape (d, d)
        P (symmetric positive definite).

    Examples
    --------
    >>> linear_gaussian_posterior_cov(np.eye(2), np.eye(2), 0.25 * np.eye(2))
    array([[0.2, 0. ],
           [0. , 0.2]])
    """
    Am, cx, cn = _channel(A, cov_x, cov_noise)
    Lx, _, _, s, V = _factors(Am, cx, cn)
    F = _posterior_factor(Lx, s, V)
    P = F @ F.T
    return 0.5 * (P + P.T)


def linear_gaussian_posterior_mean(A, cov_x, cov_noise, z, mean_x=None) -> np.ndarray:
    r"""Posterior mean :math:`E[x|z] = \mu + P A^\top \Sigma_n^{-1}(z - A\mu)` for a batch of ``z``.

    Parameters
    ----------
    A : array_like, shape (k, d)
        The channel matrix.
    cov_x : array_like, shape (d, d)
        Prior covariance (symmetric positive definite).
    cov_noise : array_like, shape (k, k)
        Noise covariance (symmetric positive definite).
    z : array_like, shape (N, k) or (k,)
        Observations.
    mean_x : array_like, shape (d,), optional (zero when omitted)
        Prior mean.

    Returns
    -------
    ndarray, shape (N, d) (or (d,) for a single ``z``)

    Examples
    --------
    >>> linear_gaussian_posterior_mean(np.eye(1), np.eye(1), 0.25 * np.eye(1), [1.0])
    array([0.8])
    """
    Am, cx, cn = _channel(A, cov_x, cov_noise)
    k, d = Am.shape
    mu = np.zeros(d) if mean_x is None else as_array(mean_x, "mean_x", ndim=1)
    if mu.shape != (d,):
        raise ValueError(f"mean_x must have shape ({d},); got {mu.shape}")
    zz, single = as_points(z, "z", k)
    Lx, Wn, U, s, V = _factors(Am, cx, cn)
    r = U.shape[1]
    gain = ((Lx @ V[:, :r]) * (s[:r] / (1.0 + s[:r] ** 2))[None, :]) @ (U.T @ Wn)   # P Aᵀ Σn⁻¹, (d, k)
    out = mu + (zz - Am @ mu) @ gain.T
    return out[0] if single else out


def linear_gaussian_mmse(A, cov_x, cov_noise) -> float:
    r"""Total minimal MSE :math:`E\|x - E[x|z]\|^2 = \operatorname{Tr} P` (CEM Prop. 1, Eq. 1).

    Divide by ``d`` for the per-dimension :math:`\xi` of Theorem 1.  Computed as
    :math:`\|L_xV(I + \mathrm{diag}(s^2))^{-1/2}\|_F^2` (a sum of squares: no cancellation).

    Parameters
    ----------
    A : array_like, shape (m, d)
        The channel matrix.
    cov_x : array_like, shape (d, d)
        Prior covariance Σx (symmetric positive definite).
    cov_noise : array_like, shape (m, m)
        Noise covariance Σn (symmetric positive definite).

    Returns
    -------
    float
        Tr P, with :math:`P = (\Sigma_x^{-1} + A^\top\Sigma_n^{-1}A)^{-1}` the posterior covariance.

    Examples
    --------
    >>> round(linear_gaussian_mmse(np.eye(4), np.eye(4), 0.25 * np.eye(4)), 12)   # 4 * 0.2
    0.8
    """
    Am, cx, cn = _channel(A, cov_x, cov_noise)
    Lx, _, _, s, V = _factors(Am, cx, cn)
    return float(np.sum(_posterior_factor(Lx, s, V) ** 2))


def linear_gaussian_conditional_entropy(A, cov_x, cov_noise, base=None) -> float:
    r"""Conditional entropy :math:`H(x|z) = \tfrac12\log((2\pi e)^d\det P)` (nats unless ``base``).

    Computed as :math:`\tfrac12(d\log 2\pi e + \log\det\Sigma_x - \sum_j\log(1+s_j^2))` (module docstring).

    Parameters
    ----------
    A : array_like, shape (m, d)
        The channel matrix.
    cov_x : array_like, shape (d, d)
        Prior covariance (symmetric positive definite).
    cov_noise : array_like, shape (m, m)
        Noise covariance (symmetric positive definite).
    base : float, optional
        Logarithm base (nats by default).

    Returns
    -------
    float
        H(x|z).

    Examples
    --------
    >>> h = linear_gaussian_conditional_entropy(np.eye(1), np.eye(1), 0.25 * np.eye(1))
    >>> abs(round(float(h - 0.5 * np.log(2 * np.pi * np.e * 0.2)), 12))
    0.0
    """
    Am, cx, cn = _channel(A, cov_x, cov_noise)
    Lx, _, _, s, _ = _factors(Am, cx, cn)
    d = cx.shape[0]
    return float(0.5 * (d * LOG_2PI_E + logdet_chol(Lx) - np.sum(np.log1p(s * s))) / log_base(base))


def linear_gaussian_mutual_information(A, cov_x, cov_noise, base=None) -> float:
    r"""Mutual information :math:`I(x;z) = H(x) - H(x|z)` of the linear-Gaussian channel.

    .. math:: I(x;z) = \tfrac12\sum_j\log(1 + s_j^2)
              = \tfrac12\log\frac{\det(A\Sigma_x A^\top + \Sigma_n)}{\det\Sigma_n}

    (s the singular values of the whitened channel, module docstring; the second form,
    :math:`H(z) - H(z|x)`, is what the tests compare with).

    Parameters
    ----------
    A : array_like, shape (m, d)
        The channel matrix.
    cov_x : array_like, shape (d, d)
        Prior covariance (symmetric positive definite).
    cov_noise : array_like, shape (m, m)
        Noise covariance (symmetric positive definite).
    base : float, optional
        Logarithm base (nats by default).

    Returns
    -------
    float
        I(x; z) ≥ 0.

    Examples
    --------
    >>> round(linear_gaussian_mutual_information(np.eye(1), np.eye(1), np.eye(1)), 12)  # log(2)/2
    0.34657359028
    """
    Am, cx, cn = _channel(A, cov_x, cov_noise)
    _, _, _, s, _ = _factors(Am, cx, cn)
    return float(0.5 * np.sum(np.log1p(s * s)) / log_base(base))
