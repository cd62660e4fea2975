"""Loading a user's encoder factory from the command line — this deliberately runs user code.

``invlimits check-defense MODULE:FUNCTION`` imports ``MODULE`` (a dotted module name importable
from ``sys.path``, to which the current directory is added, or a path to a ``.py`` file, which
is executed) and returns ``FUNCTION``.  Only point it at code you trust: importing a module runs
it.  Any import-time failure of the user's code becomes one ``ValueError`` naming the module.
"""

from __future__ import annotations

import importlib
import sys
from importlib import util as _util
from pathlib import Path
from typing import Callable

from torch import nn

__all__ = ["load_factory"]


def load_factory(spec: str) -> Callable[[], nn.Module]:
    """Import ``MODULE:FUNCTION`` — this deliberately imports and runs the user's code.

    ``MODULE`` is a dotted module name importable from ``sys.path`` (the current directory is
    added) or a path to a ``.py`` file.  check-defense identifies the encoder by this spec and a
    content hash of that file (:func:`empirics.experiments.check_encoder.spec_hash`).

    Parameters
    ----------
    spec : str
        ``MODULE:FUNCTION`` (a module on ``sys.path``) or ``path/to/file.py:FUNCTION``.

    Returns
    -------
    callable
        The function (``ValueError``, one line, when it cannot be imported or is not callable).
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"encoder: expected MODULE:FUNCTION, got {spec!r}")
    mod_name, _, fn_name = spec.rpartition(":")  # the last colon: a Windows path has one of its own
    if not mod_name or not fn_name or not fn_name.isidentifier():
        raise ValueError(f"encoder: expected MODULE:FUNCTION, got {spec!r}")
    try:
        if mod_name.endswith(".py") or "/" in mod_name:
            p = Path(mod_name)
            if not p.exists():
                raise ValueError(f"encoder: module file {mod_name!r} does not exist")
            sp = _util.spec_from_file_location(p.stem, p)
            module = _util.module_from_spec(sp)
            sp.loader.exec_module(module)
        else:
            if str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(mod_name)
    except ValueError:
        raise
    except Exception as exc:  # any import-time failure of user code
        raise ValueError(f"encoder: could not import module {mod_name!r}: {type(exc).__name__}: {exc}") from None
    fn = getattr(module, fn_name, None)
    if fn is None or not callable(fn):
        raise ValueError(f"encoder: module {mod_name!r} has no callable {fn_name!r}")
    return fn
