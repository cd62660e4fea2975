"""The building blocks of run configurations: registered defenses and attacks with all their
parameters, and the configuration of one trained split model.

:class:`DefenseSpec` and :class:`AttackSpec` hold a registered name and *every* constructor
parameter (defaults filled in by :func:`empirics.parameters.normalise_params`), so a changed
default or setting changes the key of every run that uses it.  :class:`TrainConfig` holds everything
that decides a trained model; the kinds of :mod:`empirics.kinds` embed it.

Examples
--------
>>> c = TrainConfig(dataset="digits", defenses=(DefenseSpec.parse("noise:sigma=0.1"),), epochs=2)
>>> c.replace(defenses=(DefenseSpec.parse("noise:sigma=2.0"),)) == c
False
>>> dict(DefenseSpec.parse("noise:sigma=0.1").params)
{'sigma': 0.1}
>>> str(AttackSpec.parse("decoder", epochs=3)).startswith("decoder:")
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from theory._validate import expect_choice, expect_int, expect_number

from . import registry
from .parameters import fill_seed, normalise_params, split_spec
from .records import Config, Plain

__all__ = ["DefenseSpec", "AttackSpec", "TrainConfig"]


def _defense_registry():
    # deferred: the defense classes import torch; configurations are read without it
    from . import defenses
    return defenses


def _attack_registry():
    # deferred: the attack classes import torch; configurations are read without it
    from . import attacks
    return attacks


class _NamedSpec(Plain):
    """``name`` + sorted ``params``: stored as ``{"name": ..., "params": {k: v}}``."""

    name: str
    params: tuple

    @classmethod
    def from_dict(cls, d, where: str = ""):
        if isinstance(d, dict) and isinstance(d.get("params"), dict):
            d = {**d, "params": [list(kv) for kv in sorted(d["params"].items())]}
        return super().from_dict(d, where)

    def to_dict(self) -> dict:
        return {"name": self.name, "params": {k: v for k, v in self.params}}

    def __str__(self) -> str:
        return f"{self.name}:" + ",".join(f"{k}={v}" for k, v in self.params if v is not None)


@dataclass(frozen=True)
class DefenseSpec(_NamedSpec):
    """A registered defense with *all* its parameters (defaults filled in): plain, hashable data.

    ``seed`` parameters left unset are ``None``: :meth:`build` derives them from the run's master
    seed so that no defense carries a fixed stream of its own.
    """

    name: str
    params: tuple = ()

    @classmethod
    def parse(cls, spec) -> "DefenseSpec":
        """From ``"noise:sigma=0.1"``, ``("noise", {"sigma": 0.1})``, a :class:`DefenseSpec` or a Defense."""
        if isinstance(spec, DefenseSpec):
            return spec
        reg = _defense_registry()
        if isinstance(spec, str):
            name, kw = split_spec(spec, "defense")
        elif isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[1], dict):
            name, kw = spec[0], dict(spec[1])
        elif isinstance(spec, reg.Defense):
            name, kw = spec.name, reg.defense_params(spec)
        else:
            raise ValueError(f"defense: expected 'NAME:k=v', (name, params) or a Defense, got {spec!r}")
        return cls(name, normalise_params(reg.get_defense(name), name, kw, "defense"))

    def build(self, seed: int = 0, index: int = 0):
        """A fresh Defense instance; unset ``seed`` → the run's "defense" stream (index = position)."""
        return _defense_registry().make_defense(self.name, **fill_seed(dict(self.params), seed, index))

    @property
    def strength(self) -> float:
        return float(self.build().strength)


@dataclass(frozen=True)
class AttackSpec(_NamedSpec):
    """A registered attack with all its constructor parameters (defaults filled in)."""

    name: str
    params: tuple = ()

    @classmethod
    def parse(cls, spec, **overrides) -> "AttackSpec":
        """From ``"decoder:epochs=20"``, ``("decoder", {...})`` or an :class:`AttackSpec`; keyword
        ``overrides`` replace parameters (e.g. ``epochs=``)."""
        attacks = _attack_registry().ATTACKS
        if isinstance(spec, AttackSpec):
            name, kw = spec.name, dict(spec.params)
        elif isinstance(spec, str):
            name, kw = split_spec(spec, "attack")
        elif isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[1], dict):
            name, kw = spec[0], dict(spec[1])
        else:
            raise ValueError(f"attack: expected 'NAME:k=v' or (name, params), got {spec!r}")
        if name not in attacks:
            raise ValueError(f"attack: expected one of {sorted(attacks)}, got {name!r}")
        kw.update(overrides)
        return cls(name, normalise_params(attacks[name], name, kw, "attack"))

    def build(self):
        return _attack_registry().make_attack(self.name, **dict(self.params))


@dataclass(frozen=True, kw_only=True)
class TrainConfig(Config):
    """Everything that decides a trained split model.

    ``preset`` None → the dataset's own preset (filled in, so the key names it).
    ``data_fingerprint``: content hash of datasets read from local files (None for embedded ones).
    """

    kind: ClassVar[str] = "train-config"
    dataset: str
    preset: Optional[str] = None
    data_seed: int = 0
    data_fingerprint: Optional[str] = None
    bottleneck: Optional[int] = None
    defenses: tuple[DefenseSpec, ...] = ()
    epochs: int = 15
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self):
        s = registry.spec(self.dataset)
        if s.name != self.dataset:
            object.__setattr__(self, "dataset", s.name)
        if self.preset is None:
            object.__setattr__(self, "preset", s.preset)
        object.__setattr__(self, "defenses", tuple(DefenseSpec.parse(d) for d in self.defenses))
        expect_int(self.epochs, "epochs")
        expect_int(self.batch_size, "batch_size")
        expect_number(self.lr, "lr", positive=True)
        expect_int(self.seed, "seed", minimum=0)
        expect_choice(self.optimizer, "optimizer", ("adam", "sgd"))
        if self.bottleneck is not None:
            expect_int(self.bottleneck, "bottleneck")

    def checkpoint_identity(self) -> dict:
        """What a training checkpoint must match to be resumed: everything but ``epochs`` (training
        longer continues the same trajectory: constant learning rate, same streams)."""
        d = self.to_dict()
        d.pop("epochs")
        return d

    def label(self) -> str:
        defs = "+".join(str(d) for d in self.defenses) or "no defense"
        return f"{self.dataset} [{defs}] seed {self.seed}"
