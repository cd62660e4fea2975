"""Gaussian noise on the sent features: z = ẑ + ε, ε ~ N(0, σ²I) (CEM paper §3.3, Prop. 2).

The basic obfuscation of the CEM paper (Noise_Nopeek, Noise_ARL and every CEM experiment add
noise with standard deviation 0.025).  The noise is drawn from the training loop's generator at
training time and added at deployment too (the attacker sees noisy features).  Its covariance is
exposed through :meth:`GaussianNoise.noise_variance`, which :class:`~empirics.defenses.cem.CEM`
uses as Σp of Theorem 2.
"""

from __future__ import annotations

import torch

from ._util import check_strength
from .base import Defense

__all__ = ["GaussianNoise"]


class GaussianNoise(Defense):
    """Add N(0, σ²I) to the features; σ = 0 is the identity (and draws no random numbers).

    Examples
    --------
    >>> import torch
    >>> d = GaussianNoise(sigma=0.0)
    >>> z = torch.ones(2, 3)
    >>> bool(torch.equal(d.transform_features(z, training=True), z))
    True
    >>> GaussianNoise(sigma=0.5).noise_variance(2)
    tensor([0.2500, 0.2500])
    """

    name = "noise"

    def __init__(self, sigma: float = 0.025):
        self.sigma = check_strength(sigma, "sigma")

    @property
    def strength(self) -> float:
        return self.sigma

    def config(self) -> dict:
        return {"name": self.name, "strength": self.sigma, "sigma": self.sigma}

    def noise_variance(self, d: int) -> torch.Tensor:
        """Per-dimension variance σ² of the added noise (Σp = σ²I)."""
        return torch.full((int(d),), self.sigma ** 2)

    def transform_features(self, z, *, training: bool, generator=None):
        if self.sigma == 0:
            return z
        if generator is not None:
            eps = torch.randn(z.shape, generator=generator, device=generator.device, dtype=z.dtype).to(z.device)
        else:
            eps = torch.randn_like(z)
        return z + self.sigma * eps
