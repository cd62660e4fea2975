r"""The two-layer ReLU network h_φ of the MixCon appendix reduction (proof of Thm B.10).

Given a CNF φ on n variables with m clauses, h_φ(x) = W₂ σ(W₁x + b), x ∈ [−1, 1]^d, with target
z = (0,…,0, 1,…,1), where the d inputs are the variables that occur in φ (d = n when all occur;
see "Unused variables" below):

* **clause neurons** (rows 1..m of W₁): W₁[j, i] = +1 if X_i ∈ φ_j, −1 if ¬X_i ∈ φ_j (summed over
  repeated occurrences, so a tautological pair cancels), bias b_j; copied unchanged to output j.
* **copy neurons**: for every input variable i and copy k = 1..c, two first-layer neurons σ(x_i) and
  σ(−x_i) whose sum |x_i| is output m + (i−1)c + k, with target 1.

Convention (as printed): x_i = +1 ⇔ X_i **false**, x_i = −1 ⇔ X_i true.  A false literal then
contributes +1 to its clause neuron, a true one −1, so on {±1}ⁿ a clause with k literal
occurrences has pre-activation (#false − #true) + b.

.. math::  \|h_φ(x) − z\|^2 = \sum_{j=1}^m σ(w_j·x + b_j)^2 + c \sum_{i\ \text{used}} (|x_i| − 1)^2 .

**Clause bias: −(k−1) generalises the printed −2.**  Thm B.10 reduces from MAX-E3SAT, where every
clause has exactly three literals, and there the printed b_j = −2 is right.  A clause neuron equals
1 on an all-false clause and 0 otherwise (on {±1}ⁿ) iff b_j = −(k−1) for a clause with k literal
occurrences, so −(k−1) extends the construction to other clause lengths — needed for general
DIMACS input such as pigeonhole formulas — and is not an error in the theorem.  With −2 for every
clause an unsatisfied 2-literal clause outputs σ(0) = 0 and a 4-literal one σ(2) = 2.  The default
``bias="exact"`` is −(k−1) (= −2 on E3 input); ``bias="paper"`` uses −2 for every clause so the
difference can be shown.

**Unused variables are dropped (erratum 2).**  The soundness argument bounds the ε-tolerance term
ε²m₂ = m/(3600B²) + c·n/(3600B²) ≈ n/36 (ε = 1/(60B), Def. B.9) by m/12 using n ≤ 3m, which holds
only when every variable occurs in a clause.  A DIMACS header may declare variables that occur in
no clause; with copy neurons for them m₂ grows while the residual does not (1 clause and 97
unused variables: the all-false assignment passes the ε-test with 0 % of the clauses satisfied).
So the network has one input per *occurring* variable (``drop_unused=True``, the default;
``False`` builds the printed network, copies for all n).  ``net.variables[t]`` is the DIMACS number
of input t.  Assignments are always in the formula's numbering (length n): :meth:`~ReductionNetwork.to_input`
maps an assignment to the d inputs, :meth:`~ReductionNetwork.round` maps inputs back (unused
variables false: they are in no clause), :meth:`~ReductionNetwork.project` and
:meth:`~ReductionNetwork.lift` map points between the n coordinates and the d inputs, and every
method taking x accepts either length.

**Erratum 3 (constants).** The paper uses c = 100B² copies with B ≥ 15000, i.e. 2.25·10¹⁰ copies
per variable: never buildable.  ``copies`` is a parameter (default 100B²), and the *compact* form
(one copy neuron pair whose output is weighted √c, target √c) has exactly the residual above, since
(√c|x_i| − √c)² = c(|x_i| − 1)².

**Size limit.**  :func:`build_network` computes the storage the network needs before allocating
anything (:func:`network_size`) and refuses one above ``max_bytes`` (default
:data:`MAX_NETWORK_BYTES` = 1 GiB of stored arrays; building briefly needs about twice that).

Forms (d = number of inputs = occurring variables): ``"faithful"`` stores W₁ (m + 2cd) × d and
W₂ (m + cd) × (m + 2cd) as ``scipy.sparse`` CSR matrices built directly from index arrays;
``"compact"`` stores dense numpy arrays with W₁ (m + 2d) × d and W₂ (m + d) × (m + 2d).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from theory._validate import expect_int

from .formulas import Formula, as_assignment, as_formula, used_variables

__all__ = ["MAX_NETWORK_BYTES", "ReductionNetwork", "build_network", "network_size", "clause_matrix",
           "clause_biases"]

#: Largest storage (bytes of weights, indices, biases and target) :func:`build_network` allocates.
MAX_NETWORK_BYTES = 2**30


def clause_matrix(cnf) -> sp.csr_matrix:
    """The m × n clause matrix in the formula's numbering: +1 per positive, −1 per negative occurrence (summed).

    The network's clause block ``net.C`` is its m × d restriction to the input variables.

    Parameters
    ----------
    cnf : Formula, pysat CNF or list of clauses
        A formula; clauses are sequences of DIMACS literals (±i for X_i).

    Returns
    -------
    scipy.sparse.csr_matrix, shape (m, n)

    Examples
    --------
    >>> clause_matrix([[1, -2, 3], [2, -2, 1]]).toarray().astype(int).tolist()
    [[1, -1, 1], [1, 0, 0]]
    """
    f = as_formula(cnf)
    return _clause_block(f, np.arange(1, f.nv + 1))


def _clause_block(f: Formula, variables: np.ndarray) -> sp.csr_matrix:
    """m × len(variables) clause block; column t is variable ``variables[t]`` (sorted, containing all used)."""
    rows, lits = [], []
    for j, c in enumerate(f.clauses):
        rows.extend([j] * len(c))
        lits.extend(c)
    lits = np.asarray(lits, dtype=np.int64)
    cols = np.searchsorted(variables, np.abs(lits))
    C = sp.csr_matrix((np.where(lits > 0, 1.0, -1.0), (np.asarray(rows, dtype=np.int64), cols)),
                      shape=(f.m, len(variables)))
    C.sum_duplicates()
    C.eliminate_zeros()
    return C


def clause_biases(cnf, bias: str = "exact") -> np.ndarray:
    """Clause biases: −(k−1) for a clause with k literal occurrences (``"exact"``) or −2 (``"paper"``).

    On MAX-E3SAT input (k = 3, the case of Thm B.10) both are −2; −(k−1) generalises the
    construction to other clause lengths.

    Parameters
    ----------
    cnf : Formula, pysat CNF or list of clauses
        A formula; clauses are sequences of DIMACS literals (±i for X_i).
    bias : {'exact', 'paper'}
        −(k−1) per clause, or the printed −2.

    Returns
    -------
    numpy.ndarray, shape (m,)

    Examples
    --------
    >>> clause_biases([[1], [1, 2], [1, 2, 3], [1, 2, 3, 4]]).tolist()
    [-0.0, -1.0, -2.0, -3.0]
    >>> clause_biases([[1], [1, 2]], bias="paper").tolist()
    [-2.0, -2.0]
    """
    f = as_formula(cnf)
    _check_bias(bias)
    if bias == "exact":
        return -np.array([len(c) - 1 for c in f.clauses], dtype=np.float64)
    return np.full(f.m, -2.0)


def _check_bias(bias) -> None:
    if bias not in ("exact", "paper"):
        raise ValueError(f"bias: expected 'exact' (-(k-1), the generalisation to k-literal clauses) or "
                         f"'paper' (the printed -2 for every clause), got {bias!r}")


def _idx_dtype(size: int):
    return np.int32 if size < 2**31 - 1 else np.int64


def network_size(cnf, B: int | None = None, copies: int | None = None, form: str = "faithful",
                 bias: str = "exact", drop_unused: bool = True,
                 max_bytes: int | None = MAX_NETWORK_BYTES) -> dict:
    """Validate :func:`build_network`'s arguments and size its network without allocating it.

    Returns a dict: ``n`` (the formula's variables), ``n_used`` (those occurring in a clause),
    ``d`` (inputs), ``m``, ``B``, ``copies``, ``form``, ``m1``, ``m2`` (hidden and output widths) and
    ``bytes`` (storage of W₁, W₂, b, z and the clause block).  Raises :class:`ValueError` for an
    invalid argument, an empty formula, a formula violating B, or ``bytes > max_bytes``
    (``max_bytes=None``: no limit).

    Parameters
    ----------
    cnf : Formula, pysat CNF or list of clauses
        A formula; clauses are sequences of DIMACS literals (±i for X_i).
    B : int, optional
        Occurrence bound (default the formula's largest).
    copies : int, optional
        Copies per variable c (default 100B²).
    form : {'faithful', 'compact'}
        The network form.
    bias : {'exact', 'paper'}
        The clause biases.
    drop_unused : bool
        Leave variables that occur in no clause out of the inputs.
    max_bytes : int, optional
        Refuse networks above this size (None: no limit).

    Returns
    -------
    dict

    Examples
    --------
    >>> s = network_size([[1, 2, 3], [-1, -2, 5]], B=2)     # X4 occurs nowhere: 4 inputs
    >>> s["n"], s["d"], s["m1"], s["m2"]
    (5, 4, 3202, 1602)
    """
    f = as_formula(cnf)
    if f.m == 0:
        raise ValueError(f"cnf: expected at least one clause, got an empty formula (n = {f.nv}, m = 0): "
                         f"it is trivially satisfiable and its network has no clause neuron to check")
    lits = np.fromiter((abs(lit) for c in f.clauses for lit in c), dtype=np.int64)
    used, counts = np.unique(lits, return_counts=True)
    max_occ = int(counts.max())
    if B is None:
        B = max_occ
    B = expect_int(B, "B")
    if max_occ > B:
        i = int(used[np.argmax(counts)])
        raise ValueError(f"B: the formula violates the stated B = {B}: variable {i} occurs {max_occ} times")
    c = 100 * B * B if copies is None else expect_int(copies, "copies")
    if form not in ("faithful", "compact"):
        raise ValueError(f"form: expected 'faithful' or 'compact', got {form!r}")
    _check_bias(bias)
    if not isinstance(drop_unused, (bool, np.bool_)):
        raise ValueError(f"drop_unused: expected True or False, got {drop_unused!r}")
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer, float))
                                  or not max_bytes > 0):
        raise ValueError(f"max_bytes: expected a positive number of bytes or None, got {max_bytes!r}")
    n, m, nnzC = f.nv, f.m, int(lits.size)
    d = int(used.size) if drop_unused else n
    if form == "compact":
        m1, m2 = m + 2 * d, m + d
        nbytes = 8 * (m1 * d + m2 * m1 + m1 + m2)
    else:
        cd = c * d
        m1, m2 = m + 2 * cd, m + cd
        nnz1, nnz2 = nnzC + 2 * cd, m + 2 * cd
        i1 = np.dtype(_idx_dtype(max(nnz1, m1, d))).itemsize
        i2 = np.dtype(_idx_dtype(max(nnz2, m1))).itemsize
        nbytes = nnz1 * (8 + i1) + (m1 + 1) * i1 + nnz2 * (8 + i2) + (m2 + 1) * i2 + 8 * (m1 + m2)
    nbytes += nnzC * 16 + (m + 1) * 8 + 8 * d  # clause block (CSR) and the input map
    size = {"n": n, "n_used": int(used.size), "d": d, "m": m, "B": B, "copies": c, "form": form,
            "m1": m1, "m2": m2, "bytes": int(nbytes)}
    if max_bytes is not None and nbytes > max_bytes:
        hint = ("form='compact' has the same residual with one weighted copy per variable" if form == "faithful"
                else "the compact form is dense: W1 and W2 hold (m + 2d)^2 floats")
        raise ValueError(f"cnf: the {form} network for d = {d} variables, m = {m} clauses, B = {B}, "
                         f"copies = {c} needs {nbytes / 2**30:.3g} GiB (m1 = {m1}, m2 = {m2}), above the "
                         f"limit max_bytes = {max_bytes / 2**30:.3g} GiB (reduction.network.MAX_NETWORK_BYTES); "
                         f"{hint}")
    return size


@dataclass
class ReductionNetwork:
    """h_φ(x) = W₂ σ(W₁x + b) with target z; see the module docstring for the construction.

    Attributes
    ----------
    W1, b, W2, target : weights (sparse CSR in the faithful form, dense in the compact form)
    formula : the CNF, n = formula.nv variables (its numbering is the numbering of assignments), m clauses
    B : the occurrence bound the network was built for; copies : c
    form : "faithful" | "compact"; bias : "exact" | "paper"
    C : the m × d clause block of W₁ (columns = inputs)
    variables : (d,) DIMACS numbers of the inputs: input t is variable ``variables[t]``
    n_used : variables occurring in a clause (= d unless built with ``drop_unused=False``)
    """

    W1: object
    b: np.ndarray
    W2: object
    target: np.ndarray
    formula: Formula
    B: int
    copies: int
    form: str
    bias: str
    C: sp.csr_matrix = field(repr=False)
    variables: np.ndarray = field(repr=False)
    n_used: int = 0

    @property
    def n(self) -> int:
        """Variables of the formula (its numbering; assignments have this length)."""
        return self.formula.nv

    @property
    def d(self) -> int:
        """Network inputs: one per variable in ``variables``."""
        return int(self.variables.shape[0])

    @property
    def m(self) -> int:
        return self.formula.m

    @property
    def shape(self) -> tuple[int, int, int]:
        """(d, m₁, m₂): input, hidden and output widths."""
        return self.d, self.W1.shape[0], self.W2.shape[0]

    # ------------------------------------------------------------------ numbering
    def _check_x(self, x, box: bool = False) -> np.ndarray:
        """x as network inputs (…, d): accepts (…, d) or (…, n) (the formula's numbering, projected)."""
        try:
            X = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"x: expected a real array of shape (d,) or (k, d) with d = {self.d}") from None
        want = f"({self.d},) or (k, {self.d})"
        if self.d != self.n:
            want += f" (network inputs), or ({self.n},) or (k, {self.n}) (the formula's numbering)"
        if X.ndim not in (1, 2) or X.shape[-1] not in (self.d, self.n):
            raise ValueError(f"x: expected shape {want}, got {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError("x: expected finite values, got nan/inf")
        if X.shape[-1] != self.d:
            X = X[..., self.variables - 1]
        if box and (np.any(X < -1.0) or np.any(X > 1.0)):
            raise ValueError(f"x: expected values in [-1, 1] (the domain of Eq. (4)), got range "
                             f"[{X.min():.6g}, {X.max():.6g}]")
        return X

    def project(self, x) -> np.ndarray:
        """Network inputs (…, d) of a point in the formula's numbering (…, n); (…, d) passes through.

        >>> net = build_network([[1, -3]], B=1, form="compact")   # X2 occurs nowhere
        >>> net.variables.tolist(), net.project([0.5, 0.9, -0.25]).tolist()
        ([1, 3], [0.5, -0.25])
        """
        return self._check_x(x)

    def lift(self, x, fill: float = 1.0) -> np.ndarray:
        """The point (…, n) in the formula's numbering of network inputs x (…, d).

        Variables that are not inputs get ``fill`` (default +1, i.e. false; they are in no clause).

        >>> net = build_network([[1, -3]], B=1, form="compact")
        >>> net.lift([0.5, -0.25]).tolist()
        [0.5, 1.0, -0.25]
        """
        X = self._check_x(x)
        out = np.full(X.shape[:-1] + (self.n,), float(fill))
        out[..., self.variables - 1] = X
        return out

    def to_input(self, assignment) -> np.ndarray:
        """x ∈ {±1}^d of an assignment in the formula's numbering: x_t = +1 ⇔ X_{variables[t]} false,
        −1 ⇔ true (the paper's convention).

        >>> net = build_network([[1, -3]], B=1, form="compact")
        >>> net.to_input([True, True, False]).tolist()
        [-1.0, 1.0]
        """
        a = as_assignment(assignment, self.n)
        return np.where(a[self.variables - 1], -1.0, 1.0)

    def round(self, x) -> np.ndarray:
        """Assignment (…, n), in the formula's numbering, of the rounding x̄ = argmin_{t∈{±1}} |t − x_i|:
        X_i true ⇔ x_i < 0 (ties → false); variables that are not inputs are false.

        >>> net = build_network([[1, -3]], B=1, form="compact")
        >>> net.round([-0.5, 0.0]).tolist()
        [True, False, False]
        """
        X = self._check_x(x)
        A = np.zeros(X.shape[:-1] + (self.n,), dtype=bool)
        A[..., self.variables - 1] = X < 0
        return A

    # ------------------------------------------------------------------ evaluation
    def hidden(self, x) -> np.ndarray:
        """First-layer activations σ(W₁x + b), shape (m₁,) or (k, m₁)."""
        X = self._check_x(x)
        X2 = np.atleast_2d(X)
        A = np.asarray(self.W1 @ X2.T).T + self.b
        np.maximum(A, 0.0, out=A)
        return A if X.ndim == 2 else A[0]

    def forward(self, x) -> np.ndarray:
        """h_φ(x), shape (m₂,) or (k, m₂)."""
        H = np.atleast_2d(self.hidden(x))
        out = np.asarray(self.W2 @ H.T).T
        return out if np.ndim(x) == 2 else out[0]

    __call__ = forward

    def residual(self, x) -> np.ndarray | float:
        """‖h_φ(x) − z‖² (float, or one per row of a (k, ·) batch)."""
        out = self.forward(x) - self.target
        r = np.einsum("...i,...i->...", out, out)
        return float(r) if np.ndim(r) == 0 else r

    # ------------------------------------------------------------------ torch
    def to_torch(self, device="auto", dtype=None, sparse: bool | None = None):
        """The network as a torch module on the d inputs (torch imported here, lazily).

        Dense ``nn.Sequential(Linear, ReLU, Linear)`` when it is small (or ``sparse=False``),
        otherwise a module holding sparse W₁, W₂.  ``device="auto"`` picks CUDA when available.
        The target is ``module.target`` (a buffer).
        """
        import torch  # deferred: torch is optional for reduction (this export only)

        from ._torch import resolve_device, two_layer_module

        dev = resolve_device(device)
        dt = torch.float64 if dtype is None else dtype
        if sparse is None:
            sparse = self.W1.shape[0] * self.d + self.W2.shape[0] * self.W2.shape[1] > 2e7
        return two_layer_module(self.W1, self.b, self.W2, self.target, dev, dt, sparse)

    def to_dict(self) -> dict:
        d, m1, m2 = self.shape
        return {"n": self.n, "n_used": self.n_used, "m": self.m, "B": self.B, "copies": self.copies,
                "form": self.form, "bias": self.bias, "d": d, "m1": m1, "m2": m2}


def build_network(cnf, B: int | None = None, copies: int | None = None, form: str = "faithful",
                  bias: str = "exact", drop_unused: bool = True,
                  max_bytes: int | None = MAX_NETWORK_BYTES) -> ReductionNetwork:
    """Build h_φ and its target for a CNF (MixCon appendix, proof of Thm B.10).

    Parameters
    ----------
    cnf : Formula, pysat CNF or list of clauses (at least one clause)
    B : int, optional
        Occurrence bound; defaults to the largest number of occurrences of a variable.  A formula
        with a variable occurring more than ``B`` times is a ``ValueError``.
    copies : int, optional
        Copies c of each |x_i| in the output layer; default 100B² (as printed).
    form : "faithful" (explicit copies, scipy.sparse) or "compact" (one copy weighted √c).
    bias : "exact" (−(k−1) per k-literal clause; −2 on E3 input) or "paper" (−2 for every clause).
    drop_unused : bool
        One input per variable that occurs in a clause (default; the soundness argument's n ≤ 3m
        needs it), or ``False`` for the printed construction with inputs and copies for all n.
    max_bytes : int or None
        Refuse (``ValueError``, before allocating) a network storing more than this many bytes;
        default :data:`MAX_NETWORK_BYTES`; ``None``: no limit.  See :func:`network_size`.

    Returns
    -------
    ReductionNetwork
        W₁ (m₁, d), b₁ (m₁,), W₂ (m₂, m₁) — sparse in the faithful form — and the target z (m₂,).

    Examples
    --------
    >>> net = build_network([[1, 2, 3], [-1, -2, 3]], B=2)
    >>> net.copies, net.shape
    (400, (3, 2402, 1202))
    >>> net.residual(net.to_input([False, False, False]))   # X=(F,F,F) leaves clause 1 unsatisfied
    1.0
    """
    f = as_formula(cnf)
    size = network_size(f, B=B, copies=copies, form=form, bias=bias, drop_unused=drop_unused, max_bytes=max_bytes)
    B, c = size["B"], size["copies"]
    used = used_variables(f)
    variables = used if drop_unused else np.arange(1, f.nv + 1, dtype=np.int64)
    b_clause = clause_biases(f, bias)
    C = _clause_block(f, variables)
    n, m = len(variables), f.m
    if form == "compact":
        W1 = np.zeros((m + 2 * n, n))
        W1[:m] = C.toarray()
        W1[m:m + n] = np.eye(n)
        W1[m + n:] = -np.eye(n)
        b = np.concatenate([b_clause, np.zeros(2 * n)])
        s = math.sqrt(c)
        W2 = np.zeros((m + n, m + 2 * n))
        W2[:m, :m] = np.eye(m)
        W2[m + np.arange(n), m + np.arange(n)] = s
        W2[m + np.arange(n), m + n + np.arange(n)] = s
        target = np.concatenate([np.zeros(m), np.full(n, s)])
        return ReductionNetwork(W1, b, W2, target, f, B, c, form, bias, C, variables, int(used.size))

    cn = c * n
    m1, m2 = m + 2 * cn, m + cn
    nnz1 = C.nnz + 2 * cn
    it = _idx_dtype(max(nnz1, m1, n))
    var_of_copy = np.repeat(np.arange(n, dtype=it), c)  # row m + i*c + k -> column i
    data1 = np.concatenate([C.data, np.ones(cn), -np.ones(cn)])
    ind1 = np.concatenate([C.indices.astype(it), var_of_copy, var_of_copy])
    ptr1 = np.concatenate([C.indptr.astype(it), (C.nnz + np.arange(1, 2 * cn + 1, dtype=it)).astype(it)])
    W1 = sp.csr_matrix((data1, ind1, ptr1), shape=(m1, n))
    b = np.concatenate([b_clause, np.zeros(2 * cn)])
    nnz2 = m + 2 * cn
    it2 = _idx_dtype(max(nnz2, m1))
    ind2 = np.empty(nnz2, dtype=it2)
    ind2[:m] = np.arange(m, dtype=it2)
    ind2[m::2] = m + np.arange(cn, dtype=it2)        # σ(x_i) copy
    ind2[m + 1::2] = m + cn + np.arange(cn, dtype=it2)  # σ(−x_i) copy
    ptr2 = np.concatenate([np.arange(m + 1, dtype=it2), (m + 2 * np.arange(1, cn + 1, dtype=it2)).astype(it2)])
    W2 = sp.csr_matrix((np.ones(nnz2), ind2, ptr2), shape=(m2, m1))
    target = np.concatenate([np.zeros(m), np.ones(cn)])
    return ReductionNetwork(W1, b, W2, target, f, B, c, form, bias, C, variables, int(used.size))
