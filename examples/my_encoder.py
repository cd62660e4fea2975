"""Example encoders for ``invlimits check-defense`` (the README's examples use them).

``invlimits check-defense examples/my_encoder.py:make_encoder --dataset digits --noise 0.1`` imports
this file and calls ``make_encoder()`` — check-defense runs the code you name, so point it only at
code you trust.  Each factory returns a fresh ``torch.nn.Module`` whose output has one row per input.

* :func:`make_encoder` — a small convolutional encoder for 8×8 digits (input shape (1, 8, 8)):
  conv → ReLU → pool → 8 × 4 × 4 = 128 features;
* :func:`make_linear` — an affine encoder for ``synthetic-mixture`` (input shape (16,)): its features
  are an exact Gaussian mixture, so check-defense can certify floors;
* :func:`make_huge` — ``Linear(64, 1_000_000)`` on digits: a million features per input, which the
  memory guard refuses before anything large is allocated (a test and the README show the message).

Run as a script, ``python examples/my_encoder.py PATH`` writes ``make_encoder()``'s state_dict to
PATH (for ``--weights PATH``: check the encoder as given, without training it).
"""

import sys

import torch
from torch import nn


def make_encoder() -> nn.Module:
    """A convolutional encoder for digits: (N, 1, 8, 8) → (N, 8, 4, 4)."""
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2))


def make_linear() -> nn.Module:
    """An affine encoder for synthetic-mixture: (N, 16) → (N, 4)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 4))


def make_huge() -> nn.Module:
    """A million features per digit: (N, 1, 8, 8) → (N, 1_000_000)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 1_000_000, bias=False))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python examples/my_encoder.py PATH  (writes make_encoder()'s state_dict to PATH)")
    torch.manual_seed(0)
    torch.save(make_encoder().state_dict(), sys.argv[1])
    print(f"wrote {sys.argv[1]}")
