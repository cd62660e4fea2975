r"""Pairwise Gaussian divergences and the mixture-entropy bounds built on them (private).

The implementation behind :func:`theory.mixture_entropy_bounds` and
:func:`theory.mutual_information_upper_bounds`, sized for the CEM paper's features (d = 512,
tens of components; issue 13).  For K components in d dimensions and P = K(K−1)/2 unordered
pairs:

* **upper bounds** (Huber; Kolchinsky–Tracey with D = KL): one Cholesky factorisation and one
  inverse per component; :math:`\operatorname{tr}(C_j^{-1}C_i)` for all pairs as one matrix
  product of the flattened matrices; Mahalanobis terms from whitened mean differences
  :math:`L_j^{-1}(\mu_i-\mu_j)`.  O(K d³ + K² d²) time, O(K d²) memory (the K inverses).
* **lower bounds** (ELK; Kolchinsky–Tracey with D = Chernoff-α) need one d×d matrix per pair
  :math:`S_\beta = (1-\beta)\Sigma_i + \beta\Sigma_j`.  For a few β: a Cholesky factorisation
  per pair and β, in place in one d×d buffer (:func:`cholesky_pairs`; O(d²) memory).  For an
  α grid: one tridiagonal reduction per pair, after which every β costs O(d)
  (:func:`tridiagonal_pairs`).  The pair (j, i) at α is the pair (i, j) at 1 − α, so only i < j
  is computed.  ELK's kernel :math:`\mathcal N(\mu_i;\mu_j,\Sigma_i+\Sigma_j)`
  is :math:`S_{1/2}` scaled by 2.
* **declared structure** (never guessed): diagonal covariances and covariances
  :math:`s_i\Sigma` sharing one matrix reduce to O(K d + K² d) after at most one
  eigendecomposition (:func:`diag_components`).

Every factorisation that fails names its component.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import lapack
from scipy.special import logsumexp

from ._validate import TILE, check_psd, symmetrise_into

LOG_2PI = math.log(2.0 * math.pi)
LOG_2PI_E = math.log(2.0 * math.pi * math.e)

#: largest temporary block (bytes) built by the blocked routines (Monte Carlo, diagonal KL)
CHUNK_BYTES = 1 << 26
#: an α grid needing at least this many distinct β in (0, 1) uses the tridiagonal route
#: (measured at d = 512: sygst + sytrd per pair ≈ 7 Cholesky factorisations)
TRIDIAGONAL_MIN_BETAS = 8


def rows_per_block(bytes_per_row: int) -> int:
    """How many rows of ``bytes_per_row`` bytes fit in one block of :data:`CHUNK_BYTES`."""
    return max(1, CHUNK_BYTES // max(1, int(bytes_per_row)))


def _not_pd(mat: np.ndarray, name: str) -> ValueError:
    ev = np.linalg.eigvalsh(mat)
    return ValueError(f"{name} must be positive definite; got smallest eigenvalue {float(ev.min()):.3g}")


def _mirror_upper(src: np.ndarray, out: np.ndarray) -> None:
    """out ← the symmetric matrix whose upper triangle is that of the C-ordered (d, d) ``src``.

    Tiled (one cache-friendly pass; ~2× faster than ``triu(src) + triu(src, 1).T`` at d = 512).
    """
    d = src.shape[0]
    t = TILE
    for i in range(0, d, t):
        for j in range(i, d, t):
            blk = src[i:i + t, j:j + t]
            if i == j:
                up = np.triu(blk)
                out[i:i + t, i:i + t] = up
                out[i:i + t, i:i + t] += np.triu(up, 1).T
            else:
                out[i:i + t, j:j + t] = blk
                out[j:j + t, i:i + t] = blk.T


# --- per-component factorisations: log-determinants and the KL matrix ---------------------------

def full_components(means, covs, shift=None, *, chols=None, kl=True, psd=False, name="covs",
                    shift_name="noise_cov"):
    r"""log|C_i| and KL(N_i ‖ N_j) for :math:`N_i = \mathcal N(\mu_i, C_i)`, :math:`C_i = \Sigma_i + \text{shift}`.

    .. math:: \mathrm{KL}(N_i\|N_j) = \tfrac12\big(\operatorname{tr}(C_j^{-1}C_i)
              + \|L_j^{-1}(\mu_i-\mu_j)\|^2 - d + \log|C_j| - \log|C_i|\big)

    One component at a time through two reused d×d buffers, for every d (batching the small
    cases was measured slower: fresh (K, d, d) temporaries cost page faults, reused buffers stay
    mapped and in cache).

    Parameters
    ----------
    means : (K, d); covs : (K, d, d), each symmetric up to 1e-8 (checked here, component by
    component, and symmetrised); shift : (d, d) SPD or None.
    chols : (K, d, d), optional
        Lower Cholesky factors of the :math:`C_i` when already known (then nothing is checked;
        ``covs`` must then be the :math:`C_i`, exactly symmetric, and ``shift`` None).
    kl : bool
        Also return the K×K KL matrix (else only the log-determinants: O(K d³/3)).
    psd : bool
        Check each :math:`\Sigma_i` positive semidefinite (:func:`theory._validate.check_psd`).

    Returns
    -------
    logdets : (K,), kl : (K, K) or None -- ``kl[i, j] = KL(N_i ‖ N_j)``, zero diagonal, clipped at 0.
    """
    K, d = means.shape
    logdets = np.empty(K)
    cinv = np.empty((K, d, d)) if kl else None
    maha = np.empty((K, K)) if kl else None
    # C-ordered work buffer; LAPACK gets its transpose, an F-ordered view of the same symmetric
    # matrix, so no copies are made and the elementwise passes stay contiguous.  What LAPACK
    # writes to the lower triangle of that view lands in the upper triangle of ``buf``.
    buf = np.empty((d, d))
    work = np.empty((d, d)) if (psd and chols is None) else None
    for j in range(K):
        if chols is None:
            symmetrise_into(covs[j], buf, f"{name}[{j}]")
            if psd:
                check_psd(buf, f"{name}[{j}]", work)
            if shift is not None:
                buf += shift
            L, info = lapack.dpotrf(buf.T, lower=1, overwrite_a=1, clean=0)
            if info != 0:
                mat = 0.5 * (covs[j] + covs[j].T) + (0.0 if shift is None else shift)
                raise _not_pd(mat, f"{name}[{j}]" + ("" if shift is None else f" + {shift_name}"))
        else:
            np.copyto(buf, chols[j].T)
            L = buf.T
        logdets[j] = 2.0 * float(np.sum(np.log(np.diagonal(L))))
        if kl:
            D = np.asfortranarray((means - means[j]).T)                          # (d, K)
            Y, _ = lapack.dtrtrs(L, D, lower=1, overwrite_b=1)                   # L_j⁻¹(μ_i − μ_j)
            maha[:, j] = np.einsum("dk,dk->k", Y, Y)
            Ci, _ = lapack.dpotri(L, lower=1, overwrite_c=1)                     # C_j⁻¹ → upper of buf
            _mirror_upper(Ci.T, cinv[j])
    if not kl:
        return logdets, None
    flat = cinv.reshape(K, d * d)
    # tr(C_j⁻¹ C_i) = <C_j⁻¹, Σ_i>_F + <C_j⁻¹, shift>_F  (C_j⁻¹ exactly symmetric, so an asymmetry
    # of Σ_i within tolerance enters as its symmetric part, like everywhere else)
    T = np.ascontiguousarray(covs).reshape(K, d * d) @ flat.T
    if shift is not None:
        T += (flat @ shift.reshape(-1))[None, :]
    return logdets, kl_from_parts(T, maha, logdets, d)


def kl_from_parts(T, maha, logdets, d):
    """KL matrix from tr(C_j⁻¹C_i) (T[i, j]), Mahalanobis terms (maha[i, j]) and log-determinants."""
    kl = 0.5 * (T + maha - d + logdets[None, :] - logdets[:, None])
    np.fill_diagonal(kl, 0.0)
    return np.maximum(kl, 0.0)


def diag_components(means, var, *, kl=True):
    r"""log|C_i| and KL(N_i ‖ N_j) for diagonal :math:`C_i = \operatorname{diag}(\text{var}_i)`, var > 0.

    .. math:: \mathrm{KL}(N_i\|N_j) = \tfrac12\sum_k\Big(\frac{v_{ik}}{v_{jk}}
              + \frac{(\mu_{ik}-\mu_{jk})^2}{v_{jk}} - 1 + \log v_{jk} - \log v_{ik}\Big)

    O(K² d) time; the squared differences are formed in blocks of rows (no cancellation from
    expanding the square).
    """
    K, d = means.shape
    logdets = np.sum(np.log(var), axis=1)
    if not kl:
        return logdets, None
    inv = 1.0 / var
    T = var @ inv.T
    maha = np.empty((K, K))
    step = rows_per_block(K * d * 8)
    for a in range(0, K, step):
        diff = means[a:a + step, None, :] - means[None, :, :]
        maha[a:a + step] = np.einsum("ijk,ijk,jk->ij", diff, diff, inv)
    return logdets, kl_from_parts(T, maha, logdets, d)


# --- Kolchinsky–Tracey and ELK from pairwise quantities -------------------------------------------

def kt_bound(weights, comp_h, D):
    r"""Kolchinsky–Tracey estimator :math:`\sum_i w_iH_i - \sum_i w_i\log\sum_j w_j e^{-D_{ij}}`.

    ``D`` has shape (..., K, K); all weights must be > 0 (callers drop empty components).
    """
    logw = np.log(weights)
    inner = logsumexp(logw[None, :] - D, axis=-1)
    return float(weights @ comp_h) - np.sum(weights * inner, axis=-1)


def huber_upper(weights, comp_h):
    r"""Huber et al. (2008): :math:`\sum_i w_i(-\log w_i + H_i)` (weights > 0)."""
    return float(np.sum(weights * (-np.log(weights) + comp_h)))


def betas_for(alphas, elk: bool):
    """The β in (0, 1) at which S_β is needed: α and 1 − α for every α (pair (j, i) at α is pair
    (i, j) at 1 − α), and ½ for ELK; equal up to 1e-12 merged.  Returns a sorted array."""
    vals = [a for a in alphas if 0.0 < a < 1.0] + [1.0 - a for a in alphas if 0.0 < a < 1.0]
    if elk:
        vals.append(0.5)
    out = []
    for v in sorted(vals):
        if not out or v - out[-1] > 1e-12:
            out.append(v)
    return np.asarray(out, dtype=np.float64)


def _beta_index(betas, b):
    return int(np.argmin(np.abs(betas - b)))


def chernoff_matrices(alphas, betas, logdet_S, maha_S, logdets):
    r"""Chernoff α-divergences :math:`C_\alpha(p_i\|p_j) = -\log\int p_i^\alpha p_j^{1-\alpha}`, shape (len(alphas), K, K).

    For Gaussians, with :math:`S = (1-\alpha)\Sigma_i + \alpha\Sigma_j` and :math:`\Delta = \mu_i-\mu_j`:

    .. math:: C_\alpha = \frac{\alpha(1-\alpha)}2\Delta^\top S^{-1}\Delta
              + \frac12\big(\log|S| - (1-\alpha)\log|\Sigma_i| - \alpha\log|\Sigma_j|\big)

    (zero at α ∈ {0, 1}).  ``logdet_S``/``maha_S`` have shape (len(betas), P) for the pairs i < j
    in ``np.triu_indices`` order, S_β = (1 − β)Σ_i + βΣ_j.
    """
    K = logdets.shape[0]
    iu, ju = np.triu_indices(K, 1)
    out = np.zeros((len(alphas), K, K))
    for a_idx, a in enumerate(alphas):
        if not 0.0 < a < 1.0:
            continue
        for b, (rows, cols) in ((a, (iu, ju)), (1.0 - a, (ju, iu))):
            k = _beta_index(betas, b)
            # pair (i<j) at β = b is C_b(p_i‖p_j); at β = 1 − a it is C_a(p_j‖p_i) (roles swapped)
            ld_base, ld_other = (logdets[iu], logdets[ju])
            val = (0.5 * b * (1 - b) * maha_S[k]
                   + 0.5 * (logdet_S[k] - (1 - b) * ld_base - b * ld_other))
            out[a_idx, rows, cols] = val
    return np.maximum(out, 0.0)


def elk_lower(weights, logdets, d, betas, logdet_S, maha_S):
    r"""ELK lower bound :math:`-\sum_i w_i\log\sum_j w_j\mathcal N(\mu_i;\mu_j,\Sigma_i+\Sigma_j)` (Huber et al. 2008).

    With :math:`S = \tfrac12(\Sigma_i+\Sigma_j)`: :math:`\log|\Sigma_i+\Sigma_j| = d\log2 + \log|S|` and
    :math:`\Delta^\top(\Sigma_i+\Sigma_j)^{-1}\Delta = \tfrac12\Delta^\top S^{-1}\Delta`.
    """
    K = logdets.shape[0]
    iu, ju = np.triu_indices(K, 1)
    log_kern = np.empty((K, K))
    np.fill_diagonal(log_kern, -0.5 * (d * (LOG_2PI + math.log(2.0)) + logdets))
    if iu.size:
        k = _beta_index(betas, 0.5)
        v = -0.5 * (d * (LOG_2PI + math.log(2.0)) + logdet_S[k] + 0.5 * maha_S[k])
        log_kern[iu, ju] = v
        log_kern[ju, iu] = v
    return -float(np.sum(weights * logsumexp(np.log(weights)[None, :] + log_kern, axis=1)))


# --- pair routes ---------------------------------------------------------------------------------

def _pair_index(K):
    """(iu, ju, index) with index[i, j] = index[j, i] = position of the pair {i, j} in triu order."""
    iu, ju = np.triu_indices(K, 1)
    index = np.full((K, K), -1)
    index[iu, ju] = np.arange(iu.size)
    index[ju, iu] = np.arange(iu.size)
    return iu, ju, index


def cholesky_pairs(means, covs, betas):
    r"""log|S_β| and :math:`\Delta^\top S_\beta^{-1}\Delta` for every pair i < j and β, shape (len(betas), P).

    :math:`S_\beta = (1-\beta)\Sigma_i + \beta\Sigma_j`, :math:`\Delta = \mu_j - \mu_i`.  One Cholesky
    factorisation and one triangular solve per (pair, β), in place in one reusable d×d buffer
    (measured ~2× faster than batched ``numpy.linalg.cholesky`` at d = 512, and O(d²) memory).
    ``covs`` must be exactly symmetric (as :class:`theory.GaussianMixture` stores them).
    """
    K, d = means.shape
    iu, ju = np.triu_indices(K, 1)
    P, nb = iu.size, len(betas)
    logdet_S = np.empty((nb, P))
    maha_S = np.empty((nb, P))
    buf = np.empty((d, d))              # C-ordered; LAPACK sees buf.T, the same symmetric matrix
    for p in range(P):
        i, j = iu[p], ju[p]
        delta = np.asfortranarray((means[j] - means[i])[:, None])
        for k, b in enumerate(betas):
            np.multiply(covs[i], 1.0 - b, out=buf)
            buf += b * covs[j]
            L, info = lapack.dpotrf(buf.T, lower=1, overwrite_a=1, clean=0)
            if info != 0:  # pragma: no cover - a convex combination of SPD matrices is SPD
                raise _not_pd((1.0 - b) * covs[i] + b * covs[j], f"(1-{b:g})·covs[{i}] + {b:g}·covs[{j}]")
            logdet_S[k, p] = 2.0 * float(np.sum(np.log(np.diagonal(L))))
            y, _ = lapack.dtrtrs(L, delta, lower=1)
            maha_S[k, p] = float(y[:, 0] @ y[:, 0])
    return logdet_S, maha_S


def tridiagonal_pairs(means, covs, chols, cond_proxy, betas):
    r"""The same quantities as :func:`cholesky_pairs`, for many β at once.

    For a pair, whiten by the better-conditioned component b (smaller ``cond_proxy``), the other
    being o: :math:`M = L_b^{-1}\Sigma_oL_b^{-\top}`, :math:`v = L_b^{-1}(\mu_o-\mu_b)`, so that
    :math:`S = L_b((1-\beta)I + \beta M)L_b^\top` with β the weight of o.  Householder
    tridiagonalisation (LAPACK sytrd) of the bordered matrix
    :math:`\begin{pmatrix}0 & v^\top\\ v & M\end{pmatrix}` (itself formed by one LAPACK sygst call)
    gives :math:`M = QTQ^\top` with :math:`Q^\top v = \pm\|v\|e_1`: the first reflector maps v to a
    multiple of :math:`e_1` and the later ones leave that coordinate alone.  Then for every β, with
    :math:`X = (1-\beta)I + \beta T` (tridiagonal SPD) and its bottom-up pivots
    :math:`q_{d-1} = X_{d-1,d-1}`, :math:`q_k = X_{kk} - X_{k,k+1}^2/q_{k+1}`:

    .. math:: \log|S| = \log|\Sigma_b| + \sum_k\log q_k,\qquad
              \Delta^\top S^{-1}\Delta = \|v\|^2 e_1^\top X^{-1}e_1 = \|v\|^2/q_0 .

    Cost per pair: sygst (d³) and sytrd (4d³/3), then O(d) per β -- versus d³/3 per β for
    :func:`cholesky_pairs`.  Pairs are grouped by base so each base factor is placed once.
    """
    K, d = means.shape
    iu, ju, index = _pair_index(K)
    P, nb = iu.size, len(betas)
    logdet_S = np.empty((nb, P))
    maha_S = np.empty((nb, P))
    if P == 0 or nb == 0:
        return logdet_S, maha_S
    logdets = 2.0 * np.sum(np.log(np.diagonal(chols, axis1=1, axis2=2)), axis=1)
    diag = np.empty((P, d))
    off = np.empty((P, max(d - 1, 0)))
    nv2 = np.empty(P)
    swapped = np.empty(P, dtype=bool)
    Bm = np.zeros((d + 1, d + 1), order="F")
    Lb = np.zeros((d + 1, d + 1), order="F")
    Lb[0, 0] = 1.0
    lwork = max(d + 1, int(lapack.dsytrd_lwork(d + 1, lower=1)[0]))
    order = np.argsort(cond_proxy, kind="stable")
    for r, b in enumerate(order):
        Lb[1:, 1:] = chols[b]
        for o in order[r + 1:]:
            p = index[b, o]
            swapped[p] = b > o
            Bm[0, 0] = 0.0
            Bm[1:, 0] = means[o] - means[b]
            Bm[1:, 1:] = covs[o].T              # symmetric: the F-ordered copy is contiguous
            W, _ = lapack.dsygst(Bm, Lb, itype=1, lower=1, overwrite_a=1)
            _, dd, e, _, _ = lapack.dsytrd(W, lower=1, lwork=lwork, overwrite_a=1)
            diag[p] = dd[1:]
            off[p] = e[1:]
            nv2[p] = e[0] ** 2
    # β is the weight of o; for a swapped pair (b = j) the canonical S = (1−β)Σ_i + βΣ_j has weight
    # 1 − β on o = i, so evaluate at the mirrored β.
    beta_eval = np.where(swapped[:, None], 1.0 - betas[None, :], betas[None, :])   # (P, nb)
    q = (1.0 - beta_eval) + beta_eval * diag[:, d - 1:d]
    logdet_X = np.log(q)
    for k in range(d - 2, -1, -1):
        q = (1.0 - beta_eval) + beta_eval * diag[:, k:k + 1] - (beta_eval * off[:, k:k + 1]) ** 2 / q
        logdet_X += np.log(q)
    base_ld = np.where(swapped, logdets[ju], logdets[iu])
    logdet_S[:] = (base_ld[:, None] + logdet_X).T
    maha_S[:] = (nv2[:, None] / q).T
    return logdet_S, maha_S
