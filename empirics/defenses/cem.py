"""Conditional entropy maximization (CEM): Algorithm 1 of Xia et al. (CVPR 2025), faithfully.

The CEM paper (*Theoretical Insights in Model Inversion Robustness and Conditional Entropy
Maximization for Collaborative Inference Systems*) bounds the conditional entropy of the input
given the sent features ``z = ẑ + ε`` (ε ~ N(0, Σp)) by Theorem 2 (Eq. 3)::

    H(x|z) ≥ H(x) − Σᵢ πᵢ (−log πᵢ + ½ log |Σᵢ + Σp| / |Σp|)

where ``Σᵢ πᵢ N(μᵢ, Σᵢ)`` is a Gaussian-mixture model of the deterministic features ``ẑ``.
Algorithm 1 maximizes this bound during training:

* line 5 — once per epoch, estimate the mixture of the features of the whole training set;
* lines 9–12 — per batch, assign each feature vector to the nearest component mean and update
  the weights by Eq. 5, ``πⱼ ← (πⱼ (N − N_batch) + nⱼ) / N``, and the covariances by Eq. 6,
  ``Σⱼ ← (1 − nⱼ/(πⱼN)) Σⱼ + nⱼ/(πⱼN) ΔΣⱼ`` (πⱼ already updated);
* line 14 — the loss L_C of Eq. 7 (= the subtracted sum of Eq. 3), with Σp the covariance of
  the noise actually added by the composed ``noise`` defense;
* line 15 — minimise L_D + λ·L_C (Eq. 8), L_D being the loss of the defense CEM is plugged into.

Choices the paper leaves open (documented here, tested in ``tests/empirics/test_defenses_cem.py``):

1. The mixture models the *noise-free* encoder output ẑ (Thm 2's Σᵢ); fitting the noisy z and
   subtracting Σp can leave an indefinite matrix.  Components are estimated per class
   (``k_per_class`` components for each label, default 3 — the paper's k = 3n), by EM warm
   started from the previous epoch's fit; a point is assigned (Alg. 1 line 9) to the nearest mean
   among the components of its own class.
2. ΔΣⱼ is the second moment of the newly assigned vectors about the component mean μⱼ (about
   the batch mean it would be singular for the typical nⱼ ≈ 4 points per component per batch).
   The gradient of L_C reaches the encoder through ΔΣⱼ only; the stored Σⱼ, πⱼ are constants
   (the running estimate), as in Algorithm 1.
3. Everything is computed in coordinates whitened by the noise, ``z̃ = Σp^{-1/2} z``, where
   ``|Σ+Σp|/|Σp| = |Σ̃ + I|``.  Regularisation is explicit: mixture covariances get
   ``reg_covar · (mean feature variance)`` added to the diagonal (EM, as scikit-learn does);
   when no noise defense is composed, Σp is taken as ``min_noise_var · I`` with a warning
   (without noise I(z; ẑ) is infinite and Thm 2 says nothing).
4. Two equivalent routes for the per-batch log-determinants: ``method="dense"`` (a fresh
   Cholesky of every updated d×d matrix each step — the naive route) and ``method="lowrank"``
   (default): each Σ̃ⱼ is kept as ``Q (c Λ + P Pᵀ) Qᵀ`` with an eigenbasis Q refreshed when the
   accumulated rank of P exceeds ``refresh_rank``; Eq. 6's change has rank ≤ nⱼ, so by the matrix
   determinant lemma ``log|(1−α)Σ̃ + I + UUᵀ| = Σ log((1−α)cλ + 1) + log|I + Wᵀ D⁻¹ W|`` with
   ``W = [√(1−α) P, QᵀU]`` — an (r+nⱼ)×(r+nⱼ) determinant instead of d×d.  The two agree to
   rounding (tested in float64).

``objective="code"`` reproduces, for comparison only, the recipe of the paper's released code as
the project's DESIGN notes (§4 item 5) describe it — no mixture and no log-determinant: per-class
k-means centroids, one scalar variance vⱼ per cluster (mean squared distance of the batch's
assigned vectors to their centroid, per dimension), loss ``Σⱼ (nⱼ/N_batch) log(ReLU(vⱼ −
0.125σ²) + 0.01)`` and λ rescaled by ``0.001/lr``.  It is never mixed with the paper objective.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

from .base import Defense, EpochContext, Step, register

__all__ = ["cem_objective", "GaussianMixtureFit", "fit_class_mixture", "CEM", "noise_variance_of"]


# ----------------------------------------------------------------------------- the objective

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


# ----------------------------------------------------------------------------- mixture estimate

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


def _init_means(x: torch.Tensor, k: int) -> torch.Tensor:
    """Deterministic initialisation (no random numbers): split the points into k quantile
    groups along their first principal direction and take the group means."""
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
        Features (already whitened by the noise when used by :class:`CEM`).
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
            m0 = _init_means(xc, k_per_class)
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


# ----------------------------------------------------------------------------- noise of composed defenses

def noise_variance_of(defenses, d: int, *, device=None, dtype=torch.float32) -> torch.Tensor | None:
    """Per-dimension variance of the Gaussian noise added by ``defenses`` (None when none).

    A defense declares its noise through a ``noise_variance(d) -> tensor (d,)`` method
    (e.g. :class:`empirics.defenses.noise.GaussianNoise`); independent noises add up.
    """
    total = None
    for df in defenses or ():
        f = getattr(df, "noise_variance", None)
        if f is None:
            continue
        v = f(d)
        if v is None:
            continue
        v = torch.as_tensor(v, dtype=dtype, device=device)
        total = v if total is None else total + v
    return total


def _flat(z):
    return z.reshape(z.shape[0], -1)


# ----------------------------------------------------------------------------- the defense

@register
class CEM(Defense):
    """Conditional entropy maximization (CEM paper Algorithm 1), pluggable into any defense.

    Parameters
    ----------
    lam : float
        λ of Eq. 8 (≥ 0; 0 switches CEM off exactly: no feature pass, no random numbers).
        Paper default 16.
    k_per_class : int
        Mixture components per class (paper: k = 3n).
    covariance : {'full', 'diag'}
    objective : {'paper', 'code'}
        ``'paper'``: Eq. 5–8 (default).  ``'code'``: the released-code recipe (module docstring),
        for comparison only.
    method : {'lowrank', 'dense'}
        Route for the per-batch log-determinants (identical values; 'dense' is the naive route).
    em_iters, em_iters_cold : int
        EM iterations of the per-epoch estimate when warm-started / from scratch.
    warm_start : bool
        Start each epoch's EM from the previous fit (False = the naive route: EM from scratch).
    reg_covar : float
        Relative diagonal regularisation of the EM covariances (× mean feature variance).
    min_noise_var : float
        Σp = min_noise_var·I when no noise defense is composed (warning issued).
    refresh_rank : int
        'lowrank' route: re-diagonalise a component when its accumulated rank exceeds this.
    feature_batch : int
        Batch size of the per-epoch feature pass.
    feature_source : {'recompute', 'cached'}
        ``'recompute'`` (default, Alg. 1 line 4): a no-grad pass of the encoder (eval mode) over
        the training set at every epoch start.  ``'cached'``: from the second epoch on, reuse the
        encoder outputs computed during the previous epoch's training steps (each from the
        encoder as it was at that step) — saves the extra pass, departs from line 4.
    """

    name = "cem"

    def __init__(self, lam: float = 16.0, *, k_per_class: int = 3, covariance: str = "full",
                 objective: str = "paper", method: str = "lowrank", em_iters: int = 1,
                 em_iters_cold: int = 25, warm_start: bool = True, reg_covar: float = 1e-6,
                 min_noise_var: float = 1e-4, refresh_rank: int = 96, feature_batch: int = 512,
                 num_classes: int | None = None, feature_source: str = "recompute"):
        try:
            lam = float(lam)
        except (TypeError, ValueError):
            raise ValueError(f"lam: expected a non-negative number, got {lam!r}") from None
        if not math.isfinite(lam) or lam < 0:
            raise ValueError(f"lam: expected a non-negative finite number, got {lam!r}")
        if covariance not in ("full", "diag"):
            raise ValueError(f"covariance: expected 'full' or 'diag', got {covariance!r}")
        if objective not in ("paper", "code"):
            raise ValueError(f"objective: expected 'paper' or 'code', got {objective!r}")
        if method not in ("lowrank", "dense"):
            raise ValueError(f"method: expected 'lowrank' or 'dense', got {method!r}")
        if not isinstance(k_per_class, int) or k_per_class < 1:
            raise ValueError(f"k_per_class: expected a positive integer, got {k_per_class!r}")
        if not (min_noise_var > 0):
            raise ValueError(f"min_noise_var: expected a positive number, got {min_noise_var!r}")
        if not (reg_covar >= 0):
            raise ValueError(f"reg_covar: expected a non-negative number, got {reg_covar!r}")
        if feature_source not in ("recompute", "cached"):
            raise ValueError(f"feature_source: expected 'recompute' or 'cached', got {feature_source!r}")
        self.feature_source = feature_source
        self._cache: list = []
        self.lam = lam
        self.k_per_class = k_per_class
        self.covariance = covariance
        self.objective = objective
        self.method = method
        self.em_iters = int(em_iters)
        self.em_iters_cold = int(em_iters_cold)
        self.warm_start = bool(warm_start)
        self.reg_covar = float(reg_covar)
        self.min_noise_var = float(min_noise_var)
        self.refresh_rank = int(refresh_rank)
        self.feature_batch = int(feature_batch)
        self.num_classes = num_classes
        self._model = None
        self._lr = None
        self.fit: GaussianMixtureFit | None = None
        self.last_loss: float | None = None  # L_C of the latest step (unscaled by λ)
        self.history: list[float] = []  # L_C of every training step so far (kept in checkpoints)
        self._state: dict[str, Any] = {}

    # -- interface ------------------------------------------------------------------------
    @property
    def strength(self) -> float:
        return self.lam

    def config(self) -> dict:
        return {"name": self.name, "strength": self.lam, "lam": self.lam, "k_per_class": self.k_per_class,
                "covariance": self.covariance, "objective": self.objective, "method": self.method,
                "warm_start": self.warm_start}

    def attach(self, model, optimizer, *, data=None):
        self._model = model
        if optimizer is not None and optimizer.param_groups:
            self._lr = float(optimizer.param_groups[0].get("lr", 1e-3))
        return model, optimizer

    # -- noise ---------------------------------------------------------------------------
    def noise_var(self, d, device, dtype) -> torch.Tensor:
        """Σp's diagonal: the composed noise defenses' variance (or the documented floor)."""
        defs = [df for df in getattr(self._model, "defenses", []) if df is not self]
        v = noise_variance_of(defs, d, device=device, dtype=dtype)
        if v is None or bool((v <= 0).any()):
            if not self._state.get("warned_noise"):
                warnings.warn(f"cem: no (positive) Gaussian noise defense composed; Σp = {self.min_noise_var}·I "
                              "is used (Thm 2 needs noise; the bound is then about this floor)", stacklevel=2)
                self._state["warned_noise"] = True
            floor = torch.full((d,), self.min_noise_var, device=device, dtype=dtype)
            v = floor if v is None else torch.maximum(v, floor)
        return v

    # -- Alg. 1 line 4-5 --------------------------------------------------------------------
    @torch.no_grad()
    def _features(self, ctx: EpochContext):
        model = ctx.model
        xs, ys = _tensors_of(ctx.data)
        was = model.training
        model.eval()
        try:
            zs = []
            for i in range(0, xs.shape[0], self.feature_batch):
                zs.append(_flat(model.encode(xs[i:i + self.feature_batch].to(ctx.device))).float())
        finally:
            model.train(was)
        return torch.cat(zs), ys.to(ctx.device)

    def on_epoch_start(self, ctx: EpochContext) -> None:
        if self.lam == 0:
            return
        if self._model is None:
            self._model = ctx.model
        n = len(ctx.data) if hasattr(ctx.data, "__len__") else None
        if self.feature_source == "cached" and self._cache and sum(t[0].shape[0] for t in self._cache) == n:
            z = torch.cat([t[0] for t in self._cache]).float()
            y = torch.cat([t[1] for t in self._cache])
        else:
            z, y = self._features(ctx)
        self._cache = []
        self.estimate(z, y)

    def estimate(self, z: torch.Tensor, y: torch.Tensor) -> None:
        """Per-epoch mixture estimate (Alg. 1 line 5) from features ``z (N, d)`` and labels."""
        z = _flat(z)
        N, d = z.shape
        nc = self.num_classes or int(y.max()) + 1
        self.num_classes = nc
        sd = self.noise_var(d, z.device, z.dtype).sqrt()
        self._state["noise_sd"] = sd
        zt = z / sd  # whitened: |Σ+Σp|/|Σp| = |Σ̃ + I|
        if self.objective == "code":
            cent = []
            for c in range(nc):
                xc = zt[y == c]
                if xc.shape[0] < self.k_per_class:
                    raise ValueError(f"k_per_class: class {c} has {xc.shape[0]} samples, fewer than k_per_class")
                cent.append(_kmeans(xc, self.k_per_class))
            self.fit = GaussianMixtureFit(None, torch.cat(cent), None,
                                          torch.arange(nc, device=z.device).repeat_interleave(self.k_per_class))
            self._state["N"] = N
            return
        warm = self.fit if (self.warm_start and self.fit is not None and self.fit.covs is not None) else None
        fit = fit_class_mixture(zt.double(), y, num_classes=nc, k_per_class=self.k_per_class,
                                covariance=self.covariance, reg_covar=self.reg_covar,
                                n_iter=self.em_iters if warm is not None else self.em_iters_cold,
                                warm_start=warm)
        self.fit = fit
        self._state["N"] = N
        self._reset_running(fit, z.dtype)

    def _reset_running(self, fit, dtype):
        st = self._state
        st["pi"] = fit.weights.to(dtype).clone()
        st["mu"] = fit.means.to(dtype)
        st["labels"] = fit.labels
        k = fit.weights.shape[0]
        if self.covariance == "diag":
            st["var"] = list(fit.covs.to(dtype).clone().unbind(0))
            st["logdet"] = torch.log1p(fit.covs).sum(-1).to(dtype)
        elif self.method == "dense":
            st["cov"] = list(fit.covs.to(dtype).clone().unbind(0))
            L = torch.linalg.cholesky(fit.covs + torch.eye(fit.covs.shape[-1], dtype=fit.covs.dtype))
            st["logdet"] = (2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)).to(dtype)
        else:
            lam, Q = torch.linalg.eigh(fit.covs.to(dtype))  # training dtype (float32 in training, float64 in checks)
            lam = lam.clamp_min(0)
            # lists, replaced (never modified in place) so autograd graphs of past steps stay valid
            st["Q"] = list(Q.to(dtype).unbind(0))
            st["lam"] = list(lam.to(dtype).unbind(0))
            st["c"] = [1.0] * k
            st["P"] = [torch.zeros(Q.shape[-1], 0, dtype=dtype, device=Q.device) for _ in range(k)]
            st["logdet"] = torch.log1p(lam).sum(-1).to(dtype)

    # -- Alg. 1 lines 9-14 ----------------------------------------------------------------
    def extra_loss(self, step: Step):
        if self.lam == 0:
            return None
        if self.fit is None:
            raise ValueError("cem: no mixture estimate yet (on_epoch_start was not called by the training loop)")
        lam = self.lam
        if self.feature_source == "cached":
            self._cache.append((_flat(step.z).detach(), step.y.detach()))
        if self.objective == "code":
            lam = lam * 0.001 / (self._lr or 1e-3)
            loss = self._code_loss(step.z, step.y)
        else:
            loss = self.batch_loss(step.z, step.y)
        if not bool(torch.isfinite(loss)):
            raise ValueError("cem: the conditional-entropy loss L_C is nan/inf (features diverged); "
                             "lower lam or the learning rate")
        self.last_loss = float(loss.detach())
        self.history.append(self.last_loss)
        return lam * loss

    def _assign(self, zt, y):
        st = self._state
        mu, labels = st["mu"], st["labels"]
        dist = torch.cdist(zt.detach().to(mu.dtype), mu)  # (n, k)
        same = labels[None, :] == y[:, None]
        dist = torch.where(same, dist, torch.full_like(dist, math.inf))
        return dist.argmin(1)

    def batch_loss(self, z: torch.Tensor, y: torch.Tensor, *, commit: bool = True) -> torch.Tensor:
        """Eq. 5–7 on one batch: update π (Eq. 5) and Σ (Eq. 6), return L_C (Eq. 7).

        ``z`` are encoder outputs (with gradient), ``y`` labels.  With ``commit=False`` the running
        estimate is left unchanged (for inspection/tests).
        """
        st = self._state
        z = _flat(z)
        sd = st["noise_sd"].to(z)
        zt = z / sd
        a = self._assign(zt, y)
        N = st["N"]
        nb = z.shape[0]
        k = st["pi"].shape[0]
        counts = torch.bincount(a, minlength=k).to(st["pi"])
        pi_new = (st["pi"] * (N - nb) + counts) / N  # Eq. 5
        pi_new = pi_new / pi_new.sum()  # guards rounding (Eq. 5 preserves the sum when Σ counts = nb)
        halfs = [None] * k
        new_logdet = st["logdet"].clone()
        touched = torch.nonzero(counts > 0).flatten().tolist()
        commits = []
        for j in touched:
            idx = torch.nonzero(a == j).flatten()
            nj = idx.numel()
            alpha = float(counts[j] / (pi_new[j] * N))  # n_j / (π_j N), Eq. 6
            alpha = min(alpha, 1.0)
            dv = zt[idx] - st["mu"][j].to(zt)  # (nj, d), about the component mean
            if self.covariance == "diag":
                dvar = (dv ** 2).mean(0)
                var_new = (1 - alpha) * st["var"][j].to(zt) + alpha * dvar
                ld = torch.log1p(var_new).sum()
                commits.append(("var", j, var_new.detach()))
            elif self.method == "dense":
                dS = dv.T @ dv / nj
                S = (1 - alpha) * st["cov"][j].to(zt) + alpha * dS
                eye = torch.eye(S.shape[0], dtype=S.dtype, device=S.device)
                L, info = torch.linalg.cholesky_ex(S + eye)
                if int(info) != 0:
                    raise ValueError("cem: covariance update is not positive definite (nan features?)")
                ld = 2 * torch.log(torch.diagonal(L)).sum()
                commits.append(("cov", j, S.detach()))
            else:
                Q, lamv, c = st["Q"][j].to(zt), st["lam"][j].to(zt), float(st["c"][j])
                Pold = st["P"][j].to(zt)
                U = dv.T * math.sqrt(alpha / nj)  # (d, nj): α ΔΣ = U Uᵀ
                Ut = Q.T @ U
                D = (1 - alpha) * c * lamv + 1.0
                W = torch.cat([math.sqrt(1 - alpha) * Pold, Ut], 1)
                Wd = W / D.sqrt()[:, None]
                G = Wd.T @ Wd
                G = G + torch.eye(G.shape[0], dtype=G.dtype, device=G.device)
                L, info = torch.linalg.cholesky_ex(G)
                if int(info) != 0:
                    raise ValueError("cem: low-rank update is not positive definite (nan features?)")
                ld = torch.log(D).sum() + 2 * torch.log(torch.diagonal(L)).sum()
                commits.append(("lr", j, (1 - alpha) * c, W.detach()))
            halfs[j] = 0.5 * ld
            new_logdet[j] = ld.detach()
        # Eq. 7 with the updated π, Σ (untouched components: constants)
        loss = z.new_zeros(())
        for j in range(k):
            p = float(pi_new[j])
            if p <= 0:
                continue
            h = halfs[j] if halfs[j] is not None else 0.5 * new_logdet[j].to(z)
            loss = loss + p * (-math.log(p) + h)
        if commit:
            st["pi"] = pi_new
            st["logdet"] = new_logdet
            for item in commits:
                if item[0] == "var":
                    st["var"][item[1]] = item[2]
                elif item[0] == "cov":
                    st["cov"][item[1]] = item[2]
                else:
                    _, j, cnew, W = item
                    st["c"][j] = cnew
                    if W.shape[1] > self.refresh_rank:
                        self._refresh(j, W)
                    else:
                        st["P"][j] = W
        return loss

    def _refresh(self, j, W):
        """Re-diagonalise component j: Σ̃ = Q (cΛ + WWᵀ) Qᵀ → new eigenbasis, rank reset to 0."""
        st = self._state
        S = torch.diag(st["c"][j] * st["lam"][j].to(W)) + W @ W.T
        S = 0.5 * (S + S.T)
        lam, R = torch.linalg.eigh(S)
        st["Q"][j] = st["Q"][j].to(W) @ R
        st["lam"][j] = lam.clamp_min(0)
        st["c"][j] = 1.0
        st["P"][j] = W.new_zeros(W.shape[0], 0)

    def current_mixture(self):
        """(weights, covs, noise variance) of the running estimate in original coordinates."""
        st = self._state
        sd = st["noise_sd"]
        if self.covariance == "diag":
            covs = torch.stack(st["var"]) * sd ** 2
        elif self.method == "dense":
            covs = torch.stack(st["cov"]) * sd[:, None] * sd[None, :]
        else:
            covs = torch.stack([st["Q"][j] @ (torch.diag(st["c"][j] * st["lam"][j]) + st["P"][j] @ st["P"][j].T)
                                @ st["Q"][j].T for j in range(st["pi"].shape[0])])
            covs = covs * sd[:, None] * sd[None, :]
        return st["pi"], covs, sd ** 2

    # -- released-code recipe ---------------------------------------------------------------
    def _code_loss(self, z, y):
        st = self._state
        z = _flat(z)
        sd = st["noise_sd"].to(z)
        sigma2 = float((sd ** 2).mean())
        cent = self.fit.means.to(z)
        labels = self.fit.labels
        dist = torch.cdist(z.detach(), cent * sd)
        dist = torch.where(labels[None, :] == y[:, None], dist, torch.full_like(dist, math.inf))
        a = dist.argmin(1)
        loss = z.new_zeros(())
        nb = z.shape[0]
        for j in torch.unique(a).tolist():
            pts = z[a == j]
            v = ((pts - cent[j] * sd) ** 2).mean()
            loss = loss + pts.shape[0] / nb * torch.log(torch.relu(v - 0.125 * sigma2) + 0.01)
        return loss

    # -- checkpointing ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"fit": None if self.fit is None else {k: getattr(self.fit, k) for k in
                                                         ("weights", "means", "covs", "labels")},
                "num_classes": self.num_classes, "history": list(self.history)}

    def load_state_dict(self, state: dict) -> None:
        f = state.get("fit")
        self.fit = None if f is None else GaussianMixtureFit(f["weights"], f["means"], f["covs"], f["labels"])
        self.num_classes = state.get("num_classes")
        self.history = [float(v) for v in state.get("history", [])]


def _kmeans(x, k, iters=20):
    m = _init_means(x, k)
    for _ in range(iters):
        a = torch.cdist(x, m).argmin(1)
        new = torch.stack([x[a == j].mean(0) if bool((a == j).any()) else m[j] for j in range(k)])
        if torch.allclose(new, m):
            break
        m = new
    return m


def _tensors_of(data):
    """(inputs, labels) tensors of a training set given as a pair, a TensorDataset or an object
    with ``x``/``y`` (or ``X``/``y``) attributes."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        return data[0], data[1]
    tensors = getattr(data, "tensors", None)
    if tensors is not None and len(tensors) >= 2:
        return tensors[0], tensors[1]
    for xa, ya in (("x", "y"), ("X", "y"), ("inputs", "targets"), ("data", "targets")):
        if hasattr(data, xa) and hasattr(data, ya):
            x, y = getattr(data, xa), getattr(data, ya)
            return torch.as_tensor(x), torch.as_tensor(y)
    try:
        xs, ys = zip(*[data[i] for i in range(len(data))])
        return torch.stack([torch.as_tensor(v) for v in xs]), torch.as_tensor(ys)
    except Exception:
        raise ValueError(f"data: cannot read (inputs, labels) from a {type(data).__name__}") from None
