"""Kind ``dataset-attack`` (``invlimits attack --dataset``): a trained split model, attacks on held-out inputs
(with the first 8 reconstructions kept in the record, for the figure), and on digits the
truncation experiment of Yang et al. (m = 1, 3, 10; truncation-trained vs untruncated) with paired
standard errors of the differences it checks."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import ClassVar

from ..experiments.common import RunContext, train_model
from ..records import Config, Kind, Outcome, Result
from ..specs import AttackSpec, TrainConfig

__all__ = ["DatasetAttackConfig", "DatasetAttackResult", "run_dataset_attack", "N_SHOWN", "ATTACKS_NOTE",
           "TRUNCATION_NOTE", "KIND"]

N_SHOWN = 8  # reconstructions kept per attack

ATTACKS_NOTE = (
    "Each attack reconstructs held-out test inputs from the features the deployed model sends (with its "
    "noise, if any); mse ± mse_stderr = per-element MSE on [0,1] data (s.e. over images), psnr in dB with data "
    "range 1, ssim per Wang et al. 2004 (images only), seconds = attack fit + evaluation time.")
TRUNCATION_NOTE = (
    "The attacker sees only the top-m entries of the prediction vector (trunc_m, Yang et al.). "
    "truncation-trained = inversion model trained on auxiliary vectors truncated to the same m (Eq. 10, "
    "logit rescaling of Eq. 12); untruncated = trained on full vectors, tested on truncated ones (the "
    "'previous approach'). m = 10 = all classes, so both coincide.")


@dataclass(frozen=True, kw_only=True)
class DatasetAttackConfig(Config):
    """``invlimits attack --dataset``: a trained split model, attacks, the truncation experiment."""

    kind: ClassVar[str] = "dataset-attack"
    train: TrainConfig
    attacks: tuple[AttackSpec, ...]
    truncation: bool = False
    truncation_epochs: int = 30

    def __post_init__(self):
        object.__setattr__(self, "attacks", tuple(AttackSpec.parse(a) for a in self.attacks))


@dataclass(frozen=True, kw_only=True)
class DatasetAttackResult(Result):
    """Accuracy; per attack ``{attack, mse, mse_stderr, psnr, ssim, seconds, reconstructions}``; the
    truncation rows and the paired checks of its claims."""

    accuracy: float
    chance: float
    n_test: int
    attacks: list
    truncation: list = field(default_factory=list)
    truncation_checks: list = field(default_factory=list)


def _paired(a, b) -> tuple[float, float]:
    d = (a - b).double()
    return float(d.mean()), float(d.std() / math.sqrt(len(d)))


def _truncation(model, split, cfg, ctx):
    from ..attacks import TruncationAttack  # deferred: torch
    rows, per = [], {}
    for m in (1, 3, 10):
        for label, tm in (("truncation-trained", m), ("untruncated", None)):
            att = TruncationAttack(m, train_m=tm, epochs=cfg.truncation_epochs, hidden=256, depth=2)
            att.fit(model, split.train, seed=cfg.train.seed, device=ctx.device, progress=ctx.progress)
            res = att.evaluate(model, split.test, seed=cfg.train.seed)
            xo, xr = att.last_reconstruction
            per[(m, label)] = ((xo - xr) ** 2).reshape(len(xo), -1).mean(1).double()
            rows.append({"m": m, "inversion model": label, **res})
    checks = []
    for a, b in ((1, 3), (3, 10)):  # larger m: more information, lower MSE
        diff, se = _paired(per[(a, "truncation-trained")], per[(b, "truncation-trained")])
        checks.append({"check": "truncation MSE decreases with m", "instance": f"m={a} → m={b}",
                       "decrease": diff, "stderr": se})
    for m in (1, 3):  # training on truncated vectors beats training on full ones
        diff, se = _paired(per[(m, "untruncated")], per[(m, "truncation-trained")])
        checks.append({"check": "truncation-trained beats untruncated", "instance": f"m={m}",
                       "decrease": diff, "stderr": se})
    return rows, checks


def run_dataset_attack(cfg: DatasetAttackConfig, ctx: RunContext) -> Outcome:
    """Train; attack held-out inputs with each attack (first reconstructions kept); truncation.

    Parameters
    ----------
    cfg : DatasetAttackConfig
        The run.
    ctx : RunContext
        Where and how it runs (device, progress, folders); not part of any identity.

    Returns
    -------
    Outcome
    """
    tm = train_model(cfg.train, ctx)
    if tm.failed:
        return Outcome("failed", {"accuracy": tm.accuracy, "chance": tm.chance}, tm.failed)
    rows = []
    for spec in cfg.attacks:
        att = spec.build()
        t0 = time.perf_counter()
        att.fit(tm.model, tm.split.train, seed=cfg.train.seed, device=ctx.device, progress=ctx.progress)
        res = att.evaluate(tm.model, tm.split.test, seed=cfg.train.seed)
        shown = att.last_reconstruction[1][:N_SHOWN].tolist()
        rows.append({"attack": spec.name, **res, "seconds": time.perf_counter() - t0, "reconstructions": shown})
    trunc, checks = _truncation(tm.model, tm.split, cfg, ctx) if cfg.truncation else ([], [])
    return Outcome("ok", DatasetAttackResult(accuracy=tm.accuracy, chance=tm.chance, n_test=tm.n_test, attacks=rows,
                                             truncation=trunc, truncation_checks=checks))


KIND = Kind(config=DatasetAttackConfig, result=DatasetAttackResult, run=run_dataset_attack)
