"""Offline datasets as tensors, and loaders for local CIFAR-10 / MNIST files.

Every dataset is an :class:`ArrayDataset`: a pair of tensors ``x`` (float32, ``(N, *shape)``)
and ``y`` (int64 labels, ``(N,)``), validated on construction.  Image pixels lie in [0, 1].
Builders return a :class:`DataSplit` (``train``, ``test``, ``num_classes``, ``name``).
Nothing here downloads anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["ArrayDataset", "DataSplit", "as_dataset"]


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
    """Accept an :class:`ArrayDataset`, a :class:`DataSplit` (its ``train``) or a pair ``(x, y)``."""
    if isinstance(data, ArrayDataset):
        return data
    if isinstance(data, DataSplit):
        return data.train
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return ArrayDataset(data[0], data[1], name=name)
    if hasattr(data, "x") and hasattr(data, "y"):
        return ArrayDataset(data.x, data.y, name=name)
    raise ValueError(f"{name}: expected an ArrayDataset, DataSplit or (x, y) pair, got {type(data).__name__}")
