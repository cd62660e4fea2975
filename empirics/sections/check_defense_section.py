"""Check your own encoder: attack it as deployed, hold it to every bound, a tested verdict.

``invlimits check-defense MODULE:FUNCTION --dataset NAME --noise SIGMA --out DIR`` imports
``MODULE`` and calls ``FUNCTION()`` with no arguments — this deliberately runs your code, so only
point it at code you trust.  The returned ``torch.nn.Module`` (lazy layers allowed) is the client
encoder: trained with a small server head under Gaussian feature noise σ = SIGMA, or — with
``--weights PATH`` (a state_dict, loaded with ``torch.load(weights_only=True)``) or an encoder
without trainable parameters — checked exactly as given (a head is trained only for the accuracy
figure; ``--no-head`` skips it).  Attacks reconstruct held-out inputs from the deployed features
(and ``bayes``, the exact posterior mean, whenever the channel's posterior is known); the bounds of
Theorems 1+2 (huber / kl / maxent), Cramér–Rao and van Trees are computed, each with its
``guarantee``: "deterministic" (exact quantities and proved inequalities only), "confidence" (holds
with probability ≥ 1 − α, ``--alpha``, from Monte-Carlo limits over ``--n-mc`` draws) or "none" (an
estimate).  Every attack-vs-bound comparison is a one-sided test at family-wise level 0.1 %; the
exit status is 1 only when an attack is significantly below a *guaranteed* floor (a bug), 2 for bad
input (one line, before any work: e.g. ``--n-mc`` below the minimum for ``--alpha``), else 0.
Options given explicitly win over ``--quick``.
``results.json`` gets top-level ``attacks``, ``bounds``, ``floors`` (the tightest deterministic and
the tightest confidence floor), ``comparisons``, ``warnings``, ``verdict``,
``encoder_trained`` ...; the run's record is in ``DIR/records`` (an identical rerun reuses it).
"""

from __future__ import annotations

import math
from pathlib import Path

from ..figures import new_figure, save_figure
from ..kinds.check_defense import ALPHA, N_MC, check_mc_settings, check_section, guarantee_label, min_mc_draws
from ..registry import names

__all__ = ["add_arguments", "settings", "run", "QUICK", "SIZED"]


#: what --quick changes (listed in --help only here: the commands that accept it)
QUICK_HELP = "3 epochs, 3 attack epochs, 30 optimization steps, 5000 Monte-Carlo draws (an option given explicitly wins)"
#: the examples at the end of --help
EXAMPLES = """examples:
  invlimits check-defense examples/my_encoder.py:make_encoder --dataset digits --noise 0.1 --out runs/check
  invlimits check-defense examples/my_encoder.py:make_linear --dataset synthetic-mixture --noise 0.3 --quick --out runs/c2
  invlimits check-defense mypkg.models:make_encoder --weights trained.pt --dataset digits --noise 0.1 --out runs/c3
  (MODULE:FUNCTION is imported and called: this runs your code)"""

#: settings of --quick: (epochs, attack epochs, optimization steps, Fisher samples, Monte-Carlo draws)
QUICK = {"epochs": 3, "attack_epochs": 3, "opt_steps": 30, "fisher_samples": 64, "n_mc": 5000}
#: the options --quick shrinks, with their defaults without it (an option given explicitly wins)
SIZED = ("epochs", "attack_epochs", "n_mc")


def add_arguments(p):
    """The subcommand's options (argparse)."""
    p.add_argument("encoder", metavar="MODULE:FUNCTION",
                   help="encoder factory, e.g. mypkg.models:make_encoder or path/to/file.py:make_encoder")
    p.add_argument("--dataset", default="digits", choices=names("check-defense", aliases=True), help="data to check on")
    p.add_argument("--noise", type=float, default=0.1, help="σ of the Gaussian noise on the features (> 0)")
    p.add_argument("--encoder-noise", type=float, default=0.0, metavar="SIGMA",
                   help="declared s.d. of Gaussian noise inside a stochastic encoder, counted as channel noise")
    p.add_argument("--weights", type=Path, default=None, metavar="PATH",
                   help="state_dict to load into the encoder; the encoder is then checked without training it")
    p.add_argument("--no-head", action="store_true", help="train no head (no accuracy); needs an encoder checked "
                                                          "as given (--weights or no trainable parameters)")
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs of encoder + head (or the head alone) (default: 15; 3 with --quick)")
    p.add_argument("--attack-epochs", type=int, default=None,
                   help="training epochs of the decoder attack (default: 20; 3 with --quick)")
    p.add_argument("--n-mc", type=int, default=None,
                   help=f"Monte-Carlo draws (H(x), Fisher information, departure); at least {min_mc_draws(ALPHA)} at the "
                        f"default --alpha (default: {N_MC}; {QUICK['n_mc']} with --quick)")
    p.add_argument("--max-samples", type=int, default=None, metavar="N",
                   help="use only the first N training and held-out inputs (less memory: everything held per input "
                        "shrinks) (default: all)")
    p.add_argument("--alpha", type=float, default=ALPHA,
                   help="family-wise level of the confidence floors, in (0, 1): each holds with probability >= 1 - alpha")


def _plot(res, path):
    fig = new_figure((6.0, 3.4))
    ax = fig.subplots()
    names = [a["name"] for a in res["attacks"]]
    vals = [float(a["mse"]) for a in res["attacks"]]  # stored JSON writes non-finite numbers as strings
    errs = [float(a["mse_stderr"]) if math.isfinite(float(a["mse_stderr"])) else 0.0 for a in res["attacks"]]
    if names:
        ax.bar(names, vals, yerr=errs, color="tab:blue", label="attack MSE (held out, ± s.e.)")
    shown = []
    for i, (bn, b) in enumerate(res["bounds"].items()):
        v = b.get("value")
        if isinstance(v, (int, float)) and math.isfinite(v) and v > 0:  # None: no finite bound
            g = b.get("guarantee", "none")
            ax.axhline(v, ls="-" if g != "none" else "--", color=f"C{i + 1}",
                       label=f"{bn} ({guarantee_label(b)})")
            shown.append(v)
    positive = [v for v in vals + shown if isinstance(v, (int, float)) and math.isfinite(v) and v > 0]
    if positive and max(positive) / min(positive) > 20:  # a log axis only when values span decades
        ax.set_yscale("log")
        ax.set_ylim(min(positive) / 2, max(positive) * 2)
    if not shown:
        ax.set_title("no finite bound", fontsize=9)
    ax.set_ylabel("MSE per element")
    if names or shown:
        ax.legend(fontsize=6, loc="best")
    return save_figure(fig, path)


def settings(args) -> dict:
    """The sizes of this run: an option given explicitly always wins; the rest come from --quick or the defaults."""
    kw = dict(QUICK) if args.quick else {"epochs": 15, "attack_epochs": 20, "n_mc": N_MC}
    kw.update({k: getattr(args, k) for k in SIZED if getattr(args, k, None) is not None})
    kw["alpha"] = args.alpha
    return kw


def run(args):
    """Run the subcommand: its section and the top-level keys of ``results.json``."""
    from ..experiments.defense_check import check_defense_record  # deferred: torch (the parser imports this module)
    kw = settings(args)
    check_mc_settings(kw["n_mc"], kw["alpha"])  # one line, exit 2, before the encoder is imported
    rec = check_defense_record(args.encoder, dataset=args.dataset, noise=args.noise, encoder_noise=args.encoder_noise,
                               weights=args.weights, head=not args.no_head, out=args.out, seed=args.seed,
                               device=args.device, max_samples=args.max_samples,
                               progress=getattr(args, "progress", False), **kw)
    sec = check_section(rec, f"check-defense: {args.encoder} on {args.dataset}, σ = {args.noise}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    sec.figures.append(_plot(rec.result, Path(args.out) / "check_defense.png"))
    res = rec.result
    extra = {k: res[k] for k in ("attacks", "bounds", "floors", "comparisons", "warnings", "verdict", "bug",
                                 "encoder_trained", "head_trained", "accuracy", "chance", "certifiable_mse", "dataset",
                                 "noise", "encoder_noise", "affine")}
    return [sec], {**extra, "key": rec.key, "weights": rec.config.get("weights")}
