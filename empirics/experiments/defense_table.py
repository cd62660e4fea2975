"""Table 1 analogue of the CEM paper: each base defense with and without CEM, over seeds.

One cell (:class:`~empirics.runs.DefenseTableConfig`) per (seed, baseline, with/without CEM): a
trained model, its test accuracy and, per attack, MSE / PSNR / SSIM on held-out and training
inputs.  The summary averages over the seeds whose model trained (failed cells — within 2
points of chance or diverged — are excluded and counted, e.g. "2 of 3 seeds"), with t-intervals
(accuracy intervals clipped to [0, 1]).  "CEM helps" is decided by tests, never by comparing
means: the held-out decoder MSE is higher with CEM (one-sided Welch t-test, p < 0.05) *and* the
95 % interval of the accuracy change lies above −1 point; "hurts accuracy" when that interval
lies below −1 point; otherwise "inconclusive".
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..checks import mean_ci
from ..runs import AttackSpec, DefenseSpec, DefenseTableConfig, TrainConfig

__all__ = ["BASELINES", "defense_table_cells", "summarise_defense_table", "attack_spec", "ACCURACY_MARGIN",
           "TEST_LEVEL"]

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


def attack_spec(name: str, attack_epochs: int) -> AttackSpec:
    """The attack of a table cell: trained attacks for ``attack_epochs`` epochs; the optimization
    attack for ``max(50, 10·attack_epochs)`` gradient steps."""
    if name == "optimization":
        return AttackSpec.parse(name, steps=max(50, 10 * int(attack_epochs)))
    return AttackSpec.parse(name, epochs=int(attack_epochs))


def defense_table_cells(*, dataset: str = "digits", baselines: Sequence[str] | None = None,
                        seeds: Sequence[int] = (0, 1, 2), lam: float = 0.05, epochs: int = 20,
                        attack_epochs: int = 30, attacks: Sequence[str] = ("decoder",), k_per_class: int = 3,
                        batch_size: int = 64, lr: float = 1e-3, eval_train: bool = True) -> list[DefenseTableConfig]:
    names = list(baselines or BASELINES)
    for n in names:
        if n not in BASELINES:
            raise ValueError(f"baselines: expected names from {sorted(BASELINES)}, got {n!r}")
    if not names:
        raise ValueError("baselines: expected at least one base defense")
    specs = tuple(attack_spec(a, attack_epochs) for a in attacks)
    cells = []
    for s in seeds:
        for n in names:
            for cem in (False, True):
                defs = [DefenseSpec.parse(d) for d in BASELINES[n]]
                if cem:
                    defs.append(DefenseSpec.parse(("cem", {"lam": float(lam), "k_per_class": k_per_class})))
                tc = TrainConfig(dataset=dataset, defenses=tuple(defs), epochs=epochs, batch_size=batch_size, lr=lr,
                                 seed=int(s))
                cells.append(DefenseTableConfig(train=tc, attacks=specs, eval_train=eval_train, baseline=n, cem=cem,
                                                lam=float(lam) if cem else 0.0))
    return cells


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
    from scipy import stats
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 2 or b.size < 2:
        return math.nan
    return float(stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue)


def _diff_ci(a, b, level=0.95):
    """Welch t-interval of mean(a) − mean(b); (NaN, NaN) with fewer than 2 values per side."""
    from scipy import stats
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
    tested verdict per baseline.  ``records``: :class:`~empirics.runs.Record` objects of
    ``defense-table`` cells (or plain dicts with ``baseline``, ``cem``, ``status`` and metrics)."""
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
