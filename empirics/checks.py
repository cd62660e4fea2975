r"""Statistical checks shared by the tests, ``invlimits verify``, the benchmarks and users.

One place for "what must hold", as scikit-learn's estimator checks are: every comparison of a
measured number (a test-set mean, a Monte-Carlo estimate) with a bound is a one-sided test with
a stated error rate and the standard errors on both sides — never a bare ``<`` of means.
Imports numpy and scipy only.

* :func:`compare_at_least` — H₀: the true value is ≥ the bound.  With
  :math:`\Delta = \text{value} - \text{bound}` and its standard error
  :math:`s = \sqrt{s_v^2 + s_b^2}` (or the *paired* s.e. when both are means over the same
  inputs), :math:`z = \Delta / s`.  ``violated`` when :math:`z < -z_{crit}` (significant at
  family-wise level ``alpha`` over ``m`` comparisons, Bonferroni: :math:`z_{crit} =
  \Phi^{-1}(1 - \alpha/m)`), ``consistent`` when :math:`\Delta \ge 0`, ``inconclusive`` otherwise
  (below the bound, but not significantly).  ``margin = Δ + z_crit·s`` is ≥ 0 exactly when the
  status is not ``violated``.
* :func:`mean_ci` — mean and t-interval half-width over seeds, the interval clipped to a range
  (accuracies stay inside [0, 1]).
* :func:`fit_log_linear`, :func:`spearman` — the Fig. 3 statistics.
* :func:`chance_level`, :func:`passing_accuracy`, :func:`near_chance` — when a trained model counts
  as failed: its test accuracy within 2 points of chance, or not significantly above it (exact
  binomial test).

Examples
--------
>>> c = compare_at_least(0.49, 0.5, value_stderr=0.01, alpha=1e-3)
>>> c.status, round(c.z, 6)
('inconclusive', -1.0)
>>> compare_at_least(0.40, 0.5, value_stderr=0.01).status
'violated'
>>> compare_at_least(0.51, 0.5, value_stderr=0.01).status
'consistent'
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
from scipy import stats

__all__ = ["Comparison", "z_critical", "compare_at_least", "compare_all", "mean_ci", "fit_log_linear",
           "spearman", "DEFAULT_ALPHA", "chance_level", "passing_accuracy", "near_chance"]

#: family-wise error rate of the package's verdicts (a false "violated" at most 0.1 % of runs)
DEFAULT_ALPHA = 1e-3


def z_critical(alpha: float = DEFAULT_ALPHA, m: int = 1) -> float:
    r"""One-sided critical value at family-wise level ``alpha`` over ``m`` tests (Bonferroni).

    Parameters
    ----------
    alpha : float
        Family-wise level in (0, 1).
    m : int
        Number of tests in the family.

    Returns
    -------
    float
        :math:`\Phi^{-1}(1 - \alpha/m)`.

    Examples
    --------
    >>> round(z_critical(0.05), 4)
    1.6449
    >>> round(z_critical(1e-3, 10), 4)
    3.719
    """
    if not (0 < alpha < 1):
        raise ValueError(f"alpha: expected a level in (0, 1), got {alpha!r}")
    if not isinstance(m, int) or m < 1:
        raise ValueError(f"m: expected a positive number of comparisons, got {m!r}")
    return float(stats.norm.isf(alpha / m))


@dataclass(frozen=True)
class Comparison:
    """One measured value against one lower bound (per element unless said otherwise)."""

    value: float
    bound: float
    difference: float
    stderr: float
    z: float
    z_crit: float
    alpha: float
    m: int
    status: str  # violated | consistent | inconclusive
    value_stderr: float = 0.0
    bound_stderr: float = 0.0
    paired: bool = False

    @property
    def margin(self) -> float:
        """``difference + z_crit·stderr``: ≥ 0 ⇔ not violated."""
        return self.difference + self.z_crit * self.stderr

    @property
    def passed(self) -> bool:
        return self.status != "violated"

    def to_dict(self) -> dict:
        return {**asdict(self), "margin": self.margin}


def compare_at_least(value: float, bound: float, *, value_stderr: float = 0.0, bound_stderr: float = 0.0,
                     paired_stderr: float | None = None, alpha: float = DEFAULT_ALPHA, m: int = 1) -> Comparison:
    """Test H₀ "true value ≥ bound" (see the module docstring); returns a :class:`Comparison`.

    ``paired_stderr``: the standard error of the per-input difference when value and bound are
    means over the same inputs (it replaces the combined s.e.).  An infinite bound is violated
    by every finite value; a NaN anywhere gives ``inconclusive``.

    Parameters
    ----------
    value, bound : float
        The measured value and the bound it should be at least.
    value_stderr, bound_stderr : float
        Their standard errors (independent).
    paired_stderr : float, optional
        The standard error of the paired difference (replaces the two above).
    alpha : float
        Family-wise level.
    m : int
        Number of comparisons in the family.

    Returns
    -------
    Comparison
    """
    v, b = float(value), float(bound)
    sv, sb = abs(float(value_stderr)), abs(float(bound_stderr))
    zc = z_critical(alpha, m)
    s = abs(float(paired_stderr)) if paired_stderr is not None else math.hypot(sv, sb)
    diff = v - b
    if math.isnan(diff) or math.isnan(s):
        return Comparison(v, b, diff, s, math.nan, zc, alpha, m, "inconclusive", sv, sb, paired_stderr is not None)
    if diff >= 0:
        z = math.inf if s == 0 else diff / s
        status = "consistent"
    else:
        z = -math.inf if s == 0 else diff / s
        status = "violated" if z < -zc else "inconclusive"
    return Comparison(v, b, diff, s, z, zc, alpha, m, status, sv, sb, paired_stderr is not None)


def compare_all(pairs: Sequence[dict], *, alpha: float = DEFAULT_ALPHA) -> list[Comparison]:
    """Compare every ``dict(value=, bound=, value_stderr=, bound_stderr=, paired_stderr=)`` at
    family-wise level ``alpha`` over all of them (Bonferroni over ``len(pairs)``).

    Parameters
    ----------
    pairs : sequence of dict
        The comparisons (keyword arguments of :func:`compare_at_least`).
    alpha : float
        Family-wise level over all of them.

    Returns
    -------
    list of Comparison
    """
    m = max(1, len(pairs))
    return [compare_at_least(p["value"], p["bound"], value_stderr=p.get("value_stderr", 0.0),
                             bound_stderr=p.get("bound_stderr", 0.0), paired_stderr=p.get("paired_stderr"),
                             alpha=alpha, m=m) for p in pairs]


def mean_ci(values, *, level: float = 0.95, lo: float | None = None, hi: float | None = None) -> dict:
    """Mean over seeds with a two-sided t-interval; ``lo``/``hi`` clip the interval (e.g. [0, 1]).

    Returns ``{"mean", "half_width", "ci_low", "ci_high", "n"}``; with one value the half-width is
    NaN (no interval from one seed).

    Parameters
    ----------
    values : array_like, shape (n,)
        One value per seed.
    level : float
        Confidence level.
    lo, hi : float, optional
        The range the interval is clipped to.

    Returns
    -------
    dict
        ``mean``, ``half_width``, ``ci_low``, ``ci_high``, ``n``.

    Examples
    --------
    >>> r = mean_ci([0.9, 0.95, 1.0], lo=0.0, hi=1.0)
    >>> round(r["mean"], 6), r["ci_high"], r["n"]
    (0.95, 1.0, 3)
    """
    v = np.asarray(values, float)
    n = int(v.size)
    if n == 0:
        return {"mean": math.nan, "half_width": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": 0}
    mean = float(v.mean())
    if n < 2:
        half = math.nan
    else:
        half = float(stats.t.ppf(0.5 + level / 2, n - 1) * v.std(ddof=1) / math.sqrt(n))
    low, high = mean - half, mean + half
    if lo is not None and not math.isnan(low):
        low = max(low, lo)
    if hi is not None and not math.isnan(high):
        high = min(high, hi)
    return {"mean": mean, "half_width": half, "ci_low": low, "ci_high": high, "n": n}


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties).

    Parameters
    ----------
    a, b : array_like, shape (n,)
        Paired values.

    Returns
    -------
    float
    """
    return float(stats.spearmanr(a, b).statistic)


def fit_log_linear(h, mse, *, level: float = 0.95) -> dict:
    """OLS fit ``log mse = a·h + b``; ``a`` with a two-sided t confidence interval.

    Parameters
    ----------
    h, mse : array_like, shape (n,)
        Entropies and MSEs (> 0) of the models.
    level : float
        Confidence level of the slope's interval.

    Returns
    -------
    dict
        ``slope``, ``slope_stderr``, ``slope_ci`` [low, high], ``intercept``, ``r``, ``n``, ``level``.

    Examples
    --------
    >>> h = np.arange(5.0)
    >>> r = fit_log_linear(h, np.exp(0.5 * h + 1))
    >>> round(r["slope"], 12), round(r["intercept"], 12)
    (0.5, 1.0)
    """
    h = np.asarray(h, float)
    y = np.log(np.asarray(mse, float))
    if h.size < 3 or h.shape != y.shape:
        raise ValueError(f"h, mse: expected equal-length arrays of >= 3 points, got {h.size} and {y.size}")
    res = stats.linregress(h, y)
    t = stats.t.ppf(0.5 + level / 2, h.size - 2)
    return {"slope": float(res.slope), "intercept": float(res.intercept), "slope_stderr": float(res.stderr),
            "slope_ci": [float(res.slope - t * res.stderr), float(res.slope + t * res.stderr)],
            "r": float(res.rvalue), "n": int(h.size), "level": level}


# ----------------------------------------------------------------------------- failed models

def chance_level(y) -> float:
    """Accuracy of always predicting the most frequent class of labels ``y``.

    Parameters
    ----------
    y : array_like of int, shape (n,)
        Labels.

    Returns
    -------
    float
    """
    y = np.asarray(y)
    return float(np.bincount(y).max() / len(y))


def passing_accuracy(chance: float, n: int, *, margin: float = 0.02, alpha: float = 1e-3) -> float:
    """The smallest test accuracy (k/n) that is more than ``margin`` above ``chance`` *and*
    significantly above chance (one-sided exact binomial test at level ``alpha`` on ``n`` points).

    Ten balanced classes, 450 test points: Binomial(450, 0.1) has mean 45 and s.d. 6.4, so
    p < 0.001 needs about 3.1 s.d. above the mean — 67 correct answers (0.149).

    Parameters
    ----------
    chance : float
        The chance accuracy.
    n : int
        Test points.
    margin : float
        Points above chance required.
    alpha : float
        Level of the binomial test.

    Returns
    -------
    float

    Examples
    --------
    >>> round(passing_accuracy(0.1, 450) * 450)
    67
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive number of test points, got {n!r}")
    k = math.floor((chance + margin) * n + 1e-9) + 1
    while k <= n and stats.binom.sf(k - 1, n, chance) >= alpha:  # P(X >= k) under chance
        k += 1
    return k / n


def near_chance(accuracy: float, chance: float, n: int, *, margin: float = 0.02, alpha: float = 1e-3) -> str:
    """Why a model counts as failed (empty string if it does not): its test accuracy is below
    :func:`passing_accuracy` — within ``margin`` (2 points) of chance, or not significantly above it.

    Parameters
    ----------
    accuracy, chance : float
        Test accuracy and chance level.
    n : int
        Test points.
    margin, alpha : float
        As for :func:`passing_accuracy`.

    Returns
    -------
    str
        The reason, or ``""``.
    """
    if not math.isfinite(accuracy):
        return f"accuracy is {accuracy}"
    need = passing_accuracy(chance, n, margin=margin, alpha=alpha)
    if accuracy < need - 1e-12:
        return (f"test accuracy {accuracy:.4f} is near chance {chance:.4f} (needs >= {need:.4f}: more than "
                f"{margin:g} above chance and binomial p < {alpha:g} on {n} test points)")
    return ""
