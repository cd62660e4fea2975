"""The attack interface and the shared machinery of trained (learning-based) attacks.

Every attack has two steps:

* ``fit(model, aux, ...)`` — prepare using the attacker's auxiliary inputs ``aux`` and access to
  the deployed client model (black-box queries for the trained attacks, white-box for
  :class:`~empirics.attacks.optimization.OptimizationAttack`);
* ``reconstruct(obs)`` — map observations to input estimates.

``observe(model, x)`` is what the attacker sees for inputs ``x``: by default
``model.client_features(x, training=False, generator=...)``, i.e. the features exactly as the
deployed model emits them, with every defense (noise, dropout, ...) applied — the attacker is
never given clean features.  :class:`~empirics.attacks.truncation.TruncationAttack` observes the
truncated prediction vector instead.  :meth:`Attack.evaluate` runs observe → reconstruct on held-
out data and reports MSE, PSNR and SSIM.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data import ArrayDataset, as_dataset
from ..device import resolve_device
from ..metrics import psnr as psnr_metric
from ..metrics import ssim as ssim_metric
from ..models import SplitModel
from ..seeding import stream_seed, torch_generator

__all__ = ["Attack", "TrainedAttack", "ResBlock", "ImageDecoder", "MLPDecoder", "make_decoder",
           "check_model", "check_aux"]


def check_model(model) -> SplitModel:
    """The attacked model, checked to be a :class:`~empirics.models.SplitModel`.

    Parameters
    ----------
    model : SplitModel
        The model an attack targets.

    Returns
    -------
    SplitModel
        ``model``, after checking it is one (``ValueError`` otherwise).
    """
    if not isinstance(model, SplitModel):
        raise ValueError(f"model: expected an empirics.models.SplitModel, got {type(model).__name__}")
    return model


def check_aux(model: SplitModel, aux, name: str = "aux") -> ArrayDataset:
    """The attacker's auxiliary data as an :class:`~empirics.data.ArrayDataset`, checked against the model's input shape.

    Parameters
    ----------
    model : SplitModel
        The attacked model (its input shape).
    aux : ArrayDataset, DataSplit or (x, y)
        The attacker's auxiliary data, inputs of shape (n, *model.input_shape).
    name : str
        The argument's name in error messages.

    Returns
    -------
    ArrayDataset
    """
    aux = as_dataset(aux, name=name)
    if model.input_shape is not None and tuple(aux.input_shape) != tuple(model.input_shape):
        raise ValueError(f"{name}: expected inputs of shape (N, {', '.join(map(str, model.input_shape))}) "
                         f"for this model, got (N, {', '.join(map(str, aux.input_shape))})")
    if model.unit_range:
        lo, hi = float(aux.x.min()), float(aux.x.max())
        if lo < 0 or hi > 1:
            raise ValueError(f"{name}: expected inputs in [0, 1] for this model, got range [{lo:.4g}, {hi:.4g}]")
    return aux


def _model_device(model) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


class Attack:
    """Base class; subclasses implement :meth:`fit` and :meth:`reconstruct`."""

    name: ClassVar[str] = "attack"

    def __init__(self):
        self.model: SplitModel | None = None
        self.obs_shape: tuple[int, ...] | None = None
        self.out_shape: tuple[int, ...] | None = None
        self.unit_range = False
        self.device = torch.device("cpu")

    # -- what the attacker sees -------------------------------------------------------------
    @torch.no_grad()
    def observe(self, model: SplitModel, x: torch.Tensor, *, generator=None) -> torch.Tensor:
        """Features as deployed: ``model.client_features(x, training=False)`` in eval mode."""
        was = model.training
        model.eval()
        try:
            return model.client_features(x.to(_model_device(model)), training=False, generator=generator)
        finally:
            model.train(was)

    def fit(self, model: SplitModel, aux, **kw) -> "Attack":  # pragma: no cover - abstract
        raise NotImplementedError

    def reconstruct(self, obs) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_obs(self, obs) -> torch.Tensor:
        if self.obs_shape is None:
            raise ValueError(f"{type(self).__name__}: call fit(...) before reconstruct(...)")
        t = obs if isinstance(obs, torch.Tensor) else torch.as_tensor(np.asarray(obs))
        t = t.detach().to(torch.float32)
        if t.ndim == len(self.obs_shape):
            t = t[None]
        if tuple(t.shape[1:]) != tuple(self.obs_shape):
            raise ValueError(f"z: expected observations of shape (N, {', '.join(map(str, self.obs_shape))}) "
                             f"as seen at fit time, got {tuple(t.shape)}")
        if t.shape[0] == 0:
            raise ValueError("z: expected at least one observation, got none")
        if not torch.isfinite(t).all():
            raise ValueError("z: expected finite observations, found NaN or inf")
        return t.to(self.device)

    @torch.no_grad()
    def evaluate(self, model: SplitModel, data, *, seed: int = 0, batch_size: int = 512) -> dict:
        """Observe held-out ``data`` through ``model`` and report reconstruction quality.

        Returns ``{"mse", "mse_stderr", "psnr", "ssim" (images only), "n"}``; MSE is per element.
        """
        data = check_aux(model, data, "data")
        dev = _model_device(model)
        g = torch_generator(int(seed), "attack_eval", device=dev)
        xs, outs = [], []
        for i in range(0, len(data), batch_size):
            x = data.x[i:i + batch_size]
            obs = self.observe(model, x, generator=g)
            outs.append(self.reconstruct(obs).detach().cpu())
            xs.append(x)
        x, xh = torch.cat(xs).double(), torch.cat(outs).double()
        per = ((x - xh) ** 2).reshape(len(x), -1).mean(1).numpy()
        res: dict[str, Any] = {"mse": float(per.mean()), "mse_stderr": float(per.std(ddof=1) / math.sqrt(len(per)))
                               if len(per) > 1 else 0.0, "n": len(per)}
        if self.unit_range and x.ndim == 4:
            res["psnr"] = psnr_metric(x, xh.clamp(0, 1), 1.0)
            res["ssim"] = ssim_metric(x, xh.clamp(0, 1), 1.0)
        elif self.unit_range and x.ndim == 2:  # 1-D signals in [0, 1]: PSNR per signal
            res["psnr"] = psnr_metric(x[:, None, None], xh.clamp(0, 1)[:, None, None], 1.0)
        self.last_reconstruction = (x.float(), xh.float())
        return res

    def config(self) -> dict:
        return {"name": self.name}


# ----------------------------------------------------------------------------- decoders

class ResBlock(nn.Module):
    """conv–BN–ReLU–conv–BN plus identity, then ReLU (the residual block of CEM supp. §9)."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.ReLU(),
                                  nn.Conv2d(ch, ch, 3, padding=1), nn.BatchNorm2d(ch))

    def forward(self, x):
        return torch.relu(x + self.body(x))


class ImageDecoder(nn.Module):
    """Features ``(C, h, w)`` → image ``(c, H, W)``: conv, residual blocks, stride-2 transposed
    convolutions until the spatial size reaches ``(H, W)`` (then a centre crop or bilinear
    resize to the exact size), a 3×3 conv and a sigmoid (CEM supp. §9 decoder)."""

    def __init__(self, feat_shape, out_shape, *, width: int = 64, n_res: int = 2, sigmoid: bool = True):
        super().__init__()
        C, h, w = feat_shape
        c, H, W = out_shape
        self.out_hw = (H, W)
        layers: list[nn.Module] = [nn.Conv2d(C, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
        layers += [ResBlock(width) for _ in range(n_res)]
        ch, size = width, max(h, w)
        while size < max(H, W):
            nxt = max(ch // 2, 16)
            layers += [nn.ConvTranspose2d(ch, nxt, 4, stride=2, padding=1), nn.BatchNorm2d(nxt), nn.ReLU()]
            ch, size = nxt, size * 2
        layers += [nn.Conv2d(ch, c, 3, padding=1)]
        self.body = nn.Sequential(*layers)
        self.sigmoid = sigmoid

    def forward(self, z):
        out = self.body(z)
        H, W = self.out_hw
        h, w = out.shape[-2:]
        if (h, w) != (H, W):
            if h >= H and w >= W:
                t, l = (h - H) // 2, (w - W) // 2
                out = out[..., t:t + H, l:l + W]
            else:
                out = nn.functional.interpolate(out, size=(H, W), mode="bilinear", align_corners=False)
        return torch.sigmoid(out) if self.sigmoid else out


class MLPDecoder(nn.Module):
    """Vector observations → any output shape: ReLU MLP plus a linear skip connection."""

    def __init__(self, in_dim: int, out_shape, *, hidden: int = 256, depth: int = 3, sigmoid: bool = False):
        super().__init__()
        out = int(np.prod(out_shape))
        sizes = [in_dim] + [hidden] * depth
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], out))
        self.body = nn.Sequential(*layers)
        self.skip = nn.Linear(in_dim, out)
        self.out_shape = tuple(out_shape)
        self.sigmoid = sigmoid

    def forward(self, z):
        z = z.reshape(z.shape[0], -1)
        out = (self.body(z) + self.skip(z)).reshape(z.shape[0], *self.out_shape)
        return torch.sigmoid(out) if self.sigmoid else out


def make_decoder(obs_shape, out_shape, *, arch: str = "auto", sigmoid: bool, width: int = 64,
                 hidden: int = 256, depth: int = 3, n_res: int = 2) -> nn.Module:
    """``arch="auto"``: :class:`ImageDecoder` for (C, h, w) features and image outputs, else MLP.

    Parameters
    ----------
    obs_shape : tuple of int
        Shape of one observation (the features as sent): (C, h, w) or (k,).
    out_shape : tuple of int
        Shape of one input to rebuild.
    arch : {'auto', 'image', 'mlp'}
        The architecture.
    sigmoid : bool
        End in a sigmoid (inputs in [0, 1]).
    width, n_res : int
        Channels and residual blocks of the image decoder.
    hidden, depth : int
        Width and depth of the MLP.

    Returns
    -------
    torch.nn.Module
        Maps observations (n, *obs_shape) to reconstructions (n, *out_shape).
    """
    if arch not in ("auto", "conv", "mlp"):
        raise ValueError(f"arch: expected 'auto', 'conv' or 'mlp', got {arch!r}")
    conv_ok = len(obs_shape) == 3 and len(out_shape) == 3
    if arch == "conv" and not conv_ok:
        raise ValueError(f"arch: 'conv' needs (C, h, w) features and (c, H, W) outputs, got {obs_shape} -> {out_shape}")
    if arch == "conv" or (arch == "auto" and conv_ok):
        return ImageDecoder(obs_shape, out_shape, width=width, n_res=n_res, sigmoid=sigmoid)
    return MLPDecoder(int(np.prod(obs_shape)), out_shape, hidden=hidden, depth=depth, sigmoid=sigmoid)


class _Standardise(nn.Module):
    """Fixed affine map (per-element mean/std of the training observations)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, z):
        return (z - self.mean) / self.std


class _Preprocess(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, z):
        return self.fn(z)


class TrainedAttack(Attack):
    """An attack that trains an inversion network ``G: observation → x`` on auxiliary data.

    Each epoch draws *fresh* observations of the auxiliary inputs through the deployed defenses
    (repeated black-box queries), so a stochastic defense is seen exactly as deployed.
    Observations are standardised with statistics of the first draw; for data not in [0, 1] the
    targets are standardised as well (and the output un-standardised).
    """

    def __init__(self, *, arch: str = "auto", width: int = 64, hidden: int = 256, depth: int = 3,
                 n_res: int = 2, epochs: int = 30, batch_size: int = 128, lr: float = 1e-3):
        super().__init__()
        self.arch, self.width, self.hidden, self.depth, self.n_res = arch, width, hidden, depth, n_res
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.net: nn.Module | None = None
        self.history: list[float] = []

    # hooks for subclasses
    def _raw(self, model, x):
        """Deterministic part of the observation, computed once per auxiliary input."""
        was = model.training
        model.eval()
        try:
            return model.encode(x)
        finally:
            model.train(was)

    def _finish(self, model, raw, generator):
        """Turn the deterministic part into an observation (defenses as deployed)."""
        return model.defend(raw, training=False, generator=generator)

    @torch.no_grad()
    def observe(self, model, x, *, generator=None):
        was = model.training
        model.eval()
        try:
            return self._finish(model, self._raw(model, x.to(_model_device(model))), generator)
        finally:
            model.train(was)

    def _preprocess(self, obs):
        """Fixed map applied to observations before standardisation (identity by default)."""
        return obs

    def _build(self, obs_shape, out_shape):
        return make_decoder(obs_shape, out_shape, arch=self.arch, sigmoid=self.unit_range, width=self.width,
                            hidden=self.hidden, depth=self.depth, n_res=self.n_res)

    def _extra_step(self, x, xh, obs, epoch):
        """Additional loss term for the inversion network (GAN critic term); None by default."""
        return None

    def _setup_extra(self, out_shape, dev, gen):
        pass

    def fit(self, model: SplitModel, aux, *, epochs: int | None = None, seed: int = 0, device="auto",
            progress: bool = True) -> "TrainedAttack":
        """Train the inversion network on ``aux`` observed through ``model`` (MSE loss)."""
        model = check_model(model)
        aux = check_aux(model, aux)
        epochs = self.epochs if epochs is None else epochs
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs: expected a positive integer, got {epochs!r}")
        dev = resolve_device(device)
        model.to(dev)
        self.device, self.model, self.unit_range = dev, model, model.unit_range
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(stream_seed(int(seed), "attack_init"))
            g = torch_generator(int(seed), "attack_obs", device=dev)
            shuffle = torch_generator(int(seed), "attack_shuffle")
            x = aux.x.to(dev)
            with torch.no_grad():
                raw = torch.cat([self._raw(model, x[i:i + 1024]) for i in range(0, len(x), 1024)])
                obs0 = self._finish(model, raw, g)
            if not torch.isfinite(obs0).all():
                raise ValueError("model: the deployed features of aux contain NaN or inf")
            self.obs_shape, self.out_shape = tuple(obs0.shape[1:]), tuple(aux.input_shape)
            p0 = self._preprocess(obs0)
            if len(self.obs_shape) == 3:  # per-channel statistics for feature maps
                m = p0.mean(dim=(0, 2, 3), keepdim=True)[0]
                s = p0.std(dim=(0, 2, 3), keepdim=True)[0]
            else:
                m, s = p0.mean(0), p0.std(0)
            s = torch.where(s > 1e-6, s, torch.ones_like(s))
            self.net = nn.Sequential(_Preprocess(self._preprocess), _Standardise(m, s),
                                     self._build(self.obs_shape, self.out_shape)).to(dev)
            if self.unit_range:
                self.x_mean, self.x_std = torch.zeros((), device=dev), torch.ones((), device=dev)
            else:
                self.x_mean = x.mean(0)
                self.x_std = x.std(0).clamp_min(1e-6)
            self._setup_extra(self.out_shape, dev, g)
            opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
            n = len(x)
            steps = epochs * ((n + self.batch_size - 1) // self.batch_size)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=steps, pct_start=0.15)
            self.history = []
            bar = tqdm(range(epochs), disable=not progress, desc=f"{self.name} attack", unit="epoch", leave=False)
            for epoch in bar:
                self.net.train()
                with torch.no_grad():
                    obs = obs0 if epoch == 0 else self._finish(model, raw, g)
                perm = torch.randperm(n, generator=shuffle).to(dev)
                tot = 0.0
                for b in range(0, n, self.batch_size):
                    idx = perm[b:b + self.batch_size]
                    xt = x[idx]
                    out = self.net(obs[idx])
                    xh = out if self.unit_range else out * self.x_std + self.x_mean
                    tgt = xt if self.unit_range else (xt - self.x_mean) / self.x_std
                    loss = ((out - tgt) ** 2).mean()
                    extra = self._extra_step(xt, xh, obs[idx], epoch)
                    total = loss if extra is None else loss + extra
                    opt.zero_grad(set_to_none=True)
                    total.backward()
                    opt.step()
                    sched.step()
                    tot += float(loss.detach()) * len(idx)
                self.history.append(tot / n)
                bar.set_postfix(mse=f"{tot / n:.4g}")
            bar.close()
        self.net.eval()
        return self

    @torch.no_grad()
    def reconstruct(self, obs) -> torch.Tensor:
        t = self._check_obs(obs)
        self.net.eval()
        out = torch.cat([self.net(t[i:i + 1024]) for i in range(0, len(t), 1024)])
        return out if self.unit_range else out * self.x_std + self.x_mean

    def config(self) -> dict:
        return {"name": self.name, "arch": self.arch, "epochs": self.epochs, "batch_size": self.batch_size,
                "lr": self.lr}
