r"""The phase transition of random 3-SAT, watched through the inversion of h_φ (issue 22).

Uniform random 3-SAT with n variables and m = round(α n) clauses is almost always satisfiable for
clause density α well below ≈ 4.26 and almost never above it, and it is hardest for complete
solvers near the threshold (Mitchell, Selman & Levesque 1992, "Hard and easy distributions of SAT
problems", AAAI; Kirkpatrick & Selman 1994, Science 264).  Through the reduction (MixCon appendix,
Thm B.10; B = the formula's largest occurrence count), "φ satisfiable" is "h_φ has an exact
preimage of z", so the same transition should appear when inverting the network: in P(exact
preimage), in the time of an exact inversion (:func:`reduction.exact.exact_inversion`, a MILP that
sees only the network) and in the success of gradient attacks (:func:`reduction.attacks.invert`).

A *cell* is one (n, α) with its settings, a frozen :class:`PhaseCellConfig`; :func:`run_cell` draws
``formulas`` formulas from seeds derived from (seed, n, α, index) — the same formulas for every
setting of the solvers — and returns a plain :class:`PhaseCellResult` with per-cell statistics:

* P(satisfiable) (CaDiCaL) with its 95 % Wilson interval;
* SAT, MaxSAT (RC2) and MILP times: median, mean ± standard error, max (measurements: they depend
  on the machine and its load), the MILP's also split by satisfiable / unsatisfiable formulas, and
  its branch-and-bound nodes (a machine-independent measure of its work);
* the two exact routes' agreement (:func:`reduction.exact.cross_check`: MILP verdict = SAT verdict,
  minimum within the bounds implied by RC2's optimum): agreeing, disagreeing (must be 0) and
  undecided (the MILP hit its time limit: "unknown", never counted as either);
* per attack (``invert``, method ``"pgd"`` / ``"lbfgsb"``, fixed restarts and steps): the share of
  satisfiable formulas where it found an exact preimage (some restart rounds to a satisfying
  assignment, whose corner x̄ has h_φ(x̄) = z exactly) with its Wilson interval, and its best
  residual in the MILP's norm against the exact minimum (gap ≥ 0; a residual below the MILP's proved
  lower bound would be a bug and is counted in ``below_lower``);
* the baseline ``"corners"``: the same random starts rounded without any optimisation, so an
  attack's success can be compared with guessing.  (With c = 100B² copies the copy term dominates
  the residual, and a local method stays at the corner nearest its start: crossing x_i = 0 costs
  c·1 in the copy term.)

:func:`family_instances` and :func:`run_families` give the same agreement check on structured
families: planted 3-SAT, pigeonhole PHP(h+1, h) / PHP(h, h) and the parity principle on odd / even
vertex sets (:func:`reduction.formulas.pigeonhole`, :func:`reduction.formulas.parity`).
:func:`agreement_table` and :func:`phase_table` turn results into report rows; the command line
(``invlimits reduction --experiment phase-transition``) and the sweep collector call them.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from theory._io import canonical_json

from .attacks import invert
from .exact import cross_check, norm_residual
from .formulas import Formula, count_unsatisfied, occurrences, parity, pigeonhole, planted_e3sat, random_ksat
from .network import build_network

__all__ = ["DENSITIES", "PhaseCellConfig", "PhaseCellResult", "run_cell", "summarise_rows", "phase_cells", "wilson",
           "summary_stats", "family_instances", "run_families", "agreement_table", "phase_table", "peak"]

#: The clause densities m/n of the experiment (issue 22); 4.26 is the empirical threshold.
DENSITIES = (2.0, 3.0, 3.5, 4.0, 4.26, 4.5, 5.0, 6.0)
_ATTACKS = ("lbfgsb", "pgd")


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval (95 % by default) for a proportion k/n; (0, 1) when n = 0.

    Wilson (1927), JASA 22: centre (k + z²/2)/(n + z²), half-width z√(k(n−k)/n + z²/4)/(n + z²).

    Parameters
    ----------
    k, n : int
        Successes and trials.
    z : float
        The normal quantile (1.96 for 95 %).

    Returns
    -------
    tuple of (float, float)

    Examples
    --------
    >>> lo, hi = wilson(0, 50)
    >>> lo, round(hi, 4)
    (0.0, 0.0713)
    >>> [round(v, 4) for v in wilson(25, 50)]
    [0.3664, 0.6336]
    """
    if isinstance(k, bool) or isinstance(n, bool) or not (0 <= k <= n):
        raise ValueError(f"k, n: expected 0 <= k <= n, got k = {k!r}, n = {n!r}")
    if n == 0:
        return 0.0, 1.0
    z2 = z * z
    centre = (k + z2 / 2) / (n + z2)
    half = z * math.sqrt(k * (n - k) / n + z2 / 4) / (n + z2)
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    # exact ends: at k = 0 (k = n) the lower (upper) end is 0 (1) in closed form; float64 misses by an ulp
    return (0.0 if k == 0 else lo), (1.0 if k == n else hi)


def summary_stats(values) -> dict:
    """``{n, median, mean, stderr, max}`` of a sample (stderr = s/√n; None entries for an empty one).

    Parameters
    ----------
    values : sequence of float
        The sample.

    Returns
    -------
    dict

    Examples
    --------
    >>> summary_stats([1.0, 2.0, 3.0])
    {'n': 3, 'median': 2.0, 'mean': 2.0, 'stderr': 0.5773502691896258, 'max': 3.0}
    """
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return {"n": 0, "median": None, "mean": None, "stderr": None, "max": None}
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else None
    return {"n": int(v.size), "median": float(np.median(v)), "mean": float(v.mean()), "stderr": se,
            "max": float(v.max())}


@dataclass(frozen=True, kw_only=True)
class PhaseCellConfig:
    """One cell of the phase-transition experiment: every setting that changes its numbers.

    n : variables; density : clause density α (m = round(α n)); formulas : formulas drawn;
    seed : master seed; norm : the exact inversion's norm ("linf" decides satisfiability; "l1" also
    equals the MaxSAT optimum); time_limit : seconds per MILP (reaching it: "unknown");
    restarts, steps : of each gradient attack; attacks : methods of :func:`reduction.invert`
    (``()`` for none); solver : pysat SAT solver.
    """

    n: int
    density: float
    formulas: int = 50
    seed: int = 0
    norm: str = "linf"
    time_limit: float = 60.0
    restarts: int = 4
    steps: int = 150
    attacks: tuple[str, ...] = _ATTACKS
    solver: str = "cadical195"

    def __post_init__(self):
        for name, lo in (("n", 3), ("formulas", 1), ("seed", 0), ("restarts", 1), ("steps", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"{name}: expected an integer >= {lo}, got {v!r}")
        for name in ("density", "time_limit"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name}: expected a positive finite number, got {v!r}")
        if self.norm not in ("linf", "l1"):
            raise ValueError(f"norm: expected 'linf' or 'l1', got {self.norm!r}")
        att = tuple(self.attacks)
        bad = [a for a in att if a not in _ATTACKS]
        if bad or len(set(att)) != len(att):
            raise ValueError(f"attacks: expected distinct names from {list(_ATTACKS)}, got {list(att)!r}")
        object.__setattr__(self, "attacks", att)
        object.__setattr__(self, "density", float(self.density))
        object.__setattr__(self, "time_limit", float(self.time_limit))
        if self.m < 1:
            raise ValueError(f"density: m = round(density·n) must be >= 1, got {self.m} (n = {self.n})")

    @property
    def m(self) -> int:
        return int(round(self.density * self.n))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["attacks"] = list(self.attacks)
        return d

    def key(self) -> str:
        """sha256 (16 hex digits) of the canonical JSON of the fields: the cell's identity."""
        return hashlib.sha256(canonical_json({"kind": "phase-transition", **self.to_dict()}).encode()).hexdigest()[:16]

    def formula(self, t: int) -> Formula:
        """Formula ``t`` of the cell (uniform random 3-SAT, seeded by (seed, n, α, t))."""
        rng = np.random.default_rng([self.seed, self.n, int(round(self.density * 1000)), int(t)])
        return random_ksat(self.n, self.m, 3, rng)


@dataclass(frozen=True, kw_only=True)
class PhaseCellResult:
    """Per-cell statistics (see the module docstring) and one row per formula (``rows``)."""

    n: int
    density: float
    m: int
    formulas: int
    n_sat: int
    p_sat: float
    p_sat_ci: list
    sat_seconds: dict
    maxsat_seconds: dict
    milp_seconds: dict
    milp_seconds_sat: dict
    milp_seconds_unsat: dict
    milp_nodes: dict
    milp_nodes_unsat: dict
    milp_status: dict
    agree: int
    disagree: int
    undecided: int
    attacks: dict
    rows: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _attack_rng(cfg: PhaseCellConfig, t: int, j: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, cfg.n, int(round(cfg.density * 1000)), int(t), 1 + j])


def _attack_row(net, f: Formula, method: str, cfg: PhaseCellConfig, t: int, j: int, exact) -> dict:
    """One attack on one formula; ``method="corners"`` is the no-optimisation baseline: the roundings
    of the attack's own random starts (the same draws as attack ``j``'s: ``invert`` draws its starts first)."""
    rng = _attack_rng(cfg, t, j)
    t0 = time.perf_counter()
    if method == "corners":
        X = rng.uniform(-1.0, 1.0, size=(cfg.restarts, net.d))
        unsat = int(np.min(count_unsatisfied(net.formula, net.round(X))))
        X = np.where(X < 0, -1.0, 1.0)
        val = float(np.min(norm_residual(net, X, cfg.norm)))
        seconds = time.perf_counter() - t0
    else:
        r = invert(net, restarts=cfg.restarts, steps=cfg.steps, method=method, rng=rng, device="cpu")
        val = float(np.min(norm_residual(net, r.xs, cfg.norm)))
        unsat, seconds = int(r.min_unsatisfied), r.seconds
    out = {"success": unsat == 0, "value": val, "unsat": unsat, "seconds": seconds, "gap": None,
           "below_lower": False}
    if exact.value is not None and exact.status == "optimal":
        out["gap"] = val - exact.value
    if exact.lower is not None:
        out["below_lower"] = bool(val < exact.lower - 1e-6 * max(1.0, abs(exact.lower)))
    return out


def run_cell(cfg: PhaseCellConfig, progress=None) -> PhaseCellResult:
    """Run one cell: for each formula the SAT solver, RC2, the MILP and the attacks (module docstring).

    ``progress``: optional callable ``progress(t)`` after each formula (for progress bars).

    Parameters
    ----------
    cfg : PhaseCellConfig
        The cell.
    progress : callable, optional
        Called with the formula index after each formula.

    Returns
    -------
    PhaseCellResult

    Examples
    --------
    >>> r = run_cell(PhaseCellConfig(n=6, density=2.0, formulas=2, attacks=()))
    >>> r.m, r.formulas, r.disagree, r.agree + r.undecided
    (12, 2, 0, 2)
    """
    if not isinstance(cfg, PhaseCellConfig):
        raise ValueError(f"cfg: expected a PhaseCellConfig, got {type(cfg).__name__}")
    rows = []
    for t in range(cfg.formulas):
        f = cfg.formula(t)
        B = int(occurrences(f).max())
        cc = cross_check(f, B=B, norm=cfg.norm, time_limit=cfg.time_limit, solver=cfg.solver, max_binaries=None)
        ex = cc.exact
        row = {"t": t, "norm": cfg.norm, "B": B, "sat": cc.satisfiable, "opt": cc.opt, "sat_s": cc.sat_seconds,
               "maxsat_s": cc.maxsat_seconds, "milp_status": ex.status, "milp_verdict": ex.verdict,
               "milp_value": ex.value, "milp_lower": ex.lower, "milp_s": ex.seconds, "milp_nodes": ex.nodes,
               "agree": cc.agree, "problems": cc.problems, "attacks": {}}
        if cfg.attacks:
            net = build_network(f, B=B, form="compact")
            for j, method in enumerate(cfg.attacks):
                row["attacks"][method] = _attack_row(net, f, method, cfg, t, j, ex)
            # baseline: the first attack's random starts, rounded, without any optimisation
            row["attacks"]["corners"] = _attack_row(net, f, "corners", cfg, t, 0, ex)
        rows.append(row)
        if progress is not None:
            progress(t)
    return summarise_rows(cfg, rows)


def summarise_rows(cfg: PhaseCellConfig, rows: list) -> PhaseCellResult:
    """The cell's statistics from its per-formula rows (as :func:`run_cell` makes them).

    Parameters
    ----------
    cfg : PhaseCellConfig
        The cell.
    rows : list of dict
        Its per-formula rows.

    Returns
    -------
    PhaseCellResult
    """
    n_sat = sum(r["sat"] for r in rows)
    status = {s: sum(r["milp_status"] == s for r in rows) for s in ("optimal", "unknown", "error")}
    attacks = {}
    for method in (*cfg.attacks, "corners") if cfg.attacks else ():
        sat_rows = [r for r in rows if r["sat"]]
        k = sum(r["attacks"][method]["success"] for r in sat_rows)
        gaps = [r["attacks"][method]["gap"] for r in rows if r["attacks"][method]["gap"] is not None]
        attacks[method] = {
            "success": k, "n_sat": len(sat_rows), "rate": k / len(sat_rows) if sat_rows else None,
            "rate_ci": list(wilson(k, len(sat_rows))),
            "gap": summary_stats(gaps),
            "at_minimum": sum(g <= 1e-6 for g in gaps),
            "below_lower": sum(r["attacks"][method]["below_lower"] for r in rows),
            "seconds": summary_stats(r["attacks"][method]["seconds"] for r in rows)}
    return PhaseCellResult(
        n=cfg.n, density=cfg.density, m=cfg.m, formulas=len(rows), n_sat=n_sat, p_sat=n_sat / len(rows),
        p_sat_ci=list(wilson(n_sat, len(rows))), sat_seconds=summary_stats(r["sat_s"] for r in rows),
        maxsat_seconds=summary_stats(r["maxsat_s"] for r in rows),
        milp_seconds=summary_stats(r["milp_s"] for r in rows),
        milp_seconds_sat=summary_stats(r["milp_s"] for r in rows if r["sat"]),
        milp_seconds_unsat=summary_stats(r["milp_s"] for r in rows if not r["sat"]),
        milp_nodes=summary_stats(r["milp_nodes"] for r in rows),
        milp_nodes_unsat=summary_stats(r["milp_nodes"] for r in rows if not r["sat"]), milp_status=status,
        agree=sum(r["agree"] is True for r in rows), disagree=sum(r["agree"] is False for r in rows),
        undecided=sum(r["agree"] is None for r in rows), attacks=attacks, rows=rows)


def phase_cells(ns=(10, 15, 20), densities=DENSITIES, **settings) -> list[PhaseCellConfig]:
    """The grid of cells: every n × density with the same ``settings`` (fields of :class:`PhaseCellConfig`).

    Parameters
    ----------
    ns : sequence of int
        Numbers of variables.
    densities : sequence of float
        Clause densities m/n.
    **settings
        Other fields of :class:`PhaseCellConfig` (``formulas``, ``seed``, ``norm`` ...).

    Returns
    -------
    list of PhaseCellConfig

    Examples
    --------
    >>> [(c.n, c.density) for c in phase_cells(ns=(8,), densities=(2.0, 4.26), formulas=3)]
    [(8, 2.0), (8, 4.26)]
    """
    return [PhaseCellConfig(n=n, density=a, **settings) for n in ns for a in densities]


def peak(results, key: str = "milp_seconds") -> dict:
    """Density of the largest median per n of ``key`` (a summary field: "milp_seconds", "sat_seconds",
    "milp_nodes_unsat" ...): where the exact solvers work hardest.

    Parameters
    ----------
    results : sequence of PhaseCellResult or dict
        Cells' results.
    key : str
        A summary field.

    Returns
    -------
    dict
        ``{n: density}``.

    Examples
    --------
    >>> peak([])
    {}
    """
    out = {}
    for r in results:
        r = r if isinstance(r, dict) else r.to_dict()
        med = r[key]["median"]
        if med is not None and (r["n"] not in out or med > out[r["n"]][1]):
            out[r["n"]] = (r["density"], med)
    return {n: v[0] for n, v in sorted(out.items())}


def phase_table(results) -> list[dict]:
    """One report row per cell: P(sat) with its Wilson interval, median times, attack success rates.

    Parameters
    ----------
    results : sequence of PhaseCellResult or dict
        Cells' results.

    Returns
    -------
    list of dict
    """
    rows = []
    for r in results:
        r = r if isinstance(r, dict) else r.to_dict()
        row = {"n": r["n"], "m/n": r["density"], "m": r["m"], "formulas": r["formulas"],
               "P(sat)": r["p_sat"], "P(sat) 95% CI": _ci(r["p_sat_ci"]),
               "SAT s (median)": r["sat_seconds"]["median"], "MILP s (median)": r["milp_seconds"]["median"],
               "MILP s (max)": r["milp_seconds"]["max"], "MILP s UNSAT (median)": r["milp_seconds_unsat"]["median"],
               "MILP nodes UNSAT (median)": r["milp_nodes_unsat"]["median"],
               "MILP unknown": r["milp_status"]["unknown"],
               "disagree": r["disagree"]}
        for method, a in r["attacks"].items():
            row[f"{method} success"] = a["rate"]
            row[f"{method} 95% CI"] = _ci(a["rate_ci"]) if a["n_sat"] else "-"
            if method != "corners":
                row[f"{method} gap (median)"] = a["gap"]["median"]
        rows.append(row)
    return rows


def _ci(ci) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]"


# ------------------------------------------------------------------------------- structured families


def family_instances(seed: int = 0, quick: bool = False) -> list[dict]:
    """Structured instances for the agreement check: ``{"family", "name", "formula"}`` dicts.

    planted 3-SAT at the threshold density (m = round(4.26 n), B = 15, satisfiable by construction;
    n ∈ {10, 15, 20}, 5 each — 2 each with ``quick``); pigeonhole PHP(h+1, h) (unsatisfiable) and
    PHP(h, h) (satisfiable) for h = 2..5 (2..4 quick); parity on N = 3..9 vertices (3..7 quick;
    odd: unsatisfiable, even: satisfiable).

    Parameters
    ----------
    seed : int
        Seed of the planted instances.
    quick : bool
        Fewer and smaller instances.

    Returns
    -------
    list of dict

    Examples
    --------
    >>> [d["name"] for d in family_instances(quick=True) if d["family"] == "parity"]
    ['parity(3)', 'parity(4)', 'parity(5)', 'parity(6)', 'parity(7)']
    """
    rng = np.random.default_rng([int(seed), 22])
    out = []
    for n in (10, 15, 20):
        for t in range(2 if quick else 5):
            f, _ = planted_e3sat(n, int(round(4.26 * n)), 15, rng)
            out.append({"family": "planted 3-SAT", "name": f"planted n={n} #{t}", "formula": f})
    for h in range(2, 5 if quick else 6):
        out.append({"family": "pigeonhole", "name": f"PHP({h + 1},{h})", "formula": pigeonhole(h + 1, h)})
        out.append({"family": "pigeonhole", "name": f"PHP({h},{h})", "formula": pigeonhole(h, h)})
    for N in range(3, 8 if quick else 10):
        out.append({"family": "parity", "name": f"parity({N})", "formula": parity(N)})
    return out


def run_families(instances, *, norm: str = "linf", time_limit: float = 60.0, solver: str = "cadical195",
                 progress=None) -> list[dict]:
    """:func:`reduction.exact.cross_check` on each instance; one plain row each (family, name, verdicts, times).

    Parameters
    ----------
    instances : sequence of dict
        :func:`family_instances`'s instances.
    norm : {'linf', 'l1'}
        The norm of the exact inversion.
    time_limit : float
        Seconds per MILP.
    solver : str
        A pysat solver name.
    progress : callable, optional
        Called after each instance.

    Returns
    -------
    list of dict
    """
    rows = []
    for i, inst in enumerate(instances):
        f = inst["formula"]
        t0 = time.perf_counter()
        cc = cross_check(f, norm=norm, time_limit=time_limit, solver=solver, max_binaries=None)
        rows.append({"family": inst["family"], "name": inst["name"], "norm": norm, "n": f.nv, "m": f.m,
                     "B": int(occurrences(f).max()), "sat": cc.satisfiable, "opt": cc.opt,
                     "opt_exhaustive": cc.opt_exhaustive, "milp_status": cc.exact.status,
                     "milp_verdict": cc.exact.verdict, "milp_value": cc.exact.value, "milp_lower": cc.exact.lower,
                     "milp_s": cc.exact.seconds, "sat_s": cc.sat_seconds, "agree": cc.agree,
                     "problems": cc.problems, "seconds": time.perf_counter() - t0})
        if progress is not None:
            progress(i)
    return rows


def agreement_table(family_rows=(), cells=()) -> list[dict]:
    """Agreement of the two exact routes per family: instances (SAT / UNSAT), agreeing, disagreeing,
    undecided (time limit), median and max MILP seconds.  Random 3-SAT rows come from phase cells
    (one family per density, all n pooled); structured families from :func:`run_families` rows.

    Parameters
    ----------
    family_rows : sequence of dict
        :func:`run_families`'s rows.
    cells : sequence of PhaseCellResult or dict
        Phase cells' results.

    Returns
    -------
    list of dict
    """
    groups: dict[tuple, list] = {}
    for c in cells:
        c = c if isinstance(c, dict) else c.to_dict()
        for r in c["rows"]:
            groups.setdefault((f"random 3-SAT m/n={c['density']:g}", r["norm"]), []).append(r)
    for r in family_rows:
        groups.setdefault((r["family"], r["norm"]), []).append(r)
    out = []
    for (fam, norm), rows in groups.items():
        st = summary_stats(r["milp_s"] for r in rows)
        out.append({"family": fam, "norm": norm, "instances": len(rows), "SAT": sum(r["sat"] for r in rows),
                    "UNSAT": sum(not r["sat"] for r in rows), "agree": sum(r["agree"] is True for r in rows),
                    "disagree": sum(r["agree"] is False for r in rows),
                    "undecided": sum(r["agree"] is None for r in rows),
                    "MILP s (median)": st["median"], "MILP s (max)": st["max"]})
    return out
