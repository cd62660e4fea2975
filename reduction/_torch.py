"""torch helpers for :mod:`reduction` (imported only from functions that need torch)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn


def resolve_device(device="auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else is passed to :class:`torch.device`."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None


def _sparse(M, device, dtype) -> torch.Tensor:
    M = sp.coo_matrix(M)
    idx = torch.as_tensor(np.vstack([M.row, M.col]).astype(np.int64))
    return torch.sparse_coo_tensor(idx, torch.as_tensor(M.data), M.shape, dtype=dtype, device=device,
                                   check_invariants=False).coalesce()


class SparseTwoLayer(nn.Module):
    """x ↦ W₂ σ(W₁x + b) with sparse W₁, W₂ (batch-first input of shape (k, n))."""

    def __init__(self, W1, b, W2, target, device, dtype):
        super().__init__()
        self.register_buffer("W1", _sparse(W1, device, dtype))
        self.register_buffer("b", torch.as_tensor(np.asarray(b), dtype=dtype, device=device))
        self.register_buffer("W2", _sparse(W2, device, dtype))
        self.register_buffer("target", torch.as_tensor(np.asarray(target), dtype=dtype, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeeze = x.dim() == 1
        X = x.unsqueeze(0) if squeeze else x
        H = torch.relu(torch.sparse.mm(self.W1, X.T).T + self.b)
        out = torch.sparse.mm(self.W2, H.T).T
        return out[0] if squeeze else out


def two_layer_module(W1, b, W2, target, device, dtype, sparse: bool) -> nn.Module:
    """A torch module computing W₂σ(W₁x + b), with the target stored as ``module.target``."""
    if sparse:
        return SparseTwoLayer(W1, b, W2, target, device, dtype)
    W1d = W1.toarray() if sp.issparse(W1) else np.asarray(W1)
    W2d = W2.toarray() if sp.issparse(W2) else np.asarray(W2)
    l1 = nn.Linear(W1d.shape[1], W1d.shape[0], bias=True, dtype=dtype, device=device)
    l2 = nn.Linear(W2d.shape[1], W2d.shape[0], bias=False, dtype=dtype, device=device)
    with torch.no_grad():
        l1.weight.copy_(torch.as_tensor(W1d, dtype=dtype))
        l1.bias.copy_(torch.as_tensor(np.asarray(b), dtype=dtype))
        l2.weight.copy_(torch.as_tensor(W2d, dtype=dtype))
    mod = nn.Sequential(l1, nn.ReLU(), l2)
    mod.register_buffer("target", torch.as_tensor(np.asarray(target), dtype=dtype, device=device))
    for p in mod.parameters():
        p.requires_grad_(False)
    return mod
