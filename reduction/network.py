r"""The two-layer ReLU network h_φ of the MixCon appendix reduction (proof of Thm B.10).

Given a CNF φ on n variables with m clauses, h_φ(x) = W₂ σ(W₁x + b), x ∈ [−1, 1]ⁿ, with target
z = (0,…,0, 1,…,1):

* **clause neurons** (rows 1..m of W₁): W₁[j, i] = +1 if X_i ∈ φ_j, −1 if ¬X_i ∈ φ_j (summed over
  repeated occurrences, so a tautological pair cancels), bias b_j; copied unchanged to output j.
* **copy neurons**: for every variable i and copy k = 1..c, two first-layer neurons σ(x_i) and
  σ(−x_i) whose sum |x_i| is output m + (i−1)c + k, with target 1.

Convention (as printed): x_i = +1 ⇔ X_i **false**, x_i = −1 ⇔ X_i true.  A false literal then
contributes +1 to its clause neuron, a true one −1, so on {±1}ⁿ a clause with k literal
occurrences has pre-activation (#false − #true) + b.

.. math::  \|h_φ(x) − z\|^2 = \sum_{j=1}^m σ(w_j·x + b_j)^2 + c \sum_{i=1}^n (|x_i| − 1)^2 .

**Erratum 1 (bias).** The paper sets b_j = −2 for every clause.  The clause neuron equals
1 on an all-false clause and 0 otherwise (on {±1}ⁿ) iff b_j = −(k−1): with −2 an unsatisfied
2-literal clause outputs σ(0) = 0 and an unsatisfied 4-literal one outputs σ(2) = 2.  The default
here is ``bias="exact"`` (−(k−1)); ``bias="paper"`` reproduces the printed −2.

**Erratum 3 (constants).** The paper uses c = 100B² copies with B ≥ 15000, i.e. 2.25·10¹⁰ copies
per variable: never buildable.  ``copies`` is a parameter (default 100B²), and the *compact* form
(one copy neuron pair whose output is weighted √c, target √c) has exactly the residual above, since
(√c|x_i| − √c)² = c(|x_i| − 1)².

Forms: ``"faithful"`` stores W₁ (m + 2cn) × n and W₂ (m + cn) × (m + 2cn) as ``scipy.sparse``
CSR matrices built directly from index arrays; ``"compact"`` stores dense numpy arrays with
W₁ (m + 2n) × n and W₂ (m + n) × (m + 2n).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .formulas import Formula, as_assignment, as_formula, occurrences

__all__ = ["ReductionNetwork", "build_network", "clause_matrix", "clause_biases"]


def clause_matrix(cnf) -> sp.csr_matrix:
    """The m × n clause block of W₁: +1 per positive, −1 per negative occurrence (summed).

    >>> clause_matrix([[1, -2, 3], [2, -2, 1]]).toarray().astype(int).tolist()
    [[1, -1, 1], [1, 0, 0]]
    """
    f = as_formula(cnf)
    rows, cols, vals = [], [], []
    for j, c in enumerate(f.clauses):
        for lit in c:
            rows.append(j)
            cols.append(abs(lit) - 1)
            vals.append(1.0 if lit > 0 else -1.0)
    C = sp.csr_matrix((np.asarray(vals, dtype=np.float64), (np.asarray(rows, dtype=np.int64),
                       np.asarray(cols, dtype=np.int64))), shape=(f.m, f.nv))
    C.sum_duplicates()
    C.eliminate_zeros()
    return C


def clause_biases(cnf, bias: str = "exact") -> np.ndarray:
    """Clause biases: −(k−1) for a clause with k literal occurrences (``"exact"``) or −2 (``"paper"``).

    >>> clause_biases([[1], [1, 2], [1, 2, 3], [1, 2, 3, 4]]).tolist()
    [-0.0, -1.0, -2.0, -3.0]
    >>> clause_biases([[1], [1, 2]], bias="paper").tolist()
    [-2.0, -2.0]
    """
    f = as_formula(cnf)
    if bias == "exact":
        return -np.array([len(c) - 1 for c in f.clauses], dtype=np.float64)
    if bias == "paper":
        return np.full(f.m, -2.0)
    raise ValueError(f"bias: expected 'exact' (-(k-1)) or 'paper' (the printed -2), got {bias!r}")


def _idx_dtype(size: int):
    return np.int32 if size < 2**31 - 1 else np.int64


@dataclass
class ReductionNetwork:
    """h_φ(x) = W₂ σ(W₁x + b) with target z; see the module docstring for the construction.

    Attributes
    ----------
    W1, b, W2, target : weights (sparse CSR in the faithful form, dense in the compact form)
    formula : the CNF, n = formula.nv variables, m clauses
    B : the occurrence bound the network was built for; copies : c
    form : "faithful" | "compact"; bias : "exact" | "paper"
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

    @property
    def n(self) -> int:
        return self.formula.nv

    @property
    def m(self) -> int:
        return self.formula.m

    @property
    def n_used(self) -> int:
        """Number of variables that occur in at least one clause."""
        return int(np.count_nonzero(occurrences(self.formula)))

    @property
    def shape(self) -> tuple[int, int, int]:
        """(d, m₁, m₂): input, hidden and output widths."""
        return self.n, self.W1.shape[0], self.W2.shape[0]

    # ------------------------------------------------------------------ evaluation
    def _check_x(self, x, box: bool = False) -> np.ndarray:
        try:
            X = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"x: expected a real array of shape (n,) or (k, n) with n = {self.n}") from None
        if X.ndim not in (1, 2) or X.shape[-1] != self.n:
            raise ValueError(f"x: expected shape ({self.n},) or (k, {self.n}), got {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError("x: expected finite values, got nan/inf")
        if box and (np.any(X < -1.0) or np.any(X > 1.0)):
            raise ValueError(f"x: expected values in [-1, 1] (the domain of Eq. (4)), got range "
                             f"[{X.min():.6g}, {X.max():.6g}]")
        return X

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
        """‖h_φ(x) − z‖² (float, or one per row of a (k, n) batch)."""
        out = self.forward(x) - self.target
        r = np.einsum("...i,...i->...", out, out)
        return float(r) if np.ndim(r) == 0 else r

    def to_input(self, assignment) -> np.ndarray:
        """x ∈ {±1}ⁿ of an assignment: x_i = +1 ⇔ X_i false, −1 ⇔ X_i true (the paper's convention)."""
        a = as_assignment(assignment, self.n)
        return np.where(a, -1.0, 1.0)

    def round(self, x) -> np.ndarray:
        """Assignment of the rounding x̄ = argmin_{t∈{±1}} |t − x_i|: X_i true ⇔ x_i < 0 (ties → false)."""
        X = self._check_x(x)
        return X < 0

    # ------------------------------------------------------------------ torch
    def to_torch(self, device="auto", dtype=None, sparse: bool | None = None):
        """The network as a torch module (torch imported here, lazily).

        Dense ``nn.Sequential(Linear, ReLU, Linear)`` when it is small (or ``sparse=False``),
        otherwise a module holding sparse W₁, W₂.  ``device="auto"`` picks CUDA when available.
        The target is ``module.target`` (a buffer).
        """
        import torch

        from ._torch import resolve_device, two_layer_module

        dev = resolve_device(device)
        dt = torch.float64 if dtype is None else dtype
        if sparse is None:
            sparse = self.W1.shape[0] * self.n + self.W2.shape[0] * self.W2.shape[1] > 2e7
        return two_layer_module(self.W1, self.b, self.W2, self.target, dev, dt, sparse)

    def to_dict(self) -> dict:
        d, m1, m2 = self.shape
        return {"n": self.n, "m": self.m, "B": self.B, "copies": self.copies, "form": self.form,
                "bias": self.bias, "d": d, "m1": m1, "m2": m2}


def build_network(cnf, B: int | None = None, copies: int | None = None, form: str = "faithful",
                  bias: str = "exact") -> ReductionNetwork:
    """Build h_φ and its target for a CNF (MixCon appendix, proof of Thm B.10).

    Parameters
    ----------
    cnf : Formula, pysat CNF or list of clauses
    B : int, optional
        Occurrence bound; defaults to the largest number of occurrences of a variable.  A formula
        with a variable occurring more than ``B`` times is a ``ValueError``.
    copies : int, optional
        Copies c of each |x_i| in the output layer; default 100B² (as printed).
    form : "faithful" (explicit copies, scipy.sparse) or "compact" (one copy weighted √c).
    bias : "exact" (−(k−1) per k-literal clause) or "paper" (the printed −2).

    Examples
    --------
    >>> net = build_network([[1, 2, 3], [-1, -2, 3]], B=2)
    >>> net.copies, net.shape
    (400, (3, 2402, 1202))
    >>> net.residual(net.to_input([False, False, False]))   # X=(F,F,F) leaves clause 1 unsatisfied
    1.0
    """
    f = as_formula(cnf)
    occ = occurrences(f)
    max_occ = int(occ.max()) if occ.size else 0
    if B is None:
        B = max(max_occ, 1)
    if isinstance(B, bool) or not isinstance(B, (int, np.integer)) or B < 1:
        raise ValueError(f"B: expected an integer >= 1, got {B!r}")
    B = int(B)
    if max_occ > B:
        i = int(np.argmax(occ)) + 1
        raise ValueError(f"B: the formula violates the stated B = {B}: variable {i} occurs {max_occ} times")
    if copies is None:
        copies = 100 * B * B
    if isinstance(copies, bool) or not isinstance(copies, (int, np.integer)) or copies < 1:
        raise ValueError(f"copies: expected an integer >= 1, got {copies!r}")
    copies = int(copies)
    if form not in ("faithful", "compact"):
        raise ValueError(f"form: expected 'faithful' or 'compact', got {form!r}")
    b_clause = clause_biases(f, bias)
    C = clause_matrix(f)
    n, m, c = f.nv, f.m, copies
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
        return ReductionNetwork(W1, b, W2, target, f, B, c, form, bias, C)

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
    return ReductionNetwork(W1, b, W2, target, f, B, c, form, bias, C)
