"""Kind ``phase-transition``: one cell (n, m/n) of random 3-SAT watched through the inversion of h_φ.

The experiment's logic is :mod:`reduction.phase` (issue 22): :class:`PhaseTransitionConfig` is
:class:`reduction.phase.PhaseCellConfig` as a run configuration (its fields and validation; the
key is the store's hash, :meth:`empirics.records.Config.key`), :class:`PhaseTransitionResult` is
:class:`reduction.phase.PhaseCellResult` as a stored result, and the runner is
:func:`reduction.phase.run_cell`.  As a sweep experiment (``experiment = "phase-transition"``,
``sweeps/phase_transition.toml``) its cells run on local processes, Ray or SLURM and
:func:`sections` turns their records into the tables and figure of ``invlimits reduction
--experiment phase-transition`` (:func:`add_summary` and :func:`figure` are shared with that
command).  Nothing is trained, so a dry run lists the cells without a time estimate.  Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Optional

import numpy as np

from reduction.phase import PhaseCellConfig, PhaseCellResult, agreement_table, peak, phase_table, run_cell

from ..figures import colour_cycle, new_figure, save_figure
from ..progress import as_progress
from ..records import Config, Kind, Outcome, Result
from ..results import Section
from ..sweep.params import param

__all__ = ["PhaseTransitionConfig", "PhaseTransitionResult", "PhaseSweep", "run_phase_cell", "sections", "figure",
           "add_summary", "KIND"]


@dataclass(frozen=True, kw_only=True)
class PhaseTransitionConfig(Config, PhaseCellConfig):
    """One (n, m/n) cell; fields and validation: :class:`reduction.phase.PhaseCellConfig`."""

    kind: ClassVar[str] = "phase-transition"

    def label(self) -> str:
        return f"random 3-SAT n={self.n} m/n={self.density:g} ({self.formulas} formulas, {self.norm})"


@dataclass(frozen=True, kw_only=True)
class PhaseTransitionResult(Result, PhaseCellResult):
    """Per-cell statistics; fields: :class:`reduction.phase.PhaseCellResult`."""


def run_phase_cell(config: PhaseTransitionConfig, ctx) -> Outcome:
    """Run one cell (:func:`reduction.phase.run_cell`).

    Parameters
    ----------
    config : PhaseTransitionConfig
        The cell.
    ctx : RunContext
        Where and how it runs (its progress switches a bar over the formulas); not part of any identity.

    Returns
    -------
    Outcome
    """
    bar = as_progress(getattr(ctx, "progress", False)).bar(total=config.formulas, desc=config.label(), unit="formula")
    try:
        return Outcome("ok", run_cell(config, progress=lambda _t: bar.update(1)))
    finally:
        bar.close()


_DEFAULTS = PhaseCellConfig.__dataclass_fields__


@dataclass(frozen=True, kw_only=True)
class PhaseSweep:
    """One cell's settings in a sweep spec (the fields of :class:`reduction.phase.PhaseCellConfig`)."""

    experiment: ClassVar[str] = "phase-transition"
    n: Optional[int] = param("variables of the random 3-SAT formulas", None, minimum=3, required=True)
    density: Optional[float] = param("clause density m/n (m = round(m/n * n))", None, positive=True, required=True)
    formulas: int = param("formulas per cell", _DEFAULTS["formulas"].default, minimum=1)
    seed: int = param("master seed of the cell's formulas and attack starts", _DEFAULTS["seed"].default, minimum=0)
    norm: str = param("norm of the exact inversion (MILP): linf or l1", _DEFAULTS["norm"].default,
                      choices=("linf", "l1"))
    time_limit: float = param("seconds per MILP (reaching it: unknown, never a verdict)",
                              _DEFAULTS["time_limit"].default, positive=True)
    restarts: int = param("random restarts of each gradient attack", _DEFAULTS["restarts"].default, minimum=1)
    steps: int = param("steps of each gradient attack", _DEFAULTS["steps"].default, minimum=1)
    attacks: tuple[str, ...] = param("gradient attacks on h_phi (lbfgsb, pgd; [] = none)",
                                     tuple(_DEFAULTS["attacks"].default), choices=("lbfgsb", "pgd"))
    solver: str = param("pysat SAT solver", _DEFAULTS["solver"].default)

    def configs(self) -> list:
        for name in ("n", "density"):
            if getattr(self, name) is None:
                raise ValueError(f"{name}: required for phase-transition (in [grid] or [settings])")
        return [PhaseTransitionConfig(n=self.n, density=self.density, formulas=self.formulas, seed=self.seed,
                                      norm=self.norm, time_limit=self.time_limit, restarts=self.restarts,
                                      steps=self.steps, attacks=self.attacks, solver=self.solver)]


# ----------------------------------------------------------------------------- tables and figure

def figure(results, out: Path) -> str:
    """P(sat), median MILP and SAT times and attack success against m/n, one curve per n.

    Parameters
    ----------
    results : sequence of PhaseCellResult or dict
        The cells' results.
    out : str or Path
        The folder the PNG goes to.

    Returns
    -------
    str
        The figure's path.
    """
    res = [r if isinstance(r, dict) else r.to_dict() for r in results]
    ns = sorted({r["n"] for r in res})
    fig = new_figure((11, 8))
    ax = fig.subplots(2, 2)
    colours = colour_cycle()
    for i, n in enumerate(ns):
        col = colours[i % len(colours)]
        rr = sorted((r for r in res if r["n"] == n), key=lambda r: r["density"])
        a = np.array([r["density"] for r in rr])
        p = np.array([r["p_sat"] for r in rr])
        ci = np.array([r["p_sat_ci"] for r in rr])
        ax[0, 0].errorbar(a, p, yerr=[p - ci[:, 0], ci[:, 1] - p], marker="o", capsize=2, label=f"n={n}")
        ax[0, 1].plot(a, [r["milp_seconds"]["median"] for r in rr], marker="o", label=f"MILP n={n}")
        ax[0, 1].plot(a, [r["sat_seconds"]["median"] for r in rr], marker="x", ls=":", label=f"SAT n={n}")
        for method, style in (("lbfgsb", "-"), ("pgd", "--"), ("corners", ":")):
            y = [r["attacks"].get(method, {}).get("rate") for r in rr]
            y = [np.nan if v is None else v for v in y]
            if not np.all(np.isnan(y)):
                ax[1, 0].plot(a, y, ls=style, marker="o", color=col, label=f"{method} n={n}")
        ax[1, 1].plot(a, [r["milp_nodes_unsat"]["median"] for r in rr], marker="o", label=f"n={n}")
    for axx in ax.ravel():
        axx.axvline(4.26, color="grey", lw=0.8, ls="--")
        axx.set_xlabel("clause density m/n")
    ax[0, 0].set_ylabel("P(satisfiable) (95% Wilson)")
    ax[0, 0].set_title("P(h_phi has an exact preimage)")
    ax[0, 1].set_yscale("log")
    ax[0, 1].set_ylabel("median seconds")
    ax[0, 1].set_title("Exact solvers: MILP on h_phi vs SAT on phi")
    ax[1, 0].set_ylabel("share of satisfiable formulas inverted")
    ax[1, 0].set_title("Gradient attacks (corners: random starts, rounded)")
    ax[1, 1].set_yscale("log")
    ax[1, 1].set_ylabel("median branch-and-bound nodes")
    ax[1, 1].set_title("MILP work on the unsatisfiable formulas")
    for axx in ax.ravel():
        axx.legend(fontsize=6)
    return save_figure(fig, Path(out) / "reduction_phase_transition.png")


def add_summary(sec: Section, results, family_rows) -> None:
    """Checks, tables and data of the experiment into ``sec`` (the command's and the sweep collector's).

    Parameters
    ----------
    sec : Section
        The section filled in.
    results : sequence of PhaseCellResult or dict
        The cells' results.
    family_rows : list of dict
        Rows of :func:`reduction.phase.run_families` (empty for a sweep).

    Returns
    -------
    None
    """

    res = [r if isinstance(r, dict) else r.to_dict() for r in results]
    dis = sum(r["disagree"] for r in res) + sum(r["agree"] is False for r in family_rows)
    decided = sum(r["agree"] + r["disagree"] for r in res) + sum(r["agree"] is not None for r in family_rows)
    und = sum(r["undecided"] for r in res) + sum(r["agree"] is None for r in family_rows)
    sec.add("two exact routes agree: MILP on h_phi vs SAT solver + RC2, disagreements", f"{decided} decided",
            dis, 0, -dis, dis == 0,
            note=f"{und} undecided (MILP time limit: 'unknown', counted as neither)")
    below = sum(a["below_lower"] for r in res for a in r["attacks"].values())
    n_att = sum(a["gap"]["n"] for r in res for a in r["attacks"].values())
    sec.add("regression: no attack residual below the MILP's proved lower bound", f"{n_att} attack results",
            below, 0, -below, below == 0, note="a proved bound; only a coding error can fail it")
    sec.tables["phase transition"] = phase_table(res)
    sec.table_notes["phase transition"] = (
        "Random 3-SAT, m = round(m/n * n), B = the formula's largest occurrence (compact h_phi, c = 100B^2). "
        "P(sat) by CaDiCaL with its 95% Wilson interval; SAT s and MILP s are wall-clock measurements on this "
        "machine (shared and loaded: compare them within a run, not across machines); MILP unknown: time limit "
        "reached; success: share of satisfiable formulas where the attack (best of its restarts, rounded) found "
        "an exact preimage, with its 95% Wilson interval (corners: the same random starts rounded, no "
        "optimisation); gap: attack residual minus the exact minimum, in the MILP's norm; MILP nodes: HiGHS's "
        "branch-and-bound nodes (machine-independent work).")
    sec.tables["agreement"] = agreement_table(family_rows, res)
    sec.table_notes["agreement"] = (
        "Per family: instances (SAT / UNSAT by CaDiCaL), agreeing with the MILP on h_phi (verdict, and the "
        "minimum within the bounds that RC2's optimum implies: linf in [w/(w+k_max), 1] when UNSAT, l1 = OPT), "
        "disagreeing (must be 0), undecided (time limit), median and max MILP seconds (measurements).")
    pk_milp, pk_sat, pk_unsat = peak(res, "milp_seconds"), peak(res, "sat_seconds"), peak(res, "milp_nodes_unsat")
    sec.data["peak_density_milp"] = {str(k): v for k, v in pk_milp.items()}
    sec.data["peak_density_sat"] = {str(k): v for k, v in pk_sat.items()}
    sec.data["peak_density_milp_nodes_unsat"] = {str(k): v for k, v in pk_unsat.items()}
    sec.data["cells"] = res
    sec.data["families"] = family_rows
    if pk_milp:
        sec.headline = ("median MILP time peaks at m/n = "
                        + ", ".join(f"{v:g} (n={k})" for k, v in pk_milp.items())
                        + "; SAT at " + ", ".join(f"{v:g} (n={k})" for k, v in pk_sat.items())
                        + "; MILP nodes on UNSAT formulas at " + ", ".join(f"{v:g} (n={k})" for k, v in pk_unsat.items()))



def sections(records, out) -> list:
    """The report section of a sweep's phase-transition records: tables, checks and the figure.

    Parameters
    ----------
    records : sequence of Record
        The sweep's records (those not ``ok`` are left out).
    out : str or Path
        Where the figure goes.

    Returns
    -------
    list of Section
    """
    ok = [r for r in records if r is not None and r.status == "ok"]
    if not ok:
        return []
    sec = Section("phase-transition", "Phase transition of random 3-SAT through h_phi (sweep)", records=ok)
    add_summary(sec, [r.result for r in ok], [])
    sec.figures.append(figure([r.result for r in ok], Path(out)))
    return [sec]


KIND = Kind(config=PhaseTransitionConfig, result=PhaseTransitionResult, run=run_phase_cell, sweep=PhaseSweep,
            sections=sections)
