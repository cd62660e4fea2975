r"""Exact (sympy) arithmetic of the soundness proof of Thm B.10 (MixCon appendix).

* :func:`rounding_gain_max` — the step "2BΣΔ_i − 100B²ΣΔ_i² ≤ n/100": per variable
  max_{Δ∈[0,1]} 2BΔ − 100B²Δ² = 1/100 exactly (at Δ = 1/(100B)); in general max 2aΔ − cΔ² = a²/c.
* :func:`paper_margin` — the per-clause slack of the printed argument:
  (1/8 − 5/√B) − (1/12 + 1/(3600B²)) − 3/100, i.e. the allowed unsatisfied fraction
  1/8 − 5/√B (Thm B.6/B.10) minus the binary-case residual bound of Eq. (5) (which uses n ≤ 3m)
  minus the rounding loss 3/100 of Eq. (6).  It is positive only for B > B* ≈ 1.84·10⁵ (the proof
  says B ≥ 10⁷, which suffices; it also prints 1/(36B²) and 1/(5√B) in place of 1/(3600B²), 5/√B).
* :func:`sharp_margin` — the same with the corrected rounding inequality
  ‖h(x) − z‖² ≥ |U|(1 − 3/(100B)): 1/8 − 5/√B − (1/12 + 1/(3600B²))/(1 − 3/(100B)), positive for
  B > B* ≈ 1.44·10⁴ — the rounding loss then costs almost nothing.  Both need n_used ≤ 3m in place
  of the printed n ≤ 3m (false when a variable occurs in no clause; drop unused variables).
* :func:`margin_threshold` — B* for either margin, as an exact algebraic number and a float.
* :func:`lipschitz_constant_check` — √(200B² + 3B) ≤ 15B for all B ≥ 1 (⇔ 22B² − 3B ≥ 0).
"""

from __future__ import annotations

import sympy as sp

__all__ = [
    "rounding_gain_max",
    "paper_margin",
    "sharp_margin",
    "binary_margin",
    "margin_threshold",
    "lipschitz_constant_check",
    "symbolic_checks",
]

B = sp.Symbol("B", positive=True)


def rounding_gain_max(a=None, c=None):
    """max over Δ ≥ 0 of 2aΔ − cΔ² (default a = B, c = 100B²), exactly.

    Parameters
    ----------
    a, c : sympy expression, optional
        Coefficients (default a = B, c = 100B² with B a positive symbol).

    Returns
    -------
    sympy expression
        a²/c.

    Examples
    --------
    >>> rounding_gain_max()
    1/100
    >>> a, c = sp.symbols("a c", positive=True)
    >>> rounding_gain_max(a, c)
    a**2/c
    """
    a = B if a is None else a
    c = 100 * B**2 if c is None else c
    D = sp.Symbol("Delta", nonnegative=True)
    g = 2 * a * D - c * D**2
    (crit,) = sp.solve(sp.diff(g, D), D)  # g is a concave parabola: one critical point, the max
    return sp.simplify(g.subs(D, crit))


def binary_margin():
    """Slack of Eq. (5) for binary x: (1/8 − 5/√B) − (1/12 + 1/(3600B²)) (printed: needs B ≥ 15000).

    Returns
    -------
    sympy expression
        In the positive symbol B.
    """
    return sp.Rational(1, 8) - 5 / sp.sqrt(B) - sp.Rational(1, 12) - 1 / (3600 * B**2)


def paper_margin():
    """Printed argument's per-clause slack: (1/8 − 5/√B) − (1/12 + 1/(3600B²)) − 3/100.

    Returns
    -------
    sympy expression
        In the positive symbol B.
    """
    return binary_margin() - sp.Rational(3, 100)


def sharp_margin():
    """Slack with the corrected rounding bound: 1/8 − 5/√B − (1/12 + 1/(3600B²))/(1 − 3/(100B)).

    Returns
    -------
    sympy expression
        In the positive symbol B.
    """
    return sp.Rational(1, 8) - 5 / sp.sqrt(B) - (sp.Rational(1, 12) + 1 / (3600 * B**2)) / (1 - sp.Rational(3, 100) / B)


def margin_threshold(kind: str = "paper") -> tuple[sp.Expr, float]:
    """The B* > 1 above which a margin is positive: (exact root, float).

    Substituting t = √B turns each margin into a rational function of t; B* is the square of its
    largest real root (the margin is increasing beyond it).

    Parameters
    ----------
    kind : {'paper', 'sharp', 'binary'}
        Which margin (:func:`paper_margin`, :func:`sharp_margin`, :func:`binary_margin`).

    Returns
    -------
    tuple of (sympy expression, float)

    Examples
    --------
    >>> round(margin_threshold("paper")[1])
    183673
    >>> 14400 < margin_threshold("sharp")[1] < 14500
    True
    """
    exprs = {"paper": paper_margin, "sharp": sharp_margin, "binary": binary_margin}
    if kind not in exprs:
        raise ValueError(f"kind: expected one of {sorted(exprs)}, got {kind!r}")
    t = sp.Symbol("t", positive=True)
    e = sp.together(exprs[kind]().subs(B, t**2))
    num, _ = sp.fraction(e)
    roots = [r for r in sp.Poly(sp.expand(num), t).real_roots() if r > 1]
    r = max(roots, key=lambda v: float(v))
    Bstar = r**2
    val = float(sp.N(Bstar, 30))
    # sanity: the margin changes sign at B*
    f = sp.lambdify(B, exprs[kind](), "mpmath")
    if not (f(val * 0.999) < 0 < f(val * 1.001)):  # pragma: no cover
        raise RuntimeError(f"margin {kind} does not change sign at B* = {val}")
    return Bstar, val


def lipschitz_constant_check() -> bool:
    """√(200B² + 3B) ≤ 15B for every B ≥ 1, proved by sympy: 225B² − (200B² + 3B) = 22B² − 3B ≥ 0.

    Returns
    -------
    bool
        Whether sympy proves the inequality.

    Examples
    --------
    >>> lipschitz_constant_check()
    True
    """
    diff = sp.expand((15 * B) ** 2 - (200 * B**2 + 3 * B))
    sol = sp.solve_univariate_inequality(diff >= 0, B, relational=False)
    return bool(sp.Interval(1, sp.oo).is_subset(sol))


def symbolic_checks() -> list[dict]:
    """All symbolic facts as rows (check, value, expected, passed) for the CLI report.

    Returns
    -------
    list of dict
        One ``{check, value, expected, passed}`` per fact.
    """
    g = rounding_gain_max()
    bp = margin_threshold("paper")[1]
    bs = margin_threshold("sharp")[1]
    bb = margin_threshold("binary")[1]
    return [
        {"check": "max_D 2B*D - 100B^2*D^2 = 1/100", "value": float(g), "expected": 0.01,
         "passed": g == sp.Rational(1, 100)},
        {"check": "binary case (Eq. 5) positive for B > B*; paper: B >= 15000", "value": bb,
         "expected": 15000.0, "passed": bb <= 15000},
        {"check": "paper margin positive for B > B*; paper: B >= 1e7", "value": bp, "expected": 1e7,
         "passed": bp <= 1e7},
        {"check": "sharp margin positive for B > B* (corrected rounding bound)", "value": bs,
         "expected": bp, "passed": bs < bp},
        {"check": "sqrt(200B^2+3B) <= 15B for all B >= 1", "value": 1.0, "expected": 1.0,
         "passed": lipschitz_constant_check()},
    ]
