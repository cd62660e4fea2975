"""Offline datasets as tensors, and loaders for local CIFAR-10 / MNIST files.

Every dataset is an :class:`ArrayDataset`: a pair of tensors ``x`` (float32, ``(N, *shape)``)
and ``y`` (int64 labels, ``(N,)``), validated on construction.  Image pixels lie in [0, 1].
Builders return a :class:`DataSplit` (``train``, ``test``, ``num_classes``, ``name``).
Nothing here downloads anything.
"""

from __future__ import annotations

import codecs
import gzip
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from theory import GaussianMixture

__all__ = ["ArrayDataset", "DataSplit", "as_dataset", "digits", "lfw_faces", "mnist1d", "synthetic_mixture",
           "default_mixture", "load_cifar10", "load_mnist", "read_idx"]


def _to_tensor(a, name, dtype):
    if isinstance(a, torch.Tensor):
        t = a.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(a))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: expected an array or tensor, got {type(a).__name__} ({exc})") from None
    return t.to(dtype)


@dataclass
class ArrayDataset:
    """Inputs and labels held as tensors.

    Parameters
    ----------
    x : array-like, shape (N, ...)
        Inputs, converted to float32.
    y : array-like of int, shape (N,)
        Class labels in ``0 .. num_classes-1``, converted to int64.
    name : str
        Label used in messages and results.
    unit_range : bool
        Assert that every input value lies in [0, 1] (images).

    Raises
    ------
    ValueError
        Empty data, mismatched lengths, NaN/inf inputs, negative labels, values outside [0, 1]
        when ``unit_range``.

    Examples
    --------
    >>> ds = ArrayDataset(np.zeros((3, 2)), [0, 1, 1])
    >>> len(ds), ds.input_shape, ds.num_classes
    (3, (2,), 2)
    """

    x: Any
    y: Any
    name: str = ""
    unit_range: bool = False
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.x = _to_tensor(self.x, "x", torch.float32)
        self.y = _to_tensor(self.y, "y", torch.int64) if self.y is not None else None
        if self.x.ndim < 2:
            raise ValueError(f"x: expected shape (N, ...) with N samples, got shape {tuple(self.x.shape)}")
        if self.x.shape[0] == 0:
            raise ValueError("x: expected at least one sample, got an empty dataset")
        if self.y is None:
            self.y = torch.zeros(self.x.shape[0], dtype=torch.int64)
        if self.y.ndim != 1 or self.y.shape[0] != self.x.shape[0]:
            raise ValueError(f"y: expected shape ({self.x.shape[0]},) to match x, got {tuple(self.y.shape)}")
        if not torch.isfinite(self.x).all():
            raise ValueError("x: expected finite values, found NaN or inf")
        if (self.y < 0).any():
            raise ValueError(f"y: expected non-negative class labels, got min {int(self.y.min())}")
        if self.unit_range:
            lo, hi = float(self.x.min()), float(self.x.max())
            if lo < 0.0 or hi > 1.0:
                raise ValueError(f"x: expected values in [0, 1], got range [{lo:.4g}, {hi:.4g}]")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i):
        return self.x[i], self.y[i]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return int(self.y.max()) + 1

    def subset(self, idx) -> "ArrayDataset":
        idx = torch.as_tensor(idx, dtype=torch.int64)
        return ArrayDataset(self.x[idx], self.y[idx], name=self.name, unit_range=self.unit_range,
                            meta=dict(self.meta))

    def to(self, device) -> "ArrayDataset":
        """A shallow copy with tensors on ``device`` (no re-validation)."""
        out = object.__new__(ArrayDataset)
        out.x, out.y = self.x.to(device), self.y.to(device)
        out.name, out.unit_range, out.meta = self.name, self.unit_range, self.meta
        return out


@dataclass
class DataSplit:
    """A train/test pair with its number of classes."""

    train: ArrayDataset
    test: ArrayDataset
    num_classes: int
    name: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.train.input_shape


def as_dataset(data, *, name: str = "data") -> ArrayDataset:
    """Accept an :class:`ArrayDataset`, a :class:`DataSplit` (its ``train``) or a pair ``(x, y)``.

    Parameters
    ----------
    data : ArrayDataset, DataSplit or (x, y)
        Inputs (n, ...) and labels (n,).
    name : str
        Its name (for messages).

    Returns
    -------
    ArrayDataset
    """
    if isinstance(data, ArrayDataset):
        return data
    if isinstance(data, DataSplit):
        return data.train
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return ArrayDataset(data[0], data[1], name=name)
    if hasattr(data, "x") and hasattr(data, "y"):
        return ArrayDataset(data.x, data.y, name=name)
    raise ValueError(f"{name}: expected an ArrayDataset, DataSplit or (x, y) pair, got {type(data).__name__}")


# ----------------------------------------------------------------------------- helpers

def _split(x, y, *, test_fraction, seed, name, unit_range, num_classes=None, meta=None) -> DataSplit:
    """Stratification-free random split with a fixed seed (numpy Generator, no global state)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    n = len(y)
    perm = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(test_fraction * n)))
    te, tr = perm[:n_test], perm[n_test:]
    train = ArrayDataset(x[tr], y[tr], name=name, unit_range=unit_range)
    test = ArrayDataset(x[te], y[te], name=name, unit_range=unit_range)
    k = int(num_classes) if num_classes is not None else int(np.max(y)) + 1
    return DataSplit(train, test, k, name, dict(meta or {}))


# ----------------------------------------------------------------------------- embedded datasets

def digits(*, test_fraction: float = 0.25, seed: int = 0) -> DataSplit:
    """scikit-learn's 8×8 handwritten digits (1797 images, 10 classes), pixels scaled to [0, 1].

    Images have shape ``(1, 8, 8)``; the split is a seeded random permutation.

    Parameters
    ----------
    test_fraction : float
        Share of the test split.
    seed : int
        Seed of the split.

    Returns
    -------
    DataSplit
        Inputs (n, 1, 8, 8) in [0, 1], labels (n,).

    Examples
    --------
    >>> d = digits()
    >>> d.input_shape, d.num_classes, len(d.train) + len(d.test)
    ((1, 8, 8), 10, 1797)
    """
    from sklearn.datasets import load_digits  # deferred: heavy, needed by this dataset only

    b = load_digits()
    x = (b.images.astype(np.float32) / 16.0)[:, None]
    return _split(x, b.target.astype(np.int64), test_fraction=test_fraction, seed=seed, name="digits",
                  unit_range=True, num_classes=10)


def lfw_faces(*, test_fraction: float = 0.25, seed: int = 0) -> DataSplit:
    """scikit-image's ``lfw_subset``: 200 grey 25×25 images, 100 faces (label 1) and 100 non-faces (0).

    Pixels are in [0, 1]; shape ``(1, 25, 25)``.  Shipped with scikit-image, never downloaded.

    Parameters
    ----------
    test_fraction : float
        Share of the test split.
    seed : int
        Seed of the split.

    Returns
    -------
    DataSplit
        Inputs (n, 1, 25, 25) in [0, 1], labels (n,).
    """
    from skimage.data import lfw_subset  # deferred: heavy, needed by this dataset only

    imgs = np.asarray(lfw_subset(), dtype=np.float32)
    x = np.clip(imgs, 0.0, 1.0)[:, None]
    y = np.r_[np.ones(100, dtype=np.int64), np.zeros(len(imgs) - 100, dtype=np.int64)]
    return _split(x, y, test_fraction=test_fraction, seed=seed, name="lfw", unit_range=True, num_classes=2)


def mnist1d(*, num_samples: int = 4000, seed: int = 0, test_fraction: float = 0.2) -> DataSplit:
    """The MNIST-1D toy dataset (Greydanus 2020): 40-sample signals, 10 classes, generated offline.

    ``mnist1d.data.make_dataset`` reseeds the *global* numpy RNG; its state is saved and restored
    around the call so no caller is affected.  Signals are min–max scaled to [0, 1] over the whole
    generated set (the scale is stored in ``meta``).

    Parameters
    ----------
    num_samples : int
        Signals generated.
    seed : int
        Seed of the generator and split.
    test_fraction : float
        Share of the test split.

    Returns
    -------
    DataSplit
        Inputs (n, 40), labels (n,).
    """
    if not isinstance(num_samples, int) or num_samples < 20:
        raise ValueError(f"num_samples: expected an integer >= 20, got {num_samples!r}")
    from mnist1d.data import get_dataset_args, make_dataset  # deferred: needed by this dataset only

    args = get_dataset_args()
    args.num_samples = int(num_samples)
    args.seed = int(seed)
    state = np.random.get_state()
    try:
        raw = make_dataset(args)
    finally:
        np.random.set_state(state)
    x = np.concatenate([raw["x"], raw["x_test"]]).astype(np.float64)
    y = np.concatenate([raw["y"], raw["y_test"]]).astype(np.int64)
    lo, hi = float(x.min()), float(x.max())
    x = ((x - lo) / (hi - lo)).astype(np.float32)
    return _split(x, y, test_fraction=test_fraction, seed=seed, name="mnist1d", unit_range=True,
                  num_classes=10, meta={"scale": (lo, hi)})


def default_mixture(d: int = 16, k: int = 3, *, separation: float = 2.0, seed: int = 0):
    """A fixed, seeded Gaussian mixture in ``d`` dimensions (the benchmark prior).

    Means are ``separation`` × independent standard normal vectors / √d·√d (so their distance is
    about ``separation``·√2 per unit scale), covariances are random SPD matrices with eigenvalues
    in [0.3, 1.0], weights uniform.  Returns a :class:`theory.GaussianMixture`.

    Parameters
    ----------
    d, k : int
        Dimension and number of components.
    separation : float
        Scale of the means relative to the covariances.
    seed : int
        Seed of the mixture.

    Returns
    -------
    theory.GaussianMixture
    """

    rng = np.random.default_rng(seed)
    means = separation * rng.standard_normal((k, d))
    covs = []
    for _ in range(k):
        q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        covs.append((q * rng.uniform(0.3, 1.0, d)) @ q.T)
    return GaussianMixture(np.full(k, 1.0 / k), means, np.array(covs))


def synthetic_mixture(n_train: int = 4000, n_test: int = 1000, *, gmm=None, d: int = 16, k: int = 3,
                      seed: int = 0) -> DataSplit:
    """Samples from a known Gaussian mixture; the label is the mixture component.

    ``meta["gmm"]`` holds the :class:`theory.GaussianMixture` (default :func:`default_mixture`),
    so exact truths (posterior, MMSE, entropies) can be computed with :mod:`theory`.  Values are
    not restricted to [0, 1].

    Parameters
    ----------
    n_train, n_test : int
        Samples of each split.
    gmm : theory.GaussianMixture, optional
        The prior (default :func:`default_mixture` of ``d``, ``k``).
    d, k : int
        Dimension and components of the default prior.
    seed : int
        Seed of the samples.

    Returns
    -------
    DataSplit
        Inputs (n, d) float32, labels (n,) = components; ``meta["gmm"]`` is the prior.
    """
    for nm, v in (("n_train", n_train), ("n_test", n_test)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{nm}: expected a positive integer, got {v!r}")
    gmm = default_mixture(d, k, seed=seed) if gmm is None else gmm
    rng = np.random.default_rng([seed, 1])
    x, y = gmm.sample(n_train + n_test, rng, return_labels=True)
    train = ArrayDataset(x[:n_train], y[:n_train], name="synthetic")
    test = ArrayDataset(x[n_train:], y[n_train:], name="synthetic")
    return DataSplit(train, test, len(gmm.weights), "synthetic", {"gmm": gmm})


# ----------------------------------------------------------------------------- local files

#: the largest array a CIFAR-10 batch holds: 10,000 images × 3,072 bytes
_CIFAR_MAX_ELEMENTS = 10_000 * 3072


def _check_shape(shape, what) -> None:
    """Refuse array shapes that cannot occur in a CIFAR-10 batch *before* numpy allocates them."""
    try:
        dims = [int(shape)] if isinstance(shape, (int, np.integer)) else [int(v) for v in shape]
    except (TypeError, ValueError):
        raise pickle.UnpicklingError(f"{what}: shape {shape!r} is not a tuple of integers") from None
    if any(v < 0 for v in dims) or len(dims) > 2 or int(np.prod(dims, dtype=object)) > _CIFAR_MAX_ELEMENTS:
        raise pickle.UnpicklingError(f"{what}: shape {tuple(dims)} is not that of a CIFAR-10 batch "
                                     f"(at most 2 dimensions and {_CIFAR_MAX_ELEMENTS} elements)")


def _safe_ndarray(shape, *args, **kw):
    _check_shape(shape, "numpy.ndarray")
    return np.ndarray(shape, *args, **kw)


def _safe_reconstruct(subtype, shape, dtype):
    # the pickle names numpy.ndarray, which find_class resolved to _safe_ndarray
    if subtype not in (np.ndarray, _safe_ndarray):
        raise pickle.UnpicklingError("numpy _reconstruct: only plain ndarrays occur in a CIFAR-10 batch")
    _check_shape(shape, "numpy _reconstruct")
    return _numpy_reconstruct()(np.ndarray, shape, dtype)


class _RestrictedUnpickler(pickle.Unpickler):
    """Admits only the globals that CIFAR-10 python batches contain; refuses everything else
    *before* anything is called (``find_class`` raises, so no reduce ever runs).  The numpy
    constructors it admits are wrapped so that a shape no CIFAR batch has is refused before numpy
    allocates it (a tampered file cannot ask for a (10⁸, 10⁸) array)."""

    def find_class(self, module, name):

        allowed = {
            ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
            ("numpy", "ndarray"): _safe_ndarray,
            ("numpy", "dtype"): np.dtype,
            # protocol-2 pickles written by Python 3 encode bytes as _codecs.encode(str, 'latin1')
            ("_codecs", "encode"): codecs.encode,
        }
        try:
            return allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to unpickle global {module}.{name}: not part of a CIFAR-10 batch file") from None


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # deferred: its home depends on numpy's version
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # deferred: as above
    return _reconstruct


def _load_cifar_batch(path: Path):
    with open(path, "rb") as fh:
        try:
            d = _RestrictedUnpickler(fh, encoding="bytes").load()
        except pickle.UnpicklingError as exc:
            raise ValueError(f"root: {path} is not a valid CIFAR-10 batch: {exc}") from None
        except (EOFError, ValueError, TypeError, AttributeError, IndexError, MemoryError, OverflowError) as exc:
            raise ValueError(f"root: {path} is not a valid CIFAR-10 batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(d, dict):
        raise ValueError(f"root: {path} is not a valid CIFAR-10 batch (expected a dict, got {type(d).__name__})")
    d = {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
        raise ValueError(f"root: {path} is not a valid CIFAR-10 batch (keys {sorted(d)}; expected data, labels)")
    data = np.asarray(d["data"])
    labels = np.asarray(d["labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0] or data.dtype != np.uint8:
        raise ValueError(f"root: {path}: expected uint8 data (N, 3072) and N labels, got {data.dtype} "
                         f"{data.shape} and {labels.shape}")
    return data.reshape(-1, 3, 32, 32), labels


def load_cifar10(root, *, train_batches=(1, 2, 3, 4, 5)) -> DataSplit:
    """Read the standard ``cifar-10-batches-py`` folder (found at ``root`` or ``root/cifar-10-batches-py``).

    Batches are Python pickles; they are read through a restricted unpickler that admits only the
    numpy globals these files contain, so a tampered file carrying any other global is refused
    without executing it.  Pixels are scaled to [0, 1]; shape ``(3, 32, 32)``.

    Parameters
    ----------
    root : str or Path
        The folder.
    train_batches : sequence of int
        Which ``data_batch_i`` files make the training split.

    Returns
    -------
    DataSplit
        Inputs (n, 3, 32, 32) in [0, 1], labels (n,).
    """

    root = Path(root)
    folder = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    files = [folder / f"data_batch_{i}" for i in train_batches] + [folder / "test_batch"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ValueError(f"root: expected the CIFAR-10 python batches under {folder}, missing {missing}")
    parts = [_load_cifar_batch(f) for f in files]
    xtr = np.concatenate([p[0] for p in parts[:-1]]).astype(np.float32) / 255.0
    ytr = np.concatenate([p[1] for p in parts[:-1]])
    xte, yte = parts[-1][0].astype(np.float32) / 255.0, parts[-1][1]
    return DataSplit(ArrayDataset(xtr, ytr, name="cifar10", unit_range=True),
                     ArrayDataset(xte, yte, name="cifar10", unit_range=True), 10, "cifar10")


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read one IDX file (gzip-compressed when its name ends in ``.gz``).

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    numpy.ndarray
        Its array, shape from the header.
    """

    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"root: {path} is not an IDX file (bad magic {raw[:4]!r})")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"root: {path} is truncated (header)")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    dt = np.dtype(_IDX_TYPES[raw[2]])
    body = raw[4 + 4 * ndim:]
    need = int(np.prod(dims)) * dt.itemsize
    if len(body) != need:
        raise ValueError(f"root: {path}: expected {need} data bytes for dims {dims}, got {len(body)}")
    return np.frombuffer(body, dtype=dt).reshape(dims)


def load_mnist(root) -> DataSplit:
    """Read MNIST IDX files (``train-images-idx3-ubyte`` etc., optionally ``.gz``) from ``root``.

    Pixels are scaled to [0, 1]; shape ``(1, 28, 28)``.

    Parameters
    ----------
    root : str or Path
        The folder.

    Returns
    -------
    DataSplit
        Inputs (n, 1, 28, 28) in [0, 1], labels (n,).
    """

    root = Path(root)

    def find(stem):
        for cand in (root / stem, root / (stem + ".gz"), root / stem.replace("-idx", ".idx")):
            if cand.is_file():
                return cand
        raise ValueError(f"root: expected {stem}[.gz] under {root}, not found")

    out = []
    for split in ("train", "t10k"):
        x = read_idx(find(f"{split}-images-idx3-ubyte"))
        y = read_idx(find(f"{split}-labels-idx1-ubyte"))
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(f"root: {split} images {x.shape} and labels {y.shape} do not match")
        out.append(ArrayDataset(x[:, None].astype(np.float32) / 255.0, y.astype(np.int64), name="mnist",
                                unit_range=True))
    return DataSplit(out[0], out[1], 10, "mnist")
