"""The network h_φ of the MixCon appendix reduction (proof of Thm B.10) and erratum 1 (bias)."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from reduction import (
    build_network,
    count_unsatisfied,
    planted_e3sat,
    random_e3sat,
    truth_table_check,
)

# ----------------------------------------------------------------------------- truth tables
# clauses of k = 1..4 literals, including repeated literals and tautologies (x ∨ ¬x)
CLAUSES = [
    [1], [-1],
    [1, 2], [-1, 2], [1, 1], [1, -1],
    [1, -2, 3], [1, 1, 2], [1, -1, 2], [-2, -2, -2], [1, 1, -1],
    [1, 2, 3, 4], [-1, 2, -3, 4], [1, 1, 2, 3], [1, -1, 2, 3], [2, 2, 2, 2], [1, -1, 2, -2],
]


@pytest.mark.parametrize("clause", CLAUSES, ids=str)
def test_truth_table_exact_bias(clause):
    """Erratum 1: bias −(k−1) makes every clause neuron exactly [clause unsatisfied] on {±1}ⁿ."""
    r = truth_table_check(clause, bias="exact")
    assert r.passed, r.mismatches
    assert r.n_rows == 2 ** len({abs(v) for v in clause})


@pytest.mark.parametrize("clause", [[1, 2], [-1, 2], [1, 2, 3, 4], [-1, 2, -3, 4]], ids=str)
def test_truth_table_paper_bias_fails_for_k_2_and_4(clause):
    """The printed bias −2: an unsatisfied 2-clause outputs σ(0) = 0, an unsatisfied 4-clause σ(2) = 2."""
    r = truth_table_check(clause, bias="paper")
    assert not r.passed
    (mm,) = r.mismatches  # exactly the all-false row is wrong
    assert mm["expected"] == 1.0
    assert mm["got"] == (0.0 if len(clause) == 2 else 2.0)


def test_truth_table_paper_bias_right_for_3_literals():
    f = random_e3sat(9, 12, 4, np.random.default_rng(0))
    assert truth_table_check(f, bias="paper").passed
    assert truth_table_check(f, bias="exact").passed


def test_truth_table_bad_input():
    with pytest.raises(ValueError, match="bias"):
        truth_table_check([1, 2], bias="-2")
    with pytest.raises(ValueError, match="clauses"):
        truth_table_check([])


# ----------------------------------------------------------------------------- construction

def test_shapes_and_default_copies():
    """d = n, m₁ = m + 200B²n, m₂ = m + 100B²n (the printed T = m + 128B²n is inconsistent)."""
    f = random_e3sat(7, 9, 4, np.random.default_rng(1))
    net = build_network(f, B=4)
    assert net.copies == 1600
    assert net.shape == (7, 9 + 200 * 16 * 7, 9 + 100 * 16 * 7)
    assert sp.issparse(net.W1) and sp.issparse(net.W2)
    assert net.W1.nnz == 3 * 9 + 2 * 1600 * 7 and net.W2.nnz == 9 + 2 * 1600 * 7
    assert np.array_equal(net.target, np.r_[np.zeros(9), np.ones(1600 * 7)])


@pytest.mark.parametrize("B", [2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_faithful_and_compact_agree(B, seed):
    """Same residual to 1e-9 relative (measured ~1e-12: summing c ≤ 1600 equal float64 terms)."""
    rng = np.random.default_rng(seed)
    n = 12
    f = random_e3sat(n, n * B // 3, B, rng)
    fa = build_network(f, B=B, form="faithful")
    co = build_network(f, B=B, form="compact")
    X = np.vstack([rng.uniform(-1, 1, (40, n)), rng.choice([-1.0, 1.0], (10, n)),
                   rng.uniform(-1, 1, (10, n)) * 1e-3])
    rf, rc = fa.residual(X), co.residual(X)
    np.testing.assert_allclose(rf, rc, rtol=1e-9, atol=0)


@given(st.integers(0, 2**31), st.integers(1, 4))
def test_residual_closed_form(seed, B):
    """DESIGN §3: ‖h(x) − z‖² = Σ_j σ(w_j·x + b_j)² + cΣ_i(|x_i| − 1)² (tolerance: float64 sums of ≤ 100 terms)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 9))
    f = random_e3sat(n, int(rng.integers(0, n * B // 3 + 1)), B, rng)
    net = build_network(f, B=B, copies=int(rng.integers(1, 50)), form="faithful")
    x = rng.uniform(-1, 1, n)
    C = net.C.toarray()
    expected = np.sum(np.maximum(C @ x + net.b[:f.m], 0) ** 2) + net.copies * np.sum((np.abs(x) - 1) ** 2)
    assert abs(net.residual(x) - expected) <= 1e-12 * max(1.0, expected)


@pytest.mark.parametrize("seed", range(3))
def test_corner_residual_counts_unsatisfied(seed):
    rng = np.random.default_rng(seed)
    f, a = planted_e3sat(10, 13, 4, rng)
    net = build_network(f, B=4)
    assert net.residual(net.to_input(a)) == 0.0
    for _ in range(5):
        b = rng.integers(0, 2, 10).astype(bool)
        assert net.residual(net.to_input(b)) == count_unsatisfied(f, b)


def test_convention_and_round():
    """x_i = +1 ⇔ X_i false, −1 ⇔ true (the proof's "x_i = 0" is a typo for x_i = 1)."""
    net = build_network([[1, -2, 3]], B=1, form="compact")
    assert net.to_input([True, False, False]).tolist() == [-1.0, 1.0, 1.0]
    assert net.round([-0.3, 0.0, 0.7]).tolist() == [True, False, False]
    # X = (F, T, F) makes every literal of (X1 ∨ ¬X2 ∨ X3) false: the neuron fires
    assert net.forward(net.to_input([False, True, False]))[0] == 1.0


def test_paper_bias_network_misses_unsatisfied_2_clauses():
    f = [[1, 2], [-1, -2], [1, -2], [-1, 2]]  # unsatisfiable 2-CNF
    for a in ([False, False], [True, True], [True, False], [False, True]):
        ex = build_network(f, B=4, bias="exact", form="compact")
        pa = build_network(f, B=4, bias="paper", form="compact")
        assert ex.residual(ex.to_input(a)) == 1.0
        assert pa.residual(pa.to_input(a)) == 0.0  # the printed bias "satisfies" an unsatisfiable formula


@pytest.mark.parametrize("kwargs,arg", [
    (dict(B=1), "B"), (dict(B=0), "B"), (dict(copies=0), "copies"), (dict(form="dense"), "form"),
    (dict(bias="paper2"), "bias"),
])
def test_build_bad_input(kwargs, arg):
    f = [[1, 2, 3], [-1, 2, 3]]  # X2 occurs twice: B = 1 is violated
    with pytest.raises(ValueError, match=arg):
        build_network(f, **kwargs)


@pytest.mark.parametrize("x,msg", [
    (np.zeros(4), "shape"), (np.zeros((2, 2)), "shape"), (np.array([0.0, np.nan, 0.0]), "finite"),
    ("abc", "x"),
])
def test_forward_bad_input(x, msg):
    net = build_network([[1, 2, 3]], form="compact")
    with pytest.raises(ValueError, match=msg):
        net.forward(x)


@pytest.mark.parametrize("form,sparse", [("compact", False), ("faithful", True), ("faithful", False)])
def test_to_torch_matches_numpy(form, sparse):
    import torch

    rng = np.random.default_rng(0)
    f = random_e3sat(8, 10, 4, rng)
    net = build_network(f, B=4, copies=30, form=form)
    mod = net.to_torch(device="cpu", sparse=sparse)
    X = rng.uniform(-1, 1, (6, 8))
    with torch.no_grad():
        out = mod(torch.as_tensor(X)).numpy()
        tgt = mod.target.numpy()
    np.testing.assert_allclose(out, net.forward(X), rtol=0, atol=1e-12)  # float64 both sides
    np.testing.assert_array_equal(tgt, net.target)


def test_import_is_light():
    import subprocess
    import sys

    code = "import sys, reduction; print(any(m in sys.modules for m in ('torch', 'pysat', 'sympy')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_erratum_3_paper_constants_only_buildable_compact():
    """B ≥ 15000 means c = 100B² = 2.25·10¹⁰ copies per variable (DESIGN.md §4 item 3 says 2.25·10⁸,
    which is B², not 100B²); the faithful net would need ~10¹¹ neurons for n = 3, the compact form
    at the paper's B is exact and tiny."""
    f = [[1, 2, 3], [-1, -2, -3]]
    net = build_network(f, B=15000, form="compact")
    assert net.copies == 22_500_000_000 and net.shape == (3, 2 + 6, 2 + 3)
    for a in ([False, False, False], [True, True, True], [True, False, True]):
        assert net.residual(net.to_input(a)) == count_unsatisfied(f, a)
    x = np.array([0.999, -0.5, 0.25])
    expected = np.sum(np.maximum(net.C.toarray() @ x + net.b[:2], 0) ** 2) + 2.25e10 * np.sum((1 - np.abs(x)) ** 2)
    assert net.residual(x) == pytest.approx(expected, rel=1e-12)  # cancellation in √c|x|−√c: ~1e-16·√c relative


@pytest.mark.gpu
def test_pgd_on_cuda_matches_cpu_numbers():
    import torch

    from reduction import invert

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    f = random_e3sat(12, 60, 15, np.random.default_rng(0))
    net = build_network(f, B=15, form="compact")
    r = invert(net, restarts=4, steps=50, method="pgd", rng=np.random.default_rng(1), device="cuda")
    np.testing.assert_allclose(r.residuals, net.residual(r.xs), rtol=0, atol=0)
