"""The parameters of one sweep cell, declared once as dataclass fields.

A kind that can be swept (:attr:`empirics.records.Kind.sweep`) declares a frozen dataclass of the
flat settings of one cell: each field's annotation is the value's type, its default the value when
a spec leaves it out, and :func:`param` adds what the spec parser checks (a help line, a range,
the valid names) and, with ``axis=``, several values used when the spec gives none (e.g. the
defense table's three seeds).  The sweep's parameter table (:func:`empirics.sweep.spec.params`),
its validation messages and the README's parameter list are all read from these fields; the
dataclass's ``configs()`` turns one cell's values into run configurations.

:class:`TrainSweep` holds the settings every sweep of trained models shares and the helpers that
build its :class:`~empirics.specs.TrainConfig` and defenses.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..registry import names
from ..specs import DefenseSpec, TrainConfig

__all__ = ["param", "field_type", "TrainSweep"]


def param(help: str, default: Any = dataclasses.MISSING, *, axis: tuple | None = None, minimum: int | None = None,
          positive: bool = False, nonneg: bool = False, choices: tuple | Callable | None = None,
          nonempty: bool = False, settings_only: bool = False, required: bool = False):
    """A sweep parameter: a dataclass field whose metadata the spec parser reads.

    Parameters
    ----------
    help : str
        One line for ``--help``-style listings and the README.
    default : any
        Its value when a spec does not name it (mutable defaults: give a dict or a tuple; they are
        copied).
    axis : tuple, optional
        Values that make an axis of their own when a spec does not name the parameter.
    minimum, positive, nonneg : optional
        Range checks of numbers (integers ≥ ``minimum``; floats > 0 or ≥ 0).
    choices : tuple or callable, optional
        The valid values (a callable returns them, read when a spec is checked).
    nonempty : bool
        A list that may not be empty.
    settings_only : bool
        A table: only in ``[settings]``, never an axis.
    required : bool
        A spec must give it (in ``[grid]`` or ``[settings]``); its default (None) stands for "not given".

    Returns
    -------
    dataclasses.Field
    """
    meta = {"help": help, "axis": axis, "minimum": minimum, "positive": positive, "nonneg": nonneg,
            "choices": choices, "nonempty": nonempty, "settings_only": settings_only, "required": required}
    if isinstance(default, (dict, list)):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata=meta)
    return field(default=default, metadata=meta)


def field_type(cls, name: str) -> str:
    """The spec type of a field: ``str``, ``int``, ``float``, ``bool``, ``strs`` / ``strs0`` (a
    list of names, non-empty or not) or ``table`` — from its annotation (``Optional`` unwrapped).

    Parameters
    ----------
    cls : type
        A sweep dataclass.
    name : str
        One of its fields.

    Returns
    -------
    str
    """
    tp = typing.get_type_hints(cls)[name]
    if typing.get_origin(tp) is typing.Union:
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if typing.get_origin(tp) is tuple:
        meta = next(f.metadata for f in dataclasses.fields(cls) if f.name == name)
        return "strs" if meta.get("nonempty") else "strs0"
    if tp is dict or typing.get_origin(tp) is dict:
        return "table"
    return {str: "str", int: "int", float: "float", bool: "bool"}[tp]


def _datasets():
    return names("sweep", aliases=True)


#: the training defaults every sweep of trained models shares with ``invlimits train``: TrainConfig's own
_TRAIN = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


@dataclass(frozen=True, kw_only=True)
class TrainSweep:
    """Settings every sweep of trained models takes (a kind's sweep dataclass adds its own)."""

    experiment = ""  # the name specs use (a class attribute of each kind's sweep)
    dataset: str = param("registered dataset (datasets read from local files need --data-root)", "digits",
                         choices=_datasets)
    seed: int = param("master seed of the cell (training, defenses, attack)", 0, minimum=0)
    epochs: int = param("training epochs", _TRAIN["epochs"], minimum=1)
    attack_epochs: int = param("epochs of the trained attacks (optimization attack: 10x steps, >= 50)", 30,
                               minimum=1)
    batch_size: int = param("training batch size", _TRAIN["batch_size"], minimum=1)
    lr: float = param("learning rate", _TRAIN["lr"], positive=True)
    optimizer: Optional[str] = param("adam or sgd", None, choices=("adam", "sgd"))
    weight_decay: Optional[float] = param("weight decay", None, nonneg=True)
    preset: Optional[str] = param("model preset (default: the dataset's)", None)
    bottleneck: Optional[int] = param("encoder output channels / features", None, minimum=1)
    sigma: Optional[float] = param("Gaussian feature-noise σ", None, positive=True)
    lam: float = param("CEM weight λ (0 = no CEM)", 0.0, nonneg=True)
    k_per_class: Optional[int] = param("mixture components per class (CEM and the H(x|z) estimate)", None, minimum=1)
    cem_params: dict = param("extra parameters of every CEM defense, e.g. {objective = \"code\"}", {},
                             settings_only=True)

    def train_config(self, defenses, **kw) -> TrainConfig:
        """The cell's :class:`~empirics.specs.TrainConfig` (unset optional settings: its defaults)."""
        opt = {k: getattr(self, k) for k in ("optimizer", "weight_decay", "preset", "bottleneck")
               if getattr(self, k) is not None}
        return TrainConfig(dataset=self.dataset, defenses=tuple(defenses), epochs=self.epochs,
                           batch_size=self.batch_size, lr=self.lr, seed=self.seed, **opt, **kw)

    def cem(self, lam: float, **kw) -> DefenseSpec:
        """The CEM defense at weight ``lam`` with this cell's CEM settings (``cem_params`` last)."""
        return DefenseSpec.parse(("cem", {"lam": lam, **kw, **self.cem_params}))

    def configs(self) -> list:
        raise NotImplementedError
