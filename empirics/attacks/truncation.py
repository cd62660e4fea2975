r"""Training-based inversion from truncated prediction vectors (Yang et al., CCS 2019).

The attacker observes only ``trunc_m(F(x))``: the victim's prediction vector (softmax of the
model's logits, deployed defenses included) with all but its ``m`` largest entries set to zero
(§III, Eq. 8).  It trains an inversion model ``G`` on an auxiliary set, feeding it the
predictions on auxiliary samples *truncated to the same m* (Eq. 10, "truncation method"), after
rescaling them to logits ``log F(x) + c`` with a learned constant ``c`` (Eq. 12).  Eq. 12 leaves
``log 0`` of the truncated entries undefined; we set each truncated entry to (smallest kept
log-probability of that observation − 1), i.e. "below everything that was kept".  (A fixed
``log ε`` for tiny ε was tried first: the huge constant dominates the standardised input and
the inversion model then barely uses the 2nd..m-th values — on digits m = 3 was no better than
m = 1.)  The rescaled vector is standardised with auxiliary statistics, so ``c`` is in effect
absorbed by the first layer's bias; it is kept for fidelity.  Setting ``train_m=None`` (= number of classes) gives the
"previous approach" the paper compares with: trained on full vectors, tested on truncated ones.
Auxiliary sets (Table I): *same* distribution, *generic* (other classes of the same domain),
*distinct* (another dataset) — see :func:`auxiliary_split`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..data import ArrayDataset, DataSplit
from .base import MLPDecoder, TrainedAttack

__all__ = ["TruncationAttack", "truncate_topk", "auxiliary_split"]

_EPS = 1e-30


def truncate_topk(p: torch.Tensor, m: int) -> torch.Tensor:
    """``trunc_m``: keep the ``m`` largest entries of each row, set the rest to 0.

    Parameters
    ----------
    p : torch.Tensor, shape (n, c)
        Prediction vectors.
    m : int
        Entries kept per row, 1 ≤ m ≤ c.

    Returns
    -------
    torch.Tensor, shape (n, c)

    Examples
    --------
    >>> truncate_topk(torch.tensor([[0.6, 0.05, 0.06, 0.2, 0.09]]), 2)
    tensor([[0.6000, 0.0000, 0.0000, 0.2000, 0.0000]])
    """
    k = p.shape[-1]
    if not 1 <= m <= k:
        raise ValueError(f"m: expected 1 <= m <= {k} (number of classes), got {m}")
    idx = p.topk(m, dim=-1).indices
    return torch.zeros_like(p).scatter(-1, idx, p.gather(-1, idx))


class _LogitRescale(nn.Module):
    """Eq. 12: z = log(f) + c with c learned (the log is taken before standardisation)."""

    def __init__(self):
        super().__init__()
        self.c = nn.Parameter(torch.zeros(()))

    def forward(self, v):
        return v + self.c


class TruncationAttack(TrainedAttack):
    """Yang et al.'s inversion model trained on ``trunc_m`` predictions.

    Parameters
    ----------
    m : int
        Number of prediction entries the attacker obtains for the victim.
    train_m : int or None
        Truncation used while training the inversion model; default ``m`` (their truncation
        method).  ``None`` trains on full vectors (the untruncated baseline).
    rescale : bool
        Apply the logit rescaling of Eq. 12 (default True).
    hidden, depth, epochs, batch_size, lr : MLP inversion model and its training.
    """

    name = "truncation"

    def __init__(self, m: int, *, train_m: int | None = -1, rescale: bool = True, **kw):
        kw.setdefault("arch", "mlp")
        super().__init__(**kw)
        if not isinstance(m, int) or m < 1:
            raise ValueError(f"m: expected a positive integer, got {m!r}")
        self.m = m
        self.train_m = m if train_m == -1 else train_m
        self.rescale = rescale
        self._m_now = self.train_m

    def _raw(self, model, x):
        was = model.training
        model.eval()
        try:
            return model.encode(x)
        finally:
            model.train(was)

    def _finish(self, model, raw, generator):
        probs = torch.softmax(model.head(model.defend(raw, training=False, generator=generator)), dim=-1)
        m = probs.shape[-1] if self._m_now is None else self._m_now
        return truncate_topk(probs, min(m, probs.shape[-1]))

    def _preprocess(self, f):
        if not self.rescale:
            return f
        lf = torch.log(f.clamp_min(_EPS))
        kept = f > 0
        lo = torch.where(kept, lf, torch.full_like(lf, float("inf"))).amin(dim=-1, keepdim=True)
        return torch.where(kept, lf, lo - 1.0)

    def _build(self, obs_shape, out_shape):
        dec = MLPDecoder(int(np.prod(obs_shape)), out_shape, hidden=self.hidden, depth=self.depth,
                         sigmoid=self.unit_range)
        return nn.Sequential(_LogitRescale(), dec) if self.rescale else dec

    def fit(self, model, aux, **kw):
        self._m_now = self.train_m
        out = super().fit(model, aux, **kw)
        self._m_now = self.m  # the victim's observation is trunc_m
        return out

    def observe(self, model, x, *, generator=None):
        return super().observe(model, x, generator=generator)

    def config(self) -> dict:
        return {**super().config(), "m": self.m, "train_m": self.train_m, "rescale": self.rescale}


def auxiliary_split(data: DataSplit, kind: str, *, classes=None, other: ArrayDataset | None = None,
                    seed: int = 0):
    """Classifier data and auxiliary set as in Yang et al. Table I.

    Returns ``(classifier_split, aux)``:

    * ``"same"`` — the classifier trains on half of ``data.train``, the attacker's auxiliary set is
      the other half (same distribution);
    * ``"generic"`` — the classifier sees only ``classes`` (default: the lower half of the labels),
      the auxiliary set holds the remaining classes of the same domain;
    * ``"distinct"`` — the auxiliary set is ``other`` (another dataset of the same input shape).

    Parameters
    ----------
    data : DataSplit
        The dataset.
    kind : {'same', 'generic', 'distinct'}
        Which auxiliary set (Yang et al. Table I; see above).
    classes : sequence of int, optional
        The classifier's classes.
    other : ArrayDataset, optional
        Out-of-distribution auxiliary data.
    seed : int
        Seed of the split.

    Returns
    -------
    tuple of (DataSplit, ArrayDataset)
        The classifier's data and the attacker's auxiliary set.
    """
    rng = np.random.default_rng(seed)
    tr = data.train
    if kind == "same":
        perm = rng.permutation(len(tr))
        half = len(tr) // 2
        return DataSplit(tr.subset(perm[:half]), data.test, data.num_classes, data.name), tr.subset(perm[half:])
    if kind == "generic":
        keep = list(range(data.num_classes // 2)) if classes is None else list(classes)
        mtr = np.isin(tr.y.numpy(), keep)
        mte = np.isin(data.test.y.numpy(), keep)
        remap = {c: i for i, c in enumerate(keep)}
        def sub(ds, mask):
            s = ds.subset(np.flatnonzero(mask))
            s.y = torch.tensor([remap[int(v)] for v in s.y])
            return s
        return (DataSplit(sub(tr, mtr), sub(data.test, mte), len(keep), data.name),
                tr.subset(np.flatnonzero(~mtr)))
    if kind == "distinct":
        if other is None or tuple(other.input_shape) != tuple(tr.input_shape):
            raise ValueError(f"other: expected a dataset with input shape {tr.input_shape} for kind='distinct'")
        return data, other
    raise ValueError(f"kind: expected 'same', 'generic' or 'distinct', got {kind!r}")
