"""Exact arithmetic of the soundness proof of Thm B.10 (MixCon appendix), erratum 2."""

import numpy as np
import pytest
import sympy as sp

from reduction.symbolic import (
    B,
    binary_margin,
    lipschitz_constant_check,
    margin_threshold,
    paper_margin,
    rounding_gain_max,
    sharp_margin,
    symbolic_checks,
)


def test_rounding_gain_is_exactly_one_hundredth():
    assert rounding_gain_max() == sp.Rational(1, 100)


@pytest.mark.parametrize("b", [1, 2, 7, 15000])
def test_rounding_gain_is_independent_of_B(b):
    assert rounding_gain_max(sp.Integer(b), sp.Integer(100 * b * b)) == sp.Rational(1, 100)


def test_thresholds():
    """Eq. (5) needs B ≥ 14400 (paper: 15000, consistent); the full printed chain needs B > 183673.47
    (paper: 10⁷, consistent but loose); the corrected rounding bound brings it down to 14400.12."""
    _, bb = margin_threshold("binary")
    _, bp = margin_threshold("paper")
    _, bs = margin_threshold("sharp")
    assert bb == pytest.approx(14400.0, rel=1e-9)
    assert bp == pytest.approx(183673.469388, rel=1e-9)
    assert bs == pytest.approx(14400.12, rel=1e-6)
    assert bb < bs < 15000 < bp < 1e7


@pytest.mark.parametrize("kind,expr", [("paper", paper_margin), ("sharp", sharp_margin), ("binary", binary_margin)])
def test_margin_changes_sign_at_threshold(kind, expr):
    thr = margin_threshold(kind)[1]
    assert float(expr().subs(B, thr * 0.99)) < 0 < float(expr().subs(B, thr * 1.01))


def test_paper_margin_is_exact_form():
    # 1/8 − 1/12 − 3/100 = 7/600 exactly
    assert sp.simplify(paper_margin() + 5 / sp.sqrt(B) + 1 / (3600 * B**2)) == sp.Rational(7, 600)


def test_lipschitz_arithmetic():
    assert lipschitz_constant_check()
    b = np.arange(1, 50, dtype=float)
    assert np.all(np.sqrt(200 * b * b + 3 * b) <= 15 * b)  # numeric spot check of the sympy proof


def test_symbolic_checks_all_pass():
    rows = symbolic_checks()
    assert len(rows) == 5 and all(r["passed"] for r in rows)


def test_margin_threshold_bad_kind():
    with pytest.raises(ValueError, match="kind"):
        margin_threshold("nope")
