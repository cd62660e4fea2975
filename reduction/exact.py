r"""Exact inversion of a two-layer ReLU network by mixed-integer linear programming (a second exact solver).

The reduction's hardness (MixCon appendix, Thm B.10) says inverting h_φ is as hard as MAX-E3SAT;
the SAT solver and RC2 that check it work on the *formula*.  :func:`exact_inversion` works on the
*network* only — its weights W₁, b, W₂ and target z, never the clauses — and computes

.. math::  \min_{x ∈ [−1, 1]^d} \| W_2\,σ(W_1 x + b) − z \|_p ,  \qquad p ∈ \{1, ∞\},

exactly, by scipy's :func:`scipy.optimize.milp` (HiGHS branch and bound), with the minimiser and a
certificate: HiGHS's proved lower bound (``lower``) beside the value of its best point (``upper``).
ℓ∞ and ℓ1 are the norms a MILP expresses exactly; the reduction's own statements use the squared ℓ2
residual (a quadratic objective), and their analogues in ℓ1 / ℓ∞ are derived below.

**Formulation** (one binary per hidden ReLU; Tjeng, Xiao & Tedrake 2019, "Evaluating robustness of
neural networks with mixed integer programming", ICLR).  Hidden neuron h has pre-activation
a_h = W₁[h]·x + b_h.  Its interval bounds on the box [−1, 1]^d are exact for one neuron:

.. math::  l_h = b_h − \sum_i |W_1[h, i]|, \qquad u_h = b_h + \sum_i |W_1[h, i]| .

(For the reduction: a k-literal clause neuron has [l, u] = [−(2k−1), 1], a copy neuron σ(±x_i) has
[−1, 1].)  If u_h ≤ 0 the neuron is always off (y_h = 0); if l_h ≥ 0 it is always on (y_h = a_h);
otherwise it gets a binary δ_h and the big-M constraints

.. math::  y_h ≥ a_h, \quad y_h ≥ 0, \quad y_h ≤ a_h − l_h(1 − δ_h), \quad y_h ≤ u_h δ_h ,

which force y_h = σ(a_h) at δ_h ∈ {0, 1}.  Two unstable neurons σ(a) and σ(−a) (opposite rows of
W₁ and opposite biases, such as the copy pair σ(x_i), σ(−x_i)) share their binary: exactly one of
them is active unless a = 0, where both are 0, so δ' = 1 − δ and y − y' = a are valid equalities
(2 clause-free binaries per variable become 1; ``size["binaries"]`` counts the shared ones once).  The residual r = W₂y − z enters through t ≥ ±r_o
(ℓ∞: minimise t) or s_o ≥ ±r_o (ℓ1: minimise Σ_o s_o).

**Both network forms.**  Identical hidden neurons (same row of W₁ and bias) have identical
activations, so they share one variable; identical outputs (after that merge) are one output of
multiplicity μ (ℓ1 weighs it by μ; ℓ∞ needs it once).  The faithful form's c explicit copies of
σ(x_i), σ(−x_i) thus cost one binary per variable, as the compact form's; the merge is exact
(rows compared exactly after hashing).  The norms themselves differ between the forms: an input
variable's copy terms are c·(1 − |x_i|) in ℓ1 and (1 − |x_i|) in ℓ∞ for the faithful network,
√c·(1 − |x_i|) in both for the compact one.  Write w for that weight (faithful: w₁ = c, w∞ = 1;
compact: w₁ = w∞ = √c).

**What the minimum says about the formula** (exact clause bias −(k−1); OPT = the MaxSAT optimum,
min #unsatisfied clauses, e.g. RC2's; proofs below).  For every x ∈ [−1, 1]^d let x̄ = sign x (ties
→ +1, i.e. false), U the clauses x̄ leaves unsatisfied, Δ_i = 1 − |x_i| = |x̄_i − x_i|,
a_i = Σ_{j∈U} |W₁[j, i]| ≤ occ_i ≤ B (occ_i: occurrences of variable i) and k_max the longest clause:

* ℓ1, per point: ‖h(x) − z‖₁ ≥ |U| + Σ_i (w₁ − a_i) Δ_i.  Hence
  OPT − Σ_i (occ_i − w₁)₊ ≤ min‖h(x) − z‖₁ ≤ OPT, and **min ℓ1 = OPT exactly when w₁ ≥ B**
  (the default c = 100B²: w₁ = 10B compact, 100B² faithful), and then every minimiser rounds to an
  assignment leaving exactly OPT clauses unsatisfied (|U| ≤ ‖h(x) − z‖₁ at any x).
* ℓ∞, per point: U ≠ ∅ ⇒ ‖h(x) − z‖∞ ≥ w∞ / (w∞ + k_max).  Hence min ℓ∞ = 0 iff OPT = 0 (φ
  satisfiable), and for OPT ≥ 1: w∞/(w∞ + k_max) ≤ min ℓ∞ ≤ 1 (compact E3, c = 100B²:
  10B/(10B + 3); faithful: 1/(1 + k_max) = 1/4 — its ℓ∞ sees one copy, not c).  ℓ∞ decides
  satisfiability; it does not see OPT's size.

*Proof.* For j ∈ U the clause neuron is 1 at x̄ and its pre-activation moves by at most
Σ_i |W₁[j, i]| Δ_i from x̄ to x, so σ_j(x) ≥ 1 − Σ_i |W₁[j, i]|Δ_i.  ℓ1: summing over U and adding
the copy terms Σ_i w₁Δ_i gives the per-point bound; with w₁ ≥ a_i every term is ≥ 0, and |U| ≥ OPT.
ℓ∞: with δ = max_{i ∈ j} Δ_i, the residual is ≥ max(1 − k_j δ, w∞ δ) ≥ w∞/(w∞ + k_j).  The upper
bounds are attained at an optimal corner (clause entries in {0, 1}, copy entries 0).  ∎

These are tested per point with hypothesis and, for the minimum, against RC2 and exhaustive
enumeration (``tests/reduction/test_reduction_exact.py``), where the MILP is also fuzzed against an
independent exact computation (every activation pattern, one LP each).

**Verdicts, never wrong.**  ``status`` is ``"optimal"`` when HiGHS proved optimality (its relative
gap ≤ ``mip_rel_gap``), ``"unknown"`` when it stopped at the time limit (or any other limit) with
the bounds it has, ``"error"`` otherwise.  For a reduction network ``verdict`` is ``"sat"`` only with
a certificate — the best point's rounding satisfies every clause, checked exactly on the formula —
``"unsat"`` only when HiGHS's proved lower bound is positive (> ``tol``; the unsatisfiable minimum is
≥ w∞/(w∞ + k_max) or ≥ 1, far above it), and ``"unknown"`` otherwise (a time limit before either).

**Size limit.**  The MILP has d + (merged hidden units) + (binaries) + (outputs) variables; a
network with more than ``max_binaries`` binaries (default :data:`MAX_MILP_BINARIES`) is refused with
a ``ValueError`` naming the count and the limit, before any MILP is built.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from theory._io import jsonable

from .checks import _on_inputs, _solve, max_sat
from .formulas import as_formula, count_unsatisfied
from .network import ReductionNetwork, build_network

__all__ = ["MAX_MILP_BINARIES", "ExactInversionResult", "exact_inversion", "interval_bounds", "milp_size",
           "norm_residual", "copy_weight", "exact_minimum_bounds", "CrossCheckResult", "cross_check"]

#: Largest number of binaries (unstable merged hidden ReLUs) :func:`exact_inversion` accepts.
MAX_MILP_BINARIES = 5000

_NORMS = ("linf", "l1")


def _check_norm(norm) -> str:
    if norm not in _NORMS:
        raise ValueError(f"norm: expected 'linf' or 'l1' (the norms a MILP expresses exactly), got {norm!r}")
    return norm


def norm_residual(net: ReductionNetwork, x, norm: str = "linf") -> np.ndarray | float:
    """‖h_φ(x) − z‖ in ``norm`` ("linf" or "l1"; float, or one per row of a (k, ·) batch).

    Parameters
    ----------
    net : ReductionNetwork
        The network h_φ (either form).
    x : array_like, shape (d,) or (k, d)
        Network inputs (or in the formula's numbering).
    norm : {'linf', 'l1'}
        The norm.

    Returns
    -------
    float or numpy.ndarray, shape (k,)

    Examples
    --------
    >>> from reduction import build_network
    >>> net = build_network([[1, 2, 3]], B=1, form="compact")          # √c = 10
    >>> x = np.array([0.9, 1.0, 1.0])                                   # X1..X3 false, x1 off the corner
    >>> round(norm_residual(net, x, "l1"), 12), round(norm_residual(net, x, "linf"), 12)
    (1.9, 1.0)
    """
    norm = _check_norm(norm)
    r = net.forward(x) - net.target
    a = np.abs(r)
    out = a.max(axis=-1) if norm == "linf" else a.sum(axis=-1)
    return float(out) if np.ndim(out) == 0 else out


def copy_weight(net: ReductionNetwork, norm: str) -> float:
    """w: the weight of an input's copy term (1 − |x_i|) in the residual's ``norm`` (module docstring).

    Faithful: c in ℓ1, 1 in ℓ∞; compact: √c in both.

    Parameters
    ----------
    net : ReductionNetwork
        The network h_φ (either form).
    norm : {'linf', 'l1'}
        The norm.

    Returns
    -------
    float

    Examples
    --------
    >>> from reduction import build_network
    >>> f = [[1, 2, 3]]
    >>> copy_weight(build_network(f, B=1), "l1"), copy_weight(build_network(f, B=1, form="compact"), "l1")
    (100.0, 10.0)
    """
    norm = _check_norm(norm)
    if net.form == "compact":
        return math.sqrt(net.copies)
    return float(net.copies) if norm == "l1" else 1.0


def exact_minimum_bounds(net: ReductionNetwork, opt: int, norm: str) -> tuple[float, float]:
    """(lower, upper) on min_x ‖h_φ(x) − z‖ implied by the MaxSAT optimum ``opt`` (module docstring).

    ℓ1: [OPT − Σ_i (occ_i − w₁)₊, OPT] (clipped at 0; equality when w₁ ≥ B).  ℓ∞: [0, 0] when OPT = 0,
    else [w∞/(w∞ + k_max), 1].  Needs the exact clause bias (``bias="exact"``).

    Parameters
    ----------
    net : ReductionNetwork
        The network h_φ (either form).
    opt : int
        The MaxSAT optimum (fewest unsatisfied clauses).
    norm : {'linf', 'l1'}
        The norm.

    Returns
    -------
    tuple of (float, float)

    Examples
    --------
    >>> from reduction import build_network
    >>> net = build_network([[1, 2, 3], [-1, -2, -3], [1, 2, -3]], B=3, form="compact")
    >>> exact_minimum_bounds(net, 1, "l1"), exact_minimum_bounds(net, 1, "linf")
    ((1.0, 1.0), (0.9090909090909091, 1.0))
    """
    norm = _check_norm(norm)
    if not isinstance(net, ReductionNetwork):
        raise ValueError(f"net: expected a ReductionNetwork, got {type(net).__name__}")
    if net.bias != "exact":
        raise ValueError("net: the bounds hold for the exact clause bias -(k-1) (bias='exact'), got bias='paper'")
    if isinstance(opt, bool) or not isinstance(opt, (int, np.integer)) or opt < 0:
        raise ValueError(f"opt: expected the MaxSAT optimum (an integer >= 0), got {opt!r}")
    w = copy_weight(net, norm)
    if norm == "l1":
        occ = np.asarray(abs(net.C).sum(axis=0)).ravel()  # Σ_j |W₁[j, i]| ≥ a_i for every U
        return max(0.0, float(opt) - float(np.maximum(occ - w, 0.0).sum())), float(opt)
    if opt == 0:
        return 0.0, 0.0
    kmax = max(len(c) for c in net.formula.clauses)
    return w / (w + kmax), 1.0


def interval_bounds(W1, b) -> tuple[np.ndarray, np.ndarray]:
    """Exact bounds [l, u] of each pre-activation W₁[h]·x + b_h over the box x ∈ [−1, 1]^d.

    l = b − |W₁|·1, u = b + |W₁|·1 (attained at x = ∓sign W₁[h]).

    Parameters
    ----------
    W1 : array_like, shape (m1, d)
        First-layer weights (dense or scipy.sparse).
    b : array_like, shape (m1,)
        First-layer biases.

    Returns
    -------
    tuple of (numpy.ndarray, shape (m1,), numpy.ndarray, shape (m1,))

    Examples
    --------
    >>> l, u = interval_bounds(np.array([[1.0, -1.0, 1.0], [1.0, 0.0, 0.0]]), np.array([-2.0, 0.0]))
    >>> l.tolist(), u.tolist()
    ([-5.0, -1.0], [1.0, 1.0])
    """
    A = abs(sp.csr_matrix(W1))
    s = np.asarray(A.sum(axis=1)).ravel()
    b = np.asarray(b, dtype=np.float64)
    return b - s, b + s


def _unique_rows(M: sp.csr_matrix, extra: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Group identical rows of [M | extra]: (representative row of each group, group of each row).

    Rows are hashed by two random projections (identical rows give bitwise identical hashes: same
    sorted indices and data), then every row is compared exactly with its group's representative;
    a row that differs (a hash collision) gets a group of its own, so the grouping is exact.
    """
    M = sp.csr_matrix(M, dtype=np.float64, copy=True)
    M.sum_duplicates()
    M.eliminate_zeros()
    M.sort_indices()
    k = M.shape[0]
    R = rng.standard_normal((M.shape[1], 2))
    H = np.column_stack([M @ R, extra, np.diff(M.indptr)])
    _, first, inverse = np.unique(H, axis=0, return_index=True, return_inverse=True)
    inverse = np.asarray(inverse).ravel()
    rep = first[inverse]                              # representative of every row
    P = sp.csr_matrix((np.ones(k), (np.arange(k), rep)), shape=(k, k))
    D = (M - P @ M).tocsr()
    D.eliminate_zeros()
    bad = (np.diff(D.indptr) > 0) | (extra != extra[rep])
    if bad.any():  # pragma: no cover - a collision of two random float64 projections
        rep = rep.copy()
        rep[bad] = np.flatnonzero(bad)
    reps, group = np.unique(rep, return_inverse=True)
    return reps, np.asarray(group).ravel()


def milp_size(net: ReductionNetwork) -> dict:
    """Size of :func:`exact_inversion`'s MILP without building it: merged hidden units, binaries, outputs.

    Parameters
    ----------
    net : ReductionNetwork
        The network h_φ (either form).

    Returns
    -------
    dict

    Examples
    --------
    >>> from reduction import build_network
    >>> f = [[1, 2, 3], [-1, -2, 3]]
    >>> milp_size(build_network(f, B=2))["binaries"], milp_size(build_network(f, B=2, form="compact"))["binaries"]
    (5, 5)
    """
    if not isinstance(net, ReductionNetwork):
        raise ValueError(f"net: expected a ReductionNetwork from build_network, got {type(net).__name__}")
    return _merge(net)["size"]


@contextlib.contextmanager
def _quiet_fd1():
    """Silence file descriptor 1 for the duration (HiGHS's C++ code prints debug lines there)."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):  # no fd 1 (embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _merge(net: ReductionNetwork) -> dict:
    rng = np.random.default_rng(12345)
    W1 = sp.csr_matrix(net.W1, dtype=np.float64)
    b = np.asarray(net.b, dtype=np.float64)
    reps, group = _unique_rows(W1, b, rng)
    W1u, bu = W1[reps], b[reps]
    m1 = W1.shape[0]
    P = sp.csr_matrix((np.ones(m1), (np.arange(m1), group)), shape=(m1, reps.size))
    W2u = sp.csr_matrix(sp.csr_matrix(net.W2, dtype=np.float64) @ P)   # outputs on merged hidden units
    z = np.asarray(net.target, dtype=np.float64)
    oreps, ogroup = _unique_rows(W2u, z, rng)
    mult = np.bincount(ogroup, minlength=oreps.size).astype(np.float64)
    lo, hi = interval_bounds(W1u, bu)
    unstable = (lo < 0) & (hi > 0)
    pairs = _opposite_pairs(W1u, bu, np.flatnonzero(unstable))
    size = {"d": net.d, "hidden": int(W1.shape[0]), "hidden_merged": int(reps.size),
            "binaries": int(unstable.sum()) - len(pairs), "outputs": int(z.size), "outputs_merged": int(oreps.size)}
    return {"W1": W1u, "b": bu, "lo": lo, "hi": hi, "unstable": unstable, "pairs": pairs, "W2": W2u[oreps],
            "z": z[oreps], "mult": mult, "size": size}


def _opposite_pairs(W1: sp.csr_matrix, b: np.ndarray, idx: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (h, h') of the given (merged, so distinct) units with W₁[h'] = −W₁[h] and b_h' = −b_h, exactly.

    σ(a) and σ(−a): exactly one is active unless a = 0 (both 0), so δ_h' = 1 − δ_h is valid and the
    pair needs one binary (and y_h − y_h' = a holds).
    """
    W1 = sp.csr_matrix(W1)
    W1.sort_indices()
    key = {}
    for h in idx:
        s, e = W1.indptr[h], W1.indptr[h + 1]
        key[(W1.indices[s:e].tobytes(), W1.data[s:e].tobytes(), float(b[h]))] = int(h)
    pairs = []
    for h in idx:
        s, e = W1.indptr[h], W1.indptr[h + 1]
        h2 = key.get((W1.indices[s:e].tobytes(), (-W1.data[s:e]).tobytes(), float(-b[h]) + 0.0))
        if h2 is not None and h < h2:
            pairs.append((int(h), h2))
    return pairs


@dataclass
class ExactInversionResult:
    """Exact minimum of ‖h(x) − z‖ over the box, by MILP (see the module docstring).

    ``x`` (network inputs, length d) is HiGHS's best point, or None when it found none; ``value`` is
    the norm recomputed at ``x`` in float64 (by the network, not the MILP); ``upper`` HiGHS's
    objective at ``x``; ``lower`` its proved lower bound on the minimum; ``status`` "optimal" |
    "unknown" (a limit reached first) | "error".  ``assignment``, ``n_unsatisfied``: the rounding of
    ``x`` in the formula's numbering; ``verdict``: "sat" (certificate: that rounding satisfies φ),
    "unsat" (``lower`` > ``tol``) or "unknown".
    """

    x: np.ndarray | None
    value: float | None
    upper: float | None
    lower: float | None
    gap: float | None
    status: str
    verdict: str
    message: str
    norm: str
    form: str
    assignment: np.ndarray | None
    n_unsatisfied: int | None
    seconds: float
    nodes: int | None
    size: dict
    time_limit: float | None

    @property
    def optimal(self) -> bool:
        return self.status == "optimal"

    def to_dict(self) -> dict:
        return jsonable(asdict(self))


def exact_inversion(net: ReductionNetwork, *, norm: str = "linf", time_limit: float | None = None,
                    max_binaries: int | None = MAX_MILP_BINARIES, mip_rel_gap: float = 1e-6,
                    tol: float = 1e-6) -> ExactInversionResult:
    r"""min_{x∈[−1,1]^d} ‖h_φ(x) − z‖ (ℓ∞ or ℓ1) exactly, by one MILP (HiGHS); see the module docstring.

    Parameters
    ----------
    net : ReductionNetwork, either form (uses W₁, b, W₂ and z only)
    norm : "linf" (default) or "l1"
    time_limit : seconds for HiGHS (None: no limit); reaching it gives ``status="unknown"``
    max_binaries : refuse (ValueError) a MILP with more binaries; None: no limit
    mip_rel_gap : HiGHS's relative optimality gap for ``"optimal"`` (default 1e-6)
    tol : a proved lower bound above ``tol`` certifies "unsat"

    Returns
    -------
    ExactInversionResult

    Examples
    --------
    >>> from reduction import build_network
    >>> sat = build_network([[1, 2, 3], [-1, -2, 3]], B=2, form="compact")
    >>> r = exact_inversion(sat, norm="l1")
    >>> r.status, r.verdict, r.n_unsatisfied, abs(r.value) < 1e-9
    ('optimal', 'sat', 0, True)
    >>> unsat = build_network([[1], [-1], [2], [-2]], B=2, form="faithful", copies=4)
    >>> r = exact_inversion(unsat, norm="l1")            # min ℓ1 = OPT = 2 (w₁ = c = 4 ≥ B = 2)
    >>> r.status, r.verdict, round(r.value, 6), r.n_unsatisfied
    ('optimal', 'unsat', 2.0, 2)
    """
    if not isinstance(net, ReductionNetwork):
        raise ValueError(f"net: expected a ReductionNetwork from build_network, got {type(net).__name__}")
    norm = _check_norm(norm)
    if time_limit is not None and (isinstance(time_limit, bool) or not isinstance(time_limit, (int, float))
                                   or not (time_limit > 0 and math.isfinite(time_limit))):
        raise ValueError(f"time_limit: expected a positive number of seconds or None, got {time_limit!r}")
    if max_binaries is not None and (isinstance(max_binaries, bool) or not isinstance(max_binaries, (int, np.integer))
                                     or max_binaries < 0):
        raise ValueError(f"max_binaries: expected a non-negative integer or None, got {max_binaries!r}")
    for name, v in (("mip_rel_gap", mip_rel_gap), ("tol", tol)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0 and math.isfinite(v)):
            raise ValueError(f"{name}: expected a finite number >= 0, got {v!r}")
    t0 = time.perf_counter()
    g = _merge(net)
    size = g["size"]
    if max_binaries is not None and size["binaries"] > max_binaries:
        raise ValueError(f"net: the MILP needs {size['binaries']} binaries (one per unstable hidden ReLU, after "
                         f"merging identical neurons; d = {net.d}, m = {net.m}), above the limit max_binaries = "
                         f"{max_binaries} (reduction.exact.MAX_MILP_BINARIES)")
    d = net.d
    W1, bu, lo, hi, unst = g["W1"], g["b"], g["lo"], g["hi"], g["unstable"]
    W2, z, mult = g["W2"], g["z"], g["mult"]
    H, nb, q = W1.shape[0], int(unst.sum()), W2.shape[0]
    nobj = 1 if norm == "linf" else q
    # variables: x (d) | y (H) | δ (nb) | t (1) or s (q)
    ox, oy, od, oo = 0, d, d + H, d + H + nb
    nv = oo + nobj
    act = lo >= 0                      # always on: y = a
    off = hi <= 0                      # always off: y = 0
    bidx = np.flatnonzero(unst)
    I_H = sp.identity(H, format="csr")
    blocks, lb_, ub_ = [], [], []

    def add(xpart, ypart, dpart, opart, lo_, hi_):
        rows = (xpart if xpart is not None else ypart).shape[0]
        blocks.append(sp.hstack([
            xpart if xpart is not None else sp.csr_matrix((rows, d)),
            ypart if ypart is not None else sp.csr_matrix((rows, H)),
            dpart if dpart is not None else sp.csr_matrix((rows, nb)),
            opart if opart is not None else sp.csr_matrix((rows, nobj))], format="csr"))
        lb_.append(np.broadcast_to(lo_, rows))
        ub_.append(np.broadcast_to(hi_, rows))

    if act.any():                      # W1 x − y = −b
        add(W1[act], -I_H[act], None, None, -bu[act], -bu[act])
    if nb:
        Sb = sp.csr_matrix((np.ones(nb), (np.arange(nb), np.arange(nb))), shape=(nb, nb))
        # y ≥ a:  W1 x − y ≤ −b
        add(W1[bidx], -I_H[bidx], None, None, -np.inf, -bu[bidx])
        # y ≤ a − l(1 − δ):  −W1 x + y − l δ ≤ b − l
        add(-W1[bidx], I_H[bidx], sp.diags(-lo[bidx]) @ Sb, None, -np.inf, bu[bidx] - lo[bidx])
        # y ≤ u δ:  y − u δ ≤ 0
        add(None, I_H[bidx], sp.diags(-hi[bidx]) @ Sb, None, -np.inf, 0.0)
    pairs = g["pairs"]
    if pairs:                          # σ(a), σ(−a): δ_h + δ_h' = 1 and y_h − y_h' = a
        pos = np.full(H, -1)
        pos[bidx] = np.arange(nb)
        h1, h2 = np.array(pairs).T
        r = np.arange(len(pairs))
        Dp = sp.csr_matrix((np.ones(2 * len(r)), (np.r_[r, r], np.r_[pos[h1], pos[h2]])), shape=(len(r), nb))
        add(None, sp.csr_matrix((len(r), H)), Dp, None, 1.0, 1.0)
        Yp = sp.csr_matrix((np.r_[-np.ones(len(r)), np.ones(len(r))], (np.r_[r, r], np.r_[h1, h2])),
                           shape=(len(r), H))
        add(W1[h1], Yp, None, None, -bu[h1], -bu[h1])
    # residual: W2 y − z ∓ objective variable
    O = sp.csr_matrix(np.ones((q, 1))) if norm == "linf" else sp.identity(q, format="csr")
    add(None, W2, None, -O, -np.inf, z)          #  W2 y − t ≤ z
    add(None, -W2, None, -O, -np.inf, -z)        # −W2 y − t ≤ −z
    A = sp.vstack(blocks, format="csr")
    lb = np.concatenate([np.full(d, -1.0), np.zeros(H), np.zeros(nb), np.zeros(nobj)])
    ub = np.concatenate([np.full(d, 1.0), np.where(off, 0.0, np.maximum(hi, 0.0)), np.ones(nb),
                         np.full(nobj, np.inf)])
    integrality = np.zeros(nv)
    integrality[od:oo] = 1
    c = np.zeros(nv)
    c[oo:] = 1.0 if norm == "linf" else mult
    opts = {"disp": False, "mip_rel_gap": float(mip_rel_gap), "presolve": True}
    if time_limit is not None:
        opts["time_limit"] = float(time_limit)
    with _quiet_fd1():
        res = milp(c, integrality=integrality, bounds=Bounds(lb, ub),
                   constraints=LinearConstraint(A, np.concatenate(lb_), np.concatenate(ub_)), options=opts)
    seconds = time.perf_counter() - t0
    status = {0: "optimal", 1: "unknown"}.get(int(res.status), "error")
    lower = getattr(res, "mip_dual_bound", None)
    lower = None if lower is None or not np.isfinite(lower) else float(lower)
    x = value = upper = assignment = nu = None
    gap = getattr(res, "mip_gap", None)
    gap = None if gap is None or not np.isfinite(gap) else float(gap)
    if res.x is not None:
        x = np.clip(np.asarray(res.x[:d], dtype=np.float64), -1.0, 1.0)
        value = float(norm_residual(net, x, norm))
        upper = float(res.fun)
        assignment = net.round(x)
        nu = int(count_unsatisfied(net.formula, assignment))
    if status == "optimal" and lower is None and upper is not None:
        lower = upper * (1 - mip_rel_gap) - 1e-9
    verdict = "unknown"
    if nu == 0:
        verdict = "sat"
    elif lower is not None and lower > tol:
        verdict = "unsat"
    return ExactInversionResult(x=x, value=value, upper=upper, lower=lower, gap=gap, status=status,
                                verdict=verdict, message=str(res.message), norm=norm, form=net.form,
                                assignment=assignment, n_unsatisfied=nu, seconds=seconds,
                                nodes=getattr(res, "mip_node_count", None), size=size, time_limit=time_limit)


# ------------------------------------------------------------------------------- two exact routes


@dataclass
class CrossCheckResult:
    """The two exact routes on one formula: SAT solver + RC2 (on φ) against the MILP (on h_φ).

    ``agree`` is True when every comparison held, False when one failed (``problems`` says which),
    None when the MILP stopped at its time limit without a verdict (``exact.verdict == "unknown"``;
    never counted as agreement or disagreement).  Comparisons: the MILP's verdict = the SAT
    solver's; the minimum lies in :func:`exact_minimum_bounds` of RC2's OPT (to ``1e-6·max(1, OPT)``;
    ℓ1 with w₁ ≥ B: = OPT); the minimiser's rounding leaves ≥ OPT clauses unsatisfied (ℓ1 with
    w₁ ≥ B: exactly OPT); for d ≤ 12 the exhaustive optimum over {±1}^d = RC2's.
    """

    satisfiable: bool
    opt: int
    opt_exhaustive: int | None
    sat_seconds: float
    maxsat_seconds: float
    exact: ExactInversionResult
    bounds: tuple
    agree: bool | None
    problems: list

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "exact"}
        d["bounds"] = list(self.bounds)
        d["exact"] = {k: v for k, v in self.exact.to_dict().items() if k not in ("x", "assignment")}
        return d


def _exhaustive_opt(net: ReductionNetwork) -> int:
    """min #unsatisfied over the 2^d assignments of the inputs (an independent MaxSAT optimum, d ≤ 12)."""
    d = net.d
    A = ((np.arange(2**d)[:, None] >> np.arange(d)) & 1).astype(bool)
    return int(np.min(count_unsatisfied(_on_inputs(net), A)))


def cross_check(cnf, *, B: int | None = None, norm: str = "linf", form: str = "compact", copies: int | None = None,
                time_limit: float | None = None, solver: str = "cadical195",
                max_binaries: int | None = MAX_MILP_BINARIES) -> CrossCheckResult:
    """Decide φ by a SAT solver and RC2 and invert h_φ by :func:`exact_inversion`; compare (see the class).

    Parameters
    ----------
    cnf : Formula, pysat CNF or list of clauses
        The formula.
    B : int, optional
        Occurrence bound (default the formula's largest).
    norm : {'linf', 'l1'}
        The norm of the exact inversion.
    form : {'compact', 'faithful'}
        The network form.
    copies : int, optional
        Copies per variable c (default 100B²).
    time_limit : float, optional
        Seconds for the MILP (None: none).
    solver : str
        A pysat solver name.
    max_binaries : int, optional
        Refuse larger MILPs (None: no limit).

    Returns
    -------
    CrossCheckResult

    Examples
    --------
    >>> r = cross_check([[1, 2], [-1, 2], [1, -2], [-1, -2]], norm="l1")   # unsatisfiable, OPT = 1
    >>> r.satisfiable, r.opt, r.exact.verdict, round(r.exact.value, 6), r.agree
    (False, 1, 'unsat', 1.0, True)
    """

    f = as_formula(cnf)
    norm = _check_norm(norm)
    net = build_network(f, B=B, copies=copies, form=form)
    t0 = time.perf_counter()
    sat, _ = _solve(f, solver)
    t_sat = time.perf_counter() - t0
    t0 = time.perf_counter()
    opt, _ = max_sat(f)
    t_opt = time.perf_counter() - t0
    ex = exact_inversion(net, norm=norm, time_limit=time_limit, max_binaries=max_binaries)
    opt_e = _exhaustive_opt(net) if net.d <= 12 else None
    lo, hi = exact_minimum_bounds(net, opt, norm)
    problems = []
    if sat != (opt == 0):
        problems.append(f"SAT solver says {'SAT' if sat else 'UNSAT'} but RC2's optimum is {opt}")
    if opt_e is not None and opt_e != opt:
        problems.append(f"exhaustive optimum {opt_e} != RC2's {opt}")
    agree = None
    if ex.verdict != "unknown":
        if (ex.verdict == "sat") != sat:
            problems.append(f"MILP verdict {ex.verdict} but the SAT solver says {'SAT' if sat else 'UNSAT'}")
        tol = 1e-6 * max(1.0, float(opt))
        if ex.status == "optimal" and ex.value is not None and not (lo - tol <= ex.value <= hi + tol):
            problems.append(f"MILP minimum {ex.value:.9g} outside [{lo:.9g}, {hi:.9g}] implied by OPT = {opt}")
        if ex.lower is not None and ex.lower > hi + tol:
            problems.append(f"MILP lower bound {ex.lower:.9g} above the optimum's upper end {hi:.9g}")
        if ex.n_unsatisfied is not None:
            if ex.n_unsatisfied < opt:
                problems.append(f"the minimiser's rounding leaves {ex.n_unsatisfied} < OPT = {opt} unsatisfied")
            if norm == "l1" and lo == hi and ex.status == "optimal" and ex.n_unsatisfied != opt:
                problems.append(f"l1 minimiser rounds to {ex.n_unsatisfied} unsatisfied, not OPT = {opt}")
        agree = not problems
    elif problems:
        agree = False
    return CrossCheckResult(satisfiable=bool(sat), opt=int(opt), opt_exhaustive=opt_e, sat_seconds=t_sat,
                            maxsat_seconds=t_opt, exact=ex, bounds=(lo, hi), agree=agree, problems=problems)
