"""Runs as data: a frozen configuration in, a frozen result out; the configuration's hash is its identity.

Every empirical run of the package — training a split model, one entropy-vs-MSE cell, one
defense-table cell, one attack-optimality cell, one synthetic-bounds cell, the dataset attack,
check-defense — is described by a frozen, keyword-only configuration dataclass (a subclass of
:class:`Config`) holding *every* setting that changes its numbers: dataset (and, for local
files, a content hash), model preset, each defense with all of its parameters (defaults filled
in), epochs, learning rate, batch size, optimizer, attack settings, mixture sizes, the master
seed and the package's record schema.  ``config.key()`` is a stable hash of its canonical JSON:
the result's identity, its file name in the record store (:mod:`empirics.store`) and the resume
key — a result is reused only when a valid record with exactly this key exists.

Not part of the identity (recorded beside the result instead): the device, wall time, host and
progress settings.  Training on another device can change the last bits of a result; the
record says which device produced it.

A :class:`Record` is what the store holds: ``key``, the full ``config``, ``status`` (``ok``;
``failed`` — a model that trained to within 2 points of chance or diverged, a *valid* outcome
that tables exclude and count; ``error`` — the run raised, and a rerun retries it), the reason,
the result (validated against the kind's :class:`Result` type) and provenance.

Examples
--------
>>> c = TrainConfig(dataset="digits", defenses=(DefenseSpec.parse("noise:sigma=0.1"),), epochs=2)
>>> c.key() == TrainConfig.from_dict(c.to_dict()).key()
True
>>> c.key() == c.replace(defenses=(DefenseSpec.parse("noise:sigma=2.0"),)).key()
False
>>> dict(DefenseSpec.parse("noise:sigma=0.1").params)
{'sigma': 0.1}
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import typing
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Optional

__all__ = ["SCHEMA_VERSION", "RecordError", "canonical_json", "Config", "Result", "DefenseSpec", "AttackSpec",
           "TrainConfig", "TrainRunConfig", "TrainRunResult", "TrainAttackConfig", "TrainAttackResult",
           "DefenseTableConfig", "EntropyMseConfig", "EntropyMseResult", "SyntheticConfig", "SyntheticResult",
           "OptimalityConfig", "OptimalityResult", "DatasetAttackConfig", "DatasetAttackResult", "Record",
           "KINDS", "config_from_dict", "diff_configs", "chance_level", "near_chance", "passing_accuracy"]

#: version of the record format *and* of the meaning of configurations; part of every key
SCHEMA_VERSION = 2


class RecordError(ValueError):
    """A stored record or configuration dict that is not valid (missing/mistyped field ...)."""


# ----------------------------------------------------------------------------- plain data

def _plain(v):
    """Dataclasses, tuples and numpy scalars to JSON-plain values (floats kept as floats)."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return v.to_dict()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if hasattr(v, "item") and callable(v.item) and not isinstance(v, (str, bytes)):
        try:
            return v.item()
        except (TypeError, ValueError):
            pass
    return v


def canonical_json(obj) -> str:
    """Canonical JSON (sorted keys, no whitespace; non-finite floats as strings) used for keys."""
    from .report import jsonable
    return json.dumps(jsonable(_plain(obj)), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _coerce(value, tp, where: str):
    """Validate ``value`` (from JSON) against the annotation ``tp``; return the typed value."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is typing.Union:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errs = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except RecordError as e:
                errs.append(str(e))
        raise RecordError(errs[0] if errs else f"{where}: unexpected null")
    if tp is float:
        if isinstance(value, bool):
            raise RecordError(f"{where}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str) and value in _NONFINITE:
            return _NONFINITE[value]
        raise RecordError(f"{where}: expected a number, got {type(value).__name__} {value!r:.40}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecordError(f"{where}: expected an integer, got {type(value).__name__} {value!r:.40}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise RecordError(f"{where}: expected true/false, got {type(value).__name__} {value!r:.40}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise RecordError(f"{where}: expected a string, got {type(value).__name__} {value!r:.40}")
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise RecordError(f"{where}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise RecordError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(args, value)))
    if tp is tuple:  # a tuple of (name, plain value) pairs: spec parameters
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(kv, (list, tuple)) and len(kv) == 2 and isinstance(kv[0], str)
                and (kv[1] is None or isinstance(kv[1], (bool, int, float, str))) for kv in value):
            raise RecordError(f"{where}: expected a list of [name, value] pairs")
        return tuple(sorted((kv[0], kv[1]) for kv in value))
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise RecordError(f"{where}: expected an object, got {type(value).__name__}")
        return value
    if tp is list or origin is list:
        if not isinstance(value, list):
            raise RecordError(f"{where}: expected a list, got {type(value).__name__}")
        return value
    if isinstance(tp, type) and hasattr(tp, "from_dict"):
        return tp.from_dict(value, where)
    raise TypeError(f"unsupported annotation {tp!r} at {where}")  # a programming error


class _Plain:
    """Mixin: ``to_dict`` / validated ``from_dict`` for frozen dataclasses of plain fields."""

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, d, where: str = ""):
        where = where or cls.__name__
        if isinstance(d, cls):
            return d
        if not isinstance(d, dict):
            raise RecordError(f"{where}: expected an object, got {type(d).__name__}")
        hints = typing.get_type_hints(cls)
        kw = {}
        for f in fields(cls):
            if not f.init:
                continue
            if f.name not in d:
                if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                    continue
                raise RecordError(f"{where}: missing field {f.name!r}")
            kw[f.name] = _coerce(d[f.name], hints[f.name], f"{where}.{f.name}")
        extra = set(d) - {f.name for f in fields(cls)} - {"kind"}
        if extra:
            raise RecordError(f"{where}: unknown field(s) {sorted(extra)}")
        try:
            return cls(**kw)
        except (TypeError, ValueError) as exc:
            raise RecordError(f"{where}: {exc}") from None

    def replace(self, **kw):
        return dataclasses.replace(self, **kw)


# ----------------------------------------------------------------------------- specs

def _parse_value(v: str):
    s = v.strip()
    low = s.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        return int(s) if s.lstrip("+-").isdigit() else float(s)
    except ValueError:
        return s


def _split_spec(spec: str, what: str):
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"{what}: expected NAME[:key=value,...], got {spec!r}")
    name, _, rest = spec.partition(":")
    kw = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        if "=" not in part:
            raise ValueError(f"{what}: expected NAME[:key=value,...], got {spec!r}")
        k, v = part.split("=", 1)
        kw[k.strip()] = _parse_value(v)
    return name.strip(), kw


def _init_params(cls, skip=()) -> list:
    """Named constructor parameters of ``cls``, following ``**kwargs`` up the MRO."""
    params, seen = [], set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        sig = inspect.signature(klass.__init__)
        ps = list(sig.parameters.values())[1:]
        for p in ps:
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name in seen or p.name in skip:
                continue
            seen.add(p.name)
            params.append(p)
        if not any(p.kind == p.VAR_KEYWORD for p in ps):
            break
    return params


def _normalise_params(cls, name: str, kw: dict, what: str, skip=()) -> tuple:
    """Bind ``kw`` to ``cls.__init__``, fill defaults; ``ValueError`` naming unknown parameters."""
    params = _init_params(cls, skip)
    valid = {p.name for p in params}
    unknown = sorted(set(kw) - valid)
    if unknown:
        raise ValueError(f"{what}: unknown parameter(s) {unknown} for {name!r}; valid: {sorted(valid)}")
    out = {}
    for p in params:
        if p.name in kw:
            v = kw[p.name]
        elif p.default is inspect.Parameter.empty:
            raise ValueError(f"{what}: {name!r} needs parameter {p.name!r}")
        else:
            v = p.default
        if p.name == "seed" and p.name not in kw:
            v = None  # derived from the run's master seed (empirics.seeding), see DefenseSpec.build
        v = _plain(v)
        if not (v is None or isinstance(v, (bool, int, float, str))):
            raise ValueError(f"{what}: parameter {p.name!r} of {name!r} must be plain data (number, string, "
                             f"bool, None) to be part of a run configuration, got {type(v).__name__}")
        out[p.name] = v
    return tuple(sorted(out.items()))


@dataclass(frozen=True)
class DefenseSpec(_Plain):
    """A registered defense with *all* its parameters (defaults filled in): plain, hashable data.

    ``seed`` parameters left unset are ``None``: :meth:`build` derives them from the run's master
    seed so that no defense carries a fixed stream of its own.
    """

    name: str
    params: tuple = ()

    @classmethod
    def parse(cls, spec) -> "DefenseSpec":
        """From ``"noise:sigma=0.1"``, ``("noise", {"sigma": 0.1})``, a :class:`DefenseSpec` or a Defense."""
        from .defenses import get_defense
        if isinstance(spec, DefenseSpec):
            return spec
        if isinstance(spec, str):
            name, kw = _split_spec(spec, "defense")
        elif isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[1], dict):
            name, kw = spec[0], dict(spec[1])
        elif hasattr(spec, "name") and hasattr(spec, "config"):  # a Defense instance
            name = spec.name
            sig = inspect.signature(type(spec).__init__)
            kw = {p: getattr(spec, p) for p in list(sig.parameters)[1:] if hasattr(spec, p)}
        else:
            raise ValueError(f"defense: expected 'NAME:k=v', (name, params) or a Defense, got {spec!r}")
        dcls = get_defense(name)
        return cls(name, _normalise_params(dcls, name, kw, "defense"))

    @classmethod
    def from_dict(cls, d, where: str = ""):
        if isinstance(d, dict) and isinstance(d.get("params"), dict):
            d = {**d, "params": [list(kv) for kv in sorted(d["params"].items())]}
        return super().from_dict(d, where)

    def to_dict(self) -> dict:
        return {"name": self.name, "params": {k: v for k, v in self.params}}

    def __str__(self) -> str:
        return f"{self.name}:" + ",".join(f"{k}={v}" for k, v in self.params if v is not None)

    def build(self, seed: int = 0, index: int = 0):
        """A fresh Defense instance; unset ``seed`` → the run's "defense" stream (index = position)."""
        from .defenses import make_defense
        from .seeding import stream_seed
        kw = dict(self.params)
        if "seed" in kw and kw["seed"] is None:
            kw["seed"] = stream_seed(seed, "defense", index) % (2 ** 31)
        return make_defense(self.name, **kw)

    @property
    def strength(self) -> float:
        return float(self.build().strength)



@dataclass(frozen=True)
class AttackSpec(_Plain):
    """A registered attack with all its constructor parameters (defaults filled in)."""

    name: str
    params: tuple = ()

    @classmethod
    def parse(cls, spec, **overrides) -> "AttackSpec":
        """From ``"decoder:epochs=20"``, ``("decoder", {...})`` or an :class:`AttackSpec`; keyword
        ``overrides`` replace parameters (e.g. ``epochs=``)."""
        from .attacks import ATTACKS
        if isinstance(spec, AttackSpec):
            name, kw = spec.name, dict(spec.params)
        elif isinstance(spec, str):
            name, kw = _split_spec(spec, "attack")
        elif isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[1], dict):
            name, kw = spec[0], dict(spec[1])
        else:
            raise ValueError(f"attack: expected 'NAME:k=v' or (name, params), got {spec!r}")
        if name not in ATTACKS:
            raise ValueError(f"attack: expected one of {sorted(ATTACKS)}, got {name!r}")
        kw.update(overrides)
        return cls(name, _normalise_params(ATTACKS[name], name, kw, "attack"))

    @classmethod
    def from_dict(cls, d, where: str = ""):
        if isinstance(d, dict) and isinstance(d.get("params"), dict):
            d = {**d, "params": [list(kv) for kv in sorted(d["params"].items())]}
        return super().from_dict(d, where)

    def to_dict(self) -> dict:
        return {"name": self.name, "params": {k: v for k, v in self.params}}

    def build(self):
        from .attacks import make_attack
        return make_attack(self.name, **dict(self.params))


# ----------------------------------------------------------------------------- configurations

@dataclass(frozen=True, kw_only=True)
class Config(_Plain):
    """Base of every run configuration: frozen, keyword-only, plain data; ``key()`` = identity."""

    kind: ClassVar[str] = ""

    def to_dict(self) -> dict:
        return {"kind": self.kind, **super().to_dict()}

    @classmethod
    def from_dict(cls, d, where: str = ""):
        where = where or "config"
        if isinstance(d, dict) and "kind" in d and d["kind"] != cls.kind:
            raise RecordError(f"{where}: kind {d['kind']!r} is not {cls.kind!r}")
        return super().from_dict(d, where)

    def key(self) -> str:
        """sha256 (16 hex digits) of the canonical JSON of ``{schema, kind, fields}``."""
        payload = {"schema_version": SCHEMA_VERSION, **self.to_dict()}
        return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]

    def label(self) -> str:
        """A short human-readable description (for progress output)."""
        return self.kind


def _check_pos_int(v, name):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name}: expected a positive integer, got {v!r}")


def _check_seed(v):
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {v!r}")


def _check_pos_float(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name}: expected a positive finite number, got {v!r}")


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
        from .registry import spec
        s = spec(self.dataset)
        if s.name != self.dataset:
            object.__setattr__(self, "dataset", s.name)
        if self.preset is None:
            object.__setattr__(self, "preset", s.preset)
        object.__setattr__(self, "defenses", tuple(DefenseSpec.parse(d) for d in self.defenses))
        _check_pos_int(self.epochs, "epochs")
        _check_pos_int(self.batch_size, "batch_size")
        _check_pos_float(self.lr, "lr")
        _check_seed(self.seed)
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer: expected 'adam' or 'sgd', got {self.optimizer!r}")
        if self.bottleneck is not None:
            _check_pos_int(self.bottleneck, "bottleneck")

    def checkpoint_identity(self) -> dict:
        """What a training checkpoint must match to be resumed: everything but ``epochs`` (training
        longer continues the same trajectory: constant learning rate, same streams)."""
        d = self.to_dict()
        d.pop("epochs")
        return d

    def label(self) -> str:
        defs = "+".join(str(d) for d in self.defenses) or "no defense"
        return f"{self.dataset} [{defs}] seed {self.seed}"


@dataclass(frozen=True, kw_only=True)
class TrainRunConfig(Config):
    """``invlimits train``: one trained model (checkpointed) and its test accuracy."""

    kind: ClassVar[str] = "train"
    train: TrainConfig

    def label(self) -> str:
        return self.train.label()


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
        return f"{self.train.label()} → {','.join(a.name for a in self.attacks)}"


@dataclass(frozen=True, kw_only=True)
class DefenseTableConfig(TrainAttackConfig):
    """One Table 1 cell: base defense ``baseline`` (its specs in ``train.defenses``), with or without
    CEM at weight ``lam``."""

    kind: ClassVar[str] = "defense-table"
    baseline: str
    cem: bool
    lam: float


@dataclass(frozen=True, kw_only=True)
class EntropyMseConfig(Config):
    """One Fig. 3 cell: a model with noise σ (and CEM λ), its H(x|z) estimate and decoder MSE."""

    kind: ClassVar[str] = "entropy-vs-mse"
    train: TrainConfig
    attack: AttackSpec
    sigma: float
    lam: float
    k_per_class: int = 3
    covariance: str = "full"
    h_x: float = 0.0
    max_samples: int = 5000

    def __post_init__(self):
        object.__setattr__(self, "attack", AttackSpec.parse(self.attack))
        if not (self.sigma > 0):
            raise ValueError(f"sigmas: Theorem 2 needs noise > 0, got {self.sigma}")
        if self.covariance not in ("full", "diag"):
            raise ValueError(f"covariance: expected 'full' or 'diag', got {self.covariance!r}")

    def label(self) -> str:
        return f"{self.train.dataset} σ={self.sigma:g} λ={self.lam:g} seed {self.train.seed}"


@dataclass(frozen=True, kw_only=True)
class SyntheticConfig(Config):
    """One synthetic-bounds cell: a known mixture through a trained linear encoder at noise σ."""

    kind: ClassVar[str] = "synthetic-bounds"
    sigma: float
    d: int = 8
    k: int = 3
    k_feat: int = 4
    n_train: int = 3000
    n_test: int = 1000
    epochs: int = 20
    lr: float = 1e-2
    attack_epochs: int = 30
    opt_steps: int = 300
    mc: int = 20000
    alpha: float = 1e-3  # family-wise level of the confidence floors
    seed: int = 0

    def __post_init__(self):
        _check_pos_float(self.sigma, "sigma")
        for n in ("d", "k", "k_feat", "n_train", "n_test", "epochs", "attack_epochs", "opt_steps", "mc"):
            _check_pos_int(getattr(self, n), n)
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 < self.alpha < 1:
            raise ValueError(f"alpha: expected a number in (0, 1), got {self.alpha!r}")

    def label(self) -> str:
        return f"mixture d={self.d} σ={self.sigma:g} seed {self.seed}"


@dataclass(frozen=True, kw_only=True)
class OptimalityConfig(Config):
    """One (attack, setting) cell of the attack-optimality benchmark."""

    kind: ClassVar[str] = "optimality"
    attack: str
    setting: str  # "linear" | "nonlinear"
    sigma: float
    d: int = 16
    n_aux: int = 20000
    n_test: int = 2000
    epochs: Optional[int] = 20  # trained attacks only (None for the optimization attack)
    opt_steps: Optional[int] = None  # the optimization attack only
    pool: int = 50000
    n_entropy: int = 4000
    seed: int = 0

    def label(self) -> str:
        return f"{self.attack}, {self.setting} sigma={self.sigma:g}"


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


# ----------------------------------------------------------------------------- results

@dataclass(frozen=True, kw_only=True)
class Result(_Plain):
    """Base of the per-kind results (frozen, validated on read)."""


@dataclass(frozen=True, kw_only=True)
class TrainRunResult(Result):
    accuracy: float
    chance: float
    n_test: int
    history: list = field(default_factory=list)
    resumed_from_epoch: int = 0  # provenance: epochs taken from an existing checkpoint


@dataclass(frozen=True, kw_only=True)
class TrainAttackResult(Result):
    """``attacks[name][part]`` = ``{mse, mse_stderr, psnr?, ssim?, n}`` with part ``test`` / ``train``."""

    accuracy: float
    chance: float
    n_test: int
    attacks: dict = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class EntropyMseResult(Result):
    accuracy: float
    chance: float
    n_test: int
    h_huber: float
    h_kl: float
    h_maxent: float
    h_x: float
    d: int
    d_features: int
    mse: float
    mse_stderr: float


@dataclass(frozen=True, kw_only=True)
class SyntheticResult(Result):
    accuracy: float
    h_x: float
    h_x_stderr: float
    bounds: dict
    mmse: dict
    attacks: dict


@dataclass(frozen=True, kw_only=True)
class OptimalityResult(Result):
    attack: str
    setting: str
    mse: float
    mse_stderr: float
    mmse: float
    mmse_stderr: float
    ratio: float
    bayes_mse: float
    diff_stderr: float
    thm1_bound: Optional[float]
    ess_median: Optional[float]
    n_test: int
    seconds: float
    thm1_bound_stderr: Optional[float] = None


@dataclass(frozen=True, kw_only=True)
class DatasetAttackResult(Result):
    accuracy: float
    chance: float
    n_test: int
    attacks: list
    truncation: list = field(default_factory=list)
    truncation_checks: list = field(default_factory=list)


#: kind -> (configuration class, result class)
KINDS: dict[str, tuple[type, type]] = {
    "train": (TrainRunConfig, TrainRunResult),
    "train-attack": (TrainAttackConfig, TrainAttackResult),
    "defense-table": (DefenseTableConfig, TrainAttackResult),
    "entropy-vs-mse": (EntropyMseConfig, EntropyMseResult),
    "synthetic-bounds": (SyntheticConfig, SyntheticResult),
    "optimality": (OptimalityConfig, OptimalityResult),
    "dataset-attack": (DatasetAttackConfig, DatasetAttackResult),
}


def register_kind(config_cls: type, result_cls: type) -> None:
    """Register another kind of run (e.g. check-defense) with the record store."""
    KINDS[config_cls.kind] = (config_cls, result_cls)


def config_from_dict(d) -> Config:
    """The configuration object of a stored config dict (by its ``kind``)."""
    if not isinstance(d, dict) or "kind" not in d:
        raise RecordError("config: expected an object with a 'kind'")
    if d["kind"] not in KINDS:
        raise RecordError(f"config: unknown kind {d['kind']!r}")
    return KINDS[d["kind"]][0].from_dict(d, "config")


@dataclass(frozen=True, kw_only=True)
class Record(_Plain):
    """One stored outcome: identity, full configuration, status, result, provenance."""

    schema_version: int
    key: str
    kind: str
    config: dict
    status: str  # ok | failed | error
    reason: str = ""
    result: dict = field(default_factory=dict)
    seconds: float = 0.0
    created: str = ""
    host: str = ""
    device: str = ""
    package: str = ""

    STATUSES: ClassVar[tuple] = ("ok", "failed", "error")

    @classmethod
    def validate(cls, d, where: str = "record") -> "Record":
        """Parse and fully validate a stored dict: schema, key = hash(config), result fields."""
        rec = cls.from_dict(d, where)
        if rec.schema_version != SCHEMA_VERSION:
            raise RecordError(f"{where}: schema_version {rec.schema_version}, expected {SCHEMA_VERSION}")
        if rec.status not in cls.STATUSES:
            raise RecordError(f"{where}: status {rec.status!r} not in {list(cls.STATUSES)}")
        if rec.kind not in KINDS:
            raise RecordError(f"{where}: unknown kind {rec.kind!r}")
        cfg = KINDS[rec.kind][0].from_dict(rec.config, f"{where}.config")
        if cfg.key() != rec.key:
            raise RecordError(f"{where}: key {rec.key} does not match its configuration (hash {cfg.key()})")
        if rec.status == "ok":
            KINDS[rec.kind][1].from_dict(rec.result, f"{where}.result")
        return rec

    def config_obj(self) -> Config:
        return KINDS[self.kind][0].from_dict(self.config, "config")

    def result_obj(self):
        return KINDS[self.kind][1].from_dict(self.result, "result")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def summary(self) -> dict:
        """The entry results.json lists for this record."""
        return {"key": self.key, "kind": self.kind, "status": self.status, "reason": self.reason,
                "config": self.config, "result": self.result, "seconds": self.seconds, "device": self.device}


def diff_configs(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Human-readable differences between two (nested) config dicts: ``["lr: 0.001 → 0.5", ...]``."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k, "<absent>"), new.get(k, "<absent>")
        name = f"{prefix}{k}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += diff_configs(a, b, name + ".")
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and \
                all(isinstance(x, dict) for x in a + b):
            for i, (x, y) in enumerate(zip(a, b)):
                out += diff_configs(x, y, f"{name}[{i}].")
        elif a != b:
            out.append(f"{name}: {a} → {b}")
    return out


# ----------------------------------------------------------------------------- failed cells

def chance_level(y) -> float:
    """Accuracy of always predicting the most frequent class of labels ``y``."""
    import numpy as np
    y = np.asarray(y)
    return float(np.bincount(y).max() / len(y))


def passing_accuracy(chance: float, n: int, *, margin: float = 0.02, alpha: float = 1e-3) -> float:
    """The smallest test accuracy (k/n) that is more than ``margin`` above ``chance`` *and*
    significantly above chance (one-sided exact binomial test at level ``alpha`` on ``n`` points).

    Ten balanced classes, 450 test points: Binomial(450, 0.1) has mean 45 and s.d. 6.4, so
    p < 0.001 needs about 3.1 s.d. above the mean — 67 correct answers (0.149).

    >>> round(passing_accuracy(0.1, 450) * 450)
    67
    """
    from scipy.stats import binom
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive number of test points, got {n!r}")
    k = math.floor((chance + margin) * n + 1e-9) + 1
    while k <= n and binom.sf(k - 1, n, chance) >= alpha:  # P(X >= k) under chance
        k += 1
    return k / n


def near_chance(accuracy: float, chance: float, n: int, *, margin: float = 0.02, alpha: float = 1e-3) -> str:
    """Why a model counts as failed (empty string if it does not): its test accuracy is below
    :func:`passing_accuracy` — within ``margin`` (2 points) of chance, or not significantly above it."""
    if not math.isfinite(accuracy):
        return f"accuracy is {accuracy}"
    need = passing_accuracy(chance, n, margin=margin, alpha=alpha)
    if accuracy < need - 1e-12:
        return (f"test accuracy {accuracy:.4f} is near chance {chance:.4f} (needs >= {need:.4f}: more than "
                f"{margin:g} above chance and binomial p < {alpha:g} on {n} test points)")
    return ""
