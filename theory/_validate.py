"""The one family of input validators of the three packages (private).

Every public function converts its inputs here, so that bad input raises a ``ValueError`` that
names the argument, says what was expected and what came -- never a deep numpy traceback and
never a silent ``nan``.  Positive-definiteness is decided by a float64 Cholesky factorisation.

Two phrasings, one family: the array-level converters of :mod:`theory` (``as_array``,
``as_cov``, ``as_scalar`` ...) say "``x`` must be ...; got ...", as the theory API always has;
the ``expect_*`` checks of settings, configurations and command-line values (used by
:mod:`reduction` and :mod:`empirics`, whose messages reach a command line as one line) say
"``name``: expected ..., got ...".  Both are here so that a rule (what counts as an integer, a
finite number, a seed) is written once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import math
from numbers import Integral, Real

import numpy as np
from scipy.linalg import lapack

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


def _all_finite(arr: np.ndarray) -> bool:
    """np.isfinite(arr).all() in blocks of ~2**24 entries (no full-size boolean temporary)."""
    if arr.size <= 1 << 24 or arr.ndim == 0:
        return bool(np.all(np.isfinite(arr)))
    flat = arr.reshape(arr.shape[0], -1)
    step = max(1, (1 << 24) // flat.shape[1])
    return all(bool(np.all(np.isfinite(flat[i:i + step]))) for i in range(0, flat.shape[0], step))


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
    if not _all_finite(arr):
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


def _is_int(v) -> bool:
    return isinstance(v, (Integral, np.integer)) and not isinstance(v, (bool, np.bool_))


def expect_int(v, name: str, *, minimum: int | None = 1, maximum: int | None = None) -> int:
    """``v`` as an ``int`` (bools and floats refused) within ``[minimum, maximum]``.

    >>> expect_int(3, "epochs")
    3
    >>> expect_int(0, "seed", minimum=0)
    0
    """
    if not _is_int(v) or (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        if minimum == 1 and maximum is None:
            what = "a positive integer"
        elif minimum == 0 and maximum is None:
            what = "a non-negative integer"
        elif maximum is None:
            what = "an integer" if minimum is None else f"an integer >= {minimum}"
        else:
            what = f"an integer in [{minimum}, {maximum}]"
        raise ValueError(f"{name}: expected {what}, got {v!r}")
    return int(v)


def expect_number(v, name: str, *, positive: bool = False, nonneg: bool = False, finite: bool = True,
                  upper: float | None = None, upper_open: bool = False, what: str | None = None) -> float:
    """``v`` as a ``float`` (bools and strings refused): finite, and > 0 / >= 0 / <= ``upper`` when asked.

    ``what`` replaces the description in the message (e.g. "a positive finite number (Theorem 2
    needs noise)").

    >>> expect_number(0.1, "sigma", positive=True)
    0.1
    """
    ok = isinstance(v, (Real, np.floating, np.integer)) and not isinstance(v, (bool, np.bool_))
    f = float(v) if ok else math.nan
    if ok and finite:
        ok = math.isfinite(f)
    if ok and positive:
        ok = f > 0
    if ok and nonneg:
        ok = f >= 0
    if ok and upper is not None:
        ok = f < upper if upper_open else f <= upper
    if not ok:
        if what is None:
            what = ("a positive finite number" if positive else "a non-negative finite number" if nonneg
                    else "a finite number" if finite else "a number")
            if upper is not None:
                what += f" {'<' if upper_open else '<='} {upper}"
        raise ValueError(f"{name}: expected {what}, got {v!r}")
    return f


def expect_choice(v, name: str, choices) -> object:
    """``v`` if it is one of ``choices``, else ``ValueError`` listing them.

    >>> expect_choice("full", "covariance", ("full", "diag"))
    'full'
    """
    choices = tuple(choices)
    if isinstance(v, (list, dict, set)) or v not in choices:
        listed = " or ".join(repr(c) for c in choices) if len(choices) <= 3 else f"one of {sorted(choices)}"
        raise ValueError(f"{name}: expected {listed}, got {v!r}")
    return v


def expect_generator(rng, name: str = "rng") -> np.random.Generator:
    """A ``numpy.random.Generator`` (no seeds, no global state), else ``ValueError``."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"{name}: expected a numpy.random.Generator (np.random.default_rng(seed)), got {rng!r}")
    return rng


def log_base(base) -> float:
    """Divisor that converts nats to ``base`` units (1.0 for ``base=None``)."""
    if base is None:
        return 1.0
    b = as_scalar(base, "base", positive=True)
    if b == 1.0:
        raise ValueError("base must be > 0 and != 1 (e.g. 2 for bits, math.e for nats); got 1")
    return math.log(b)


#: tile edge for the blocked symmetry pass over large matrices (a pair of tiles stays in cache)
TILE = 128
#: relative jitter under which a symmetric matrix still counts as positive semidefinite
PSD_RTOL = 1e-10


def _abs_max(m: np.ndarray) -> float:
    """max |m| as max(|max m|, |min m|): no |m|-sized temporary (and no in-place ``np.abs`` of a
    temporary, measured ~40× slower than out-of-place with this numpy)."""
    return max(abs(float(np.max(m))), abs(float(np.min(m))))


def _asymmetry(m: np.ndarray) -> float:
    """max |M - Mᵀ| of one (d, d) matrix, tiled for large d (cache-friendly)."""
    d = m.shape[-1]
    if d <= 2 * TILE:
        return _abs_max(m - m.T)
    worst = 0.0
    for i in range(0, d, TILE):
        for j in range(i, d, TILE):
            worst = max(worst, _abs_max(m[i:i + TILE, j:j + TILE] - m[j:j + TILE, i:i + TILE].T))
    return worst


def check_symmetric_only(m: np.ndarray, name: str) -> None:
    """Raise unless ``max |M − Mᵀ| ≤ 1e-8 · max(1, max |M|)`` (no copy is made)."""
    scale = max(1.0, _abs_max(m))
    asym = _asymmetry(m)
    if asym > SYM_RTOL * scale:
        raise ValueError(f"{name} must be symmetric; got max |M - M^T| = {asym:.3g}")


def symmetrise_into(src: np.ndarray, out: np.ndarray, name: str) -> np.ndarray:
    """``out ← ½(src + srcᵀ)`` for one (d, d) matrix after checking symmetry; returns ``out``.

    The check is ``max |M − Mᵀ| ≤ 1e-8 · max(1, max |M|)``.  Tiled for large d, so check and copy
    are cache-friendly passes (the naive ``m - m.T`` of a 2048×2048 matrix costs ~4× more).
    """
    check_symmetric_only(src, name)
    d = src.shape[-1]
    if d <= 2 * TILE:
        np.add(src, src.T, out=out)
    else:
        for i in range(0, d, TILE):
            for j in range(i, d, TILE):
                blk = src[i:i + TILE, j:j + TILE] + src[j:j + TILE, i:i + TILE].T
                out[i:i + TILE, j:j + TILE] = blk
                out[j:j + TILE, i:i + TILE] = blk.T
    out *= 0.5
    return out


#: matrices up to this dimension are checked for symmetry many at a time (vectorised over the batch)
SMALL_DIM = 2 * TILE


def _batch_blocks(m: np.ndarray):
    """Slices of a (K, d, d) batch of at most ~16 MiB each."""
    step = max(1, (1 << 24) // max(1, m.shape[1] * m.shape[2] * 8))
    for a in range(0, m.shape[0], step):
        yield slice(a, min(m.shape[0], a + step))


def _check_block_symmetric(blk: np.ndarray, start: int, name: str, blk_t: np.ndarray) -> None:
    """Raise unless every matrix of ``blk`` is symmetric; ``blk_t`` is its contiguous transpose."""
    diff = blk - blk_t
    asym = np.maximum(np.max(diff, axis=(1, 2)), -np.min(diff, axis=(1, 2)))
    scale = np.maximum(1.0, np.maximum(np.max(blk, axis=(1, 2)), -np.min(blk, axis=(1, 2))))
    bad = np.flatnonzero(asym > SYM_RTOL * scale)
    if bad.size:
        raise ValueError(f"{name}[{start + int(bad[0])}] must be symmetric; got max |M - M^T| = "
                         f"{float(asym[bad[0]]):.3g}")


def check_symmetric(m: np.ndarray, name: str) -> np.ndarray:
    """Symmetrised copy ½(M + Mᵀ) of one matrix or of a batch (K, d, d), after checking symmetry.

    For a batch the check is per matrix and the error names the component (``covs[3] must be
    symmetric``).  Memory: the copy plus blocks of at most ~16 MiB (never batch-sized temporaries).
    """
    out = np.empty(m.shape)
    if m.ndim == 2:
        return symmetrise_into(m, out, name)
    if m.shape[-1] <= SMALL_DIM:
        for s in _batch_blocks(m):
            blk = m[s]
            # a contiguous copy of the transposes: elementwise ops against a swapaxes view of a
            # 3-d array were measured ~10× slower than this copy plus contiguous ops
            blk_t = np.ascontiguousarray(np.swapaxes(blk, 1, 2))
            _check_block_symmetric(blk, s.start, name, blk_t)
            np.add(blk, blk_t, out=out[s])
            out[s] *= 0.5
        return out
    for i in range(m.shape[0]):
        symmetrise_into(m[i], out[i], f"{name}[{i}]")
    return out


def _first_failure(m: np.ndarray) -> int:
    """Index of the first matrix of a batch whose Cholesky factorisation fails."""
    for i in range(m.shape[0]):
        try:
            np.linalg.cholesky(m[i])
        except np.linalg.LinAlgError:
            return i
    return 0  # pragma: no cover - the batch failed, so one member does


def cholesky(m: np.ndarray, name: str) -> np.ndarray:
    """Lower Cholesky factor(s) in float64, or a ValueError saying which matrix is not PD.

    For a batch (K, d, d) the message names the first failing component, e.g. ``covs[3] must be
    positive definite; got smallest eigenvalue -0.5``.
    """
    if m.ndim == 2 and m.shape[0] > 1 and np.count_nonzero(m) == np.count_nonzero(np.diagonal(m)):
        # diagonal (e.g. noise σ²I): its factor is the elementwise square root -- exactly what the
        # O(d³) factorisation would return, at O(d²) cost (not a guessed structure: the same numbers)
        dg = np.diagonal(m)
        if not np.all(dg > 0):
            raise ValueError(f"{name} must be positive definite; got smallest eigenvalue {float(np.min(dg)):.3g}")
        return np.diag(np.sqrt(dg))
    try:
        return np.linalg.cholesky(m)
    except np.linalg.LinAlgError:
        if m.ndim == 3:
            i = _first_failure(m)
            name, m = f"{name}[{i}]", m[i]
        ev = np.linalg.eigvalsh(m)
        raise ValueError(f"{name} must be positive definite; got smallest eigenvalue "
                         f"{float(np.min(ev)):.3g}") from None


def chol_ok(work: np.ndarray) -> bool:
    """Whether the symmetric (d, d) matrix ``work`` has a Cholesky factorisation (``work`` is overwritten)."""
    a = work if work.flags.f_contiguous else work.T          # symmetric: the transpose is the same matrix
    _, info = lapack.dpotrf(a, lower=1, overwrite_a=1, clean=0)
    return info == 0


def check_psd(m: np.ndarray, name: str, work: np.ndarray | None = None) -> None:
    r"""Raise unless the symmetric (d, d) matrix ``m`` is positive semidefinite up to round-off.

    Accepted iff :math:`M + \tau I` has a Cholesky factorisation, with
    :math:`\tau = 10^{-10}\max(1, \|M\|_F)` (:math:`\|M\|_F \ge \|M\|_2`, so every matrix whose
    smallest eigenvalue is above :math:`-10^{-10}\|M\|_2` passes).  One factorisation, d³/3 flops;
    an eigendecomposition would cost ~10× more.  The error reports the smallest eigenvalue.
    ``work`` is an optional (d, d) buffer.
    """
    tau = PSD_RTOL * max(1.0, math.sqrt(float(np.vdot(m, m))))
    if work is None:
        work = np.empty(m.shape, order="F")
    np.copyto(work, m)
    work.flat[::m.shape[0] + 1] += tau
    if not chol_ok(work):
        ev = np.linalg.eigvalsh(m)
        raise ValueError(f"{name} must be positive semidefinite; got smallest eigenvalue "
                         f"{float(np.min(ev)):.3g}")


def as_cov(c, name: str, dim: int | None = None, *, batch: bool = False, psd: bool = False,
           return_chol: bool = False):
    """Symmetric positive-definite (``psd=True``: semidefinite) covariance, shape (d, d) or (K, d, d).

    Returns the symmetrised array and, with ``return_chol=True`` (positive definite only), also
    its lower Cholesky factor(s) -- the factorisation that decided definiteness, so callers need
    not factorise twice.  Semidefiniteness is decided by :func:`check_psd`.
    """
    arr = as_array(c, name, ndim=3 if batch else 2)
    if arr.shape[-1] != arr.shape[-2]:
        raise ValueError(f"{name} must be square{' matrices (K, d, d)' if batch else ' (d, d)'}; "
                         f"got shape {arr.shape}")
    if dim is not None and arr.shape[-1] != dim:
        raise ValueError(f"{name} must have shape {'(K, ' if batch else '('}{dim}, {dim}); got {arr.shape}")
    arr = check_symmetric(arr, name)
    if psd:
        if return_chol:
            raise TypeError("return_chol needs a positive-definite matrix (psd=False)")
        if batch:
            work = np.empty(arr.shape[1:], order="F")
            for i in range(arr.shape[0]):
                check_psd(arr[i], f"{name}[{i}]", work)
        else:
            check_psd(arr, name)
        return arr
    L = cholesky(arr, name)
    return (arr, L) if return_chol else arr


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


# Linear algebra: batched numpy routines for many small matrices; for one matrix at a time the
# LAPACK routines behind scipy.linalg.lapack (potrf/potri/trtri/trtrs), which skip the LU
# factorisation numpy.linalg.solve/inv would do (measured 2-4x faster from d = 64 on).

def inv_lower(L: np.ndarray) -> np.ndarray:
    """Inverse(s) of lower-triangular Cholesky factor(s), shape (..., d, d)."""
    if L.ndim == 2:
        Li, info = lapack.dtrtri(L, lower=1)
        if info != 0:  # pragma: no cover - a Cholesky factor has a positive diagonal
            raise np.linalg.LinAlgError("singular triangular factor")
        return np.tril(Li)
    if L.shape[-1] <= 32:        # many tiny matrices: one batched call beats a Python loop
        eye = np.broadcast_to(np.eye(L.shape[-1]), L.shape)
        return np.tril(np.linalg.solve(L, eye))
    out = np.empty(L.shape)
    flat_in, flat_out = L.reshape(-1, *L.shape[-2:]), out.reshape(-1, *L.shape[-2:])
    for i in range(flat_in.shape[0]):
        flat_out[i] = inv_lower(flat_in[i])
    return out


def spd_inverse_from_chol(L: np.ndarray) -> np.ndarray:
    """Σ⁻¹ = L⁻ᵀL⁻¹ from the lower Cholesky factor(s) of Σ, exactly symmetric."""
    if L.ndim == 2:
        Linv, info = lapack.dpotri(L, lower=1)
        if info != 0:  # pragma: no cover - a Cholesky factor has a positive diagonal
            raise np.linalg.LinAlgError("singular triangular factor")
        lower = np.tril(Linv)
        return lower + np.tril(lower, -1).T
    if L.shape[-1] <= 32:
        Li = inv_lower(L)
        inv = np.swapaxes(Li, -1, -2) @ Li
        return 0.5 * (inv + np.swapaxes(inv, -1, -2))
    out = np.empty(L.shape)
    flat_in, flat_out = L.reshape(-1, *L.shape[-2:]), out.reshape(-1, *L.shape[-2:])
    for i in range(flat_in.shape[0]):
        flat_out[i] = spd_inverse_from_chol(flat_in[i])
    return out
