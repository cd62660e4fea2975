"""Per-class k-means of the features: the epoch statistics of the released CEM code's recipe.

Released code (github.com/xiasong0501/CEM, commit 5ddd1fd):
``model_training_paral_pruning.MIA_train.kmeans_cuda``.  Used by
:class:`~empirics.defenses.cem.released.ReleasedCEM`.
"""

from __future__ import annotations

import torch

from .mixture import init_means

__all__ = ["KMeansFit", "fit_class_kmeans"]


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
    z = z.reshape(z.shape[0], -1)
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
        m0 = warm_start.centroids[c].to(z) if warm else init_means(xc, K)
        m, a, it = _lloyd(xc, m0, n_iter)
        iters = max(iters, it)
        cent[c] = m
        present[c] = True
        counts[c] = torch.bincount(a, minlength=K)
        for j in torch.unique(a).tolist():
            var[c, j] = ((xc[a == j] - m[j]) ** 2).mean()
    return KMeansFit(cent, counts, var, present, z.shape[0] / num_classes, iters)

