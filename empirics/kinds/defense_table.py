"""Kind ``defense-table``: the Table 1 analogue of the CEM paper — each base defense with and
without CEM, over seeds.

One cell (:class:`DefenseTableConfig`) per (seed, baseline, with/without CEM): a
trained model, its test accuracy and, per attack, MSE / PSNR / SSIM on held-out and training
inputs.  The summary averages over the seeds whose model trained (failed cells — within 2
points of chance or diverged — are excluded and counted, e.g. "2 of 3 seeds"), with t-intervals
(accuracy intervals clipped to [0, 1]).  "CEM helps" is decided by tests, never by comparing
means: the held-out decoder MSE is higher with CEM (one-sided Welch t-test, p < 0.05) *and* the
95 % interval of the accuracy change lies above −1 point; "hurts accuracy" when that interval
lies below −1 point; otherwise "inconclusive".
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from typing import ClassVar, Optional, Sequence

import numpy as np
from scipy import stats

from ..checks import mean_ci
from ..records import Kind
from ..registry import DATASET_ATTACKS
from ..results import Section
from ..specs import DefenseSpec
from ..sweep.collect import describe, group_records, slug
from ..sweep.params import TrainSweep, param
from .train_attack import TrainAttackConfig, TrainAttackResult, attack_spec, run_train_attack

__all__ = ["BASELINES", "DefenseTableConfig", "DefenseTableSweep", "defense_table_cells", "summarise_defense_table",
           "defense_table_section", "table_sections", "attack_spec", "ACCURACY_MARGIN", "TEST_LEVEL", "KIND"]

#: base defenses of the table (each composed with noise σ = 0.1, as in the paper's setting)
BASELINES: dict[str, list[tuple[str, dict]]] = {
    "noise": [("noise", {"sigma": 0.1})],
    "dropout": [("noise", {"sigma": 0.1}), ("dropout", {"p": 0.2})],
    "nopeek": [("noise", {"sigma": 0.1}), ("nopeek", {"alpha": 0.1})],
    "arl": [("noise", {"sigma": 0.1}), ("arl", {"alpha": 0.5})],
    "mixcon": [("noise", {"sigma": 0.1}), ("mixcon", {"lam": 0.1})],
    "unicon": [("noise", {"sigma": 0.1}), ("unicon", {"lam": 0.1})],
    "bottleneck": [("noise", {"sigma": 0.1}), ("bottleneck", {"drop": 0.5})],
}

ACCURACY_MARGIN = 0.01  # "at equal accuracy": within 1 point
TEST_LEVEL = 0.05  # one-sided level of the "CEM raises the decoder MSE" test


@dataclass(frozen=True, kw_only=True)
class DefenseTableConfig(TrainAttackConfig):
    """One Table 1 cell: base defense ``baseline`` (its specs in ``train.defenses``), with or without
    CEM at weight ``lam``."""

    kind: ClassVar[str] = "defense-table"
    baseline: str
    cem: bool
    lam: float

    def label(self) -> str:
        t = self.train
        sig = [dict(d.params).get("sigma") for d in t.defenses if d.name == "noise"]
        return (f"{t.dataset} {self.baseline}" + (f" + CEM λ={self.lam:g}" if self.cem else "")
                + (f" σ={sig[0]:g}" if sig else "") + f" seed {t.seed}")


@dataclass(frozen=True, kw_only=True)
class DefenseTableSweep(TrainSweep):
    """One Table 1 cell of a sweep; without ``baseline`` / ``with_cem`` / ``seed`` in the spec, every
    base defense, both with and without CEM, and seeds 0, 1, 2 (as :func:`defense_table_cells`)."""

    experiment: ClassVar[str] = "defense-table"
    seed: int = param("master seed of the cell (training, defenses, attack)", 0, minimum=0, axis=(0, 1, 2))
    baseline: str = param("base defense of a Table 1 row", "noise", choices=tuple(BASELINES), axis=tuple(BASELINES))
    with_cem: bool = param("false: the base defense alone; true: with CEM at λ", False, axis=(False, True))
    epochs: int = param("training epochs", 20, minimum=1)
    lam: float = param("CEM weight λ of the cells with CEM", 0.05, nonneg=True)
    k_per_class: Optional[int] = param("mixture components per class of CEM", 3, minimum=1)
    sigma: Optional[float] = param("σ of the Gaussian noise every base defense composes (default 0.1)", None,
                                   positive=True)
    attacks: tuple[str, ...] = param("attacks run on each trained model ([] = train only)", ("decoder",),
                                     choices=DATASET_ATTACKS)
    eval_train: bool = param("also attack training inputs", True)

    def configs(self) -> list:
        defs = [DefenseSpec.parse(d) for d in BASELINES[self.baseline]]
        if self.sigma is not None:
            defs = [DefenseSpec.parse(("noise", {**dict(d.params), "sigma": self.sigma})) if d.name == "noise" else d
                    for d in defs]
        if self.with_cem:
            defs.append(self.cem(float(self.lam), k_per_class=self.k_per_class))
        return [DefenseTableConfig(train=self.train_config(defs), attacks=tuple(attack_spec(a, self.attack_epochs)
                                                                              for a in self.attacks),
                                   eval_train=self.eval_train, baseline=self.baseline, cem=self.with_cem,
                                   lam=float(self.lam) if self.with_cem else 0.0)]


def defense_table_cells(*, dataset: str = "digits", baselines: Sequence[str] | None = None,
                        seeds: Sequence[int] = (0, 1, 2), lam: float = 0.05, epochs: int = 20,
                        attack_epochs: int = 30, attacks: Sequence[str] = ("decoder",), k_per_class: int = 3,
                        batch_size: int = 64, lr: float = 1e-3, eval_train: bool = True) -> list[DefenseTableConfig]:
    """One configuration per (seed, baseline, without / with CEM at ``lam``).

    Parameters
    ----------
    dataset : str
        A registered dataset.
    baselines : sequence of str, optional
        Names of :data:`BASELINES` (default: all).
    seeds : sequence of int
        Master seeds.
    lam : float
        CEM's weight in the cells with CEM.
    epochs, attack_epochs : int
        Training epochs of the model and of the trained attacks.
    attacks : sequence of str
        Attacks of every cell.
    k_per_class : int
        CEM's components per class.
    batch_size : int
        Training batch size.
    lr : float
        Learning rate.
    eval_train : bool
        Also attack training inputs.

    Returns
    -------
    list of DefenseTableConfig
    """
    names = list(baselines or BASELINES)
    for n in names:
        if n not in BASELINES:
            raise ValueError(f"baselines: expected names from {sorted(BASELINES)}, got {n!r}")
    if not names:
        raise ValueError("baselines: expected at least one base defense")
    return [c for s in seeds for n in names for cem in (False, True)
            for c in DefenseTableSweep(dataset=dataset, seed=int(s), baseline=n, with_cem=cem, lam=lam, epochs=epochs,
                                       attack_epochs=attack_epochs, attacks=tuple(attacks), k_per_class=k_per_class,
                                       batch_size=batch_size, lr=lr, eval_train=eval_train).configs()]


def _flat_metrics(result: dict) -> dict:
    out = {"accuracy": result["accuracy"]}
    for a, parts in result.get("attacks", {}).items():
        for part, vals in parts.items():
            for k in ("mse", "psnr", "ssim"):
                if k in vals:
                    out[f"{a}_{part}_{k}"] = vals[k]
    return out


def _welch_greater(a, b) -> float:
    """One-sided p-value of mean(a) > mean(b) (Welch); NaN with fewer than 2 values per side."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 2 or b.size < 2:
        return math.nan
    return float(stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue)


def _diff_ci(a, b, level=0.95):
    """Welch t-interval of mean(a) − mean(b); (NaN, NaN) with fewer than 2 values per side."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 2 or b.size < 2:
        return math.nan, math.nan
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        d = float(a.mean() - b.mean())
        return d, d
    df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    t = stats.t.ppf(0.5 + level / 2, df)
    d = float(a.mean() - b.mean())
    return d - t * se, d + t * se


def summarise_defense_table(records, names=None, attacks=("decoder",)) -> dict:
    """Rows (mean and 95 % CI half-width over the seeds that trained) per (baseline, cem), and a
    tested verdict per baseline.  ``records``: :class:`~empirics.records.Record` objects of
    ``defense-table`` cells (or plain dicts with ``baseline``, ``cem``, ``status`` and metrics).

    Parameters
    ----------
    records : sequence of Record
        Records of this kind (those with status ``error`` are left out by the callers).
        Or plain dicts (``baseline``, ``cem``, ``status`` and metrics).
    names : sequence of str, optional
        Baselines, in table order (default: as they come).
    attacks : sequence of str
        The attacks of the cells.

    Returns
    -------
    dict
        ``rows``, ``verdicts``, ``compared``, ``failed``, ``cem_helps_count``.
    """
    cells = []
    for r in records:
        if hasattr(r, "config"):
            cells.append({"baseline": r.config["baseline"], "cem": r.config["cem"], "seed": r.config["train"]["seed"],
                          "status": r.status, "reason": r.reason,
                          **(_flat_metrics(r.result) if r.status == "ok" else {})})
        else:
            cells.append({"status": "ok", **r})
    names = list(names) if names is not None else list(dict.fromkeys(c["baseline"] for c in cells))
    rows, per, verdicts, failed = [], {}, {}, []
    for n in names:
        for c in (False, True):
            cs = [x for x in cells if x["baseline"] == n and x["cem"] == c]
            if not cs:
                continue
            ok = [x for x in cs if x["status"] == "ok"]
            failed += [{"baseline": n, "cem": c, "seed": x.get("seed"), "status": x["status"], "reason": x.get("reason")}
                       for x in cs if x["status"] != "ok"]
            row = {"baseline": n, "cem": c, "seeds": f"{len(ok)} of {len(cs)}", "n_ok": len(ok), "n_cells": len(cs)}
            if ok:
                acc = mean_ci([x["accuracy"] for x in ok], lo=0.0, hi=1.0)
                row.update(accuracy=acc["mean"], accuracy_ci=acc["half_width"], accuracy_low=acc["ci_low"],
                           accuracy_high=acc["ci_high"])
                for f in sorted({k for x in ok for k in x} - {"baseline", "cem", "seed", "status", "reason",
                                                                "accuracy"}):
                    vals = [x[f] for x in ok if f in x]
                    if vals:
                        m = mean_ci(vals, lo=0.0 if f.endswith(("_mse", "_ssim")) else None,
                                    hi=1.0 if f.endswith("_ssim") else None)
                        row[f], row[f + "_ci"] = m["mean"], m["half_width"]
            rows.append(row)
            per[(n, c)] = ok
        a0, a1 = per.get((n, False)), per.get((n, True))
        if a0 and a1:
            key = "decoder_test_mse"
            m0 = [x[key] for x in a0 if key in x]
            m1 = [x[key] for x in a1 if key in x]
            p = _welch_greater(m1, m0) if m0 and m1 else math.nan
            lo, hi = _diff_ci([x["accuracy"] for x in a1], [x["accuracy"] for x in a0])
            if not math.isnan(p) and p < TEST_LEVEL and lo >= -ACCURACY_MARGIN:
                v = "helps"
            elif not math.isnan(hi) and hi < -ACCURACY_MARGIN:
                v = "hurts accuracy"
            else:
                v = "inconclusive"
            verdicts[n] = {"verdict": v, "mse_p_value": p, "accuracy_change_low": lo, "accuracy_change_high": hi,
                           "n_without": len(a0), "n_with": len(a1)}
    compared = len(verdicts)
    return {"rows": rows, "verdicts": verdicts, "compared": compared, "failed": failed,
            "cem_helps_count": sum(v["verdict"] == "helps" for v in verdicts.values())}


# ----------------------------------------------------------------------------- tables

TABLE_NOTE = (
    "Each base defense (composed with Gaussian feature noise) trained without (cem = no) and with CEM (cem = yes), "
    "one model per seed; seeds = models that trained of those run; every column is the mean over them with its 95 % "
    "t-interval half-width (*_ci; accuracy_low/high = the interval clipped to [0, 1]). <attack>_<split>_mse/psnr/"
    "ssim = reconstruction quality of that attack on training (train) or held-out (test) inputs.")
VERDICT_NOTE = (
    "mse_p_value: one-sided Welch t-test that CEM raises the held-out decoder MSE; accuracy_change_low/high: "
    "95 % Welch interval of the accuracy change with CEM. helps = p < 0.05 and the interval above −0.01; "
    "hurts accuracy = the interval below −0.01; else inconclusive.")


def defense_table_section(records, *, key: str, title: str, names=None, attacks=("decoder",)) -> Section:
    """The Table 1 section of ``records``: the table, the tested verdicts and the failed models
    (``invlimits defenses --experiment defense-table`` and the sweep collector).

    Parameters
    ----------
    records : sequence of Record
        Records of this kind (those with status ``error`` are left out by the callers).
    key, title : str
        The section's key and title.
    names : sequence of str, optional
        Baselines in table order.
    attacks : sequence of str
        The attacks of the cells.

    Returns
    -------
    Section
    """
    summ = summarise_defense_table(records, names, attacks)
    helps = summ["cem_helps_count"]
    sec = Section(key, title, records=list(records),
                  description=f"CEM raised the held-out decoder MSE (Welch test, p < 0.05) with the accuracy change's "
                              f"95 % interval above −1 point for {helps} of {summ['compared']} defenses.")
    nf = len(summ["failed"])
    if nf:
        sec.headline = (f"{nf} of {len(records)} models failed (near chance or diverged) and are excluded; the "
                        f"'seeds' column says how many seeds each row averages.")
    tname = "defense table (mean and 95% CI half-width over the seeds that trained)"
    sec.table_notes[tname] = TABLE_NOTE
    sec.tables[tname] = [{**r, "cem": "yes" if r["cem"] else "no"} for r in summ["rows"]]
    if summ["verdicts"]:
        sec.tables["does CEM help? (tests, not means)"] = [{"baseline": n, **v} for n, v in summ["verdicts"].items()]
        sec.table_notes["does CEM help? (tests, not means)"] = VERDICT_NOTE
    if summ["failed"]:
        sec.tables["failed models"] = summ["failed"]
    sec.data["cem_helps_count"] = helps
    sec.data["verdicts"] = summ["verdicts"]
    return sec


def group(config: dict) -> str:
    """Everything but the baseline, CEM, λ and seed (the noise σ stays)."""
    c = copy.deepcopy(config)
    c["train"].pop("seed", None)
    for k in ("baseline", "cem", "lam"):
        c.pop(k, None)
    c["noise_sigma"] = [d["params"].get("sigma") for d in c["train"]["defenses"] if d["name"] == "noise"]
    c["train"].pop("defenses")
    return json.dumps(c, sort_keys=True)


def table_sections(records, out=None) -> list[Section]:
    """One Table 1 per group and CEM λ (the cells without CEM belong to every λ of their group).

    Parameters
    ----------
    records : sequence of Record
        Records of this kind (those with status ``error`` are left out by the callers).
    out : Path, optional
        The output folder (unused: the table has no figure).

    Returns
    -------
    list of Section
    """
    parts = []
    for sig, recs in group_records(records, group).items():
        lams = sorted({r.config["lam"] for r in recs if r.config["cem"]}) or [None]
        for lam in lams:
            parts.append((sig, lam, [r for r in recs if not r.config["cem"] or r.config["lam"] == lam]))
    secs = []
    for i, (sig, lam, recs) in enumerate(parts):
        c = json.loads(sig)
        noise = f"noise σ = {c['noise_sigma'][0]:g}" if c.get("noise_sigma") else ""
        title = f"Table 1 analogue ({describe(c, noise)}" + (f", CEM λ = {lam:g})" if lam else ")")
        secs.append(defense_table_section(recs, key=f"table1{slug(i, len(parts))}", title=title,
                                          names=list(dict.fromkeys(r.config["baseline"] for r in recs)),
                                          attacks=[a["name"] for a in recs[0].config["attacks"]]))
    return secs


KIND = Kind(config=DefenseTableConfig, result=TrainAttackResult, run=run_train_attack, sweep=DefenseTableSweep,
            sections=table_sections, group=group)
