"""Validation at the boundary of :mod:`theory` (private).

Every public function converts its inputs here, so that bad input raises a ``ValueError`` that
names the argument, says what was expected and what came -- never a deep numpy traceback and
never a silent ``nan``.  Positive-definiteness is decided by a float64 Cholesky factorisation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import math
from numbers import Integral, Real

import numpy as np

#: relative tolerance for symmetry of covariance matrices
SYM_RTOL = 1e-8
#: tolerance for weights summing to one
SIMPLEX_TOL = 1e-8


@dataclass(frozen=True)
class Estimate:
    """A Monte-Carlo estimate: ``value`` ± ``stderr`` from ``n`` samples.

    ``stderr`` is the standard error of the mean (sample standard deviation / sqrt(n)).
    Tests compare estimates with tolerances of a few ``stderr``.

    >>> e = Estimate(1.0, 0.1, 100)
    >>> e.to_dict()
    {'value': 1.0, 'stderr': 0.1, 'n': 100}
    """

    value: float
    stderr: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)

    def __float__(self) -> float:
        return float(self.value)


def _shape(a) -> str:
    try:
        return str(np.shape(a))
    except Exception:  # pragma: no cover - exotic objects
        return type(a).__name__


def as_array(x, name: str, ndim: int | tuple[int, ...] | None = None) -> np.ndarray:
    """float64 array, finite, with the expected number of dimensions."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of real numbers; got {type(x).__name__} ({exc})") from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            raise ValueError(f"{name} must have {' or '.join(map(str, allowed))} dimension(s); "
                             f"got shape {arr.shape}")
    if arr.size == 0 or 0 in arr.shape:
        raise ValueError(f"{name} must be non-empty (dimension d >= 1); got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = "nan" if np.isnan(arr).any() else "inf"
        raise ValueError(f"{name} must be finite; got an array containing {bad}")
    return arr


def as_scalar(x, name: str, *, positive: bool = False, nonneg: bool = False) -> float:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (Real, np.floating, np.integer)):
        arr = np.asarray(x) if not isinstance(x, (str, bytes)) else None
        if arr is None or arr.shape != () or not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"{name} must be a real number; got {x!r}")
        x = arr.item()
    v = float(x)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite; got {v}")
    if positive and v <= 0:
        raise ValueError(f"{name} must be > 0; got {v}")
    if nonneg and v < 0:
        raise ValueError(f"{name} must be >= 0; got {v}")
    return v


def as_dim(d, name: str = "dim") -> int:
    if isinstance(d, (bool, np.bool_)) or not isinstance(d, (Integral, np.integer)):
        raise ValueError(f"{name} must be a positive integer; got {d!r}")
    if int(d) < 1:
        raise ValueError(f"{name} must be a positive integer (d >= 1); got {int(d)}")
    return int(d)


def as_count(n, name: str = "n", minimum: int = 2) -> int:
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (Integral, np.integer)):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {n!r}")
    if int(n) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {int(n)}")
    return int(n)


def as_rng(rng, name: str = "rng") -> np.random.Generator:
    """Accept a ``numpy.random.Generator`` (or an int seed, turned into one)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (Integral, np.integer)) and not isinstance(rng, (bool, np.bool_)):
        return np.random.default_rng(int(rng))
    raise ValueError(f"{name} must be a numpy.random.Generator (e.g. np.random.default_rng(0)) or an "
                     f"int seed; got {type(rng).__name__}")


def log_base(base) -> float:
    """Divisor that converts nats to ``base`` units (1.0 for ``base=None``)."""
    if base is None:
        return 1.0
    b = as_scalar(base, "base", positive=True)
    if b == 1.0:
        raise ValueError("base must be > 0 and != 1 (e.g. 2 for bits, math.e for nats); got 1")
    return math.log(b)


def check_symmetric(m: np.ndarray, name: str) -> np.ndarray:
    scale = max(1.0, float(np.max(np.abs(m), initial=0.0)))
    asym = np.max(np.abs(m - np.swapaxes(m, -1, -2)), initial=0.0)
    if asym > SYM_RTOL * scale:
        raise ValueError(f"{name} must be symmetric; got max |M - M^T| = {asym:.3g}")
    return 0.5 * (m + np.swapaxes(m, -1, -2))


def cholesky(m: np.ndarray, name: str) -> np.ndarray:
    """Lower Cholesky factor(s) in float64, or a ValueError saying the matrix is not PD."""
    try:
        return np.linalg.cholesky(m)
    except np.linalg.LinAlgError:
        ev = np.linalg.eigvalsh(m)
        raise ValueError(f"{name} must be positive definite; got smallest eigenvalue "
                         f"{float(np.min(ev)):.3g}") from None


def as_cov(c, name: str, dim: int | None = None, *, batch: bool = False, psd: bool = False) -> np.ndarray:
    """Symmetric positive-definite (``psd=True``: semidefinite) covariance, shape (d, d) or (K, d, d)."""
    arr = as_array(c, name, ndim=3 if batch else 2)
    if arr.shape[-1] != arr.shape[-2]:
        raise ValueError(f"{name} must be square{' matrices (K, d, d)' if batch else ' (d, d)'}; "
                         f"got shape {arr.shape}")
    if dim is not None and arr.shape[-1] != dim:
        raise ValueError(f"{name} must have shape {'(K, ' if batch else '('}{dim}, {dim}); got {arr.shape}")
    arr = check_symmetric(arr, name)
    if psd:
        ev = np.linalg.eigvalsh(arr)
        tol = 1e-10 * max(1.0, float(np.max(np.abs(ev))))
        if np.min(ev) < -tol:
            raise ValueError(f"{name} must be positive semidefinite; got smallest eigenvalue "
                             f"{float(np.min(ev)):.3g}")
    else:
        cholesky(arr, name)
    return arr


def as_weights(w, name: str = "weights", n: int | None = None) -> np.ndarray:
    """Probability vector on the simplex (non-negative, summing to 1 within 1e-8); renormalised."""
    arr = as_array(w, name, ndim=1)
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have length {n}; got length {arr.shape[0]}")
    if np.any(arr < 0):
        raise ValueError(f"{name} must lie on the simplex (all >= 0); got min {float(arr.min()):.3g}")
    s = float(arr.sum())
    if abs(s - 1.0) > SIMPLEX_TOL:
        raise ValueError(f"{name} must lie on the simplex (sum to 1); got sum {s!r}")
    return arr / s


def as_matrix(a, name: str, rows: int | None = None, cols: int | None = None) -> np.ndarray:
    arr = as_array(a, name, ndim=2)
    if (rows is not None and arr.shape[0] != rows) or (cols is not None and arr.shape[1] != cols):
        want = f"({rows if rows is not None else 'k'}, {cols if cols is not None else 'd'})"
        raise ValueError(f"{name} must have shape {want}; got {arr.shape}")
    return arr


def as_points(x, name: str, dim: int) -> tuple[np.ndarray, bool]:
    """Points of shape (N, dim) (a single point of shape (dim,) is allowed); returns (arr, was_single)."""
    arr = as_array(x, name, ndim=(1, 2))
    single = arr.ndim == 1
    if single:
        arr = arr[None, :]
    if arr.shape[1] != dim:
        raise ValueError(f"{name} must have shape (N, {dim}) or ({dim},); got {np.shape(x)}")
    return arr, single


def logdet_chol(L: np.ndarray) -> np.ndarray:
    """log det from Cholesky factor(s)."""
    return 2.0 * np.sum(np.log(np.diagonal(L, axis1=-2, axis2=-1)), axis=-1)


def logdet_pd(m: np.ndarray, name: str) -> np.ndarray:
    return logdet_chol(cholesky(m, name))


# Linear algebra on small matrices goes through numpy.linalg, not scipy.linalg: on a machine whose
# few cores are shared, scipy's LAPACK wrappers (triangular solves) were measured 10-100× slower
# with a multithreaded OpenBLAS, while numpy's batched routines and matrix products were not.

def inv_lower(L: np.ndarray) -> np.ndarray:
    """Inverse(s) of lower-triangular Cholesky factor(s), shape (..., d, d)."""
    eye = np.broadcast_to(np.eye(L.shape[-1]), L.shape)
    return np.tril(np.linalg.solve(L, eye))


def spd_inverse_from_chol(L: np.ndarray) -> np.ndarray:
    """Σ⁻¹ = L⁻ᵀL⁻¹ from the lower Cholesky factor(s) of Σ, symmetrised."""
    Li = inv_lower(L)
    inv = np.swapaxes(Li, -1, -2) @ Li
    return 0.5 * (inv + np.swapaxes(inv, -1, -2))
