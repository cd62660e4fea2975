"""``invlimits reduction --experiment phase-transition``: random 3-SAT through h_φ (issue 22).

A thin adapter: arguments → :class:`reduction.phase.PhaseCellConfig` cells → :func:`reduction.phase.run_cell`
→ tables, checks and a figure.  For every cell (n, m/n): P(satisfiable) with its 95 % Wilson interval,
median SAT / MILP times, the gradient attacks' success at finding an exact preimage of the
satisfiable formulas (against the "corners" baseline: their random starts rounded), and the
agreement of the two exact routes; then the same agreement on planted 3-SAT, pigeonhole and parity
formulas, in both norms.  Times are measurements on this machine (and its load), not checks.

Sizes: default n ∈ {10, 15, 20, 25}, 50 formulas per cell, 8 densities (about 20-30 minutes on 2
cores); ``--quick`` n ∈ {8, 12}, 20 formulas per cell (about a minute).
"""

from __future__ import annotations

import time

from reduction.phase import DENSITIES, family_instances, phase_cells, run_cell, run_families

from ..kinds.phase_transition import add_summary, figure
from ..progress import as_progress
from ..results import Section

__all__ = ["cells_from_args", "run_phase"]

QUICK_NS, DEFAULT_NS = (8, 12), (10, 15, 20, 25)
QUICK_FORMULAS, DEFAULT_FORMULAS = 20, 50


def cells_from_args(args) -> list:
    """The experiment's cells from the command line (n × density, one settings dict)."""
    q = bool(getattr(args, "quick", False))
    ns = tuple(args.ns) if args.ns else (QUICK_NS if q else DEFAULT_NS)
    dens = tuple(args.densities) if args.densities else DENSITIES
    formulas = args.formulas if args.formulas is not None else (QUICK_FORMULAS if q else DEFAULT_FORMULAS)
    return phase_cells(ns, dens, formulas=formulas, seed=int(args.seed), norm=args.norm,
                       time_limit=float(args.time_limit), restarts=int(args.restarts), steps=int(args.steps))


def run_phase(args):
    """Run the phase-transition experiment (``--experiment phase-transition``): its section."""
    t0 = time.perf_counter()
    cells = cells_from_args(args)
    sec = Section("reduction", "Phase transition of random 3-SAT through h_phi (MixCon Thm B.10)",
                  description=(__doc__ or "").split("\n\n")[1].replace("\n", " "))
    total = sum(c.formulas for c in cells)
    prog = as_progress(getattr(args, "progress", False))
    prog.step(f"phase transition: {len(cells)} cells, {total} formulas (SAT solver, RC2, MILP, attacks) ...")
    bar = prog.bar(total=total, desc="phase-transition", unit="formula")
    results = []
    for c in cells:
        results.append(run_cell(c, progress=lambda _t: bar.update(1)))
    bar.close()
    prog.step("structured families (planted, pigeonhole, parity), both norms ...")
    fam = family_instances(seed=int(args.seed), quick=bool(getattr(args, "quick", False)))
    family_rows = []
    for norm in ("linf", "l1"):
        family_rows += run_families(fam, norm=norm, time_limit=float(args.time_limit))
    add_summary(sec, results, family_rows)
    sec.data["cell_keys"] = [c.key() for c in cells]
    sec.data["settings"] = {k: v for k, v in cells[0].to_dict().items() if k not in ("n", "density")}
    if not getattr(args, "no_figure", False):
        sec.figures.append(figure(results, args.out))
    sec.seconds = time.perf_counter() - t0
    return [sec]
