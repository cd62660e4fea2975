"""Hypothesis strategies for property tests of entropy/MSE bounds (needs ``hypothesis``).

Users can test their own code with the same random instances the package is tested on::

    from hypothesis import given
    from theory.strategies import linear_gaussian_channels
    import theory

    @given(linear_gaussian_channels())
    def test_thm1(ch):
        A, cov_x, cov_noise = ch
        d = cov_x.shape[0]
        h = theory.linear_gaussian_conditional_entropy(A, cov_x, cov_noise)
        assert theory.mse_lower_bound(h, d) <= theory.linear_gaussian_mmse(A, cov_x, cov_noise) / d * (1 + 1e-9)

Matrices are built from drawn eigenvalues and a drawn orthogonal basis (QR of a drawn matrix
for d ≤ 8; above that a product of three drawn Householder reflections, so that a 64×64 example
costs 3·64 drawn numbers instead of 64²), so the condition number is controlled by
``min_eig``/``max_eig`` and examples shrink towards diagonal matrices with equal eigenvalues.
``log_uniform=True`` spreads the eigenvalues on a log scale (near-singular matrices are then
common); :func:`psd_matrices` zeroes some of them (singular, as a push-forward through an encoder
with more outputs than inputs); ``coincident=True`` in :func:`gaussian_mixtures` lets components
repeat an earlier one exactly.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from hypothesis import strategies as st

from .mixture import GaussianMixture

__all__ = [
    "LinearGaussianChannel",
    "spd_matrices",
    "psd_matrices",
    "simplex_weights",
    "gaussian_mixtures",
    "linear_gaussian_channels",
]


class LinearGaussianChannel(NamedTuple):
    """``z = A x + N(0, cov_noise)`` with prior ``x ~ N(0, cov_x)``; unpacks as ``A, cov_x, cov_noise``."""

    A: np.ndarray
    cov_x: np.ndarray
    cov_noise: np.ndarray


def _ints(v):
    return st.just(v) if isinstance(v, int) else v


#: above this dimension the orthogonal basis is a product of Householder reflections
FULL_QR_MAX_DIM = 8


def _orthogonal(draw, d: int) -> np.ndarray:
    if d <= FULL_QR_MAX_DIM:
        entries = draw(st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=d * d, max_size=d * d))
        M = np.asarray(entries, dtype=np.float64).reshape(d, d) + 3.0 * np.eye(d)  # well conditioned
        Q, R = np.linalg.qr(M)
        return Q * np.sign(np.diag(R))
    Q = np.eye(d)
    for _ in range(3):
        v = np.asarray(draw(st.lists(st.floats(-1.0, 1.0, allow_nan=False), min_size=d, max_size=d)))
        nv = float(v @ v)
        if nv > 1e-12:                      # shrinks to v = 0: no reflection
            Q = Q - (2.0 / nv) * np.outer(Q @ v, v)
    return Q


def _eigenvalues(draw, d, min_eig, max_eig, log_uniform):
    if log_uniform:
        lo, hi = np.log(min_eig), np.log(max_eig)
        return np.exp(np.asarray(draw(st.lists(st.floats(lo, hi), min_size=d, max_size=d))))
    return np.asarray(draw(st.lists(st.floats(min_eig, max_eig), min_size=d, max_size=d)))


@st.composite
def spd_matrices(draw, dim=st.integers(1, 4), min_eig: float = 0.1, max_eig: float = 10.0,
                 isotropic: bool = False, log_uniform: bool = False):
    """Symmetric positive-definite float64 matrices with eigenvalues in ``[min_eig, max_eig]``.

    ``dim`` is an int or a strategy of ints; ``isotropic=True`` draws multiples of the identity;
    ``log_uniform=True`` draws log-eigenvalues uniformly (condition numbers near
    ``max_eig/min_eig`` become common).

    Parameters
    ----------
    draw : callable
        Hypothesis's ``draw`` (supplied by ``@st.composite``; call ``spd_matrices(...)`` without it).
    dim : int or strategy of int
        The dimension d.
    min_eig, max_eig : float
        Range of the eigenvalues.
    isotropic, log_uniform : bool
        See above.

    Returns
    -------
    strategy of numpy.ndarray, shape (d, d)
    """
    if not 0 < min_eig <= max_eig:
        raise ValueError(f"need 0 < min_eig <= max_eig; got {min_eig}, {max_eig}")
    d = draw(_ints(dim))
    if isotropic:
        return draw(st.floats(min_eig, max_eig)) * np.eye(d)
    ev = _eigenvalues(draw, d, min_eig, max_eig, log_uniform)
    Q = _orthogonal(draw, d)
    S = (Q * ev) @ Q.T
    return 0.5 * (S + S.T)


@st.composite
def psd_matrices(draw, dim=st.integers(1, 4), rank=None, min_eig: float = 0.1, max_eig: float = 10.0):
    """Symmetric positive *semi*definite matrices of rank ``rank`` (an int, a strategy, or None for
    0..d): eigenvalues in ``[min_eig, max_eig]`` on ``rank`` directions, exactly 0 on the others.

    Parameters
    ----------
    draw : callable
        Hypothesis's ``draw`` (supplied by ``@st.composite``).
    dim : int or strategy of int
        The dimension d.
    rank : int, strategy of int, or None
        The rank r (None: any of 0..d).
    min_eig, max_eig : float
        Range of the nonzero eigenvalues.

    Returns
    -------
    strategy of numpy.ndarray, shape (d, d)
    """
    d = draw(_ints(dim))
    r = draw(st.integers(0, d)) if rank is None else min(draw(_ints(rank)), d)
    ev = np.zeros(d)
    ev[:r] = _eigenvalues(draw, r, min_eig, max_eig, False)
    Q = _orthogonal(draw, d)
    S = (Q * ev) @ Q.T
    return 0.5 * (S + S.T)


@st.composite
def simplex_weights(draw, n=st.integers(1, 4), min_weight: float = 0.02):
    """Probability vectors of length ``n`` with every entry >= ``min_weight``.

    Parameters
    ----------
    draw : callable
        Hypothesis's ``draw`` (supplied by ``@st.composite``).
    n : int or strategy of int
        Length of the vector.
    min_weight : float
        Smallest entry (n·min_weight ≤ 1).

    Returns
    -------
    strategy of numpy.ndarray, shape (n,)
        Entries ≥ ``min_weight``, summing to 1.
    """
    k = draw(_ints(n))
    if k * min_weight >= 1.0 + 1e-12:
        raise ValueError(f"min_weight * n must be < 1; got {min_weight} * {k}")
    raw = np.asarray(draw(st.lists(st.floats(0.0, 1.0), min_size=k, max_size=k))) + 1e-3
    w = min_weight + (1.0 - k * min_weight) * raw / raw.sum()
    return w / w.sum()


@st.composite
def gaussian_mixtures(draw, dim=st.integers(1, 3), n_components=st.integers(1, 4),
                      mean_scale: float = 3.0, min_eig: float = 0.1, max_eig: float = 2.0,
                      min_weight: float = 0.02, log_uniform: bool = False, coincident: bool = False):
    """:class:`theory.GaussianMixture` instances with means in ``[-mean_scale, mean_scale]^d``.

    ``log_uniform`` as in :func:`spd_matrices`; ``coincident=True`` lets each component after the
    first repeat an earlier one (same mean and covariance) -- examples shrink towards no repeats.

    Parameters
    ----------
    draw : callable
        Hypothesis's ``draw`` (supplied by ``@st.composite``).
    dim, n_components : int or strategy of int
        The dimension d and the number of components K.
    mean_scale : float
        Half-width of the box of the means.
    min_eig, max_eig : float
        Range of the covariances' eigenvalues.
    min_weight : float
        Smallest weight.
    log_uniform, coincident : bool
        See above.

    Returns
    -------
    strategy of GaussianMixture
        ``weights (K,)``, ``means (K, d)``, ``covs (K, d, d)``.
    """
    d = draw(_ints(dim))
    K = draw(_ints(n_components))
    w = draw(simplex_weights(K, min_weight=min_weight))
    means = np.asarray(draw(st.lists(st.floats(-mean_scale, mean_scale), min_size=K * d,
                                     max_size=K * d))).reshape(K, d)
    covs = np.stack([draw(spd_matrices(d, min_eig, max_eig, log_uniform=log_uniform)) for _ in range(K)])
    if coincident:
        for i in range(1, K):
            src = draw(st.integers(-1, i - 1))          # -1: keep the drawn component
            if src >= 0:
                means[i], covs[i] = means[src], covs[src]
    return GaussianMixture(w, means, covs)


@st.composite
def linear_gaussian_channels(draw, dim=st.integers(1, 4), out_dim=None, min_eig: float = 0.1,
                             max_eig: float = 4.0, a_scale: float = 2.0, isotropic_posterior=False):
    """:class:`LinearGaussianChannel` ``(A, cov_x, cov_noise)``; ``out_dim`` defaults to 1..d+1.

    ``isotropic_posterior=True`` draws the equality case of Thm 1: ``A = a·I``, ``cov_x = s·I``,
    ``cov_noise = n·I`` (posterior covariance a multiple of I).

    Parameters
    ----------
    draw : callable
        Hypothesis's ``draw`` (supplied by ``@st.composite``).
    dim : int or strategy of int
        The input dimension d.
    out_dim : int, strategy of int, or None
        The output dimension m (None: 1..d+1).
    min_eig, max_eig : float
        Range of the covariances' eigenvalues.
    a_scale : float
        Scale of A's entries.
    isotropic_posterior : bool
        Draw Theorem 1's equality case.

    Returns
    -------
    strategy of LinearGaussianChannel
        ``A (m, d)``, ``cov_x (d, d)``, ``cov_noise (m, m)``.
    """
    d = draw(_ints(dim))
    if isotropic_posterior:
        a = draw(st.floats(0.1, a_scale))
        return LinearGaussianChannel(a * np.eye(d), draw(spd_matrices(d, min_eig, max_eig, isotropic=True)),
                                     draw(spd_matrices(d, min_eig, max_eig, isotropic=True)))
    k = draw(_ints(out_dim)) if out_dim is not None else draw(st.integers(1, d + 1))
    entries = draw(st.lists(st.floats(-a_scale, a_scale), min_size=k * d, max_size=k * d))
    A = np.asarray(entries, dtype=np.float64).reshape(k, d)
    return LinearGaussianChannel(A, draw(spd_matrices(d, min_eig, max_eig)),
                                 draw(spd_matrices(k, min_eig, max_eig)))
