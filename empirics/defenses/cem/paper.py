"""Conditional entropy maximization (CEM): Algorithm 1 of Xia et al. (CVPR 2025), with the
departures listed below (``objective="paper"``; the released code's recipe is :mod:`.released`).

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
"""

from __future__ import annotations

import math

import torch

from theory._validate import expect_choice, expect_int, expect_number

from .base import CEM, _flat
from .mixture import GaussianMixtureFit, fit_class_mixture

__all__ = ["PaperCEM"]


class PaperCEM(CEM):
    """CEM paper Algorithm 1 (Eq. 5–8): ``objective="paper"`` of the registered ``"cem"`` defense.

    Parameters
    ----------
    lam : float
        λ of Eq. 8 (≥ 0; 0 switches CEM off exactly).  Paper default 16.
    k_per_class : int
        Mixture components per class (paper: k = 3n).
    covariance : {'full', 'diag'}
    method : {'lowrank', 'dense'}
        Route for the per-batch log-determinants (identical values; 'dense' is the naive route).
    em_iters, em_iters_cold : int
        EM iterations of the per-epoch estimate when warm-started / from scratch.
    warm_start : bool
        Start each epoch's EM from the previous fit (False = the naive route: EM from scratch).
    reg_covar : float
        Relative diagonal regularisation of the EM covariances (× mean feature variance).
    refresh_rank : int
        'lowrank' route: re-diagonalise a component when its accumulated rank exceeds this.
    min_noise_var, feature_batch, num_classes, feature_source
        As for every CEM (:class:`~empirics.defenses.cem.base.CEM`).
    """

    objective = "paper"

    def __init__(self, lam: float = 16.0, *, k_per_class: int = 3, covariance: str = "full",
                 method: str = "lowrank", em_iters: int = 1, em_iters_cold: int = 25, warm_start: bool = True,
                 reg_covar: float = 1e-6, refresh_rank: int = 96, min_noise_var: float = 1e-4,
                 feature_batch: int = 512, num_classes: int | None = None, feature_source: str = "recompute"):
        super().__init__(lam, min_noise_var=min_noise_var, feature_batch=feature_batch, num_classes=num_classes,
                         feature_source=feature_source)
        expect_choice(covariance, "covariance", ("full", "diag"))
        expect_choice(method, "method", ("lowrank", "dense"))
        expect_int(k_per_class, "k_per_class")
        expect_number(reg_covar, "reg_covar", nonneg=True)
        self.k_per_class = k_per_class
        self.covariance = covariance
        self.method = method
        self.em_iters = int(em_iters)
        self.em_iters_cold = int(em_iters_cold)
        self.warm_start = bool(warm_start)
        self.reg_covar = float(reg_covar)
        self.refresh_rank = int(refresh_rank)
        self.fit: GaussianMixtureFit | None = None

    def config(self) -> dict:
        return {"name": self.name, "strength": self.lam, "lam": self.lam, "k_per_class": self.k_per_class,
                "covariance": self.covariance, "objective": self.objective, "method": self.method,
                "warm_start": self.warm_start}

    # -- Alg. 1 line 5 ----------------------------------------------------------------------
    def _estimate_tensor(self):
        return None if self.fit is None else self.fit.means

    def _fit(self, z, y, sd):
        zt = z / sd  # whitened: |Σ+Σp|/|Σp| = |Σ̃ + I|
        warm = self.fit if (self.warm_start and self.fit is not None and self.fit.covs is not None) else None
        fit = fit_class_mixture(zt.double(), y, num_classes=self.num_classes, k_per_class=self.k_per_class,
                                covariance=self.covariance, reg_covar=self.reg_covar,
                                n_iter=self.em_iters if warm is not None else self.em_iters_cold,
                                warm_start=warm)
        self.fit = fit
        self._reset_running(fit, z.dtype)

    def _restore(self, sd, dtype):
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
    # -- Alg. 1 lines 9-14 ----------------------------------------------------------------
    def _term(self, z, y):
        return self.lam, self.batch_loss(z, y)

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


    # -- checkpointing ----------------------------------------------------------------------
    def _estimate_state(self) -> dict:
        return {"fit": None if self.fit is None else {k: getattr(self.fit, k) for k in
                                                         ("weights", "means", "covs", "labels")}, "kmeans": None}

    def _load_estimate(self, state: dict) -> None:
        f = state.get("fit")
        self.fit = None if f is None else GaussianMixtureFit(f["weights"], f["means"], f["covs"], f["labels"])
