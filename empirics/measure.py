"""Measurements on a trained split model: H(x|z) by Theorem 2 and its variants, dFIL.

* :func:`conditional_entropy` — H(x|z) of a trained encoder by Theorem 2 (CEM paper Eq. 3): fit a
  per-class Gaussian mixture to the noise-free features ẑ, take Σp from the deployed noise
  defense, and report ``H(x) − U`` for three upper bounds U on I(z; ẑ): ``huber`` (Thm 2 exactly
  as printed), ``kl`` (Kolchinsky–Tracey pairwise, never looser) and ``maxent`` (½ log|Cov z|/|Σp|,
  no mixture assumption).  **Relative**: H(x) is the argument ``h_x`` (default 0 = the entropy of
  the uniform law on [0, 1]^d, an *upper* bound on H(x) for images — the CEM paper likewise uses
  "a proper value" in place of the intractable H(x)).  On fitted mixtures and real data every
  number is an estimate, never a certified bound (``guarantee: "none"``).
* :func:`fisher_information` — dFIL = Tr(JᵀJ)/(σ² d) of ``z = f(x) + N(0, σ²I)`` by Hutchinson's
  estimator with vector–Jacobian products, averaged over data (± standard error); the unbiased
  Cramér–Rao bound MSE/d ≥ E[1/dFIL].
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

import theory.bounds as tb

from . import data as D
from .defenses.cem import fit_class_mixture, noise_variance_of
from .seeding import torch_generator

__all__ = ["encode_all", "noise_variance", "conditional_entropy", "fisher_information"]


@torch.no_grad()
def encode_all(model, x, batch=512):
    """Noise-free encoder outputs ``encode(x)`` (eval mode), flattened to float64 on the CPU.

    Parameters
    ----------
    model : SplitModel
        The model.
    x : torch.Tensor, shape (n, *input_shape)
        Inputs.
    batch : int
        Inputs per forward pass.

    Returns
    -------
    torch.Tensor, shape (n, k)
        float64, on the CPU.
    """
    dev = next(model.parameters()).device
    was = model.training
    model.eval()
    try:
        return torch.cat([model.encode(x[i:i + batch].to(dev)).flatten(1).double().cpu()
                          for i in range(0, len(x), batch)])
    finally:
        model.train(was)


def noise_variance(model, d: int) -> np.ndarray | None:
    """Per-dimension Gaussian noise variance of the model's deployed defenses (None: no noise).

    Parameters
    ----------
    model : SplitModel
        The model.
    d : int
        Feature dimension.

    Returns
    -------
    numpy.ndarray, shape (d,), or None
    """
    v = noise_variance_of(getattr(model, "defenses", []), d, dtype=torch.float64)
    return None if v is None else v.numpy()


def conditional_entropy(model, data, *, h_x: float = 0.0, k_per_class: int = 3, covariance: str = "full",
                        methods: Sequence[str] = ("huber", "kl", "maxent"), max_samples: int = 5000,
                        noise_var=None) -> dict:
    """Relative H(x|z) of a trained split model by Theorem 2 (CEM paper Eq. 3) and variants.

    .. math:: H(x|z) \\ge H(x) - U,\\qquad U \\in \\{U_{huber} = L_C,\\ U_{kl},\\ U_{maxent}\\}

    Parameters
    ----------
    model : SplitModel
        Trained; its deployed ``noise`` defense gives Σp (or pass ``noise_var``).
    data : ArrayDataset / DataSplit / (x, y)
        Inputs and labels whose features are modelled (per-class mixture, ``k_per_class`` each).
    h_x : float
        The H(x) used (nats).  Default 0: the uniform law on [0, 1]^d, an upper bound on the
        entropy of any [0, 1]-valued data — so the result is *relative*, not a certified bound.
    k_per_class : int
        Mixture components per class.
    covariance : {'full', 'diag'}
        Covariance type of the components.
    methods : sequence of str
        Which upper bounds U (``huber``, ``kl``, ``maxent``).
    max_samples : int
        Inputs whose features are modelled, shape (n ≤ max_samples, *input_shape).
    noise_var : array_like, shape (k,), or float, optional
        Σp's diagonal (default: the deployed noise defense's).

    Returns
    -------
    dict
        ``{"huber": ..., "kl": ..., "maxent": ..., "h_x": h_x, "d_features": ..., "guarantee": "none",
        "assumptions": str}`` (nats).
    """
    ds = D.as_dataset(data)
    n = min(len(ds), int(max_samples))
    z = encode_all(model, ds.x[:n])
    y = ds.y[:n]
    d = z.shape[1]
    nv = np.asarray(noise_var, dtype=float) if noise_var is not None else noise_variance(model, d)
    if nv is None or np.any(nv <= 0):
        raise ValueError("model: Theorem 2 needs Gaussian noise on the features (add a 'noise' defense "
                         "with sigma > 0 or pass noise_var); without noise I(z; ẑ) is infinite")
    nv = np.broadcast_to(nv, (d,)).astype(float)
    sd = torch.as_tensor(np.sqrt(nv))
    fit = fit_class_mixture(z / sd, y, num_classes=int(y.max()) + 1, k_per_class=k_per_class,
                            covariance=covariance)
    # whitened coordinates: Σp = I, |Σ+Σp|/|Σp| unchanged
    w = fit.weights.numpy()
    w = w / w.sum()
    covs = fit.covs.numpy()  # (k, d, d), or (k, d) variances for covariance="diag"
    means = fit.means.numpy()
    out: dict[str, Any] = {"h_x": float(h_x), "d_features": d, "k": int(len(w)), "guarantee": "none",
                           "assumptions": "ẑ modelled by a fitted per-class Gaussian mixture (estimate); "
                                          f"H(x) replaced by {h_x} (relative)"}
    if covariance == "full":
        ub = tb.mutual_information_upper_bounds(w, means, covs, np.eye(d))
    else:  # declared diagonal: O(K² d) instead of O(K d³)
        ub = tb.mutual_information_upper_bounds(w, means, covs, np.ones(d), structure="diag")
    for m in methods:
        if m not in ub:
            raise ValueError(f"methods: expected names from {sorted(ub)}, got {m!r}")
        out[m] = float(h_x - ub[m])
    return out


def fisher_information(model, data, *, sigma: float | None = None, probes: int = 8, max_samples: int = 256,
                       seed: int = 0) -> dict:
    """dFIL = Tr(J(x)ᵀJ(x)) / (σ² d) of ``z = f(x) + N(0, σ²I)`` (Maeng et al. 2023), averaged over x.

    Hutchinson: ``Tr(JᵀJ) = E_v ‖Jᵀv‖²`` for v ~ N(0, I) in feature space, one vector–Jacobian
    product per probe.  Returns ``{"dfil", "dfil_stderr", "cramer_rao", "cramer_rao_stderr", "sigma",
    "n", "probes"}`` where ``cramer_rao = E_x[1/dFIL(x)]`` is the unbiased-attacker bound on MSE/d.

    Parameters
    ----------
    model : SplitModel
        The trained model (its encoder f).
    data : ArrayDataset, DataSplit or (x, y)
        Inputs x (n, *input_shape).
    sigma : float, optional
        Noise σ (default: the deployed noise defense's).
    probes : int
        Hutchinson probes per input.
    max_samples : int
        Inputs averaged over.
    seed : int
        Seed of the probes.

    Returns
    -------
    dict
    """
    ds = D.as_dataset(data)
    if sigma is None:
        nv = noise_variance(model, 1)
        if nv is None:
            raise ValueError("sigma: the model has no Gaussian noise defense; pass sigma > 0")
        sigma = float(np.sqrt(nv[0]))
    if not sigma > 0:
        raise ValueError(f"sigma: expected a positive noise level, got {sigma!r}")
    dev = next(model.parameters()).device
    g = torch_generator(int(seed), "mc")
    x = ds.x[: int(max_samples)].to(dev)
    d = x[0].numel()
    was = model.training
    model.eval()
    per = []
    try:
        for i in range(0, len(x), 64):
            xb = x[i:i + 64].clone().requires_grad_(True)
            z = model.encode(xb).flatten(1)
            acc = torch.zeros(len(xb), device=dev, dtype=torch.float64)
            for _ in range(probes):
                v = torch.randn(z.shape, generator=g).to(dev, z.dtype)
                (gx,) = torch.autograd.grad(z, xb, v, retain_graph=True)
                acc += gx.flatten(1).double().pow(2).sum(1)
            per.append((acc / probes / (sigma ** 2 * d)).cpu())
    finally:
        model.train(was)
    dfil = torch.cat(per).numpy()
    inv = 1.0 / np.maximum(dfil, 1e-300)
    se = float(dfil.std(ddof=1) / math.sqrt(len(dfil))) if len(dfil) > 1 else 0.0
    return {"dfil": float(dfil.mean()), "dfil_stderr": se, "cramer_rao": float(inv.mean()),
            "cramer_rao_stderr": float(inv.std(ddof=1) / math.sqrt(len(inv))) if len(inv) > 1 else 0.0,
            "sigma": sigma, "n": int(len(dfil)), "probes": probes}
