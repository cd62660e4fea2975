"""The record store: one JSON file per finished run, named by its configuration's key.

Layout under a command's ``--out`` directory::

    OUT/records/<key>.json              one record (empirics.records.Record), written atomically
    OUT/records/quarantine/<file>       invalid entries, moved aside (never deleted), with a
    OUT/records/quarantine/<file>.why   one-line reason

Why one file per record rather than one JSONL file: a record is written to a temporary file in
the same directory, fsync-ed and renamed into place (:func:`theory._io.atomic_write`), so it
exists completely or not at all — there are no torn lines; no two workers ever write the same file (sweeps on several
processes, Ray workers or SLURM array tasks on a shared file system), so no locking is needed;
the file name *is* the key, so a key can never be stored twice; and a corrupt entry is isolated
to its own file and can be moved aside without rewriting anything else.

Reading validates every entry (:meth:`empirics.records.Record.validate`: JSON, schema version,
every field and its type, ``key`` = hash of the stored configuration, the result's fields) of
every kind — the kinds are found by :func:`empirics.records.kinds`, so a process that imported
nothing but this module reads them all.
Invalid entries — garbage, truncated, binary, missing or mistyped fields, a key that does not
match its configuration — are moved to ``quarantine/`` with a warning naming the file and the
reason; the run they would have held is simply not done, so a rerun computes it once.
Temporary files of writes still in flight (``*.tmp``) are ignored.

Examples
--------
>>> import tempfile
>>> from empirics.specs import TrainConfig
>>> from empirics.kinds.train import TrainRunConfig
>>> st = RecordStore(tempfile.mkdtemp())
>>> cfg = TrainRunConfig(train=TrainConfig(dataset="digits", epochs=1))
>>> st.get(cfg) is None
True
>>> rec = st.put(make_record(cfg, "ok", result={"accuracy": 0.9, "chance": 0.1, "n_test": 450}))
>>> st.get(cfg).result["accuracy"]
0.9
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from theory._io import jsonable, write_json_atomic, write_text_atomic

from .records import SCHEMA_VERSION, Config, Record, RecordError

__all__ = ["RecordStore", "StoreWarning", "make_record", "package_version"]


class StoreWarning(UserWarning):
    """An invalid record was quarantined (the warning names the file and the reason)."""


def package_version() -> str:
    """The installed package's version (recorded in every record).

    Returns
    -------
    str
        The installed version, or ``unknown`` in a source tree.
    """
    try:
        return version("inversion-limits")
    except PackageNotFoundError:  # not installed (running from a source tree)
        return "unknown"


def make_record(config: Config, status: str, *, result=None, reason: str = "", seconds: float = 0.0,
                device: str = "") -> Record:
    """A :class:`~empirics.records.Record` for ``config`` (validated before it is returned).

    Parameters
    ----------
    config : Config
        The run.
    status : {'ok', 'failed', 'error'}
        Its outcome.
    result : Result or dict, optional
        Its result (validated against the kind's result class when ``ok``).
    reason : str
        Why it failed or raised.
    seconds : float
        Its run time.
    device : str
        Where it ran.

    Returns
    -------
    Record
    """
    res = result.to_dict() if hasattr(result, "to_dict") else dict(result or {})
    rec = Record(schema_version=SCHEMA_VERSION, key=config.key(), kind=config.kind, config=jsonable(config.to_dict()),
                 status=status, reason=str(reason), result=jsonable(res), seconds=float(seconds),
                 created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), host=socket.gethostname(), device=str(device),
                 package=package_version())
    return Record.validate(rec.to_dict())


class RecordStore:
    """Records of finished runs under ``root`` (usually ``OUT/records``)."""

    def __init__(self, root):
        self.root = Path(root)
        self.quarantine_dir = self.root / "quarantine"
        self.quarantined: list[tuple[str, str]] = []  # (file, reason) moved aside by this object

    # -- paths ---------------------------------------------------------------------------
    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    # -- reading -------------------------------------------------------------------------
    def _load(self, path: Path) -> Record | None:
        """The valid record in ``path``, or None after quarantining it."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._quarantine(path, f"unreadable: {exc}")
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self._quarantine(path, "not UTF-8 text (binary data)")
            return None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            self._quarantine(path, f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})")
            return None
        try:
            rec = Record.validate(d, "record")
        except RecordError as exc:
            self._quarantine(path, str(exc))
            return None
        except (TypeError, ValueError) as exc:
            self._quarantine(path, f"invalid record: {exc}")
            return None
        if path.stem != rec.key:
            self._quarantine(path, f"file name {path.name} does not match the record's key {rec.key}")
            return None
        return rec

    def _quarantine(self, path: Path, reason: str) -> None:
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        dest = self.quarantine_dir / path.name
        i = 1
        while dest.exists():
            dest = self.quarantine_dir / f"{path.stem}.{i}{path.suffix}"
            i += 1
        try:
            os.replace(path, dest)
        except FileNotFoundError:  # another process moved it first
            return
        write_text_atomic(dest.parent / (dest.name + ".why"), f"{path}: {reason}\n")
        self.quarantined.append((str(path), reason))
        warnings.warn(f"record store: {path} is invalid ({reason}); moved to {dest} — the run it would "
                      "hold is recomputed", StoreWarning, stacklevel=3)

    def get(self, config_or_key) -> Record | None:
        """The valid record with this configuration's key (None if absent or invalid)."""
        key = config_or_key if isinstance(config_or_key, str) else config_or_key.key()
        return self._load(self.path(key))

    def done(self, config_or_key) -> bool:
        """A record exists whose outcome is final (``ok`` or ``failed``; ``error`` is retried)."""
        rec = self.get(config_or_key)
        return rec is not None and rec.status in ("ok", "failed")

    def scan(self) -> dict[str, Record]:
        """Every valid record (key → record); invalid entries are quarantined."""
        out = {}
        if not self.root.is_dir():
            return out
        for p in sorted(self.root.iterdir()):
            if p.is_dir() or p.name.endswith(".tmp") or p.name.startswith("."):
                continue
            if p.suffix != ".json":
                self._quarantine(p, "not a record file (expected <key>.json)")
                continue
            rec = self._load(p)
            if rec is not None:
                out[rec.key] = rec
        return out

    def records(self, configs) -> list[Record | None]:
        """Records for a list of configurations, in order (None where missing)."""
        return [self.get(c) for c in configs]

    # -- writing -------------------------------------------------------------------------
    def put(self, record: Record) -> Record:
        """Write ``record`` atomically and durably (:func:`theory._io.atomic_write`); replaces a
        record of the same key (a rerun of an ``error`` record)."""
        write_json_atomic(self.path(record.key), record.to_dict(), indent=1)
        return record

    def __len__(self) -> int:
        return len(self.scan())

    def __repr__(self) -> str:
        return f"RecordStore({str(self.root)!r})"
