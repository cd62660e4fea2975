"""Train a split model (optionally with defenses) and save a checkpoint.

``invlimits train --dataset digits --epochs 15 --defense noise:sigma=0.1`` trains the dataset's
preset with the one seeded training loop (:func:`empirics.training.train`), writing
``OUT/checkpoint.pt`` atomically after every epoch; re-running the same command after an
interruption resumes from it and ends with identical weights.  ``results.json`` holds the
per-epoch history and the final test accuracy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..report import Section

__all__ = ["add_arguments", "run", "parse_defense"]

_DATASETS = ("digits", "lfw", "mnist1d", "synthetic", "cifar10", "mnist")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", choices=_DATASETS, default="digits", help="training data (default digits)")
    p.add_argument("--preset", default=None,
                   help="model preset (default: the dataset's own; vgg11_bn or resnet20 for cifar10)")
    p.add_argument("--data-root", type=Path, default=None, help="folder with local CIFAR-10 / MNIST files")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--bottleneck", type=int, default=None, help="encoder output channels/features")
    p.add_argument("--defense", action="append", default=[], metavar="NAME[:k=v,...]",
                   help="defense to train with, e.g. noise:sigma=0.1 (repeatable, applied in order)")
    p.add_argument("--checkpoint", type=Path, default=None, help="checkpoint path (default OUT/checkpoint.pt)")


def parse_defense(spec: str):
    """``"noise:sigma=0.1"`` → ``make_defense("noise", sigma=0.1)`` (values parsed as numbers when possible)."""
    from ..defenses import make_defense

    name, _, rest = spec.partition(":")
    kw = {}
    for part in filter(None, rest.split(",")):
        if "=" not in part:
            raise ValueError(f"--defense: expected NAME[:key=value,...], got {spec!r}")
        k, v = part.split("=", 1)
        try:
            val = int(v) if v.lstrip("-").isdigit() else float(v)
        except ValueError:
            val = {"true": True, "false": False}.get(v.lower(), v)
        kw[k.strip()] = val
    try:
        return make_defense(name.strip(), **kw)
    except TypeError as exc:
        raise ValueError(f"--defense: bad parameters for {name!r}: {exc}") from None


def _data(args):
    from .. import data as D

    if args.dataset in ("cifar10", "mnist"):
        if args.data_root is None:
            raise ValueError(f"--data-root: required for --dataset {args.dataset} (nothing is downloaded)")
        return (D.load_cifar10 if args.dataset == "cifar10" else D.load_mnist)(args.data_root)
    if args.dataset == "synthetic":
        return D.synthetic_mixture(seed=args.seed)
    return {"digits": D.digits, "lfw": D.lfw_faces, "mnist1d": D.mnist1d}[args.dataset](seed=args.seed)


def run(args):
    from ..models import make_model
    from ..training import evaluate, train

    for nm in ("epochs", "batch_size"):
        if getattr(args, nm) < 1:
            raise ValueError(f"--{nm.replace('_', '-')}: expected a positive integer, got {getattr(args, nm)}")
    ds = _data(args)
    preset = args.preset or {"cifar10": "vgg11_bn"}.get(args.dataset, args.dataset)
    defenses = [parse_defense(s) for s in args.defense]
    kw = {"input_shape": ds.input_shape} if preset == "synthetic" else {}
    model = make_model(preset, num_classes=ds.num_classes, bottleneck=args.bottleneck, seed=args.seed,
                       defenses=defenses, **kw)
    ckpt = args.checkpoint or Path(args.out) / "checkpoint.pt"
    res = train(model, ds.train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                device=args.device, checkpoint=ckpt, progress=True, eval_data=ds.test)
    acc = evaluate(res.model, ds.test)["accuracy"]
    sec = Section("train", f"Train '{preset}' on {args.dataset}",
                  description=f"{args.epochs} epochs, defenses: {[d.config() for d in defenses] or 'none'}; "
                              f"checkpoint {ckpt}" + (f" (resumed after epoch {res.resumed_from_epoch})"
                                                      if res.resumed_from_epoch else ""))
    chance = 1.0 / ds.num_classes
    sec.add("test accuracy above chance", args.dataset, acc, chance, acc - chance, acc > chance)
    sec.tables["history"] = res.history
    return [sec], {"train": {**res.to_dict(), "test_accuracy": acc, "preset": preset,
                             "defenses": [d.config() for d in defenses]}}
