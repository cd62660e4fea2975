"""The network h_φ of the MixCon appendix reduction (proof of Thm B.10): the clause bias −(k−1)
(the printed −2 for E3 clauses, generalised), unused variables dropped, the size limit."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

from reduction import (
    MAX_NETWORK_BYTES,
    Formula,
    build_network,
    count_unsatisfied,
    network_size,
    planted_e3sat,
    random_e3sat,
    truth_table_check,
)
from reduction.strategies import assignments, box_points, cnf_formulas

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
    """Bias −(k−1) (the printed −2 generalised to k literals) makes every clause neuron exactly
    [clause unsatisfied] on {±1}ⁿ."""
    r = truth_table_check(clause, bias="exact")
    assert r.passed, r.mismatches
    assert r.n_rows == 2 ** len({abs(v) for v in clause})


@pytest.mark.parametrize("clause", [[1, 2], [-1, 2], [1, 2, 3, 4], [-1, 2, -3, 4]], ids=str)
def test_truth_table_paper_bias_fails_for_k_2_and_4(clause):
    """The printed −2 (right for the E3 clauses of Thm B.10) on other lengths: an unsatisfied 2-clause
    outputs σ(0) = 0, an unsatisfied 4-clause σ(2) = 2."""
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


def _closed_form(f, x, copies):
    """‖h(x) − z‖² computed from the clauses themselves (DESIGN §3), x in the formula's numbering:
    Σ_j σ(#false-literal weight − #true + 1 − k_j)² + c·Σ_{i occurring}(|x_i| − 1)²."""
    clause_terms = sum(max(sum(x[abs(v) - 1] if v > 0 else -x[abs(v) - 1] for v in c) - (len(c) - 1), 0.0) ** 2
                       for c in f.clauses)
    used = {abs(v) for c in f.clauses for v in c}
    return clause_terms + copies * sum((abs(x[i - 1]) - 1.0) ** 2 for i in used)


@given(st.data(), cnf_formulas(distinct=False), st.sampled_from(["faithful", "compact"]), st.integers(1, 50))
def test_residual_closed_form(data, f, form, copies):
    """DESIGN §3: ‖h(x) − z‖² = Σ_j σ(w_j·x + b_j)² + cΣ_{i used}(|x_i| − 1)², with b_j = −(k_j − 1),
    for clauses of 1–4 literals (repeats and tautologies included) and unused variables (which have
    no copy neurons).  Tolerance 1e-12 relative: float64 sums of ≤ 100 terms of size ≤ 50·4."""
    net = build_network(f, copies=copies, form=form)
    x = data.draw(box_points(f.nv, max_points=1))[0]       # the formula's numbering
    expected = _closed_form(f, x, copies)
    assert net.residual(x) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert net.residual(net.project(x)) == net.residual(x)  # same point given as network inputs


@given(st.data(), cnf_formulas(distinct=False))
def test_corner_residual_counts_unsatisfied(data, f):
    """On {±1}^d the residual is exactly the number of unsatisfied clauses (exact: integers)."""
    net = build_network(f, form="compact")
    a = data.draw(assignments(f.nv))
    assert net.residual(net.to_input(a)) == count_unsatisfied(f, a)


@pytest.mark.parametrize("seed", range(3))
def test_planted_assignment_is_an_exact_preimage(seed):
    f, a = planted_e3sat(10, 13, 4, np.random.default_rng(seed))
    net = build_network(f, B=4)
    assert net.residual(net.to_input(a)) == 0.0


def test_convention_and_round():
    """x_i = +1 ⇔ X_i false, −1 ⇔ true (the proof's "x_i = 0" is a typo for x_i = 1)."""
    net = build_network([[1, -2, 3]], B=1, form="compact")
    assert net.to_input([True, False, False]).tolist() == [-1.0, 1.0, 1.0]
    assert net.round([-0.3, 0.0, 0.7]).tolist() == [True, False, False]
    # X = (F, T, F) makes every literal of (X1 ∨ ¬X2 ∨ X3) false: the neuron fires
    assert net.forward(net.to_input([False, True, False]))[0] == 1.0


@pytest.mark.parametrize("a", [[False, False], [True, True], [True, False], [False, True]], ids=str)
def test_paper_bias_network_misses_unsatisfied_2_clauses(a):
    f = [[1, 2], [-1, -2], [1, -2], [-1, 2]]  # unsatisfiable 2-CNF: every corner leaves one clause unsatisfied
    ex = build_network(f, B=4, bias="exact", form="compact")
    pa = build_network(f, B=4, bias="paper", form="compact")
    assert ex.residual(ex.to_input(a)) == 1.0
    assert pa.residual(pa.to_input(a)) == 0.0  # −2 on 2-literal clauses "satisfies" an unsatisfiable formula


@pytest.mark.parametrize("kwargs,arg", [
    (dict(B=1), "B"), (dict(B=0), "B"), (dict(copies=0), "copies"), (dict(form="dense"), "form"),
    (dict(bias="paper2"), "bias"), (dict(drop_unused="yes"), "drop_unused"), (dict(max_bytes=0), "max_bytes"),
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
    """B ≥ 15000 means c = 100B² = 2.25·10¹⁰ copies per variable; the faithful net would need ~10¹¹
    neurons for n = 3 (refused by the size limit), the compact form at the paper's B is exact and tiny."""
    f = [[1, 2, 3], [-1, -2, -3]]
    with pytest.raises(ValueError, match="GiB.*MAX_NETWORK_BYTES"):
        build_network(f, B=15000, form="faithful")
    net = build_network(f, B=15000, form="compact")
    assert net.copies == 22_500_000_000 and net.shape == (3, 2 + 6, 2 + 3)
    A = np.array([[False, False, False], [True, True, True], [True, False, True]])
    np.testing.assert_array_equal(net.residual(np.where(A, -1.0, 1.0)), count_unsatisfied(f, A))
    x = np.array([0.999, -0.5, 0.25])
    expected = np.sum(np.maximum(net.C.toarray() @ x + net.b[:2], 0) ** 2) + 2.25e10 * np.sum((1 - np.abs(x)) ** 2)
    assert net.residual(x) == pytest.approx(expected, rel=1e-12)  # cancellation in √c|x|−√c: ~1e-16·√c relative


@pytest.mark.gpu
def test_pgd_on_cuda_matches_cpu_numbers():
    """CUDA against CPU (not against the function that computed the numbers): the float64 torch module
    on CUDA reproduces numpy's forward pass (differences: summation order, ~1e-15 relative), and PGD
    from the same starts ends at the same points (tolerance 1e-8: 50 float64 Adam steps; trajectories
    could only split at a ReLU kink hit within rounding error).  Not run where no CUDA device is."""
    import torch

    from reduction import invert

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    f = random_e3sat(12, 60, 15, np.random.default_rng(0))
    net = build_network(f, B=15, form="compact")
    X = np.random.default_rng(2).uniform(-1, 1, (16, 12))
    with torch.no_grad():
        out = net.to_torch(device="cuda")(torch.as_tensor(X, device="cuda")).cpu().numpy()
    np.testing.assert_allclose(out, net.forward(X), rtol=1e-12, atol=1e-12)
    gpu = invert(net, restarts=4, steps=50, method="pgd", rng=np.random.default_rng(1), device="cuda")
    cpu = invert(net, restarts=4, steps=50, method="pgd", rng=np.random.default_rng(1), device="cpu")
    np.testing.assert_allclose(gpu.xs, cpu.xs, rtol=0, atol=1e-8)
    np.testing.assert_allclose(gpu.residuals, cpu.residuals, rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- unused variables

def test_unused_variables_are_not_inputs():
    """Variables in no clause get no input and no copy neurons; the map keeps the formula's numbering."""
    f = Formula(6, [(2, -5), (5, 2, -4)])  # X1, X3, X6 occur nowhere
    net = build_network(f, B=2, copies=7, form="faithful")
    assert net.variables.tolist() == [2, 4, 5] and net.n == 6 and net.d == net.n_used == 3
    assert net.shape == (3, 2 + 2 * 7 * 3, 2 + 7 * 3)
    printed = build_network(f, B=2, copies=7, form="faithful", drop_unused=False)
    assert printed.shape == (6, 2 + 2 * 7 * 6, 2 + 7 * 6) and printed.n_used == 3
    a = np.array([True, False, True, True, False, False])      # X2 false, X4 true, X5 false
    assert net.to_input(a).tolist() == [1.0, -1.0, 1.0]
    assert net.round(net.to_input(a)).tolist() == [False, False, False, True, False, False]
    assert net.lift([0.5, -0.25, 0.75], fill=0.0).tolist() == [0.0, 0.5, 0.0, -0.25, 0.75, 0.0]
    assert net.project([9, 0.5, 9, -0.25, 0.75, 9]).tolist() == [0.5, -0.25, 0.75]


@given(st.data(), cnf_formulas(max_unused=4))
def test_dropped_and_printed_networks_agree_on_clauses(data, f):
    """Dropping unused variables removes only their copy terms c(|x_i| − 1)²: at every point the two
    residuals differ by exactly that (tolerance: float64, ≤ 100 terms of size ≤ 100·4)."""
    dropped = build_network(f, copies=100, form="compact")
    printed = build_network(f, copies=100, form="compact", drop_unused=False)
    x = data.draw(box_points(f.nv, max_points=1))[0]
    unused = np.setdiff1d(np.arange(1, f.nv + 1), dropped.variables) - 1
    extra = 100 * float(np.sum((np.abs(x[unused]) - 1) ** 2))
    assert printed.residual(x) == pytest.approx(dropped.residual(x) + extra, rel=1e-12, abs=1e-12)
    a = data.draw(assignments(f.nv))
    assert dropped.residual(dropped.to_input(a)) == printed.residual(printed.to_input(a)) == count_unsatisfied(f, a)


@given(st.data(), cnf_formulas(max_unused=4))
def test_round_inverts_to_input_in_the_formulas_numbering(data, f):
    net = build_network(f, form="compact")
    a = data.draw(assignments(f.nv))
    back = net.round(net.to_input(a))
    used = net.variables - 1
    np.testing.assert_array_equal(back[used], a[used])
    assert not back[np.setdiff1d(np.arange(f.nv), used)].any()  # unused variables read as false


# ----------------------------------------------------------------------------- size limit

@pytest.mark.parametrize("form", ["faithful", "compact"])
def test_network_size_matches_what_is_built(form):
    """network_size predicts the widths exactly, and the stored bytes of W₁, W₂, b, z up to the small
    clause block and input map it also counts (≤ 16 B per literal + 8 B per clause and input)."""
    f = Formula(14, random_e3sat(12, 16, 4, np.random.default_rng(3)).clauses)  # X13, X14 unused
    s = network_size(f, B=4, form=form)
    net = build_network(f, B=4, form=form)
    assert (s["n"], s["d"], s["m1"], s["m2"]) == (14, net.d, *net.shape[1:]) and net.d <= 12
    stored = sum(M.data.nbytes + M.indices.nbytes + M.indptr.nbytes if sp.issparse(M) else M.nbytes
                 for M in (net.W1, net.W2)) + net.b.nbytes + net.target.nbytes
    assert stored <= s["bytes"] <= stored + 16 * 48 + 8 * (16 + 1 + 12)


@pytest.mark.parametrize("kwargs", [dict(form="faithful", B=200), dict(form="compact")], ids=["faithful", "compact"])
def test_network_over_the_size_limit_is_refused_before_allocation(kwargs):
    """10 000 one-literal clauses: compact W1, W2 hold (m + 2d)² ≈ 9·10⁸ floats (6.7 GiB); B = 200 makes
    the faithful form 4·10⁴ copies per variable.  Both are refused with the limit named."""
    f = Formula(10_000, [(i,) for i in range(1, 10_001)])
    with pytest.raises(ValueError, match=r"needs .* GiB .* above the limit max_bytes = 1 GiB"):
        build_network(f, **kwargs)
    assert network_size(f, max_bytes=None, **kwargs)["bytes"] > MAX_NETWORK_BYTES


def test_empty_formula_is_refused():
    with pytest.raises(ValueError, match=r"cnf: expected at least one clause.*m = 0"):
        build_network(Formula(0, []))
    with pytest.raises(ValueError, match=r"n = 5, m = 0"):
        network_size(Formula(5, []))
