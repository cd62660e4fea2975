"""Hypothesis strategies for property tests of the reduction (needs ``hypothesis``).

Formulas are drawn clause by clause — each clause as a list of distinct variables and a list of
signs — so a failing example shrinks to few, short clauses on low-numbered variables, and the
formula's ``nv`` may exceed its largest variable (unused variables, numbered gaps) so the
network's input map is exercised.  Users can test their own code with them::

    from hypothesis import given
    import reduction
    from reduction.strategies import cnf_formulas

    @given(cnf_formulas(clause_lengths=(3, 3)))
    def test_corners_count_clauses(f):
        net = reduction.build_network(f, form="compact")
        a = [False] * f.nv
        assert net.residual(net.to_input(a)) == reduction.count_unsatisfied(f, a)

Importing :mod:`reduction` does not import this module (nor hypothesis).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from .formulas import Formula

__all__ = ["clauses", "cnf_formulas", "box_points", "assignments"]


@st.composite
def clauses(draw, max_var: int = 8, lengths: tuple[int, int] = (1, 4), distinct: bool = True):
    """One clause: k ∈ ``lengths`` literals on variables 1..``max_var`` (distinct unless ``distinct=False``,
    which allows repeated literals and tautologies x ∨ ¬x).

    Parameters
    ----------
    draw : callable
        Hypothesis's ``draw`` (supplied by ``@st.composite``).
    max_var : int
        Largest variable.
    lengths : (int, int)
        Range of the clause length k.
    distinct : bool
        Distinct variables within the clause.

    Returns
    -------
    strategy of tuple of int
    """
    lo, hi = lengths
    if distinct and hi > max_var:
        raise ValueError(f"lengths: a clause of {hi} distinct variables needs max_var >= {hi}, got {max_var}")
    k = draw(st.integers(lo, hi))
    vs = draw(st.lists(st.integers(1, max_var), min_size=k, max_size=k, unique=distinct))
    signs = draw(st.lists(st.booleans(), min_size=k, max_size=k))
    return tuple(v if s else -v for v, s in zip(vs, signs))


@st.composite
def cnf_formulas(draw, max_var: int = 8, min_clauses: int = 1, max_clauses: int = 10,
                 clause_lengths: tuple[int, int] = (1, 4), distinct: bool = True, max_unused: int = 3):
    """A :class:`~reduction.formulas.Formula` of ``min_clauses``..``max_clauses`` clauses (see :func:`clauses`);
    ``nv`` = largest variable + 0..``max_unused`` (variables below it may be unused as well).

    Parameters
    ----------
    draw : callable
        Hypothesis's ``draw`` (supplied by ``@st.composite``).
    max_var : int
        Largest variable.
    min_clauses, max_clauses : int
        Range of the number of clauses m.
    clause_lengths : (int, int)
        Range of the clause length.
    distinct : bool
        Distinct variables within each clause.
    max_unused : int
        Extra declared variables beyond the largest used.

    Returns
    -------
    strategy of Formula
    """
    cls = draw(st.lists(clauses(max_var, clause_lengths, distinct), min_size=min_clauses, max_size=max_clauses))
    top = max((abs(v) for c in cls for v in c), default=0)
    return Formula(top + draw(st.integers(0, max_unused)), cls)


def _coordinate(near_corner: bool):
    if near_corner:  # ±(1 − δ), δ ∈ [0, 0.05]: where the soundness bound is tightest
        return st.tuples(st.sampled_from([-1.0, 1.0]), st.floats(0.0, 0.05)).map(lambda t: t[0] * (1.0 - t[1]))
    return st.floats(-1.0, 1.0, allow_nan=False)


@st.composite
def box_points(draw, d: int, min_points: int = 1, max_points: int = 6):
    """An array (k, d) of points of [−1, 1]^d; each point is either anywhere in the box or near a corner.

    Parameters
    ----------
    draw : callable
        Hypothesis's ``draw`` (supplied by ``@st.composite``).
    d : int
        Dimension.
    min_points, max_points : int
        Range of the number of points k.

    Returns
    -------
    strategy of numpy.ndarray, shape (k, d)
    """
    k = draw(st.integers(min_points, max_points))
    rows = [draw(st.booleans().flatmap(lambda near: st.lists(_coordinate(near), min_size=d, max_size=d)))
            for _ in range(k)]
    return np.asarray(rows, dtype=np.float64).reshape(k, d)


def assignments(n: int):
    """A boolean assignment vector of length n (the formula's numbering).

    Parameters
    ----------
    n : int
        Number of variables.

    Returns
    -------
    strategy of numpy.ndarray of bool, shape (n,)
    """
    return st.lists(st.booleans(), min_size=n, max_size=n).map(lambda v: np.asarray(v, dtype=bool))
