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

All computations are float64 with Cholesky factorisations; entropies are in nats unless ``base``
is given.
"""

from __future__ import annotations

import math

import numpy as np
from ._validate import (as_array, as_cov, as_matrix, as_points, cholesky, inv_lower, log_base,
                        logdet_chol, spd_inverse_from_chol)

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


def _precision(Am, cx, cn):
    """Posterior precision Σx⁻¹ + AᵀΣn⁻¹A and the Cholesky factors of Σx and Σn."""
    Lx = cholesky(cx, "cov_x")
    Ln = cholesky(cn, "cov_noise")
    d = cx.shape[0]
    prec_x = spd_inverse_from_chol(Lx)
    B = inv_lower(Ln) @ Am                                # Ln⁻¹ A
    lam = prec_x + B.T @ B
    return 0.5 * (lam + lam.T), Lx, Ln


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
    lam, _, _ = _precision(Am, cx, cn)
    L = cholesky(lam, "posterior precision")
    return spd_inverse_from_chol(L)


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
    P = linear_gaussian_posterior_cov(Am, cx, cn)
    Ln = cholesky(cn, "cov_noise")
    gain = P @ (spd_inverse_from_chol(Ln) @ Am).T      # P Aᵀ Σn⁻¹, shape (d, k)
    out = mu + (zz - Am @ mu) @ gain.T
    return out[0] if single else out


def linear_gaussian_mmse(A, cov_x, cov_noise) -> float:
    r"""Total minimal MSE :math:`E\|x - E[x|z]\|^2 = \operatorname{Tr} P` (CEM Prop. 1, Eq. 1).

    Divide by ``d`` for the per-dimension :math:`\xi` of Theorem 1.

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
    return float(np.trace(linear_gaussian_posterior_cov(A, cov_x, cov_noise)))


def linear_gaussian_conditional_entropy(A, cov_x, cov_noise, base=None) -> float:
    r"""Conditional entropy :math:`H(x|z) = \tfrac12\log((2\pi e)^d\det P)` (nats unless ``base``).

    Computed as :math:`\tfrac12(d\log 2\pi e - \log\det(\Sigma_x^{-1} + A^\top\Sigma_n^{-1}A))`.

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
    lam, _, _ = _precision(Am, cx, cn)
    L = cholesky(lam, "posterior precision")
    d = cx.shape[0]
    return float(0.5 * (d * LOG_2PI_E - logdet_chol(L)) / log_base(base))


def linear_gaussian_mutual_information(A, cov_x, cov_noise, base=None) -> float:
    r"""Mutual information :math:`I(x;z) = H(x) - H(x|z)` of the linear-Gaussian channel.

    .. math:: I(x;z) = \tfrac12\big(\log\det\Sigma_x + \log\det(\Sigma_x^{-1} + A^\top\Sigma_n^{-1}A)\big)
              = \tfrac12\log\frac{\det(A\Sigma_x A^\top + \Sigma_n)}{\det\Sigma_n}

    (computed by the first form; the second, :math:`H(z) - H(z|x)`, is what the tests compare with).

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
    lam, Lx, _ = _precision(Am, cx, cn)
    L = cholesky(lam, "posterior precision")
    return float(0.5 * (logdet_chol(Lx) + logdet_chol(L)) / log_base(base))
