"""Fig. 3 analogue of the CEM paper: H(x|z) (Thm 2, relative) against the decoder-attack MSE.

Per (σ, λ) one cell (:class:`~empirics.runs.EntropyMseConfig`): a split model trained with
Gaussian feature noise σ and CEM at weight λ (none at λ = 0), its H(x|z) estimate
(:func:`empirics.measure.conditional_entropy`) and the held-out decoder MSE.  The summary fits
``log MSE = a·H + b`` (OLS, t-interval for a) and compares a with 2/d, the slope of Theorem 1's
bound where it is tight; Spearman ρ(H, MSE).  Failed cells (near-chance or diverged models) are
excluded and counted.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..checks import fit_log_linear, spearman
from ..runs import DefenseSpec, EntropyMseConfig, EntropyMseResult, TrainConfig
from .common import RunContext, attack_model, train_model
from .runner import Outcome, execute_all, runner

__all__ = ["entropy_vs_mse_cells", "entropy_vs_mse", "summarise_entropy_vs_mse", "plot_entropy_vs_mse"]


def entropy_vs_mse_cells(*, dataset: str = "digits", sigmas: Sequence[float] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8),
                         lams: Sequence[float] = (0.0,), seeds: Sequence[int] = (0,), epochs: int = 20,
                         attack_epochs: int = 30, k_per_class: int = 3, covariance: str = "full", h_x: float = 0.0,
                         batch_size: int = 64, lr: float = 1e-3, data_fingerprint=None) -> list[EntropyMseConfig]:
    """One configuration per (seed, λ, σ)."""
    cells = []
    for seed in seeds:
        for lam in lams:
            for s in sigmas:
                s, lam = float(s), float(lam)
                if not s > 0:
                    raise ValueError(f"sigmas: Theorem 2 needs noise > 0, got {s}")
                defs = [DefenseSpec.parse(("noise", {"sigma": s}))]
                if lam > 0:
                    defs.append(DefenseSpec.parse(("cem", {"lam": lam, "k_per_class": k_per_class,
                                                           "covariance": covariance})))
                tc = TrainConfig(dataset=dataset, defenses=tuple(defs), epochs=epochs, batch_size=batch_size, lr=lr,
                                 seed=int(seed), data_fingerprint=data_fingerprint)
                cells.append(EntropyMseConfig(train=tc, attack=("decoder", {"epochs": attack_epochs}), sigma=s,
                                              lam=lam, k_per_class=k_per_class, covariance=covariance, h_x=h_x))
    return cells


@runner("entropy-vs-mse")
def run_cell(cfg: EntropyMseConfig, ctx: RunContext) -> Outcome:
    from ..measure import conditional_entropy
    tm = train_model(cfg.train, ctx)
    d = int(np.prod(tm.split.input_shape))
    if tm.failed:
        return Outcome("failed", {"accuracy": tm.accuracy, "chance": tm.chance}, tm.failed)
    h = conditional_entropy(tm.model, tm.split.train, h_x=cfg.h_x, k_per_class=cfg.k_per_class,
                            covariance=cfg.covariance, max_samples=cfg.max_samples)
    att = attack_model(tm.model, tm.split, cfg.attack, seed=cfg.train.seed, ctx=ctx, eval_train=False)["test"]
    res = EntropyMseResult(accuracy=tm.accuracy, chance=tm.chance, n_test=tm.n_test, h_huber=h["huber"],
                           h_kl=h["kl"], h_maxent=h["maxent"], h_x=cfg.h_x, d=d, d_features=int(h["d_features"]),
                           mse=att["mse"], mse_stderr=att["mse_stderr"])
    return Outcome("ok", res)


def summarise_entropy_vs_mse(records, d: int | None = None) -> dict:
    """Fit and rank statistics over the ``ok`` records; failed ones are counted, not used."""
    ok = [r for r in records if r.status == "ok"]
    rows = [{**r.result, "sigma": r.config["sigma"], "lam": r.config["lam"], "seed": r.config["train"]["seed"],
             "key": r.key} for r in ok]
    if d is None:
        d = rows[0]["d"] if rows else None
    summ = {"n_models": len(rows), "n_cells": len(records), "n_failed": len(records) - len(rows),
            "failed": [{"key": r.key, "status": r.status, "reason": r.reason} for r in records if r.status != "ok"],
            "d": d, "two_over_d": 2.0 / d if d else None, "records": rows}
    if len(rows) >= 3:
        h = np.array([r["h_huber"] for r in rows])
        m = np.array([r["mse"] for r in rows])
        summ["spearman"] = spearman(h, m)
        summ["fit"] = fit_log_linear(h, m)
        lo, hi = summ["fit"]["slope_ci"]
        summ["two_over_d_in_ci"] = bool(lo <= 2.0 / d <= hi)
    return summ


def entropy_vs_mse(out, *, dataset: str = "digits", sigmas: Sequence[float] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8),
                   lams: Sequence[float] = (16.0,), seed: int = 0, epochs: int = 20, attack_epochs: int = 30,
                   k_per_class: int = 3, covariance: str = "full", h_x: float = 0.0, device: str = "cpu",
                   progress: bool = True, store=None) -> dict:
    """Run (or reuse from ``out/records``) every cell for one seed and summarise (library entry point)."""
    from .. import registry
    from ..store import RecordStore
    fp = None
    if not isinstance(dataset, str):  # a DataSplit: registered under its name, identified by content
        dataset, fp = registry.register_split(dataset), registry.fingerprint(dataset)
    cells = entropy_vs_mse_cells(dataset=dataset, sigmas=sigmas, lams=lams, seeds=(seed,), epochs=epochs,
                                 attack_epochs=attack_epochs, k_per_class=k_per_class, covariance=covariance, h_x=h_x,
                                 data_fingerprint=fp)
    store = store or RecordStore(Path(out) / "records")
    recs = execute_all(cells, store, RunContext(device=device, progress=progress), desc="entropy_vs_mse")
    summ = summarise_entropy_vs_mse(recs)
    summ["record_list"] = recs
    return summ


def plot_entropy_vs_mse(summary, path=None):
    """Scatter of relative H(x|z) against the decoder MSE with the fit and Thm 1's slope.

    Returns the matplotlib Figure (saved to ``path`` when given); the global backend is not touched.
    """
    from matplotlib.figure import Figure
    recs = summary["records"]
    h = np.array([r["h_huber"] for r in recs])
    m = np.array([r["mse"] for r in recs])
    fig = Figure(figsize=(5, 3.6))
    ax = fig.subplots()
    if len(recs):
        ax.scatter(h, m, c=[math.log10(r["sigma"]) for r in recs], cmap="viridis", label="models (colour: log10 σ)")
    if "fit" in summary:
        hh = np.linspace(h.min(), h.max(), 50)
        f = summary["fit"]
        ax.plot(hh, np.exp(f["slope"] * hh + f["intercept"]), "k-",
                label=f"fit: slope {f['slope']:.3g} [{f['slope_ci'][0]:.3g}, {f['slope_ci'][1]:.3g}]")
        ax.plot(hh, np.exp(2.0 / summary["d"] * hh - math.log(2 * math.pi * math.e)), "r--",
                label=f"Thm 1 at relative H, slope 2/d = {2.0 / summary['d']:.3g} (not a bound)")
    ax.set_yscale("log")
    ax.set_xlabel("relative H(x|z) by Thm 2 [nats]")
    ax.set_ylabel("decoder-attack MSE (held out)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    return fig
