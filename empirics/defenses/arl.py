"""Adversarial representation learning against a proxy decoder (ResSFL / Noise_ARL style; CEM
paper Table 1 "ResSFL", "Noise_ARL", its refs. [19, 29]).

A proxy inversion decoder D (an MLP from the flattened sent features to the flattened input) is
trained alongside: after every step it takes one Adam step on ``‖D(z_sent) − x‖²`` (features
detached), and the client is trained on ``L_task − α·‖D(z_sent) − x‖²`` (it tries to make the
proxy fail).  D is created lazily at the first step from its own seed, so α = 0 creates nothing
and draws no random numbers from the loop's generators.

The proxy's parameters are optimised internally (its own Adam, in ``after_step``, i.e. in
``defended.step()``), never by the user's optimizer; its state (weights and Adam moments) is part
of :meth:`ARL.state_dict`, so a resumed run continues exactly.
"""

from __future__ import annotations

import torch
from torch import nn

from ._util import check_strength, flat
from .base import Defense

__all__ = ["ARL"]


class ARL(Defense):
    """Adversarial training against a proxy decoder, weight ``alpha``.

    Parameters
    ----------
    alpha : float
        Weight of the (negated) proxy reconstruction MSE in the client loss; 0 = off.
    hidden : int
        Width of the proxy decoder's hidden layer.
    lr : float
        Adam learning rate of the proxy.
    seed : int
        Seed of the proxy's initialisation (the global RNG is not touched).
    """

    name = "arl"

    def __init__(self, alpha: float = 0.5, *, hidden: int = 256, lr: float = 1e-3, seed: int = 0):
        self.alpha = check_strength(alpha, "alpha")
        self.hidden = int(hidden)
        self.lr = float(lr)
        self.seed = int(seed)
        self.decoder: nn.Module | None = None
        self._opt = None
        self._pending: dict | None = None  # a loaded state, applied when the decoder is built

    @property
    def strength(self) -> float:
        return self.alpha

    def config(self) -> dict:
        return {"name": self.name, "strength": self.alpha, "alpha": self.alpha, "hidden": self.hidden}

    def _ensure(self, z, x):
        if self.decoder is not None:
            return
        dz, dx = flat(z).shape[1], flat(x).shape[1]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.decoder = nn.Sequential(nn.Linear(dz, self.hidden), nn.ReLU(),
                                         nn.Linear(self.hidden, dx)).to(device=z.device, dtype=z.dtype)
        self._opt = torch.optim.Adam(self.decoder.parameters(), lr=self.lr)
        if self._pending:
            self.decoder.load_state_dict(self._pending["decoder"])
            self._opt.load_state_dict(self._pending["opt"])
            self._pending = None

    def _mse(self, z, x):
        rec = self.decoder(flat(z))
        return ((rec - flat(x).to(rec.dtype)) ** 2).mean()

    def extra_loss(self, step):
        if self.alpha == 0:
            return None
        self._ensure(step.z_sent, step.x)
        return -self.alpha * self._mse(step.z_sent, step.x)

    def after_step(self, step):
        if self.alpha == 0:
            return
        self._ensure(step.z_sent, step.x)
        self._opt.zero_grad(set_to_none=True)
        loss = self._mse(step.z_sent.detach(), step.x)
        loss.backward()
        self._opt.step()

    def state_dict(self) -> dict:
        if self.decoder is None:
            return {}
        return {"decoder": self.decoder.state_dict(), "opt": self._opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if state and self.decoder is not None:
            self.decoder.load_state_dict(state["decoder"])
            self._opt.load_state_dict(state["opt"])
        elif state:
            self._pending = state
