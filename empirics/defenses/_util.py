"""Validation helpers shared by the defense modules."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, TensorDataset

from theory._validate import expect_number


def check_strength(value, name: str, *, upper: float | None = None, upper_open: bool = False) -> float:
    """``value`` as a finite float ≥ 0 (and ≤ / < ``upper``), else ``ValueError`` naming ``name``.

    A defense's strength may come from a ``name:k=v`` spec, so a numeric string is read as its
    number; the range is :func:`theory._validate.expect_number`'s.
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a non-negative number, got {value!r}") from None
    return expect_number(v, name, nonneg=True, upper=upper, upper_open=upper_open)


def flat(z):
    return z.reshape(z.shape[0], -1)


def _loader_types():
    return DataLoader, TensorDataset


def data_tensors(data):
    """``(inputs, labels)`` tensors of a training set given as an ``(x, y)`` pair, a
    ``TensorDataset``, a ``DataLoader`` over one, a :class:`~empirics.data.DataSplit` (its
    ``train``), an object with ``x``/``y`` (or ``X``/``y``, ``inputs``/``targets``,
    ``data``/``targets``) attributes, or an indexable dataset of ``(x, y)`` items; else ``None``
    (a ``DataLoader`` over another dataset: read through :func:`iter_batches`)."""
    DataLoader, _ = _loader_types()
    loader = isinstance(data, DataLoader)
    if loader:
        data = data.dataset
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        return data[0], data[1]
    tensors = getattr(data, "tensors", None)
    if tensors is not None and len(tensors) >= 2:
        return tensors[0], tensors[1]
    train = getattr(data, "train", None)
    if train is not None and hasattr(train, "x") and hasattr(train, "y"):  # a DataSplit
        data = train
    # behind a DataLoader only the package's own ArrayDataset is read directly (raw attributes such
    # as torchvision's .data/.targets skip the dataset's transforms: read those through the loader)
    for xa, ya in (("x", "y"),) if loader else (("x", "y"), ("X", "y"), ("inputs", "targets"), ("data", "targets")):
        if hasattr(data, xa) and hasattr(data, ya):
            return torch.as_tensor(getattr(data, xa)), torch.as_tensor(getattr(data, ya))
    if loader:
        return None
    try:
        xs, ys = zip(*[data[i] for i in range(len(data))])
        return torch.stack([torch.as_tensor(v) for v in xs]), torch.as_tensor(ys)
    except Exception:
        raise ValueError(f"data: cannot read (inputs, labels) from a {type(data).__name__}; pass (x, y) "
                         "tensors, a Dataset of (x, y) items or a DataLoader") from None


def data_len(data) -> int:
    """Number of training examples in ``data`` (any form :func:`data_tensors` reads)."""
    DataLoader, _ = _loader_types()
    if isinstance(data, DataLoader):
        return len(data.dataset)
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        return int(data[0].shape[0])
    tensors = getattr(data, "tensors", None)
    if tensors is not None and len(tensors) >= 2:
        return int(tensors[0].shape[0])
    train = getattr(data, "train", None)
    if train is not None and hasattr(train, "x"):
        return len(train.x)
    try:
        return len(data)
    except TypeError:
        raise ValueError(f"data: expected (x, y) tensors, a Dataset or a DataLoader, got {type(data).__name__}") from None


def iter_batches(data, batch_size: int):
    """``(x, y)`` batches of ``data`` in order, without drawing random numbers: tensors are
    sliced; a ``DataLoader`` over another dataset is re-read in order with its ``collate_fn``
    (never through its sampler, so the loop's shuffling generator is not advanced)."""
    DataLoader, _ = _loader_types()
    t = data_tensors(data)
    if t is not None:
        xs, ys = t
        for i in range(0, xs.shape[0], batch_size):
            yield xs[i:i + batch_size], ys[i:i + batch_size]
        return
    loader = DataLoader(data.dataset, batch_size=batch_size, shuffle=False, collate_fn=data.collate_fn)
    for x, y, *_ in loader:
        yield x, y
