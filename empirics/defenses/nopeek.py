"""NoPeek: penalise the distance correlation between inputs and sent features (Vepakomma et
al.; CEM paper Table 1 "DistCorr"/"Noise_Nopeek", its refs. [52, 54]).

Loss ``α · dCor(x, z)`` with the sample distance correlation (Székely et al. 2007): double-
centred pairwise Euclidean distance matrices A (of x) and B (of z),
``dCov²(x, z) = mean(A ∘ B)`` and ``dCor = dCov(x, z) / sqrt(dCov(x, x) dCov(z, z))``.
α = 0 adds nothing.
"""

from __future__ import annotations

import torch

from ._util import check_strength, flat
from .base import Defense

__all__ = ["NoPeek", "distance_correlation"]


def _centred(x):
    d = torch.cdist(x, x)
    return d - d.mean(0, keepdim=True) - d.mean(1, keepdim=True) + d.mean()


def distance_correlation(x: torch.Tensor, z: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Sample distance correlation of two batches (rows = samples), in [0, 1].

    Parameters
    ----------
    x : torch.Tensor, shape (n, ...)
        One batch (flattened per row).
    z : torch.Tensor, shape (n, ...)
        The other.
    eps : float
        Guards the square roots of zero variances.

    Returns
    -------
    torch.Tensor
        Scalar in [0, 1], differentiable.

    Examples
    --------
    >>> import torch
    >>> x = torch.randn(50, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> round(float(distance_correlation(x, 2 * x + 1)), 6)
    1.0
    """
    x, z = flat(x), flat(z)
    if x.shape[0] != z.shape[0] or x.shape[0] < 2:
        raise ValueError(f"x, z: expected the same number (>= 2) of rows, got {x.shape[0]} and {z.shape[0]}")
    a, b = _centred(x.to(z.dtype)), _centred(z)
    dxy = (a * b).mean()
    dxx = (a * a).mean()
    dyy = (b * b).mean()
    return torch.sqrt(dxy.clamp_min(0) + eps) / (dxx * dyy).clamp_min(eps) ** 0.25


class NoPeek(Defense):
    """Add ``alpha · dCor(x, z_sent)`` to the loss."""

    name = "nopeek"

    def __init__(self, alpha: float = 0.5):
        self.alpha = check_strength(alpha, "alpha")

    @property
    def strength(self) -> float:
        return self.alpha

    def config(self) -> dict:
        return {"name": self.name, "strength": self.alpha, "alpha": self.alpha}

    def extra_loss(self, step):
        if self.alpha == 0:
            return None
        return self.alpha * distance_correlation(step.x, step.z_sent)
