"""CNF formulas for the MAX-E3SAT(B) reduction: generators, DIMACS I/O, counting.

A formula is a list of clauses; a clause is a tuple of non-zero DIMACS literals (``+i`` is the
variable X_i, ``-i`` its negation, variables numbered 1..n).  :class:`Formula` carries the clauses
with the number of variables ``nv`` (the same attribute names as :class:`pysat.formula.CNF`), and
every function here accepts a :class:`Formula`, a :class:`pysat.formula.CNF` or a plain list of
clauses.  An *assignment* is a boolean vector of length n (``a[i-1]`` is True iff X_i is true);
a pysat model (a list of signed literals) is accepted wherever an assignment is.

MAX-E3SAT(B) (MixCon appendix, before Thm B.6) is MAX-3SAT where every clause has exactly three
literals on three distinct variables and every variable occurs in at most B clauses.

Size limits (checked before anything of that size is allocated; each violation is a
:class:`ValueError` naming the limit):

* :data:`MAX_VARIABLES` = 10⁶ variables in a :class:`Formula` and in a DIMACS header (arrays indexed
  by variable, such as :func:`occurrences` and assignments, have this length);
* :data:`MAX_CLAUSES` = 10⁶ clauses declared in a DIMACS header;
* :data:`MAX_LITERALS` = 10⁷ literals in one DIMACS text (bounds the parser's memory);
* :data:`MAX_DIMACS_BYTES` = 256 MiB for a DIMACS file read by :func:`read_dimacs`.

The network built from a formula has its own limit (:data:`reduction.network.MAX_NETWORK_BYTES`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from theory._validate import expect_generator, expect_int

__all__ = [
    "MAX_VARIABLES",
    "MAX_CLAUSES",
    "MAX_LITERALS",
    "MAX_DIMACS_BYTES",
    "Formula",
    "as_formula",
    "as_assignment",
    "occurrences",
    "used_variables",
    "random_e3sat",
    "random_ksat",
    "planted_e3sat",
    "pigeonhole",
    "parity",
    "parse_dimacs",
    "read_dimacs",
    "write_dimacs",
    "to_dimacs",
    "count_unsatisfied",
    "unsatisfied_mask",
    "instance_batch",
]

_INT = re.compile(r"-?[0-9]+\Z")

#: Largest number of variables of a :class:`Formula` (and of a DIMACS header).
MAX_VARIABLES = 1_000_000
#: Largest number of clauses a DIMACS header may declare.
MAX_CLAUSES = 1_000_000
#: Largest number of literals in one DIMACS text.
MAX_LITERALS = 10_000_000
#: Largest DIMACS file :func:`read_dimacs` reads (bytes).
MAX_DIMACS_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Formula:
    """A CNF formula: ``nv`` variables (numbered 1..nv) and a tuple of clauses.

    Attribute names follow :class:`pysat.formula.CNF` (``nv``, ``clauses``) so either can be
    passed where the other is expected.

    >>> f = Formula(3, [(1, -2, 3), (-1, 2)])
    >>> f.nv, f.m, f.clauses
    (3, 2, ((1, -2, 3), (-1, 2)))
    """

    nv: int
    clauses: tuple[tuple[int, ...], ...] = field(default_factory=tuple)

    def __post_init__(self):
        nv = self.nv
        if isinstance(nv, bool) or not isinstance(nv, (int, np.integer)) or nv < 0:
            raise ValueError(f"nv: expected a non-negative integer number of variables, got {nv!r}")
        if nv > MAX_VARIABLES:
            raise ValueError(f"nv: expected at most {MAX_VARIABLES} variables "
                             f"(reduction.formulas.MAX_VARIABLES), got {nv}")
        object.__setattr__(self, "nv", int(nv))
        cls = []
        for j, c in enumerate(self.clauses):
            if isinstance(c, (int, np.integer)):
                raise ValueError(f"clauses[{j}]: expected a sequence of literals, got the integer {c!r}")
            c = tuple(c)
            if len(c) == 0:
                raise ValueError(f"clauses[{j}]: empty clause (unsatisfiable, has no neuron)")
            for lit in c:
                if isinstance(lit, bool) or not isinstance(lit, (int, np.integer)):
                    raise ValueError(f"clauses[{j}]: expected integer literals, got {lit!r}")
                if lit == 0 or abs(int(lit)) > self.nv:
                    raise ValueError(f"clauses[{j}]: literal {int(lit)} out of range "
                                     f"(expected 1 <= |literal| <= nv = {self.nv})")
            cls.append(tuple(int(v) for v in c))
        object.__setattr__(self, "clauses", tuple(cls))

    @property
    def m(self) -> int:
        """Number of clauses."""
        return len(self.clauses)

    @property
    def n(self) -> int:
        """Number of variables (alias of ``nv``)."""
        return self.nv

    def __iter__(self):
        return iter(self.clauses)

    def __len__(self) -> int:
        return len(self.clauses)

    def to_pysat(self):
        """The same formula as a :class:`pysat.formula.CNF` (pysat imported here, lazily)."""
        from pysat.formula import CNF  # deferred: `import reduction` never imports pysat

        cnf = CNF(from_clauses=[list(c) for c in self.clauses])
        cnf.nv = max(cnf.nv, self.nv)
        return cnf

    def to_dict(self) -> dict:
        return {"nv": self.nv, "m": self.m, "clauses": [list(c) for c in self.clauses]}


def as_formula(cnf, n: int | None = None) -> Formula:
    """Normalise a :class:`Formula`, :class:`pysat.formula.CNF` or list of clauses to a Formula.

    ``n`` overrides/extends the number of variables (it may not be smaller than the largest
    variable used).

    Parameters
    ----------
    cnf : Formula, pysat CNF or list of clauses
        A formula; clauses are sequences of DIMACS literals (±i for X_i).
    n : int, optional
        The number of variables (≥ the largest used).

    Returns
    -------
    Formula
    """
    if isinstance(cnf, Formula):
        if n is None or n == cnf.nv:
            return cnf
        return Formula(n, cnf.clauses)
    if hasattr(cnf, "clauses") and hasattr(cnf, "nv"):  # pysat CNF (or look-alike)
        clauses = [tuple(c) for c in cnf.clauses]
        nv = int(cnf.nv)
    elif isinstance(cnf, (str, bytes)) or not isinstance(cnf, Iterable):
        raise ValueError(f"cnf: expected a Formula, a pysat CNF or a list of clauses, got {type(cnf).__name__}")
    else:
        clauses = []
        for j, c in enumerate(cnf):
            if isinstance(c, (int, np.integer)) or isinstance(c, (str, bytes)) or not isinstance(c, Iterable):
                raise ValueError(f"cnf: clause {j} should be a sequence of integer literals, got {c!r}")
            clauses.append(tuple(c))
        nv = 0
        for j, c in enumerate(clauses):
            for lit in c:
                if isinstance(lit, bool) or not isinstance(lit, (int, np.integer)):
                    raise ValueError(f"cnf: clause {j} has a non-integer literal {lit!r}")
                nv = max(nv, abs(int(lit)))
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < nv:
            raise ValueError(f"n: expected an integer >= the largest variable used ({nv}), got {n!r}")
        nv = int(n)
    return Formula(nv, clauses)


def occurrences(cnf) -> np.ndarray:
    """Number of literal occurrences of each variable (length n; index i-1 for X_i).

    For clauses on distinct variables this is the number of clauses containing X_i, the quantity
    bounded by B in MAX-E3SAT(B).

    Parameters
    ----------
    cnf : Formula, pysat CNF or list of clauses
        A formula; clauses are sequences of DIMACS literals (±i for X_i).

    Returns
    -------
    numpy.ndarray of int, shape (n,)

    Examples
    --------
    >>> occurrences([[1, 2, -3], [-1, 2, 4]]).tolist()
    [2, 2, 1, 1]
    """
    f = as_formula(cnf)
    occ = np.zeros(f.nv, dtype=np.int64)
    for c in f.clauses:
        for lit in c:
            occ[abs(lit) - 1] += 1
    return occ


def used_variables(cnf) -> np.ndarray:
    """The variables that occur in at least one clause, as sorted DIMACS numbers (1-based).

    Costs O(#literals), not O(n): a header may declare many more variables than occur.

    Parameters
    ----------
    cnf : Formula, pysat CNF or list of clauses
        A formula; clauses are sequences of DIMACS literals (±i for X_i).

    Returns
    -------
    numpy.ndarray of int, shape (n_used,)

    Examples
    --------
    >>> used_variables(Formula(9, [(3, -1), (-3, 7)])).tolist()
    [1, 3, 7]
    """
    f = as_formula(cnf)
    if not f.clauses:
        return np.zeros(0, dtype=np.int64)
    lits = np.fromiter((lit for c in f.clauses for lit in c), dtype=np.int64)
    return np.unique(np.abs(lits))


def as_assignment(assignment, n: int) -> np.ndarray:
    """Boolean assignment vector of length ``n`` from booleans/0-1 values or a pysat model.

    A pysat model is a list of signed literals covering exactly the variables 1..n (in any order);
    variables missing from a shorter model are not guessed: that is an error.

    Parameters
    ----------
    assignment : sequence of bool / 0-1, or a pysat model (signed literals)
        The assignment.
    n : int
        Number of variables.

    Returns
    -------
    numpy.ndarray of bool, shape (n,)
        ``True`` = X_i true.

    Examples
    --------
    >>> as_assignment([-1, 2, -3], 3).tolist()
    [False, True, False]
    >>> as_assignment([True, False], 2).tolist()
    [True, False]
    """
    a = np.asarray(assignment)
    if a.ndim != 1:
        raise ValueError(f"assignment: expected a 1-d vector of length n = {n}, got shape {a.shape}")
    if a.dtype == bool:
        if a.shape[0] != n:
            raise ValueError(f"assignment: expected length n = {n}, got {a.shape[0]}")
        return a.copy()
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"assignment: expected booleans, 0/1 or a pysat model of signed literals, "
                         f"got dtype {a.dtype}")
    if a.shape[0] == n and np.all((a == 0) | (a == 1)):
        return a.astype(bool)
    if a.shape[0] == n and np.all(a != 0) and np.array_equal(np.sort(np.abs(a)), np.arange(1, n + 1)):
        out = np.zeros(n, dtype=bool)
        out[np.abs(a) - 1] = a > 0
        return out
    raise ValueError(f"assignment: expected n = {n} booleans/0-1 values or a pysat model with one "
                     f"signed literal per variable 1..{n}, got {a.tolist()[:10]}"
                     f"{' ...' if a.shape[0] > 10 else ''}")


def unsatisfied_mask(cnf, assignment) -> np.ndarray:
    """Boolean vector over clauses: True where the clause is unsatisfied by ``assignment``.

    ``assignment`` may also be a 2-d array (k, n) of k assignments; the result is then (k, m).

    Parameters
    ----------
    cnf : Formula, pysat CNF or list of clauses
        A formula; clauses are sequences of DIMACS literals (±i for X_i).
    assignment : array_like of bool, shape (n,) or (k, n)
        One assignment or a batch.

    Returns
    -------
    numpy.ndarray of bool, shape (m,) or (k, m)
    """
    f = as_formula(cnf)
    a = np.asarray(assignment)
    if a.ndim == 2:
        if a.shape[1] != f.nv:
            raise ValueError(f"assignment: expected shape (k, {f.nv}), got {a.shape}")
        A = a.astype(bool)
    else:
        A = as_assignment(assignment, f.nv)[None, :]
    out = np.ones((A.shape[0], f.m), dtype=bool)
    for j, c in enumerate(f.clauses):
        sat = np.zeros(A.shape[0], dtype=bool)
        for lit in c:
            v = A[:, abs(lit) - 1]
            sat |= v if lit > 0 else ~v
        out[:, j] = ~sat
    return out if a.ndim == 2 else out[0]


def count_unsatisfied(clauses, assignment) -> int | np.ndarray:
    """Number of clauses left unsatisfied by ``assignment`` (or per row for a 2-d batch).

    Parameters
    ----------
    clauses : formula or list of clauses
        The CNF.
    assignment : array_like of bool, shape (n,) or (k, n)
        One assignment or a batch.

    Returns
    -------
    int or numpy.ndarray of int, shape (k,)

    Examples
    --------
    >>> count_unsatisfied([[1, 2], [-1], [-2]], [True, False])
    1
    """
    mask = unsatisfied_mask(clauses, assignment)
    if mask.ndim == 2:
        return mask.sum(axis=1)
    return int(mask.sum())


# ----------------------------------------------------------------------------------- generators


def random_ksat(n: int, m: int, k: int, rng: np.random.Generator) -> Formula:
    """Uniform random k-SAT: m clauses, each on k distinct variables with random signs.

    Parameters
    ----------
    n, m, k : int
        Variables, clauses, literals per clause (k ≤ n).
    rng : numpy.random.Generator
        The random stream.

    Returns
    -------
    Formula

    Examples
    --------
    >>> f = random_ksat(5, 4, 3, np.random.default_rng(0))
    >>> f.nv, f.m, all(len({abs(l) for l in c}) == 3 for c in f.clauses)
    (5, 4, True)
    """
    n = expect_int(n, "n", minimum=1)
    m = expect_int(m, "m", minimum=0)
    k = expect_int(k, "k", minimum=1)
    rng = expect_generator(rng)
    if k > n:
        raise ValueError(f"k: a clause needs k <= n distinct variables, got k = {k} > n = {n}")
    clauses = []
    for _ in range(m):
        vs = rng.choice(n, size=k, replace=False) + 1
        signs = rng.integers(0, 2, size=k) * 2 - 1
        clauses.append(tuple(int(v * s) for v, s in zip(vs, signs)))
    return Formula(n, clauses)


def _bounded_triples(n: int, m: int, B: int, rng: np.random.Generator, tries: int = 200) -> list:
    """m triples of distinct variables (0-based), each variable in at most B triples.

    Variables are drawn with probability proportional to their remaining capacity; a rare dead end
    (fewer than three variables with capacity left) restarts the draw.
    """
    for _ in range(tries):
        cap = np.full(n, B, dtype=np.int64)
        triples = []
        for _j in range(m):
            avail = np.flatnonzero(cap > 0)
            if avail.size < 3:
                break
            p = cap[avail] / cap[avail].sum()
            vs = rng.choice(avail, size=3, replace=False, p=p)
            cap[vs] -= 1
            triples.append(vs)
        if len(triples) == m:
            return triples
    raise ValueError(f"m: could not place m = {m} clauses with every variable in <= B = {B} clauses "
                     f"on n = {n} variables after {tries} attempts; lower m")


def random_e3sat(n: int, m: int, B: int, rng: np.random.Generator) -> Formula:
    """Random MAX-E3SAT(B) instance: m clauses on 3 distinct variables, each variable in <= B clauses.

    Needs 3m <= nB (every clause uses three variable slots).

    Parameters
    ----------
    n, m, B : int
        Variables (≥ 3), clauses, occurrence bound (3m ≤ nB).
    rng : numpy.random.Generator
        The random stream.

    Returns
    -------
    Formula

    Examples
    --------
    >>> f = random_e3sat(6, 8, 4, np.random.default_rng(1))
    >>> int(occurrences(f).max()) <= 4, f.m
    (True, 8)
    """
    n = expect_int(n, "n", minimum=3)
    m = expect_int(m, "m", minimum=0)
    B = expect_int(B, "B", minimum=1)
    rng = expect_generator(rng)
    if 3 * m > n * B:
        raise ValueError(f"m: MAX-E3SAT(B) needs 3m <= nB, got m = {m}, n = {n}, B = {B} (3m = {3 * m} > {n * B})")
    clauses = []
    for vs in _bounded_triples(n, m, B, rng):
        signs = rng.integers(0, 2, size=3) * 2 - 1
        clauses.append(tuple(int((v + 1) * s) for v, s in zip(vs, signs)))
    return Formula(n, clauses)


def planted_e3sat(n: int, m: int, B: int, rng: np.random.Generator) -> tuple[Formula, np.ndarray]:
    """Satisfiable MAX-E3SAT(B) instance with its planted assignment.

    A hidden assignment is drawn uniformly; each clause's signs are drawn uniformly among the seven
    sign patterns that the hidden assignment satisfies, so the formula is satisfiable by
    construction.  Returns ``(formula, assignment)``.

    Parameters
    ----------
    n, m, B : int
        Variables (≥ 3), clauses, occurrence bound (3m ≤ nB).
    rng : numpy.random.Generator
        The random stream.

    Returns
    -------
    tuple of (Formula, numpy.ndarray of bool, shape (n,))

    Examples
    --------
    >>> f, a = planted_e3sat(9, 12, 4, np.random.default_rng(2))
    >>> count_unsatisfied(f, a)
    0
    """
    n = expect_int(n, "n", minimum=3)
    m = expect_int(m, "m", minimum=0)
    B = expect_int(B, "B", minimum=1)
    rng = expect_generator(rng)
    if 3 * m > n * B:
        raise ValueError(f"m: MAX-E3SAT(B) needs 3m <= nB, got m = {m}, n = {n}, B = {B}")
    hidden = rng.integers(0, 2, size=n).astype(bool)
    clauses = []
    for vs in _bounded_triples(n, m, B, rng):
        # pattern 0..6 of 7 non-all-false ones: bit t set <=> literal t is true under `hidden`
        pattern = int(rng.integers(1, 8))
        lits = []
        for t, v in enumerate(vs):
            true_lit = bool((pattern >> t) & 1)
            positive = hidden[v] if true_lit else not hidden[v]
            lits.append(int(v + 1) if positive else -int(v + 1))
        clauses.append(tuple(lits))
    return Formula(n, clauses), hidden


def pigeonhole(pigeons: int, holes: int) -> Formula:
    """The pigeonhole principle PHP(p, h): p pigeons in h holes, no two in one hole.

    Variable x_{i,j} = (i − 1)·h + j means "pigeon i sits in hole j" (i ≤ p, j ≤ h).  Clauses: every
    pigeon in some hole, (x_{i,1} ∨ … ∨ x_{i,h}), and no hole shared, (¬x_{i,j} ∨ ¬x_{i',j}) for
    i < i'.  Satisfiable iff p ≤ h; PHP(h + 1, h) is the classical unsatisfiable family, hard for
    resolution (Haken 1985).  The standard definition, as in cnfgen's ``php`` (Lauria, Elffers,
    Nordström & Vinyals 2017, "CNFgen: a generator of crafted benchmarks"); written here so that
    no dependency is needed.  p + h·p(p−1)/2 clauses of lengths h and 2; every variable occurs
    p times (B = p).

    Parameters
    ----------
    pigeons, holes : int
        p ≥ 1 and h ≥ 1.

    Returns
    -------
    Formula
        p·h variables, p + h·p(p−1)/2 clauses.

    Examples
    --------
    >>> f = pigeonhole(3, 2)
    >>> f.nv, f.m, sorted({len(c) for c in f.clauses})
    (6, 9, [2])
    >>> pigeonhole(3, 2).clauses[:3]
    ((1, 2), (3, 4), (5, 6))
    """
    p = expect_int(pigeons, "pigeons", minimum=1)
    h = expect_int(holes, "holes", minimum=1)
    if p * h > MAX_VARIABLES:
        raise ValueError(f"pigeons, holes: p·h = {p * h} variables, above the limit of {MAX_VARIABLES}")

    def v(i, j):
        return i * h + j + 1

    clauses = [tuple(v(i, j) for j in range(h)) for i in range(p)]
    clauses += [(-v(i, j), -v(k, j)) for j in range(h) for i in range(p) for k in range(i + 1, p)]
    return Formula(p * h, clauses)


def parity(vertices: int) -> Formula:
    """The parity principle on N vertices: a perfect matching of the complete graph K_N.

    One variable per edge {u, v} (u < v, numbered in lexicographic order) meaning "the edge is in
    the matching"; for every vertex u: some incident edge, (∨_v e_{uv}), and at most one,
    (¬e_{uv} ∨ ¬e_{uw}).  Satisfiable iff N is even; odd N is the unsatisfiable family (a set of
    odd size cannot be split into pairs).  The standard definition, as cnfgen's ``parity``
    (Lauria et al. 2017); written here so that no dependency is needed.  N(N − 1)/2 variables,
    N + N·C(N − 1, 2) clauses; every variable occurs 2 + 2(N − 2) times.

    Parameters
    ----------
    vertices : int
        N ≥ 2.

    Returns
    -------
    Formula
        N(N−1)/2 variables.

    Examples
    --------
    >>> f = parity(3)                      # a triangle has no perfect matching
    >>> f.nv, f.m
    (3, 6)
    >>> parity(3).clauses[:3]
    ((1, 2), (1, 3), (2, 3))
    """
    N = expect_int(vertices, "vertices", minimum=2)
    if N * (N - 1) // 2 > MAX_VARIABLES:
        raise ValueError(f"vertices: N(N-1)/2 = {N * (N - 1) // 2} variables, above the limit of {MAX_VARIABLES}")
    edge = {}
    for u in range(N):
        for w in range(u + 1, N):
            edge[(u, w)] = len(edge) + 1

    def e(u, w):
        return edge[(min(u, w), max(u, w))]

    clauses = [tuple(e(u, w) for w in range(N) if w != u) for u in range(N)]
    for u in range(N):
        nb = [w for w in range(N) if w != u]
        clauses += [(-e(u, a), -e(u, c)) for i, a in enumerate(nb) for c in nb[i + 1:]]
    return Formula(len(edge), clauses)


# ---------------------------------------------------------------------------------------- DIMACS


def _short(tok: str, width: int = 24) -> str:
    """A token for an error message: at most ``width`` characters (a message stays one short line)."""
    return tok if len(tok) <= width else tok[:width - 3] + "..."


def parse_dimacs(text: str) -> Formula:
    """Parse DIMACS CNF text strictly.

    Format: optional comment lines starting with ``c``; one header ``p cnf <n> <m>`` before any
    clause; then clauses as whitespace-separated integer literals, each terminated by ``0`` (a
    clause may span lines).  SATLIB files are read as they are: a line starting with ``%`` ends the
    formula, a lone ``0`` after the declared m clauses is a trailer (not an empty clause), comment
    lines may stand anywhere (also between clauses), and CRLF / CR line ends are accepted.  Every error is a
    :class:`ValueError` naming the line number and offending token: missing/bad/duplicate header,
    a header above the size limits (n > :data:`MAX_VARIABLES`, m > :data:`MAX_CLAUSES`; checked on
    the header line, before any clause is read), non-integer token, literal out of range (beyond
    the header's n), more than :data:`MAX_LITERALS` literals, empty clause, missing terminating
    ``0``, clause count different from the header.  A header may declare variables that occur in
    no clause (DIMACS allows it); :func:`reduction.build_network` leaves them out of the network.

    Parameters
    ----------
    text : str
        The DIMACS text.

    Returns
    -------
    Formula

    Examples
    --------
    >>> f = parse_dimacs("c demo\\np cnf 3 2\\n1 -2 0\\n2 3 -1 0\\n")
    >>> f.nv, f.clauses
    (3, ((1, -2), (2, 3, -1)))
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"text: DIMACS must be UTF-8/ASCII text ({exc})") from None
    if not isinstance(text, str):
        raise ValueError(f"text: expected DIMACS text (str), got {type(text).__name__}")
    nv = m_decl = None
    clauses: list[tuple[int, ...]] = []
    cur: list[int] = []
    cur_line = n_lits = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s[0] == "c":
            continue
        if s[0] == "%":
            break
        toks = s.split()
        if toks[0] == "p":
            if nv is not None:
                raise ValueError(f"DIMACS line {lineno}: duplicate header {_short(s, 60)!r}")
            if cur or clauses:
                raise ValueError(f"DIMACS line {lineno}: header {_short(s, 60)!r} after clauses")
            if len(toks) != 4 or toks[1] != "cnf":
                raise ValueError(f"DIMACS line {lineno}: bad header {_short(s, 60)!r} (expected 'p cnf <n> <m>')")
            for tok in toks[2:]:
                if not _INT.match(tok) or tok.startswith("-"):
                    raise ValueError(f"DIMACS line {lineno}: bad header token {_short(tok)!r} "
                                     f"(expected a non-negative integer)")
            # a token of more than 18 digits is above any limit; int() of a very long one is slow
            nv, m_decl = (int(t) if len(t) <= 18 else 10**18 for t in toks[2:])
            if nv > MAX_VARIABLES:
                raise ValueError(f"DIMACS line {lineno}: header declares n = {_short(toks[2])} variables, "
                                 f"above the limit of {MAX_VARIABLES} (reduction.formulas.MAX_VARIABLES)")
            if m_decl > MAX_CLAUSES:
                raise ValueError(f"DIMACS line {lineno}: header declares m = {_short(toks[3])} clauses, "
                                 f"above the limit of {MAX_CLAUSES} (reduction.formulas.MAX_CLAUSES)")
            continue
        if nv is None:
            raise ValueError(f"DIMACS line {lineno}: missing header 'p cnf <n> <m>' before token {_short(toks[0])!r}")
        for tok in toks:
            if not _INT.match(tok):
                raise ValueError(f"DIMACS line {lineno}: non-integer token {_short(tok)!r}")
            lit = int(tok) if len(tok) <= 19 else 10**18  # longer: out of range (n <= MAX_VARIABLES)
            if lit == 0:
                if not cur and len(clauses) == m_decl:
                    continue  # a lone '0' after the declared clauses: a SATLIB trailer ("%\n0\n"), not a clause
                if not cur:
                    raise ValueError(f"DIMACS line {lineno}: empty clause (token '0' with no literals)")
                clauses.append(tuple(cur))
                cur = []
                continue
            if abs(lit) > nv:
                raise ValueError(f"DIMACS line {lineno}: literal {_short(tok)!r} out of range "
                                 f"(header declares n = {nv} variables)")
            if not cur:
                cur_line = lineno
            n_lits += 1
            if n_lits > MAX_LITERALS:
                raise ValueError(f"DIMACS line {lineno}: more than {MAX_LITERALS} literals "
                                 f"(reduction.formulas.MAX_LITERALS)")
            cur.append(lit)
    if nv is None:
        raise ValueError("DIMACS: missing header 'p cnf <n> <m>' (no header line found)")
    if cur:
        raise ValueError(f"DIMACS line {cur_line}: clause {' '.join(map(str, cur[:8]))}"
                         f"{' ...' if len(cur) > 8 else ''} has no terminating '0'")
    if len(clauses) != m_decl:
        raise ValueError(f"DIMACS: header declares m = {m_decl} clauses, found {len(clauses)}")
    return Formula(nv, clauses)


def read_dimacs(path: str | Path) -> Formula:
    """Read a DIMACS CNF file (see :func:`parse_dimacs`); files above :data:`MAX_DIMACS_BYTES` are refused unread.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    Formula
    """
    p = Path(path)
    if not p.is_file():
        what = "is not a regular file" if p.exists() else "does not exist"
        raise ValueError(f"path: expected a DIMACS CNF file, but {str(p)!r} {what}")
    size = p.stat().st_size
    if size > MAX_DIMACS_BYTES:
        raise ValueError(f"{p}: DIMACS file of {size} bytes, above the limit of {MAX_DIMACS_BYTES} "
                         f"(reduction.formulas.MAX_DIMACS_BYTES)")
    try:
        return parse_dimacs(p.read_bytes())
    except ValueError as exc:
        raise ValueError(f"{p}: {exc}") from None


def to_dimacs(cnf, comments: Sequence[str] = ()) -> str:
    """DIMACS text of a formula (round-trips through :func:`parse_dimacs`).

    Parameters
    ----------
    cnf : Formula, pysat CNF or list of clauses
        A formula; clauses are sequences of DIMACS literals (±i for X_i).
    comments : sequence of str
        Lines written as ``c ...`` before the header.

    Returns
    -------
    str

    Examples
    --------
    >>> print(to_dimacs([[1, -2], [2]]), end="")
    p cnf 2 2
    1 -2 0
    2 0
    """
    f = as_formula(cnf)
    lines = [f"c {c}" for c in comments]
    lines.append(f"p cnf {f.nv} {f.m}")
    lines += [" ".join(map(str, c)) + " 0" for c in f.clauses]
    return "\n".join(lines) + "\n"


def write_dimacs(cnf, path: str | Path, comments: Sequence[str] = ()) -> Path:
    """Write a formula as a DIMACS CNF file; returns the path.

    Parameters
    ----------
    cnf : Formula, pysat CNF or list of clauses
        A formula; clauses are sequences of DIMACS literals (±i for X_i).
    path : str or Path
        The file to write.
    comments : sequence of str
        Comment lines.

    Returns
    -------
    Path
    """
    p = Path(path)
    p.write_text(to_dimacs(cnf, comments))
    return p


def instance_batch(seed: int = 0, n_planted: int = 50, n_over: int = 50, n_max: int = 30) -> list[dict]:
    """A seeded batch of MAX-E3SAT(B) instances for the checks (``invlimits reduction``, tests).

    * planted: n ∈ [8, n_max], B ∈ {3, 4, 5}, m = ⌊nB/3⌋ (every variable slot used), satisfiable
      by construction (the planted assignment is included);
    * over-constrained: n ∈ [8, min(n_max, 24)], B ∈ {15, 18, 21}, m = ⌊nB/3⌋ (clause/variable
      ratio 5–7, above the random 3-SAT threshold ≈ 4.27), random signs — usually unsatisfiable.

    About a quarter of each kind has n ≤ 12, so the exhaustive check covers them.  Returns a list of
    dicts with keys ``name``, ``kind``, ``formula``, ``B``, ``planted`` (assignment or None).

    Parameters
    ----------
    seed : int
        Seed of the batch.
    n_planted, n_over : int
        Numbers of planted and over-constrained instances.
    n_max : int
        Largest number of variables.

    Returns
    -------
    list of dict

    Examples
    --------
    >>> b = instance_batch(0, 2, 2)
    >>> [(d["kind"], d["formula"].nv <= 30) for d in b]
    [('planted', True), ('planted', True), ('over', True), ('over', True)]
    """
    for name, v in (("n_planted", n_planted), ("n_over", n_over)):
        expect_int(v, name, minimum=0)
    n_max = expect_int(n_max, "n_max", minimum=8)
    rng = np.random.default_rng([int(seed), 3])
    out = []
    for t in range(n_planted):
        n = int(rng.integers(8, 13)) if t % 4 == 0 else int(rng.integers(8, n_max + 1))
        B = int(rng.choice([3, 4, 5]))
        f, a = planted_e3sat(n, n * B // 3, B, rng)
        out.append({"name": f"planted-{t:02d}", "kind": "planted", "formula": f, "B": B, "planted": a})
    for t in range(n_over):
        n = int(rng.integers(8, 13)) if t % 4 == 0 else int(rng.integers(8, min(n_max, 24) + 1))
        B = int(rng.choice([15, 18, 21]))
        f = random_e3sat(n, n * B // 3, B, rng)
        out.append({"name": f"over-{t:02d}", "kind": "over", "formula": f, "B": B, "planted": None})
    return out
