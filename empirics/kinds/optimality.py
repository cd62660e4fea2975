"""Kind ``optimality``: one (attack, setting) cell of the attack-optimality benchmark.

How far is each attack from the physical limit?  Inputs from a known Gaussian mixture (d = 16)
through linear-Gaussian encoders (exact MMSE from the closed-form mixture posterior, Theorem 1's
bound beside it) and small nonlinear encoders with Gaussian noise (MMSE by self-normalised
importance sampling ± s.e.); the computation is :func:`empirics.attacks.optimality.run_optimality`,
which returns :class:`OptimalityResult` objects, and ``invlimits attack --benchmark optimality``
records them (one shared test set per setting, so this kind has no runner of its own).  Here: the
configuration, the result, the cells of the command, its checks (every attack against the Bayes
estimator on the same test pairs, the decoder within 5 % of it in the linear settings, Theorem 1's
bound below the MMSE — one family of one-sided tests at 0.1 %), its table and its figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Optional

import numpy as np

from ..checks import compare_all
from ..figures import new_figure, save_figure
from ..records import Config, Kind, Result
from ..results import Section

__all__ = ["OptimalityConfig", "OptimalityResult", "optimality_cells", "optimality_checks", "optimality_table",
           "plot_optimality", "TABLE_NOTE", "KIND"]


@dataclass(frozen=True, kw_only=True)
class OptimalityConfig(Config):
    """One (attack, setting) cell of the attack-optimality benchmark."""

    kind: ClassVar[str] = "optimality"
    attack: str
    setting: str  # "linear" | "nonlinear"
    sigma: float
    d: int = 16
    n_aux: int = 20000
    n_test: int = 2000
    epochs: Optional[int] = 20  # trained attacks only (None for the optimization attack)
    opt_steps: Optional[int] = None  # the optimization attack only
    pool: int = 50000
    n_entropy: int = 4000
    seed: int = 0

    def label(self) -> str:
        return f"{self.attack}, {self.setting} sigma={self.sigma:g}"


@dataclass(frozen=True, kw_only=True)
class OptimalityResult(Result):
    """One attack in one setting (per-dimension MSEs): the attack's MSE ± s.e., the (SNIS) MMSE ±
    s.e., their ratio, the Bayes estimator's error on the same test pairs and the s.e. of the paired
    difference, Theorem 1's bound ± s.e. (linear settings), the median effective sample size
    (nonlinear), the test size and the seconds the attack took."""

    attack: str
    setting: str
    mse: float
    mse_stderr: float
    mmse: float
    mmse_stderr: float
    ratio: float
    bayes_mse: float
    diff_stderr: float
    thm1_bound: Optional[float]
    ess_median: Optional[float]
    n_test: int
    seconds: float
    thm1_bound_stderr: Optional[float] = None  # delta method from the Monte-Carlo s.e. of H(x|z)


def optimality_cells(attacks, *, n_aux: int, n_test: int, epochs: int, opt_steps: int, seed: int,
                     sigmas_linear=(0.2, 0.5, 1.0), sigmas_nonlinear=(0.1, 0.3)) -> dict:
    """``{(attack, setting name): OptimalityConfig}``; only the settings an attack uses are part of
    its identity (no epochs for the optimization attack, no steps for the trained ones).

    Parameters
    ----------
    attacks : sequence of str
        Attack names.
    n_aux, n_test, epochs, opt_steps, seed : int
        Sizes, attack budgets and the master seed.
    sigmas_linear, sigmas_nonlinear : sequence of float
        Noise levels of the two kinds of setting.

    Returns
    -------
    dict
    """
    settings = [("linear", s) for s in sigmas_linear] + [("nonlinear", s) for s in sigmas_nonlinear]
    out = {}
    for kind, s in settings:
        for a in attacks:
            opt = a == "optimization"
            out[(a, f"{kind} sigma={s:g}")] = OptimalityConfig(
                attack=a, setting=kind, sigma=float(s), n_aux=n_aux, n_test=n_test, epochs=None if opt else epochs,
                opt_steps=opt_steps if opt else None, seed=seed)
    return out


DESCRIPTION = ("Per-dimension MSE of each attack on held-out samples beside the Bayes-optimal MMSE (linear: exact "
               "mixture posterior; nonlinear: self-normalised importance sampling, prior proposal) and Thm 1's bound "
               "exp(2H(x|z)/d)/(2πe). ratio = mse/mmse ≥ 1 up to Monte-Carlo error. bayes_mse = error of the exact "
               "posterior mean on the same test pairs; an attack *significantly* below it (paired one-sided test, "
               "family-wise α = 0.001) would be a bug.")
TABLE_NOTE = ("Per-dimension MSE ± s.e. over test inputs. Nonlinear MMSE: error of the SNIS posterior mean (≥ true "
              "MMSE in expectation; ess_median = median effective sample size). diff_stderr = s.e. of the paired "
              "per-input difference attack − Bayes; thm1_bound_stderr from the Monte-Carlo s.e. of H(x|z).")


def optimality_checks(sec: Section, results) -> None:
    """One family of one-sided tests: every attack ≥ the Bayes MSE (paired), the decoder ≤ 1.05 ×
    Bayes in the linear settings (paired), the MMSE ≥ Theorem 1's bound.

    Parameters
    ----------
    sec : Section
        Gets one check row per comparison.
    results : sequence of OptimalityResult
        The benchmark's results.

    Returns
    -------
    None
    """
    pairs, labels = [], []
    for r in results:
        pairs.append(dict(value=r.mse, bound=r.bayes_mse, paired_stderr=r.diff_stderr))
        labels.append(("attack MSE >= Bayes MSE (paired)", f"{r.attack}, {r.setting}", ""))
        if r.attack == "decoder" and r.setting.startswith("linear"):
            pairs.append(dict(value=1.05 * r.bayes_mse, bound=r.mse, paired_stderr=r.diff_stderr))
            labels.append(("1.05 × Bayes MSE >= decoder MSE (paired)", r.setting,
                           "the decoder is within 5 % of the optimal estimator"))
    seen = set()
    for r in results:
        if r.thm1_bound is not None and r.setting not in seen:
            seen.add(r.setting)
            pairs.append(dict(value=r.mmse, bound=r.thm1_bound, value_stderr=r.mmse_stderr,
                              bound_stderr=r.thm1_bound_stderr or 0.0))
            labels.append(("MMSE >= Thm 1 bound", r.setting, "H(x|z) by Monte Carlo"))
    for (check, inst, note), cmp in zip(labels, compare_all(pairs)):
        sec.add_comparison(check, inst, cmp, note=note)


def optimality_table(results) -> list[dict]:
    """The table rows (one per attack and setting).

    Parameters
    ----------
    results : sequence of OptimalityResult
        The benchmark's results.

    Returns
    -------
    list of dict
    """
    return [{"attack": r.attack, "setting": r.setting, "mse": r.mse, "mse_stderr": r.mse_stderr, "mmse": r.mmse,
             "mmse_stderr": r.mmse_stderr, "ratio": r.ratio, "bayes_mse": r.bayes_mse,
             "ratio_to_bayes": r.mse / r.bayes_mse, "diff_stderr": r.diff_stderr, "thm1_bound": r.thm1_bound,
             "thm1_bound_stderr": r.thm1_bound_stderr, "ess_median": r.ess_median} for r in results]


def plot_optimality(path, rows: list[dict]) -> str:
    """Grouped bars: attack MSE / exact MMSE per setting (1 = Bayes-optimal).

    Parameters
    ----------
    path : str or Path
        The figure file.
    rows : list of dict
        :func:`optimality_table`'s rows.

    Returns
    -------
    str
        ``path``.
    """
    path = Path(path)
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    width = 0.8 / len(attacks)
    fig = new_figure((7, 3.4))
    ax = fig.subplots()
    for j, a in enumerate(attacks):
        vals = [next((r["ratio"] for r in rows if r["attack"] == a and r["setting"] == s), np.nan) for s in settings]
        ax.bar(np.arange(len(settings)) + (j - (len(attacks) - 1) / 2) * width, vals, width, label=a)
    ax.axhline(1.0, color="k", lw=1, label="MMSE (Bayes-optimal)")
    ax.axhline(1.05, color="k", lw=1, ls=":", label="1.05 × MMSE")
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(settings)), settings, rotation=15, fontsize=8)
    ax.set_ylabel("attack MSE / MMSE")
    ax.set_title("Inversion attacks against the physical limit (synthetic mixtures, d = 16)", fontsize=9)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


KIND = Kind(config=OptimalityConfig, result=OptimalityResult)
