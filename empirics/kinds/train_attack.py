"""Kind ``train-attack``: a trained split model attacked by each attack (sweeps: ``experiment = "train"``).

One configuration trains a model (any stack of defenses: noise σ, the listed ``defenses``, then
CEM at λ > 0) and, unless it failed, runs every attack on held-out inputs and — with
``eval_train`` — on as many training inputs.  Its table (the sweep collector's) gives, per setting
without the seed, the mean and t-interval over seeds of the accuracy and of every attack's MSE /
PSNR / SSIM.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import ClassVar

from ..checks import mean_ci
from ..experiments.common import RunContext, attack_model, train_model
from ..records import Config, Kind, Outcome, Result
from ..registry import DATASET_ATTACKS
from ..results import Section
from ..specs import AttackSpec, DefenseSpec, TrainConfig
from ..sweep.collect import describe, group_records
from ..sweep.params import TrainSweep, param

__all__ = ["TrainAttackConfig", "TrainAttackResult", "run_train_attack", "attack_spec", "TrainAttackSweep",
           "train_sections", "short_defense", "KIND"]


def attack_spec(name: str, attack_epochs: int) -> AttackSpec:
    """The attack of a cell: trained attacks for ``attack_epochs`` epochs; the optimization
    attack for ``max(50, 10·attack_epochs)`` gradient steps.

    Parameters
    ----------
    name : str
        An attack name.
    attack_epochs : int
        The cell's attack budget.

    Returns
    -------
    AttackSpec
    """
    if name == "optimization":
        return AttackSpec.parse(name, steps=max(50, 10 * int(attack_epochs)))
    return AttackSpec.parse(name, epochs=int(attack_epochs))


def short_defense(d: DefenseSpec) -> str:
    """``noise:sigma=0.1``; CEM by its weight (and objective when not the paper's).

    Parameters
    ----------
    d : DefenseSpec
        A defense.

    Returns
    -------
    str
    """
    p = dict(d.params)
    if d.name == "cem":
        return f"cem:lam={p.get('lam'):g}" + (f",objective={p['objective']}" if p.get("objective") not in
                                                (None, "paper") else "")
    return str(d)


@dataclass(frozen=True, kw_only=True)
class TrainAttackConfig(Config):
    """A trained model attacked by each attack (held-out and, optionally, training inputs)."""

    kind: ClassVar[str] = "train-attack"
    train: TrainConfig
    attacks: tuple[AttackSpec, ...] = ()
    eval_train: bool = True

    def __post_init__(self):
        object.__setattr__(self, "attacks", tuple(AttackSpec.parse(a) for a in self.attacks))

    def label(self) -> str:
        t = self.train
        defs = " + ".join(short_defense(d) for d in t.defenses) or "no defense"
        return f"{t.dataset} [{defs}] seed {t.seed}" + (f" → {','.join(a.name for a in self.attacks)}"
                                                        if self.attacks else "")


@dataclass(frozen=True, kw_only=True)
class TrainAttackResult(Result):
    """``attacks[name][part]`` = ``{mse, mse_stderr, psnr?, ssim?, n}`` with part ``test`` / ``train``."""

    accuracy: float
    chance: float
    n_test: int
    attacks: dict = field(default_factory=dict)


def run_train_attack(cfg: TrainAttackConfig, ctx: RunContext) -> Outcome:
    """Train; unless the model failed, run every attack (its seed = the cell's seed).

    Parameters
    ----------
    cfg : TrainAttackConfig
        The run (also a ``defense-table`` cell).
    ctx : RunContext
        Where and how it runs (device, progress, folders); not part of any identity.

    Returns
    -------
    Outcome
    """
    tm = train_model(cfg.train, ctx)
    attacks = {}
    if not tm.failed:
        for spec in cfg.attacks:
            attacks[spec.name] = attack_model(tm.model, tm.split, spec, seed=cfg.train.seed, ctx=ctx,
                                              eval_train=cfg.eval_train)
    res = TrainAttackResult(accuracy=tm.accuracy, chance=tm.chance, n_test=tm.n_test, attacks=attacks)
    return Outcome("failed" if tm.failed else "ok", res, tm.failed)


@dataclass(frozen=True, kw_only=True)
class TrainAttackSweep(TrainSweep):
    """One ``experiment = "train"`` cell: noise σ, then ``defenses`` in order, then CEM at λ > 0."""

    experiment: ClassVar[str] = "train"
    defenses: tuple[str, ...] = param("defense specs NAME:k=v applied in order (after noise σ, before CEM λ)", (),
                                      nonempty=True)
    attacks: tuple[str, ...] = param("attacks run on each trained model ([] = train only)", ("decoder",),
                                     choices=DATASET_ATTACKS)
    eval_train: bool = param("also attack training inputs", True)

    def configs(self) -> list:
        defs = []
        if self.sigma is not None:
            defs.append(DefenseSpec.parse(("noise", {"sigma": self.sigma})))
        defs += [DefenseSpec.parse(s) for s in self.defenses]
        if self.lam > 0:
            defs.append(self.cem(self.lam, **({} if self.k_per_class is None else {"k_per_class": self.k_per_class})))
        return [TrainAttackConfig(train=self.train_config(defs), eval_train=self.eval_train,
                                  attacks=tuple(attack_spec(a, self.attack_epochs) for a in self.attacks))]


def group(config: dict) -> str:
    """Everything but the seed."""
    c = copy.deepcopy(config)
    c["train"].pop("seed", None)
    return json.dumps(c, sort_keys=True)


def train_sections(records, out=None) -> list[Section]:
    """One row per setting: mean and 95 % t-interval over the seeds that trained of the accuracy and
    of every attack's metrics on every split.

    Parameters
    ----------
    records : sequence of Record
        Records of this kind (those with status ``error`` are left out by the callers).
    out : Path, optional
        The output folder (unused: the table has no figure).

    Returns
    -------
    list of Section
    """
    rows, recs_all = [], []
    for sig, recs in group_records(records, group).items():
        recs_all += recs
        c = json.loads(sig)
        defs = ", ".join(f"{d['name']}:" + ",".join(f"{k}={v}" for k, v in d["params"].items() if v is not None)
                         for d in c["train"]["defenses"]) or "no defense"
        ok = [r for r in recs if r.status == "ok"]
        row = {"setting": describe(c, defs), "seeds": f"{len(ok)} of {len(recs)}"}
        if ok:
            acc = mean_ci([r.result["accuracy"] for r in ok], lo=0.0, hi=1.0)
            row.update(accuracy=acc["mean"], accuracy_ci=acc["half_width"])
            metrics = sorted({(a, part, m) for r in ok for a, parts in r.result["attacks"].items()
                              for part, vals in parts.items() for m in ("mse", "psnr", "ssim") if m in vals})
            for a, part, m in metrics:
                vals = [r.result["attacks"][a][part][m] for r in ok if m in r.result["attacks"].get(a, {}).get(part, {})]
                ci = mean_ci(vals, lo=0.0 if m in ("mse", "ssim") else None, hi=1.0 if m == "ssim" else None)
                row[f"{a}_{part}_{m}"], row[f"{a}_{part}_{m}_ci"] = ci["mean"], ci["half_width"]
        rows.append(row)
    sec = Section("train", "Trained and attacked models (mean over seeds)", records=recs_all)
    name = "models (mean and 95% CI half-width over the seeds that trained)"
    sec.table_notes[name] = (
        "One row per setting; seeds = models that trained of those recorded (failed: near chance or diverged); "
        "accuracy and <attack>_<split>_<metric> (held-out 'test' or 'train' inputs) are means over those seeds with "
        "their 95 % t-interval half-widths (*_ci).")
    sec.tables[name] = rows
    return [sec]


KIND = Kind(config=TrainAttackConfig, result=TrainAttackResult, run=run_train_attack, sweep=TrainAttackSweep,
            sections=train_sections, group=group)
