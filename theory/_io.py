"""The one JSON serializer and the one atomic file writer of the three packages.

``theory`` is the base layer (numpy only here), so :mod:`reduction` and :mod:`empirics` use these
too: every result's ``to_dict()``, every record, ``results.json``, the configuration keys and the
training checkpoints go through them.

* :func:`jsonable` turns numpy scalars and arrays, 0-d tensors (anything with ``.item()``),
  paths, tuples and sets, and objects with ``to_dict()`` into JSON-plain data; non-finite floats
  become the strings ``"nan"``, ``"inf"``, ``"-inf"`` so that files stay strict JSON.
* :func:`canonical_json` is the canonical text a configuration key hashes: sorted keys, no
  whitespace, UTF-8, no NaN literals.
* :func:`atomic_write` writes a file so that it exists completely or not at all, and survives a
  crash once the call returns: a temporary file in the same folder, written, flushed and
  ``fsync``-ed, renamed over the target (``os.replace``), then the folder itself ``fsync``-ed so
  the rename is durable.  :func:`write_json_atomic` and :func:`write_text_atomic` are its two
  common uses.

Examples
--------
>>> import numpy as np
>>> jsonable({"a": np.float64(0.5), "b": (1, np.int64(2)), "c": float("inf")})
{'a': 0.5, 'b': [1, 2], 'c': 'inf'}
>>> canonical_json({"b": 1, "a": [np.nan]})
'{"a":["nan"],"b":1}'
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["jsonable", "canonical_json", "atomic_write", "write_json_atomic", "write_text_atomic"]


def jsonable(obj: Any) -> Any:
    """JSON-plain data: dicts (string keys), lists, str, int, float, bool, None.

    Parameters
    ----------
    obj : any
        Nested dicts / lists / tuples / sets, numpy scalars and arrays (any shape), objects with a
        ``to_dict()`` method (dataclasses of the packages), objects with ``.item()`` (0-d arrays
        and tensors), :class:`pathlib.Path`.

    Returns
    -------
    Any
        The same structure with tuples and sets as lists, arrays as nested lists, non-finite
        floats as ``"nan"`` / ``"inf"`` / ``"-inf"``; anything else is returned unchanged.
    """
    if hasattr(obj, "to_dict") and callable(obj.to_dict) and not isinstance(obj, type):
        return jsonable(obj.to_dict())
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        if math.isfinite(f):
            return f
        return "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item) and not isinstance(obj, (str, bytes)):
        try:  # a 0-d tensor or array scalar
            return jsonable(obj.item())
        except (TypeError, ValueError, RuntimeError):
            pass
    return obj


def canonical_json(obj: Any) -> str:
    """The canonical JSON text of ``obj`` (what configuration keys hash).

    Sorted keys, no whitespace, non-ASCII kept, non-finite floats as strings (:func:`jsonable`).
    """
    return json.dumps(jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform without directory handles (Windows): the rename is all we have
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, data: bytes | str | Callable[[Any], None]) -> Path:
    """Write ``path`` atomically and durably.

    Parameters
    ----------
    path : str or Path
        The target; its folder is created if needed.
    data : bytes, str or callable
        The content (``str`` is written as UTF-8), or a function that writes into the binary file
        object it is given (e.g. ``lambda fh: torch.save(obj, fh)``).

    Returns
    -------
    Path
        ``path``.  A temporary ``.<name>.*.tmp`` file in the same folder is written, flushed and
        fsync-ed, then renamed over ``path`` and the folder fsync-ed; on any error (or an
        interrupt) the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def write_json_atomic(path, payload: Any, *, indent: int | None = 2) -> Path:
    """:func:`atomic_write` of ``json.dumps(jsonable(payload))`` (strict JSON) plus a newline."""
    return atomic_write(path, json.dumps(jsonable(payload), indent=indent, allow_nan=False) + "\n")


def write_text_atomic(path, text: str) -> Path:
    """:func:`atomic_write` of a text file (UTF-8)."""
    return atomic_write(path, text)
