r"""How far is each attack from the physical limit?  Attack MSE against the exact MMSE.

Inputs come from a known Gaussian mixture (:func:`empirics.data.default_mixture`, d = 16), so
the Bayes-optimal reconstruction error — the MMSE :math:`\xi = E\|x - E[x|z]\|^2/d` — is known:

* **linear** settings, ``z = A x + N(0, σ²I)``: the posterior is again a Gaussian mixture
  (:func:`theory.mixture_posterior`), and we average the exact
  :math:`\operatorname{Tr}\operatorname{Cov}(x|z)/d` over the very test observations the attacks
  see (Rao–Blackwellised, unbiased; s.e. = sample sd/√n).  Beside it: Thm 1's bound
  :math:`\exp(2H(x|z)/d)/(2\pi e)` with H(x|z) by Monte Carlo.
* **nonlinear** settings, ``z = f(x) + N(0, σ²I)`` with a small random tanh MLP ``f``:
  :math:`E[x|z]` by self-normalised importance sampling with the prior as proposal,
  :math:`\hat x(z) = \sum_j w_j x_j / \sum_j w_j`, :math:`w_j = \exp(-\|z - f(x_j)\|^2/2σ^2)`,
  over a pool of ``pool`` prior samples independent of the test set (the effective sample size
  is reported).  The reported MMSE is the error of this estimator on the test pairs, ± s.e.
  Because :math:`\hat x` is a function of z only, its expected error is ≥ the true MMSE; the
  gap vanishes as the pool grows (the ESS says how close it is).  The bottleneck is
  low-dimensional (4 features) so that the prior proposal keeps a large ESS.

``bayes_mse`` is the error of the Bayes estimator (exact posterior mean; SNIS in the nonlinear
settings) on the *same* test pairs, and ``diff_stderr`` the standard error of the paired
per-sample difference (attack error − Bayes error), whose expectation
:math:`E\|E[x|z] - \hat x(z)\|^2/d` is ≥ 0 for every attack.  This paired comparison is the
sharp test of "is an attack below the MMSE?": the attack's MSE on a finite test set carries
sampling noise (a particular test set can be "easy" for every estimator alike) that the
Rao–Blackwellised ``mmse`` average and its ``mmse_stderr`` do not show.

Every attack sees the deployed features (``model.client_features`` with the
:class:`~empirics.defenses.noise.GaussianNoise` defense), trains on auxiliary samples of the same
prior, and is scored on the same test pairs; ``ratio = mse / mmse``.  An attack below
``bayes_mse − 4·diff_stderr`` would contradict the definition of the MMSE — i.e. a bug.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

import theory

from ..data import default_mixture
from ..defenses.noise import GaussianNoise
from ..kinds.optimality import OptimalityResult
from ..models import SplitModel
from ..seeding import stream_seed, torch_generator
from .decoder import DecoderAttack
from .gan import GANAttack
from .optimization import OptimizationAttack

__all__ = ["linear_setting", "nonlinear_setting", "snis_posterior_mean", "run_optimality"]


def _head(k: int, classes: int) -> nn.Module:
    return nn.Linear(k, classes)


def linear_setting(gmm, sigma: float, *, k: int | None = None, seed: int = 0) -> tuple[SplitModel, np.ndarray]:
    """Split model whose encoder is ``z = A x`` (A Gaussian/√d, k × d) plus the noise defense.

    Parameters
    ----------
    gmm : theory.GaussianMixture
        The prior, in d dimensions.
    sigma : float
        The noise σ.
    k : int, optional
        Number of features (default d).
    seed : int
        Seed of A.

    Returns
    -------
    tuple of (SplitModel, numpy.ndarray, shape (k, d))
        The model and the float64 copy of the float32 matrix it applies.
    """
    d = gmm.dim
    k = d if k is None else k
    A = np.random.default_rng([seed, 7]).standard_normal((k, d)) / math.sqrt(d)
    enc = nn.Linear(d, k, bias=False)
    with torch.no_grad():
        enc.weight.copy_(torch.tensor(A, dtype=torch.float32))
    model = SplitModel(enc, _head(k, gmm.n_components), defenses=[GaussianNoise(sigma)], input_shape=(d,))
    # the exact posterior uses the float32 matrix the model really applies
    return model.eval(), enc.weight.detach().double().numpy()


def nonlinear_setting(gmm, sigma: float, *, k: int = 4, hidden: int = 32, seed: int = 0) -> SplitModel:
    """Split model with a fixed random tanh MLP encoder ``d → hidden → k`` plus the noise defense.

    Parameters
    ----------
    gmm : theory.GaussianMixture
        The prior, in d dimensions.
    sigma : float
        The noise σ.
    k, hidden : int
        Output and hidden width of the encoder.
    seed : int
        Seed of its weights.

    Returns
    -------
    SplitModel
    """
    d = gmm.dim
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(seed, "init"))
        enc = nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, k), nn.Tanh())
        with torch.no_grad():  # weights large enough for a markedly nonlinear map
            enc[0].weight.mul_(2.0)
    return SplitModel(enc, _head(k, gmm.n_components), defenses=[GaussianNoise(sigma)], input_shape=(d,)).eval()


@torch.no_grad()
def snis_posterior_mean(z: torch.Tensor, pool_x: torch.Tensor, pool_fx: torch.Tensor, sigma: float,
                        chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Self-normalised IS estimate of :math:`E[x|z]` for ``z = f(x) + N(0, σ²I)``, prior proposal.

    Returns ``(x_hat (N, d), ess (N,))`` with :math:`\mathrm{ESS} = 1/\sum_j \bar w_j^2`.

    Parameters
    ----------
    z : torch.Tensor, shape (n, k)
        Observations.
    pool_x : torch.Tensor, shape (p, d)
        Prior samples (the proposal), independent of the test set.
    pool_fx : torch.Tensor, shape (p, k)
        Their noise-free encodings f(x).
    sigma : float
        The noise σ.
    chunk : int
        Observations per batch.

    Returns
    -------
    tuple of (torch.Tensor, shape (n, d), torch.Tensor, shape (n,))
        The estimates of E[x|z] and the effective sample sizes (float64).
    """
    z, px, pf = z.double(), pool_x.double(), pool_fx.double()
    outs, ess = [], []
    for i in range(0, len(z), chunk):
        d2 = torch.cdist(z[i:i + chunk], pf) ** 2
        w = torch.softmax(-d2 / (2 * sigma ** 2), dim=1)
        outs.append(w @ px)
        ess.append(1.0 / (w ** 2).sum(1))
    return torch.cat(outs), torch.cat(ess)


def _attacks(names, epochs, opt_steps):
    out = {}
    for n in names:
        if n == "decoder":
            out[n] = DecoderAttack(hidden=128, depth=3, epochs=epochs, batch_size=256, lr=1e-2)
        elif n == "gan":
            out[n] = GANAttack(hidden=128, depth=3, epochs=max(epochs // 2, 3), batch_size=256, lr=5e-3)
        elif n == "optimization":
            out[n] = OptimizationAttack(p=2.0, tv=0.0, steps=opt_steps, lr=0.05, init="mean")
        else:
            raise ValueError(f"attacks: expected names among decoder, gan, optimization; got {n!r}")
    return out


def run_optimality(*, d: int = 16, sigmas_linear=(0.2, 0.5, 1.0), sigmas_nonlinear=(0.1, 0.3),
                   attacks=("decoder", "gan", "optimization"), n_aux: int = 20000, n_test: int = 2000,
                   epochs: int = 20, pool: int = 50000, n_entropy: int = 4000, seed: int = 0,
                   device="cpu", quick: bool = False, opt_steps: int | None = None, progress: bool = False,
                   on_record=None, num_threads: int | None = 1, resume=None) -> list[OptimalityResult]:
    """Run every attack in every setting; one :class:`OptimalityResult` per (attack, setting).

    ``opt_steps``: gradient steps of the optimization attack (default 100 with ``quick``, else 200).
    ``on_record(result)`` is called as each result finishes (for incremental output).
    ``resume``: result dicts (``OptimalityResult.to_dict()``) of an interrupted run *with the same
    arguments*; those (attack, setting) pairs are returned as they are instead of being re-run.
    ``num_threads``: torch CPU threads during the run (restored afterwards; the networks are small
    MLPs, for which one thread is fastest); ``None`` leaves the setting alone.

    Parameters
    ----------
    d : int
        Input dimension of the prior (:func:`empirics.data.default_mixture`).
    sigmas_linear, sigmas_nonlinear : sequence of float
        Noise levels of the linear and nonlinear settings.
    attacks : sequence of str
        ``decoder``, ``gan``, ``optimization``.
    n_aux, n_test : int
        Auxiliary (training) and test samples per setting.
    epochs : int
        Epochs of the trained attacks.
    pool, n_entropy : int
        Prior samples of the SNIS pool (nonlinear) and Monte-Carlo draws of H(x|z) (linear).
    seed : int
        Master seed.
    device : str
        Torch device of the attacks.
    quick : bool
        Fewer optimization steps (100; else 200) when ``opt_steps`` is not given.
    opt_steps : int, optional
        Steps of the optimization attack.
    progress : bool
        Progress bars.
    on_record : callable, optional
        Called with each :class:`OptimalityResult` as it finishes.
    num_threads : int, optional
        Torch CPU threads during the run (None: unchanged).
    resume : sequence of dict, optional
        Results of an interrupted run with the same arguments (``to_dict()``), returned as they are.

    Returns
    -------
    list of OptimalityResult
        One per (attack, setting), settings in order.
    """
    old = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        done = {}
        for r in resume or ():
            rec = OptimalityResult.from_dict(r)
            done[(rec.attack, rec.setting)] = rec
        steps = opt_steps if opt_steps is not None else (100 if quick else 200)
        return _run(d, sigmas_linear, sigmas_nonlinear, attacks, n_aux, n_test, epochs, pool, n_entropy, seed,
                    device, steps, progress, on_record, done)
    finally:
        torch.set_num_threads(old)


def _run(d, sigmas_linear, sigmas_nonlinear, attacks, n_aux, n_test, epochs, pool, n_entropy, seed, device,
         opt_steps, progress, on_record, done):
    if n_aux < 10 or n_test < 10:
        raise ValueError(f"n_aux, n_test: expected at least 10 samples, got {n_aux}, {n_test}")
    gmm = default_mixture(d, 3, separation=1.0, seed=seed)
    rng = np.random.default_rng([seed, 3])
    aux_x = torch.tensor(gmm.sample(n_aux, rng), dtype=torch.float32)
    test_x = torch.tensor(gmm.sample(n_test, rng), dtype=torch.float32)
    aux = (aux_x, torch.zeros(n_aux, dtype=torch.int64))
    records: list[OptimalityResult] = []
    settings = [("linear", s) for s in sigmas_linear] + [("nonlinear", s) for s in sigmas_nonlinear]
    for kind, sigma in settings:
        name = f"{kind} sigma={sigma:g}"
        if all((a, name) in done for a in attacks):
            records += [done[(a, name)] for a in attacks]
            continue
        if kind == "linear":
            model, A = linear_setting(gmm, sigma, seed=seed)
        else:
            model, A = nonlinear_setting(gmm, sigma, seed=seed), None
        # the test observations every attack (and the MMSE) uses: one fixed noise draw
        g = torch_generator(seed, "attack_eval")
        with torch.no_grad():
            z_test = model.client_features(test_x, training=False, generator=g)
        ess_med, bound, bound_se = None, None, None
        if kind == "linear":
            post = theory.mixture_posterior(gmm, A, sigma ** 2 * np.eye(A.shape[0]))
            zz = z_test.double().numpy()
            v = post.trace_cov(zz) / d                               # Rao–Blackwellised MMSE terms
            v_err = ((post.mean(zz) - test_x.double().numpy()) ** 2).mean(1)  # Bayes estimator's error
            h = theory.mixture_conditional_entropy_mc(gmm, A, sigma ** 2 * np.eye(A.shape[0]), n_entropy,
                                                      np.random.default_rng([seed, 5]))
            bound = theory.mse_lower_bound(h.value, d)
            bound_se = bound * 2.0 / d * h.stderr  # d bound / dH = bound · 2/d
        else:
            pool_x = torch.tensor(gmm.sample(pool, np.random.default_rng([seed, 9])), dtype=torch.float32)
            with torch.no_grad():
                pool_fx = model.encode(pool_x)
            xh, ess = snis_posterior_mean(z_test, pool_x, pool_fx, sigma)
            v = ((xh - test_x.double()) ** 2).mean(1).numpy()
            v_err = v
            ess_med = float(ess.median())
        mmse, mmse_se = float(np.mean(v)), float(np.std(v, ddof=1) / math.sqrt(len(v)))
        for aname, att in _attacks(attacks, epochs, opt_steps).items():
            if (aname, name) in done:
                records.append(done[(aname, name)])
                continue
            t0 = time.perf_counter()
            att.fit(model, aux, seed=seed, device=device, progress=progress)
            xh = att.reconstruct(z_test).cpu().double()
            per = ((xh - test_x.double()) ** 2).mean(1).numpy()
            diff = per - v_err  # paired: the attack and the Bayes estimator on the same test pairs
            rec = OptimalityResult(attack=aname, setting=name, mse=float(per.mean()),
                                   mse_stderr=float(per.std(ddof=1) / math.sqrt(len(per))), mmse=mmse,
                                   mmse_stderr=mmse_se, ratio=float(per.mean()) / mmse, bayes_mse=float(np.mean(v_err)),
                                   diff_stderr=float(diff.std(ddof=1) / math.sqrt(len(diff))), thm1_bound=bound,
                                   ess_median=ess_med, n_test=n_test, seconds=time.perf_counter() - t0,
                                   thm1_bound_stderr=bound_se)
            records.append(rec)
            if on_record is not None:
                on_record(rec)
    return records
