"""Sweep specifications: a TOML file naming an experiment, a grid and fixed settings → cells.

A spec has four tables::

    [sweep]                      # experiment = "entropy-vs-mse" | "defense-table" | "train"
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

Every parameter (:data:`PARAMS`) may stand in ``[grid]`` (a non-empty list without repeats) or in
``[settings]`` (one value), never both; absent ones take the defaults of the experiment's cell
function (:func:`empirics.experiments.entropy_mse.entropy_vs_mse_cells`,
:func:`empirics.experiments.defense_table.defense_table_cells`, or a
:class:`~empirics.runs.TrainAttackConfig` for ``train``).  Each cell is one frozen configuration of
:mod:`empirics.runs`; its key decides whether it is done.  Everything is validated before
anything runs: an unknown table or key, an empty axis, a repeated value or a value of the wrong
type is a ``ValueError`` naming the key (the command line prints it and exits with status 2).

Besides the cell functions' arguments, three settings reach into the configurations:
``optimizer``, ``weight_decay``, ``preset`` and ``bottleneck`` replace those fields of every
cell's training configuration; ``sigma`` of a defense table replaces the σ of the Gaussian noise
that every base defense composes (0.1 in :data:`~empirics.experiments.defense_table.BASELINES`;
the CEM paper's Table 1 uses 0.025); ``cem_params`` (a table, settings only) adds parameters to
every CEM defense (e.g. ``{objective = "code"}``), validated against the CEM defense's
constructor.

This module imports no torch until cells are built (:func:`expand`).
"""

from __future__ import annotations

import itertools
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EXPERIMENTS", "PARAMS", "SweepSpec", "load_spec", "parse_spec", "expand", "Cell", "short_label"]

EXPERIMENTS = ("entropy-vs-mse", "defense-table", "train")

#: parameter -> (type, experiments that take it, help).  Types: str, int, float, bool, strs (non-empty
#: list of strings), strs0 (list of strings, may be empty), table (settings only).
_ALL = set(EXPERIMENTS)
PARAMS: dict[str, tuple[str, set, str]] = {
    "dataset": ("str", _ALL, "registered dataset (datasets read from local files need --data-root)"),
    "seed": ("int", _ALL, "master seed of the cell (training, defenses, attack)"),
    "epochs": ("int", _ALL, "training epochs"),
    "attack_epochs": ("int", _ALL, "epochs of the trained attacks (optimization attack: 10x steps, >= 50)"),
    "batch_size": ("int", _ALL, "training batch size"),
    "lr": ("float", _ALL, "learning rate"),
    "optimizer": ("str", _ALL, "adam or sgd"),
    "weight_decay": ("float", _ALL, "weight decay"),
    "preset": ("str", _ALL, "model preset (default: the dataset's)"),
    "bottleneck": ("int", _ALL, "encoder output channels / features"),
    "sigma": ("float", _ALL, "Gaussian feature-noise σ"),
    "lam": ("float", _ALL, "CEM weight λ (entropy-vs-mse, train: 0 = no CEM)"),
    "k_per_class": ("int", _ALL, "mixture components per class (CEM and the H(x|z) estimate)"),
    "cem_params": ("table", _ALL, "extra parameters of every CEM defense, e.g. {objective = \"code\"}"),
    "covariance": ("str", {"entropy-vs-mse"}, "full or diag (CEM and the H(x|z) estimate)"),
    "h_x": ("float", {"entropy-vs-mse"}, "the H(x) the relative H(x|z) is measured against"),
    "baseline": ("str", {"defense-table"}, "base defense of a Table 1 row"),
    "with_cem": ("bool", {"defense-table"}, "false: the base defense alone; true: with CEM at λ"),
    "attacks": ("strs0", {"defense-table", "train"}, "attacks run on each trained model ([] = train only)"),
    "eval_train": ("bool", {"defense-table", "train"}, "also attack training inputs"),
    "defenses": ("strs", {"train"}, "defense specs NAME:k=v applied in order (after noise σ, before CEM λ)"),
}

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
        return short_label(self.config)


def _short_defense(d) -> str:
    """``noise:sigma=0.1``; CEM by its weight (and objective when not the paper's)."""
    p = dict(d.params)
    if d.name == "cem":
        return f"cem:lam={p.get('lam'):g}" + (f",objective={p['objective']}" if p.get("objective") not in
                                                (None, "paper") else "")
    return str(d)


def short_label(cfg) -> str:
    """A one-line description of a cell for progress lines and tables (the key is its identity)."""
    t = cfg.train
    if cfg.kind == "entropy-vs-mse":
        return cfg.label()
    if cfg.kind == "defense-table":
        sig = [dict(d.params).get("sigma") for d in t.defenses if d.name == "noise"]
        return (f"{t.dataset} {cfg.baseline}" + (f" + CEM λ={cfg.lam:g}" if cfg.cem else "")
                + (f" σ={sig[0]:g}" if sig else "") + f" seed {t.seed}")
    defs = " + ".join(_short_defense(d) for d in t.defenses) or "no defense"
    return f"{t.dataset} [{defs}] seed {t.seed}" + (f" → {','.join(a.name for a in cfg.attacks)}"
                                                    if cfg.attacks else "")


def _toml_loads(text: str) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    return tomllib.loads(text)


def load_spec(path) -> SweepSpec:
    """Read and validate a spec file (``ValueError`` naming the file and the key on any problem)."""
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


_POSITIVE = ("epochs", "attack_epochs", "batch_size", "k_per_class", "bottleneck")


def _check_range(name: str, value, where: str) -> None:
    if name in _POSITIVE and value < 1:
        raise ValueError(f"{where}: expected a positive integer, got {value}")
    if name == "seed" and value < 0:
        raise ValueError(f"{where}: expected a non-negative integer, got {value}")
    if name in ("sigma", "lr") and not value > 0:
        raise ValueError(f"{where}: expected a positive number, got {value}")
    if name in ("lam", "weight_decay") and value < 0:
        raise ValueError(f"{where}: expected a number >= 0, got {value}")
    if name == "optimizer" and value not in ("adam", "sgd"):
        raise ValueError(f"{where}: expected 'adam' or 'sgd', got {value!r}")
    if name == "covariance" and value not in ("full", "diag"):
        raise ValueError(f"{where}: expected 'full' or 'diag', got {value!r}")


def parse_spec(data: dict, where: str = "spec") -> SweepSpec:
    """Validate a spec already read into a dict (see the module docstring for its form)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a TOML document")
    for t in data:
        if t not in _TABLES:
            raise ValueError(f"{where}: unknown table [{t}]; valid: {', '.join(f'[{n}]' for n in _TABLES)}")
        if not isinstance(data[t], dict):
            raise ValueError(f"{where}: {t} must be a table [{t}]")
    sw = data.get("sweep")
    if sw is None or "experiment" not in sw:
        raise ValueError(f"{where}: sweep.experiment: required, one of {list(EXPERIMENTS)}")
    for t in ("sweep", "resources"):
        for k in data.get(t, {}):
            if k not in _TABLES[t]:
                raise ValueError(f"{where}: unknown key {t}.{k}; valid: {sorted(_TABLES[t])}")
    exp = sw["experiment"]
    if exp not in EXPERIMENTS:
        raise ValueError(f"{where}: sweep.experiment: expected one of {list(EXPERIMENTS)}, got {exp!r}")
    name = _check_type(sw.get("name", "sweep"), "str", f"{where}: sweep.name")
    desc = sw.get("description", "")
    if not isinstance(desc, str):
        raise ValueError(f"{where}: sweep.description: expected a string")
    valid = sorted(k for k, (_, exps, _) in PARAMS.items() if exp in exps)
    grid, settings = {}, {}
    for table, out in (("grid", grid), ("settings", settings)):
        for k, v in data.get(table, {}).items():
            w = f"{where}: {table}.{k}"
            if k not in PARAMS or exp not in PARAMS[k][1]:
                raise ValueError(f"{w}: unknown key for experiment {exp!r}; valid: {', '.join(valid)}")
            tp = PARAMS[k][0]
            if table == "grid":
                if tp == "table":
                    raise ValueError(f"{w}: a table, not an axis: put it in [settings]")
                if not isinstance(v, list) or not v:
                    raise ValueError(f"{w}: expected a non-empty list of values (an axis), got {v!r:.60}")
                vals = []
                for i, x in enumerate(v):
                    x = _check_type(x, tp, f"{w}[{i}]")
                    _check_range(k, x, f"{w}[{i}]")
                    if x in vals:
                        raise ValueError(f"{w}: value {x!r} appears twice")
                    vals.append(x)
                out[k] = tuple(vals)
            else:
                if k in grid:
                    raise ValueError(f"{w}: also an axis in [grid]; give it in one place")
                x = _check_type(v, tp, w)
                if tp != "table":
                    _check_range(k, x, w)
                out[k] = x
    res = data.get("resources", {})
    cpus = _check_type(res.get("num_cpus", 1), "float", f"{where}: resources.num_cpus")
    gpus = _check_type(res.get("num_gpus", 0), "float", f"{where}: resources.num_gpus")
    if not cpus > 0:
        raise ValueError(f"{where}: resources.num_cpus: expected a number > 0, got {cpus}")
    if gpus < 0:
        raise ValueError(f"{where}: resources.num_gpus: expected a number >= 0, got {gpus}")
    spec = SweepSpec(experiment=exp, grid=grid, settings=settings, num_cpus=cpus, num_gpus=gpus, name=name,
                     description=desc, path=where)
    _check_names(spec, where)
    return spec


def _check_names(spec: SweepSpec, where: str) -> None:
    """Datasets and baselines by name (torch-free registries), so typos fail before any import."""
    from ..experiments.defense_table import BASELINES
    from ..registry import DATASET_ATTACKS, names
    ok_data = set(names("sweep", aliases=True))
    for table, d in (("grid", spec.grid), ("settings", spec.settings)):
        for v in _values(d, "dataset"):
            if v not in ok_data:
                raise ValueError(f"{where}: {table}.dataset: expected one of {sorted(ok_data)}, got {v!r}")
        for v in _values(d, "baseline"):
            if v not in BASELINES:
                raise ValueError(f"{where}: {table}.baseline: expected one of {sorted(BASELINES)}, got {v!r}")
        for v in _values(d, "attacks"):
            for a in v:
                if a not in DATASET_ATTACKS:
                    raise ValueError(f"{where}: {table}.attacks: expected names from {list(DATASET_ATTACKS)}, "
                                     f"got {a!r}")


def _values(d: dict, k: str) -> list:
    """Values of ``k`` in a grid (an axis: a tuple of values) or settings (one value)."""
    if k not in d:
        return []
    v = d[k]
    if PARAMS[k][0] in ("strs", "strs0"):  # list-valued: an axis is a tuple of tuples
        return list(v) if v and isinstance(v[0], tuple) else [v]
    return list(v) if isinstance(v, tuple) else [v]


# ----------------------------------------------------------------------------- cells

_TRAIN_OVERRIDES = ("optimizer", "weight_decay", "preset", "bottleneck")


def _with_train(cfg, **kw):
    return cfg.replace(train=cfg.train.replace(**kw))


def _cem_params(cfg, extra: dict):
    """Every CEM defense of ``cfg`` with ``extra`` parameters merged in (validated by the registry)."""
    from ..runs import DefenseSpec
    defs = []
    for d in cfg.train.defenses:
        if d.name == "cem":
            kw = {k: v for k, v in d.params if v is not None}
            kw.update(extra)
            d = DefenseSpec.parse(("cem", kw))
        defs.append(d)
    return _with_train(cfg, defenses=tuple(defs))


def _noise_sigma(cfg, sigma: float):
    from ..runs import DefenseSpec
    defs = tuple(DefenseSpec.parse(("noise", {**dict(d.params), "sigma": sigma})) if d.name == "noise" else d
                 for d in cfg.train.defenses)
    return _with_train(cfg, defenses=defs)


def _cells_for(exp: str, p: dict) -> list:
    """Configurations of one grid combination ``p`` (settings included)."""
    from ..experiments.defense_table import attack_spec, defense_table_cells
    from ..experiments.entropy_mse import entropy_vs_mse_cells
    from ..runs import DefenseSpec, TrainAttackConfig, TrainConfig
    common = {k: p[k] for k in ("dataset", "epochs", "attack_epochs", "batch_size", "lr", "k_per_class") if k in p}
    if exp == "entropy-vs-mse":
        kw = dict(common, **{k: p[k] for k in ("covariance", "h_x") if k in p})
        for one, many in (("sigma", "sigmas"), ("lam", "lams"), ("seed", "seeds")):
            if one in p:
                kw[many] = (p[one],)
        return entropy_vs_mse_cells(**kw)
    if exp == "defense-table":
        kw = dict(common, **{k: p[k] for k in ("lam", "eval_train", "attacks") if k in p})
        if "baseline" in p:
            kw["baselines"] = (p["baseline"],)
        if "seed" in p:
            kw["seeds"] = (p["seed"],)
        cells = defense_table_cells(**kw)
        if "with_cem" in p:
            cells = [c for c in cells if c.cem == p["with_cem"]]
        if "sigma" in p:
            cells = [_noise_sigma(c, p["sigma"]) for c in cells]
        return cells
    # train: noise σ, then the listed defenses, then CEM at λ > 0
    defs = []
    if "sigma" in p:
        defs.append(DefenseSpec.parse(("noise", {"sigma": p["sigma"]})))
    defs += [DefenseSpec.parse(s) for s in p.get("defenses", ())]
    if p.get("lam", 0.0) > 0:
        defs.append(DefenseSpec.parse(("cem", {"lam": p["lam"], **({"k_per_class": p["k_per_class"]}
                                                                  if "k_per_class" in p else {})})))
    tkw = {k: p[k] for k in ("dataset", "epochs", "batch_size", "lr", "seed") if k in p}
    tc = TrainConfig(defenses=tuple(defs), **{"dataset": "digits", **tkw})
    attacks = tuple(attack_spec(a, p.get("attack_epochs", 30)) for a in p.get("attacks", ("decoder",)))
    return [TrainAttackConfig(train=tc, attacks=attacks, eval_train=p.get("eval_train", True))]


def combinations(spec: SweepSpec) -> list[dict]:
    """Every combination of the grid's axes (in the order the spec lists them), as dicts."""
    names = list(spec.grid)
    return [dict(zip(names, vals)) for vals in itertools.product(*(spec.grid[n] for n in names))]


def expand(spec: SweepSpec, *, fingerprints: dict | None = None) -> list[Cell]:
    """The spec's cells (configurations), each key once, in grid order.

    ``fingerprints``: dataset name → content hash, for datasets read from local files (the hash is
    part of every such cell's identity, as for ``invlimits train``).  Invalid combinations are a
    ``ValueError`` naming the combination.
    """
    fingerprints = fingerprints or {}
    cells, seen = [], set()
    for combo in combinations(spec):
        p = {**spec.settings, **combo}
        try:
            cfgs = _cells_for(spec.experiment, p)
            over = {k: p[k] for k in _TRAIN_OVERRIDES if k in p}
            if over:
                cfgs = [_with_train(c, **over) for c in cfgs]
            if "cem_params" in p:
                cfgs = [_cem_params(c, p["cem_params"]) for c in cfgs]
            cfgs = [_with_train(c, data_fingerprint=fingerprints[c.train.dataset])
                    if c.train.dataset in fingerprints else c for c in cfgs]
        except ValueError as exc:
            what = ", ".join(f"{k}={v}" for k, v in combo.items()) or "the settings"
            raise ValueError(f"{spec.path}: cell {what}: {exc}") from None
        for c in cfgs:
            k = c.key()
            if k not in seen:
                seen.add(k)
                cells.append(Cell(c, combo))
    return cells


def datasets(spec: SweepSpec) -> list[str]:
    """Dataset names the spec's cells use (canonical names)."""
    from ..registry import spec as dspec
    vals = _values(spec.grid, "dataset") or _values(spec.settings, "dataset") or ["digits"]
    return list(dict.fromkeys(dspec(v).name for v in vals))
