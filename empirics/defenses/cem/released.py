"""CEM as its authors' released code computes it: ``objective="code"`` of the ``"cem"`` defense.

This module reproduces, for comparison only and never mixed with the paper objective (:mod:`.paper`),
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

*The entropy term has two branches* in the released trainer (``compute_class_means``), selected by
its ``log_entropy`` setting: ``log_entropy=1`` — what its ``run_exp.sh`` passes, and our default —
is the thresholded log above; ``log_entropy=0`` — the trainer's own default — is
``wⱼ · (v + 0.001)``, the blended variance itself (no logarithm, no threshold, no γ), with the
same weights, blend, sums and scale.  ``log_entropy=False`` selects it.
"""

from __future__ import annotations

import math

import torch

from theory._validate import expect_int, expect_number

from .base import CEM, _flat
from .kmeans import KMeansFit, fit_class_kmeans

__all__ = ["ReleasedCEM", "code_objective", "code_lambda", "LR_REF", "LR_SWITCH", "BLEND_CAP", "VARIANCE_OFFSET"]

#: the released code's learning-rate rule: λ·LR_REF/lr while lr ≥ LR_SWITCH, plain λ below
LR_REF = 0.001
LR_SWITCH = 0.00041
#: the released blend weight is capped by setting it to this value when the ratio reaches 1
BLEND_CAP = 0.99

#: the constant the released ``log_entropy=0`` branch adds to the blended variance
VARIANCE_OFFSET = 0.001


def code_objective(z: torch.Tensor, y: torch.Tensor, fit: KMeansFit, *, noise_var: float,
                   var_threshold: float = 0.1, scaling_lambda: float = 10.0, gamma: float = 0.01,
                   released_indexing: bool = False, log_entropy: bool = True) -> torch.Tensor:
    r"""The released CEM code's loss on one batch (``MIA_train.compute_class_means``), unscaled.

    .. math::

        L = \frac{1}{|\mathcal C_b|}\sum_{c\in\mathcal C_b}\sum_{j\in\mathcal J_{b,c}} w_j\, g(v_j),
        \qquad g(v) = \begin{cases}\mathrm{ReLU}\big(\log(v + \gamma) - \log(t\sigma^2 + \gamma)\big)
            & \texttt{log\_entropy}\\ v + 0.001 & \text{otherwise}\end{cases},\qquad
        v_j = \beta_j v_{b,j} + (1-\beta_j) V_j,\quad
        \beta_j = \begin{cases} s\,n_{b,j}/(w_j C) & \text{if} < 1\\ 0.99 & \text{otherwise}\end{cases}

    with 𝒞_b the classes present in the batch, 𝒥_{b,c} the clusters of class c that receive a
    batch point (nearest centroid of the point's own class), n_{b,j} their batch counts,
    v_{b,j} the mean over those points and all dimensions of (z − μⱼ)², wⱼ = nⱼ/N_c and Vⱼ the
    epoch statistics of ``fit``, C = ``fit.class_size``, s = ``scaling_lambda``, t =
    ``var_threshold``, σ² = ``noise_var``.  Differentiable in ``z``; the centroids and epoch
    statistics are constants.  A cluster with wⱼ = 0 (empty in the epoch fit) contributes 0.
    ``log_entropy`` selects the released trainer's branch: True (its ``log_entropy=1``, what its
    ``run_exp.sh`` passes) the thresholded log; False (``log_entropy=0``, the trainer's default)
    the blended variance plus 0.001, where t and γ play no part.

    Parameters
    ----------
    z : tensor (n, ...)
        The batch's noise-free encoder outputs (flattened to (n, d)), with gradient.
    y : tensor (n,) of int
        Their labels.
    fit : KMeansFit
        The epoch's per-class k-means statistics (centroids (C, K, d), weights, variances).
    noise_var : float
        σ², the variance of the composed Gaussian noise (mean over dimensions).
    var_threshold, scaling_lambda, gamma : float
        t, s and γ above.
    released_indexing, log_entropy : bool
        See above.

    Returns
    -------
    torch.Tensor
        Scalar (0-d), differentiable in ``z``.

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

    The released trainer's default branch: w·(v + 0.001) = 1.001.

    >>> float(code_objective(torch.tensor([[1.0], [-1.0]], dtype=f64), torch.tensor([0, 0]), fit, noise_var=0.25,
    ...                      log_entropy=False))
    1.001
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
            if log_entropy:
                loss = loss + w * torch.relu(torch.log(v + gamma) - floor)
            else:
                loss = loss + w * (v + VARIANCE_OFFSET)
    return loss / len(classes)


def code_lambda(lam: float, lr: float | None) -> float:
    """The released code's effective weight: λ·0.001/lr while lr ≥ 0.00041, else λ (and λ when
    no learning rate is known).  Released: ``MIA_train.train_target_step`` (``get_last_lr()`` of
    the training scheduler, i.e. the current scheduled lr).

    Parameters
    ----------
    lam : float
        λ.
    lr : float, optional
        The current learning rate.

    Returns
    -------
    float

    Examples
    --------
    >>> code_lambda(16.0, 0.05), code_lambda(16.0, 0.0004)
    (0.32, 16.0)
    """
    if lr is None or lr < LR_SWITCH:
        return float(lam)
    return float(lam) * LR_REF / float(lr)



class ReleasedCEM(CEM):
    """The released CEM code's recipe (module docstring): ``objective="code"`` of the ``"cem"`` defense.

    Parameters
    ----------
    lam : float
        λ (the released ``--lambd``), scaled by :func:`code_lambda` at every step.
    clusters_per_class : int
        k-means clusters per class (default 5, the released value for the "sgm" architectures its
        ``run_exp.sh`` runs; 15 for its other architectures).
    var_threshold : float
        t of the floor log(t·σ² + γ) (released default 0.1; its ``run_exp.sh`` passes 0.125).
    scaling_lambda : float
        s of the blend weight s·n_bⱼ/(wⱼ·C) (released: 10).
    gamma : float
        γ inside both logarithms (released: 0.01).
    kmeans_iters : int
        Maximum Lloyd iterations of the per-epoch k-means (released: 50).
    released_indexing : bool
        Reproduce the released code's class-counter indexing of the weights and epoch variances (a
        bug; off by default; see :func:`code_objective`).
    log_entropy : bool
        The released ``log_entropy`` switch: True (``=1``, what ``run_exp.sh`` passes; default) —
        wⱼ·ReLU(log(v + γ) − log(tσ² + γ)); False (``=0``, the trainer's default) — wⱼ·(v + 0.001).
    min_noise_var, feature_batch, num_classes, feature_source
        As for every CEM (:class:`~empirics.defenses.cem.base.CEM`).
    """

    objective = "code"

    def __init__(self, lam: float = 16.0, *, clusters_per_class: int = 5, var_threshold: float = 0.1,
                 scaling_lambda: float = 10.0, gamma: float = 0.01, kmeans_iters: int = 50,
                 released_indexing: bool = False, log_entropy: bool = True, min_noise_var: float = 1e-4,
                 feature_batch: int = 512, num_classes: int | None = None, feature_source: str = "recompute"):
        super().__init__(lam, min_noise_var=min_noise_var, feature_batch=feature_batch, num_classes=num_classes,
                         feature_source=feature_source)
        expect_int(clusters_per_class, "clusters_per_class")
        expect_int(kmeans_iters, "kmeans_iters")
        expect_number(var_threshold, "var_threshold", nonneg=True)
        expect_number(scaling_lambda, "scaling_lambda", nonneg=True)
        expect_number(gamma, "gamma", positive=True)
        if not isinstance(log_entropy, bool):
            raise ValueError(f"log_entropy: expected true (the run script's branch) or false (the trainer's "
                             f"default branch), got {log_entropy!r}")
        self.clusters_per_class = clusters_per_class
        self.var_threshold = float(var_threshold)
        self.scaling_lambda = float(scaling_lambda)
        self.gamma = float(gamma)
        self.kmeans_iters = kmeans_iters
        self.released_indexing = bool(released_indexing)
        self.log_entropy = log_entropy
        self.kmeans: KMeansFit | None = None  # the epoch's k-means statistics

    def config(self) -> dict:
        return {"name": self.name, "strength": self.lam, "lam": self.lam, "objective": self.objective,
                "clusters_per_class": self.clusters_per_class, "var_threshold": self.var_threshold,
                "scaling_lambda": self.scaling_lambda, "gamma": self.gamma, "kmeans_iters": self.kmeans_iters,
                "released_indexing": self.released_indexing, "log_entropy": self.log_entropy}

    # -- the epoch's k-means ----------------------------------------------------------------
    def _first_epoch_without_loss(self) -> bool:
        return True

    def _estimate_tensor(self):
        return None if self.kmeans is None else self.kmeans.centroids

    def _fit(self, z, y, sd):  # raw coordinates, scalar σ² (released recipe)
        self._state["sigma2"] = float((sd.double() ** 2).mean())
        self.kmeans = fit_class_kmeans(z, y, num_classes=self.num_classes, clusters_per_class=self.clusters_per_class,
                                       n_iter=self.kmeans_iters, warm_start=self.kmeans)

    def _restore(self, sd, dtype):
        self._state["sigma2"] = float((sd.double() ** 2).mean())

    # -- the per-batch term -------------------------------------------------------------------
    def _term(self, z, y):
        return code_lambda(self.lam, self.current_lr()), self.code_loss(z, y)

    def code_loss(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """:func:`code_objective` of one batch with this defense's epoch k-means and settings
        (unscaled: the step multiplies it by :func:`code_lambda`)."""
        if self.kmeans is None:
            raise ValueError("cem: no k-means estimate yet (objective='code' fits after the first epoch)")
        return code_objective(z, y, self.kmeans, noise_var=self._state["sigma2"], var_threshold=self.var_threshold,
                              scaling_lambda=self.scaling_lambda, gamma=self.gamma,
                              released_indexing=self.released_indexing, log_entropy=self.log_entropy)

    # -- checkpointing ----------------------------------------------------------------------
    def _estimate_state(self) -> dict:
        return {"fit": None, "kmeans": None if self.kmeans is None else self.kmeans.to_state()}

    def _load_estimate(self, state: dict) -> None:
        km = state.get("kmeans")
        self.kmeans = None if km is None else KMeansFit.from_state(km)
