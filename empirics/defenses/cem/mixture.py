"""The per-class Gaussian-mixture fit of CEM's Algorithm 1 (line 5): EM in torch, float64.

Used by :class:`~empirics.defenses.cem.paper.PaperCEM` for its per-epoch estimate and by
:func:`empirics.measure.conditional_entropy` to estimate H(x|z) of a trained model (the tests hold
it to :class:`sklearn.mixture.GaussianMixture` on the same data).
"""

from __future__ import annotations

import math

import torch

__all__ = ["GaussianMixtureFit", "fit_class_mixture", "init_means"]


class GaussianMixtureFit:
    """A per-class Gaussian mixture of (whitened) features: the output of Alg. 1 line 5.

    Attributes: ``weights (k,)``, ``means (k, d)``, ``covs (k, d, d)`` or ``(k, d)`` (diag),
    ``labels (k,)`` (class of each component), ``n_iter`` (EM iterations run).
    """

    def __init__(self, weights, means, covs, labels, n_iter=0):
        self.weights, self.means, self.covs, self.labels, self.n_iter = weights, means, covs, labels, n_iter

    @property
    def diagonal(self) -> bool:
        return self.covs.ndim == 2


def init_means(x: torch.Tensor, k: int) -> torch.Tensor:
    """Deterministic initialisation (no random numbers): split the points into k quantile
    groups along their first principal direction and take the group means.

    Parameters
    ----------
    x : torch.Tensor, shape (n, d)
        Points.
    k : int
        Number of groups.

    Returns
    -------
    torch.Tensor, shape (k, d)
    """
    xc = x - x.mean(0)
    # power iteration for the top direction (deterministic start)
    v = torch.ones(x.shape[1], dtype=x.dtype, device=x.device) / math.sqrt(x.shape[1])
    for _ in range(20):
        v = xc.T @ (xc @ v)
        nv = torch.linalg.vector_norm(v)
        if float(nv) == 0:
            break
        v = v / nv
    order = torch.argsort(xc @ v)
    groups = torch.tensor_split(order, k)
    return torch.stack([x[g].mean(0) for g in groups])


def _em(x, means, covs, weights, *, n_iter, reg, diagonal, tol=1e-4):
    """Plain EM for one class's mixture; returns (weights, means, covs, iterations)."""
    n, d = x.shape
    k = means.shape[0]
    prev = -math.inf
    it = 0
    for it in range(1, n_iter + 1):
        # E-step: log N(x; μ, Σ) per component
        if diagonal:
            var = covs
            logp = -0.5 * (((x[:, None, :] - means[None]) ** 2 / var[None]).sum(-1)
                           + torch.log(var).sum(-1)[None] + d * math.log(2 * math.pi))
        else:
            L = torch.linalg.cholesky(covs)
            logp = torch.empty(n, k, dtype=x.dtype, device=x.device)
            for j in range(k):
                sol = torch.linalg.solve_triangular(L[j], (x - means[j]).T, upper=False)
                logp[:, j] = -0.5 * ((sol ** 2).sum(0) + 2 * torch.log(torch.diagonal(L[j])).sum()
                                     + d * math.log(2 * math.pi))
        logp = logp + torch.log(weights.clamp_min(1e-300))[None]
        ll = torch.logsumexp(logp, 1)
        r = torch.exp(logp - ll[:, None])
        # M-step
        nk = r.sum(0) + 10 * torch.finfo(x.dtype).eps
        weights = nk / n
        means = (r.T @ x) / nk[:, None]
        if diagonal:
            covs = torch.stack([(r[:, j, None] * (x - means[j]) ** 2).sum(0) / nk[j] for j in range(k)]) + reg
        else:
            eye = torch.eye(d, dtype=x.dtype, device=x.device)
            covs = torch.stack([((x - means[j]).T * r[:, j]) @ (x - means[j]) / nk[j] for j in range(k)]) + reg * eye
        cur = float(ll.mean())
        if abs(cur - prev) < tol * max(1.0, abs(cur)):
            break
        prev = cur
    return weights, means, covs, it


def fit_class_mixture(z: torch.Tensor, y: torch.Tensor, *, num_classes: int, k_per_class: int = 3,
                      covariance: str = "full", reg_covar: float = 1e-6, n_iter: int = 100,
                      warm_start: GaussianMixtureFit | None = None) -> GaussianMixtureFit:
    """Estimate the feature mixture of Alg. 1 line 5: ``k_per_class`` components for each class.

    Parameters
    ----------
    z : tensor (N, d)
        Features (already whitened by the noise when used by :class:`~empirics.defenses.cem.paper.PaperCEM`).
    y : tensor (N,) of int
        Class labels in ``[0, num_classes)``.
    k_per_class : int
        Components per class (paper: k = 3n, i.e. 3 per class).  A class with fewer than
        ``2 k_per_class`` points raises ``ValueError``.
    covariance : {'full', 'diag'}
    reg_covar : float
        Added to every covariance diagonal, times the mean feature variance (explicit
        regularisation; keeps Cholesky factors finite for collapsed features).
    n_iter : int
        Maximum EM iterations per class (stops earlier at relative log-likelihood change 1e-4).
    warm_start : GaussianMixtureFit, optional
        Previous epoch's fit: EM starts from it (Alg. 1 re-estimates each epoch; the features
        move little between epochs, so a few iterations suffice).

    Returns
    -------
    GaussianMixtureFit
        Global weights are class frequency × within-class weight.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> z = torch.cat([torch.randn(100, 2, generator=g, dtype=torch.float64) - 5,
    ...                torch.randn(100, 2, generator=g, dtype=torch.float64) + 5])
    >>> fit = fit_class_mixture(z, torch.zeros(200, dtype=torch.long), num_classes=1, k_per_class=2)
    >>> sorted(round(float(m), 0) for m in fit.means[:, 0])
    [-5.0, 5.0]
    """
    if covariance not in ("full", "diag"):
        raise ValueError(f"covariance: expected 'full' or 'diag', got {covariance!r}")
    if not isinstance(k_per_class, int) or k_per_class < 1:
        raise ValueError(f"k_per_class: expected a positive integer, got {k_per_class!r}")
    if z.ndim != 2 or y.ndim != 1 or z.shape[0] != y.shape[0]:
        raise ValueError(f"z, y: expected shapes (N, d) and (N,), got {tuple(z.shape)} and {tuple(y.shape)}")
    if not bool(torch.isfinite(z).all()):
        raise ValueError("z: features contain nan/inf (did training diverge?)")
    diagonal = covariance == "diag"
    d = z.shape[1]
    scale = float(z.var(0).mean()) if z.shape[0] > 1 else 1.0
    reg = reg_covar * (scale if scale > 0 else 1.0)
    W, M, C, Lb = [], [], [], []
    iters = 0
    N = z.shape[0]
    for c in range(num_classes):
        xc = z[y == c]
        nc = xc.shape[0]
        if nc == 0:
            continue
        if nc < 2 * k_per_class:
            raise ValueError(f"k_per_class: class {c} has {nc} samples, fewer than 2·k_per_class = "
                             f"{2 * k_per_class}; lower k_per_class")
        if warm_start is not None and int((warm_start.labels == c).sum()) == k_per_class \
                and warm_start.means.shape[1] == d and warm_start.diagonal == diagonal:
            sel = warm_start.labels == c
            m0 = warm_start.means[sel].to(xc)
            c0 = warm_start.covs[sel].to(xc)
            w0 = warm_start.weights[sel].to(xc)
            w0 = w0 / w0.sum()
        else:
            m0 = init_means(xc, k_per_class)
            # hard assignment to the nearest initial mean gives the first covariances
            a = torch.cdist(xc, m0).argmin(1)
            cs, ws = [], []
            for j in range(k_per_class):
                pts = xc[a == j]
                if pts.shape[0] < 2:
                    pts = xc
                ws.append(max(pts.shape[0], 1))
                dv = pts - m0[j]
                cs.append((dv ** 2).mean(0) if diagonal else dv.T @ dv / pts.shape[0])
            c0 = torch.stack(cs) + (reg if diagonal else reg * torch.eye(d, dtype=xc.dtype, device=xc.device))
            w0 = torch.tensor(ws, dtype=xc.dtype, device=xc.device)
            w0 = w0 / w0.sum()
        w, m, cv, it = _em(xc, m0, c0, w0, n_iter=n_iter, reg=reg, diagonal=diagonal)
        iters = max(iters, it)
        W.append(w * nc / N)
        M.append(m)
        C.append(cv)
        Lb.append(torch.full((k_per_class,), c, dtype=torch.long, device=z.device))
    return GaussianMixtureFit(torch.cat(W), torch.cat(M), torch.cat(C), torch.cat(Lb), iters)

