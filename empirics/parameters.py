"""``"name:k=v"`` specs and constructor parameters: what the defense and attack registries share.

A defense or an attack is named on the command line, in sweep specs and in run configurations as
``NAME:key=value,...`` (``noise:sigma=0.1``).  :func:`split_spec` reads that text;
:func:`normalise_params` binds the parameters to the registered class's constructor, fills in
every default and refuses unknown names (listing the valid ones), so that a configuration holds
*all* the parameters that change a result.  :func:`fill_seed` gives a spec without a ``seed`` one
from the run's master seed.  Torch-free; used by :mod:`empirics.specs` and by
:func:`empirics.defenses.resolve_defenses`, which is why it sits below both.

Parameters added to a class after records were written can keep every existing key valid: a class
lists them in ``identity_defaults`` (name → default), and such a parameter enters the normalised
parameters only when set to another value.

Examples
--------
>>> split_spec("noise:sigma=0.1,name=x", "defense")
('noise', {'sigma': 0.1, 'name': 'x'})
"""

from __future__ import annotations

import inspect

from .seeding import stream_seed

__all__ = ["parse_value", "split_spec", "constructor_params", "normalise_params", "fill_seed"]


def parse_value(v: str):
    """``"true"`` → True, ``"none"`` → None, ``"3"`` → 3, ``"0.1"`` → 0.1, else the stripped string.

    Parameters
    ----------
    v : str
        One value of a spec.

    Returns
    -------
    bool, None, int, float or str
    """
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


def split_spec(spec: str, what: str) -> tuple[str, dict]:
    """``"NAME:k=v,..."`` → ``(NAME, {k: value})``; ``ValueError`` naming ``what`` otherwise.

    Parameters
    ----------
    spec : str
        The text.
    what : str
        What it names (``defense``, ``attack``), for messages.

    Returns
    -------
    tuple of (str, dict)
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"{what}: expected NAME[:key=value,...], got {spec!r}")
    name, _, rest = spec.partition(":")
    kw = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        if "=" not in part:
            raise ValueError(f"{what}: expected NAME[:key=value,...], got {spec!r}")
        k, v = part.split("=", 1)
        kw[k.strip()] = parse_value(v)
    return name.strip(), kw


def constructor_params(cls, skip=()) -> list[inspect.Parameter]:
    """Named constructor parameters of ``cls``.

    A class may declare them itself (``spec_parameters()``, e.g. a registered entry that
    dispatches to several implementations); otherwise they are read from ``__init__``, following
    ``**kwargs`` up the MRO.

    Parameters
    ----------
    cls : type
        A registered defense or attack class.
    skip : iterable of str
        Parameters left out.

    Returns
    -------
    list of inspect.Parameter
    """
    own = getattr(cls, "spec_parameters", None)
    if own is not None:
        return [p for p in own() if p.name not in skip]
    params, seen = [], set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass) or klass is object:
            continue
        ps = list(inspect.signature(klass.__init__).parameters.values())[1:]
        for p in ps:
            if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name in seen or p.name in skip:
                continue
            seen.add(p.name)
            params.append(p)
        if not any(p.kind == p.VAR_KEYWORD for p in ps):
            break
    return params


def normalise_params(cls, name: str, kw: dict, what: str, skip=()) -> tuple:
    """Bind ``kw`` to ``cls``'s constructor and fill in defaults: a sorted tuple of (name, value).

    ``ValueError`` naming unknown or missing parameters, or values that are not plain data.  An
    unset ``seed`` stays ``None`` (derived from the run's master seed by :func:`fill_seed`); a
    parameter listed in ``cls.identity_defaults`` is left out while it has that default.

    Parameters
    ----------
    cls : type
        The registered class.
    name : str
        Its registered name.
    kw : dict
        The parameters given.
    what : str
        ``defense`` or ``attack``, for messages.
    skip : iterable of str
        Parameters left out.

    Returns
    -------
    tuple of (str, value) pairs
    """
    params = constructor_params(cls, skip)
    valid = {p.name for p in params}
    unknown = sorted(set(kw) - valid)
    if unknown:
        raise ValueError(f"{what}: unknown parameter(s) {unknown} for {name!r}; valid: {sorted(valid)}")
    late = dict(getattr(cls, "identity_defaults", {}) or {})
    out = {}
    for p in params:
        if p.name in kw:
            v = kw[p.name]
        elif p.default is inspect.Parameter.empty:
            raise ValueError(f"{what}: {name!r} needs parameter {p.name!r}")
        else:
            v = p.default
        if p.name == "seed" and p.name not in kw:
            v = None
        if not isinstance(v, (bool, int, float, str)) and hasattr(v, "item"):  # numpy / 0-d tensor scalars
            v = v.item()
        if not (v is None or isinstance(v, (bool, int, float, str))):
            raise ValueError(f"{what}: parameter {p.name!r} of {name!r} must be plain data (number, string, "
                             f"bool, None) to be part of a run configuration, got {type(v).__name__}")
        if p.name in late and v == late[p.name] and type(v) is type(late[p.name]):
            continue  # added after records were written: part of the identity only when changed
        out[p.name] = v
    return tuple(sorted(out.items()))


def fill_seed(params: dict, seed: int, index: int, stream: str = "defense") -> dict:
    """``params`` with an unset ``seed`` drawn from the run's ``stream`` (``index`` = position).

    Parameters
    ----------
    params : dict
        A defense's parameters.
    seed : int
        The run's master seed.
    index : int
        The defense's position in its list.
    stream : str
        The stream's name.

    Returns
    -------
    dict
    """
    if "seed" in params and params["seed"] is None:
        params = {**params, "seed": stream_seed(seed, stream, index) % (2 ** 31)}
    return params
