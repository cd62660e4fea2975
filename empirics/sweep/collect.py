"""Aggregate whatever records of a sweep exist into its experiment's tables and figures.

Cells are grouped by everything in their configuration except the axes a table summarises over,
so a spec with several datasets, λ values or noise levels gives one table (and figure) per group:

* ``entropy-vs-mse`` (Fig. 3 of the CEM paper): one group per configuration without σ and seed (so
  per λ, dataset, epochs ...); per group :func:`~empirics.experiments.entropy_mse.summarise_entropy_vs_mse`
  — Spearman ρ(H, MSE) and the OLS slope of log MSE on H(x|z) with its 95 % t-interval beside
  Theorem 1's 2/d — and :func:`~empirics.experiments.entropy_mse.plot_entropy_vs_mse`.
* ``defense-table`` (Table 1): one group per configuration without baseline, CEM, λ and seed (the
  noise σ stays), split by the CEM λ (the cells without CEM belong to every λ);
  :func:`~empirics.experiments.defense_table.summarise_defense_table` — means and t-intervals over the
  seeds whose model trained, failed cells counted, tested verdicts.
* ``train``: per configuration without seed, the mean and t-interval over seeds of accuracy and of
  every attack's MSE / PSNR / SSIM.

Cells without a record (not run yet, or in flight) are counted as missing; cells with an ``error``
record are listed with their message and left out of every table.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from ..report import Section

__all__ = ["status_rows", "collect_sections", "group_signature"]


def group_signature(exp: str, config: dict) -> str:
    """The part of a cell's configuration that its table does *not* summarise over (as JSON)."""
    c = copy.deepcopy(config)
    c["train"].pop("seed", None)
    if exp == "entropy-vs-mse":
        c.pop("sigma", None)
        for d in c["train"]["defenses"]:
            if d["name"] == "noise":
                d["params"].pop("sigma", None)
    elif exp == "defense-table":
        for k in ("baseline", "cem", "lam"):
            c.pop(k, None)
        c["noise_sigma"] = [d["params"].get("sigma") for d in c["train"]["defenses"] if d["name"] == "noise"]
        c["train"].pop("defenses")
    return json.dumps(c, sort_keys=True)


def _describe(sig: str, exp: str) -> str:
    c = json.loads(sig)
    t = c["train"]
    bits = [t["dataset"], f"{t['epochs']} epochs", f"lr {t['lr']:g}", f"batch {t['batch_size']}"]
    if t.get("optimizer") != "adam":
        bits.append(t["optimizer"])
    if exp == "entropy-vs-mse":
        bits.append(f"λ = {c['lam']:g}")
    if exp == "defense-table" and c.get("noise_sigma"):
        bits.append(f"noise σ = {c['noise_sigma'][0]:g}")
    if exp == "train":
        bits.append(", ".join(f"{d['name']}:" + ",".join(f"{k}={v}" for k, v in d["params"].items() if v is not None)
                              for d in t["defenses"]) or "no defense")
    return ", ".join(bits)


def status_rows(cells, records) -> list[dict]:
    """One row per cell: key, label, status (``missing`` without a record), reason, seconds."""
    rows = []
    for c, r in zip(cells, records):
        rows.append({"key": c.key, "cell": c.label(), "status": r.status if r else "missing",
                     "reason": (r.reason[:160] if r and r.status != "ok" else ""),
                     "seconds": r.seconds if r else None, "device": r.device if r else ""})
    return rows


def _groups(exp: str, cells, records) -> dict:
    groups: dict = {}
    for c, r in zip(cells, records):
        if r is None or r.status == "error":
            continue
        groups.setdefault(group_signature(exp, r.config), []).append(r)
    return groups


def _slug(i: int, n: int) -> str:
    return "" if n == 1 else f"_{i + 1}"


def _fig3(spec, cells, records, out: Path) -> list[Section]:
    from ..experiments.entropy_mse import plot_entropy_vs_mse, summarise_entropy_vs_mse
    groups = _groups(spec.experiment, cells, records)
    secs = []
    for i, (sig, recs) in enumerate(groups.items()):
        summ = summarise_entropy_vs_mse(recs)
        sec = Section(f"fig3{_slug(i, len(groups))}", f"Fig. 3 analogue ({_describe(sig, spec.experiment)})",
                      records=recs)
        sec.description = (f"{summ['n_models']} of {summ['n_cells']} recorded models trained; "
                           f"{summ['n_failed']} failed (near chance or diverged) and are excluded.")
        sec.table_notes["models"] = (
            "One split model per (σ, seed): Gaussian feature noise σ, CEM weight λ (0 = none). h_* = H(x|z) by "
            "Theorem 2 from a fitted per-class Gaussian mixture, relative to H(x) = h_x (estimates); mse ± mse_stderr "
            "= held-out decoder-attack MSE per element (s.e. over test inputs).")
        sec.tables["models"] = [{k: r[k] for k in ("sigma", "lam", "seed", "accuracy", "h_huber", "h_kl", "h_maxent",
                                                    "mse", "mse_stderr")} for r in summ["records"]]
        if summ["failed"]:
            sec.tables["failed models"] = summ["failed"]
        if "fit" in summ:
            f = summ["fit"]
            name = "fit of log MSE on H(x|z): slope vs Theorem 1's 2/d, Spearman ρ"
            sec.table_notes[name] = (
                "OLS fit of log MSE = a·H + b over the models that trained; slope a with its 95 % t-interval "
                "[ci_low, ci_high]; where Theorem 1 is tight a = 2/d (d = input dimension); spearman = rank "
                "correlation of H and MSE (the paper's 'strong exponential correlation'). Informational.")
            sec.tables[name] = [{"slope": f["slope"], "ci_low": f["slope_ci"][0], "ci_high": f["slope_ci"][1],
                                 "two_over_d": summ["two_over_d"], "two_over_d_in_ci": summ["two_over_d_in_ci"],
                                 "spearman": summ["spearman"], "r": f["r"], "n_models": f["n"]}]
            sec.figures.append(str(out / f"entropy_vs_mse{_slug(i, len(groups))}.png"))
            plot_entropy_vs_mse(summ, sec.figures[-1])
        else:
            sec.headline = f"{summ['n_models']} models trained: the fit needs at least 3."
        sec.data["summary"] = {k: v for k, v in summ.items() if k != "records"}
        secs.append(sec)
    return secs


def _table1(spec, cells, records) -> list[Section]:
    from ..experiments.defense_table import summarise_defense_table
    groups = _groups(spec.experiment, cells, records)
    parts = []
    for sig, recs in groups.items():
        lams = sorted({r.config["lam"] for r in recs if r.config["cem"]}) or [None]
        for lam in lams:
            parts.append((sig, lam, [r for r in recs if not r.config["cem"] or r.config["lam"] == lam]))
    secs = []
    for i, (sig, lam, recs) in enumerate(parts):
        attacks = [a["name"] for a in recs[0].config["attacks"]]
        names = list(dict.fromkeys(r.config["baseline"] for r in recs))
        summ = summarise_defense_table(recs, names, attacks)
        title = f"Table 1 analogue ({_describe(sig, spec.experiment)}" + (f", CEM λ = {lam:g})" if lam else ")")
        sec = Section(f"table1{_slug(i, len(parts))}", title, records=recs,
                      description=f"CEM raised the held-out decoder MSE (Welch test, p < 0.05) with the accuracy "
                                  f"change's 95 % interval above −1 point for {summ['cem_helps_count']} of "
                                  f"{summ['compared']} defenses.")
        if summ["failed"]:
            sec.headline = f"{len(summ['failed'])} of {len(recs)} models failed (near chance or diverged): excluded."
        tname = "defense table (mean and 95% CI half-width over the seeds that trained)"
        sec.table_notes[tname] = (
            "Each base defense without (cem = no) and with CEM (cem = yes), one model per seed; seeds = models that "
            "trained of those recorded; each column is the mean over them with its 95 % t-interval half-width (*_ci; "
            "accuracy_low/high = the interval clipped to [0, 1]). <attack>_<split>_mse/psnr/ssim = reconstruction "
            "quality on training (train) or held-out (test) inputs.")
        sec.tables[tname] = [{**r, "cem": "yes" if r["cem"] else "no"} for r in summ["rows"]]
        if summ["verdicts"]:
            sec.tables["does CEM help? (tests, not means)"] = [{"baseline": n, **v} for n, v in summ["verdicts"].items()]
        if summ["failed"]:
            sec.tables["failed models"] = summ["failed"]
        secs.append(sec)
    return secs


def _train(spec, cells, records) -> list[Section]:
    from ..checks import mean_ci
    groups = _groups(spec.experiment, cells, records)
    rows, recs_all = [], []
    for sig, recs in groups.items():
        recs_all += recs
        ok = [r for r in recs if r.status == "ok"]
        row = {"setting": _describe(sig, spec.experiment), "seeds": f"{len(ok)} of {len(recs)}"}
        if ok:
            acc = mean_ci([r.result["accuracy"] for r in ok], lo=0.0, hi=1.0)
            row.update(accuracy=acc["mean"], accuracy_ci=acc["half_width"])
            metrics = sorted({(a, part, m) for r in ok for a, parts in r.result["attacks"].items()
                              for part, vals in parts.items() for m in ("mse", "psnr", "ssim") if m in vals})
            for a, part, m in metrics:
                vals = [r.result["attacks"][a][part][m] for r in ok if m in r.result["attacks"].get(a, {}).get(part, {})]
                ci = mean_ci(vals, lo=0.0 if m in ("mse", "ssim") else None, hi=1.0 if m == "ssim" else None)
                row[f"{a}_{part}_{m}"], row[f"{a}_{part}_{m}_ci"] = ci["mean"], ci["half_width"]
        rows.append(row)
    sec = Section("train", "Trained and attacked models (mean over seeds)", records=recs_all)
    name = "models (mean and 95% CI half-width over the seeds that trained)"
    sec.table_notes[name] = (
        "One row per setting; seeds = models that trained of those recorded (failed: near chance or diverged); "
        "accuracy and <attack>_<split>_<metric> (held-out 'test' or 'train' inputs) are means over those seeds with "
        "their 95 % t-interval half-widths (*_ci).")
    sec.tables[name] = rows
    return [sec]


def collect_sections(spec, cells, records, out) -> list[Section]:
    """The experiment's sections from the records that exist (``records`` aligned with ``cells``)."""
    out = Path(out)
    if not any(r is not None and r.status != "error" for r in records):
        return []
    if spec.experiment == "entropy-vs-mse":
        return _fig3(spec, cells, records, out)
    if spec.experiment == "defense-table":
        return _table1(spec, cells, records)
    return _train(spec, cells, records)
