"""Kind ``train``: one trained split model (``invlimits train``), checkpointed, and its accuracy.

The configuration is a :class:`~empirics.specs.TrainConfig`; the runner trains it with the one
seeded training loop (:func:`empirics.training.train`, through
:func:`empirics.experiments.common.train_model`), resuming from ``RunContext.checkpoint`` when one
is given.  A model within 2 points of chance (or not significantly above it) or diverged is a
``failed`` record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from ..experiments.common import RunContext, train_model
from ..records import Config, Kind, Outcome, Result
from ..specs import TrainConfig

__all__ = ["TrainRunConfig", "TrainRunResult", "run_train", "KIND"]


@dataclass(frozen=True, kw_only=True)
class TrainRunConfig(Config):
    """``invlimits train``: one trained model (checkpointed) and its test accuracy."""

    kind: ClassVar[str] = "train"
    train: TrainConfig

    def label(self) -> str:
        return self.train.label()


@dataclass(frozen=True, kw_only=True)
class TrainRunResult(Result):
    """Test accuracy against chance on ``n_test`` points, the per-epoch history and the epochs
    taken from an existing checkpoint (provenance)."""

    accuracy: float
    chance: float
    n_test: int
    history: list = field(default_factory=list)
    resumed_from_epoch: int = 0


def run_train(cfg: TrainRunConfig, ctx: RunContext) -> Outcome:
    """Train ``cfg.train``; a near-chance or diverged model is a ``failed`` outcome.

    Parameters
    ----------
    cfg : TrainRunConfig
        The run.
    ctx : RunContext
        Where and how it runs (device, progress, folders); not part of any identity.

    Returns
    -------
    Outcome
    """
    tm = train_model(cfg.train, ctx)
    res = TrainRunResult(accuracy=tm.accuracy, chance=tm.chance, n_test=tm.n_test, history=tm.history,
                         resumed_from_epoch=tm.resumed_from_epoch)
    return Outcome("failed" if tm.failed else "ok", res, tm.failed)


KIND = Kind(config=TrainRunConfig, result=TrainRunResult, run=run_train)
