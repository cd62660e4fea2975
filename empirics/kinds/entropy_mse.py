"""Kind ``entropy-vs-mse``: the Fig. 3 analogue of the CEM paper — H(x|z) (Thm 2, relative)
against the decoder-attack MSE.

Per (σ, λ) one cell (:class:`EntropyMseConfig`): a split model trained with
Gaussian feature noise σ and CEM at weight λ (none at λ = 0), its H(x|z) estimate
(:func:`empirics.measure.conditional_entropy`) and the held-out decoder MSE.  The summary fits
``log MSE = a·H + b`` (OLS, t-interval for a) and compares a with 2/d, the slope of Theorem 1's
bound where it is tight; Spearman ρ(H, MSE).  Failed cells (near-chance or diverged models) are
excluded and counted.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np

from .. import registry
from ..checks import fit_log_linear, spearman
from ..experiments.common import RunContext, attack_model, train_model
from ..experiments.runner import execute_all
from ..figures import new_figure, save_figure
from ..records import Config, Kind, Outcome, Result
from ..results import Section
from ..specs import AttackSpec, DefenseSpec, TrainConfig
from ..store import RecordStore
from ..sweep.collect import describe, group_records, slug
from ..sweep.params import TrainSweep, param

__all__ = ["EntropyMseConfig", "EntropyMseResult", "EntropyMseSweep", "entropy_vs_mse_cells", "entropy_vs_mse",
           "summarise_entropy_vs_mse", "entropy_section", "plot_entropy_vs_mse", "SIGMAS", "KIND"]

#: the noise levels of a Fig. 3 sweep that names none
SIGMAS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8)


@dataclass(frozen=True, kw_only=True)
class EntropyMseConfig(Config):
    """One Fig. 3 cell: a model with noise σ (and CEM λ), its H(x|z) estimate and decoder MSE."""

    kind: ClassVar[str] = "entropy-vs-mse"
    train: TrainConfig
    attack: AttackSpec
    sigma: float
    lam: float
    k_per_class: int = 3
    covariance: str = "full"
    h_x: float = 0.0
    max_samples: int = 5000

    def __post_init__(self):
        object.__setattr__(self, "attack", AttackSpec.parse(self.attack))
        if not (self.sigma > 0):
            raise ValueError(f"sigmas: Theorem 2 needs noise > 0, got {self.sigma}")
        if self.covariance not in ("full", "diag"):
            raise ValueError(f"covariance: expected 'full' or 'diag', got {self.covariance!r}")

    def label(self) -> str:
        return f"{self.train.dataset} σ={self.sigma:g} λ={self.lam:g} seed {self.train.seed}"


@dataclass(frozen=True, kw_only=True)
class EntropyMseResult(Result):
    """Accuracy, the H(x|z) estimates by the three upper bounds on I(z; ẑ) (relative to ``h_x``),
    the input and feature dimensions and the held-out decoder MSE ± s.e."""

    accuracy: float
    chance: float
    n_test: int
    h_huber: float
    h_kl: float
    h_maxent: float
    h_x: float
    d: int
    d_features: int
    mse: float
    mse_stderr: float


@dataclass(frozen=True, kw_only=True)
class EntropyMseSweep(TrainSweep):
    """One Fig. 3 cell of a sweep; without ``sigma`` in the spec, the eight σ of :data:`SIGMAS`."""

    experiment: ClassVar[str] = "entropy-vs-mse"
    sigma: float = param("Gaussian feature-noise σ", 0.1, positive=True, axis=SIGMAS)
    epochs: int = param("training epochs", 20, minimum=1)
    k_per_class: int = param("mixture components per class (CEM and the H(x|z) estimate)", 3, minimum=1)
    covariance: str = param("full or diag (CEM and the H(x|z) estimate)", "full", choices=("full", "diag"))
    h_x: float = param("the H(x) the relative H(x|z) is measured against", 0.0)

    def configs(self) -> list:
        defs = [DefenseSpec.parse(("noise", {"sigma": float(self.sigma)}))]
        if self.lam > 0:
            defs.append(self.cem(float(self.lam), k_per_class=self.k_per_class, covariance=self.covariance))
        return [EntropyMseConfig(train=self.train_config(defs), attack=("decoder", {"epochs": self.attack_epochs}),
                                 sigma=float(self.sigma), lam=float(self.lam), k_per_class=self.k_per_class,
                                 covariance=self.covariance, h_x=self.h_x)]


def entropy_vs_mse_cells(*, dataset: str = "digits", sigmas: Sequence[float] = SIGMAS,
                         lams: Sequence[float] = (0.0,), seeds: Sequence[int] = (0,), epochs: int = 20,
                         attack_epochs: int = 30, k_per_class: int = 3, covariance: str = "full", h_x: float = 0.0,
                         batch_size: int = 64, lr: float = 1e-3, data_fingerprint=None) -> list[EntropyMseConfig]:
    """One configuration per (seed, λ, σ).

    Parameters
    ----------
    dataset : str
        A registered dataset.
    sigmas, lams : sequence of float
        Noise levels σ (> 0) and CEM weights λ (0 = none).
    seeds : sequence of int
        Master seeds.
    epochs, attack_epochs : int
        Training epochs of the model and of the decoder attack.
    k_per_class : int
        Components per class (CEM and the H(x|z) estimate).
    covariance : {'full', 'diag'}
        Covariance type of both.
    h_x : float
        The H(x) that H(x|z) is relative to.
    batch_size : int
        Training batch size.
    lr : float
        Learning rate.
    data_fingerprint : str, optional
        Content hash of an in-memory or local dataset.

    Returns
    -------
    list of EntropyMseConfig
    """
    cells = []
    for seed in seeds:
        for lam in lams:
            for s in sigmas:
                if not float(s) > 0:
                    raise ValueError(f"sigmas: Theorem 2 needs noise > 0, got {float(s)}")
                for c in EntropyMseSweep(dataset=dataset, seed=int(seed), lam=float(lam), sigma=float(s), epochs=epochs,
                                         attack_epochs=attack_epochs, k_per_class=k_per_class, covariance=covariance,
                                         h_x=h_x, batch_size=batch_size, lr=lr).configs():
                    cells.append(c if data_fingerprint is None else
                                 c.replace(train=c.train.replace(data_fingerprint=data_fingerprint)))
    return cells


def run_cell(cfg: EntropyMseConfig, ctx: RunContext) -> Outcome:
    """Train, estimate H(x|z) (:func:`empirics.measure.conditional_entropy`), attack with the decoder."""
    from ..measure import conditional_entropy  # deferred: torch
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
    """Fit and rank statistics over the ``ok`` records; failed ones are counted, not used.

    Parameters
    ----------
    records : sequence of Record
        Records of this kind (those with status ``error`` are left out by the callers).
    d : int, optional
        Input dimension (default: the records').

    Returns
    -------
    dict
        ``n_models``, ``n_cells``, ``n_failed``, ``failed``, ``d``, ``two_over_d``, ``records`` (rows) and,
        with ≥ 3 models, ``spearman``, ``fit``, ``two_over_d_in_ci``.
    """
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
    """Run (or reuse from ``out/records``) every cell for one seed and summarise (library entry point).

    Parameters
    ----------
    out : str or Path
        Folder whose ``records/`` holds the cells.
    dataset : str or DataSplit
        A registered name, or your own split (registered under its name, identified by its content).
    sigmas, lams : sequence of float
        Noise levels and CEM weights.
    seed : int
        Master seed.
    epochs, attack_epochs, k_per_class, covariance, h_x
        As for :func:`entropy_vs_mse_cells`.
    device : str
        Torch device.
    progress : bool
        Progress bars.
    store : RecordStore, optional
        Instead of ``out/records``.

    Returns
    -------
    dict
        :func:`summarise_entropy_vs_mse`'s summary plus ``record_list``.
    """
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

    Parameters
    ----------
    summary : dict
        :func:`summarise_entropy_vs_mse`'s output.
    path : str or Path, optional
        Where to save the figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    recs = summary["records"]
    h = np.array([r["h_huber"] for r in recs])
    m = np.array([r["mse"] for r in recs])
    fig = new_figure((5, 3.6))
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
    if path is not None:
        save_figure(fig, path)
    else:
        fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- tables

MODELS_NOTE = (
    "One split model per (σ, λ, seed): Gaussian feature noise σ, CEM weight λ (0 = none). h_* = H(x|z) by Theorem 2 "
    "from a fitted per-class Gaussian mixture, relative to H(x) = h_x (estimates); mse ± mse_stderr = held-out "
    "decoder-attack MSE per element (s.e. over test inputs). Failed models are listed below, not used.")
FIT_NOTE = (
    "OLS fit of log MSE = a·H + b over the models that trained; slope a with its 95 % t-interval [ci_low, ci_high]; "
    "where Theorem 1 is tight, log MSE = (2/d)·H − log 2πe, so a = 2/d (d = input dimension); r = correlation of H "
    "and log MSE; spearman = rank correlation of H and MSE (the paper's 'strong exponential correlation'). "
    "Informational: the bound need not be tight on real data.")
FIT_TABLE = "fit of log MSE on H(x|z): slope vs Theorem 1's 2/d, Spearman ρ"


def entropy_section(records, *, key: str, title: str, figure=None, spearman_check: float | None = None) -> Section:
    """The Fig. 3 section of ``records``: the models, the fit and its figure (``figure`` path), and —
    with ``spearman_check`` — the check ρ(H, MSE) ≥ that value (``invlimits defenses``; the sweep
    collector tabulates ρ without judging it).

    Parameters
    ----------
    records : sequence of Record
        Records of this kind (those with status ``error`` are left out by the callers).
    key, title : str
        The section's key and title.
    figure : Path, optional
        Where the figure goes.
    spearman_check : float, optional
        The ρ a check requires.

    Returns
    -------
    Section
    """
    summ = summarise_entropy_vs_mse(records)
    sec = Section(key, title, records=list(records))
    sec.description = (f"{summ['n_models']} of {summ['n_cells']} recorded models trained; "
                       f"{summ['n_failed']} failed (near chance or diverged) and are excluded.")
    if summ["n_failed"]:
        sec.headline = f"{summ['n_failed']} of {summ['n_cells']} models failed (near chance or diverged): excluded."
    sec.table_notes["models"] = MODELS_NOTE
    sec.tables["models"] = [{k: r[k] for k in ("sigma", "lam", "seed", "accuracy", "h_huber", "h_kl", "h_maxent",
                                                "mse", "mse_stderr")} for r in summ["records"]]
    if summ["failed"]:
        sec.tables["failed models"] = summ["failed"]
    if "fit" in summ:
        f = summ["fit"]
        if spearman_check is not None:
            rho = summ["spearman"]
            sec.add(f"Spearman ρ(H, MSE) >= {spearman_check:g}", f"{summ['n_models']} models", rho, spearman_check,
                    rho - spearman_check, rho >= spearman_check, tolerance=0)
        sec.table_notes[FIT_TABLE] = FIT_NOTE
        sec.tables[FIT_TABLE] = [{"slope": f["slope"], "ci_low": f["slope_ci"][0], "ci_high": f["slope_ci"][1],
                                  "two_over_d": summ["two_over_d"], "two_over_d_in_ci": summ["two_over_d_in_ci"],
                                  "spearman": summ["spearman"], "r": f["r"], "n_models": f["n"]}]
        if figure is not None:
            sec.figures.append(str(figure))
            plot_entropy_vs_mse(summ, figure)
    elif not summ["n_failed"]:
        sec.headline = f"{summ['n_models']} models trained: the fit needs at least 3."
    sec.data["summary"] = {k: v for k, v in summ.items() if k != "records"}
    return sec


def group(config: dict) -> str:
    """Everything but σ (also in the noise defense) and the seed: one fit per λ, dataset, epochs ..."""
    c = copy.deepcopy(config)
    c["train"].pop("seed", None)
    c.pop("sigma", None)
    for d in c["train"]["defenses"]:
        if d["name"] == "noise":
            d["params"].pop("sigma", None)
    return json.dumps(c, sort_keys=True)


def fig3_sections(records, out) -> list[Section]:
    """One Fig. 3 section (fit and figure) per group of the records (the sweep collector's)."""
    groups = group_records(records, group)
    secs = []
    for i, (sig, recs) in enumerate(groups.items()):
        c = json.loads(sig)
        title = "Fig. 3 analogue (" + describe(c, f"λ = {c['lam']:g}") + ")"
        secs.append(entropy_section(recs, key=f"fig3{slug(i, len(groups))}", title=title,
                                    figure=Path(out) / f"entropy_vs_mse{slug(i, len(groups))}.png"))
    return secs


KIND = Kind(config=EntropyMseConfig, result=EntropyMseResult, run=run_cell, sweep=EntropyMseSweep,
            sections=fig3_sections, group=group)
