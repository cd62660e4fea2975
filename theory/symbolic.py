r"""Symbolic (sympy) checks of the proof of Theorem 1 and of the Theorem 2 identity.

The proof of CEM Thm 1 (supp. S.1, Eqs. 9–13) is a chain of three steps; each function below
verifies one of them with sympy and returns a :class:`Verdict` carrying the expressions it
simplified, so a reader can see *what* was checked:

1. :func:`check_max_entropy_step` (Eq. 9): a density with covariance Σ has entropy at most
   ½ log((2πe)^d |Σ|) -- because the cross-entropy of any such density against the Gaussian with
   the same covariance equals the Gaussian's entropy, so h(q) = h(φ) − KL(q‖φ).
2. :func:`check_eigenvalue_am_gm` (Eqs. 10–11; the paper calls it Jensen): det = ∏λᵢ ≤ (Tr/d)^d,
   from the concavity of log; equality iff all λᵢ are equal.
3. :func:`check_jensen_over_z` (Eqs. 12–13): E_z log T(z) ≤ log E_z T(z) (concavity of log), and
   E_z Tr Cov(x|z) = d·ξ (Prop. 1).
4. :func:`check_equality_case`: x ~ N(0, I_d), z = x + N(0, s²I): ξ = s²/(1+s²) equals the bound for
   every d and s (0.2 at s² = 1/4).
5. :func:`check_thm2_is_huber`: Theorem 2's sum equals the Huber upper bound on H(z) minus H(ε).

:func:`check_all` runs them all. Imported on demand (``theory.symbolic``), so ``import theory``
does not pay for sympy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import sympy as sp

__all__ = [
    "Verdict",
    "check_max_entropy_step",
    "check_eigenvalue_am_gm",
    "check_jensen_over_z",
    "check_equality_case",
    "check_thm2_is_huber",
    "check_all",
]


@dataclass(frozen=True)
class Verdict:
    """Outcome of one symbolic check: ``holds`` and the expressions that establish it."""

    name: str
    holds: bool
    statement: str
    expressions: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _is_zero(expr) -> bool:
    return sp.simplify(expr) == 0


def check_max_entropy_step() -> Verdict:
    r"""Eq. 9: h(q) ≤ ½ log((2πe)^d|Σ|) for any density q with covariance Σ.

    Checks (a) the 1-D Gaussian entropy integral, (b) the d-dimensional cross-entropy identity
    :math:`E_q[-\log\varphi_\Sigma(x)] = \tfrac12\log((2\pi)^d|\Sigma|) + \tfrac12\operatorname{Tr}(\Sigma^{-1}\Sigma)
    = \tfrac12\log((2\pi e)^d|\Sigma|)` for a generic symmetric 2×2 Σ, which depends on q only
    through its covariance, hence h(q) = h(φ) − KL(q‖φ) ≤ h(φ).

    Returns
    -------
    Verdict

    Examples
    --------
    >>> check_max_entropy_step().holds
    True
    """
    t = sp.Symbol("t", real=True)
    sigma = sp.Symbol("sigma", positive=True)
    # x = μ + σt with t ~ N(0, 1):  −log φ(x) = ½ log(2πσ²) + t²/2
    std = sp.exp(-t ** 2 / 2) / sp.sqrt(2 * sp.pi)
    mass = sp.integrate(std, (t, -sp.oo, sp.oo))
    second = sp.integrate(t ** 2 * std, (t, -sp.oo, sp.oo))
    h1 = sp.log(2 * sp.pi * sigma ** 2) / 2 * mass + second / 2
    target1 = sp.log(2 * sp.pi * sp.E * sigma ** 2) / 2
    ok1 = bool(mass == 1) and _is_zero(sp.expand_log(h1 - target1, force=True))
    a, c = sp.symbols("a c", positive=True)
    b = sp.Symbol("b", real=True)
    S = sp.Matrix([[a, b], [b, c]])
    d = 2
    # E_q[(x-μ)ᵀΣ⁻¹(x-μ)] = Tr(Σ⁻¹ Cov_q) = Tr(Σ⁻¹Σ) when Cov_q = Σ
    cross = sp.log((2 * sp.pi) ** d * S.det()) / 2 + sp.trace(S.inv() * S) / 2
    target2 = sp.log((2 * sp.pi * sp.E) ** d * S.det()) / 2
    ok2 = _is_zero(sp.expand_log(cross - target2, force=True))
    return Verdict("max_entropy_step", bool(ok1 and ok2),
                   "h(q) = E_q[-log φ] - KL(q||φ) <= h(φ) = ½ log((2πe)^d |Σ|) (CEM supp. Eq. 9)",
                   {"gaussian_entropy_1d": str(sp.simplify(h1)),
                    "cross_entropy_2d": str(sp.simplify(cross)),
                    "target_2d": str(target2)})


def check_eigenvalue_am_gm() -> Verdict:
    r"""Eqs. 10–11: :math:`\prod\lambda_i \le (\sum\lambda_i/d)^d` for λᵢ > 0, equality iff all equal.

    Checks: log is concave (second derivative −1/λ² < 0, so Jensen gives the AM–GM inequality
    for every d); the d = 2 gap is the square (λ₁−λ₂)²/4; the d = 3 gap vanishes at λ₁=λ₂=λ₃.

    Returns
    -------
    Verdict

    Examples
    --------
    >>> check_eigenvalue_am_gm().holds
    True
    """
    lam = sp.Symbol("lambda", positive=True)
    second = sp.diff(sp.log(lam), lam, 2)
    concave = bool(sp.simplify(second + 1 / lam ** 2) == 0) and bool(sp.ask(sp.Q.negative(second), sp.Q.positive(lam)))
    l1, l2, l3, t = sp.symbols("lambda1 lambda2 lambda3 t", positive=True)
    gap2 = ((l1 + l2) / 2) ** 2 - l1 * l2
    ok2 = _is_zero(gap2 - (l1 - l2) ** 2 / 4)
    gap3 = ((l1 + l2 + l3) / 3) ** 3 - l1 * l2 * l3
    ok3 = _is_zero(gap3.subs({l1: t, l2: t, l3: t}))
    return Verdict("eigenvalue_am_gm", bool(concave and ok2 and ok3),
                   "det Cov = prod λ_i <= (Tr Cov / d)^d; equality iff isotropic (CEM supp. Eqs. 10-11)",
                   {"d2_log_dlambda2": str(second), "gap_d2": str(sp.factor(gap2)),
                    "gap_d3_at_equal": str(sp.simplify(gap3.subs({l1: t, l2: t, l3: t})))})


def check_jensen_over_z() -> Verdict:
    r"""Eqs. 12–13: :math:`E_z[\tfrac d2\log(2\pi e\,T(z)/d)] \le \tfrac d2\log(2\pi e\,E_z T(z)/d)`.

    Checks the two-point instance (½ log a + ½ log b ≤ log((a+b)/2) ⇔ ab ≤ ((a+b)/2)², gap a
    square) and that exponentiating Eq. 12 with E_z Tr Cov(x|z) = d·ξ gives Thm 1.

    Returns
    -------
    Verdict

    Examples
    --------
    >>> check_jensen_over_z().holds
    True
    """
    a, b = sp.symbols("a b", positive=True)
    gap = ((a + b) / 2) ** 2 - a * b
    ok1 = _is_zero(gap - (a - b) ** 2 / 4)
    d, xi, H = sp.symbols("d xi H", positive=True)
    # Eq. 12-13: H <= d/2 log(2πe ξ)  <=>  ξ >= exp(2H/d)/(2πe)
    xi_star = sp.exp(2 * H / d) / (2 * sp.pi * sp.E)
    ok2 = _is_zero(sp.expand_log(d / 2 * sp.log(2 * sp.pi * sp.E * xi_star), force=True) - H)
    return Verdict("jensen_over_z", bool(ok1 and ok2),
                   "E_z log Tr Cov(x|z) <= log E_z Tr Cov(x|z) = log(d ξ); solving for ξ gives Thm 1",
                   {"two_point_gap": str(sp.factor(gap)), "bound_at_equality": str(xi_star)})


def check_equality_case(noise_var=sp.Rational(1, 4)) -> Verdict:
    r"""x ~ N(0, I_d), z = x + N(0, s²I): ξ = s²/(1+s²) equals Thm 1's bound for all d, s.

    Parameters
    ----------
    noise_var : sympy number
        The value s² at which the closed form is also evaluated (reported).

    Returns
    -------
    Verdict
        ``holds`` and the sympy expressions compared.

    Examples
    --------
    >>> v = check_equality_case()
    >>> v.holds, v.expressions["mmse_per_dim_at_noise_var"]
    (True, '1/5')
    """
    d = sp.Symbol("d", positive=True, integer=True)
    s2 = sp.Symbol("s2", positive=True)
    post_var = sp.simplify(1 / (1 + 1 / s2))                    # (1 + 1/s²)⁻¹
    H = d / 2 * sp.log(2 * sp.pi * sp.E * post_var)             # ½ log((2πe)^d det P), P = v·I
    bound = sp.exp(2 * H / d) / (2 * sp.pi * sp.E)
    diff = sp.simplify(sp.expand_log(bound, force=True) - post_var)
    at = sp.nsimplify(post_var.subs(s2, noise_var))
    return Verdict("equality_case", bool(diff == 0),
                   "x ~ N(0, I), z = x + N(0, s² I): MMSE/d = s²/(1+s²) = exp(2H(x|z)/d)/(2πe)",
                   {"mmse_per_dim": str(post_var), "bound": str(sp.simplify(bound)),
                    "difference": str(diff), "mmse_per_dim_at_noise_var": str(at)})


def check_thm2_is_huber(n_components: int = 3) -> Verdict:
    r"""Theorem 2's sum = Huber's upper bound on H(z) − H(ε) (uses Σπᵢ = 1).

    With ℓᵢ = log|Σᵢ+Σp|, ℓp = log|Σp| and k = dim z:
    :math:`\sum\pi_i(-\log\pi_i + \tfrac12(k\log 2\pi e + \ell_i)) - \tfrac12(k\log2\pi e + \ell_p)
    = \sum\pi_i(-\log\pi_i + \tfrac12(\ell_i - \ell_p))`.

    Parameters
    ----------
    n_components : int
        Number of mixture components k of the symbolic identity.

    Returns
    -------
    Verdict
        ``holds`` and the sympy expressions compared.

    Examples
    --------
    >>> check_thm2_is_huber().holds
    True
    """
    K = int(n_components)
    pis = list(sp.symbols(f"pi1:{K}", positive=True))
    pis.append(1 - sum(pis))
    ells = sp.symbols(f"l1:{K + 1}", real=True)
    lp, k = sp.symbols("l_p k", real=True)
    c = k * sp.log(2 * sp.pi * sp.E)
    huber = sum(p * (-sp.log(p) + (c + l) / 2) for p, l in zip(pis, ells))
    h_eps = (c + lp) / 2
    thm2 = sum(p * (-sp.log(p) + (l - lp) / 2) for p, l in zip(pis, ells))
    diff = sp.simplify(sp.expand(huber - h_eps - thm2))
    return Verdict("thm2_is_huber", bool(diff == 0),
                   "Thm 2's sum (CEM Eq. 3/16) = Huber upper bound on H(z) (Eq. 15) minus H(ε) (Eq. 14)",
                   {"huber_minus_h_eps_minus_thm2": str(diff)})


def check_all() -> list[Verdict]:
    """Run every symbolic check; returns a list of :class:`Verdict`.

    Returns
    -------
    list of Verdict
    """
    return [check_max_entropy_step(), check_eigenvalue_am_gm(), check_jensen_over_z(),
            check_equality_case(), check_thm2_is_huber()]
