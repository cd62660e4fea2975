"""Completeness, soundness, Lipschitz and exhaustive checks of the reduction (MixCon Thm B.10)."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reduction import (
    Formula,
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
    """No candidate — L-BFGS-B from random starts, from RC2's optimal corner, or PGD — beats the corrected
    bounds: ‖h(x)−z‖² ≥ |U|(1−3/(100B)), ≥ |U| − n_used/100, ≥ |U| − Σa²/c, and ≥ OPT(1−3/(100B))."""
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
    assert min(r.n_unsatisfied) >= opt  # rounding can never beat the MaxSAT optimum
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


@given(st.integers(0, 2**31), st.integers(1, 6), st.sampled_from([None, 1, 7, 50]))
def test_soundness_property_random(seed, B, copies):
    """Property (the corrected inequality of erratum 2) for random formulas, copies and x ∈ [−1, 1]ⁿ,
    including points near corners, where the bound is tightest."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 10))
    f = random_e3sat(n, int(rng.integers(1, n * B // 3 + 1)), B, rng)
    X = np.vstack([rng.uniform(-1, 1, (4, n)),
                   rng.choice([-1.0, 1.0], (4, n)) * (1 - rng.uniform(0, 0.05, (4, n)))])
    r = check_soundness(f, B, X, copies=copies)
    assert r.passed, r.min_margins
    # ordering of the bounds: Σa_i² ≤ B·Σa_i ≤ B·Σk_j and Σa_i² ≤ B²·n_used
    assert np.all(np.array(r.bound_round) >= np.array(r.bound_B) - 1e-12)
    assert np.all(np.array(r.bound_round) >= np.array(r.bound_used) - 1e-12)


def test_soundness_bound_formula():
    assert soundness_bound(10, B=5) == pytest.approx(10 * (1 - 3 / 500), rel=1e-15)
    assert soundness_bound(3, B=1, copies=2) == 0.0  # coefficient negative: only the trivial bound


def test_soundness_general_clause_lengths():
    """The generalised bound |U| − (B/c)Σ_{j∈U} k_j holds for 2- and 4-literal clauses too (exact bias)."""
    rng = np.random.default_rng(5)
    for k in (2, 4):
        f = random_ksat(8, 14, k, rng)
        B = int(max(sum(abs(v) == i for c in f.clauses for v in c) for i in range(1, 9)))
        X = rng.choice([-1.0, 1.0], (20, 8)) * (1 - rng.uniform(0, 0.02, (20, 8)))
        assert check_soundness(f, B, X).passed


def test_erratum_unused_variables_break_printed_soundness():
    """Erratum 2 ("n ≤ 3m"): with unused variables the printed threshold ‖h(x)−z‖ ≤ √m₂/(60B) admits
    an x leaving EVERY clause unsatisfied: m₂ = m + 100B²n grows with n while the residual does not."""
    B, m = 4, 4
    clauses = [[1, 2, 3], [-1, -2, -3], [1, -2, 3], [-1, 2, -3]]
    n = 36 * m  # 144 variables, 141 of them in no clause: n > 3m
    net = build_network(Formula(n, clauses), B=B, form="compact")
    # the corner where clause 1 is all false: X1, X2, X3 false; satisfies clauses 2..4
    x = net.to_input(np.zeros(n, dtype=bool))
    assert count_unsatisfied(net.formula, net.round(x)) == 1
    m2 = m + 100 * B**2 * n
    # a worse corner: find the assignment of X1..X3 maximising unsatisfied clauses
    best = max(range(8), key=lambda t: count_unsatisfied(clauses, [bool(t & 1), bool(t & 2), bool(t & 4)]))
    a = np.zeros(n, dtype=bool)
    a[:3] = [bool(best & 1), bool(best & 2), bool(best & 4)]
    x = net.to_input(a)
    U = count_unsatisfied(net.formula, a)
    assert math.sqrt(net.residual(x)) <= math.sqrt(m2) / (60 * B)  # passes the printed ε-test ...
    assert m - U < (7 / 8) * m  # ... but its rounding satisfies fewer than 7/8 of the clauses
    assert n > 3 * m


@pytest.mark.parametrize("B", [1, 2, 3, 5])
def test_lipschitz_exact_norms(B):
    """Erratum 4: ‖W₁‖ ≤ √(200B²+3B) ≤ 15B, ‖W₂‖ = √2 exactly; the printed 30B is ~3× the true constant."""
    rng = np.random.default_rng(B)
    n = 9
    f = random_e3sat(n, n * B // 3, B, rng)
    r = lipschitz_check(build_network(f, B=B))
    assert r.passed
    assert r.norm_W1 <= math.sqrt(200 * B * B + 3 * B) <= 15 * B
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
    (lambda: exhaustive_check(random_e3sat(13, 4, 3, np.random.default_rng(0))), "n <= 12"),
    (lambda: lipschitz_check("net"), "net"),
    (lambda: lipschitz_check(build_network([[1, 2, 3], [1, 2, -3]]), B=1), "B"),
])
def test_checks_bad_input(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()
