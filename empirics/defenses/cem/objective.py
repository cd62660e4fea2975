r"""The CEM loss L_C (CEM paper Eq. 7 = the sum subtracted in Theorem 2, Eq. 3), differentiable.

.. math::

    H(x|z) \ge H(x) - \sum_i \pi_i\Big(-\log \pi_i + \tfrac12 \log
    \frac{|\Sigma_i + \Sigma_p|}{|\Sigma_p|}\Big)

for features ẑ ~ Σᵢ πᵢ N(μᵢ, Σᵢ) sent as z = ẑ + ε, ε ~ N(0, Σp).  :func:`cem_objective` is the
sum, in torch so that Algorithm 1 (:mod:`.paper`) can differentiate it; :mod:`theory.bounds`
computes the same number in numpy (``gmm_mutual_information_bound``) and the tests hold the two
equal.
"""

from __future__ import annotations

import torch

__all__ = ["cem_objective"]


def _as_tensor(v, name, dtype=None):
    if isinstance(v, torch.Tensor):
        t = v
    else:
        try:
            t = torch.as_tensor(v, dtype=dtype or torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"{name}: expected a tensor/array of numbers, got {type(v).__name__}") from None
    if not torch.is_floating_point(t):
        t = t.to(dtype or torch.float64)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: expected finite values, got nan/inf")
    return t


def cem_objective(weights, covs, noise_cov) -> torch.Tensor:
    r"""The CEM loss L_C (CEM paper Eq. 7 = the sum subtracted in Theorem 2, Eq. 3).

    .. math::

        L_C = \sum_{i=1}^k \pi_i\Big(-\log \pi_i + \tfrac12 \log
              \frac{|\Sigma_i + \Sigma_p|}{|\Sigma_p|}\Big)

    so that Thm 2 reads ``H(x|z) ≥ H(x) − L_C``.  Differentiable in ``weights`` and ``covs``
    (torch autograd); computed with Cholesky factors (``log|A| = 2 Σ log diag chol(A)``), in the
    dtype of the inputs (use float64 for checks).  Terms with πᵢ = 0 contribute 0.

    Parameters
    ----------
    weights : tensor (k,)
        Mixture weights πᵢ on the simplex.
    covs : tensor (k, d, d) or (k, d)
        Component covariances Σᵢ of the noise-free features (symmetric PSD), or their diagonals.
    noise_cov : tensor (d, d), (d,) or scalar
        Covariance Σp of the Gaussian noise (positive definite): full, diagonal or σ²·I.

    Returns
    -------
    torch.Tensor
        Scalar, in nats.

    Examples
    --------
    One component, Σ = 3·I in d = 2, Σp = I: L_C = ½ log 16 = log 4.

    >>> import torch
    >>> float(cem_objective(torch.tensor([1.0]), 3 * torch.eye(2)[None], 1.0))  # doctest: +ELLIPSIS
    1.386294...
    """
    w = _as_tensor(weights, "weights")
    c = _as_tensor(covs, "covs")
    dtype = torch.promote_types(w.dtype, c.dtype)
    if w.ndim != 1 or w.numel() < 1:
        raise ValueError(f"weights: expected a 1-d tensor of k >= 1 weights, got shape {tuple(w.shape)}")
    k = w.shape[0]
    if bool((w < 0).any()) or abs(float(w.detach().sum()) - 1.0) > 1e-6:
        raise ValueError(f"weights: expected non-negative weights summing to 1, got sum {float(w.detach().sum())!r}")
    if c.ndim not in (2, 3) or c.shape[0] != k or (c.ndim == 3 and c.shape[1] != c.shape[2]):
        raise ValueError(f"covs: expected shape (k, d, d) or (k, d) with k = {k}, got {tuple(c.shape)}")
    d = c.shape[-1]
    p = _as_tensor(noise_cov, "noise_cov").to(dtype=dtype, device=c.device)
    if p.ndim == 0:
        p = p.expand(d)
    if p.ndim == 1:
        if p.shape[0] != d:
            raise ValueError(f"noise_cov: expected {d} variances, got {p.shape[0]}")
        if bool((p <= 0).any()):
            raise ValueError("noise_cov: expected positive noise variances (Thm 2 needs |Σp| > 0), got a value <= 0")
    elif p.shape != (d, d):
        raise ValueError(f"noise_cov: expected shape ({d}, {d}), ({d},) or a scalar, got {tuple(p.shape)}")
    w = w.to(dtype)
    c = c.to(dtype)
    if c.ndim == 2:  # diagonal covariances
        if bool((c < 0).any()):
            raise ValueError("covs: expected non-negative variances, got a negative one")
        pd = p if p.ndim == 1 else torch.diagonal(p)
        if p.ndim == 2 and not torch.allclose(p, torch.diag(pd)):
            c = torch.diag_embed(c)  # full noise with diagonal components: go full
        else:
            half_logdet = 0.5 * torch.log1p(c / pd).sum(-1)
            return _mix(w, half_logdet)
    P = torch.diag(p) if p.ndim == 1 else p
    if not torch.allclose(c, c.transpose(-1, -2), atol=1e-8 * float(c.detach().abs().max() + 1)):
        raise ValueError("covs: expected symmetric matrices")
    Lp, info = torch.linalg.cholesky_ex(P)
    if int(info) != 0:
        raise ValueError("noise_cov: expected a positive-definite matrix (Cholesky failed)")
    L, info = torch.linalg.cholesky_ex(c + P)
    if bool((info != 0).any()):
        raise ValueError("covs: Σᵢ + Σp is not positive definite (a covariance is not PSD)")
    logdet = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    logdet_p = 2 * torch.log(torch.diagonal(Lp)).sum()
    return _mix(w, 0.5 * (logdet - logdet_p))


def _mix(w, half_logdet):
    # π(−log π) with 0·log 0 = 0; the where keeps the gradient finite at π = 0.
    safe = torch.where(w > 0, w, torch.ones_like(w))
    ent = torch.where(w > 0, -w * torch.log(safe), torch.zeros_like(w))
    return (ent + w * half_logdet).sum()

