"""The one registry of datasets: name → loader, model preset, kind, and the commands that take it.

Adding a dataset means adding one :class:`DatasetSpec` here; argparse choices, the experiment
drivers, check-defense and the README's dataset table (held to this registry by a test) all read
it.  Attacks are registered in :mod:`empirics.attacks` (``ATTACKS``) and defenses in
:mod:`empirics.defenses` (``available_defenses``).

Examples
--------
>>> names("check-defense")
['digits', 'lfw', 'mnist1d', 'synthetic-mixture']
>>> spec("synthetic").name          # an alias
'synthetic-mixture'
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

__all__ = ["DATASET_ATTACKS", "DatasetSpec", "DATASETS", "spec", "names", "load_dataset", "register_split", "fingerprint", "readme_table"]


def _digits(seed, root):
    from .data import digits  # deferred: torch (the registry is read without it)
    return digits(seed=seed)


def _lfw(seed, root):
    from .data import lfw_faces  # deferred: torch (the registry is read without it)
    return lfw_faces(seed=seed)


def _mnist1d(seed, root):
    from .data import mnist1d  # deferred: torch (the registry is read without it)
    return mnist1d(seed=seed)


def _synthetic(seed, root):
    from .data import synthetic_mixture  # deferred: torch (the registry is read without it)
    return synthetic_mixture(n_train=3000, n_test=1000, d=16, k=3, seed=seed)


def _cifar10(seed, root):
    from .data import load_cifar10  # deferred: torch (the registry is read without it)
    return load_cifar10(root)


def _mnist(seed, root):
    from .data import load_mnist  # deferred: torch (the registry is read without it)
    return load_mnist(root)


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: how to load it, the model preset trained on it, and who accepts it."""

    name: str
    loader: Callable  # (seed, root) -> DataSplit
    preset: str
    kind: str  # "image" | "signal" | "mixture"
    description: str
    commands: frozenset = field(default_factory=frozenset)
    needs_root: bool = False
    aliases: tuple = ()
    input_shape: tuple = ()  # one input, as the encoder receives it: a batch is (N, *input_shape)


#: attacks that reconstruct inputs from the deployed features: the ones commands offer by name
#: (implementations registered in :data:`empirics.attacks.ATTACKS`, which also has ``truncation``)
DATASET_ATTACKS = ("decoder", "gan", "optimization")

_ALL = frozenset({"train", "attack", "defenses", "check-defense", "sweep"})
_EMBEDDED_CMDS = _ALL

DATASETS: dict[str, DatasetSpec] = {s.name: s for s in (
    DatasetSpec("digits", _digits, "digits", "image",
                "scikit-learn 8×8 handwritten digits, 1797 images, 10 classes", _EMBEDDED_CMDS,
                input_shape=(1, 8, 8)),
    DatasetSpec("lfw", _lfw, "lfw", "image",
                "scikit-image `lfw_subset`, 200 grey 25×25 images, face / non-face", _EMBEDDED_CMDS,
                input_shape=(1, 25, 25)),
    DatasetSpec("mnist1d", _mnist1d, "mnist1d", "signal",
                "MNIST-1D (generated offline), 4000 signals of length 40, 10 classes", _EMBEDDED_CMDS,
                input_shape=(40,)),
    DatasetSpec("synthetic-mixture", _synthetic, "synthetic", "mixture",
                "a known 3-component Gaussian mixture in d = 16 (label = component): exact truths",
                frozenset({"train", "defenses", "check-defense", "sweep"}), aliases=("synthetic",), input_shape=(16,)),
    DatasetSpec("cifar10", _cifar10, "vgg11_bn", "image",
                "CIFAR-10 python batches from a local folder (`--data-root`), never downloaded",
                frozenset({"train", "sweep"}), needs_root=True, input_shape=(3, 32, 32)),
    DatasetSpec("mnist", _mnist, "mnist", "image",
                "MNIST IDX files from a local folder (`--data-root`), never downloaded",
                frozenset({"train", "sweep"}), needs_root=True, input_shape=(1, 28, 28)),
)}


def spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``name`` (or one of its aliases).

    Parameters
    ----------
    name : str
        A dataset name or alias.

    Returns
    -------
    DatasetSpec
    """
    if isinstance(name, str):
        if name in DATASETS:
            return DATASETS[name]
        for s in DATASETS.values():
            if name in s.aliases:
                return s
    raise ValueError(f"dataset: expected one of {sorted(DATASETS)}, got {name!r}")


def names(command: str | None = None, *, aliases: bool = False) -> list[str]:
    """Dataset names a command accepts (all when ``command`` is None), with their aliases if asked.

    Parameters
    ----------
    command : str, optional
        ``train``, ``attack``, ``defenses``, ``check-defense`` or ``sweep``.
    aliases : bool
        Include aliases.

    Returns
    -------
    list of str
    """
    out = [n for n, s in DATASETS.items() if command is None or command in s.commands]
    if aliases:
        out += [a for n in out for a in DATASETS[n].aliases]
    return sorted(out)


_CACHE: dict = {}


def load_dataset(name, *, seed: int = 0, root=None):
    """Load a registered dataset (a :class:`~empirics.data.DataSplit` passes through unchanged).

    Embedded datasets are cached per (name, split seed) within the process.

    Parameters
    ----------
    name : str or DataSplit
        A registered name or alias.
    seed : int
        Seed of the split.
    root : str or Path, optional
        Folder of a dataset read from local files.

    Returns
    -------
    DataSplit
    """
    from .data import DataSplit  # deferred: torch (the registry is read without it)
    if isinstance(name, DataSplit):
        return name
    s = spec(name)
    if s.needs_root:
        if root is None:
            raise ValueError(f"--data-root: required for dataset {s.name} (nothing is downloaded)")
        key = (s.name, seed, str(Path(root).resolve()))
    else:
        key = (s.name, seed, None)
    if key not in _CACHE:
        if len(_CACHE) > 8:
            _CACHE.clear()
        split = s.loader(seed, root)
        split.name = s.name
        _CACHE[key] = split
    return _CACHE[key]


_SHAPE_PRESETS = {(40,): "mnist1d", (1, 8, 8): "digits", (1, 25, 25): "lfw", (1, 28, 28): "mnist",
                  (3, 32, 32): "vgg11_bn"}


def register_split(split, name: str | None = None) -> str:
    """Register an in-memory :class:`~empirics.data.DataSplit` (library use) and return its name.

    Runs on it are identified by this name *and* the split's content hash (``data_fingerprint``
    in their configuration), so two different splits under one name never share results.

    Parameters
    ----------
    split : DataSplit
        Your data.
    name : str, optional
        Its name (default ``split.name``).

    Returns
    -------
    str
    """
    from .data import DataSplit  # deferred: torch (the registry is read without it)
    if not isinstance(split, DataSplit):
        raise ValueError(f"split: expected a DataSplit, got {type(split).__name__}")
    name = name or split.name or "custom"
    old = DATASETS.get(name)
    if old is not None and not old.description.startswith("in-memory"):
        name = f"{name}-custom-{fingerprint(split)[:8]}"  # never shadow a built-in dataset
    shape = tuple(split.input_shape)
    preset = _SHAPE_PRESETS.get(shape, "synthetic" if len(shape) == 1 else None)
    if preset is None:
        raise ValueError(f"split: no model preset for inputs of shape {shape}; known: {sorted(_SHAPE_PRESETS)} "
                         "or any 1-d vector")
    DATASETS[name] = DatasetSpec(name, lambda seed, root, _s=split: _s, preset,
                                 "image" if len(split.input_shape) == 3 else "signal",
                                 f"in-memory split {name!r}", frozenset(),  # library use only: no CLI command lists it
                                 input_shape=tuple(split.input_shape))
    for k in [k for k in _CACHE if k[0] == name]:
        del _CACHE[k]
    return name


def fingerprint(split) -> str:
    """A content hash (blake2b, 16 hex digits) of a split's inputs and labels.

    Part of a run's configuration for datasets read from local files, whose content the package
    does not control; embedded datasets are identified by name and split seed.

    Parameters
    ----------
    split : DataSplit
        The data.

    Returns
    -------
    str
    """
    h = hashlib.blake2b(digest_size=8)
    for part in (split.train, split.test):
        h.update(str(tuple(part.x.shape)).encode())
        h.update(part.x.detach().cpu().contiguous().numpy().tobytes())
        h.update(part.y.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def readme_table() -> str:
    """The README's dataset table, generated from :data:`DATASETS` (a test keeps them identical).

    Returns
    -------
    str
        A Markdown table.
    """
    cmds = ["train", "attack", "defenses", "check-defense", "sweep"]
    lines = ["| dataset | what it is | input shape | model preset | " + " | ".join(f"`{c}`" for c in cmds) + " |",
             "| --- | --- | --- | --- | " + " | ".join("---" for _ in cmds) + " |"]
    for n in sorted(DATASETS):
        s = DATASETS[n]
        if not s.commands:  # in-memory splits registered by library users
            continue
        alias = f" (alias `{'`, `'.join(s.aliases)}`)" if s.aliases else ""
        shape = "(" + ", ".join(map(str, s.input_shape)) + ("," if len(s.input_shape) == 1 else "") + ")"
        lines.append(f"| `{n}`{alias} | {s.description} | `{shape}` | `{s.preset}` | "
                     + " | ".join("yes" if c in s.commands else "–" for c in cmds) + " |")
    return "\n".join(lines)
