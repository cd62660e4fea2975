"""Feature dropout (CEM paper Table 1 "Dropout", its ref. [15]): each feature is zeroed with
probability p, at training *and* at deployment (the attacker sees dropped features), scaled by
1/(1−p).  Masks come from the training loop's generator; p = 0 is the identity and draws nothing.
"""

from __future__ import annotations

import torch

from ._util import check_strength
from .base import Defense

__all__ = ["FeatureDropout"]


class FeatureDropout(Defense):
    """Random feature dropout with probability ``p`` ∈ [0, 1).

    Examples
    --------
    >>> import torch
    >>> z = torch.ones(2, 3)
    >>> bool(torch.equal(FeatureDropout(p=0).transform_features(z, training=True), z))
    True
    """

    name = "dropout"

    def __init__(self, p: float = 0.2):
        self.p = check_strength(p, "p", upper=1.0, upper_open=True)

    @property
    def strength(self) -> float:
        return self.p

    def config(self) -> dict:
        return {"name": self.name, "strength": self.p, "p": self.p}

    def transform_features(self, z, *, training: bool, generator=None):
        if self.p == 0:
            return z
        if generator is not None:
            u = torch.rand(z.shape, generator=generator, device=generator.device, dtype=z.dtype).to(z.device)
        else:
            u = torch.rand_like(z)
        return z * (u >= self.p).to(z.dtype) / (1 - self.p)
