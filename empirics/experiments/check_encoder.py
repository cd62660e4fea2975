"""A user's encoder for check-defense: built, loaded, validated, fingerprinted, deployed.

Everything that can go wrong with user code becomes one :class:`EncoderError` (a ``ValueError``,
so the command line prints one line and exits 2): a factory that fails or returns no module, a
forward pass that raises, an output that is not a floating-point tensor with one row per input
(the batch dimension first), rows that depend on the other inputs of the batch, ``--weights``
that are missing, not a plain state_dict, or do not fit the module.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import pickle
import re
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..seeding import stream_seed
from ..kinds.check_defense import HASH_DIGITS, file_hash

__all__ = ["EncoderError", "DeployedEncoder", "spec_hash", "module_hash", "build_encoder", "validate_output",
           "load_weights", "internal_noise_sd", "STOCHASTIC_RTOL"]

#: two eval-mode passes whose outputs differ by more than this fraction of the output's largest
#: magnitude mean a stochastic encoder (GPU kernels may differ at float32 rounding level, ~1e-7)
STOCHASTIC_RTOL = 1e-5
#: a row computed in a batch of one and in a larger batch may differ by float32 rounding of a
#: different kernel path; more than this fraction of the output's magnitude means batch mixing
BATCH_RTOL = 1e-4
#: the batch (of more than one input) the output's shape and batch independence are checked on
VALIDATION_BATCH = 3


class EncoderError(ValueError):
    """A user's encoder (or its weights) that cannot be checked; the message says what is required."""


def _first_line(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"{type(exc).__name__}: {text[:400]}"


class DeployedEncoder(nn.Module):
    """The user's encoder as deployed: errors in its forward pass become :class:`EncoderError`;
    ``frozen`` keeps it in eval mode with no trainable parameters (only the head trains)."""

    def __init__(self, inner: nn.Module, *, frozen: bool):
        super().__init__()
        self.inner = inner
        self.frozen = bool(frozen)
        if self.frozen:
            inner.requires_grad_(False)
            inner.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.inner.eval()
        return self

    def forward(self, x):
        try:
            out = self.inner(x)
        except EncoderError:
            raise
        except Exception as exc:  # the user's forward pass: one line, never a traceback
            raise EncoderError(f"encoder: forward pass on inputs of shape {tuple(x.shape)} failed: "
                               f"{_first_line(exc)}") from None
        _check_tensor(out, x)
        return out


def _check_tensor(out, x) -> None:
    need = (f"required: a floating-point torch.Tensor of shape ({len(x)}, ...) — one row per input, the batch "
            f"dimension first")
    if not isinstance(out, torch.Tensor):
        raise EncoderError(f"encoder: returned a {type(out).__name__}; {need}")
    if not torch.is_floating_point(out):
        raise EncoderError(f"encoder: returned dtype {out.dtype} for inputs of shape {tuple(x.shape)}; {need}")
    if out.ndim < 2 or out.shape[0] != x.shape[0]:
        raise EncoderError(f"encoder: returned shape {tuple(out.shape)} for a batch of {len(x)} inputs of shape "
                           f"{tuple(x.shape[1:])}; {need}")


def spec_hash(spec: str) -> str:
    """Content hash of the module file a ``MODULE:FUNCTION`` spec names (imported already).

    Parameters
    ----------
    spec : str
        ``MODULE:FUNCTION`` or ``path/to/file.py:FUNCTION``.

    Returns
    -------
    str
        16 hex digits.
    """
    mod = spec.rpartition(":")[0]
    if mod.endswith(".py") or "/" in mod:
        return file_hash(mod)
    origin = getattr(sys.modules.get(mod), "__file__", None)
    if origin is None:
        found = importlib.util.find_spec(mod)
        origin = found.origin if found is not None else None
    if origin and Path(origin).is_file():
        return file_hash(origin)
    return hashlib.sha256(spec.encode()).hexdigest()[:HASH_DIGITS]


def module_hash(module: nn.Module, factory=None) -> str:
    """Content hash of a module object: structure, the source of its non-torch classes (and of the
    factory that built it), and every tensor of its state.

    Parameters
    ----------
    module : torch.nn.Module
        The encoder object.
    factory : callable, optional
        The factory that made it (its source is hashed too).

    Returns
    -------
    str
        16 hex digits.
    """
    h = hashlib.sha256(repr(module).encode())
    sources = [factory] if factory is not None else []
    sources += [type(m) for m in module.modules() if not type(m).__module__.startswith("torch.")]
    for obj in sources:
        try:
            h.update(inspect.getsource(obj).encode())
        except (OSError, TypeError):
            h.update(getattr(obj, "__qualname__", repr(obj)).encode())
    for k, v in module.state_dict().items():
        h.update(f"{k}:{v.dtype}:{tuple(v.shape)}".encode())
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:HASH_DIGITS]


def build_encoder(obj, *, seed: int) -> nn.Module:
    """The module of a factory (called under the run's "init" stream) or the module itself.

    Parameters
    ----------
    obj : callable or torch.nn.Module
        A zero-argument factory or the module.
    seed : int
        The run's master seed.

    Returns
    -------
    torch.nn.Module
    """
    if isinstance(obj, nn.Module):
        return obj
    if not callable(obj):
        raise EncoderError(f"encoder: expected a callable, nn.Module or 'MODULE:FUNCTION', got {type(obj).__name__}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(seed, "init"))
        try:
            enc = obj()
        except Exception as exc:
            raise EncoderError(f"encoder: calling the factory failed: {_first_line(exc)}") from None
    if not isinstance(enc, nn.Module):
        raise EncoderError(f"encoder: the factory must return a torch.nn.Module, got {type(enc).__name__}")
    return enc


@torch.no_grad()
def validate_output(enc: nn.Module, x: torch.Tensor, *, seed: int) -> float:
    """Check the encoder's output on a batch ``x`` (eval mode); returns the internal noise s.d.
    estimated from two passes over ``x`` (0 for a deterministic encoder).  Materialises lazy layers.

    Parameters
    ----------
    enc : torch.nn.Module
        The encoder.
    x : torch.Tensor, shape (n, *input_shape)
        A batch of inputs.
    seed : int
        The run's master seed.

    Returns
    -------
    float
        0 for a deterministic encoder.
    """
    was = enc.training
    enc.eval()
    p = next(enc.parameters(), None)
    x = x.to(p.device) if p is not None else x
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(seed, "mc", 9))
            wrapped = DeployedEncoder(enc, frozen=False)
            a = wrapped(x[:VALIDATION_BATCH])
            one = wrapped(x[:1])
            full = wrapped(x)
            sd = internal_noise_sd(full, wrapped(x))
    finally:
        enc.train(was)
    if not bool(torch.isfinite(a).all()):
        raise EncoderError(f"encoder: the output contains NaN or inf on inputs of shape {tuple(x.shape)}; "
                           "required: finite features")
    if tuple(one.shape[1:]) != tuple(a.shape[1:]):
        raise EncoderError(f"encoder: the per-input output shape depends on the batch size ({tuple(one.shape[1:])} "
                           f"for 1 input, {tuple(a.shape[1:])} for {len(x)}); required: one fixed shape per input")
    scale = float(a.abs().max()) or 1.0
    if sd == 0.0 and float((one[0] - a[0]).abs().max()) > BATCH_RTOL * scale:
        raise EncoderError("encoder: the output for an input depends on the other inputs of its batch (eval mode); "
                           "required: each row computed from its own input alone")
    return sd


def internal_noise_sd(a: torch.Tensor, b: torch.Tensor) -> float:
    """s.d. of internal Gaussian noise from two passes on the same inputs (a − b ~ N(0, 2σₑ²)); 0 when
    they agree to :data:`STOCHASTIC_RTOL` of the output's magnitude.

    Parameters
    ----------
    a, b : torch.Tensor, shape (n, ...)
        Two eval-mode outputs on the same inputs.

    Returns
    -------
    float
    """
    diff = (a.double() - b.double()).reshape(-1)
    scale = float(a.abs().max()) or 1.0
    if float(diff.abs().max()) <= STOCHASTIC_RTOL * scale:
        return 0.0
    return float(diff.pow(2).mean().sqrt()) / 2 ** 0.5


def load_weights(enc: nn.Module, path) -> None:
    """Load a state_dict from ``path`` (``torch.load(weights_only=True)``) into ``enc`` (strict).

    Parameters
    ----------
    enc : torch.nn.Module
        The encoder.
    path : str or Path
        The state_dict file.

    Returns
    -------
    None
    """
    p = Path(path)
    if not p.is_file():
        raise EncoderError(f"--weights: no such file: {p}")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files
            warnings.simplefilter("ignore")
            state = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if found:
            raise EncoderError(f"--weights: {p} is not a plain state_dict of tensors: it holds a {found.group(1)} "
                               "object, which torch.load(weights_only=True) refuses to unpickle") from None
        raise EncoderError(f"--weights: {p} is not a torch state_dict file (torch.load(weights_only=True) cannot "
                           "read it)") from None
    except Exception as exc:  # not a torch file at all (zip / pickle errors of every kind)
        raise EncoderError(f"--weights: {p} could not be read as a torch file ({_first_line(exc)[:200]})") from None
    if not isinstance(state, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                 for k, v in state.items()):
        raise EncoderError(f"--weights: {p} holds a {type(state).__name__}, not a state_dict (a mapping of "
                           "parameter names to tensors, as saved by torch.save(encoder.state_dict(), PATH))")
    try:
        enc.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise EncoderError(f"--weights: {p} does not fit the encoder: {_first_line(exc)}") from None
