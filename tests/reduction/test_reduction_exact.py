"""Exact inversion of h_φ by MILP (reduction/exact.py), against the SAT solver, RC2, exhaustive
enumeration and an independent exact computation (every activation pattern, one LP each).

The ℓ1 / ℓ∞ inequalities of ``reduction.exact`` are theorems; their tests are property tests on
random formulas and points, and the MILP's minimum is compared with what they imply for RC2's
optimum and with the exhaustive optimum over {±1}^d.
"""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reduction import (
    MAX_MILP_BINARIES,
    Formula,
    build_network,
    copy_weight,
    count_unsatisfied,
    cross_check,
    exact_inversion,
    exact_minimum_bounds,
    interval_bounds,
    max_sat,
    milp_size,
    norm_residual,
    occurrences,
    parity,
    pigeonhole,
    random_ksat,
)
from reduction.checks import _solve
from reduction.strategies import box_points, cnf_formulas


def _exhaustive_opt(f: Formula) -> int:
    """min #unsatisfied over all 2^n assignments (written here, independently of the package's)."""
    A = ((np.arange(2**f.nv)[:, None] >> np.arange(f.nv)) & 1).astype(bool)
    return int(count_unsatisfied(f, A).min())


def _net(f, form, copies):
    return build_network(f, form=form, copies=copies)


# ----------------------------------------------------------------------------- per-point inequalities

_forms = st.sampled_from([("compact", None), ("faithful", 1), ("faithful", 3), ("compact", 1), ("compact", 4)])


@given(cnf_formulas(max_var=6, max_clauses=8, distinct=False), _forms, st.data())
def test_l1_per_point_inequality(f, form_copies, data):
    """‖h(x) − z‖₁ ≥ |U| + Σ_i (w₁ − a_i)Δ_i for every x in the box (reduction.exact, proof in the docstring)."""
    form, copies = form_copies
    net = _net(f, form, copies)
    X = data.draw(box_points(net.d))
    w = copy_weight(net, "l1")
    lhs = np.atleast_1d(norm_residual(net, X, "l1"))
    A = net.round(X)
    U = np.atleast_2d(np.array([[not any((a[abs(l) - 1] if l > 0 else not a[abs(l) - 1]) for l in c)
                                 for c in f.clauses] for a in A]))
    absC = abs(net.C).toarray()
    a_i = U.astype(float) @ absC                       # (k, d)
    delta = 1.0 - np.abs(X)
    rhs = U.sum(axis=1) + ((w - a_i) * delta).sum(axis=1)
    # float64: the residual sums ≤ m + d terms of size ≤ max(k, w); 1e-12·scale is ~100 ulps of it
    assert np.all(lhs >= rhs - 1e-12 * (1 + lhs + w * net.d))


@given(cnf_formulas(max_var=6, max_clauses=8, distinct=False), _forms, st.data())
def test_linf_per_point_inequality(f, form_copies, data):
    """U(sign x) ≠ ∅ ⇒ ‖h(x) − z‖∞ ≥ w∞/(w∞ + k_max) for every x in the box."""
    form, copies = form_copies
    net = _net(f, form, copies)
    X = data.draw(box_points(net.d))
    w = copy_weight(net, "linf")
    kmax = max(len(c) for c in f.clauses)
    nu = np.atleast_1d(count_unsatisfied(f, net.round(X)))
    val = np.atleast_1d(norm_residual(net, X, "linf"))
    assert np.all(val[nu > 0] >= w / (w + kmax) - 1e-12 * (1 + w))


def test_linf_bound_is_attained():
    """The ℓ∞ lower bound w/(w + k) is tight: one 3-literal clause, all inputs at Δ = 1/(w + 3)."""
    net = build_network([[1, 2, 3]], B=1, form="compact")   # w = √c = 10
    x = np.full(3, 1 - 1 / 13)
    assert norm_residual(net, x, "linf") == pytest.approx(10 / 13, rel=1e-12)
    r = exact_inversion(net, norm="linf")                    # satisfiable: min 0
    assert r.verdict == "sat" and r.value < 1e-9


# ----------------------------------------------------------------------------- minimum vs RC2 / exhaustive

@settings(max_examples=40)
@given(cnf_formulas(max_var=7, min_clauses=2, max_clauses=14, clause_lengths=(1, 3), max_unused=1),
       st.sampled_from(["linf", "l1"]), _forms)
def test_minimum_against_rc2_and_exhaustive(f, norm, form_copies):
    """min ‖h(x) − z‖ = 0 ⇔ SAT; ℓ1: OPT − Σ(occ − w₁)₊ ≤ min ≤ OPT (= OPT when w₁ ≥ B); ℓ∞: in
    [w/(w + k_max), 1] when UNSAT; OPT from RC2 and from enumerating all 2^n assignments."""
    form, copies = form_copies
    net = _net(f, form, copies)
    r = exact_inversion(net, norm=norm)
    opt_rc2, _ = max_sat(f)
    opt = _exhaustive_opt(f)
    sat, _ = _solve(f, "cadical195")
    assert opt == opt_rc2 and sat == (opt == 0)
    assert r.status == "optimal" and r.verdict == ("sat" if sat else "unsat")
    w = copy_weight(net, norm)
    occ = occurrences(f)
    tol = 1e-6 * max(1, opt)                    # HiGHS feasibility / gap tolerances (1e-7, 1e-6 relative)
    if norm == "l1":
        lo = max(0.0, opt - float(np.maximum(occ - w, 0).sum()))
        assert lo - tol <= r.value <= opt + tol
        if w >= occ.max():
            assert r.value == pytest.approx(opt, abs=tol)
            assert r.n_unsatisfied == opt        # the minimiser rounds to an optimal assignment
    elif opt == 0:
        assert r.value <= 1e-6
    else:
        kmax = max(len(c) for c in f.clauses)
        assert w / (w + kmax) - tol <= r.value <= 1 + tol
    assert r.lower <= r.value + tol and r.n_unsatisfied >= opt
    lo_b, hi_b = exact_minimum_bounds(net, opt, norm)      # the library's statement of the same bounds
    assert lo_b - tol <= r.value <= hi_b + tol


@pytest.mark.parametrize("f,sat", [
    (pigeonhole(3, 2), False), (pigeonhole(4, 3), False), (pigeonhole(3, 3), True),
    (parity(3), False), (parity(5), False), (parity(4), True),
], ids=["php32", "php43", "php33", "parity3", "parity5", "parity4"])
@pytest.mark.parametrize("norm", ["linf", "l1"])
def test_structured_families_agree(f, sat, norm):
    r = cross_check(f, norm=norm)
    assert r.satisfiable == sat and r.agree is True and not r.problems
    assert r.opt == (0 if sat else 1)            # PHP(h+1, h) and odd parity: one clause must go
    if norm == "l1":
        assert r.exact.value == pytest.approx(r.opt, abs=1e-6)


def test_both_forms_same_binaries_and_l1_minimum():
    """The faithful network's c copies merge: same binaries as the compact form; both ℓ1 minima = OPT."""
    f = random_ksat(8, 40, 3, np.random.default_rng(3))
    faithful, compact = build_network(f), build_network(f, form="compact")
    assert milp_size(faithful)["binaries"] == milp_size(compact)["binaries"]
    assert milp_size(faithful)["hidden"] == f.m + 2 * faithful.copies * faithful.d
    opt, _ = max_sat(f)
    for net in (faithful, compact):
        r = exact_inversion(net, norm="l1")
        assert r.value == pytest.approx(opt, abs=1e-6) and r.n_unsatisfied == opt


def test_interval_bounds_exact_on_reduction_neurons():
    """Stated bounds: a k-literal clause neuron has [−(2k−1), 1], a copy neuron [−1, 1]."""
    net = build_network([[1, -2, 3], [2, 4]], B=2, form="compact")
    lo, hi = interval_bounds(net.W1, net.b)
    assert lo[:2].tolist() == [-5.0, -3.0] and hi[:2].tolist() == [1.0, 1.0]
    assert np.all(lo[2:] == -1) and np.all(hi[2:] == 1)


# ----------------------------------------------------------------------------- independent exact computation

def _reference_min(net, norm: str) -> float:
    """min over the box of ‖W₂σ(W₁x + b) − z‖ by enumerating every activation pattern S of the raw
    network (no merging, no big-M) and solving the LP of the linear piece on its polyhedron."""
    from scipy.optimize import linprog

    W1 = net.W1.toarray() if hasattr(net.W1, "toarray") else np.asarray(net.W1)
    W2 = net.W2.toarray() if hasattr(net.W2, "toarray") else np.asarray(net.W2)
    b, z = np.asarray(net.b), np.asarray(net.target)
    H, d = W1.shape
    q = z.size
    best = np.inf
    for pat in itertools.product([False, True], repeat=H):
        S = np.array(pat)
        M = W2[:, S] @ W1[S]
        c0 = W2[:, S] @ b[S] - z
        k = 1 if norm == "linf" else q
        E = np.ones((q, 1)) if norm == "linf" else np.eye(q)
        A = np.vstack([np.hstack([M, -E]), np.hstack([-M, -E]),
                       np.hstack([-W1[S], np.zeros((S.sum(), k))]), np.hstack([W1[~S], np.zeros(((~S).sum(), k))])])
        ub = np.concatenate([-c0, c0, b[S], -b[~S]])
        res = linprog(np.r_[np.zeros(d), np.ones(k)], A_ub=A, b_ub=ub,
                      bounds=[(-1, 1)] * d + [(0, None)] * k, method="highs")
        if res.status == 0:
            best = min(best, res.fun)
    return float(best)


def _fuzz_cases():
    rng = np.random.default_rng(2202)
    cases = []
    for t in range(12):
        d = int(rng.integers(1, 4))
        m = int(rng.integers(2, 5 if d < 3 else 4))
        kmax = min(d, 2) if t % 2 else d          # short clauses on odd t: unsatisfiable more often
        clauses = []
        for _ in range(m):
            k = int(rng.integers(1, kmax + 1))
            vs = rng.choice(d, size=k, replace=False) + 1
            clauses.append(tuple(int(v) * int(s) for v, s in zip(vs, rng.choice([-1, 1], size=k))))
        form, copies = [("compact", None), ("compact", 1), ("faithful", 1), ("faithful", 2)][t % 4]
        if form == "faithful" and copies == 2 and m + 4 * d > 9:
            copies = 1                             # ≤ 2^9 patterns per network
        cases.append((Formula(d, clauses), form, copies))
    return cases


def test_fuzz_milp_against_activation_pattern_lps():
    """12 seeded random networks × 2 norms (both forms, c ∈ {1, 2, 100B²}): the MILP's minimum equals
    the minimum over every activation pattern's LP; counts what the fuzz tried and how many of the
    formulas were unsatisfiable (so both outcomes were exercised)."""
    tried, bad, unsat = 0, [], 0
    for f, form, copies in _fuzz_cases():
        net = build_network(f, form=form, copies=copies)
        unsat += _exhaustive_opt(f) > 0
        for norm in ("linf", "l1"):
            ref = _reference_min(net, norm)
            r = exact_inversion(net, norm=norm)
            tried += 1
            if not (r.status == "optimal" and abs(r.value - ref) <= 1e-6 * max(1.0, ref)):
                bad.append((f.clauses, form, copies, norm, r.status, r.value, ref))
    assert tried == 24 and unsat >= 3, (tried, unsat)
    assert not bad, f"{len(bad)} of {tried} disagree: {bad[:3]}"


# ----------------------------------------------------------------------------- limits and bad input

def test_time_limit_reports_unknown_never_a_wrong_verdict():
    rng = np.random.default_rng(7)
    f = next(g for g in (random_ksat(45, 200, 3, rng) for _ in range(20)) if not _solve(g, "cadical195")[0])
    r = exact_inversion(build_network(f, form="compact"), norm="linf", time_limit=0.2)
    assert r.status == "unknown" and r.verdict == "unknown"
    cc = cross_check(f, time_limit=0.2)
    assert cc.agree is None and cc.exact.verdict == "unknown"


def test_too_many_binaries_refused_before_building():
    f = random_ksat(30, 120, 3, np.random.default_rng(1))
    net = build_network(f, form="compact")
    need = milp_size(net)["binaries"]
    with pytest.raises(ValueError, match=rf"needs {need} binaries .* above the limit max_binaries = 10"):
        exact_inversion(net, max_binaries=10)
    assert MAX_MILP_BINARIES >= 1000


@pytest.mark.parametrize("kw,msg", [
    ({"norm": "l2"}, "norm: expected 'linf' or 'l1'"),
    ({"time_limit": 0}, "time_limit: expected a positive"),
    ({"time_limit": float("inf")}, "time_limit: expected a positive"),
    ({"max_binaries": -1}, "max_binaries"),
    ({"tol": -1.0}, "tol"),
])
def test_exact_inversion_bad_arguments(kw, msg):
    net = build_network([[1, 2]], form="compact")
    with pytest.raises(ValueError, match=msg):
        exact_inversion(net, **kw)


def test_exact_inversion_needs_a_network():
    with pytest.raises(ValueError, match="ReductionNetwork"):
        exact_inversion([[1, 2]])
    with pytest.raises(ValueError, match="bias='exact'"):
        exact_minimum_bounds(build_network([[1, 2, 3]], bias="paper", form="compact"), 0, "l1")
