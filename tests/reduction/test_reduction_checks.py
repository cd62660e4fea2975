"""Completeness, soundness, Lipschitz and exhaustive checks of the reduction (MixCon Thm B.10).

The soundness inequalities are theorems and RC2's optimum is exact, so the soundness tests can
fail only through a coding error: they are regression checks of the implementation, not evidence
for the theorem.  What they catch is shown by the mutation table in the issue-12 note (a wrong
bias, a wrong copy weight, a wrong bound each fail one of them).
"""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reduction import (
    Formula,
    occurrences,
    value_approximation_check,
    build_network,
    check_completeness,
    check_soundness,
    count_unsatisfied,
    exhaustive_check,
    instance_batch,
    invert,
    lipschitz_check,
    max_sat,
    random_e3sat,
    random_ksat,
    soundness_bound,
)
from reduction.strategies import box_points, cnf_formulas

BATCH = instance_batch(seed=0, n_planted=50, n_over=50)
PLANTED = [d for d in BATCH if d["kind"] == "planted"]
OVER = [d for d in BATCH if d["kind"] == "over"]
SMALL = [d for d in BATCH if d["formula"].nv <= 12]


def test_batch_composition():
    assert len(PLANTED) >= 50 and len(OVER) >= 50 and len(SMALL) >= 20
    assert all(d["formula"].nv <= 30 for d in BATCH)


@pytest.mark.parametrize("inst", PLANTED, ids=lambda d: d["name"])
def test_completeness_planted(inst):
    """Satisfiable φ: the solver's model x gives h(x) = z exactly, on the faithful network (c = 100B²)."""
    r = check_completeness(inst["formula"], B=inst["B"], form="faithful")
    assert r.satisfiable and not r.vacuous
    assert r.passed and r.exact and r.residual == 0.0 and r.n_unsatisfied == 0
    # the planted assignment maps to an exact preimage as well
    net = build_network(inst["formula"], B=inst["B"], form="compact")
    assert np.array_equal(net.forward(net.to_input(inst["planted"])), net.target)


def test_completeness_unsat_is_vacuous():
    r = check_completeness([[1], [-1]])
    assert not r.satisfiable and r.passed and r.vacuous


def test_completeness_paper_bias_breaks_on_2_clauses():
    """With the printed −2 bias a satisfiable 2-CNF still maps to h(x) = z, but so does an unsatisfiable one
    (see test_paper_bias_network_misses_unsatisfied_2_clauses): completeness alone cannot catch erratum 1."""
    assert check_completeness([[1, 2], [-1, 2]], bias="paper").passed


@pytest.mark.parametrize("inst", OVER, ids=lambda d: d["name"])
def test_soundness_over_constrained(inst):
    """Regression check: candidates from L-BFGS-B (random starts and RC2's optimal corner) and PGD satisfy
    the corrected bounds ‖h(x)−z‖² ≥ |U|(1−3/(100B)), ≥ |U| − n_used/100, ≥ |U| − Σa²/c and
    ≥ OPT(1−3/(100B)).  These are proved for every x, so only a coding error can fail this test."""
    f, B = inst["formula"], inst["B"]
    opt, a = max_sat(f)
    net = build_network(f, B=B, form="compact")
    seed = int(inst["name"].split("-")[1])
    rng = np.random.default_rng(seed)
    warm = invert(net, restarts=0, steps=200, method="lbfgsb", x0=net.to_input(a))
    cands = [invert(net, restarts=3, steps=150, method="lbfgsb", rng=rng).xs, warm.xs]
    if seed % 10 == 0:
        cands.append(invert(net, restarts=3, steps=80, method="pgd", rng=rng, device="cpu").xs)
    r = check_soundness(f, B, np.vstack(cands), opt=opt)
    assert r.passed and r.network_agrees, r.min_margins
    assert r.min_margins["bound_opt"] >= 0
    assert min(r.n_unsatisfied) >= opt  # RC2 is exact: fails only if the rounding or the solver call is wrong
    # the bound is nearly tight: polishing RC2's optimal corner goes below OPT, towards OPT(1 − 3/(100B))
    assert soundness_bound(opt, B) <= warm.residual <= opt


@pytest.mark.parametrize("inst", SMALL, ids=lambda d: d["name"])
def test_exhaustive_agrees_with_rc2(inst):
    """n ≤ 12: every assignment's residual equals its unsatisfied count; the minimum equals RC2's optimum."""
    r = exhaustive_check(inst["formula"], B=inst["B"])
    assert r.passed and r.n_mismatch == 0 and r.opt_exhaustive == r.opt_maxsat == r.min_residual


def test_exhaustive_faithful_form():
    f = random_e3sat(10, 13, 4, np.random.default_rng(4))
    r = exhaustive_check(f, B=4, form="faithful")
    assert r.passed and r.form == "faithful"


@given(st.data(), st.one_of(cnf_formulas(clause_lengths=(3, 3)), cnf_formulas(distinct=False)),
       st.integers(0, 3), st.sampled_from([None, 1, 7, 50]))
def test_soundness_property(data, f, slack, copies):
    """The corrected inequality of erratum 2, for drawn formulas (E3, and 1–4 literals with repeats and
    tautologies), B = max occurrences + slack, copies c and points of the box (anywhere and near corners,
    where the bound is tightest).  A regression check: the inequality is proved."""
    B = int(occurrences(f).max()) + slack
    net_d = len({abs(v) for c in f.clauses for v in c})
    X = data.draw(box_points(net_d, max_points=6))
    r = check_soundness(f, B, X, copies=copies)
    assert r.passed and r.network_agrees, r.min_margins
    # ordering of the bounds: Σa_i² ≤ B·Σa_i ≤ B·Σk_j and Σa_i² ≤ B²·n_used (exact in rationals; 1e-12 float slack)
    assert np.all(np.array(r.bound_round) >= np.array(r.bound_B) - 1e-12)
    assert np.all(np.array(r.bound_round) >= np.array(r.bound_used) - 1e-12)


def test_soundness_bounds_exact_values():
    """The bounds' values, by hand (inequality tests alone would pass a looser bound): (X1∨X2∨X3) ∧
    (X1∨X2∨X4), B = 2, c = 100B² = 400, at the all-false corner both clauses are unsatisfied, so
    |U| = 2, a = (2, 2, 1, 1), Σa² = 10, Σ_{j∈U} k_j = 6, n_used = 4; and with Δ = 0.1 on X4 the
    residual gains c·Δ² = 4 and the clause-2 neuron drops to 0.9."""
    X = np.array([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.9]])
    r = check_soundness([[1, 2, 3], [1, 2, 4]], B=2, xs=X, opt=0)
    assert r.n_unsatisfied == [2, 2] and r.n_used == 4 and r.copies == 400
    assert r.residuals == pytest.approx([2.0, 1 + 0.81 + 4.0], rel=1e-14)   # float64 sums of 6 terms
    assert r.bound_round == pytest.approx([2 - 10 / 400] * 2, rel=1e-15)
    assert r.bound_B == pytest.approx([2 - 2 * 6 / 400] * 2, rel=1e-15)
    assert r.bound_used == pytest.approx([2 - 4 * 4 / 400] * 2, rel=1e-15)
    assert r.bound_opt == 0.0 and r.passed


def test_soundness_bound_formula():
    assert soundness_bound(10, B=5) == pytest.approx(10 * (1 - 3 / 500), rel=1e-15)
    assert soundness_bound(3, B=1, copies=2) == 0.0  # coefficient negative: only the trivial bound


@pytest.mark.parametrize("k", [2, 4])
def test_soundness_general_clause_lengths(k):
    """The generalised bound |U| − (B/c)Σ_{j∈U} k_j holds for 2- and 4-literal clauses too (bias −(k−1))."""
    rng = np.random.default_rng(5 + k)
    f = random_ksat(8, 14, k, rng)
    B = int(occurrences(f).max())
    X = rng.choice([-1.0, 1.0], (20, 8)) * (1 - rng.uniform(0, 0.02, (20, 8)))
    assert check_soundness(f, B, X).passed


# ----------------------------------------------------------------------------- ε-test (Def. B.9), unused variables

def test_erratum_unused_variables_counterexample():
    """Erratum 2 ("n ≤ 3m" counts only variables that occur): 1 clause and 97 unused variables.  The
    printed network (copies for all 100 variables) has m₂ = 1 + 100·100, so the ε-test
    ‖h(x) − z‖₂ ≤ √m₂/(60B) = 1.667 admits the all-false corner (residual 1) although its rounding
    satisfies 0 % of the clauses, not ≥ 7/8.  With unused variables dropped m₂ = 1 + 100·3 and the
    threshold is √301/60 = 0.289 < 1: the corner is rejected."""
    f = Formula(100, [(1, 2, 3)])
    a = np.zeros(100, dtype=bool)
    printed = build_network(f, drop_unused=False)
    r = value_approximation_check(printed, printed.to_input(a))
    assert (r.m2, r.norms, r.approximate, r.fraction_satisfied) == (1 + 100 * 100, [1.0], [True], [0.0])
    assert r.threshold == pytest.approx(math.sqrt(10001) / 60, rel=1e-15) and not r.passed
    net = build_network(f)
    r = value_approximation_check(net, net.to_input(a))
    assert (net.d, r.m2, r.approximate, r.passed) == (3, 1 + 100 * 3, [False], True)
    assert r.threshold == pytest.approx(math.sqrt(301) / 60, rel=1e-15)


@pytest.mark.parametrize("m,passed", [(8, True), (5, False)])
def test_value_approximation_threshold_is_seven_eighths(m, passed):
    """With a lenient ε = 1 every corner is "approximate"; the all-false corner of the first m sign
    patterns on X1..X3 leaves exactly one clause unsatisfied: 7/8 satisfied passes (the threshold is
    inclusive), 4/5 fails."""
    patterns = [(1, 2, 3), (-1, 2, 3), (1, -2, 3), (1, 2, -3), (-1, -2, 3), (-1, 2, -3), (1, -2, -3), (-1, -2, -3)]
    net = build_network(patterns[:m], form="compact")
    r = value_approximation_check(net, np.ones(3), eps=1.0)
    assert r.approximate == [True] and r.n_satisfied == [m - 1] and r.worst_fraction == (m - 1) / m
    assert r.required_fraction == 7 / 8 and r.passed == passed


@given(cnf_formulas(max_var=6, max_clauses=8, clause_lengths=(3, 3), max_unused=6), st.integers(0, 2))
def test_value_approximation_holds_on_every_corner(f, slack):
    """Thm B.10's soundness claim (ε = 1/(60B), ≥ 7/8 of the clauses) on every corner of an E3 formula's
    network with unused variables dropped — exhaustive over {±1}^d, d ≤ 6.  Proved for every B ≥ 1
    (|U| ≤ m/(3600B²) + n_used(1/36 + 1/100) < m/8 as n_used ≤ 3m): a regression check."""
    net = build_network(f, B=int(occurrences(f).max()) + slack, form="compact")
    corners = np.where((np.arange(2**net.d)[:, None] >> np.arange(net.d)) & 1, -1.0, 1.0)
    r = value_approximation_check(net, corners)
    assert r.passed, (r.worst_fraction, r.threshold)


@pytest.mark.parametrize("B", [1, 2, 3, 5])
def test_lipschitz_exact_norms(B):
    """Erratum 4: ‖W₁‖ ≤ √(200B²+3B) ≤ 15B, ‖W₂‖ = √2 exactly; the printed 30B is ~3× the true constant."""
    rng = np.random.default_rng(B)
    n = 9
    f = random_e3sat(n, n * B // 3, B, rng)
    r = lipschitz_check(build_network(f, B=B))
    assert r.passed
    # B = 1: every variable in one clause makes ‖W₁‖² = 2c + 3 exactly; eigvalsh is off by ~1e-15 relative
    assert r.norm_W1 <= math.sqrt(200 * B * B + 3 * B) * (1 + 1e-12) and math.sqrt(200 * B * B + 3 * B) <= 15 * B
    assert r.norm_W2 == pytest.approx(math.sqrt(2), abs=1e-12)
    assert 10 * B <= r.lipschitz_sampled <= r.lipschitz_upper <= r.product
    assert 2.9 <= r.looseness_paper <= 3.0   # 30B / √(100B² + λ) with λ ≤ 3B
    assert 1.9 <= r.looseness_product <= 2.0


def test_lipschitz_compact_is_rebuilt_faithful():
    f = random_e3sat(6, 8, 4, np.random.default_rng(0))
    a = lipschitz_check(build_network(f, B=4, form="compact"))
    b = lipschitz_check(build_network(f, B=4, form="faithful"))
    assert a.norm_W1 == pytest.approx(b.norm_W1, rel=1e-12)


def test_max_sat_matches_brute_force_small():
    f = random_e3sat(8, 20, 8, np.random.default_rng(11))
    opt, a = max_sat(f)
    A = ((np.arange(256)[:, None] >> np.arange(8)) & 1).astype(bool)
    assert opt == count_unsatisfied(f, A).min() == count_unsatisfied(f, a)


@pytest.mark.parametrize("call,arg", [
    (lambda: check_soundness([[1, 2, 3], [1, -2, 3]], 1, np.zeros(3)), "B"),
    (lambda: check_soundness([[1, 2, 3]], 1, np.full(3, 1.5)), r"\[-1, 1\]"),
    (lambda: check_soundness([[1, 2, 3]], 1, np.zeros(4)), "shape"),
    (lambda: check_soundness([[1, 2, 3]], 1, np.zeros(3), opt=-1), "opt"),
    (lambda: check_completeness([[1, 2]], solver="nosuchsolver"), "solver"),
    (lambda: exhaustive_check([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12], [13, 1, 2]]), "d <= 12, got d = 13"),
    (lambda: value_approximation_check("net", np.zeros(3)), "net"),
    (lambda: value_approximation_check(build_network([[1, 2, 3]]), np.zeros(3), eps=0.0), "eps"),
    (lambda: lipschitz_check("net"), "net"),
    (lambda: lipschitz_check(build_network([[1, 2, 3], [1, 2, -3]]), B=1), "B"),
])
def test_checks_bad_input(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()
