"""Inversion attacks: optimality against the exact MMSE, and attacks on a real dataset.

``--benchmark optimality`` (the default when no ``--dataset`` is given): synthetic Gaussian
mixtures (d = 16) through linear-Gaussian encoders (three noise levels; exact MMSE from the
closed-form mixture posterior, with Thm 1's bound beside it) and small nonlinear encoders with
Gaussian noise (MMSE by self-normalised importance sampling ± s.e.); every attack's MSE, its ratio
to the MMSE, and checks:
decoder ≤ 1.05 × MMSE in the linear settings; no attack more than 4 paired s.e. below the error of
the exact (SNIS) posterior mean on the same test pairs; Thm 1's bound ≤ MMSE — each a one-sided
test with the standard errors of both sides at family-wise level 0.001.  Each (attack, setting)
is a configuration (:class:`empirics.kinds.optimality.OptimalityConfig`) with its record in ``OUT/records``: an
interrupted run resumes, a changed setting recomputes.
``--dataset digits|lfw|mnist1d``: train the undefended (or ``--noise``-defended) split model,
attack held-out images, save a figure of originals vs reconstructions; on digits also the
truncation experiment of Yang et al. (m = 1, 3, 10; truncation-trained vs untruncated).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from ..checks import z_critical
from ..experiments.common import RunContext
from ..experiments.runner import device_name, execute
from ..figures import new_figure, save_figure
from ..kinds.dataset_attack import ATTACKS_NOTE, TRUNCATION_NOTE, DatasetAttackConfig
from ..kinds.optimality import (DESCRIPTION, TABLE_NOTE, optimality_cells, optimality_checks, optimality_table,
                                plot_optimality)
from ..registry import DATASET_ATTACKS, load_dataset, names
from ..results import Section
from ..specs import AttackSpec, DefenseSpec, TrainConfig
from ..store import RecordStore, make_record

__all__ = ["add_arguments", "run", "verify_args", "PSNR_THRESHOLD"]


#: what --quick changes (listed in --help only here: the commands that accept it)
QUICK_HELP = "fewer samples and epochs, no GAN (benchmark); fewer attack epochs (--dataset)"
#: the examples at the end of --help
EXAMPLES = """examples:
  invlimits attack --benchmark optimality --out runs/optimality        # attacks vs the exact MMSE
  invlimits attack --dataset digits --noise 0.1 --out runs/attack       # train a split model, attack it
  invlimits attack --dataset digits --attacks decoder,optimization --epochs 20 --out runs/attack2"""

#: decoder PSNR (dB) an undefended digits model must allow, keyed by --quick.  Derived from the spread
#: over seeds 0-19 (benchmarks/attack_threshold.py): mean − 4 sample standard deviations, so a correct
#: implementation fails at a rate of about 3e-5 per run under a normal model of the seed spread.
#: --quick: mean 25.166 dB, sd 0.240 dB, min 24.738 dB over 20 seeds -> 24.21 dB (20/20 pass);
#: full size: mean 27.564 dB, sd 0.259 dB, min 26.949 dB -> 26.53 dB (20/20 pass).
PSNR_THRESHOLD = {True: 24.21, False: 26.53}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The subcommand's options (argparse)."""
    p.add_argument("--benchmark", choices=["optimality", "none"], default=None,
                   help="optimality: attacks vs exact MMSE on synthetic mixtures (default when no --dataset)")
    p.add_argument("--dataset", choices=names("attack"), default=None,
                   help="attack a split model trained on this dataset")
    p.add_argument("--attacks", default=None,
                   help="comma-separated subset of decoder,gan,optimization (default: all for the benchmark, "
                        "decoder for --dataset)")
    p.add_argument("--noise", type=float, default=0.0, help="--dataset: feature-noise defense sigma")
    p.add_argument("--epochs", type=int, default=None, help="attack training epochs")
    p.add_argument("--model-epochs", type=int, default=None, help="--dataset: split-model training epochs")
    p.add_argument("--n-aux", type=int, default=None, help="benchmark: auxiliary samples per setting")
    p.add_argument("--n-test", type=int, default=None, help="benchmark: test samples per setting")
    p.add_argument("--no-truncation", action="store_true", help="--dataset digits: skip the truncation experiment")


def verify_args(ns: argparse.Namespace) -> None:
    """Under ``invlimits verify``: the optimality benchmark only, sized for ≤ 90 s (≤ 25 s quick)."""
    ns.benchmark, ns.dataset = "optimality", None
    if ns.quick:
        ns.attacks, ns.epochs, ns.n_aux, ns.n_test = "decoder,optimization", 8, 20000, 1000
        ns._sigmas_nonlinear = (0.3,)
    else:
        ns.epochs, ns.n_aux, ns.n_test = 12, 20000, 2000


def _attack_names(args, default):
    names = default if not args.attacks else [a.strip() for a in args.attacks.split(",") if a.strip()]
    bad = [a for a in names if a not in DATASET_ATTACKS]
    if bad or not names:
        raise ValueError(f"--attacks: expected names among {', '.join(DATASET_ATTACKS)}, got {bad or args.attacks!r}")
    return names


def _optimality(args) -> tuple[Section, list[dict]]:
    from ..attacks.optimality import run_optimality  # deferred: torch

    quick = bool(getattr(args, "quick", False))
    names = _attack_names(args, ["decoder", "gan", "optimization"])
    sec = Section("attack", "Inversion attacks vs exact MMSE (synthetic mixtures, d = 16)", description=DESCRIPTION)
    store = RecordStore(Path(args.out) / "records")
    sizes = dict(n_aux=args.n_aux or (20000 if quick else 40000), n_test=args.n_test or (1000 if quick else 2000),
                 epochs=args.epochs or (8 if quick else 20), opt_steps=100 if quick else 200)
    nonlinear = getattr(args, "_sigmas_nonlinear", (0.1, 0.3))
    cells = optimality_cells(names, **sizes, seed=args.seed, sigmas_nonlinear=nonlinear)
    done = {k: store.get(c) for k, c in cells.items()}
    resume = [r.result for r in done.values() if r is not None and r.ok]

    def on_record(r):
        store.put(make_record(cells[(r.attack, r.setting)], "ok", result=r, seconds=r.seconds,
                              device=device_name(args.device)))
    results = run_optimality(
        sigmas_linear=(0.2, 0.5, 1.0), sigmas_nonlinear=tuple(nonlinear), attacks=tuple(names), n_aux=sizes["n_aux"],
        n_test=sizes["n_test"], epochs=sizes["epochs"], opt_steps=sizes["opt_steps"], seed=args.seed,
        device=args.device, progress=getattr(args, "progress", False), resume=resume, on_record=on_record)
    sec.records = [store.get(cells[(r.attack, r.setting)]) for r in results]
    optimality_checks(sec, results)
    rows = optimality_table(results)
    sec.tables["optimality"] = rows
    sec.table_notes["optimality"] = TABLE_NOTE
    if rows:
        sec.figures.append(plot_optimality(Path(args.out) / "attack_optimality.png", rows))
    return sec, [r.to_dict() for r in results]


def _plot(path: Path, x, recons: dict, shape) -> str:
    """Originals (top row) and each attack's reconstructions of the same held-out inputs."""
    n = len(x)
    rows = 1 + len(recons)
    fig = new_figure((1.2 * n, 1.3 * rows))
    axes = fig.subplots(rows, n, squeeze=False)
    series = [("original", x)] + list(recons.items())
    for r, (label, imgs) in enumerate(series):
        for c in range(n):
            ax = axes[r][c]
            img = np.asarray(imgs[c], dtype=float)
            if len(shape) == 1:
                ax.plot(img, lw=0.8)
                ax.set_ylim(0, 1)
            else:
                img = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
                ax.imshow(img.clip(0, 1), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(label, fontsize=8)
    fig.suptitle("held-out originals (top) vs reconstructions", fontsize=9)
    return save_figure(fig, path, dpi=110)


def _dataset_config(args, quick):
    name = args.dataset
    epochs = args.epochs or (10 if quick else 30)
    specs = []
    for a in _attack_names(args, ["decoder"]):
        specs.append(AttackSpec.parse("optimization", tv=0.01, steps=300) if a == "optimization"
                     else AttackSpec.parse(a, epochs=epochs))
    defs = (DefenseSpec.parse(("noise", {"sigma": float(args.noise)})),) if args.noise > 0 else ()
    model_epochs = args.model_epochs or {"digits": 15, "lfw": 30, "mnist1d": 30}[name]
    tc = TrainConfig(dataset=name, defenses=defs, epochs=model_epochs, batch_size=128, lr=3e-3, seed=args.seed)
    return DatasetAttackConfig(train=tc, attacks=tuple(specs),
                               truncation=name == "digits" and not args.no_truncation,
                               truncation_epochs=15 if quick else 30)


def _dataset(args) -> tuple[Section, dict]:
    quick = bool(getattr(args, "quick", False))
    cfg = _dataset_config(args, quick)
    rec = execute(cfg, RecordStore(Path(args.out) / "records"), RunContext(device=args.device, progress=getattr(args, "progress", False)))
    name, res = args.dataset, rec.result
    sec = Section("attack", f"Inversion attacks on {name} (noise σ = {args.noise:g})", records=[rec])
    if rec.status != "ok":
        sec.headline = f"the model failed to train: {rec.reason}"
        sec.add("model trained (not near chance)", name, res.get("accuracy"), None, -1.0, False, note=rec.reason)
        return sec, {}
    sec.description = (f"Split model '{cfg.train.preset}' trained {cfg.train.epochs} epochs (test accuracy "
                       f"{res['accuracy']:.3f}); the attacker's auxiliary set is the training split, reconstructions "
                       "are of held-out test images, observed exactly as deployed.")
    rows = [{k: v for k, v in r.items() if k != "reconstructions"} for r in res["attacks"]]
    thr = PSNR_THRESHOLD[quick] if args.epochs is None and args.model_epochs is None else None  # derived sizes only
    for r in rows:
        if r["attack"] == "decoder" and name == "digits" and args.noise == 0 and thr is not None:
            sec.add(f"decoder PSNR ≥ {thr:.2f} dB (held-out, no defense)", name, r["psnr"], thr, r["psnr"] - thr,
                    r["psnr"] >= thr, tolerance="threshold = mean − 4 s.d. over seeds 0-19",
                    note="benchmarks/attack_threshold.py derives the threshold")
    sec.tables["attacks"] = rows
    sec.table_notes["attacks"] = ATTACKS_NOTE
    ds = load_dataset(name, seed=cfg.train.data_seed)
    k = len(res["attacks"][0]["reconstructions"]) if res["attacks"] else 0
    recons = {r["attack"]: r["reconstructions"] for r in res["attacks"]}
    if k:
        sec.figures.append(_plot(Path(args.out) / f"reconstructions_{name}.png", ds.test.x[:k].numpy(), recons,
                                 ds.input_shape))
    extra = {"dataset_attacks": rows, "model": {"preset": cfg.train.preset, "test_accuracy": res["accuracy"],
                                                "epochs": cfg.train.epochs, "noise": args.noise}}
    if res.get("truncation"):
        sec.tables["truncation (Yang et al.)"] = res["truncation"]
        sec.table_notes["truncation (Yang et al.)"] = TRUNCATION_NOTE
        # the paper's claims: a decrease significantly > 0 (paired one-sided test, α = 0.05 over the family)
        zc = z_critical(0.05, len(res["truncation_checks"]))
        for c in res["truncation_checks"]:
            need = zc * c["stderr"]
            sec.add(c["check"], c["instance"], c["decrease"], need, c["decrease"] - need, c["decrease"] > need,
                    tolerance=f"decrease > {zc:.2f} paired s.e. (one-sided, family-wise α = 0.05)",
                    note=f"MSE decrease {c['decrease']:.3g} ± {c['stderr']:.2g} (paired s.e.)")
        extra["truncation"] = res["truncation"]
    return sec, extra


def run(args):
    """Run the subcommand: its sections (and the top-level keys it adds to ``results.json``)."""
    bench = args.benchmark
    if bench is None:
        bench = "optimality" if args.dataset is None else "none"
    sections, extra = [], {}
    if not (math.isfinite(args.noise) and args.noise >= 0):
        raise ValueError(f"--noise: expected a non-negative finite sigma, got {args.noise}")
    for nm in ("epochs", "model_epochs", "n_aux", "n_test"):
        v = getattr(args, nm, None)
        if v is not None and v < 1:
            raise ValueError(f"--{nm.replace('_', '-')}: expected a positive integer, got {v}")
    if bench == "optimality":
        t0 = time.perf_counter()
        sec, rows = _optimality(args)
        sec.seconds = time.perf_counter() - t0
        sections.append(sec)
        extra["optimality"] = rows
    if args.dataset is not None:
        import torch  # deferred: torch (the parser of every command imports this module)

        # the embedded-dataset models are tiny: one intra-op thread is as fast on an idle machine and
        # far faster on a busy one (no spin-waiting threads); restored afterwards
        old = torch.get_num_threads()
        torch.set_num_threads(1)
        t0 = time.perf_counter()
        try:
            sec, ex = _dataset(args)
        finally:
            torch.set_num_threads(old)
        sec.seconds = time.perf_counter() - t0
        if sections:
            sec.key = "attack_dataset"
        sections.append(sec)
        extra.update(ex)
    return sections, extra
