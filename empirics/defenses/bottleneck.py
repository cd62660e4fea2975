"""Feature bottleneck: send only a fraction of the feature channels.

The CEM paper adds an 8-channel bottleneck to every method (§5.1, following its ref. [29]); as a
plug-in, narrowing the cut layer is a fixed channel mask: the last ``ceil(drop·C)`` channels of
the encoder output (dim 1) are zeroed, so the head and any attacker see only the first
``C − ceil(drop·C)`` — equivalent to an encoder with that many output channels.  ``drop = 0`` is
the identity.
"""

from __future__ import annotations

import math

from ._util import check_strength
from .base import Defense

__all__ = ["Bottleneck"]


class Bottleneck(Defense):
    """Zero the last ``ceil(drop·C)`` feature channels (``drop`` ∈ [0, 1)).

    Examples
    --------
    >>> import torch
    >>> Bottleneck(drop=0.5).transform_features(torch.ones(1, 4), training=False)
    tensor([[1., 1., 0., 0.]])
    """

    name = "bottleneck"

    def __init__(self, drop: float = 0.5):
        self.drop = check_strength(drop, "drop", upper=1.0, upper_open=True)

    @property
    def strength(self) -> float:
        return self.drop

    def config(self) -> dict:
        return {"name": self.name, "strength": self.drop, "drop": self.drop}

    def transform_features(self, z, *, training: bool, generator=None):
        if self.drop == 0:
            return z
        c = z.shape[1]
        keep = c - math.ceil(self.drop * c)
        keep = max(keep, 1)
        mask = z.new_zeros(c)
        mask[:keep] = 1
        shape = [1, c] + [1] * (z.ndim - 2)
        return z * mask.view(shape)
