"""Formulas and DIMACS I/O for the MAX-E3SAT(B) reduction (MixCon appendix, Thm B.10)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pysat.formula import CNF

import reduction.formulas as F
from reduction import (
    MAX_VARIABLES,
    Formula,
    as_assignment,
    as_formula,
    build_network,
    count_unsatisfied,
    instance_batch,
    max_sat,
    occurrences,
    parse_dimacs,
    planted_e3sat,
    random_e3sat,
    random_ksat,
    read_dimacs,
    to_dimacs,
    used_variables,
    write_dimacs,
)


@pytest.mark.parametrize("n,B", [(6, 3), (10, 5), (20, 15), (9, 1)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_e3sat_respects_B_and_distinct_variables(n, B, seed):
    m = n * B // 3  # every variable slot used: the hardest case for the generator
    f = random_e3sat(n, m, B, np.random.default_rng(seed))
    assert f.m == m and f.nv == n
    assert all(len(c) == 3 and len({abs(v) for v in c}) == 3 for c in f.clauses)
    assert occurrences(f).max() <= B


@pytest.mark.parametrize("seed", range(5))
def test_planted_e3sat_is_satisfied_by_its_assignment(seed):
    f, a = planted_e3sat(15, 25, 5, np.random.default_rng(seed))
    assert count_unsatisfied(f, a) == 0
    assert occurrences(f).max() <= 5
    assert all(len({abs(v) for v in c}) == 3 for c in f.clauses)


def test_generators_are_seeded():
    a = random_e3sat(12, 16, 4, np.random.default_rng(7))
    b = random_e3sat(12, 16, 4, np.random.default_rng(7))
    c = random_e3sat(12, 16, 4, np.random.default_rng(8))
    assert a == b and a != c


def test_random_ksat_shapes():
    f = random_ksat(10, 30, 4, np.random.default_rng(0))
    assert f.m == 30 and all(len({abs(v) for v in c}) == 4 for c in f.clauses)


def test_instance_batch_sizes():
    b = instance_batch(0)
    assert sum(d["kind"] == "planted" for d in b) == 50 and sum(d["kind"] == "over" for d in b) == 50
    assert all(d["formula"].nv <= 30 for d in b)
    assert sum(d["formula"].nv <= 12 for d in b) >= 20


@pytest.mark.parametrize("call,arg", [
    (lambda: random_e3sat(5, 6, 3, np.random.default_rng(0)), "m"),      # 3m = 18 > nB = 15
    (lambda: random_e3sat(5, 2, 0, np.random.default_rng(0)), "B"),
    (lambda: random_e3sat(2, 1, 3, np.random.default_rng(0)), "n"),
    (lambda: random_e3sat(5, 2, 3, 0), "rng"),
    (lambda: random_ksat(3, 2, 4, np.random.default_rng(0)), "k"),
    (lambda: planted_e3sat(6, 2.5, 3, np.random.default_rng(0)), "m"),
])
def test_generator_bad_input(call, arg):
    with pytest.raises(ValueError, match=arg):
        call()


def test_pysat_interop():
    cnf = CNF(from_clauses=[[1, -2, 3], [-1, 2, 3]])
    assert count_unsatisfied(cnf, [False, True, False]) == 1
    f = Formula(3, [(1, -2, 3)])
    p = f.to_pysat()
    assert p.clauses == [[1, -2, 3]] and p.nv == 3
    assert count_unsatisfied(cnf, [-1, 2, -3]) == 1  # pysat model form


def test_as_assignment_bad_input():
    with pytest.raises(ValueError, match="assignment"):
        as_assignment([1, 2, 5], 3)
    with pytest.raises(ValueError, match="length"):
        as_assignment(np.array([True, False]), 3)
    with pytest.raises(ValueError, match="assignment"):
        as_assignment([0.5, 1.0], 2)


# ------------------------------------------------------------------------------------- DIMACS

def test_dimacs_comments_multiline_and_percent():
    f = parse_dimacs("c hi\nc there\np cnf 4 3\n1 -2\n 3 0 -4 0\n2 0\n%\n0\n")
    assert f.nv == 4 and f.clauses == ((1, -2, 3), (-4,), (2,))


clause_st = st.lists(st.integers(1, 9).flatmap(lambda v: st.sampled_from([v, -v])), min_size=1, max_size=5)


@given(st.lists(clause_st, max_size=12), st.integers(0, 3))
def test_dimacs_round_trip(clauses, extra):
    nv = max([abs(v) for c in clauses for v in c], default=0) + extra
    f = Formula(nv, clauses)
    assert parse_dimacs(to_dimacs(f, comments=["x"])) == f


def test_read_write_dimacs(tmp_path):
    f = random_e3sat(9, 10, 4, np.random.default_rng(3))
    p = write_dimacs(f, tmp_path / "f.cnf")
    assert read_dimacs(p) == f
    with pytest.raises(ValueError, match="does not exist"):
        read_dimacs(tmp_path / "missing.cnf")
    (tmp_path / "bad.cnf").write_text("p cnf 2 1\n1 x 0\n")
    with pytest.raises(ValueError, match=r"bad\.cnf.*line 2.*'x'"):
        read_dimacs(tmp_path / "bad.cnf")


@pytest.mark.parametrize("text,pattern", [
    ("1 2 0\n", r"line 1: missing header.*'1'"),
    ("", r"missing header"),
    ("c only comments\n", r"missing header"),
    ("p cnf 3\n1 0\n", r"line 1: bad header"),
    ("p dnf 3 1\n1 0\n", r"line 1: bad header"),
    ("p cnf three 1\n1 0\n", r"line 1: bad header token 'three'"),
    ("p cnf -3 1\n1 0\n", r"line 1: bad header token '-3'"),
    ("p cnf 3 1\np cnf 3 1\n1 0\n", r"line 2: duplicate header"),
    ("p cnf 3 1\n1 4 0\n", r"line 2: literal '4' out of range"),
    ("p cnf 3 1\n1 -7 0\n", r"line 2: literal '-7' out of range"),
    ("p cnf 3 1\n1 2.5 0\n", r"line 2: non-integer token '2.5'"),
    ("p cnf 3 1\n1 ٢ 0\n", r"line 2: non-integer token '٢'"),   # unicode digit: int() would accept it
    ("p cnf 3 1\n1 +2 0\n", r"line 2: non-integer token '\+2'"),
    ("p cnf 3 1\n1 2\n", r"line 2: clause 1 2 has no terminating '0'"),
    ("p cnf 3 2\n1 0\n0\n", r"line 3: empty clause"),
    ("p cnf 3 2\n1 2 0\n", r"declares m = 2 clauses, found 1"),
    ("p cnf 3 1\n1 0\n2 0\n", r"declares m = 1 clauses, found 2"),
])
def test_malformed_dimacs(text, pattern):
    with pytest.raises(ValueError, match=pattern):
        parse_dimacs(text)


def test_parse_dimacs_non_text():
    with pytest.raises(ValueError, match="text"):
        parse_dimacs(123)
    with pytest.raises(ValueError, match="UTF-8"):
        parse_dimacs(b"p cnf 1 1\n\xff 0\n")


_tokens = st.sampled_from(["p", "cnf", "dnf", "c", "%", "0", "1", "-1", "2", "-3", "3", "99", "x", "2.5",
                           "-0", "1e3", "٣", "\x00", "", "p cnf 3 2", "p cnf 2 1", "-", "+1"])
_structured = st.lists(st.lists(_tokens, max_size=6).map(" ".join), max_size=8).map("\n".join)


@settings(max_examples=500)
@given(st.one_of(st.text(max_size=80), _structured, _structured.map(lambda s: "p cnf 3 2\n" + s)))
def test_fuzz_parse_dimacs_only_value_error(text):
    """500 generated texts (random unicode and structured near-DIMACS): a Formula or ValueError."""
    try:
        f = parse_dimacs(text)
    except ValueError:
        return
    assert isinstance(f, Formula)
    assert all(c and all(0 < abs(v) <= f.nv for v in c) for c in f.clauses)


def test_read_dimacs_missing_or_not_a_file(tmp_path):
    from reduction import read_dimacs
    with pytest.raises(ValueError, match="does not exist"):
        read_dimacs(tmp_path / "nope.cnf")
    with pytest.raises(ValueError, match="not a regular file"):
        read_dimacs(tmp_path)


# ------------------------------------------------------------------------------ size limits

@pytest.mark.parametrize("text,pattern", [
    ("p cnf 99999999999 1\n1 2 3 0\n",
     r"line 1: header declares n = 99999999999 variables, above the limit of 1000000"),
    ("p cnf 2000000 1\n1 2 3 0\n", r"line 1: header declares n = 2000000 variables, above the limit of 1000000"),
    ("p cnf 1000001 1\n1 0\n", r"n = 1000001 variables, above the limit"),  # one past the limit
    ("p cnf 3 1000001\n1 0\n", r"line 1: header declares m = 1000001 clauses, above the limit of 1000000"),
    ("p cnf " + "9" * 5000 + " 1\n1 0\n", r"n = 9{21}\.\.\. variables, above the limit"),  # short message
    ("p cnf 3 1\n1 " + "9" * 5000 + " 0\n", r"line 2: literal '9{21}\.\.\.' out of range"),
], ids=["n-1e11", "n-2e6", "n-limit+1", "m-limit+1", "n-5000-digits", "literal-5000-digits"])
def test_dimacs_header_limits(text, pattern):
    """Checked on the header line, before any clause is read or anything of that size is allocated."""
    with pytest.raises(ValueError, match=pattern):
        parse_dimacs(text)


def test_dimacs_at_the_variable_limit_is_accepted():
    f = parse_dimacs(f"p cnf {MAX_VARIABLES} 1\n1 -{MAX_VARIABLES} 0\n")
    assert f.nv == MAX_VARIABLES and used_variables(f).tolist() == [1, MAX_VARIABLES]
    assert build_network(f, form="compact").shape == (2, 1 + 4, 1 + 2)  # the 999 998 unused are dropped


def test_dimacs_literal_limit(monkeypatch):
    monkeypatch.setattr(F, "MAX_LITERALS", 5)
    assert parse_dimacs("p cnf 3 2\n1 2 3 0\n-1 -2 0\n").m == 2           # exactly 5 literals
    with pytest.raises(ValueError, match=r"line 3: more than 5 literals \(reduction.formulas.MAX_LITERALS\)"):
        parse_dimacs("p cnf 3 2\n1 2 3 0\n-1 -2 3 0\n")


def test_read_dimacs_refuses_a_large_file_unread(tmp_path, monkeypatch):
    p = tmp_path / "f.cnf"
    p.write_text("p cnf 3 1\n1 2 3 0\n")  # 18 bytes
    monkeypatch.setattr(F, "MAX_DIMACS_BYTES", 17)
    with pytest.raises(ValueError, match=r"f\.cnf: DIMACS file of 18 bytes, above the limit of 17"):
        read_dimacs(p)
    monkeypatch.setattr(F, "MAX_DIMACS_BYTES", 18)
    assert read_dimacs(p).m == 1


@pytest.mark.parametrize("make", [lambda: Formula(MAX_VARIABLES + 1, []),
                                  lambda: as_formula([[1, 2]], n=MAX_VARIABLES + 1),
                                  lambda: as_formula([[1, -(MAX_VARIABLES + 1)]])],
                         ids=["Formula", "as_formula-n", "as_formula-literal"])
def test_formula_variable_limit(make):
    with pytest.raises(ValueError, match=r"nv: expected at most 1000000 variables"):
        make()


def test_empty_dimacs_parses_but_builds_no_network():
    """'p cnf 0 0' is valid DIMACS (a trivially satisfiable formula); the reduction refuses it."""
    f = parse_dimacs("p cnf 0 0\n")
    assert (f.nv, f.m) == (0, 0)
    with pytest.raises(ValueError, match=r"expected at least one clause, got an empty formula \(n = 0, m = 0\)"):
        build_network(f)


@given(st.lists(clause_st, min_size=1, max_size=12), st.integers(0, 3))
def test_used_variables_are_those_in_clauses(clauses, extra):
    nv = max(abs(v) for c in clauses for v in c) + extra
    f = Formula(nv, clauses)
    np.testing.assert_array_equal(used_variables(f), np.flatnonzero(occurrences(f)) + 1)


# ------------------------------------------------------------------------------ SATLIB files (issue 22)

_UF = ("c This Formular is generated by mcnf\nc\nc    horn? no \np cnf 4  3 \n 1 -2 3 0\n-1 2 -4 0\n"
       "c a comment between clauses\n2 3 4 0\n%\n0\n\n")


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_satlib_file_trailers_comments_and_line_ends(eol):
    """uf20-91-style files: '%' then '0' trailer, 'c' comments anywhere, CRLF / CR line ends."""
    f = parse_dimacs(_UF.replace("\n", eol))
    assert f.nv == 4 and f.clauses == ((1, -2, 3), (-1, 2, -4), (2, 3, 4))


def test_lone_zero_trailer_without_percent_and_its_limits():
    assert parse_dimacs("p cnf 2 1\n1 2 0\n0\n").clauses == ((1, 2),)
    with pytest.raises(ValueError, match="empty clause"):        # before the declared clauses: an error
        parse_dimacs("p cnf 2 2\n1 2 0\n0\n-1 0\n")
    with pytest.raises(ValueError, match="declares m = 1 clauses, found 2"):   # clauses after a trailer
        parse_dimacs("p cnf 2 1\n1 2 0\n0\n-1 0\n")


@pytest.mark.parametrize("p,h", [(2, 2), (3, 2), (3, 3), (4, 3)])
def test_pigeonhole_satisfiable_iff_fits(p, h):
    from reduction import pigeonhole

    f = pigeonhole(p, h)
    opt, _ = max_sat(f)
    assert (opt == 0) == (p <= h)
    assert f.m == p + h * p * (p - 1) // 2 and occurrences(f).max() == p


@pytest.mark.parametrize("N", [2, 3, 4, 5, 6])
def test_parity_satisfiable_iff_even(N):
    from reduction import parity

    f = parity(N)
    opt, _ = max_sat(f)
    assert (opt == 0) == (N % 2 == 0)
    assert f.nv == N * (N - 1) // 2 and occurrences(f).max() == 2 * N - 2


def test_families_bad_arguments():
    from reduction import parity, pigeonhole

    with pytest.raises(ValueError, match="pigeons"):
        pigeonhole(0, 2)
    with pytest.raises(ValueError, match="vertices"):
        parity(1)
