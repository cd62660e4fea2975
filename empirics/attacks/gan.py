"""GAN-based model inversion (CEM paper, supp. §9): a decoder trained with MSE plus a WGAN-GP critic.

The generator is the same decoder as :class:`~empirics.attacks.decoder.DecoderAttack`; a critic
``D`` is trained to separate real auxiliary inputs from reconstructions with the Wasserstein loss
and gradient penalty (Gulrajani et al. 2017, λ_GP = 10), and the generator minimises
``MSE + adv_weight · (−E D(G(z)))``.  The adversarial term pushes reconstructions towards the
data manifold (sharper images); under squared error it can only cost MSE relative to the
posterior mean, which the optimality benchmark shows.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .base import TrainedAttack

__all__ = ["GANAttack"]


def _critic(shape) -> nn.Module:
    if len(shape) == 3:
        c, h, w = shape
        return nn.Sequential(nn.Conv2d(c, 32, 3, padding=1), nn.LeakyReLU(0.2),
                             nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                             nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(256, 1))
    d = int(np.prod(shape))
    return nn.Sequential(nn.Flatten(), nn.Linear(d, 128), nn.LeakyReLU(0.2), nn.Linear(128, 128),
                         nn.LeakyReLU(0.2), nn.Linear(128, 1))


class GANAttack(TrainedAttack):
    """Decoder + WGAN-GP critic.

    Parameters
    ----------
    adv_weight : float
        Weight of the adversarial term relative to the MSE (default 0.01).
    gp_weight : float
        Gradient-penalty weight λ (default 10).
    critic_steps : int
        Critic updates per generator update (default 1).
    Other parameters as :class:`~empirics.attacks.decoder.DecoderAttack`.
    """

    name = "gan"

    def __init__(self, *, adv_weight: float = 0.01, gp_weight: float = 10.0, critic_steps: int = 1,
                 critic_lr: float = 1e-4, **kw):
        super().__init__(**kw)
        if adv_weight < 0 or gp_weight < 0:
            raise ValueError(f"adv_weight, gp_weight: expected non-negative numbers, got {adv_weight}, {gp_weight}")
        self.adv_weight, self.gp_weight, self.critic_steps, self.critic_lr = adv_weight, gp_weight, critic_steps, critic_lr

    def _setup_extra(self, out_shape, dev, gen):
        self.critic = _critic(out_shape).to(dev)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=self.critic_lr, betas=(0.5, 0.9))
        self._gen = gen

    def _norm(self, x):
        return x if self.unit_range else (x - self.x_mean) / self.x_std

    def _extra_step(self, x, xh, obs, epoch):
        real, fake = self._norm(x), self._norm(xh)
        for _ in range(self.critic_steps):
            f = fake.detach()
            shape = (len(real),) + (1,) * (real.ndim - 1)
            a = torch.rand(shape, generator=self._gen, device=self._gen.device).to(real.device)
            mix = (a * real + (1 - a) * f).requires_grad_(True)
            grad = torch.autograd.grad(self.critic(mix).sum(), mix, create_graph=True)[0]
            gp = ((grad.reshape(len(grad), -1).norm(dim=1) - 1) ** 2).mean()
            loss_d = self.critic(f).mean() - self.critic(real).mean() + self.gp_weight * gp
            self.critic_opt.zero_grad(set_to_none=True)
            loss_d.backward()
            self.critic_opt.step()
        for p in self.critic.parameters():
            p.requires_grad_(False)
        adv = -self.critic(fake).mean()
        for p in self.critic.parameters():
            p.requires_grad_(True)
        return self.adv_weight * adv

    def config(self) -> dict:
        return {**super().config(), "adv_weight": self.adv_weight, "gp_weight": self.gp_weight}
