r"""Optimization-based (white-box) model inversion with a total-variation prior.

MixCon appendix §C.1–C.2 (the rMLE attack of He et al. 2019): given the client network ``h`` and
observed features ``z``, solve

.. math::
    \hat s = \arg\min_s \; \|h(s) - z\|_p^p + \zeta\,\mathrm{TV}(s),
    \qquad \mathrm{TV}(s) = \sum_{i,j} |s_{i+1,j} - s_{i,j}| + |s_{i,j+1} - s_{i,j}|

by Adam from an initial guess (the auxiliary mean, or a constant 0.5 image).  For inputs in
[0, 1] the search is over ``s = sigmoid(u)`` so the box constraint holds.  ``h`` is the encoder
*without* the stochastic defenses (the attacker knows the weights; the noise is part of the
channel), ``z`` is the deployed (noisy) observation.  Each sample is optimised independently
(Adam is element-wise, so optimising the batch sum is the same as per-sample runs).
"""

from __future__ import annotations

import torch

from ..device import resolve_device
from ..progress import as_progress
from .base import Attack, _model_device, check_aux, check_model

__all__ = ["OptimizationAttack", "total_variation"]


def total_variation(s: torch.Tensor) -> torch.Tensor:
    """Anisotropic TV per sample for images ``(N, C, H, W)``; zeros for other shapes.

    Parameters
    ----------
    s : torch.Tensor, shape (n, C, H, W) or other
        A batch.

    Returns
    -------
    torch.Tensor, shape (n,)
    """
    if s.ndim != 4:
        return torch.zeros(s.shape[0], device=s.device, dtype=s.dtype)
    dh = (s[..., 1:, :] - s[..., :-1, :]).abs().sum(dim=(1, 2, 3))
    dw = (s[..., :, 1:] - s[..., :, :-1]).abs().sum(dim=(1, 2, 3))
    return dh + dw


class OptimizationAttack(Attack):
    """White-box rMLE attack ``argmin_s ‖h(s) − z‖_p^p + ζ·TV(s)``.

    Parameters
    ----------
    p : float
        Norm exponent of the data term (default 2).
    tv : float
        ζ, the TV weight (default 0; only meaningful for images).
    steps, lr : int, float
        Adam iterations and step size.
    init : {'mean', 'half'}
        Start from the auxiliary mean (needs ``aux`` in :meth:`fit`) or from 0.5 everywhere.
    """

    name = "optimization"

    def __init__(self, *, p: float = 2.0, tv: float = 0.0, steps: int = 300, lr: float = 0.05,
                 init: str = "mean"):
        super().__init__()
        if p <= 0 or tv < 0 or steps < 1 or lr <= 0:
            raise ValueError(f"p, tv, steps, lr: expected p > 0, tv >= 0, steps >= 1, lr > 0; got {p}, {tv}, {steps}, {lr}")
        if init not in ("mean", "half"):
            raise ValueError(f"init: expected 'mean' or 'half', got {init!r}")
        self.p, self.tv, self.steps, self.lr, self.init = float(p), float(tv), int(steps), float(lr), init

    def fit(self, model, aux=None, *, device="auto", seed: int = 0, progress: bool = False, **_):
        """Remember the white-box encoder; ``aux`` (optional) gives the starting point."""
        model = check_model(model)
        dev = resolve_device(device)
        model.to(dev)
        self.model, self.device, self.unit_range = model, dev, model.unit_range
        if aux is not None:
            aux = check_aux(model, aux)
            self.start = aux.x.to(dev).mean(0)
            shape = aux.input_shape
        else:
            if model.input_shape is None:
                raise ValueError("aux: needed when the model has no input_shape")
            shape = model.input_shape
            self.start = torch.full(shape, 0.5, device=dev)
        if self.init == "half":
            self.start = torch.full(shape, 0.5, device=dev)
        self.out_shape = tuple(shape)
        self.progress = progress
        with torch.no_grad():
            was = model.training
            model.eval()
            self.obs_shape = tuple(model.encode(self.start[None]).shape[1:])
            model.train(was)
        return self

    def reconstruct(self, obs) -> torch.Tensor:
        z = self._check_obs(obs)
        model = self.model
        was = model.training
        model.eval()
        flags = [q.requires_grad for q in model.parameters()]
        for q in model.parameters():
            q.requires_grad_(False)
        try:
            start = self.start.expand(len(z), *self.out_shape).clone()
            if self.unit_range:
                u = torch.logit(start.clamp(1e-3, 1 - 1e-3)).requires_grad_(True)
            else:
                u = start.requires_grad_(True)
            opt = torch.optim.Adam([u], lr=self.lr)
            with torch.enable_grad():
                for _ in as_progress(getattr(self, "progress", False)).bar(range(self.steps), desc="optimization attack",
                                                                          unit="step"):
                    s = torch.sigmoid(u) if self.unit_range else u
                    r = (model.encode(s) - z).reshape(len(z), -1).abs().pow(self.p).sum(1)
                    loss = (r + self.tv * total_variation(s)).sum()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            with torch.no_grad():
                return (torch.sigmoid(u) if self.unit_range else u).detach()
        finally:
            for q, f in zip(model.parameters(), flags):
                q.requires_grad_(f)
            model.train(was)

    def config(self) -> dict:
        return {"name": self.name, "p": self.p, "tv": self.tv, "steps": self.steps, "lr": self.lr, "init": self.init}
