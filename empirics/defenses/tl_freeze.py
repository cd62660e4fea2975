"""Transfer-learning defense: pre-train on a public split, freeze the first layers, fine-tune the
rest on the private split (Ho et al., *Model Inversion Robustness: Can Transfer Learning Help?*,
CVPR 2024, §3: T = C ∘ E, Stage 1 pre-training on D_pretrain, Stage 2 fine-tuning only C on
D_priv).

As a plug-in, ``attach`` runs Stage 1 — ``pretrain_epochs`` epochs of Adam on the public data
with the model's own head (``defend(head=...)``; public labels must lie in ``[0, num_classes)``;
the seed paper's public and private splits share no class, and only the frozen encoder layers
carry over) — and then sets ``requires_grad = False`` on the parameters of the first ``freeze``
parametrised modules of the encoder and keeps their batch-norm layers in eval mode (a forward
pre-hook, so whatever ``train()`` the loop calls, they use and keep their running statistics);
the training loop is Stage 2.  Strength is
``freeze`` (number of frozen layers): 0 leaves the model and optimizer untouched.  Without public
data the frozen layers keep their random initialisation (a warning says so).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .base import Defense

__all__ = ["TLFreeze"]


def _param_modules(encoder: nn.Module) -> list[nn.Module]:
    return [m for m in encoder.modules() if any(True for _ in m.parameters(recurse=False))]


def _stay_eval(module, args):
    """Forward pre-hook of a frozen batch-norm layer: always in eval mode."""
    if module.training:
        module.train(False)


class TLFreeze(Defense):
    """Pre-train on ``public_data``, then freeze the first ``freeze`` parametrised encoder layers.

    Parameters
    ----------
    freeze : int
        Number of leading parametrised modules (conv, linear, batch-norm ...) of the encoder to
        freeze; 0 = off.
    public_data : (x, y) tensors, optional
        Public split for Stage 1.
    pretrain_epochs, batch_size, lr : Stage 1 settings (Adam).
    seed : int
        Seed of Stage 1's batch order (own generator; the loop's generators are not touched).
    """

    name = "tl_freeze"

    def __init__(self, freeze: int = 2, *, public_data=None, pretrain_epochs: int = 5,
                 batch_size: int = 64, lr: float = 1e-3, seed: int = 0):
        if isinstance(freeze, bool) or not isinstance(freeze, int) or freeze < 0:
            raise ValueError(f"freeze: expected a non-negative integer, got {freeze!r}")
        self.freeze = freeze
        self.public_data = public_data
        self.pretrain_epochs = int(pretrain_epochs)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.seed = int(seed)
        self.frozen: list[nn.Module] = []

    @property
    def strength(self) -> float:
        return float(self.freeze)

    def config(self) -> dict:
        return {"name": self.name, "strength": self.freeze, "freeze": self.freeze,
                "pretrain_epochs": self.pretrain_epochs, "public": self.public_data is not None}

    def _pretrain(self, model):
        x, y = self.public_data
        params = list(model.encoder.parameters()) + list(model.head.parameters())
        dev = params[0].device
        opt = torch.optim.Adam(params, lr=self.lr)
        g = torch.Generator().manual_seed(self.seed)
        model.train()
        model.head.train()
        for _ in range(self.pretrain_epochs):
            perm = torch.randperm(x.shape[0], generator=g)
            for i in range(0, x.shape[0], self.batch_size):
                idx = perm[i:i + self.batch_size]
                xb, yb = x[idx].to(dev), y[idx].to(dev)
                opt.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(model.head(model.encode(xb)), yb)
                loss.backward()
                opt.step()
        for p in params:
            p.grad = None

    def attach(self, model, optimizer, *, data=None):
        if self.freeze == 0:
            return model, optimizer
        mods = _param_modules(model.encoder)
        if self.freeze > len(mods):
            raise ValueError(f"freeze: the encoder has {len(mods)} parametrised layers, got freeze={self.freeze}")
        if self.public_data is not None and getattr(model, "head", None) is None:
            raise ValueError("tl_freeze: pre-training on public_data needs the server head: pass head= to defend()")
        if self.public_data is None:
            warnings.warn("tl_freeze: no public_data given; the frozen layers keep their random "
                          "initialisation (no Stage 1 pre-training)", stacklevel=3)
        else:
            self._pretrain(model)
        self.frozen = mods[: self.freeze]
        for m in self.frozen:
            for p in m.parameters(recurse=False):
                p.requires_grad_(False)
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.register_forward_pre_hook(_stay_eval)
                m.eval()
        return model, optimizer
