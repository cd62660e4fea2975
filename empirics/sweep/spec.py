"""Sweep specifications: a TOML file naming an experiment, a grid and fixed settings → cells.

A spec has four tables::

    [sweep]                      # experiment = "entropy-vs-mse" | "defense-table" | "train" | ...
    experiment = "entropy-vs-mse"
    name = "fig3-digits"         # optional (used in titles and SLURM job names)
    [grid]                       # every combination of these lists is one cell
    dataset = ["digits"]
    sigma = [0.1, 0.3]
    lam = [0.0, 0.01]
    seed = [0, 1]
    [settings]                   # one value each, the same for every cell
    epochs = 2
    attack_epochs = 2
    [resources]                  # what each cell asks of Ray / SLURM (optional)
    num_cpus = 1
    num_gpus = 0

The experiments are the kinds with sweep parameters (:attr:`empirics.records.Kind.sweep`, listed by
:func:`experiments`), and their parameters are that dataclass's fields (:func:`params`): each may
stand in ``[grid]`` (a non-empty list without repeats) or in ``[settings]`` (one value), never
both; absent ones take the field's default — or, for a field declared with an ``axis``, make an axis
of those values (the defense table's three seeds and every baseline; the eight σ of Fig. 3).  Each
cell is one frozen configuration (``configs()`` of the dataclass); its key decides whether it is
done.  Everything is validated before anything runs: an unknown table or key, an empty axis, a
repeated value or a value of the wrong type or range is a ``ValueError`` naming the key (the
command line prints it and exits with status 2).

A grid's size is known before anything is built: :func:`count_cells` multiplies the axes'
lengths (those of ``[grid]`` and the default axes), and :func:`iter_cells` / :func:`expand` refuse a
spec above ``max_cells`` (:data:`MAX_CELLS`, ``invlimits sweep --max-cells``) with that count
before building a single configuration.  :func:`iter_cells` yields the cells one at a time (a dry
run of a large grid never holds every cell); :func:`expand` is its list.

This module imports no torch until cells are built (:func:`expand`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from theory._validate import expect_int, expect_number

from ..records import Kind, kinds
from ..registry import spec as dataset_spec
from .params import TrainSweep, field_type

__all__ = ["experiments", "params", "params_table", "SweepSpec", "load_spec", "parse_spec", "expand", "iter_cells",
           "count_cells", "check_size", "MAX_CELLS", "Cell", "combinations", "datasets"]

#: the most cells a spec may have unless ``max_cells`` (``--max-cells``) says otherwise: a grid is
#: refused above it before any cell is built (10⁵ cells of a few hundred bytes each, plus their
#: records, stay well within a laptop's memory; the runs themselves are what takes time)
MAX_CELLS = 100_000

def experiments() -> dict[str, Kind]:
    """``{experiment name: Kind}`` of every kind a sweep can run (those with sweep parameters).

    Returns
    -------
    dict
    """
    return {k.experiment: k for k in kinds().values() if k.sweep is not None}


def params() -> dict[str, tuple[str, set, str]]:
    """The parameter table: name → (type, experiments that take it, help), from the kinds' sweep fields.

    Returns
    -------
    dict
        The help line of a setting every sweep of trained models shares is its
        :class:`~empirics.sweep.params.TrainSweep` one; others are their kind's.
    """
    base = {f.name: f.metadata.get("help", "") for f in dataclasses.fields(TrainSweep)}
    out: dict[str, tuple[str, set, str]] = {}
    for exp, k in sorted(experiments().items()):
        for f in dataclasses.fields(k.sweep):
            tp = field_type(k.sweep, f.name)
            if f.name in out:
                out[f.name][1].add(exp)
            else:
                out[f.name] = (tp, {exp}, base.get(f.name) or f.metadata.get("help", ""))
    return out


def params_table() -> str:
    """The README's table of sweep parameters, generated from the kinds' sweep fields (a test keeps
    the README identical to it).

    Returns
    -------
    str
        A Markdown table: one row per parameter, one column per experiment with its default there
        (``axis: ...`` when leaving it out makes an axis of those values; ``–`` when it does not take it).
    """
    exps = experiments()
    names = sorted(exps)
    rows = ["| parameter | type | " + " | ".join(f"`{e}`" for e in names) + " | meaning |",
            "| --- | --- | " + " | ".join("---" for _ in names) + " | --- |"]

    def cell(exp, name):
        f = next((f for f in dataclasses.fields(exps[exp].sweep) if f.name == name), None)
        if f is None:
            return "–"
        if f.metadata.get("axis"):
            return "axis: " + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in f.metadata["axis"])
        if f.metadata.get("required"):
            return "required"
        d = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if d is None:
            return "unset"
        if isinstance(d, float):
            return f"`{d:g}`"
        return f"`{list(d) if isinstance(d, tuple) else d!r}`"
    kinds_of = {"strs": "list of names", "strs0": "list of names (may be empty)"}
    for name, (tp, _, help_) in sorted(params().items()):
        rows.append(f"| `{name}` | {kinds_of.get(tp, tp)} | " + " | ".join(cell(e, name) for e in names)
                    + f" | {help_} |".replace("x|z", "x\\|z"))
    return "\n".join(rows)


def _field(exp: str, name: str):
    return next(f for f in dataclasses.fields(experiments()[exp].sweep) if f.name == name)


_TABLES = {"sweep": {"experiment", "name", "description"}, "grid": None, "settings": None,
           "resources": {"num_cpus", "num_gpus"}}


@dataclass(frozen=True)
class SweepSpec:
    """A validated spec: experiment, grid axes (name → tuple of values), settings and resources."""

    experiment: str
    grid: dict
    settings: dict
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    name: str = ""
    description: str = ""
    path: str = ""

    @property
    def n_combinations(self) -> int:
        """The product of the ``[grid]`` axes' lengths (:func:`count_cells` adds the default axes)."""
        return math.prod(len(v) for v in self.grid.values())


@dataclass(frozen=True)
class Cell:
    """One cell: its configuration (the identity), a label and the grid values that made it."""

    config: Any
    values: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.config.key()

    def label(self) -> str:
        return self.config.label()


def _toml_loads(text: str) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib  # deferred: which module depends on the Python version
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # deferred: which module depends on the Python version
    return tomllib.loads(text)


def load_spec(path) -> SweepSpec:
    """Read and validate a spec file (``ValueError`` naming the file and the key on any problem).

    Parameters
    ----------
    path : str or Path
        The TOML file.

    Returns
    -------
    SweepSpec
    """
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ValueError(f"spec: {p} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"spec: cannot read {p}: {exc}") from None
    try:
        data = _toml_loads(text)
    except Exception as exc:  # tomllib.TOMLDecodeError
        raise ValueError(f"spec {p}: not valid TOML: {exc}") from None
    return parse_spec(data, where=str(p))


def _check_type(value, tp: str, where: str):
    """The value converted to ``tp`` or a ValueError naming ``where``."""
    def bad(expected):
        return ValueError(f"{where}: expected {expected}, got {type(value).__name__} {value!r:.60}")
    if tp == "str":
        if not isinstance(value, str) or not value:
            raise bad("a non-empty string")
        return value
    if tp == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if tp == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad("a finite number")
        return float(value)
    if tp == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if tp in ("strs", "strs0"):
        if not isinstance(value, list) or not (value or tp == "strs0") or \
                not all(isinstance(v, str) and v for v in value):
            raise bad("a list of strings" if tp == "strs0" else "a non-empty list of strings")
        return tuple(value)
    if tp == "table":
        if not isinstance(value, dict):
            raise bad("a table such as {objective = \"code\"}")
        for k, v in value.items():
            if not (isinstance(v, (bool, int, float, str))):
                raise ValueError(f"{where}.{k}: expected a number, string or boolean, got {type(v).__name__}")
        return dict(value)
    raise AssertionError(tp)  # pragma: no cover


def _choices(meta) -> tuple:
    c = meta.get("choices")
    return tuple(c() if callable(c) else c) if c is not None else ()


def _check_range(meta: dict, tp: str, value, where: str, names_where: str | None = None) -> None:
    """The field's declared range and names (``param(minimum=, positive=, nonneg=, choices=)``); a
    name not among the choices is reported at ``names_where`` (the axis, not its entry)."""
    if tp == "int" and meta.get("minimum") is not None:
        expect_int(value, where, minimum=meta["minimum"])
    if tp == "float" and (meta.get("positive") or meta.get("nonneg")):
        expect_number(value, where, positive=meta.get("positive", False), nonneg=meta.get("nonneg", False))
    ok = _choices(meta)
    if not ok:
        return
    where = names_where or where
    if tp in ("strs", "strs0"):
        for v in value:
            if v not in ok:
                raise ValueError(f"{where}: expected names from {list(ok)}, got {v!r}")
    elif value not in ok:
        listed = f"{ok[0]!r} or {ok[1]!r}" if len(ok) == 2 else f"one of {sorted(ok)}"
        raise ValueError(f"{where}: expected {listed}, got {value!r}")


def parse_spec(data: dict, where: str = "spec") -> SweepSpec:
    """Validate a spec already read into a dict (see the module docstring for its form).

    Parameters
    ----------
    data : dict
        The TOML document.
    where : str
        Its name in messages.

    Returns
    -------
    SweepSpec
    """
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a TOML document")
    for t in data:
        if t not in _TABLES:
            raise ValueError(f"{where}: unknown table [{t}]; valid: {', '.join(f'[{n}]' for n in _TABLES)}")
        if not isinstance(data[t], dict):
            raise ValueError(f"{where}: {t} must be a table [{t}]")
    exps = experiments()
    sw = data.get("sweep")
    if sw is None or "experiment" not in sw:
        raise ValueError(f"{where}: sweep.experiment: required, one of {sorted(exps)}")
    for t in ("sweep", "resources"):
        for k in data.get(t, {}):
            if k not in _TABLES[t]:
                raise ValueError(f"{where}: unknown key {t}.{k}; valid: {sorted(_TABLES[t])}")
    exp = sw["experiment"]
    if exp not in exps:
        raise ValueError(f"{where}: sweep.experiment: expected one of {sorted(exps)}, got {exp!r}")
    name = _check_type(sw.get("name", "sweep"), "str", f"{where}: sweep.name")
    desc = sw.get("description", "")
    if not isinstance(desc, str):
        raise ValueError(f"{where}: sweep.description: expected a string")
    fields = {f.name: f for f in dataclasses.fields(exps[exp].sweep)}
    valid = sorted(fields)
    grid, settings = {}, {}
    for table, out in (("grid", grid), ("settings", settings)):
        for k, v in data.get(table, {}).items():
            w = f"{where}: {table}.{k}"
            if k not in fields:
                raise ValueError(f"{w}: unknown key for experiment {exp!r}; valid: {', '.join(valid)}")
            tp, meta = field_type(exps[exp].sweep, k), fields[k].metadata
            if table == "grid":
                if tp == "table":
                    raise ValueError(f"{w}: a table, not an axis: put it in [settings]")
                if not isinstance(v, list) or not v:
                    raise ValueError(f"{w}: expected a non-empty list of values (an axis), got {v!r:.60}")
                vals = []
                for i, x in enumerate(v):
                    x = _check_type(x, tp, f"{w}[{i}]")
                    _check_range(meta, tp, x, f"{w}[{i}]", names_where=w)
                    if x in vals:
                        raise ValueError(f"{w}: value {x!r} appears twice")
                    vals.append(x)
                out[k] = tuple(vals)
            else:
                if k in grid:
                    raise ValueError(f"{w}: also an axis in [grid]; give it in one place")
                x = _check_type(v, tp, w)
                if tp != "table":
                    _check_range(meta, tp, x, w)
                out[k] = x
    res = data.get("resources", {})
    cpus = _check_type(res.get("num_cpus", 1), "float", f"{where}: resources.num_cpus")
    gpus = _check_type(res.get("num_gpus", 0), "float", f"{where}: resources.num_gpus")
    if not cpus > 0:
        raise ValueError(f"{where}: resources.num_cpus: expected a number > 0, got {cpus}")
    if gpus < 0:
        raise ValueError(f"{where}: resources.num_gpus: expected a number >= 0, got {gpus}")
    return SweepSpec(experiment=exp, grid=grid, settings=settings, num_cpus=cpus, num_gpus=gpus, name=name,
                     description=desc, path=where)


def _values(d: dict, k: str) -> list:
    """Values of a scalar parameter ``k`` in a grid (an axis: a tuple of values) or settings (one value)."""
    if k not in d:
        return []
    return list(d[k]) if isinstance(d[k], tuple) else [d[k]]


# ----------------------------------------------------------------------------- cells

def combinations(spec: SweepSpec):
    """Every combination of the grid's axes (in the order the spec lists them), as dicts, one at a time.

    Parameters
    ----------
    spec : SweepSpec
        The spec.

    Returns
    -------
    iterator of dict
    """
    names = list(spec.grid)
    return (dict(zip(names, vals)) for vals in itertools.product(*(spec.grid[n] for n in names)))


def _default_axes(spec: SweepSpec) -> dict:
    """The axes a spec gets from parameters declared with ``axis=`` that it does not name."""
    sweep = experiments()[spec.experiment].sweep
    return {f.name: f.metadata["axis"] for f in dataclasses.fields(sweep)
            if f.metadata.get("axis") and f.name not in spec.grid and f.name not in spec.settings}


def count_cells(spec: SweepSpec) -> int:
    """The number of cells of a spec, from its axes' lengths alone (nothing is built).

    The product of the lengths of the ``[grid]`` axes and of the default axes (e.g. the defense
    table's three seeds); each combination is one configuration.  An upper bound on the cells
    :func:`iter_cells` yields: combinations that give the same configuration (e.g. λ without CEM)
    are one cell.

    Parameters
    ----------
    spec : SweepSpec
        The spec.

    Returns
    -------
    int

    Examples
    --------
    >>> s = parse_spec({"sweep": {"experiment": "entropy-vs-mse"}, "grid": {"lam": [0.0, 0.01], "seed": [0, 1, 2]}})
    >>> count_cells(s)   # 2 × 3, times the 8 σ of the default axis
    48
    """
    return math.prod(len(v) for v in spec.grid.values()) * math.prod(len(v) for v in _default_axes(spec).values())


def check_size(spec: SweepSpec, max_cells: int = MAX_CELLS) -> int:
    """The spec's cell count (:func:`count_cells`), or a ``ValueError`` when it exceeds ``max_cells``.

    Parameters
    ----------
    spec : SweepSpec
        The spec.
    max_cells : int
        The most cells allowed.

    Returns
    -------
    int
    """
    expect_int(max_cells, "max_cells")
    n = count_cells(spec)
    if n > max_cells:
        axes = [f"{k} {len(v):,}" for k, v in spec.grid.items()] + \
               [f"{k} {len(v):,} (default axis)" for k, v in _default_axes(spec).items()]
        raise ValueError(f"{spec.path}: {n:,} cells ({' × '.join(axes)}), more than the {max_cells:,} allowed: split the "
                         f"grid into several specs, or raise --max-cells (the library: max_cells=) if you mean it")
    return n


def iter_cells(spec: SweepSpec, *, fingerprints: dict | None = None, max_cells: int = MAX_CELLS):
    """The spec's cells (configurations) one at a time, each key once, in grid order.

    The size is checked first (:func:`check_size`: a ``ValueError`` with the count above
    ``max_cells``, before any cell is built).  ``fingerprints``: dataset name → content hash, for
    datasets read from local files (the hash is part of every such cell's identity, as for
    ``invlimits train``).  An invalid combination is a ``ValueError`` naming it when it is reached.
    Only the keys seen so far are held (16 characters each), never the cells.

    Parameters
    ----------
    spec : SweepSpec
        The spec.
    fingerprints : dict, optional
        Dataset name → content hash.
    max_cells : int
        The most cells allowed.

    Returns
    -------
    iterator of Cell
    """
    check_size(spec, max_cells)
    return _iter_cells(spec, fingerprints or {})


def _iter_cells(spec: SweepSpec, fingerprints: dict):
    sweep = experiments()[spec.experiment].sweep
    axes = _default_axes(spec)
    seen = set()
    for combo in combinations(spec):
        cfgs = []
        try:
            for extra in itertools.product(*axes.values()):
                cfgs += sweep(**{**spec.settings, **combo, **dict(zip(axes, extra))}).configs()
            cfgs = [c.replace(train=c.train.replace(data_fingerprint=fingerprints[c.train.dataset]))
                    if hasattr(c, "train") and c.train.dataset in fingerprints else c for c in cfgs]
        except ValueError as exc:
            what = ", ".join(f"{k}={v}" for k, v in combo.items()) or "the settings"
            raise ValueError(f"{spec.path}: cell {what}: {exc}") from None
        for c in cfgs:
            k = c.key()
            if k not in seen:
                seen.add(k)
                yield Cell(c, combo)


def expand(spec: SweepSpec, *, fingerprints: dict | None = None, max_cells: int = MAX_CELLS) -> list[Cell]:
    """The spec's cells as a list (:func:`iter_cells`; the size is checked before any is built).

    Parameters
    ----------
    spec : SweepSpec
        The spec.
    fingerprints : dict, optional
        Dataset name → content hash.
    max_cells : int
        The most cells allowed.

    Returns
    -------
    list of Cell
    """
    return list(iter_cells(spec, fingerprints=fingerprints, max_cells=max_cells))


def datasets(spec: SweepSpec) -> list[str]:
    """Dataset names the spec's cells use (canonical names).

    Parameters
    ----------
    spec : SweepSpec
        The spec.

    Returns
    -------
    list of str
    """
    if not any(f.name == "dataset" for f in dataclasses.fields(experiments()[spec.experiment].sweep)):
        return []  # an experiment without data (phase-transition)
    vals = _values(spec.grid, "dataset") or _values(spec.settings, "dataset")
    if not vals:
        vals = [_field(spec.experiment, "dataset").default]
    return list(dict.fromkeys(dataset_spec(v).name for v in vals))
