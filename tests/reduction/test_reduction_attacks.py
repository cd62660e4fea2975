"""Inversion attacks on h_φ and the one-layer LP inversion (MixCon appendix, footnote 7 of Thm B.10)."""

import numpy as np
import pytest

from reduction import (
    Formula,
    build_network,
    count_unsatisfied,
    invert,
    invert_one_layer_lp,
    max_sat,
    planted_e3sat,
    random_e3sat,
    soundness_bound,
)


@pytest.mark.parametrize("method", ["pgd", "lbfgsb"])
def test_invert_reports_consistent_numbers(method):
    rng = np.random.default_rng(0)
    f = random_e3sat(14, 70, 15, rng)
    net = build_network(f, B=15, form="compact")
    r = invert(net, restarts=4, steps=60, method=method, rng=rng, device="cpu")
    assert r.xs.shape == (4, 14) and np.all(np.abs(r.xs) <= 1)
    np.testing.assert_allclose(r.residuals, net.residual(r.xs), rtol=0, atol=0)
    assert r.residual == r.residuals.min()
    assert r.n_unsatisfied == count_unsatisfied(f, r.assignment) >= r.min_unsatisfied
    opt, _ = max_sat(f)
    assert r.min_unsatisfied >= opt and r.residual >= soundness_bound(opt, 15)


@pytest.mark.parametrize("method", ["pgd", "lbfgsb"])
def test_invert_reads_and_writes_the_formulas_numbering(method):
    """Unused variables are not inputs: points have d = 4 coordinates, assignments n = 9, and the
    counts are those of the formula itself."""
    f = Formula(9, [(2, -5, 7), (-2, 5, 9), (5, 7, -9), (-7, -9, 2)])  # X1, X3, X4, X6, X8 unused
    net = build_network(f, form="compact")
    r = invert(net, restarts=3, steps=40, method=method, rng=np.random.default_rng(0), device="cpu")
    assert r.xs.shape == (3, 4) and r.assignment.shape == (9,)
    np.testing.assert_array_equal(r.assignment, net.round(r.x))
    assert r.n_unsatisfied == count_unsatisfied(f, r.assignment)
    a = np.array([False, True, False, False, True, False, True, False, True])
    warm = invert(net, restarts=0, steps=5, method="lbfgsb", x0=net.lift(net.to_input(a)))  # n-length start
    assert warm.residual == 0.0 and warm.assignment.tolist() == a.tolist()


def test_invert_warm_start_from_planted_solution_stays_exact():
    f, a = planted_e3sat(12, 16, 4, np.random.default_rng(1))
    net = build_network(f, B=4, form="compact")
    r = invert(net, restarts=0, steps=50, method="lbfgsb", x0=net.to_input(a))
    assert r.residual == 0.0 and r.n_unsatisfied == 0


def test_pgd_is_seeded():
    f = random_e3sat(10, 30, 9, np.random.default_rng(2))
    net = build_network(f, B=9, form="compact")
    a = invert(net, restarts=2, steps=30, rng=np.random.default_rng(5), device="cpu")
    b = invert(net, restarts=2, steps=30, rng=np.random.default_rng(5), device="cpu")
    np.testing.assert_array_equal(a.xs, b.xs)


@pytest.mark.parametrize("kwargs,arg", [
    (dict(restarts=-1, rng=np.random.default_rng(0)), "restarts"),
    (dict(steps=0, rng=np.random.default_rng(0)), "steps"),
    (dict(method="adam", rng=np.random.default_rng(0)), "method"),
    (dict(restarts=2, rng=None), "rng"),
    (dict(restarts=0), "restarts"),
    (dict(restarts=0, x0=np.full(3, 2.0)), r"\[-1, 1\]"),
    (dict(restarts=0, x0=np.zeros(5)), "shape"),
    (dict(lr=-1.0, rng=np.random.default_rng(0)), "lr"),
])
def test_invert_bad_input(kwargs, arg):
    net = build_network([[1, 2, 3]], form="compact")
    with pytest.raises(ValueError, match=arg):
        invert(net, **kwargs)


def test_invert_rejects_non_network():
    with pytest.raises(ValueError, match="net"):
        invert(np.eye(3), rng=np.random.default_rng(0))


# ---------------------------------------------------------------------------- one layer by LP

@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("p,n", [(30, 10), (12, 10), (60, 25)])
def test_one_layer_lp_finds_exact_preimage(seed, p, n):
    """One ReLU layer is invertible in polynomial time: the LP's x reproduces y to 1e-9 (HiGHS
    feasibility tolerance ~1e-7 on constraints scaled by |W| ~ 1; measured errors are ~1e-15)."""
    rng = np.random.default_rng(seed)
    W, b = rng.normal(size=(p, n)), rng.normal(size=p)
    x = rng.uniform(-1, 1, n)
    y = np.maximum(W @ x + b, 0)
    r = invert_one_layer_lp(W, b, y, bounds=(-1, 1))
    assert r.success and r.max_abs_error <= 1e-9
    if (y > 0).sum() >= n:  # enough active units pin x down uniquely (generic W)
        np.testing.assert_allclose(r.x, x, atol=1e-8)


def test_one_layer_lp_recovers_first_layer_of_h_phi():
    """The first layer of h_φ alone reveals the assignment (σ(x_i), σ(−x_i) give the sign of x_i);
    the hardness lives in W₂, which sums them into |x_i|."""
    f, a = planted_e3sat(10, 13, 4, np.random.default_rng(3))
    net = build_network(f, B=4, form="compact")
    x = net.to_input(a)
    r = invert_one_layer_lp(net.W1, net.b, net.hidden(x))
    assert r.success
    np.testing.assert_allclose(r.x, x, atol=1e-9)


def test_one_layer_lp_infeasible_is_reported_not_raised():
    W = np.array([[1.0], [1.0]])
    r = invert_one_layer_lp(W, np.zeros(2), np.array([1.0, 2.0]))  # x = 1 and x = 2 at once
    assert not r.success and r.x is None


@pytest.mark.parametrize("W,b,y,arg", [
    (np.ones(3), np.zeros(3), np.zeros(3), "W"),
    (np.ones((3, 2)), np.zeros(2), np.zeros(3), "b"),
    (np.ones((3, 2)), np.zeros(3), np.zeros(2), "y"),
    (np.ones((3, 2)), np.zeros(3), np.array([0.0, -1.0, 0.0]), "y"),
    (np.ones((3, 2)), np.array([0.0, np.nan, 0.0]), np.zeros(3), "b"),
])
def test_one_layer_lp_bad_input(W, b, y, arg):
    with pytest.raises(ValueError, match=arg):
        invert_one_layer_lp(W, b, y)
