"""Runners for trained models: ``train`` (one model, checkpointed) and ``train-attack`` /
``defense-table`` (a model attacked by each attack on held-out and training inputs)."""

from __future__ import annotations

from ..runs import TrainAttackResult, TrainRunResult
from .common import attack_model, train_model
from .runner import Outcome, runner

__all__ = ["run_train", "run_train_attack"]


@runner("train")
def run_train(cfg, ctx) -> Outcome:
    tm = train_model(cfg.train, ctx)
    res = TrainRunResult(accuracy=tm.accuracy, chance=tm.chance, n_test=tm.n_test, history=tm.history,
                         resumed_from_epoch=tm.resumed_from_epoch)
    return Outcome("failed" if tm.failed else "ok", res, tm.failed)


@runner("train-attack")
@runner("defense-table")
def run_train_attack(cfg, ctx) -> Outcome:
    """Train; unless the model failed, run every attack (its seed = the cell's seed)."""
    tm = train_model(cfg.train, ctx)
    attacks = {}
    if not tm.failed:
        for spec in cfg.attacks:
            attacks[spec.name] = attack_model(tm.model, tm.split, spec, seed=cfg.train.seed, ctx=ctx,
                                              eval_train=cfg.eval_train)
    res = TrainAttackResult(accuracy=tm.accuracy, chance=tm.chance, n_test=tm.n_test, attacks=attacks)
    return Outcome("failed" if tm.failed else "ok", res, tm.failed)
