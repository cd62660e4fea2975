r"""Inversion attacks on h_φ, and the polynomial-time LP inversion of a single ReLU layer.

:func:`invert` minimises ‖h(x) − z‖² over the box [−1, 1]ⁿ from random restarts (and optional
warm starts) by projected gradient (``"pgd"``: Adam steps followed by clipping, in torch, imported
lazily) or by L-BFGS-B (``"lbfgsb"``: scipy, box-constrained, exact subgradient of the ReLU net).
It supplies the candidates of the soundness checks (whose inequality is proved for every x, so an
attack that "beat" OPT·(1 − 3/(100B)) would reveal a coding bug, not a counterexample) and is a
MAX-SAT heuristic: rounding its output gives an assignment whose unsatisfied count is compared
with RC2's optimum.

:func:`invert_one_layer_lp` shows why the MixCon appendix needs two layers (its footnote 7): for
y = σ(Wx + b) the set of preimages is the polyhedron {W_j x + b_j = y_j (y_j > 0),
W_j x + b_j ≤ 0 (y_j = 0)}, so one linear program (HiGHS) finds an exact preimage in polynomial time.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linprog, minimize

from theory._io import jsonable

from .formulas import count_unsatisfied
from .network import ReductionNetwork

__all__ = ["InversionResult", "LPInversionResult", "invert", "invert_one_layer_lp"]


@dataclass
class InversionResult:
    """Best point found, its residual, and all restarts' end points.

    ``x``, ``xs``: network inputs (length d); ``assignment``: rounding of ``x`` in the formula's
    numbering (length n).
    """

    x: np.ndarray
    residual: float
    xs: np.ndarray
    residuals: np.ndarray
    assignment: np.ndarray
    n_unsatisfied: int          # of the best point's rounding
    min_unsatisfied: int        # best rounding over all restarts
    method: str
    restarts: int
    steps: int
    seconds: float

    def to_dict(self) -> dict:
        return jsonable(asdict(self))


def _pgd(net, X0, steps, lr, device):
    import torch  # deferred: torch is optional for reduction (its attacks only)

    from ._torch import resolve_device

    dev = resolve_device(device)
    # The problems are tiny (n ≤ a few hundred): intra-op threads only add synchronisation, and on a
    # loaded machine they slow each step by 100×.  Use one thread for the duration of the call only.
    old_threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(1)
    try:
        return _pgd_loop(net, X0, steps, lr, dev)
    finally:
        torch.set_num_threads(old_threads)


def _pgd_loop(net, X0, steps, lr, dev):
    import torch  # deferred: torch is optional for reduction (its attacks only)

    mod = net.to_torch(device=dev)
    X = torch.tensor(X0, dtype=torch.float64, device=dev, requires_grad=True)
    opt = torch.optim.Adam([X], lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1), eta_min=lr * 1e-3)
    best = X.detach().clone()
    best_r = torch.full((X.shape[0],), float("inf"), dtype=torch.float64, device=dev)
    for _ in range(steps):
        opt.zero_grad()
        r = ((mod(X) - mod.target) ** 2).sum(dim=1)
        with torch.no_grad():
            better = r < best_r
            best[better] = X[better]
            best_r = torch.where(better, r, best_r)
        r.sum().backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            X.clamp_(-1.0, 1.0)
    with torch.no_grad():
        r = ((mod(X) - mod.target) ** 2).sum(dim=1)
        better = r < best_r
        best[better] = X[better]
    return best.cpu().numpy()


def _fg(net, x: np.ndarray) -> tuple[float, np.ndarray]:
    """‖h(x) − z‖² and its (sub)gradient 2W₁ᵀ[a > 0]⊙W₂ᵀ(h − z), a = W₁x + b (σ'(0) := 0)."""
    a = net.W1 @ x + net.b
    r = net.W2 @ np.maximum(a, 0.0) - net.target
    g = np.where(a > 0, 2.0 * (net.W2.T @ r), 0.0)
    return float(r @ r), np.asarray(net.W1.T @ g).ravel()


def _lbfgsb(net, X0, steps):
    """One box-constrained L-BFGS-B run per start (a joint run over all starts would share line
    searches and can push a good start out of its basin)."""

    out = np.empty_like(X0)
    bounds = [(-1.0, 1.0)] * X0.shape[1]
    for i, x0 in enumerate(X0):
        res = minimize(lambda x: _fg(net, x), x0, jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"maxiter": steps, "ftol": 1e-15, "gtol": 1e-12})
        out[i] = np.clip(res.x, -1.0, 1.0)
    return out


def invert(net: ReductionNetwork, restarts: int = 8, steps: int = 300, method: str = "pgd",
           rng: np.random.Generator | None = None, x0=None, lr: float = 0.05,
           device: str = "auto") -> InversionResult:
    """Minimise ‖h_φ(x) − z‖² over x ∈ [−1, 1]ⁿ from random restarts (and warm starts ``x0``).

    Parameters
    ----------
    net : ReductionNetwork (either form; the compact one is much cheaper and has the same residual)
    restarts : random starting points, uniform on the box (≥ 0; with ``x0`` the total must be ≥ 1)
    steps : optimiser iterations per start; method : "pgd" (torch Adam + projection) or "lbfgsb"
    rng : numpy Generator for the starts (required when restarts > 0)
    x0 : optional (k, n) warm starts in the box, e.g. ``net.to_input(assignment)``
    lr : Adam learning rate (pgd); device : torch device for pgd ("auto" → CUDA when available)

    The reported residuals are recomputed in float64 by ``net.residual`` (not the optimiser's).
    Points (``x``, ``xs``, and ``x0``) are network inputs, length d = ``net.d`` (``x0`` may also be
    given in the formula's numbering, length n; ``net.lift(x)`` maps a result back to it);
    ``assignment`` is in the formula's numbering (length n), as are the unsatisfied counts.

    Returns
    -------
    InversionResult
        The best point (``x`` (d,)), its residual, every restart's end point (``xs`` (r, d)) and
        residual, the rounding's assignment (n,) and unsatisfied counts.

    Examples
    --------
    >>> from reduction import build_network
    >>> net = build_network([[1, 2, 3], [-1, -2, 3]], B=2, form="compact")
    >>> r = invert(net, restarts=2, steps=50, method="lbfgsb", rng=np.random.default_rng(0))
    >>> r.min_unsatisfied
    0
    """
    if not isinstance(net, ReductionNetwork):
        raise ValueError(f"net: expected a ReductionNetwork from build_network, got {type(net).__name__}")
    for name, v, lo in (("restarts", restarts, 0), ("steps", steps, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name}: expected an integer >= {lo}, got {v!r}")
    if method not in ("pgd", "lbfgsb"):
        raise ValueError(f"method: expected 'pgd' or 'lbfgsb', got {method!r}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr: expected a positive step size, got {lr!r}")
    starts = []
    if restarts:
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng: expected a numpy.random.Generator for the random restarts, got {rng!r}")
        starts.append(rng.uniform(-1.0, 1.0, size=(restarts, net.d)))
    if x0 is not None:
        starts.append(np.atleast_2d(net._check_x(x0, box=True)))
    if not starts:
        raise ValueError("restarts: need restarts >= 1 or warm starts x0")
    X0 = np.vstack(starts)
    t0 = time.perf_counter()
    X = _pgd(net, X0, steps, lr, device) if method == "pgd" else _lbfgsb(net, X0, steps)
    X = np.clip(X, -1.0, 1.0)
    R = np.atleast_1d(net.residual(X))
    A = net.round(X)  # (k, n): the formula's numbering
    nu = np.atleast_1d(count_unsatisfied(net.formula, A)) if net.m else np.zeros(len(X), dtype=int)
    i = int(np.argmin(R))
    return InversionResult(x=X[i].copy(), residual=float(R[i]), xs=X, residuals=R, assignment=A[i].copy(),
                           n_unsatisfied=int(nu[i]), min_unsatisfied=int(nu.min()), method=method,
                           restarts=int(X.shape[0]), steps=int(steps), seconds=time.perf_counter() - t0)


@dataclass
class LPInversionResult:
    """Preimage of one ReLU layer found by linear programming."""

    x: np.ndarray | None
    success: bool
    status: int
    message: str
    max_abs_error: float | None
    n_active: int
    seconds: float

    def to_dict(self) -> dict:
        return jsonable(asdict(self))


def invert_one_layer_lp(W, b, y, bounds: tuple[float, float] | None = None) -> LPInversionResult:
    """Find x with σ(Wx + b) = y by one LP (HiGHS): equalities on active units, ≤ 0 on inactive ones.

    Parameters
    ----------
    W : (p, n) array; b : (p,) array; y : (p,) observed ReLU outputs (must be ≥ 0)
    bounds : optional box (lo, hi) for every coordinate of x, e.g. (−1, 1)

    ``success`` is False (not an exception) when y has no preimage.

    Returns
    -------
    LPInversionResult
        ``success``, ``x`` (n,) and ``max_abs_error`` of σ(Wx + b) − y.

    Examples
    --------
    >>> W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]); b = np.zeros(3)
    >>> r = invert_one_layer_lp(W, b, np.maximum(W @ np.array([0.5, -0.25]) + b, 0))
    >>> r.success, r.max_abs_error < 1e-12
    (True, True)
    """

    try:
        W = np.asarray(W, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("W, b, y: expected real arrays of shapes (p, n), (p,), (p,)") from None
    if W.ndim != 2:
        raise ValueError(f"W: expected a 2-d (p, n) array, got shape {W.shape}")
    p, n = W.shape
    if b.shape != (p,):
        raise ValueError(f"b: expected shape ({p},), got {b.shape}")
    if y.shape != (p,):
        raise ValueError(f"y: expected shape ({p},), got {y.shape}")
    for name, v in (("W", W), ("b", b), ("y", y)):
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{name}: expected finite values, got nan/inf")
    if np.any(y < 0):
        raise ValueError(f"y: ReLU outputs are >= 0, got min {y.min():.6g}")
    if bounds is not None:
        lo, hi = bounds
        if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
            raise ValueError(f"bounds: expected finite (lo, hi) with lo <= hi, got {bounds!r}")
    act = y > 0
    t0 = time.perf_counter()
    res = linprog(np.zeros(n), A_ub=W[~act] if (~act).any() else None, b_ub=-b[~act] if (~act).any() else None,
                  A_eq=W[act] if act.any() else None, b_eq=(y - b)[act] if act.any() else None,
                  bounds=[bounds if bounds is not None else (None, None)] * n, method="highs")
    dt = time.perf_counter() - t0
    if res.status != 0 or res.x is None:
        return LPInversionResult(None, False, int(res.status), str(res.message), None, int(act.sum()), dt)
    x = res.x
    err = float(np.max(np.abs(np.maximum(W @ x + b, 0.0) - y))) if p else 0.0
    return LPInversionResult(x, True, 0, str(res.message), err, int(act.sum()), dt)
