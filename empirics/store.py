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
every field and its type, ``key`` = hash of the stored configuration, the result's fields, and
the content digest over configuration *and* result) of every kind — the kinds are found by
:func:`empirics.records.kinds`, so a process that imported nothing but this module reads them all.
Invalid entries — garbage, truncated, binary, missing or mistyped fields, a key that does not
match its configuration, content that does not match its digest (a record edited by hand, e.g.
an accuracy changed from 0.8263 to 0.99) — are moved to ``quarantine/`` with a warning naming the
file and the reason; the run they would have held is simply not done, so a rerun computes it once.
Temporary files of writes still in flight (``*.tmp``) are ignored.

Records written before records carried a digest (package 0.1.0 before issue 21) are *migrated on
read*: the digest of their content as read is added, with ``digest_note`` saying so, and the file
is rewritten (atomically), with a :class:`StoreWarning` naming it.  Why not quarantine them: their
keys — the configurations' identities — are unchanged and their results are as valid as when they
were computed; recomputing every old sweep would cost hours for nothing.  Why not leave them
unsealed: a later edit would then go unnoticed.  What the migration cannot do is vouch for the
content before it: such a record stays marked (``Record.verified`` is False, ``verified`` in
``results.json`` and in :meth:`RecordStore.to_frame`), so deleting a record's digest to hide an
edit leaves that mark, never a trusted record.

:meth:`RecordStore.to_frame` gives the records as a pandas DataFrame (pandas is the optional
extra ``inversion-limits[analysis]``); :func:`records_table` gives the same flat rows without
pandas (``invlimits records DIR --csv FILE``).

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

__all__ = ["RecordStore", "StoreWarning", "make_record", "package_version", "records_table", "LEGACY_NOTE"]

#: ``digest_note`` of a record written before records carried a digest, sealed when first read
LEGACY_NOTE = ("written without a digest (before issue 21); digest added when first read by {package} on {when}: "
               "its content before then is unverified")


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
    return rec.sealed()


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
        if not rec.digest:
            rec = self._migrate(path, rec)
        return rec

    def _migrate(self, path: Path, rec: Record) -> Record:
        """Seal a record written before records carried a digest (see the module docstring)."""
        sealed = rec.sealed(LEGACY_NOTE.format(package=f"inversion-limits {package_version()}",
                                               when=time.strftime("%Y-%m-%dT%H:%M:%S%z")))
        try:
            write_json_atomic(path, sealed.to_dict(), indent=1)
            done = "its digest was added (content before now unverified)"
        except OSError as exc:
            done = f"it could not be rewritten ({exc.strerror or exc}); it is used unverified"
        warnings.warn(f"record store: {path} has no content digest (written by {rec.package or 'an older version'} "
                      f"before records carried one); {done}", StoreWarning, stacklevel=4)
        return sealed

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

    # -- analysis ------------------------------------------------------------------------
    def to_frame(self, *, kind: str | None = None):
        """Every valid record as a pandas DataFrame, one row per record (invalid ones are quarantined).

        Columns: ``key``, ``kind``, ``status``, ``reason``, ``seconds``, ``device``, ``host``,
        ``created``, ``package``, ``verified``, then the configuration and the result flattened
        with dotted names (``config.train.lr``, ``result.accuracy``; lists of numbers and of
        objects as JSON text).  Needs pandas (``pip install 'inversion-limits[analysis]'``).

        Parameters
        ----------
        kind : str, optional
            Only records of this kind.

        Returns
        -------
        pandas.DataFrame
        """
        try:
            import pandas as pd  # deferred: an optional extra (inversion-limits[analysis])
        except ImportError:
            raise ImportError("RecordStore.to_frame needs pandas, an optional extra: pip install "
                              "'inversion-limits[analysis]' (or pip install pandas)") from None
        columns, rows = records_table(self.scan().values(), kind=kind)
        return pd.DataFrame(rows, columns=columns)

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


#: the record's own fields first in a table of records, in this order
RECORD_COLUMNS = ("key", "kind", "status", "reason", "seconds", "device", "host", "created", "package", "verified")


def _flatten(prefix: str, value, out: dict) -> None:
    if isinstance(value, dict) and value:
        for k in sorted(value):
            _flatten(f"{prefix}.{k}", value[k], out)
    elif isinstance(value, (list, dict)):
        out[prefix] = json.dumps(value, sort_keys=True, ensure_ascii=False)
    elif isinstance(value, str) and value in ("nan", "inf", "-inf"):
        out[prefix] = float(value)
    else:
        out[prefix] = value


def records_table(records, *, kind: str | None = None) -> tuple[list[str], list[dict]]:
    """Records as flat rows: ``(columns, rows)`` (see :meth:`RecordStore.to_frame`; no pandas needed).

    Parameters
    ----------
    records : iterable of Record
        The records.
    kind : str, optional
        Only records of this kind.

    Returns
    -------
    tuple of (list of str, list of dict)
        The column names (the record's fields, then ``config.*`` and ``result.*`` sorted) and one
        dict per record (a missing entry: the record has no such field).

    Examples
    --------
    >>> from empirics.specs import TrainConfig
    >>> from empirics.kinds.train import TrainRunConfig
    >>> rec = make_record(TrainRunConfig(train=TrainConfig(dataset="digits")), "ok",
    ...                   result={"accuracy": 0.9, "chance": 0.1, "n_test": 450})
    >>> cols, rows = records_table([rec])
    >>> rows[0]["result.accuracy"], rows[0]["config.train.lr"], rows[0]["verified"]
    (0.9, 0.001, True)
    """
    rows, names = [], set()
    for r in sorted(records, key=lambda r: (r.kind, r.key)):
        if kind is not None and r.kind != kind:
            continue
        row = {c: getattr(r, c) for c in RECORD_COLUMNS}
        flat: dict = {}
        _flatten("config", {k: v for k, v in r.config.items() if k != "kind"}, flat)
        _flatten("result", r.result, flat)
        row.update(flat)
        names.update(flat)
        rows.append(row)
    cfg = sorted(n for n in names if n.startswith("config."))
    res = sorted(n for n in names if n.startswith("result."))
    return [*RECORD_COLUMNS, *cfg, *res], rows
