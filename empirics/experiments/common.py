"""Building blocks of every run: data for a configuration, a trained model, an attacked model.

Each function takes a configuration (:class:`empirics.specs.TrainConfig`,
:class:`empirics.specs.AttackSpec`) and a :class:`RunContext` (where and how to run — never part of
a result's identity) and returns plain numbers.  Torch and the training code are imported by the
functions that train (deferred: the kinds import this module and must stay torch-free).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import registry
from ..checks import chance_level, near_chance
from ..records import config_key
from ..seeding import stream_seed
from ..specs import AttackSpec, TrainConfig

__all__ = ["RunContext", "load_split", "build_model", "TrainedModel", "train_model", "attack_model",
           "subset"]


@dataclass
class RunContext:
    """Where and how a run executes (device, progress bars, folders); not part of its identity.

    ``checkpoint``: a checkpoint path for a single-model run (``invlimits train``);
    ``checkpoint_dir``: else, when set, training writes a resumable checkpoint per configuration
    key there (``<key>.pt``); ``fresh`` deletes an existing checkpoint first.  ``threads``: torch
    intra-op threads for the run (None: leave as is).
    """

    device: Any = "auto"
    progress: bool = False
    data_root: Any = None
    checkpoint: Any = None
    checkpoint_dir: Any = None
    fresh: bool = False
    out: Any = None
    threads: int | None = None


def load_split(cfg: TrainConfig, ctx: RunContext):
    """The data split a training configuration names (checked against its fingerprint).

    Parameters
    ----------
    cfg : TrainConfig
        The training configuration.
    ctx : RunContext
        Where and how it runs (device, progress, folders); not part of any identity.

    Returns
    -------
    DataSplit
    """
    split = registry.load_dataset(cfg.dataset, seed=cfg.data_seed, root=ctx.data_root)
    if cfg.data_fingerprint is not None:
        got = registry.fingerprint(split)
        if got != cfg.data_fingerprint:
            raise ValueError(f"--data-root: the {cfg.dataset} data found has content hash {got}, the configuration "
                             f"was made for {cfg.data_fingerprint} (the files changed)")
    return split


def build_model(cfg: TrainConfig, split):
    """The untrained split model of ``cfg`` (weights from the seed's "init" stream).

    Parameters
    ----------
    cfg : TrainConfig
        The training configuration.
    split : DataSplit or namespace
        Its ``input_shape`` and ``num_classes``.

    Returns
    -------
    SplitModel
    """
    from ..models import make_model  # deferred: torch
    kw: dict = {"bottleneck": cfg.bottleneck}
    if cfg.preset == "synthetic":
        kw.update(input_shape=split.input_shape, hidden=64)
        if cfg.bottleneck is None:
            kw["bottleneck"] = 8
    spec_defs = [d.build(cfg.seed, i) for i, d in enumerate(cfg.defenses)]
    return make_model(cfg.preset, num_classes=split.num_classes, seed=cfg.seed, defenses=spec_defs, **kw)


@dataclass
class TrainedModel:
    model: Any
    split: Any
    accuracy: float
    chance: float
    n_test: int
    failed: str  # reason the model counts as failed ("" if it does not)
    history: list
    resumed_from_epoch: int = 0


def train_model(cfg: TrainConfig, ctx: RunContext) -> TrainedModel:
    """Train ``cfg``'s model; a diverged or near-chance model is returned with ``failed`` set.

    Parameters
    ----------
    cfg : TrainConfig
        The training configuration.
    ctx : RunContext
        Where and how it runs (device, progress, folders); not part of any identity.

    Returns
    -------
    TrainedModel
        The model, its split, accuracy, chance, test size, history and ``failed`` (the reason, or "").

    Raises
    ------
    empirics.memory.MemoryRefused
        A ``ValueError``: the model's estimated training memory (from its shapes, before it is built)
        is above the available memory.
    """
    from ..footprint import guard_training  # deferred: torch
    from ..training import evaluate, train  # deferred: torch
    split = load_split(cfg, ctx)
    guard_training(cfg, split, build_model)  # the model's shapes on the meta device: refused before anything large exists
    model = build_model(cfg, split)
    checkpoint = ctx.checkpoint
    if checkpoint is None and ctx.checkpoint_dir is not None:  # named by the key of its `train` run
        checkpoint = Path(ctx.checkpoint_dir) / f"{config_key({'kind': 'train', 'train': cfg.to_dict()})}.pt"
    try:
        res = train(model, split.train, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                    optimizer=cfg.optimizer, weight_decay=cfg.weight_decay, seed=cfg.seed, device=ctx.device,
                    progress=ctx.progress, checkpoint=checkpoint, identity=cfg.checkpoint_identity(), fresh=ctx.fresh)
    except FloatingPointError as exc:
        chance = chance_level(split.test.y.numpy())
        return TrainedModel(model, split, float("nan"), chance, len(split.test), f"training diverged: {exc}", [])
    acc = float(evaluate(model, split.test, seed=cfg.seed)["accuracy"])
    chance = chance_level(split.test.y.numpy())
    why = near_chance(acc, chance, len(split.test))
    return TrainedModel(model, split, acc, chance, len(split.test), why, list(res.history), res.resumed_from_epoch)


def subset(ds, n):
    """The first ``n`` items of a dataset (all of them when it has fewer).

    Parameters
    ----------
    ds : ArrayDataset
        A dataset.
    n : int
        How many of its first items.

    Returns
    -------
    ArrayDataset
    """
    from ..data import ArrayDataset  # deferred: torch
    n = min(n, len(ds))
    return ArrayDataset(ds.x[:n], ds.y[:n], name=getattr(ds, "name", "data"))


def attack_model(model, split, spec: AttackSpec, *, seed: int, ctx: RunContext, eval_train: bool = True) -> dict:
    """Fit attack ``spec`` on the training split (the attacker's auxiliary data) and score it on
    held-out inputs (``test``) and, with ``eval_train``, on as many training inputs (``train``).

    Parameters
    ----------
    model : SplitModel
        The trained model.
    split : DataSplit
        Its data.
    spec : AttackSpec
        The attack.
    seed : int
        The run's master seed.
    ctx : RunContext
        Where and how it runs (device, progress, folders); not part of any identity.
    eval_train : bool
        Also score training inputs.

    Returns
    -------
    dict
        ``{"test": {mse, mse_stderr, psnr?, ssim?, n}[, "train": {...}]}``.
    """
    from ..footprint import guard_attacks  # deferred: torch
    guard_attacks(model, split, [spec.name])
    att = spec.build()
    att.fit(model, split.train, seed=seed, device=ctx.device, progress=ctx.progress)
    out = {"test": att.evaluate(model, split.test, seed=seed)}
    if eval_train:
        out["train"] = att.evaluate(model, subset(split.train, len(split.test)),
                                    seed=stream_seed(seed, "attack_eval_train") % (2 ** 31))
    return out
