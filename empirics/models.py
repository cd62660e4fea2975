"""Split (collaborative-inference) models: a client encoder and a server head.

In split inference the client computes ``z = f(x)``, passes it through the deployed defenses
(noise, dropout, ...) and sends the result to the server, whose head finishes the task
(CEM paper, §3 and supp. §9; MixCon appendix §C).  :class:`SplitModel` keeps the three parts
explicit:

* ``encode(x)`` — the raw encoder output ``z`` (before any defense);
* ``client_features(x)`` — ``z`` after every defense's ``transform_features`` in list order:
  exactly what the server, and therefore an attacker, sees;
* ``forward(x)`` — logits ``head(client_features(x))``.

Presets (:func:`make_model`):

=============  =====================  =================================================
preset         input                  encoder output (default bottleneck)
=============  =====================  =================================================
``synthetic``  vectors ``(d,)``       MLP, ``bottleneck`` features (default ``d``)
``mnist1d``    vectors ``(40,)``      MLP, 32 features, sigmoid
``digits``     images ``(1, 8, 8)``   2 convs, 8 channels × 8 × 8 = 512, sigmoid
``lfw``        images ``(1, 25, 25)`` 2 convs (2nd stride 2), 8 × 13 × 13, sigmoid
``mnist``      images ``(1, 28, 28)`` as ``lfw``: 8 × 14 × 14, sigmoid (local MNIST files)
``vgg11_bn``   images ``(3, 32, 32)`` VGG11-BN cut after the 2nd conv block, 1×1 conv to
                                      an 8-channel bottleneck + sigmoid: 8 × 8 × 8 = 512
``resnet20``   images ``(3, 32, 32)`` ResNet-20 cut after four convs (stem conv, first
                                      basic block, bottleneck conv) + sigmoid: 8 × 32 × 32
=============  =====================  =================================================

The paper presets follow the CEM paper's CIFAR-10 setting (VGG-11 with batch norm cut after the
second convolutional block with an 8-channel sigmoid bottleneck; ResNet-20 cut after four
convolutions).  The small presets are our CPU-sized analogues for the embedded datasets.
Weights are initialised from ``seed`` without touching the global torch RNG.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from .seeding import stream_seed

__all__ = ["SplitModel", "make_model", "available_presets", "PRESET_INPUT_SHAPES"]


class SplitModel(nn.Module):
    """Client encoder + server head, with the deployed defenses between them.

    Parameters
    ----------
    encoder : nn.Module
        Client part; maps inputs ``(N, *input_shape)`` to features ``(N, *feature_shape)``.
    head : nn.Module
        Server part; maps (defended) features to logits ``(N, num_classes)``.
    defenses : iterable of :class:`empirics.defenses.base.Defense`
        Applied to the features in order by :meth:`client_features` (and in training by
        :func:`empirics.training.train`).
    input_shape : tuple of int, optional
        Expected per-sample input shape, checked by the training loop and the attacks.
    unit_range : bool
        Whether inputs must lie in [0, 1] (images).  Checked before training.

    Notes
    -----
    Defenses are held in a plain list (not registered as submodules): a defense that owns
    parameters adds them to the optimizer in its ``attach`` hook.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, *, defenses: Iterable = (),
                 input_shape: Sequence[int] | None = None, unit_range: bool = False):
        super().__init__()
        if not isinstance(encoder, nn.Module):
            raise ValueError(f"encoder: expected a torch.nn.Module, got {type(encoder).__name__}")
        if not isinstance(head, nn.Module):
            raise ValueError(f"head: expected a torch.nn.Module, got {type(head).__name__}")
        self.encoder = encoder
        self.head = head
        self.defenses = list(defenses)
        self.input_shape = tuple(int(s) for s in input_shape) if input_shape is not None else None
        self.unit_range = bool(unit_range)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Raw encoder output ``z = f(x)``, before any defense."""
        return self.encoder(x)

    def defend(self, z: torch.Tensor, *, training: bool = False, generator=None) -> torch.Tensor:
        """Pass encoder output through every defense's ``transform_features`` in order."""
        for d in self.defenses:
            z = d.transform_features(z, training=training, generator=generator)
        return z

    def client_features(self, x: torch.Tensor, *, training: bool = False, generator=None) -> torch.Tensor:
        """What the client sends: ``z`` through every defense (what server and attacker see)."""
        return self.defend(self.encode(x), training=training, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.client_features(x, training=self.training))

    @torch.no_grad()
    def feature_shape(self, device=None) -> tuple[int, ...]:
        """Per-sample shape of the encoder output (needs ``input_shape``)."""
        if self.input_shape is None:
            raise ValueError("feature_shape: the model has no input_shape; pass one to SplitModel")
        p = next(self.parameters(), None)
        dev = device if device is not None else (p.device if p is not None else "cpu")
        was = self.encoder.training
        self.encoder.eval()
        try:
            z = self.encoder(torch.zeros((1, *self.input_shape), device=dev))
        finally:
            self.encoder.train(was)
        return tuple(z.shape[1:])


# ----------------------------------------------------------------------------- building blocks

class _BasicBlock(nn.Module):
    """ResNet basic block (two 3×3 convs with batch norm, identity or 1×1 projection shortcut)."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Identity()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.short(x))


def _mlp(sizes: Sequence[int], *, last_act: nn.Module | None = None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    if last_act is not None:
        layers.append(last_act)
    return nn.Sequential(*layers)


def _conv_bn_relu(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]


def _synthetic(num_classes, bottleneck, input_shape, hidden, sigmoid):
    if input_shape is None:
        raise ValueError("input_shape: the 'synthetic' preset needs input_shape=(d,), got None")
    if len(input_shape) != 1:
        raise ValueError(f"input_shape: the 'synthetic' preset takes vectors (d,), got {tuple(input_shape)}")
    d = int(input_shape[0])
    k = int(bottleneck) if bottleneck is not None else d
    h = int(hidden) if hidden is not None else 64
    enc = _mlp([d, h, k], last_act=nn.Sigmoid() if sigmoid else None)
    head = _mlp([k, h, num_classes])
    return enc, head, (d,), False


def _mnist1d(num_classes, bottleneck, input_shape, hidden, sigmoid):
    d = int(input_shape[0]) if input_shape is not None else 40
    k = int(bottleneck) if bottleneck is not None else 32
    h = int(hidden) if hidden is not None else 128
    enc = _mlp([d, h, k], last_act=nn.Sigmoid() if sigmoid else None)
    head = _mlp([k, h, num_classes])
    return enc, head, (d,), True


def _digits(num_classes, bottleneck, input_shape, hidden, sigmoid):
    c = int(bottleneck) if bottleneck is not None else 8
    h = int(hidden) if hidden is not None else 32
    enc = nn.Sequential(nn.Conv2d(1, h, 3, padding=1), nn.ReLU(), nn.Conv2d(h, c, 3, padding=1),
                        *([nn.Sigmoid()] if sigmoid else []))
    head = nn.Sequential(nn.Conv2d(c, h, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(h, h, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(h * 16, num_classes))
    return enc, head, (1, 8, 8), True


def _lfw(num_classes, bottleneck, input_shape, hidden, sigmoid):
    c = int(bottleneck) if bottleneck is not None else 8
    h = int(hidden) if hidden is not None else 16
    enc = nn.Sequential(nn.Conv2d(1, h, 3, padding=1), nn.ReLU(), nn.Conv2d(h, c, 3, stride=2, padding=1),
                        *([nn.Sigmoid()] if sigmoid else []))
    head = nn.Sequential(nn.Conv2d(c, 2 * h, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(8 * h, num_classes))
    return enc, head, (1, 25, 25), True


def _mnist(num_classes, bottleneck, input_shape, hidden, sigmoid):
    """MNIST 28×28 (local IDX files): the ``lfw`` architecture (its head pools adaptively)."""
    enc, head, _, unit = _lfw(num_classes, bottleneck, None, hidden, sigmoid)
    return enc, head, (1, 28, 28), unit


def _vgg11_bn(num_classes, bottleneck, input_shape, hidden, sigmoid):
    c = int(bottleneck) if bottleneck is not None else 8
    enc = nn.Sequential(*_conv_bn_relu(3, 64), nn.MaxPool2d(2), *_conv_bn_relu(64, 128), nn.MaxPool2d(2),
                        nn.Conv2d(128, c, 1), nn.BatchNorm2d(c), *([nn.Sigmoid()] if sigmoid else []))
    head = nn.Sequential(*_conv_bn_relu(c, 256), *_conv_bn_relu(256, 256), nn.MaxPool2d(2),
                         *_conv_bn_relu(256, 512), *_conv_bn_relu(512, 512), nn.MaxPool2d(2),
                         *_conv_bn_relu(512, 512), *_conv_bn_relu(512, 512), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(512 * 1 * 1, num_classes))
    return enc, head, (3, 32, 32), True


def _resnet20(num_classes, bottleneck, input_shape, hidden, sigmoid):
    c = int(bottleneck) if bottleneck is not None else 8
    enc = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                        _BasicBlock(16, 16), nn.Conv2d(16, c, 3, padding=1), nn.BatchNorm2d(c),
                        *([nn.Sigmoid()] if sigmoid else []))
    head = nn.Sequential(_BasicBlock(c, 16), _BasicBlock(16, 16),
                         _BasicBlock(16, 32, 2), _BasicBlock(32, 32), _BasicBlock(32, 32),
                         _BasicBlock(32, 64, 2), _BasicBlock(64, 64), _BasicBlock(64, 64),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))
    return enc, head, (3, 32, 32), True


_PRESETS = {"synthetic": _synthetic, "mnist1d": _mnist1d, "digits": _digits, "lfw": _lfw, "mnist": _mnist,
            "vgg11_bn": _vgg11_bn, "resnet20": _resnet20}

#: per-sample input shape of each preset (``None``: given by ``input_shape=``)
PRESET_INPUT_SHAPES = {"synthetic": None, "mnist1d": (40,), "digits": (1, 8, 8), "lfw": (1, 25, 25),
                       "mnist": (1, 28, 28), "vgg11_bn": (3, 32, 32), "resnet20": (3, 32, 32)}


def available_presets() -> list[str]:
    """The model presets :func:`make_model` builds, sorted.

    Returns
    -------
    list of str
    """
    return sorted(_PRESETS)


def make_model(preset: str, *, num_classes: int, bottleneck: int | None = None,
               input_shape: Sequence[int] | None = None, hidden: int | None = None,
               sigmoid: bool | None = None, defenses: Iterable = (), seed: int = 0) -> SplitModel:
    """Build a :class:`SplitModel` from a preset.

    Parameters
    ----------
    preset : {'synthetic', 'mnist1d', 'digits', 'lfw', 'vgg11_bn', 'resnet20'}
    num_classes : int
        Output size of the head (≥ 2).
    bottleneck : int, optional
        Features (MLP presets) or channels (conv presets) of the encoder output.
    input_shape : tuple of int, optional
        Required for ``synthetic`` (``(d,)``); for ``mnist1d`` the vector length; ignored otherwise.
    hidden : int, optional
        Width of the hidden layers of the small presets.
    sigmoid : bool, optional
        Sigmoid on the encoder output (default: True for every preset but ``synthetic``).
    defenses : iterable of Defense
        Deployed defenses (see :class:`SplitModel`).
    seed : int
        Seed of the weight initialisation (the global torch RNG is left untouched).

    Returns
    -------
    SplitModel
        Encoder (input_shape → feature_shape()) and head (features → num_classes logits).

    Examples
    --------
    >>> m = make_model("vgg11_bn", num_classes=10)
    >>> m.feature_shape()
    (8, 8, 8)
    """
    if preset not in _PRESETS:
        raise ValueError(f"preset: expected one of {available_presets()}, got {preset!r}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(f"num_classes: expected an integer >= 2, got {num_classes!r}")
    if bottleneck is not None and (not isinstance(bottleneck, int) or bottleneck < 1):
        raise ValueError(f"bottleneck: expected a positive integer or None, got {bottleneck!r}")
    if sigmoid is None:
        sigmoid = preset != "synthetic"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(int(seed), "init"))
        enc, head, shape, unit = _PRESETS[preset](num_classes, bottleneck, input_shape, hidden, sigmoid)
    return SplitModel(enc, head, defenses=defenses, input_shape=shape, unit_range=unit)
