"""Check your own encoder: train it with a server head, attack it, compute every bound.

``invlimits check-defense MODULE:FUNCTION --dataset NAME --noise SIGMA --out DIR`` imports
``MODULE`` and calls ``FUNCTION()`` with no arguments — this deliberately runs your code, so only
point it at code you trust.  The returned ``torch.nn.Module`` (lazy layers allowed) is the client
encoder; a small MLP head is trained with it under Gaussian noise σ = SIGMA; the decoder and
optimization attacks reconstruct held-out inputs; the bounds of Theorems 1+2 (huber / kl /
maxent) and the unbiased Cramér–Rao (dFIL) bound are computed.  ``results.json`` gets top-level
``attacks`` (list of ``{name, mse, ...}``), ``bounds`` (name → ``{value, rigorous, assumptions}``;
``rigorous`` only where the theorem's assumptions hold exactly), ``certifiable_mse`` (the largest
per-element MSE Theorems 1+2 could certify, ``theory.certifiable_mse``) and a ``verdict``.
"""

from __future__ import annotations

from pathlib import Path

from ..report import Section


def add_arguments(p):
    p.add_argument("encoder", metavar="MODULE:FUNCTION",
                   help="encoder factory, e.g. mypkg.models:make_encoder or path/to/file.py:make_encoder")
    from ..registry import names
    p.add_argument("--dataset", default="digits", choices=names("check-defense", aliases=True), help="data to check on")
    p.add_argument("--noise", type=float, default=0.1, help="σ of the Gaussian noise on the features (> 0)")
    p.add_argument("--epochs", type=int, default=15, help="training epochs of encoder + head")
    p.add_argument("--attack-epochs", type=int, default=20, help="training epochs of the decoder attack")


def _plot(res, path):
    from matplotlib.figure import Figure
    names = [a["name"] for a in res["attacks"]]
    vals = [a["mse"] for a in res["attacks"]]
    fig = Figure(figsize=(5.5, 3.2))
    ax = fig.subplots()
    ax.bar(names, vals, color="tab:blue", label="attack MSE (held out)")
    for i, (bn, b) in enumerate(res["bounds"].items()):
        ax.axhline(b["value"], ls="--" if not b["rigorous"] else "-", color=f"C{i + 1}",
                   label=f"{bn}{' (rigorous)' if b['rigorous'] else ' (estimate)'}")
    ax.axhline(res["certifiable_mse"], color="k", ls=":", label="certifiable cap")
    ax.set_yscale("log")
    allv = [v for v in vals + [b["value"] for b in res["bounds"].values()] + [res["certifiable_mse"]]
            if v is not None and v > 0 and v != float("inf")]
    if allv:
        ax.set_ylim(min(allv) / 3, max(allv) * 3)
    ax.set_ylabel("MSE per element")
    ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return str(path)


def run(args):
    from ..experiments import check_defense
    epochs = 3 if args.quick else args.epochs
    aepochs = 3 if args.quick else args.attack_epochs
    res = check_defense(args.encoder, dataset=args.dataset, noise=args.noise, out=None, epochs=epochs,
                        attack_epochs=aepochs, seed=args.seed, device=args.device,
                        opt_steps=30 if args.quick else 200, fisher_samples=64 if args.quick else 256)
    sec = Section("check-defense", f"check-defense: {args.encoder} on {args.dataset}, σ = {args.noise}",
                  description=res["verdict"])
    for a in res["attacks"]:
        for bn, b in res["bounds"].items():
            if b["rigorous"]:  # the attack MSE is a test-set mean: allow 3 of its standard errors
                tol = 3 * float(a.get("mse_stderr") or 0.0)
                sec.add(f"attack MSE >= {bn}", a["name"], a["mse"], b["value"], a["mse"] - b["value"] + tol,
                        a["mse"] - b["value"] + tol >= 0, note="margin includes 3 s.e. of the measured MSE")
    sec.tables["attacks"] = [{k: v for k, v in a.items() if k != "n"} for a in res["attacks"]]
    sec.table_notes["attacks"] = ("Held-out per-element reconstruction MSE (± s.e. over inputs) of each attack on "
                                  "your trained encoder, seeing the noisy features exactly as deployed.")
    sec.table_notes["bounds"] = (
        "Lower bounds on any attacker's per-element MSE. rigorous = yes only where every assumption of the "
        "theorem holds exactly (see the assumptions column); 'no' marks an estimate, which a real attack may "
        "beat. certifiable_mse in results.json caps what Thms 1+2 could ever certify here.")
    sec.tables["bounds"] = [{"bound": k, "value": v["value"], "rigorous": "yes" if v["rigorous"] else "no",
                             "assumptions": v["assumptions"]} for k, v in res["bounds"].items()]
    sec.data.update({"accuracy": res["accuracy"], "conditional_entropy": res["conditional_entropy"]})
    Path(args.out).mkdir(parents=True, exist_ok=True)
    sec.figures.append(_plot(res, Path(args.out) / "check_defense.png"))
    extra = {k: res[k] for k in ("attacks", "bounds", "certifiable_mse", "verdict", "accuracy", "dataset", "noise")}
    return [sec], extra
