"""Validation helpers shared by the defense modules."""

from __future__ import annotations

import math


def check_strength(value, name: str, *, upper: float | None = None, upper_open: bool = False) -> float:
    """``value`` as a finite float ≥ 0 (and ≤ / < ``upper``), else ``ValueError`` naming ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a non-negative number, got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name}: expected a non-negative finite number, got {value!r}")
    if upper is not None and (v >= upper if upper_open else v > upper):
        rel = "<" if upper_open else "<="
        raise ValueError(f"{name}: expected a number {rel} {upper}, got {value!r}")
    return v


def flat(z):
    return z.reshape(z.shape[0], -1)
