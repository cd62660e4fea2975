r"""Per-instance checks of the MixCon appendix reduction (Thm B.10, its proof, Cor. B.12).

Every check returns a dataclass with ``passed: bool``, the numbers it compared and ``to_dict()``.

* :func:`truth_table_check` — a k-literal clause neuron σ(w·x + b) is 1 on the all-false
  assignment and 0 otherwise, on {±1}ⁿ (exact iff b = −(k−1): the printed −2 for the E3 clauses
  of Thm B.10, generalised to k literals).
* :func:`check_completeness` — satisfiable φ (a SAT solver's model) ⇒ h_φ(x) = z exactly.
* :func:`max_sat` — the exact MaxSAT optimum (minimum number of unsatisfied clauses) by RC2.
* :func:`check_soundness` — for any x ∈ [−1, 1]^d with rounding x̄ = sign x leaving the clause set
  U unsatisfied (erratum 2: the corrected per-instance inequality),

  .. math::  \|h(x) − z\|^2 \;\ge\; |U| − \sum_i a_i^2/c
             \;\ge\; |U| − \frac{B}{c}\sum_{j∈U} k_j \;=\; |U|\Bigl(1 − \frac{3}{100B}\Bigr),
  .. math::  \|h(x) − z\|^2 \;\ge\; |U| − n_\text{used} B^2/c \;=\; |U| − n_\text{used}/100,

  where a_i = Σ_{j∈U} |W₁[j, i]| ≤ B, k_j is the clause length, c the number of copies and the
  equalities hold for E3 clauses with c = 100B².  *Proof:* for j ∈ U, σ(w_j·x̄ + b_j) = 1 and σ is
  1-Lipschitz, so h_j(x) ≥ 1 − s_j with s_j = Σ_i |w_ji| Δ_i, Δ_i = 1 − |x_i|; hence
  h_j(x)² ≥ 1 − 2s_j, the copies add cΣΔ_i², and 2a_iΔ_i − cΔ_i² ≤ a_i²/c (maximum at
  Δ_i = a_i/c; with a_i = B, c = 100B² this is the paper's max 2BΔ − 100B²Δ² = 1/100).  As
  |U| ≥ OPT (the MaxSAT optimum), no x ∈ [−1, 1]^d has residual below OPT·(1 − 3/(100B)).
  **These are theorems, and RC2's optimum is exact**, so no candidate — from an attack or anywhere
  else — can violate them, and no rounding can leave fewer than OPT clauses unsatisfied: the check
  can fail only through a coding error (in the network, the bounds, the rounding or the solver
  call).  It is a regression check of the implementation, not evidence for the theorem.
* :func:`value_approximation_check` — Def. B.9 and the soundness claim of Thm B.10: every x with
  ‖h(x) − z‖₂ ≤ ε√m₂ (ε = 1/(60B)) rounds to an assignment satisfying at least 7/8 of the clauses.
  With unused variables dropped and n_used ≤ 3m (every E3 formula) this follows from the inequality
  above for every B ≥ 1 (so it, too, is a regression check); the printed network
  (``drop_unused=False``) fails it on a clause plus unused variables (erratum 2).
* :func:`lipschitz_check` — exact spectral norms: ‖W₁‖ = √(2c + λ_max(CᵀC)) ≤ √(200B² + 3B) ≤ 15B
  and ‖W₂‖ = √2 (the proof prints "‖W⁽²⁾‖ ≤ 2" and then bounds ‖W⁽¹⁾‖ under the name W⁽²⁾; erratum
  4), against the true Lipschitz constant ≤ √(c + λ_max(CᵀC)) ≈ 10B, so the printed product
  2·15B = 30B is about 3× loose.
* :func:`exhaustive_check` — for d ≤ 12 occurring variables, every assignment: residual =
  #unsatisfied and the minimum over {±1}^d equals RC2's optimum.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import eigsh

from theory._io import jsonable

from .formulas import Formula, as_formula, count_unsatisfied, unsatisfied_mask, used_variables
from .network import ReductionNetwork, build_network, clause_biases, clause_matrix

__all__ = [
    "TruthTableResult",
    "CompletenessResult",
    "SoundnessResult",
    "LipschitzResult",
    "ExhaustiveResult",
    "ValueApproximationResult",
    "truth_table_check",
    "check_completeness",
    "max_sat",
    "check_soundness",
    "soundness_bound",
    "value_approximation_check",
    "lipschitz_check",
    "exhaustive_check",
]


class _Result:
    def to_dict(self) -> dict:
        return jsonable(asdict(self))


# ------------------------------------------------------------------------------- truth tables


@dataclass
class TruthTableResult(_Result):
    """Clause-neuron truth tables: every assignment of each clause's variables."""

    passed: bool
    bias: str
    n_clauses: int
    n_rows: int
    n_mismatches: int
    clause_lengths: list
    mismatches: list = field(default_factory=list)


def truth_table_check(clauses, bias: str = "exact") -> TruthTableResult:
    """Check that each clause neuron σ(w·x + b) equals [clause unsatisfied] on every assignment.

    It does iff b = −(k−1) for a k-literal clause: the printed −2 on the E3 clauses of Thm B.10,
    and the generalisation ``bias="exact"`` for other lengths (``bias="paper"``: −2 everywhere).

    ``clauses`` is one clause (a sequence of literals) or a CNF.  For each clause the assignments
    of its distinct variables are enumerated (2^{#vars} rows) in the paper's encoding
    x_i = +1 ⇔ X_i false; a mismatch records the clause, the assignment, expected and obtained.

    Parameters
    ----------
    clauses : sequence of int, or a formula
        One clause or a CNF.
    bias : {'exact', 'paper'}
        −(k−1) per clause, or the printed −2 everywhere.

    Returns
    -------
    TruthTableResult
        ``passed``, counts and the first mismatches.

    Examples
    --------
    >>> truth_table_check([1, -2, 3]).passed
    True
    >>> r = truth_table_check([1, 2], bias="paper")   # -2 (right for k = 3) misses k = 2
    >>> r.passed, r.mismatches[0]["expected"], r.mismatches[0]["got"]
    (False, 1.0, 0.0)
    """
    seq = list(clauses) if not hasattr(clauses, "clauses") else None
    if seq is not None and seq and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in seq):
        f = as_formula([seq])
    else:
        f = as_formula(clauses)
    if f.m == 0:
        raise ValueError("clauses: expected at least one clause")
    C = clause_matrix(f).toarray()
    b = clause_biases(f, bias)
    n_rows, mism = 0, []
    for j, c in enumerate(f.clauses):
        vs = sorted({abs(v) for v in c})
        k = len(vs)
        A = ((np.arange(2**k)[:, None] >> np.arange(k)) & 1).astype(bool)  # True = variable true
        x = np.where(A, -1.0, 1.0)
        got = np.maximum(x @ C[j, np.array(vs) - 1] + b[j], 0.0)
        full = np.zeros((2**k, f.nv), dtype=bool)
        full[:, np.array(vs) - 1] = A
        expected = unsatisfied_mask(Formula(f.nv, [c]), full)[:, 0].astype(float)
        n_rows += 2**k
        for r in np.flatnonzero(got != expected):
            if len(mism) < 50:
                mism.append({"clause": list(c), "assignment": {int(v): bool(a) for v, a in zip(vs, A[r])},
                             "expected": float(expected[r]), "got": float(got[r])})
            else:
                mism.append(None)
    nm = len(mism)
    return TruthTableResult(passed=nm == 0, bias=bias, n_clauses=f.m, n_rows=n_rows, n_mismatches=nm,
                            clause_lengths=[len(c) for c in f.clauses],
                            mismatches=[d for d in mism if d is not None])


# ------------------------------------------------------------------------------- solvers


def _assignment_from_model(model, n: int) -> np.ndarray:
    a = np.zeros(n, dtype=bool)
    for lit in model or ():
        if 0 < abs(lit) <= n:
            a[abs(lit) - 1] = lit > 0
    return a


def _solve(f: Formula, solver: str):
    from pysat.solvers import Solver  # deferred: `import reduction` never imports pysat

    try:
        s = Solver(name=solver, bootstrap_with=[list(c) for c in f.clauses])
    except Exception as exc:  # pysat raises NoSuchSolverError (not a ValueError) for unknown names
        raise ValueError(f"solver: unknown pysat solver name {solver!r} ({exc})") from None
    with s:
        sat = bool(s.solve())
        model = s.get_model() if sat else None
    return sat, model


@dataclass
class CompletenessResult(_Result):
    """Completeness (proof of Thm B.10, first claim): a satisfying assignment maps to h(x) = z."""

    satisfiable: bool
    passed: bool
    vacuous: bool
    exact: bool
    residual: float | None
    max_abs_error: float | None
    n_unsatisfied: int | None
    solver: str
    form: str
    assignment: list | None = None


def check_completeness(cnf, solver: str = "cadical195", B: int | None = None, copies: int | None = None,
                       form: str = "faithful", bias: str = "exact") -> CompletenessResult:
    """Solve φ; if satisfiable, map the model to x (x_i = −1 ⇔ X_i true) and check h_φ(x) = z exactly.

    An unsatisfiable formula passes vacuously (``vacuous=True``).  The comparison is exact
    (``numpy.array_equal``): on {±1}ⁿ every activation is a small integer (or √c·1 in the compact
    form, identical to its target), so no tolerance is needed.

    Parameters
    ----------
    cnf : Formula, pysat CNF or list of clauses
        A formula; clauses are sequences of DIMACS literals (±i for X_i).
    solver : str
        A pysat solver name.
    B : int, optional
        Occurrence bound (default: the formula's largest).
    copies : int, optional
        Copies per variable c (default 100B²).
    form : {'faithful', 'compact'}
        The network form.
    bias : {'exact', 'paper'}
        The clause biases.

    Returns
    -------
    CompletenessResult
        ``satisfiable``, ``passed``, ``residual`` (0.0 on a satisfying assignment), ``vacuous``.

    Examples
    --------
    >>> r = check_completeness([[1, 2, 3], [-1, -2, 3], [1, -3, 2]])
    >>> r.satisfiable, r.passed, r.residual
    (True, True, 0.0)
    """
    f = as_formula(cnf)
    sat, model = _solve(f, solver)
    if not sat:
        return CompletenessResult(False, True, True, False, None, None, None, solver, form)
    a = _assignment_from_model(model, f.nv)
    net = build_network(f, B=B, copies=copies, form=form, bias=bias)
    x = net.to_input(a)
    h = net.forward(x)
    exact = bool(np.array_equal(h, net.target))
    err = float(np.max(np.abs(h - net.target))) if h.size else 0.0
    nu = count_unsatisfied(f, a)
    return CompletenessResult(True, exact and nu == 0, False, exact, net.residual(x), err, nu, solver, form,
                              a.tolist())


def max_sat(cnf) -> tuple[int, np.ndarray]:
    """Exact MaxSAT: (minimum number of unsatisfied clauses, an optimal assignment), by RC2.

    Every clause is a soft clause of weight 1 in a :class:`pysat.formula.WCNF`; the optimum is
    re-counted on the returned assignment (a mismatch would be a solver bug: RuntimeError).

    Parameters
    ----------
    cnf : Formula, pysat CNF or list of clauses
        A formula; clauses are sequences of DIMACS literals (±i for X_i).

    Returns
    -------
    tuple of (int, numpy.ndarray of bool, shape (n,))
        The optimum and an optimal assignment in the formula's numbering.

    Examples
    --------
    >>> opt, a = max_sat([[1], [-1], [2]])
    >>> opt, count_unsatisfied([[1], [-1], [2]], a)
    (1, 1)
    """
    from pysat.examples.rc2 import RC2  # deferred: `import reduction` never imports pysat
    from pysat.formula import WCNF

    f = as_formula(cnf)
    if f.m == 0:
        return 0, np.zeros(f.nv, dtype=bool)
    w = WCNF()
    for c in f.clauses:
        w.append(list(c), weight=1)
    with RC2(w) as rc2:
        model = rc2.compute()
        cost = int(rc2.cost)
    a = _assignment_from_model(model, f.nv)
    got = count_unsatisfied(f, a)
    if got != cost:  # pragma: no cover - would be a solver bug
        raise RuntimeError(f"RC2 reported cost {cost} but its model leaves {got} clauses unsatisfied")
    return cost, a


def _on_inputs(net: ReductionNetwork) -> Formula:
    """The network's formula renumbered onto its inputs: variable t + 1 is input t (``net.variables[t]``)."""
    pos = {int(v): t + 1 for t, v in enumerate(net.variables)}
    return Formula(net.d, [tuple(pos[abs(lit)] if lit > 0 else -pos[abs(lit)] for lit in c)
                           for c in net.formula.clauses])


# ------------------------------------------------------------------------------- soundness


@dataclass
class SoundnessResult(_Result):
    """The corrected soundness inequality, per candidate x (erratum 2)."""

    passed: bool
    n_candidates: int
    B: int
    copies: int
    n_used: int
    residuals: list
    n_unsatisfied: list
    bound_B: list       # |U| − (B/c)Σ_{j∈U}k_j  (= |U|(1 − 3/(100B)) for E3, c = 100B²)
    bound_used: list    # |U| − n_used·B²/c      (= |U| − n_used/100)
    bound_round: list   # |U| − Σ_i a_i²/c        (sharpest; ≥ both above)
    bound_opt: float | None   # OPT·(1 − B·k_max/c): lower bound on every residual
    opt: int | None
    min_margin: float
    min_margins: dict
    worst_index: int
    network_agrees: bool = True   # network residual = closed form, to float64 error
    min_slacks: dict = field(default_factory=dict)  # min over candidates of margin + 1e-13·max(1, R)


def soundness_bound(opt: int, B: int, copies: int | None = None, k: int = 3) -> float:
    """Lower bound on inf_{x∈[−1,1]ⁿ} ‖h_φ(x) − z‖² from the MaxSAT optimum: OPT·(1 − Bk/c).

    With c = 100B² copies and k = 3 this is OPT·(1 − 3/(100B)).

    Parameters
    ----------
    opt : int
        The MaxSAT optimum (minimum number of unsatisfied clauses).
    B : int
        Occurrence bound.
    copies : int, optional
        Copies per variable c (default 100B²).
    k : int
        Literals per clause.

    Returns
    -------
    float
        OPT·(1 − Bk/c).

    Examples
    --------
    >>> soundness_bound(10, B=5)
    9.94
    """
    c = 100 * B * B if copies is None else copies
    coef = 1.0 - B * k / c
    return float(opt * coef) if coef >= 0 else 0.0


def check_soundness(cnf, B: int, xs, copies: int | None = None, opt: int | None = None,
                    form: str = "compact") -> SoundnessResult:
    """Check ‖h(x) − z‖² ≥ the corrected soundness bounds for every candidate x (rows of ``xs``).

    Parameters
    ----------
    cnf : the formula; B : its occurrence bound (a violating formula is a ValueError)
    xs : array (k, d) or (d,) of candidates in [−1, 1]^d (network inputs, d = the variables that
        occur; (k, n) in the formula's numbering is accepted too); outside the box is a ValueError
    copies : c (default 100B²); opt : the MaxSAT optimum, if known (adds OPT·(1 − Bk_max/c))
    form : network form used to evaluate residuals (both forms have the same residual)

    ``passed`` iff the network's residual agrees with the closed form (DESIGN §3) to its float64
    error bound and every margin (closed-form residual − bound) is ≥ −1e-13·max(1, residual);
    see the comments in the code for the error analysis.  Every bound is a proved inequality (see
    the module docstring), so ``passed=False`` means a coding error — a regression check, not
    evidence: no candidate, however found, can make a correct implementation fail.

    Returns
    -------
    SoundnessResult
        ``passed`` and, per candidate, the residual, the bound and the unsatisfied count.

    Examples
    --------
    >>> import numpy as np
    >>> f = [[1, 2, 3], [-1, 2, 3], [1, -2, 3], [1, 2, -3]]
    >>> r = check_soundness(f, B=4, xs=np.array([[0.9, 0.95, 1.0], [-0.5, 0.2, 0.99]]))
    >>> r.passed, r.n_unsatisfied
    (True, [1, 1])
    """
    f = as_formula(cnf)
    net = build_network(f, B=B, copies=copies, form=form)
    X = np.atleast_2d(net._check_x(xs, box=True))  # network inputs (k, d)
    c, Bv = net.copies, net.B
    R = np.atleast_1d(net.residual(X))
    U = unsatisfied_mask(_on_inputs(net), X < 0)   # rounding x̄ = sign x (ties → +1: false)
    nU = U.sum(axis=1).astype(float)
    klen = np.array([len(cl) for cl in f.clauses], dtype=float)
    absC = abs(net.C)
    a = np.asarray((absC.T @ U.T.astype(float))).T  # (k, d): a_i = Σ_{j∈U} |w_ji|
    n_used = net.n_used
    bound_B = nU - Bv * (U @ klen) / c
    bound_used = nU - n_used * Bv * Bv / c
    bound_round = nU - (a * a).sum(axis=1) / c
    kmax = int(klen.max())
    bounds = {"bound_B": bound_B, "bound_used": bound_used, "bound_round": bound_round}
    b_opt = None
    if opt is not None:
        if isinstance(opt, bool) or not isinstance(opt, (int, np.integer)) or opt < 0:
            raise ValueError(f"opt: expected the MaxSAT optimum (a non-negative integer), got {opt!r}")
        b_opt = soundness_bound(int(opt), Bv, c, kmax)
        bounds["bound_opt"] = np.full(R.shape, b_opt)
    # The sharp bound is tight to O(1/c²) (~1e-9 for c ~ 4·10⁴), so margins are compared on the
    # closed form Σσ(w_j·x + b_j)² + cΣ(1 − |x_i|)² (DESIGN §3), whose float64 error is a few ulps
    # per term (1 − |x_i| is exact for |x_i| ≥ 1/2): tolerance 1e-13·max(1, R), ~100× that error.
    # The network's own residual must agree with it to its error bound: computing √c|x_i| − √c
    # loses ~√c·ε absolutely, so each copy term is off by ≤ 2cε(1 − |x_i|) + O(ε), and each clause
    # term by O(kε): total ≤ 8ε(c·d + Σk_j² + R).
    pre = np.asarray(net.C @ X.T).T + net.b[: f.m]
    R_cf = (np.maximum(pre, 0.0) ** 2).sum(axis=1) + c * ((1.0 - np.abs(X)) ** 2).sum(axis=1)
    eps = np.finfo(float).eps
    net_tol = 8 * eps * (c * net.d + float((klen**2).sum()) + R_cf)
    net_agrees = bool(np.all(np.abs(R - R_cf) <= net_tol))
    tol = 1e-13 * np.maximum(1.0, R_cf)
    margins = {k: R_cf - v for k, v in bounds.items()}
    slacks = {k: float((mg + tol).min()) for k, mg in margins.items()}
    ok = net_agrees and all(v >= 0 for v in slacks.values())
    allm = np.min(np.vstack(list(margins.values())), axis=0)
    worst = int(np.argmin(allm))
    return SoundnessResult(
        passed=ok, n_candidates=int(R.shape[0]), B=Bv, copies=c, n_used=n_used,
        residuals=R.tolist(), n_unsatisfied=nU.astype(int).tolist(), bound_B=bound_B.tolist(),
        bound_used=bound_used.tolist(), bound_round=bound_round.tolist(), bound_opt=b_opt,
        opt=None if opt is None else int(opt), min_margin=float(allm[worst]),
        min_margins={k: float(v.min()) for k, v in margins.items()}, worst_index=worst,
        network_agrees=net_agrees, min_slacks=slacks)


# ------------------------------------------------------------------------------- ε-test (Def. B.9)


@dataclass
class ValueApproximationResult(_Result):
    """Soundness claim of Thm B.10 on candidates: ε-approximate of value ⇒ rounding satisfies ≥ 7/8."""

    passed: bool
    eps: float
    m2: int
    threshold: float        # ε·√m₂
    n_candidates: int
    n_approximate: int      # candidates with ‖h(x) − z‖₂ ≤ ε√m₂
    norms: list             # ‖h(x) − z‖₂
    approximate: list
    n_satisfied: list       # clauses satisfied by the rounding of each candidate
    fraction_satisfied: list
    required_fraction: float  # 7/8
    worst_fraction: float | None  # smallest fraction among the approximate candidates


def value_approximation_check(net: ReductionNetwork, xs, eps: float | None = None) -> ValueApproximationResult:
    """Def. B.9 (ε-approximate of value: ‖h(x) − z‖₂ ≤ ε√m₂) and Thm B.10's soundness claim.

    For each candidate x (rows of ``xs``, network inputs or the formula's numbering, in [−1, 1])
    with ‖h(x) − z‖₂ ≤ ε√m₂ (default ε = 1/(60B), as in Thm B.10), the rounding x̄ = sign x must
    satisfy at least 7/8 of the m clauses; ``passed`` iff every such candidate does.  m₂ = m + c·d
    is the output count of the faithful network, for either form (the compact one has the same
    residual with fewer outputs).

    From the per-candidate inequality of :func:`check_soundness`, |U| ≤ ε²m₂ + n_used·B²/c; with
    c = 100B² and unused variables dropped (m₂ = m + c·n_used) that is
    m/(3600B²) + n_used(1/36 + 1/100) < m/8 whenever n_used ≤ 3m (every E3 formula), for every
    B ≥ 1 — so on such networks this is a regression check.  The theorem's stronger
    (7/8 + 5/√B)·m needs B > 1.44·10⁴ (erratum 3).  On the printed network (``drop_unused=False``)
    m₂ counts the unused variables too, and the claim fails: a clause and 97 unused variables.

    Parameters
    ----------
    net : ReductionNetwork
        The network h_φ.
    xs : array_like, shape (k, d) or (k, n)
        Candidate inputs in [−1, 1] (network inputs, or the formula's numbering).
    eps : float, optional
        ε (default 1/(60B), as in Thm B.10).

    Returns
    -------
    ValueApproximationResult
        ``passed`` and, per candidate, the residual, the test and the rounding's satisfied fraction.

    Examples
    --------
    >>> net = build_network(Formula(100, [(1, 2, 3)]), drop_unused=False)   # the printed network
    >>> r = value_approximation_check(net, net.to_input([False] * 100))     # the all-false corner
    >>> r.approximate, r.fraction_satisfied, r.passed
    ([True], [0.0], False)
    >>> net = build_network(Formula(100, [(1, 2, 3)]))                      # unused variables dropped
    >>> value_approximation_check(net, net.to_input([False] * 100)).approximate
    [False]
    """
    if not isinstance(net, ReductionNetwork):
        raise ValueError(f"net: expected a ReductionNetwork from build_network, got {type(net).__name__}")
    if eps is None:
        eps = 1.0 / (60 * net.B)
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) or not (eps > 0 and math.isfinite(eps)):
        raise ValueError(f"eps: expected a positive finite tolerance, got {eps!r}")
    X = np.atleast_2d(net._check_x(xs, box=True))
    m2 = net.m + net.copies * net.d  # the faithful network's outputs (the compact form has fewer, same residual)
    thr = float(eps) * math.sqrt(m2)
    norms = np.sqrt(np.atleast_1d(net.residual(X)))
    approx = norms <= thr
    n_sat = net.m - np.atleast_1d(count_unsatisfied(_on_inputs(net), X < 0))
    frac = n_sat / net.m
    worst = float(frac[approx].min()) if approx.any() else None
    return ValueApproximationResult(
        passed=bool(np.all(frac[approx] >= 7 / 8)), eps=float(eps), m2=m2, threshold=thr,
        n_candidates=int(X.shape[0]), n_approximate=int(approx.sum()), norms=norms.tolist(),
        approximate=approx.tolist(), n_satisfied=n_sat.tolist(), fraction_satisfied=frac.tolist(),
        required_fraction=7 / 8, worst_fraction=worst)


# ------------------------------------------------------------------------------- Lipschitz


def _spectral_norm(M) -> float:
    """Exact spectral norm via the smaller Gram matrix (dense eigvalsh, or exact for diagonal Grams)."""
    M = sp.csr_matrix(M) if sp.issparse(M) else np.asarray(M)
    r, cdim = M.shape
    G = (M.T @ M) if cdim <= r else (M @ M.T)
    if sp.issparse(G):
        G = sp.csr_matrix(G)
        G.eliminate_zeros()
        d = G.diagonal()
        if G.nnz == np.count_nonzero(d):  # diagonal Gram: singular values are sqrt(diag)
            return float(math.sqrt(max(d.max(), 0.0))) if d.size else 0.0
        if G.shape[0] <= 4000:
            G = G.toarray()
        else:

            return float(math.sqrt(eigsh(G, k=1, which="LA", return_eigenvectors=False)[0]))
    ev = np.linalg.eigvalsh(np.asarray(G, dtype=float))
    return float(math.sqrt(max(ev[-1], 0.0))) if ev.size else 0.0


@dataclass
class LipschitzResult(_Result):
    """Lipschitz claim of Thm B.10 with exact spectral norms of the faithful network."""

    passed: bool
    B: int
    copies: int
    norm_W1: float
    bound_W1: float            # √(2c + k_max·B)  (= √(200B² + 3B) for E3, c = 100B²)
    bound_W1_15B: float        # 15B
    norm_W2: float
    sqrt2: float
    product: float             # ‖W₁‖·‖W₂‖
    paper_product: float       # 15B · 2 as printed
    lipschitz_upper: float     # √(c + λ_max(CᵀC)) ≥ true Lipschitz constant
    lipschitz_sampled: float   # max ‖J(x)‖ over sampled x ≤ true constant
    looseness_product: float   # product / lipschitz_upper
    looseness_paper: float     # paper_product / lipschitz_upper


def lipschitz_check(net: ReductionNetwork, B: int | None = None, rng: np.random.Generator | None = None,
                    samples: int = 16) -> LipschitzResult:
    """Exact ‖W₁‖, ‖W₂‖ of the faithful h_φ against √(200B² + 3B) ≤ 15B and √2.

    A compact network is rebuilt in the faithful form (the claim is about that network).  The
    true Lipschitz constant L of h satisfies max_x ‖J(x)‖ ≤ L ≤ √(c + λ_max(CᵀC)), since a.e.
    JᵀJ = CᵀD C + c·diag(sign(x)²) with D a 0/1 diagonal; the lower end is sampled at random x.

    Parameters
    ----------
    net : ReductionNetwork
        The network (a compact one is rebuilt in the faithful form).
    B : int, optional
        Occurrence bound of the claim (default the network's).
    rng : numpy.random.Generator, optional
        For the sampled lower end (default a fixed seed).
    samples : int
        Random points x at which ‖J(x)‖ is computed.

    Returns
    -------
    LipschitzResult
        ``norm_W1``, ``norm_W2``, the claimed and exact constants, ``passed``.

    Examples
    --------
    >>> r = lipschitz_check(build_network([[1, 2, 3], [-1, 2, -3]], B=2))
    >>> r.passed, round(r.norm_W2 ** 2, 12)
    (True, 2.0)
    """
    if not isinstance(net, ReductionNetwork):
        raise ValueError(f"net: expected a ReductionNetwork from build_network, got {type(net).__name__}")
    Bv = net.B if B is None else B
    if isinstance(Bv, bool) or not isinstance(Bv, (int, np.integer)) or Bv < 1:
        raise ValueError(f"B: expected an integer >= 1, got {Bv!r}")
    lits = np.fromiter((abs(lit) for cl in net.formula.clauses for lit in cl), dtype=np.int64)
    max_occ = int(np.unique(lits, return_counts=True)[1].max())
    if max_occ > Bv:
        raise ValueError(f"B: the formula violates the stated B = {Bv} (a variable occurs {max_occ} times)")
    if net.form != "faithful":
        net = build_network(net.formula, B=net.B, copies=net.copies, form="faithful", bias=net.bias,
                            drop_unused=net.d == net.n_used)
    c = net.copies
    rng = np.random.default_rng(0) if rng is None else rng
    n1 = _spectral_norm(net.W1)
    n2 = _spectral_norm(net.W2)
    klen = [len(cl) for cl in net.formula.clauses]
    kmax = max(klen) if klen else 0
    bW1 = math.sqrt(2 * c + kmax * Bv)
    CtC = (net.C.T @ net.C).toarray()
    lam = float(np.linalg.eigvalsh(CtC)[-1])
    L_up = math.sqrt(c + max(lam, 0.0))
    Ls = 0.0
    W1 = sp.csr_matrix(net.W1)
    for _ in range(samples):
        x = rng.uniform(-1, 1, net.d)
        act = (W1 @ x + net.b) > 0
        J = net.W2 @ sp.diags(act.astype(float)) @ W1
        Ls = max(Ls, _spectral_norm(J))
    tol = 1e-9 * bW1  # eigvalsh of an n×n Gram with entries ≤ 2c: relative error ~1e-15·n
    passed = (n1 <= bW1 + tol) and (math.sqrt(200 * Bv**2 + 3 * Bv) <= 15 * Bv) \
        and abs(n2 - math.sqrt(2)) <= 1e-12 and Ls <= L_up * (1 + 1e-12) and L_up <= n1 * n2 * (1 + 1e-12)
    return LipschitzResult(
        passed=bool(passed), B=int(Bv), copies=c, norm_W1=n1, bound_W1=bW1, bound_W1_15B=15.0 * Bv,
        norm_W2=n2, sqrt2=math.sqrt(2), product=n1 * n2, paper_product=30.0 * Bv, lipschitz_upper=L_up,
        lipschitz_sampled=Ls, looseness_product=n1 * n2 / L_up, looseness_paper=30.0 * Bv / L_up)


# ------------------------------------------------------------------------------- exhaustive


@dataclass
class ExhaustiveResult(_Result):
    """Every assignment of a small formula's occurring variables: residual = #unsatisfied, min = MaxSAT optimum."""

    passed: bool
    n: int
    n_used: int
    m: int
    n_assignments: int
    n_mismatch: int
    opt_exhaustive: int
    opt_maxsat: int
    min_residual: float
    n_optimal: int
    form: str


def exhaustive_check(cnf, B: int | None = None, copies: int | None = None, form: str = "compact",
                     chunk: int = 256) -> ExhaustiveResult:
    """Enumerate {±1}^d (d ≤ 12 occurring variables): ‖h(x) − z‖² must equal #unsatisfied exactly,
    and its minimum RC2's optimum.

    Variables that occur in no clause are not inputs (see :func:`build_network`) and change no
    count, so only the 2^d assignments of the occurring ones are enumerated.  Exact comparison: on
    {±1}^d every term is an integer (compact form: √c·1 − √c = 0 exactly).

    Parameters
    ----------
    cnf : Formula, pysat CNF or list of clauses
        A formula; clauses are sequences of DIMACS literals (±i for X_i).
    B : int, optional
        Occurrence bound (default the formula's largest).
    copies : int, optional
        Copies per variable c (default 100B²).
    form : {'compact', 'faithful'}
        The network form.
    chunk : int
        Assignments evaluated per batch.

    Returns
    -------
    ExhaustiveResult
        ``passed``, ``opt_exhaustive``, ``opt_rc2``, ``n_assignments``.

    Examples
    --------
    >>> r = exhaustive_check([[1, 2, 3], [-1, -2, -3], [1, -2, 3]])
    >>> r.passed, r.opt_exhaustive, r.n_assignments
    (True, 0, 8)
    """
    f = as_formula(cnf)
    d = int(used_variables(f).size)
    if d > 12:
        raise ValueError(f"cnf: exhaustive_check enumerates the 2^d assignments of the d variables that "
                         f"occur and needs d <= 12, got d = {d}")
    net = build_network(f, B=B, copies=copies, form=form)
    N = 2**d
    A = ((np.arange(N)[:, None] >> np.arange(d)) & 1).astype(bool)  # True = variable true
    unsat = count_unsatisfied(_on_inputs(net), A)
    res = np.empty(N)
    for s in range(0, N, chunk):
        res[s:s + chunk] = net.residual(np.where(A[s:s + chunk], -1.0, 1.0))  # x_i = -1 <=> X_i true
    mism = int(np.count_nonzero(res != unsat))
    opt_e = int(unsat.min())
    opt_r, _ = max_sat(f)
    return ExhaustiveResult(passed=mism == 0 and opt_e == opt_r and float(res.min()) == opt_r,
                            n=f.nv, n_used=d, m=f.m, n_assignments=N, n_mismatch=mism, opt_exhaustive=opt_e,
                            opt_maxsat=opt_r, min_residual=float(res.min()),
                            n_optimal=int(np.count_nonzero(unsat == opt_e)), form=net.form)
