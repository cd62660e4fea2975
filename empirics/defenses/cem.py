"""Conditional entropy maximization (CEM): Algorithm 1 of Xia et al. (CVPR 2025), with the
departures listed below, and — separately — the recipe of the authors' released code.

The CEM paper (*Theoretical Insights in Model Inversion Robustness and Conditional Entropy
Maximization for Collaborative Inference Systems*) bounds the conditional entropy of the input
given the sent features ``z = ẑ + ε`` (ε ~ N(0, Σp)) by Theorem 2 (Eq. 3)::

    H(x|z) ≥ H(x) − Σᵢ πᵢ (−log πᵢ + ½ log |Σᵢ + Σp| / |Σp|)

where ``Σᵢ πᵢ N(μᵢ, Σᵢ)`` is a Gaussian-mixture model of the deterministic features ``ẑ``.
Algorithm 1 maximizes this bound during training:

* lines 4–5 — once per epoch, collect the *noisy* features ``z = F_e(x) + ε`` of the whole
  training set and fit a k-component mixture ``Σ πⱼ N(μⱼ, Σⱼ + Σp)`` to them (GMM);
* lines 9–12 — per batch, assign each feature vector to the nearest component mean (among all
  k components) and update the weights by Eq. 5, ``πⱼ ← (πⱼ (N − N_batch) + nⱼ) / N``, and the
  covariances by Eq. 6, ``Σⱼ ← (1 − nⱼ/(πⱼN)) Σⱼ + nⱼ/(πⱼN) ΔΣⱼ`` (πⱼ already updated);
* line 14 — the loss L_C of Eq. 7 (= the subtracted sum of Eq. 3), with Σp the covariance of
  the noise actually added by the composed ``noise`` defense;
* line 15 — minimise L_D + λ·L_C (Eq. 8), L_D being the loss of the defense CEM is plugged into.

In your own loop: ``defended = defend(encoder=..., defenses=["noise:sigma=0.025", "cem:lam=16"],
optimizer=..., data=train_set)`` and ``loss = task_loss + defended.loss(y)``
(:mod:`empirics.defenses.defended`); Σp is the noise of the defenses composed in that call.

``objective="paper"`` (default) implements Eq. 5–8.  It departs from Algorithm 1 in three ways
(each a departure, not a reading of the text):

(a) *Noise-free features.*  Lines 4–5 fit the noisy z; we fit the noise-free encoder output ẑ and
    use its covariances as Thm 2's Σⱼ directly (fitting z and subtracting Σp can leave an
    indefinite matrix).
(b) *Assignment within the point's own class.*  Components are estimated per class
    (``k_per_class`` for each label, default 3 — the paper's k = 3n) and a point is assigned to
    the nearest mean among the components of its own class; line 9 has no such restriction.
    (The released code restricts assignment to the own class in the same way.)
(c) *No per-epoch GMM fit.*  Line 5 fits a mixture each epoch; we run ``em_iters`` EM iterations
    (default 1) warm-started from the previous epoch's fit (``em_iters_cold`` = 25 iterations from
    a deterministic start in the first epoch, or with ``warm_start=False``).  After the first
    epoch the estimate is therefore one EM step from the last one, not a converged fit.

Choices the paper leaves open (tested in ``tests/empirics/test_defenses_cem.py``):

1. ΔΣⱼ is the second moment of the newly assigned vectors about the component mean μⱼ (about
   the batch mean it would be singular for the typical nⱼ ≈ 4 points per component per batch).
   The gradient of L_C reaches the encoder through ΔΣⱼ only; the stored Σⱼ, πⱼ are constants
   (the running estimate), as in Algorithm 1.
2. Everything is computed in coordinates whitened by the noise, ``z̃ = Σp^{-1/2} z``, where
   ``|Σ+Σp|/|Σp| = |Σ̃ + I|``.  Regularisation is explicit: mixture covariances get
   ``reg_covar · (mean feature variance)`` added to the diagonal (EM, as scikit-learn does);
   when no noise defense is composed, Σp is taken as ``min_noise_var · I`` with a warning
   (without noise I(z; ẑ) is infinite and Thm 2 says nothing).
3. Two equivalent routes for the per-batch log-determinants: ``method="dense"`` (a fresh
   Cholesky of every updated d×d matrix each step — the naive route) and ``method="lowrank"``
   (default): each Σ̃ⱼ is kept as ``Q (c Λ + P Pᵀ) Qᵀ`` with an eigenbasis Q refreshed when the
   accumulated rank of P exceeds ``refresh_rank``; Eq. 6's change has rank ≤ nⱼ, so by the matrix
   determinant lemma ``log|(1−α)Σ̃ + I + UUᵀ| = Σ log((1−α)cλ + 1) + log|I + Wᵀ D⁻¹ W|`` with
   ``W = [√(1−α) P, QᵀU]`` — an (r+nⱼ)×(r+nⱼ) determinant instead of d×d.  The two agree to
   rounding (tested in float64).

``objective="code"`` reproduces, for comparison only and never mixed with the paper objective,
the recipe of the released code (github.com/xiasong0501/CEM, read at commit 5ddd1fd): the trainer
its scripts run, ``model_training_paral_pruning.MIA_train`` (built by ``main_MIA.py`` and
``main_test_MIA.py``; functions ``__call__``, ``kmeans_cuda``, ``compute_class_means``,
``train_target_step``) — not ``model_training.py``.  It computes no mixture and no
log-determinant (:func:`code_objective`, :func:`fit_class_kmeans`):

* *Per-class k-means* on the noise-free features (raw coordinates, flattened) with
  ``clusters_per_class`` clusters (released: 5 when the architecture name contains "sgm", as in
  its ``run_exp.sh`` with ``vgg11_bn_sgm``; 15 otherwise), at most ``kmeans_iters`` = 50 Lloyd
  iterations, warm-started from the previous fit.  The released code refits at the *end* of each
  epoch, on a fresh eval-mode pass of the encoder, for use in the next epoch; there is no CEM
  loss in epoch 1.  With ``feature_source="recompute"`` and a training set we refit at the next
  epoch's first step (``on_epoch_start``), whose pass sees the encoder exactly as the previous
  epoch left it; when the features are cached we refit at the epoch's end (``on_epoch_end``).
  The first ``on_epoch_start`` fits nothing and epoch 1 has no CEM loss.
* *Epoch statistics per cluster j of class c*: weight wⱼ = nⱼ/N_c (cluster size over class size
  in the epoch pass) and variance Vⱼ = mean over the cluster's points and dimensions of
  (ẑ − μⱼ)².
* *Per batch*, each point goes to the nearest centroid of its own class; for each class present
  and each cluster present in the batch, the batch variance vᵦ (same mean of squares over the
  cluster's batch points) is blended with the epoch variance:
  ``v = β vᵦ + (1 − β) Vⱼ`` with ``β = scaling_lambda · n_bⱼ / (wⱼ · C)`` (C = N/num_classes,
  the nominal class size; ``scaling_lambda`` = 10), and ``β = 0.99`` when that ratio is ≥ 1
  (the released test is ``if β >= 1: β = 0.99``, so a ratio in (0.99, 1) is kept as it is).
* *The term* ``wⱼ · ReLU(log(v + γ) − log(t σ² + γ))`` with γ = ``gamma`` = 0.01, t =
  ``var_threshold`` (released default 0.1; its ``run_exp.sh`` passes 0.125) and σ² the noise
  variance (the mean over dimensions when the composed noise is not isotropic) — zero below the
  threshold.  Summed over the clusters present, summed over the classes present and divided by
  the number of classes present.
* *The scale*: λ·0.001/lr with lr the optimizer's current (scheduled) learning rate, and plain
  λ once lr < 0.00041 (the released code applies it to the encoder's gradient, which is the same
  thing: the term depends on the encoder only).  Without an attached optimizer: plain λ.
* ``released_indexing=True`` reproduces the released code's indexing, a bug, off by default:
  for the m-th class present in the batch, the weights and epoch variances are those of the
  class of the m-th row of the label-sorted batch (usually the batch's lowest class), and the
  per-cluster lists are compacted over non-empty clusters (weights over clusters with ≥ 2
  points) and padded (the last variance; weight 0.01), so they shift when a cluster is empty.

Departures of ``objective="code"`` from the released trainer: the first k-means starts from a
deterministic split (released: k-means++ from the global RNG); the epoch pass covers the training
set once in order (released: ``num_batches`` full batches drawn from the training iterator); the
nominal class size is N/num_classes (released: ⌈N/B⌉·B/num_classes); the released branch for
fine-tuning from a checkpoint (plain λ at every lr) and its 16×16 pooling switch (off in the
released runs) are not reproduced; a class seen with ≤ ``clusters_per_class`` points and no
previous fit raises ``ValueError`` (released: NaN centroids); without a noise defense the
``min_noise_var`` floor is σ² (with a warning; the released trainer fits no k-means when σ = 0,
its centroids staying NaN placeholders).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

from ._util import data_len as _data_len, iter_batches
from .base import Defense, EpochContext, Step, register

__all__ = ["cem_objective", "GaussianMixtureFit", "fit_class_mixture", "CEM", "noise_variance_of",
           "KMeansFit", "fit_class_kmeans", "code_objective", "code_lambda"]


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


# ----------------------------------------------------------------------------- released-code recipe

#: the released code's learning-rate rule: λ·LR_REF/lr while lr ≥ LR_SWITCH, plain λ below
LR_REF = 0.001
LR_SWITCH = 0.00041
#: the released blend weight is capped by setting it to this value when the ratio reaches 1
BLEND_CAP = 0.99


class KMeansFit:
    """Per-class k-means of the features: the epoch statistics of the released-code recipe.

    Attributes (C classes, K clusters per class, d feature dimensions):
    ``centroids (C, K, d)``; ``counts (C, K)`` points per cluster in the epoch pass;
    ``variances (C, K)`` mean over a cluster's points and dimensions of (ẑ − μⱼ)² (0 when empty);
    ``present (C,)`` whether the class had points; ``class_size`` = N/C, the nominal class size
    of the blend weight; ``n_iter`` the most Lloyd iterations any class ran.
    """

    def __init__(self, centroids, counts, variances, present, class_size, n_iter=0):
        self.centroids, self.counts, self.variances = centroids, counts, variances
        self.present, self.class_size, self.n_iter = present, float(class_size), n_iter

    @property
    def weights(self) -> torch.Tensor:
        """wⱼ = nⱼ / N_c per class (rows of absent classes are 0)."""
        tot = self.counts.sum(1, keepdim=True)
        return self.counts.to(self.variances.dtype) / tot.clamp_min(1).to(self.variances.dtype)

    def released_tables(self, c: int):
        """(weights, variances) of class ``c`` as the released ``kmeans_cuda`` returns them:
        variances listed over the non-empty clusters and padded with the last one, weights
        listed over the clusters with ≥ 2 points and padded with 0.01 — so entry j belongs to
        cluster j only when no cluster is empty (or, for weights, a singleton)."""
        n, v = self.counts[c], self.variances[c]
        k = n.shape[0]
        nc = float(n.sum())
        var = [v[j] for j in range(k) if int(n[j]) > 0]
        w = [float(n[j]) / nc for j in range(k) if int(n[j]) > 1]
        var = var + [var[-1]] * (k - len(var))
        w = w + [0.01] * (k - len(w))
        return torch.tensor(w, dtype=v.dtype, device=v.device), torch.stack(var)

    def to_state(self) -> dict:
        return {"centroids": self.centroids, "counts": self.counts, "variances": self.variances,
                "present": self.present, "class_size": self.class_size, "n_iter": int(self.n_iter)}

    @classmethod
    def from_state(cls, st: dict) -> "KMeansFit":
        return cls(st["centroids"], st["counts"], st["variances"], st["present"], st["class_size"],
                   st.get("n_iter", 0))


def _lloyd(x, m, n_iter):
    """Lloyd iterations from the centroids ``m``: at most ``n_iter`` centroid updates, stopping
    when the assignment no longer changes; an empty cluster keeps its centroid.  Returns
    ``(m, a, updates)`` with ``m`` the means of the clusters of ``a`` (as the released loop)."""
    m = m.clone()
    a = torch.cdist(x, m).argmin(1)
    it = 0
    for it in range(1, n_iter + 1):
        for j in torch.unique(a).tolist():
            m[j] = x[a == j].mean(0)
        new = torch.cdist(x, m).argmin(1)
        if it == n_iter or torch.equal(new, a):
            break
        a = new
    return m, a, it


def fit_class_kmeans(z: torch.Tensor, y: torch.Tensor, *, num_classes: int, clusters_per_class: int = 5,
                     n_iter: int = 50, warm_start: KMeansFit | None = None) -> KMeansFit:
    """Per-class k-means of the features, as the released CEM trainer fits it each epoch.

    Released code: ``model_training_paral_pruning.MIA_train.kmeans_cuda`` (called from
    ``__call__`` after each epoch with ``num_iterations=50``, warm-started from the previous
    epoch's centroids).  For each class c with N_c points: Lloyd iterations (at most ``n_iter``;
    stop when the assignment is unchanged; an empty cluster keeps its centroid), then per
    cluster the count nⱼ, the weight nⱼ/N_c and the scalar variance
    Vⱼ = mean_{i∈j, dims}(zᵢ − μⱼ)².  A class with ≤ ``clusters_per_class`` points keeps the
    previous fit (as released) or, without one, raises ``ValueError``.

    Parameters
    ----------
    z : tensor (N, ...)
        Noise-free features (flattened to (N, d)).
    y : tensor (N,) of int
        Labels in ``[0, num_classes)``.
    clusters_per_class : int
        K (released: 5 for "sgm" architectures, 15 otherwise).
    n_iter : int
        Maximum Lloyd iterations (released: 50).
    warm_start : KMeansFit, optional
        Previous fit; its centroids start the iterations.  Without it the start is deterministic
        (quantile groups along the first principal direction; released: k-means++).

    Returns
    -------
    KMeansFit
        With ``class_size = N / num_classes``.

    Examples
    --------
    Two tight groups in one class: centroids at the group means, weights 2/5 and 3/5, variance
    mean((±0.1)²) = 0.01 in each.

    >>> import torch
    >>> z = torch.tensor([[0.9], [1.1], [4.9], [5.1], [5.0]], dtype=torch.float64)
    >>> fit = fit_class_kmeans(z, torch.zeros(5, dtype=torch.long), num_classes=1, clusters_per_class=2)
    >>> fit.centroids[0, :, 0].tolist(), fit.weights[0].tolist()
    ([1.0, 5.0], [0.4, 0.6])
    >>> [round(v, 12) for v in fit.variances[0].tolist()]
    [0.01, 0.006666666667]
    """
    if not isinstance(clusters_per_class, int) or isinstance(clusters_per_class, bool) or clusters_per_class < 1:
        raise ValueError(f"clusters_per_class: expected a positive integer, got {clusters_per_class!r}")
    if not isinstance(n_iter, int) or isinstance(n_iter, bool) or n_iter < 1:
        raise ValueError(f"n_iter: expected a positive integer, got {n_iter!r}")
    z = _flat(z)
    if y.ndim != 1 or z.shape[0] != y.shape[0]:
        raise ValueError(f"z, y: expected N feature rows and N labels, got {tuple(z.shape)} and {tuple(y.shape)}")
    if not bool(torch.isfinite(z).all()):
        raise ValueError("z: features contain nan/inf (did training diverge?)")
    K, d = clusters_per_class, z.shape[1]
    if warm_start is not None and tuple(warm_start.centroids.shape) != (num_classes, K, d):
        warm_start = None
    cent = torch.zeros(num_classes, K, d, dtype=z.dtype, device=z.device)
    counts = torch.zeros(num_classes, K, dtype=torch.long, device=z.device)
    var = torch.zeros(num_classes, K, dtype=z.dtype, device=z.device)
    present = torch.zeros(num_classes, dtype=torch.bool, device=z.device)
    iters = 0
    for c in range(num_classes):
        xc = z[y == c]
        nc = xc.shape[0]
        warm = warm_start is not None and bool(warm_start.present[c])
        if nc <= K:
            if warm:  # released: a class with ≤ K points is not refitted
                cent[c] = warm_start.centroids[c].to(z)
                counts[c] = warm_start.counts[c].to(counts)
                var[c] = warm_start.variances[c].to(z)
                present[c] = True
            elif nc > 0:
                raise ValueError(f"clusters_per_class: class {c} has {nc} samples, need more than "
                                 f"clusters_per_class = {K}; lower clusters_per_class")
            continue
        m0 = warm_start.centroids[c].to(z) if warm else _init_means(xc, K)
        m, a, it = _lloyd(xc, m0, n_iter)
        iters = max(iters, it)
        cent[c] = m
        present[c] = True
        counts[c] = torch.bincount(a, minlength=K)
        for j in torch.unique(a).tolist():
            var[c, j] = ((xc[a == j] - m[j]) ** 2).mean()
    return KMeansFit(cent, counts, var, present, z.shape[0] / num_classes, iters)


def code_objective(z: torch.Tensor, y: torch.Tensor, fit: KMeansFit, *, noise_var: float,
                   var_threshold: float = 0.1, scaling_lambda: float = 10.0, gamma: float = 0.01,
                   released_indexing: bool = False) -> torch.Tensor:
    r"""The released CEM code's loss on one batch (``MIA_train.compute_class_means``), unscaled.

    .. math::

        L = \frac{1}{|\mathcal C_b|}\sum_{c\in\mathcal C_b}\sum_{j\in\mathcal J_{b,c}} w_j\,
            \mathrm{ReLU}\big(\log(v_j + \gamma) - \log(t\sigma^2 + \gamma)\big),\qquad
        v_j = \beta_j v_{b,j} + (1-\beta_j) V_j,\quad
        \beta_j = \begin{cases} s\,n_{b,j}/(w_j C) & \text{if} < 1\\ 0.99 & \text{otherwise}\end{cases}

    with 𝒞_b the classes present in the batch, 𝒥_{b,c} the clusters of class c that receive a
    batch point (nearest centroid of the point's own class), n_{b,j} their batch counts,
    v_{b,j} the mean over those points and all dimensions of (z − μⱼ)², wⱼ = nⱼ/N_c and Vⱼ the
    epoch statistics of ``fit``, C = ``fit.class_size``, s = ``scaling_lambda``, t =
    ``var_threshold``, σ² = ``noise_var``.  Differentiable in ``z``; the centroids and epoch
    statistics are constants.  A cluster with wⱼ = 0 (empty in the epoch fit) contributes 0.

    ``released_indexing=True`` reproduces the released indexing bug: for the m-th class of
    𝒞_b (in increasing order) wⱼ and Vⱼ come from the class of the m-th row of the label-sorted
    batch, in the compacted lists of :meth:`KMeansFit.released_tables`.

    Examples
    --------
    One class, one cluster at 0 with w = 1, V = 1, C = 100; a batch of two points ±1 (v_b = 1),
    β = 10·2/100 = 0.2, v = 1: L = log(1.01) − log(0.1·0.25 + 0.01) = log(1.01/0.035).

    >>> import torch
    >>> f64 = torch.float64
    >>> fit = KMeansFit(torch.zeros(1, 1, 1, dtype=f64), torch.tensor([[100]]), torch.ones(1, 1, dtype=f64),
    ...                 torch.tensor([True]), 100.0)
    >>> L = code_objective(torch.tensor([[1.0], [-1.0]], dtype=f64), torch.tensor([0, 0]), fit, noise_var=0.25)
    >>> print(f"{float(L):.12f}", f"{math.log(1.01 / 0.035):.12f}")
    3.362357548346 3.362357548346
    """
    z = _flat(z)
    if y.ndim != 1 or y.shape[0] != z.shape[0]:
        raise ValueError(f"y: expected {z.shape[0]} labels, got shape {tuple(y.shape)}")
    if not (noise_var >= 0) or not (var_threshold >= 0):
        raise ValueError(f"noise_var, var_threshold: expected non-negative numbers, got {noise_var!r}, "
                         f"{var_threshold!r}")
    floor = math.log(var_threshold * noise_var + gamma)
    classes = torch.unique(y).tolist()  # sorted, as np.unique in the released code
    rows_sorted = torch.sort(y).values.tolist()
    weights = fit.weights
    loss = z.new_zeros(())
    for m, c in enumerate(classes):
        if c >= fit.present.shape[0] or not bool(fit.present[c]):
            raise ValueError(f"y: class {c} has no clusters in the epoch fit")
        zc = z[y == c]
        cent = fit.centroids[c].to(zc)
        a = torch.cdist(zc.detach(), cent).argmin(1)
        if released_indexing:
            src = rows_sorted[m]
            w_tab, v_tab = fit.released_tables(src)
        else:
            w_tab, v_tab = weights[c], fit.variances[c]
        for j in torch.unique(a).tolist():
            w = float(w_tab[j])
            if w <= 0:
                continue
            pts = zc[a == j]
            vb = ((pts - cent[j]) ** 2).mean()
            beta = scaling_lambda * pts.shape[0] / (w * fit.class_size)
            if beta >= 1:
                beta = BLEND_CAP
            v = beta * vb + (1 - beta) * float(v_tab[j])
            loss = loss + w * torch.relu(torch.log(v + gamma) - floor)
    return loss / len(classes)


def code_lambda(lam: float, lr: float | None) -> float:
    """The released code's effective weight: λ·0.001/lr while lr ≥ 0.00041, else λ (and λ when
    no learning rate is known).  Released: ``MIA_train.train_target_step`` (``get_last_lr()`` of
    the training scheduler, i.e. the current scheduled lr).

    >>> code_lambda(16.0, 0.05), code_lambda(16.0, 0.0004)
    (0.32, 16.0)
    """
    if lr is None or lr < LR_SWITCH:
        return float(lam)
    return float(lam) * LR_REF / float(lr)


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
        ``'paper'``: Eq. 5–8 (default).  ``'code'``: the released-code recipe (module docstring,
        :func:`code_objective`), for comparison only; it uses the settings below and ignores
        ``k_per_class``, ``covariance``, ``method`` and the EM settings.
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
        encoder as it was at that step; refit at the epoch's end) — saves the extra pass,
        departs from line 4.  When the loop gives no training set (``defend`` without
        ``data``) the features are always cached: the first epoch needs an estimate made by
        :meth:`estimate` (``objective="paper"``; ``"code"`` has no loss in epoch 1 anyway).
    clusters_per_class : int
        ``objective="code"``: k-means clusters per class (default 5, the released value for the
        "sgm" architectures its ``run_exp.sh`` runs; 15 for its other architectures).
    var_threshold : float
        ``objective="code"``: t of the floor log(t·σ² + γ) (released default 0.1; its
        ``run_exp.sh`` passes 0.125).
    scaling_lambda : float
        ``objective="code"``: s of the blend weight s·n_bⱼ/(wⱼ·C) (released: 10).
    gamma : float
        ``objective="code"``: γ inside both logarithms (released: 0.01).
    kmeans_iters : int
        ``objective="code"``: maximum Lloyd iterations of the per-epoch k-means (released: 50).
    released_indexing : bool
        ``objective="code"``: reproduce the released code's class-counter indexing of the
        weights and epoch variances (a bug; off by default; see :func:`code_objective`).
    """

    name = "cem"
    needs_labels = True

    def __init__(self, lam: float = 16.0, *, k_per_class: int = 3, covariance: str = "full",
                 objective: str = "paper", method: str = "lowrank", em_iters: int = 1,
                 em_iters_cold: int = 25, warm_start: bool = True, reg_covar: float = 1e-6,
                 min_noise_var: float = 1e-4, refresh_rank: int = 96, feature_batch: int = 512,
                 num_classes: int | None = None, feature_source: str = "recompute",
                 clusters_per_class: int = 5, var_threshold: float = 0.1, scaling_lambda: float = 10.0,
                 gamma: float = 0.01, kmeans_iters: int = 50, released_indexing: bool = False):
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
        for nm, v in (("clusters_per_class", clusters_per_class), ("kmeans_iters", kmeans_iters)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{nm}: expected a positive integer, got {v!r}")
        for nm, v in (("var_threshold", var_threshold), ("scaling_lambda", scaling_lambda)):
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{nm}: expected a non-negative finite number, got {v!r}")
        if not isinstance(gamma, (int, float)) or not math.isfinite(gamma) or gamma <= 0:
            raise ValueError(f"gamma: expected a positive finite number, got {gamma!r}")
        self.clusters_per_class = clusters_per_class
        self.var_threshold = float(var_threshold)
        self.scaling_lambda = float(scaling_lambda)
        self.gamma = float(gamma)
        self.kmeans_iters = kmeans_iters
        self.released_indexing = bool(released_indexing)
        self.kmeans: KMeansFit | None = None  # objective="code": the epoch's k-means statistics
        self.steps = 0  # training steps seen by extra_loss (epoch 1 of the code recipe: no fit yet)
        self._optimizer = None
        self.feature_source = feature_source
        self._cache: list = []  # (features, labels) of the epoch's steps, when caching
        self._fresh = False  # the estimate was made after the last epoch's steps: keep it at the next start
        self._no_data = False  # the loop gave no training set: estimates come from the cached features
        self._loaded: dict = {}  # N and dtype of a loaded estimate (to rebuild its running state)
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
        cfg = {"name": self.name, "strength": self.lam, "lam": self.lam, "k_per_class": self.k_per_class,
               "covariance": self.covariance, "objective": self.objective, "method": self.method,
               "warm_start": self.warm_start}
        if self.objective == "code":
            cfg.update(clusters_per_class=self.clusters_per_class, var_threshold=self.var_threshold,
                       scaling_lambda=self.scaling_lambda, gamma=self.gamma, kmeans_iters=self.kmeans_iters,
                       released_indexing=self.released_indexing)
        return cfg

    def attach(self, model, optimizer, *, data=None):
        self._model = model
        self._optimizer = optimizer
        return model, optimizer

    def current_lr(self) -> float | None:
        """The attached optimizer's current (scheduled) learning rate, read at every step
        (``param_groups[0]``); ``None`` when no optimizer is attached."""
        opt = self._optimizer
        if opt is not None and getattr(opt, "param_groups", None):
            return float(opt.param_groups[0]["lr"])
        return self._lr

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
        """Noise-free features of the whole training set, encoder in eval mode (Alg. 1 line 4)."""
        model = ctx.model
        was = model.training
        model.eval()
        try:
            zs, ys = [], []
            for x, y in iter_batches(ctx.data, self.feature_batch):
                zs.append(_flat(model.encode(x.to(ctx.device))).float())
                ys.append(torch.as_tensor(y).to(ctx.device))
        finally:
            model.train(was)
        return torch.cat(zs), torch.cat(ys)

    def _caching(self) -> bool:
        """Whether the steps keep their features: ``feature_source='cached'``, or no training set
        known (then the epoch's features are the only source of the next estimate)."""
        return self.feature_source == "cached" or self._no_data

    def _take_cache(self, n=None):
        """The cached (features, labels) of the epoch — all of them when ``n`` is None, else only
        if they cover exactly ``n`` examples — and empty the cache; ``None`` if not usable."""
        cache, self._cache = self._cache, []
        if not cache or (n is not None and sum(t[0].shape[0] for t in cache) != n):
            return None
        return torch.cat([t[0] for t in cache]).float(), torch.cat([t[1] for t in cache])

    def on_epoch_start(self, ctx: EpochContext) -> None:
        """Make the estimate this epoch's steps use: kept if :meth:`on_epoch_end` (or
        :meth:`estimate`) just made it; else from the previous epoch's cached features
        (``feature_source='cached'``, or no training set known) or an encoder pass over the
        training set (Alg. 1 line 4).  Without a training set and before any features were
        cached there is nothing to fit (the first loss then says so)."""
        if self.lam == 0:
            return
        if self._model is None:
            self._model = ctx.model
        self._no_data = ctx.data is None
        if self.objective == "code" and self.kmeans is None and self.steps == 0:
            # released recipe: no CEM loss in epoch 1; the first k-means runs after it, on the
            # encoder as epoch 1 left it (at its end from the cached features, or here at the
            # start of epoch 2 from a pass over the training set)
            self._state["code_epoch1"] = True
            return
        if self._fresh:
            self._fresh = False
            self._restore_running()
            return
        n = None if self._no_data else _data_len(ctx.data)
        got = self._take_cache(n) if self._caching() else None
        if got is None:
            self._cache = []
            if self._no_data:
                return
            got = self._features(ctx)
        self._estimate(*got)

    def on_epoch_end(self, ctx: EpochContext) -> None:
        """Refit on the features the epoch's steps computed, when they are cached (the encoder as
        each step saw it; ``feature_source='cached'`` or no training set): the next epoch uses
        this fit.  With ``feature_source='recompute'`` and a training set nothing happens here:
        the pass runs at the next epoch's first step (same encoder; a last epoch costs no pass)."""
        if self.lam == 0:
            return
        self._no_data = ctx.data is None
        if not self._caching():
            return
        got = self._take_cache(None if self._no_data else _data_len(ctx.data))
        if got is not None:
            self._estimate(*got)
            self._fresh = True

    def estimate(self, z: torch.Tensor, y: torch.Tensor) -> None:
        """Per-epoch mixture estimate (Alg. 1 line 5) from features ``z (N, d)`` and labels; the
        next epoch start keeps it (it does not refit)."""
        self._estimate(z, y)
        self._fresh = True

    def _estimate(self, z: torch.Tensor, y: torch.Tensor) -> None:
        z = _flat(z)
        N, d = z.shape
        nc = self.num_classes or int(y.max()) + 1
        self.num_classes = nc
        sd = self.noise_var(d, z.device, z.dtype).sqrt()
        self._state["noise_sd"] = sd
        self._state["N"] = N
        self._state["dtype"] = z.dtype
        zt = z / sd  # whitened: |Σ+Σp|/|Σp| = |Σ̃ + I|
        if self.objective == "code":  # raw coordinates, scalar σ² (released recipe)
            self._state["sigma2"] = float((sd.double() ** 2).mean())
            self.kmeans = fit_class_kmeans(z, y, num_classes=nc, clusters_per_class=self.clusters_per_class,
                                           n_iter=self.kmeans_iters, warm_start=self.kmeans)
            return
        warm = self.fit if (self.warm_start and self.fit is not None and self.fit.covs is not None) else None
        fit = fit_class_mixture(zt.double(), y, num_classes=nc, k_per_class=self.k_per_class,
                                covariance=self.covariance, reg_covar=self.reg_covar,
                                n_iter=self.em_iters if warm is not None else self.em_iters_cold,
                                warm_start=warm)
        self.fit = fit
        self._reset_running(fit, z.dtype)

    def _restore_running(self):
        """After :meth:`load_state_dict` of an estimate made at an epoch's end: rebuild the running
        estimate (and Σp) exactly as the refit left them (nothing changed them since)."""
        st = self._state
        if "noise_sd" in st or (self.fit is None and self.kmeans is None) or self._loaded.get("N") is None:
            return
        d = self.fit.means.shape[1] if self.fit is not None else self.kmeans.centroids.shape[2]
        dev = (self.fit.means if self.fit is not None else self.kmeans.centroids).device
        dtype = getattr(torch, self._loaded.get("dtype", "float32"))
        sd = self.noise_var(d, dev, dtype).sqrt()
        st["noise_sd"] = sd
        st["N"] = int(self._loaded["N"])
        st["dtype"] = dtype
        if self.objective == "code":
            st["sigma2"] = float((sd.double() ** 2).mean())
        else:
            self._reset_running(self.fit, dtype)

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
        if step.y is None:
            raise ValueError("cem: needs the labels of the batch (its mixture is per class): pass them, "
                             "defended.loss(y)")
        if self.objective == "code" and self.kmeans is None and self._state.get("code_epoch1"):
            # epoch 1 of the released recipe: no clusters yet, no CEM loss
            if self._caching():
                self._cache.append((_flat(step.z).detach(), step.y.detach()))
            self.steps += 1
            return None
        if (self.kmeans if self.objective == "code" else self.fit) is None:
            raise ValueError("cem: no mixture estimate yet: Alg. 1 fits it on the features of the training set "
                             "before the first step — pass data=<your training set> (tensors (x, y), a Dataset or "
                             "a DataLoader) to defend(), or fit one with cem.estimate(z, y)")
        if "noise_sd" not in self._state:
            self._restore_running()
        lam = self.lam
        if self._caching():
            self._cache.append((_flat(step.z).detach(), step.y.detach()))
        self.steps += 1
        if self.objective == "code":
            lam = code_lambda(lam, self.current_lr())
            loss = self.code_loss(step.z, step.y)
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
    def code_loss(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """:func:`code_objective` of one batch with this defense's epoch k-means and settings
        (unscaled: :meth:`extra_loss` multiplies it by :func:`code_lambda`)."""
        if self.kmeans is None:
            raise ValueError("cem: no k-means estimate yet (objective='code' fits after the first epoch)")
        return code_objective(z, y, self.kmeans, noise_var=self._state["sigma2"], var_threshold=self.var_threshold,
                              scaling_lambda=self.scaling_lambda, gamma=self.gamma,
                              released_indexing=self.released_indexing)

    # -- checkpointing ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        st = self._state
        return {"fit": None if self.fit is None else {k: getattr(self.fit, k) for k in
                                                         ("weights", "means", "covs", "labels")},
                "kmeans": None if self.kmeans is None else self.kmeans.to_state(), "steps": int(self.steps),
                "num_classes": self.num_classes, "history": list(self.history), "fresh": bool(self._fresh),
                "N": st.get("N"), "dtype": str(st["dtype"]).replace("torch.", "") if "dtype" in st else None,
                "code_epoch1": bool(st.get("code_epoch1", False))}

    def load_state_dict(self, state: dict) -> None:
        f = state.get("fit")
        self.fit = None if f is None else GaussianMixtureFit(f["weights"], f["means"], f["covs"], f["labels"])
        km = state.get("kmeans")
        self.kmeans = None if km is None else KMeansFit.from_state(km)
        self.num_classes = state.get("num_classes")
        self.history = [float(v) for v in state.get("history", [])]
        self.steps = int(state.get("steps", len(self.history)))
        # an estimate made at an epoch's end is used as is by the next epoch (running state rebuilt)
        self._fresh = bool(state.get("fresh", False)) and state.get("N") is not None
        self._state = {"code_epoch1": True} if state.get("code_epoch1") else {}
        self._loaded = {"N": state.get("N"), "dtype": state.get("dtype") or "float32"}
        self._cache = []
