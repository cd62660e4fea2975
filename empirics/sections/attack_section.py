"""Inversion attacks: optimality against the exact MMSE, and attacks on a real dataset.

``--benchmark optimality`` (the default when no ``--dataset`` is given): synthetic Gaussian
mixtures (d = 16) through linear-Gaussian encoders (three noise levels; exact MMSE from the
closed-form mixture posterior, with Thm 1's bound beside it) and small nonlinear encoders with
Gaussian noise (MMSE by self-normalised importance sampling ± s.e.); every attack's MSE, its ratio
to the MMSE, and checks:
decoder ≤ 1.05 × MMSE in the linear settings; no attack more than 4 paired s.e. below the error of
the exact (SNIS) posterior mean on the same test pairs; Thm 1's bound ≤ MMSE.  Finished records of
an interrupted run with the same settings are reused (``optimality.jsonl``).
``--dataset digits|lfw|mnist1d``: train the undefended (or ``--noise``-defended) split model,
attack held-out images, save a figure of originals vs reconstructions; on digits also the
truncation experiment of Yang et al. (m = 1, 3, 10; truncation-trained vs untruncated).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..report import Section, append_jsonl, read_jsonl

__all__ = ["add_arguments", "run", "verify_args"]

_DATASETS = ("digits", "lfw", "mnist1d")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--benchmark", choices=["optimality", "none"], default=None,
                   help="optimality: attacks vs exact MMSE on synthetic mixtures (default when no --dataset)")
    p.add_argument("--dataset", choices=_DATASETS, default=None, help="attack a split model trained on this dataset")
    p.add_argument("--attacks", default=None,
                   help="comma-separated subset of decoder,gan,optimization (default: all for the benchmark, "
                        "decoder for --dataset)")
    p.add_argument("--noise", type=float, default=0.0, help="--dataset: feature-noise defense sigma (default 0)")
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
    bad = [a for a in names if a not in ("decoder", "gan", "optimization")]
    if bad:
        raise ValueError(f"--attacks: expected names among decoder, gan, optimization, got {bad}")
    return names


def _optimality(args) -> tuple[Section, list[dict]]:
    from ..attacks.optimality import run_optimality

    quick = bool(getattr(args, "quick", False))
    names = _attack_names(args, ["decoder", "gan", "optimization"])
    sec = Section("attack", "Inversion attacks vs exact MMSE (synthetic mixtures, d = 16)",
                  description="Per-dimension MSE of each attack on held-out samples beside the Bayes-optimal "
                              "MMSE (linear: exact mixture posterior; nonlinear: self-normalised importance "
                              "sampling, prior proposal) and Thm 1's bound exp(2H(x|z)/d)/(2πe). "
                              "ratio = mse/mmse ≥ 1 up to Monte-Carlo error. bayes_mse = error of the exact "
                              "posterior mean on the same test pairs; an attack more than 4 paired s.e. "
                              "below it would be a bug.")
    jsonl = Path(args.out) / "optimality.jsonl"
    cfg = {"sigmas_nonlinear": list(getattr(args, "_sigmas_nonlinear", (0.1, 0.3))),
           "n_aux": args.n_aux or (20000 if quick else 40000), "n_test": args.n_test or (1000 if quick else 2000),
           "epochs": args.epochs or (8 if quick else 20), "seed": args.seed, "quick": quick}
    # resume an interrupted run: finished (attack, setting) records with the same configuration
    # (an incompatible old file is replaced)
    old = [r for r in read_jsonl(jsonl) if r.get("config") == cfg] if jsonl.exists() else []
    if jsonl.exists() and not old:
        jsonl.unlink()
    recs = run_optimality(
        sigmas_nonlinear=tuple(cfg["sigmas_nonlinear"]), attacks=tuple(names), n_aux=cfg["n_aux"],
        n_test=cfg["n_test"], epochs=cfg["epochs"], seed=args.seed, device=args.device, quick=quick,
        progress=not getattr(args, "verify", False), resume=old,
        on_record=lambda r: append_jsonl(jsonl, {**r.to_dict(), "config": cfg}))
    rows = [r.to_dict() for r in recs]
    for r in recs:
        lo = r.bayes_mse - 4 * r.diff_stderr
        sec.add("attack MSE ≥ Bayes MSE − 4 s.e. (paired)", f"{r.attack}, {r.setting}", r.mse, lo, r.mse - lo,
                r.mse >= lo, note="Bayes = exact (SNIS) posterior mean on the same test pairs")
        if r.attack == "decoder" and r.setting.startswith("linear"):
            sec.add("decoder MSE ≤ 1.05 × MMSE", r.setting, r.mse, 1.05 * r.mmse, 1.05 * r.mmse - r.mse,
                    r.mse <= 1.05 * r.mmse)
    seen = set()
    for r in recs:
        if r.thm1_bound is not None and r.setting not in seen:
            seen.add(r.setting)
            sec.add("Thm 1 bound ≤ MMSE", r.setting, r.thm1_bound, r.mmse, r.mmse - r.thm1_bound,
                    r.thm1_bound <= r.mmse + 4 * r.mmse_stderr, note="H(x|z) by Monte Carlo")
    sec.tables["optimality"] = [{"attack": r["attack"], "setting": r["setting"], "mse": r["mse"],
                                 "mmse": r["mmse"], "mmse_stderr": r["mmse_stderr"], "ratio": r["ratio"],
                                 "bayes_mse": r["bayes_mse"], "ratio_to_bayes": r["mse"] / r["bayes_mse"],
                                 "diff_stderr": r["diff_stderr"],
                                 "thm1_bound": r["thm1_bound"], "ess_median": r["ess_median"]} for r in rows]
    sec.table_notes["optimality"] = ("Per-dimension MSE. Nonlinear MMSE: error of the SNIS posterior mean "
                                     "(≥ true MMSE in expectation; ess_median = median effective sample size).")
    if rows:
        sec.figures.append(_plot_optimality(Path(args.out) / "attack_optimality.png", rows))
    return sec, rows


def _plot_optimality(path: Path, rows: list[dict]) -> str:
    """Grouped bars: attack MSE / exact MMSE per setting (1 = Bayes-optimal)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    settings = list(dict.fromkeys(r["setting"] for r in rows))
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    width = 0.8 / len(attacks)
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for j, a in enumerate(attacks):
        vals = [next((r["ratio"] for r in rows if r["attack"] == a and r["setting"] == s), np.nan) for s in settings]
        ax.bar(np.arange(len(settings)) + (j - (len(attacks) - 1) / 2) * width, vals, width, label=a)
    ax.axhline(1.0, color="k", lw=1, label="MMSE (Bayes-optimal)")
    ax.axhline(1.05, color="k", lw=1, ls=":", label="1.05 × MMSE")
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(settings)), settings, rotation=15, fontsize=8)
    ax.set_ylabel("attack MSE / MMSE")
    ax.set_title("Inversion attacks against the physical limit (synthetic mixtures, d = 16)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)


def _plot(path: Path, x, recons: dict, shape, n: int = 8) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = 1 + len(recons)
    fig, axes = plt.subplots(rows, n, figsize=(1.2 * n, 1.3 * rows), squeeze=False)
    series = [("original", x)] + list(recons.items())
    for r, (label, imgs) in enumerate(series):
        for c in range(n):
            ax = axes[r][c]
            img = imgs[c].detach().cpu().numpy()
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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def _dataset(args) -> tuple[Section, dict]:
    import torch

    from .. import data as D
    from ..attacks import DecoderAttack, GANAttack, OptimizationAttack, TruncationAttack
    from ..defenses.noise import GaussianNoise
    from ..models import make_model
    from ..training import evaluate, train

    name = args.dataset
    ds = {"digits": D.digits, "lfw": D.lfw_faces, "mnist1d": D.mnist1d}[name](seed=args.seed)
    quick = bool(getattr(args, "quick", False))
    defenses = [GaussianNoise(args.noise)] if args.noise > 0 else []
    model = make_model(name, num_classes=ds.num_classes, seed=args.seed, defenses=defenses)
    model_epochs = args.model_epochs or {"digits": 15, "lfw": 30, "mnist1d": 30}[name]
    tr = train(model, ds.train, epochs=model_epochs, lr=3e-3, seed=args.seed, device=args.device,
               progress=True, eval_data=ds.test)
    acc = evaluate(model, ds.test)["accuracy"]
    sec = Section("attack", f"Inversion attacks on {name} (noise σ = {args.noise:g})",
                  description=f"Split model '{name}' trained {model_epochs} epochs (test accuracy {acc:.3f}); the "
                              "attacker's auxiliary set is the training split, reconstructions are of held-out "
                              "test images, observed exactly as deployed.")
    epochs = args.epochs or (10 if quick else 30)
    rows, recons = [], {}
    for a in _attack_names(args, ["decoder"]):
        att = {"decoder": lambda: DecoderAttack(epochs=epochs),
               "gan": lambda: GANAttack(epochs=epochs),
               "optimization": lambda: OptimizationAttack(tv=0.01, steps=300)}[a]()
        t0 = time.perf_counter()
        att.fit(model, ds.train, seed=args.seed, device=args.device, progress=True)
        res = att.evaluate(model, ds.test, seed=args.seed)
        rows.append({"attack": a, **res, "seconds": time.perf_counter() - t0})
        recons[a] = att.last_reconstruction[1][:8]
        if a == "decoder" and name == "digits" and args.noise == 0:
            sec.add("decoder PSNR ≥ 25 dB (held-out, no defense)", name, res["psnr"], 25.0, res["psnr"] - 25.0,
                    res["psnr"] >= 25.0)
    sec.tables["attacks"] = rows
    sec.table_notes["attacks"] = (
        "Each attack reconstructs held-out test inputs from the features the deployed model sends (with its "
        "noise, if any); mse = per-element MSE on [0,1] data (± mse_stderr over images), psnr in dB with data "
        "range 1, ssim per Wang et al. 2004 (images only), seconds = attack fit + evaluation time.")
    x8 = ds.test.x[:8]
    sec.figures.append(_plot(Path(args.out) / f"reconstructions_{name}.png", x8, recons, ds.input_shape))
    extra = {"dataset_attacks": rows, "model": {"preset": name, "test_accuracy": acc, "epochs": model_epochs,
                                                "noise": args.noise}}
    if name == "digits" and not args.no_truncation:
        trows, per = [], {}
        tep = 15 if quick else 30
        for m in (1, 3, 10):
            for label, tm in (("truncation-trained", m), ("untruncated", None)):
                att = TruncationAttack(m, train_m=tm, epochs=tep, hidden=256, depth=2)
                att.fit(model, ds.train, seed=args.seed, device=args.device, progress=False)
                res = att.evaluate(model, ds.test, seed=args.seed)
                xo, xr = att.last_reconstruction
                per[(m, label)] = ((xo - xr) ** 2).reshape(len(xo), -1).mean(1).double()
                trows.append({"m": m, "inversion model": label, **res})
        sec.tables["truncation (Yang et al.)"] = trows
        sec.table_notes["truncation (Yang et al.)"] = (
            "The attacker sees only the top-m entries of the prediction vector (trunc_m, Yang et al.). "
            "truncation-trained = inversion model trained on auxiliary vectors truncated to the same m (Eq. 10, "
            "logit rescaling of Eq. 12); untruncated = trained on full vectors, tested on truncated ones (the "
            "'previous approach'). m = 10 = all classes, so both coincide.")
        tt = {r["m"]: r for r in trows if r["inversion model"] == "truncation-trained"}
        un = {r["m"]: r for r in trows if r["inversion model"] == "untruncated"}
        for a, b in ((1, 3), (3, 10)):
            dd = per[(a, "truncation-trained")] - per[(b, "truncation-trained")]
            se = float(dd.std() / len(dd) ** 0.5)
            sec.add("truncation MSE decreases with m", f"m={a} → m={b}", tt[b]["mse"], tt[a]["mse"],
                    tt[a]["mse"] - tt[b]["mse"], tt[b]["mse"] < tt[a]["mse"],
                    note=f"paired s.e. of the decrease {se:.2g}")
        for m in (1, 3):
            sec.add("truncation-trained beats untruncated", f"m={m}", tt[m]["mse"], un[m]["mse"],
                    un[m]["mse"] - tt[m]["mse"], tt[m]["mse"] < un[m]["mse"])
        extra["truncation"] = trows
    return sec, extra


def run(args):
    bench = args.benchmark
    if bench is None:
        bench = "optimality" if args.dataset is None else "none"
    sections, extra = [], {}
    if args.noise < 0:
        raise ValueError(f"--noise: expected a non-negative sigma, got {args.noise}")
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
        import torch

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
