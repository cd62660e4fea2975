"""Kind ``synthetic-bounds``: bounds beside the exact truth — a known Gaussian mixture through a
trained *linear* encoder.

x ~ Σ wᵢ N(μᵢ, Σᵢ) in d dimensions (labels = components); the client is ẑ = Ax (no bias,
``k_feat`` features; A trained with a head), z = ẑ + N(0, σ²I).  Then ẑ of the float64 map is
exactly the mixture Σ wᵢ N(Aμᵢ, AΣᵢAᵀ), so Theorem 2 (huber), its kl and maxent variants hold
exactly, and the floors are check-defense's certificates of the deployed float32 channel
(:func:`.check_bounds.certified_bounds`, the same code): ``<m>.deterministic`` (H(x) by its
ELK / Chernoff-α lower bound, the encoder's float32 rounding bounded by analysis) and
``<m>.confidence`` (H(x) by its lower confidence limit from ``mc`` draws; holds with probability
≥ 1 − ``alpha``) — each with ``guarantee`` and no standard error (fixed numbers).  Beside them: the
exact MMSE (Monte Carlo over the closed-form posterior, ± s.e.), the Bayes estimator E[x|z] on the
very test observations the attacks see, and the decoder and optimization attacks — each attack's
error also as a *paired* difference from the Bayes estimator's on the same test pairs (≥ 0 in
expectation, by the definition of the MMSE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Sequence

import numpy as np

from theory._validate import expect_int, expect_number
from theory.mixture import mixture_entropy_lower_limit, mixture_mmse_mc, mixture_posterior

from ..checks import compare_all
from ..experiments.common import RunContext
from ..experiments.runner import execute_all
from ..figures import new_figure, save_figure
from ..records import Config, Kind, Outcome, Result
from ..results import Section
from ..seeding import numpy_rng, stream_seed, torch_generator
from ..specs import AttackSpec
from ..store import RecordStore
from .check_defense import check_mc_settings, guarantee_label

__all__ = ["SyntheticConfig", "SyntheticResult", "synthetic_cells", "synthetic_bounds", "synthetic_rows",
           "synthetic_checks", "synthetic_table", "plot_synthetic_bounds", "linear_split_model",
           "SYNTHETIC_NOTE", "KIND"]


@dataclass(frozen=True, kw_only=True)
class SyntheticConfig(Config):
    """One synthetic-bounds cell: a known mixture through a trained linear encoder at noise σ."""

    kind: ClassVar[str] = "synthetic-bounds"
    sigma: float
    d: int = 8
    k: int = 3
    k_feat: int = 4
    n_train: int = 3000
    n_test: int = 1000
    epochs: int = 20
    lr: float = 1e-2
    attack_epochs: int = 30
    opt_steps: int = 300
    mc: int = 20000
    alpha: float = 1e-3  # family-wise level of the confidence floors
    seed: int = 0

    def __post_init__(self):
        expect_number(self.sigma, "sigma", positive=True)
        for n in ("d", "k", "k_feat", "n_train", "n_test", "epochs", "attack_epochs", "opt_steps", "mc"):
            expect_int(getattr(self, n), n)
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 < self.alpha < 1:
            raise ValueError(f"alpha: expected a number in (0, 1), got {self.alpha!r}")

    def label(self) -> str:
        return f"mixture d={self.d} σ={self.sigma:g} seed {self.seed}"


@dataclass(frozen=True, kw_only=True)
class SyntheticResult(Result):
    """Accuracy; H(x) ± s.e.; per bound name its Theorem 1 floor, s.e. and guarantee; the exact
    MMSE ± s.e.; per estimator its MSE and paired difference from the Bayes estimator."""

    accuracy: float
    h_x: float
    h_x_stderr: float
    bounds: dict
    mmse: dict
    attacks: dict


def synthetic_cells(*, sigmas: Sequence[float] = (0.1, 0.3, 1.0), seeds: Sequence[int] = (0,), **kw) -> list[SyntheticConfig]:
    """One :class:`SyntheticConfig` per (seed, σ).

    Parameters
    ----------
    sigmas : sequence of float
        Noise levels.
    seeds : sequence of int
        Master seeds.
    **kw
        Other fields of :class:`SyntheticConfig` (``d``, ``k``, ``epochs``, ``mc`` ...).

    Returns
    -------
    list of SyntheticConfig
    """
    return [SyntheticConfig(sigma=float(s), seed=int(seed), **kw) for seed in seeds for s in sigmas]


def linear_split_model(d: int, k_feat: int, num_classes: int, seed: int, sigma: float):
    """SplitModel ``Linear(d, k_feat, bias=False)`` + MLP head + noise σ (weights from the seed's init stream).

    Parameters
    ----------
    d, k_feat, num_classes : int
        Input, feature and class counts.
    seed : int
        Master seed.
    sigma : float
        Noise σ.

    Returns
    -------
    SplitModel
    """
    import torch  # deferred: torch, as the three below (this module is read without it)
    from torch import nn

    from ..defenses import make_defense
    from ..models import SplitModel
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(seed, "init"))
        enc = nn.Linear(d, k_feat, bias=False)
        head = nn.Sequential(nn.Linear(k_feat, 64), nn.ReLU(), nn.Linear(64, num_classes))
    return SplitModel(enc, head, input_shape=(d,), defenses=[make_defense("noise", sigma=sigma)])


def run_cell(cfg: SyntheticConfig, ctx: RunContext) -> Outcome:
    """Train the linear encoder; check-defense's certificates of it, exact MMSE, the Bayes estimator, attacks."""
    import torch  # deferred: torch, as the imports of the training code and check-defense's machinery below

    from ..data import synthetic_mixture
    from ..experiments.affine import deployed_departure, exact_affine_map, rounding_departure_bound
    from ..experiments.check_bounds import THM12, certified_bounds, deterministic_entropy_lower
    from ..training import evaluate, train

    check_mc_settings(cfg.mc, cfg.alpha)
    split = synthetic_mixture(n_train=cfg.n_train, n_test=cfg.n_test, d=cfg.d, k=cfg.k, seed=cfg.seed)
    gmm = split.meta["gmm"]
    hx = mixture_entropy_lower_limit(gmm, cfg.mc, numpy_rng(cfg.seed, "mc", 0), alpha=cfg.alpha)
    model = linear_split_model(cfg.d, cfg.k_feat, split.num_classes, cfg.seed, cfg.sigma)
    train(model, split.train, epochs=cfg.epochs, batch_size=64, lr=cfg.lr, seed=cfg.seed, device=ctx.device,
          progress=ctx.progress)
    acc = float(evaluate(model, split.test, seed=cfg.seed)["accuracy"])
    model.eval()
    dev = next(model.parameters()).device
    amap, why = exact_affine_map(model.encoder, (cfg.d,), split.test.x)
    if amap is None:  # pragma: no cover - a bias-free Linear is affine by construction
        raise ValueError(f"encoder: {why}")
    A = amap.A
    P = cfg.sigma ** 2 * np.eye(cfg.k_feat)
    rb, rwhy = rounding_departure_bound(model.encoder, amap)
    dep = deployed_departure(model.encode, amap, gmm.sample(cfg.mc, numpy_rng(cfg.seed, "mc", 2)), cfg.sigma,
                             device=dev, bound=rb)
    floors, info = certified_bounds(gmm, amap, cfg.sigma, hx_det=deterministic_entropy_lower(gmm), hx_limit=hx,
                                    departure=dep, rounding=rb, rounding_why=rwhy, alpha=cfg.alpha)
    bounds = {}
    for m in THM12:
        for kind in ("deterministic", "confidence"):
            b = floors[f"thm1+thm2_{m}.{kind}"]
            h = (info["h_x_given_z"][kind] or {}).get(m)
            bounds[f"{m}.{kind}"] = {"h_lower": h, "mse_bound": b.value, "mse_bound_stderr": 0.0,
                                     "guarantee": b.guarantee, "confidence": b.confidence,
                                     "assumptions": b.assumptions}
    mm = mixture_mmse_mc(gmm, A, P, cfg.mc, numpy_rng(cfg.seed, "mc", 1))
    # the Bayes estimator and every attack on the same held-out observations
    x_test = split.test.x
    with torch.no_grad():
        z = model.client_features(x_test.to(dev), training=False,
                                  generator=torch_generator(cfg.seed, "attack_eval", device=dev)).double().cpu()
    post = mixture_posterior(gmm, A, P)
    bayes_err = ((post.mean(z.numpy()) - x_test.double().numpy()) ** 2).mean(1)
    n = len(bayes_err)
    attacks = {}
    for spec in (AttackSpec.parse("decoder", epochs=cfg.attack_epochs),
                 AttackSpec.parse("optimization", steps=cfg.opt_steps)):
        att = spec.build()
        att.fit(model, split.train, seed=cfg.seed, device=ctx.device, progress=ctx.progress)
        err = ((att.reconstruct(z.float()).cpu().double() - x_test.double()) ** 2).mean(1).numpy()
        diff = err - bayes_err
        attacks[spec.name] = {"mse": float(err.mean()), "mse_stderr": float(err.std(ddof=1) / math.sqrt(n)),
                              "minus_bayes": float(diff.mean()), "minus_bayes_stderr": float(diff.std(ddof=1) / math.sqrt(n))}
    res = SyntheticResult(accuracy=acc, h_x=hx.mean, h_x_stderr=hx.stderr, bounds=bounds,
                          mmse={"value": mm.value / cfg.d, "stderr": mm.stderr / cfg.d},
                          attacks={**attacks, "bayes": {"mse": float(bayes_err.mean()),
                                                        "mse_stderr": float(bayes_err.std(ddof=1) / math.sqrt(n)),
                                                        "minus_bayes": 0.0, "minus_bayes_stderr": 0.0}})
    return Outcome("ok", res)


def synthetic_bounds(out, *, sigmas=(0.1, 0.3, 1.0), seed: int = 0, device="cpu", progress: bool = False,
                     store=None, **kw) -> dict:
    """Run (or reuse) one cell per σ; returns ``{"records": [Record, ...]}``.

    Parameters
    ----------
    out : str or Path
        Folder whose ``records/`` holds the cells.
    sigmas : sequence of float
        Noise levels.
    seed : int
        Master seed.
    device : str
        Torch device.
    progress : bool
        Progress bars.
    store : RecordStore, optional
        Instead of ``out/records``.
    **kw
        Other fields of :class:`SyntheticConfig`.

    Returns
    -------
    dict
    """
    store = store or RecordStore(Path(out) / "records")
    recs = execute_all(synthetic_cells(sigmas=sigmas, seeds=(seed,), **kw), store,
                       RunContext(device=device, progress=progress), desc="synthetic_bounds")
    return {"records": recs}


def synthetic_rows(summary) -> list[dict]:
    """One row per (σ, floor, estimator): the floor (a fixed number) and the measured MSE with its s.e.

    Parameters
    ----------
    summary : dict
        ``{"records": [Record, ...]}``.

    Returns
    -------
    list of dict
    """
    rows = []
    for r in summary["records"]:
        if r.status != "ok":
            continue
        res, sigma = r.result, r.config["sigma"]
        ests = list(res["attacks"].items()) + [("exact MMSE", {"mse": res["mmse"]["value"],
                                                               "mse_stderr": res["mmse"]["stderr"]})]
        for bn, b in res["bounds"].items():
            if b["mse_bound"] is None:  # no finite floor of this kind (the reason is in its assumptions)
                continue
            for an, a in ests:
                rows.append({"sigma": sigma, "bound": bn, "guarantee": guarantee_label(b), "bound_mse": b["mse_bound"],
                             "bound_stderr": b["mse_bound_stderr"], "against": an, "mse": a["mse"],
                             "mse_stderr": a["mse_stderr"], "difference": a["mse"] - b["mse_bound"]})
    return rows


def plot_synthetic_bounds(summary, path=None):
    """Known mixture, linear encoder: attack MSEs, the Bayes estimator and the exact MMSE (± 2 s.e.)
    against σ, with the Thm 1 + Thm 2 (huber / kl / maxent) bounds below them.  Returns the Figure.

    Parameters
    ----------
    summary : dict
        ``{"records": [Record, ...]}``.
    path : str or Path, optional
        Where to save the figure.

    Returns
    -------
    matplotlib.figure.Figure
    """

    recs = sorted([r for r in summary["records"] if r.status == "ok"], key=lambda r: r.config["sigma"])
    fig = new_figure((5.5, 3.4))
    ax = fig.subplots()
    if recs:
        sig = np.array([r.config["sigma"] for r in recs])
        series = [("exact MMSE", [(r.result["mmse"]["value"], r.result["mmse"]["stderr"]) for r in recs], "k", "o")]
        for i, name in enumerate(recs[0].result["attacks"]):
            series.append((name if name == "bayes" else f"{name} attack",
                           [(r.result["attacks"][name]["mse"], r.result["attacks"][name]["mse_stderr"]) for r in recs],
                           f"C{i}", "s"))
        for label, vals, color, marker in series:
            v = np.array(vals)
            ax.errorbar(sig, v[:, 0], yerr=2 * v[:, 1], color=color, marker=marker, capsize=3, label=label)
        for i, bn in enumerate(recs[0].result["bounds"]):
            vals = [r.result["bounds"][bn]["mse_bound"] for r in recs]
            if any(v is None for v in vals):
                continue
            ax.plot(sig, vals, ls="--" if bn.endswith("confidence") else ":", marker="_", markersize=16,
                    markeredgewidth=2, color=f"C{i + 4}",
                    label=f"Thm 1 + {bn} ({guarantee_label(recs[0].result['bounds'][bn])})")
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("feature noise σ")
    ax.set_ylabel("MSE per dimension")
    ax.legend(fontsize=6)
    if path is not None:
        save_figure(fig, path)
    else:
        fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- tables

SYNTHETIC_NOTE = (
    "A known Gaussian mixture x in d dimensions through a trained linear encoder ẑ = Ax and noise "
    "z = ẑ + N(0, σ² I), so ẑ is exactly a mixture. bound_mse = check-defense's floor of the deployed float32 "
    "channel: Theorem 1 at H(x) − U − (departure price) for the named upper bound U on I(z;ẑ) (huber = Thm 2 as "
    "printed); guarantee = deterministic (H(x) by its ELK / Chernoff-α lower bound, the encoder's float32 "
    "rounding bounded by analysis: no Monte Carlo) or confidence 1 − α (H(x) by its lower confidence limit from "
    "the Monte-Carlo draws). A floor is a fixed number (bound_stderr 0). against = the measured attack, the Bayes "
    "estimator E[x|z] on the same test observations, or the exact MMSE (Monte Carlo over the closed-form "
    "posterior); mse ± mse_stderr per dimension; difference = mse − bound_mse (a negative difference within "
    "the standard error is sampling noise, not a violation: see the checks).")


def synthetic_checks(sec: Section, records) -> None:
    """Every guaranteed floor against every estimator: one-sided tests, family-wise α = 0.001.

    Parameters
    ----------
    sec : Section
        Gets one check row per comparison.
    records : sequence of Record
        ``synthetic-bounds`` records.

    Returns
    -------
    None
    """
    pairs, labels = [], []
    for r in records:
        if r.status != "ok":
            continue
        res, sigma = r.result, r.config["sigma"]
        ests = [(n, a["mse"], a["mse_stderr"]) for n, a in res["attacks"].items()]
        ests.append(("exact MMSE", res["mmse"]["value"], res["mmse"]["stderr"]))
        for bn, b in res["bounds"].items():
            if b.get("guarantee", "none") == "none" or b["mse_bound"] is None:
                continue
            for an, m, se in ests:
                pairs.append(dict(value=m, bound=b["mse_bound"], value_stderr=se, bound_stderr=b["mse_bound_stderr"]))
                labels.append((f"{an if an == 'exact MMSE' else an + ' MSE'} >= Thm1+{bn} bound",
                               f"mixture d={r.config['d']}, σ={sigma:g}"))
    for (check, inst), cmp in zip(labels, compare_all(pairs)):
        sec.add_comparison(check, inst, cmp)


def synthetic_table(sec: Section, records, name: str, figure=None) -> None:
    """The bound-vs-estimator table of ``records`` (and the figure, when a path is given).

    Parameters
    ----------
    sec : Section
        Gets the table (and figure).
    records : sequence of Record
        ``synthetic-bounds`` records.
    name : str
        The table's name.
    figure : Path, optional
        The figure file.

    Returns
    -------
    None
    """
    summ = {"records": list(records)}
    sec.tables[name] = synthetic_rows(summ)
    sec.table_notes[name] = SYNTHETIC_NOTE
    if figure is not None:
        sec.figures.append(str(figure))
        plot_synthetic_bounds(summ, figure)


KIND = Kind(config=SyntheticConfig, result=SyntheticResult, run=run_cell)
