"""Train a split model (optionally with defenses) and save a checkpoint.

``invlimits train --dataset digits --epochs 15 --defense noise:sigma=0.1`` trains the dataset's
preset with the one seeded training loop (:func:`empirics.training.train`), writing
``OUT/checkpoint.pt`` atomically after every epoch.  The run is a configuration
(:class:`empirics.specs.TrainConfig`: dataset, preset, every defense parameter, epochs, batch
size, learning rate, seed ...); its record lands in ``OUT/records``.  Re-running the same
command after an interruption resumes from the checkpoint and ends with identical weights;
re-running it after it finished reuses the record.  A checkpoint written for a different
configuration is refused (the message lists the differing settings): pass ``--fresh`` to start
over or use another ``--out``.  More ``--epochs`` continue the same run.  ``--quick`` is not
accepted here (set ``--epochs``).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

from .. import registry
from ..checks import passing_accuracy
from ..experiments.common import RunContext
from ..experiments.runner import execute
from ..kinds.train import TrainRunConfig
from ..results import Section
from ..specs import DefenseSpec, TrainConfig
from ..store import RecordStore

__all__ = ["add_arguments", "run", "parse_defense", "train_defaults"]


#: the examples at the end of --help
EXAMPLES = """examples:
  invlimits train --dataset digits --defense noise:sigma=0.1 --defense cem:lam=0.002 --out runs/train
  invlimits train --dataset digits --epochs 20 --out runs/train          # more epochs continue the same run
  invlimits train --dataset cifar10 --data-root DATA --preset vgg11_bn --out runs/cifar"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The subcommand's options (argparse)."""
    p.add_argument("--dataset", choices=registry.names("train", aliases=True), default="digits", help="training data")
    p.add_argument("--preset", default=None,
                   help="model preset (default: the dataset's own; vgg11_bn or resnet20 for cifar10)")
    p.add_argument("--data-root", type=Path, default=None, help="folder with local CIFAR-10 / MNIST files")
    # one default per setting: the training configuration's own (TrainConfig), which sweeps use too
    d = train_defaults()
    p.add_argument("--epochs", type=int, default=d["epochs"], help="training epochs")
    p.add_argument("--batch-size", type=int, default=d["batch_size"], help="batch size")
    p.add_argument("--lr", type=float, default=d["lr"], help="learning rate (Adam)")
    p.add_argument("--bottleneck", type=int, default=None, help="encoder output channels/features")
    p.add_argument("--defense", action="append", default=[], metavar="NAME[:k=v,...]",
                   help="defense to train with, e.g. noise:sigma=0.1 (repeatable, applied in order)")
    p.add_argument("--checkpoint", type=Path, default=None, help="checkpoint path (default OUT/checkpoint.pt)")
    p.add_argument("--fresh", action="store_true", help="discard an existing checkpoint and train from scratch")


def train_defaults() -> dict:
    """The defaults of :class:`~empirics.specs.TrainConfig` (epochs, batch size, learning rate ...):
    ``invlimits train`` and every sweep of trained models share them."""
    return {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}


def parse_defense(spec: str):
    """``"noise:sigma=0.1"`` → the Defense (every parameter validated against the registry)."""
    return DefenseSpec.parse(spec).build()


def _config(args):
    if getattr(args, "quick", False):
        raise ValueError("--quick: not used by train (its size is --epochs); drop --quick")
    if not (isinstance(args.lr, float) and math.isfinite(args.lr) and args.lr > 0):
        raise ValueError(f"--lr: expected a positive finite number, got {args.lr}")
    for nm in ("epochs", "batch_size"):
        if getattr(args, nm) < 1:
            raise ValueError(f"--{nm.replace('_', '-')}: expected a positive integer, got {getattr(args, nm)}")
    spec = registry.spec(args.dataset)
    fp = None
    if spec.needs_root:
        fp = registry.fingerprint(registry.load_dataset(spec.name, root=args.data_root))
    defenses = tuple(DefenseSpec.parse(s) for s in args.defense)
    tc = TrainConfig(dataset=spec.name, preset=args.preset, data_fingerprint=fp, bottleneck=args.bottleneck,
                     defenses=defenses, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    return TrainRunConfig(train=tc)


def run(args):
    """Run the subcommand: its sections (and the top-level keys it adds to ``results.json``)."""
    cfg = _config(args)
    ckpt = args.checkpoint or Path(args.out) / "checkpoint.pt"
    store = RecordStore(Path(args.out) / "records")
    reused = store.done(cfg) and not args.fresh
    rec = execute(cfg, store, RunContext(device=args.device, progress=getattr(args, "progress", False), data_root=args.data_root,
                                         checkpoint=ckpt, fresh=args.fresh), reuse=not args.fresh)
    res = rec.result
    tc = cfg.train
    how = (f"reused record {rec.key} (this configuration was trained before)" if reused else
           f"record {rec.key}" + (f", resumed from the checkpoint after epoch {res['resumed_from_epoch']}"
                                  if res.get("resumed_from_epoch") else ""))
    sec = Section("train", f"Train '{tc.preset}' on {tc.dataset}",
                  description=f"{tc.epochs} epochs, batch {tc.batch_size}, lr {tc.lr:g}, seed {tc.seed}, defenses: "
                              f"{', '.join(str(d) for d in tc.defenses) or 'none'}; checkpoint {ckpt}; {how}.")
    sec.records.append(rec)
    if res.get("n_test"):
        acc, chance, n = res["accuracy"], res["chance"], res["n_test"]
        need = passing_accuracy(chance, n)
        sec.add("test accuracy above chance (> 2 points, binomial p < 0.001)", tc.dataset, acc, need, acc - need,
                acc >= need, note=f"chance = majority class {chance:.4f}; {n} test points",
                tolerance="bound = smallest passing accuracy")
    if rec.status != "ok":
        sec.headline = f"the model failed: {rec.reason}"
    sec.tables["history"] = res.get("history", [])
    return [sec], {"train": {"key": rec.key, "status": rec.status, "reason": rec.reason,
                             "test_accuracy": res.get("accuracy"), "history": res.get("history", []),
                             "resumed_from_epoch": res.get("resumed_from_epoch", 0),
                             "preset": tc.preset, "defenses": [d.to_dict() for d in tc.defenses]}}
