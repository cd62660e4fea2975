"""Random and fixed problem instances shared by the tests, the ``invlimits theory`` section and the benchmarks.

One implementation of the random instances the package checks itself on (so a test, a CLI check
and a benchmark that say "a random 3-component mixture in d = 5" mean the same distribution):

* :func:`random_spd` -- a symmetric positive-definite matrix with eigenvalues uniform in
  ``[lo, hi]`` and a Haar-random eigenbasis (QR of a Gaussian matrix);
* :func:`random_mixture` -- a :class:`theory.GaussianMixture` with Dirichlet weights, uniform
  means and :func:`random_spd` covariances;
* :func:`small_mixture_channels` -- three fixed small mixture priors with a linear Gaussian
  channel (d = 1, 2, 3), where brute-force importance sampling is accurate.

For property tests with shrinking use :mod:`theory.strategies` instead.
"""

from __future__ import annotations

import numpy as np

from ._validate import as_count, as_dim, as_rng, as_scalar
from .mixture import GaussianMixture

__all__ = ["random_spd", "random_mixture", "small_mixture_channels"]


def random_spd(rng, d, lo=0.2, hi=3.0) -> np.ndarray:
    r"""A random symmetric positive-definite (d, d) matrix :math:`Q\,\mathrm{diag}(\lambda)\,Q^\top`.

    :math:`\lambda_k \sim U[\mathrm{lo}, \mathrm{hi}]` i.i.d., :math:`Q` from the QR factorisation of
    a standard Gaussian matrix; symmetrised exactly.

    Parameters
    ----------
    rng : numpy.random.Generator
        The random stream.
    d : int
        Dimension.
    lo, hi : float
        Range of the eigenvalues, 0 < lo ≤ hi.

    Returns
    -------
    numpy.ndarray, shape (d, d)

    Examples
    --------
    >>> S = random_spd(np.random.default_rng(0), 4, 0.5, 2.0)
    >>> bool(np.all(S == S.T)), bool(0.5 - 1e-12 <= np.linalg.eigvalsh(S).min()), bool(np.linalg.eigvalsh(S).max() <= 2.0 + 1e-12)
    (True, True, True)
    """
    rng = as_rng(rng)
    d = as_dim(d, "d")
    lo = as_scalar(lo, "lo", positive=True)
    hi = as_scalar(hi, "hi", positive=True)
    if hi < lo:
        raise ValueError(f"hi must be >= lo; got lo={lo}, hi={hi}")
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    S = (Q * rng.uniform(lo, hi, size=d)) @ Q.T
    return 0.5 * (S + S.T)


def random_mixture(rng, d, K=3, *, mean_scale=2.0, lo=0.1, hi=1.0, concentration=2.0) -> GaussianMixture:
    r"""A random Gaussian mixture in d dimensions with K components.

    Weights :math:`\sim\mathrm{Dirichlet}(\text{concentration}\cdot\mathbf 1)`, means uniform in
    :math:`[-\text{mean\_scale}, \text{mean\_scale}]^d`, covariances ``random_spd(rng, d, lo, hi)``
    (drawn in this order, so a seed fixes the instance).

    Parameters
    ----------
    rng : numpy.random.Generator
        The random stream.
    d : int
        Dimension.
    K : int
        Number of components.
    mean_scale : float
        Half-width of the box the means are drawn from.
    lo, hi : float
        Range of the covariances' eigenvalues.
    concentration : float
        Dirichlet concentration of the weights.

    Returns
    -------
    GaussianMixture
        ``weights (K,)``, ``means (K, d)``, ``covs (K, d, d)``.

    Examples
    --------
    >>> g = random_mixture(np.random.default_rng(1), 5, K=4)
    >>> g.dim, g.n_components, bool(abs(g.weights.sum() - 1) < 1e-12)
    (5, 4, True)
    """
    rng = as_rng(rng)
    d = as_dim(d, "d")
    K = as_count(K, "K", minimum=1)
    conc = as_scalar(concentration, "concentration", positive=True)
    scale = as_scalar(mean_scale, "mean_scale", nonneg=True)
    w = rng.dirichlet(np.full(K, conc))
    means = rng.uniform(-scale, scale, size=(K, d))
    covs = np.stack([random_spd(rng, d, lo, hi) for _ in range(K)])
    return GaussianMixture(w, means, covs)


def small_mixture_channels() -> dict:
    """Fixed mixture priors with linear Gaussian channels: ``{"d1" | "d2" | "d3": (gmm, A, cov_noise)}``.

    Low-dimensional, so that brute-force importance sampling
    (:func:`theory.mixture_mmse_importance_sampling`) is accurate; used by the tests and by
    ``benchmarks/verification_numbers.py``.

    Returns
    -------
    dict
        ``{name: (GaussianMixture, A (m, d), cov_noise (m, m))}``.

    Examples
    --------
    >>> sorted((name, g.dim, A.shape) for name, (g, A, cn) in small_mixture_channels().items())
    [('d1', 1, (1, 1)), ('d2', 2, (1, 2)), ('d3', 3, (2, 3))]
    """
    return {
        "d1": (GaussianMixture([0.3, 0.7], [[-2.0], [1.5]], [[[0.5]], [[1.0]]]),
               np.array([[1.0]]), np.array([[0.5]])),
        "d2": (GaussianMixture([0.5, 0.2, 0.3], [[-1.5, 0.0], [1.0, 2.0], [2.0, -1.0]],
                               [np.eye(2) * 0.4, [[0.8, 0.3], [0.3, 0.5]], np.eye(2) * 0.6]),
               np.array([[1.0, 0.5]]), np.array([[0.4]])),
        "d3": (GaussianMixture([0.6, 0.4], [[-1.0, 0.0, 1.0], [1.5, 1.0, -1.0]],
                               [np.diag([0.5, 1.0, 0.7]), np.eye(3) * 0.6]),
               np.array([[1.0, 0.0, 0.5], [0.0, 1.0, -0.5]]), np.eye(2) * 0.5),
    }
