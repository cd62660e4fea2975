"""MixCon and UniCon: losses on the separability of the cut-layer representations (MixCon paper;
its appendix §D.1 "Compare penalty strategies").

UniCon, exactly as printed in §D.1 — the mean squared within-class pairwise distance::

    L_unicon = (1/C) Σ_c 1/(|C_c|(|C_c|−1)) Σ_{i,j ∈ C_c} ‖h(x_i) − h(x_j)‖²

(per batch; C = number of classes with ≥ 2 members in the batch), total L_class + λ·L_unicon.

MixCon.  The appendix names MixCon's two knobs, λ and β (β = 1e−4 "to match the accuracy"), but
its loss is defined in the main paper, which is not among our sources.  We use the reading that
fits the appendix's description ("induce confusing patterns" across classes, λ and β with
"complementary effort on adjusting data separability"): pull *all* pairs together, across
classes, and keep them from collapsing::

    L_mixcon = λ · mean_{i≠j} ‖h_i − h_j‖² + β · mean_{i≠j} 1/(‖h_i − h_j‖² + 1e−8)

with h the flattened encoder output.  λ = 0 switches both terms off (the off-switch).
"""

from __future__ import annotations

import torch

from ._util import check_strength, flat
from .base import Defense

__all__ = ["UniCon", "MixCon", "unicon_loss", "mixcon_loss"]


def _sqdist(h):
    return torch.cdist(h, h) ** 2


def unicon_loss(h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L_unicon of MixCon appendix §D.1 on one batch.

    Parameters
    ----------
    h : torch.Tensor, shape (n, ...)
        Features of a batch.
    y : torch.Tensor of int, shape (n,)
        Labels.

    Returns
    -------
    torch.Tensor
        Scalar.

    Examples
    --------
    >>> import torch
    >>> h = torch.tensor([[0.0], [2.0], [5.0], [5.0]])
    >>> float(unicon_loss(h, torch.tensor([0, 0, 1, 1])))  # class 0: 4, class 1: 0 -> mean 2
    2.0
    """
    h = flat(h)
    d = _sqdist(h)
    terms = []
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        n = idx.numel()
        if n < 2:
            continue
        terms.append(d[idx][:, idx].sum() / (n * (n - 1)))
    if not terms:
        return h.sum() * 0
    return torch.stack(terms).mean()


def mixcon_loss(h: torch.Tensor, lam: float, beta: float) -> torch.Tensor:
    """Our reading of L_mixcon (module docstring).

    Parameters
    ----------
    h : torch.Tensor, shape (n, ...)
        Features of a batch.
    lam, beta : float
        The weights of the module docstring.

    Returns
    -------
    torch.Tensor
        Scalar.
    """
    h = flat(h)
    n = h.shape[0]
    if n < 2:
        return h.sum() * 0
    d = _sqdist(h)
    off = ~torch.eye(n, dtype=torch.bool, device=h.device)
    dd = d[off]
    return lam * dd.mean() + beta * (1.0 / (dd + 1e-8)).mean()


class UniCon(Defense):
    """Within-class pairwise-distance penalty ``lam · L_unicon`` (MixCon appendix §D.1)."""

    name = "unicon"
    needs_labels = True

    def __init__(self, lam: float = 1.0):
        self.lam = check_strength(lam, "lam")

    @property
    def strength(self) -> float:
        return self.lam

    def config(self) -> dict:
        return {"name": self.name, "strength": self.lam, "lam": self.lam}

    def extra_loss(self, step):
        if self.lam == 0:
            return None
        return self.lam * unicon_loss(step.z, step.y)


class MixCon(Defense):
    """MixCon separability loss with weights ``lam`` (pull) and ``beta`` (anti-collapse)."""

    name = "mixcon"

    def __init__(self, lam: float = 1.0, *, beta: float = 1e-4):
        self.lam = check_strength(lam, "lam")
        self.beta = check_strength(beta, "beta")

    @property
    def strength(self) -> float:
        return self.lam

    def config(self) -> dict:
        return {"name": self.name, "strength": self.lam, "lam": self.lam, "beta": self.beta}

    def extra_loss(self, step):
        if self.lam == 0:
            return None
        return mixcon_loss(step.z, self.lam, self.beta)
