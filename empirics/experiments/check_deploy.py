"""Deploying a user's encoder for check-defense: the split model with the noise defense, its
training (encoder + head, or the head alone), one draw of the held-out observations, the attacks.

Every attack reconstructs from the *same* observations (:func:`observe`), so a bound with a value
per held-out observation can be compared with each attack pairwise.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..checks import chance_level, near_chance
from ..defenses import make_defense
from ..device import resolve_device
from ..metrics import psnr, ssim
from ..models import SplitModel
from ..progress import as_progress
from ..seeding import stream_seed, torch_generator
from .check_encoder import DeployedEncoder, EncoderError
from .check_verdict import AttackRun
from ..training import evaluate, train
from .common import RunContext

__all__ = ["deploy", "observe", "run_attacks", "noise_warnings", "HEAD_HIDDEN"]

#: training features used to standardise the head's input (mean / s.d. per feature)
HEAD_STATS_SAMPLES = 2000
#: hidden width of the default server head
HEAD_HIDDEN = 128
#: declared and measured internal noise s.d. differing by more than this fraction earn a warning
ENCODER_NOISE_RTOL = 0.25
#: the head's training: Adam at this learning rate, in batches of this size (the package's defaults)
HEAD_LR, HEAD_BATCH = 1e-3, 64
#: inputs per forward pass when observing the held-out set
OBSERVE_BATCH = 512
#: a feature with (numerically) no spread is standardised by 1 instead of its s.d.
MIN_FEATURE_SD = 1e-12


class _Standardise(nn.Module):
    def __init__(self, mean, sd):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("sd", sd)

    def forward(self, z):
        return (z - self.mean) / self.sd


def _default_head(feats: torch.Tensor, num_classes: int, seed: int) -> nn.Module:
    """Flatten → standardise (fixed statistics of the deployed training features) → MLP."""
    f = feats.flatten(1).float()
    sd = f.std(0) if len(f) > 1 else torch.ones(f.shape[1])
    sd = torch.where(sd > MIN_FEATURE_SD, sd, torch.ones_like(sd))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(seed, "init", 1))
        return nn.Sequential(nn.Flatten(), _Standardise(f.mean(0), sd), nn.Linear(f.shape[1], HEAD_HIDDEN), nn.ReLU(),
                             nn.Linear(HEAD_HIDDEN, num_classes))


@torch.no_grad()
def observe(model, x: torch.Tensor, *, seed: int, dev) -> torch.Tensor:
    """One draw of the deployed observations of ``x`` (eval mode, the "attack_eval" stream), on the CPU.

    Parameters
    ----------
    model : SplitModel
        The deployed model.
    x : torch.Tensor, shape (n, *input_shape)
        Held-out inputs.
    seed : int
        The run's master seed.
    dev : torch.device
        Where the model runs.

    Returns
    -------
    torch.Tensor, shape (n, ...)
        The observations (features as sent, noise included).
    """
    model.eval()
    g = torch_generator(int(seed), "attack_eval", device=dev)
    return torch.cat([model.client_features(x[i:i + OBSERVE_BATCH].to(dev), training=False, generator=g).cpu()
                      for i in range(0, len(x), OBSERVE_BATCH)])


def deploy(subject, cfg, ctx: RunContext, warnings: list):
    """The split model as deployed (noise defense σ); trains encoder + head, or the head only.

    Parameters
    ----------
    subject : Subject
        The encoder and data.
    cfg : CheckDefenseConfig
        The settings.
    ctx : RunContext
        Where and how it runs (device, progress, folders); not part of any identity.
    warnings : list of str
        Appended to.

    Returns
    -------
    tuple of (SplitModel, float or None, torch.device)
        The model, its held-out accuracy (None without a head) and its device.
    """
    split = subject.split
    dev = resolve_device(ctx.device)
    enc = DeployedEncoder(subject.encoder, frozen=not cfg.train_encoder).to(dev)
    noise = make_defense("noise", sigma=cfg.noise)
    x_stats = split.train.x[:HEAD_STATS_SAMPLES]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(cfg.seed, "mc", 8))
        with torch.no_grad():
            enc.eval()
            feats = noise.transform_features(enc(x_stats.to(dev)), training=False).cpu()
    head = _default_head(feats, split.num_classes, cfg.seed)
    unit = bool(split.train.x.min() >= 0 and split.train.x.max() <= 1)
    model = SplitModel(enc, head, defenses=[noise], input_shape=split.input_shape, unit_range=unit).to(dev)
    acc = None
    if cfg.head or cfg.train_encoder:
        train(model, split.train, epochs=cfg.epochs, batch_size=HEAD_BATCH, lr=HEAD_LR, defenses=[noise],
              seed=cfg.seed, device=dev, progress=ctx.progress)
        acc = float(evaluate(model, split.test, seed=cfg.seed)["accuracy"])
        chance = chance_level(split.test.y.numpy())
        why = near_chance(acc, chance, len(split.test))
        if why:
            warnings.append(f"near chance: {why} — privacy at chance accuracy says little about a useful encoder")
        elif acc < chance + WEAK_FRACTION * (1 - chance):
            warnings.append(f"weak model: test accuracy {acc:.3f} is less than halfway from chance ({chance:.3f}) to "
                            f"1 — significantly above chance, but bounds and attacks describe a barely useful encoder")
    model.eval()
    return model, acc, dev


#: below chance + WEAK_FRACTION·(1 − chance) a significantly-above-chance model is still called weak
WEAK_FRACTION = 0.5


def noise_warnings(subject, cfg, warnings: list) -> float:
    """Warnings on internal encoder noise; returns the internal noise s.d. counted as channel noise.

    Parameters
    ----------
    subject : Subject
        The encoder and data.
    cfg : CheckDefenseConfig
        The settings.
    warnings : list of str
        Appended to.

    Returns
    -------
    float
    """
    sd, declared = subject.internal_sd, cfg.encoder_noise
    if sd > 0 and declared == 0:
        warnings.append(f"stochastic encoder: two eval-mode passes on the same inputs differ (internal noise s.d. "
                        f"≈ {sd:.3g}); Theorem 2 assumes ẑ = f(x) deterministic, so here the internal noise is "
                        f"modelled as part of ẑ (valid, but loose) — declare Gaussian internal noise with "
                        f"--encoder-noise SIGMA (encoder_noise=) to count it as channel noise")
        return 0.0
    if sd == 0 and declared > 0:
        warnings.append(f"--encoder-noise {declared:g} declared, but two eval-mode passes agree: the encoder is "
                        f"deterministic, so the declaration is ignored")
        return 0.0
    if declared > 0:
        note = (f"; measured ≈ {sd:.3g} from two passes — differs by more than {ENCODER_NOISE_RTOL:.0%}"
                if abs(sd - declared) > ENCODER_NOISE_RTOL * declared else f" (measured ≈ {sd:.3g})")
        warnings.append(f"internal encoder noise σₑ = {declared:g} declared and counted as channel noise{note}: the "
                        f"bounds assume it is N(0, σₑ²I), independent of x, added to a deterministic ẑ — an "
                        f"assumption the check cannot verify, so every bound is an estimate")
    return declared


# ----------------------------------------------------------------------------- attacks

def _errors(x: torch.Tensor, xh: torch.Tensor) -> np.ndarray:
    return ((x.double() - xh.detach().cpu().double()) ** 2).reshape(len(x), -1).mean(1).numpy()


def _image_metrics(x: torch.Tensor, xh: torch.Tensor) -> dict:
    if x.ndim != 4 or x.min() < 0 or x.max() > 1:
        return {}
    xh = xh.detach().cpu().double().clamp(0, 1)
    return {"psnr": psnr(x.double(), xh, 1.0), "ssim": ssim(x.double(), xh, 1.0)}


def run_attacks(model, split, cfg, ctx: RunContext, obs, dev, warnings: list) -> list:
    """Each attack fitted on the training split, then reconstructing from the same observations ``obs``.

    Parameters
    ----------
    model : SplitModel
        The deployed model.
    split : DataSplit
        The data (training split = the attacker's auxiliary data).
    cfg : CheckDefenseConfig
        The settings (its attacks).
    ctx : RunContext
        Where and how it runs (device, progress, folders); not part of any identity.
    obs : torch.Tensor, shape (n, ...)
        The observations of the held-out inputs (:func:`observe`).
    dev : torch.device
        Where the model runs.
    warnings : list of str
        Appended to (a failed attack).

    Returns
    -------
    list of AttackRun
    """
    runs = []
    x = split.test.x
    prog = as_progress(ctx.progress)
    for spec in cfg.attacks:
        p = dict(spec.params)
        size = f"{p['epochs']} epochs" if "epochs" in p else (f"{p['steps']} steps" if "steps" in p else "")
        prog.step(f"attack {spec.name}" + (f" ({size})" if size else "") + " ...")
        try:
            att = spec.build()
            att.fit(model, split.train, seed=cfg.seed, device=dev, progress=ctx.progress)
            xh = att.reconstruct(obs)
        except EncoderError:
            raise
        except (RuntimeError, ValueError, FloatingPointError) as exc:
            warnings.append(f"attack {spec.name} failed and is left out: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:300] if str(exc) else ''}")
            continue
        runs.append(AttackRun(spec.name, _errors(x, xh), _image_metrics(x, xh)))
    return runs
