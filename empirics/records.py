"""Runs as data: the record schema and the registry of experiment kinds.

Every empirical run of the package — a trained split model, one entropy-vs-MSE cell, one
defense-table cell, one attack-optimality cell, one synthetic-bounds cell, a dataset attack, a
check-defense — is described by a frozen, keyword-only configuration dataclass (a subclass of
:class:`Config`) holding *every* setting that changes its numbers.  ``config.key()`` is a stable
hash of its canonical JSON (:func:`theory._io.canonical_json`): the result's identity, its file
name in the record store (:mod:`empirics.store`) and the resume key — a result is reused only when
a valid record with exactly this key exists.  Not part of the identity (recorded beside the
result instead): the device, wall time, host and progress settings.

A :class:`Record` is what the store holds: ``key``, the full ``config``, ``status`` (``ok``;
``failed`` — a model that trained to within 2 points of chance or diverged, a *valid* outcome
that tables exclude and count; ``error`` — the run raised, and a rerun retries it), the reason,
the result (validated against the kind's :class:`Result` type), provenance, and ``digest``: the
sha256 of the canonical JSON of everything else in the record (configuration *and* result,
:func:`record_digest`), checked on every read, so a record edited after it was written (an
accuracy changed by hand, still valid JSON) is refused.  The digest detects edits, not forgery:
anyone can recompute a hash.  Records written before digests existed carry none; the store
seals them on first read and says so in ``digest_note`` (see :mod:`empirics.store`).

**Kinds.**  Each kind of run is one module of :mod:`empirics.kinds` that defines ``KIND``, a
:class:`Kind`: its configuration and result classes, its runner, its sweep parameters and its
tables.  :func:`kinds` finds them by listing that package — explicitly, when first asked, never
as a side effect of importing a module — so a process that imported nothing but the store reads
records of every kind, and adding a kind means adding one module.  Kinds defined elsewhere (a
user's own) are added with :func:`register_kind`.

Examples
--------
>>> from empirics.specs import DefenseSpec, TrainConfig
>>> from empirics.kinds.train import TrainRunConfig
>>> c = TrainRunConfig(train=TrainConfig(dataset="digits", defenses=("noise:sigma=0.1",), epochs=2))
>>> c.key() == config_from_dict(c.to_dict()).key()
True
>>> sorted(kinds())[:3]
['check-defense', 'dataset-attack', 'defense-table']
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import math
import pkgutil
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Callable, ClassVar, Optional

from theory._io import canonical_json, jsonable

__all__ = ["SCHEMA_VERSION", "RecordError", "Plain", "Config", "Result", "Outcome", "Kind", "kinds", "get_kind",
           "register_kind", "config_from_dict", "config_key", "Record", "record_digest", "diff_configs"]

#: version of the record format *and* of the meaning of configurations; part of every key
SCHEMA_VERSION = 2

#: the package whose modules define the kinds (one ``KIND`` each)
KINDS_PACKAGE = "empirics.kinds"


class RecordError(ValueError):
    """A stored record or configuration dict that is not valid (missing/mistyped field ...)."""


# ----------------------------------------------------------------------------- plain data

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


class Plain:
    """Mixin: ``to_dict`` / validated ``from_dict`` for frozen dataclasses of plain fields."""

    def to_dict(self) -> dict:
        return {f.name: jsonable(getattr(self, f.name)) for f in fields(self)}

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


# ----------------------------------------------------------------------------- configurations

def config_key(config: dict) -> str:
    """The key of a configuration dict ``{"kind": ..., field: value, ...}``: sha256 (16 hex
    digits) of the canonical JSON of ``{"schema_version": SCHEMA_VERSION, **config}``.

    Parameters
    ----------
    config : dict
        A configuration's ``to_dict()``.

    Returns
    -------
    str
    """
    payload = {"schema_version": SCHEMA_VERSION, **config}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]


@dataclass(frozen=True, kw_only=True)
class Config(Plain):
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
        return config_key(self.to_dict())

    def label(self) -> str:
        """A short human-readable description (for progress output)."""
        return self.kind


@dataclass(frozen=True, kw_only=True)
class Result(Plain):
    """Base of the per-kind results (frozen, validated on read)."""


@dataclass
class Outcome:
    """What a runner returns: ``status`` ``ok`` or ``failed`` (with ``reason``) and the result."""

    status: str
    result: Any = field(default_factory=dict)
    reason: str = ""


# ----------------------------------------------------------------------------- kinds

@dataclass(frozen=True)
class Kind:
    """One kind of run: everything the store, the runner, sweeps and tables need to know.

    Parameters
    ----------
    config, result : type
        The :class:`Config` subclass (its ``kind`` attribute names the kind) and :class:`Result`
        subclass of its records.
    run : callable ``(config, RunContext) -> Outcome``, optional
        Computes one configuration (:func:`empirics.experiments.execute`).  ``None`` for a kind
        whose records are written only by its command.
    sweep : type, optional
        A frozen dataclass of the flat parameters of one sweep cell, with a method
        ``configs() -> list[Config]``; its fields (types, defaults, ``metadata["help"]``) are the
        sweep's parameter table (:mod:`empirics.sweep.spec`).  Its class attribute
        ``experiment`` is the name a spec uses (default: the kind's).
    sections : callable ``(records, out) -> list[Section]``, optional
        The kind's tables from its records (the sweep collector's and the command's).
    group : callable ``(config dict) -> str``, optional
        What a table does *not* summarise over (the sweep collector's grouping).
    """

    config: type
    result: type
    run: Optional[Callable] = None
    sweep: Optional[type] = None
    sections: Optional[Callable] = None
    group: Optional[Callable] = None

    @property
    def name(self) -> str:
        return self.config.kind

    @property
    def experiment(self) -> str:
        """The name sweep specs give this kind (``[sweep] experiment = ...``)."""
        return getattr(self.sweep, "experiment", self.name)


_KINDS: dict[str, Kind] = {}
_EXTRA: dict[str, Kind] = {}


def kinds() -> dict[str, Kind]:
    """Every kind: the ``KIND`` of each module of :mod:`empirics.kinds`, plus registered ones.

    The package is listed the first time this is called (its modules import no torch); a
    module without ``KIND`` is a helper, not a kind.

    Returns
    -------
    dict
        ``{name: Kind}``.
    """
    if not _KINDS:
        pkg = importlib.import_module(KINDS_PACKAGE)
        found = {}
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            mod = importlib.import_module(f"{KINDS_PACKAGE}.{info.name}")
            k = getattr(mod, "KIND", None)
            if isinstance(k, Kind):
                if k.name in found:
                    raise RuntimeError(f"kind {k.name!r} is defined by two modules")
                found[k.name] = k
        _KINDS.update(found)
    return {**_KINDS, **_EXTRA}


def get_kind(name: str) -> Kind:
    """The :class:`Kind` called ``name`` (``ValueError`` listing the known ones).

    Parameters
    ----------
    name : str
        A kind's name.

    Returns
    -------
    Kind
    """
    k = kinds().get(name)
    if k is None:
        raise ValueError(f"kind: expected one of {sorted(kinds())}, got {name!r}")
    return k


def register_kind(kind: Kind) -> Kind:
    """Add a kind defined outside :mod:`empirics.kinds` (a user's own experiment).

    Parameters
    ----------
    kind : Kind
        The kind; its configuration class's ``kind`` names it.

    Returns
    -------
    Kind
    """
    if not isinstance(kind, Kind) or not kind.name:
        raise ValueError(f"kind: expected a Kind whose config class names its kind, got {kind!r}")
    known = kinds().get(kind.name)
    if known is not None and known != kind:
        raise ValueError(f"kind: {kind.name!r} is already defined")
    _EXTRA[kind.name] = kind
    return kind


def config_from_dict(d) -> Config:
    """The configuration object of a stored config dict (by its ``kind``).

    Parameters
    ----------
    d : dict
        A stored configuration (with its ``kind``).

    Returns
    -------
    Config
        Validated (``RecordError`` naming the field otherwise).
    """
    if not isinstance(d, dict) or "kind" not in d:
        raise RecordError("config: expected an object with a 'kind'")
    k = kinds().get(d["kind"])
    if k is None:
        raise RecordError(f"config: unknown kind {d['kind']!r}")
    return k.config.from_dict(d, "config")


# ----------------------------------------------------------------------------- records

def record_digest(record: dict) -> str:
    """The content digest of a stored record dict: sha256 (hex) of the canonical JSON of every
    field except ``digest`` itself — the configuration, status, reason, result and provenance.

    It is computed on the dict as written (and, on reading, as read: JSON floats round-trip
    exactly), so any change of a field after writing changes it.

    Parameters
    ----------
    record : dict
        A record's ``to_dict()`` or the dict read from its file.

    Returns
    -------
    str
        64 hex digits.

    Examples
    --------
    >>> d = {"key": "k", "result": {"accuracy": 0.8263}}
    >>> record_digest(d) == record_digest({**d, "digest": "anything"})
    True
    >>> record_digest(d) == record_digest({"key": "k", "result": {"accuracy": 0.99}})
    False
    """
    body = {k: v for k, v in record.items() if k != "digest"}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class Record(Plain):
    """One stored outcome: identity, full configuration, status, result, provenance, content digest.

    ``digest`` is :func:`record_digest` of the rest; ``digest_note`` is empty when the digest was
    computed as the record was written, and says when and by what it was added to a record written
    before digests existed (whose content before then could not be verified).
    """

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
    digest: str = ""
    digest_note: str = ""

    STATUSES: ClassVar[tuple] = ("ok", "failed", "error")

    @classmethod
    def validate(cls, d, where: str = "record") -> "Record":
        """Parse and fully validate a stored dict: schema, key = hash(config), result fields, and the
        content digest when the dict has one (a record without one is valid but unverified:
        :attr:`verified` is False)."""
        rec = cls.from_dict(d, where)
        if rec.schema_version != SCHEMA_VERSION:
            raise RecordError(f"{where}: schema_version {rec.schema_version}, expected {SCHEMA_VERSION}")
        if rec.status not in cls.STATUSES:
            raise RecordError(f"{where}: status {rec.status!r} not in {list(cls.STATUSES)}")
        kind = kinds().get(rec.kind)
        if kind is None:
            raise RecordError(f"{where}: unknown kind {rec.kind!r}")
        cfg = kind.config.from_dict(rec.config, f"{where}.config")
        if cfg.key() != rec.key:
            raise RecordError(f"{where}: key {rec.key} does not match its configuration (hash {cfg.key()})")
        if rec.status == "ok":
            kind.result.from_dict(rec.result, f"{where}.result")
        if rec.digest:
            got = record_digest(d)
            if got != rec.digest:
                raise RecordError(f"{where}: content does not match its digest (edited after it was written: "
                                  f"digest {rec.digest[:16]}…, content hashes to {got[:16]}…)")
        return rec

    def config_obj(self) -> Config:
        return get_kind(self.kind).config.from_dict(self.config, "config")

    def result_obj(self):
        return get_kind(self.kind).result.from_dict(self.result, "result")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def verified(self) -> bool:
        """The digest was computed when the record was written (not added later to an old record)."""
        return bool(self.digest) and not self.digest_note

    def sealed(self, note: str = "") -> "Record":
        """This record with its digest computed now (``note``: why it was not computed at writing)."""
        d = {**self.to_dict(), "digest_note": note}
        d.pop("digest", None)
        return type(self).validate({**d, "digest": record_digest(d)})

    def summary(self) -> dict:
        """The entry results.json lists for this record."""
        return {"key": self.key, "kind": self.kind, "status": self.status, "reason": self.reason,
                "config": self.config, "result": self.result, "seconds": self.seconds, "device": self.device,
                "verified": self.verified}


def diff_configs(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Human-readable differences between two (nested) config dicts: ``["lr: 0.001 → 0.5", ...]``.

    Parameters
    ----------
    old, new : dict
        Configuration dicts.
    prefix : str
        Prepended to every key (for nested calls).

    Returns
    -------
    list of str
    """
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
