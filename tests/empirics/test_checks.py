"""empirics.checks: one-sided tests with stated error rates, t-intervals, the Fig. 3 statistics."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from empirics.checks import compare_all, compare_at_least, fit_log_linear, mean_ci, z_critical


@pytest.mark.parametrize("alpha, m, want", [(0.05, 1, 1.6448536269514722), (1e-3, 1, 3.090232306167813),
                                            (1e-3, 10, 3.719016485455709), (0.05, 4, 2.241402727604947)])
def test_z_critical_is_the_bonferroni_normal_quantile(alpha, m, want):
    assert z_critical(alpha, m) == pytest.approx(want, rel=1e-12)  # Φ⁻¹(1 − α/m), scipy reference values


@pytest.mark.parametrize("value, se, status", [(0.51, 0.01, "consistent"), (0.49, 0.01, "inconclusive"),
                                               (0.4695, 0.01, "inconclusive"), (0.4690, 0.0099, "violated"),
                                               (0.40, 0.01, "violated"), (0.4999, 0.0, "violated")])
def test_status_follows_the_one_sided_test(value, se, status):
    c = compare_at_least(value, 0.5, value_stderr=se, alpha=1e-3)  # z_crit = 3.09
    assert c.status == status
    assert (c.margin >= 0) == c.passed  # margin = difference + z_crit·s.e.


def test_combined_and_paired_standard_errors():
    c = compare_at_least(1.0, 1.1, value_stderr=0.03, bound_stderr=0.04)
    assert c.stderr == pytest.approx(0.05) and c.z == pytest.approx(-2.0)
    p = compare_at_least(1.0, 1.1, value_stderr=0.03, bound_stderr=0.04, paired_stderr=0.01)
    assert p.stderr == pytest.approx(0.01) and p.status == "violated" and p.paired


def test_compare_all_uses_the_family_size():
    pairs = [dict(value=0.0, bound=3.3, value_stderr=1.0)] * 10  # z = −3.3: significant alone, not over 10
    assert compare_at_least(0.0, 3.3, value_stderr=1.0).status == "violated"
    assert {c.status for c in compare_all(pairs)} == {"inconclusive"} and compare_all(pairs)[0].m == 10


def test_nan_and_infinite_bounds():
    assert compare_at_least(float("nan"), 1.0, value_stderr=0.1).status == "inconclusive"
    assert compare_at_least(1.0, math.inf, value_stderr=0.1).status == "violated"


@given(st.floats(-5, 5), st.floats(0.01, 2))
def test_violated_exactly_beyond_the_critical_value(bound, se):
    """'violated' iff z < −z_crit, so under H0 (normal estimate, true value = bound) the false-alarm
    rate is α: just beyond the critical value it is violated, just inside it is not."""
    z = z_critical(0.01)
    assert compare_at_least(bound - (z + 1e-6) * se, bound, value_stderr=se, alpha=0.01).status == "violated"
    assert compare_at_least(bound - (z - 1e-6) * se, bound, value_stderr=se, alpha=0.01).status == "inconclusive"


def test_mean_ci_matches_the_t_interval_and_clips():
    v = [0.2, 0.4, 0.9]
    r = mean_ci(v)
    half = stats.t.ppf(0.975, 2) * np.std(v, ddof=1) / math.sqrt(3)
    assert r["mean"] == pytest.approx(0.5) and r["half_width"] == pytest.approx(half)
    c = mean_ci(v, lo=0.0, hi=1.0)
    assert c["ci_low"] == 0.0 and c["ci_high"] == 1.0  # the unclipped interval is wider than [0, 1]
    assert math.isnan(mean_ci([0.5])["half_width"])


def test_fit_log_linear_recovers_a_known_slope_and_its_interval():
    h = np.linspace(0, 4, 9)
    noise = np.array([0.01, -0.02, 0.015, 0.0, -0.01, 0.02, -0.015, 0.005, 0.0])
    r = fit_log_linear(h, np.exp(0.25 * h - 1 + noise))
    res = stats.linregress(h, 0.25 * h - 1 + noise)
    assert r["slope"] == pytest.approx(res.slope) and r["slope_ci"][0] < 0.25 < r["slope_ci"][1]
