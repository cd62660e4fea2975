"""The analysis half of check-defense: which bounds hold for this encoder, and the exact Bayes attack.

:func:`analyse` takes the deployed model and decides the route:

* **certified** — the encoder is affine by construction (:func:`.affine.exact_affine_map`), the
  encoder is deterministic and the prior is a known Gaussian mixture: the Theorem 1 + 2 floors of
  the deployed channel, deterministic where the rounding analysis covers the encoder and at
  confidence 1 − α always (:func:`.check_bounds.certified_bounds`), and the exact posterior mean
  runs as the attack ``bayes``;
* **estimated** — otherwise: a class mixture fitted to the features, H(x) known (prior), or
  replaced by an upper bound (0 on [0, 1]^d, else a Gaussian max-entropy estimate); every floor
  is an estimate (guarantee ``none``), with the reason no certificate was possible.

Monte-Carlo sizes are ``config.n_mc``; every stream comes from the run's seed ("mc" stream).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

import theory

from ..measure import encode_all
from ..seeding import numpy_rng
from .affine import deployed_departure, exact_affine_map, rounding_departure_bound
from .check_bounds import (FIT_MAX_SAMPLES, THM12, Bound, NotDifferentiable, bayes_attack, certified_bounds,
                           deterministic_entropy_lower, fisher_bounds, fisher_per_input, fitted_bounds)
from ..kinds.check_defense import MC_QUANTITIES, edgeworth_draws

#: a Jacobian that vanishes on at least this fraction of the held-out inputs probed is called
#: piecewise constant (rounding, a step function); below it the warning says the fraction
PIECEWISE_CONSTANT_FRACTION = 0.99
from .check_verdict import AttackRun

__all__ = ["Analysis", "analyse"]


@dataclass
class Analysis:
    bounds: dict
    attacks: list = field(default_factory=list)  # the exact Bayes attack when the posterior is known
    why_not: str = ""  # why no bound is a certificate ("" when some are)
    affine: dict | None = None
    conditional_entropy: dict = field(default_factory=dict)
    dfil: dict = field(default_factory=dict)
    certifiable: float | None = None
    warnings: list = field(default_factory=list)


def _safe_floor(h: float, d: int) -> float | None:
    try:
        v = theory.mse_lower_bound(h, d)
    except (OverflowError, ValueError):
        return None
    return v if math.isfinite(v) else None


def analyse(model, subject, cfg, obs: torch.Tensor, dev, encoder_noise: float) -> Analysis:
    """Bounds (and ``bayes``) for ``subject`` deployed as ``model``; ``obs`` the held-out observations.

    Parameters
    ----------
    model : SplitModel
        The deployed model.
    subject : Subject
        The encoder and data (and the prior, when known).
    cfg : CheckDefenseConfig
        The settings.
    obs : torch.Tensor, shape (n, k)
        The held-out observations.
    dev : torch.device
        Where the model runs.
    encoder_noise : float
        The internal noise counted as channel noise.

    Returns
    -------
    Analysis
        Bounds, the bayes attack (when the posterior is known), warnings and the reported numbers.
    """
    amap, why = None, ""
    if subject.internal_sd > 0:
        why = "the encoder is stochastic (Theorem 2 assumes ẑ = f(x) deterministic)"
    else:
        amap, why = exact_affine_map(subject.encoder, subject.split.input_shape, subject.split.test.x)
        why = f"the encoder is not affine by construction: {why}" if amap is None else ""
    if amap is not None and subject.prior is not None:
        return _certified(model, subject, cfg, obs, dev, amap)
    if subject.prior is None:
        why = ("the data's distribution is not a known Gaussian mixture: ẑ is modelled by a fitted mixture and H(x) "
               "by an upper bound" + (f"; {why}" if why else ""))
    return _estimated(model, subject, cfg, dev, encoder_noise, why, amap)


def _certified(model, subject, cfg, obs, dev, amap) -> Analysis:
    prior, split = subject.prior, subject.split
    k, d = amap.A.shape
    var = cfg.noise ** 2
    hx_lim = theory.mixture_entropy_lower_limit(prior, cfg.n_mc, numpy_rng(cfg.seed, "mc", 2), alpha=cfg.alpha)
    hx_det = deterministic_entropy_lower(prior)
    pf = theory.mixture_prior_fisher_mc(prior, cfg.n_mc, numpy_rng(cfg.seed, "mc", 3))
    x64 = prior.sample(cfg.n_mc, numpy_rng(cfg.seed, "mc", 4))
    rb, rwhy = rounding_departure_bound(subject.encoder, amap)
    dep = deployed_departure(model.encode, amap, x64, cfg.noise, device=dev, bound=rb)
    bounds, info = certified_bounds(prior, amap, cfg.noise, hx_det=hx_det, hx_limit=hx_lim, departure=dep,
                                    rounding=rb, rounding_why=rwhy, alpha=cfg.alpha, prior_fisher=pf)
    warns = []
    if info["eta2_deterministic"] is None:
        need = edgeworth_draws(cfg.alpha / MC_QUANTITIES, dep["eta2_skewness"])
        if cfg.n_mc < need:
            warns.append(f"the departure draws are skewed (skewness {dep['eta2_skewness']:.2g}): its CLT limit at "
                         f"level {cfg.alpha / MC_QUANTITIES:g} needs about {need} draws, more than the {cfg.n_mc} made "
                         f"— rerun with --n-mc {need} or more for the confidence floor to mean what it says")
    errs, mm = bayes_attack(prior, amap, var, obs, split.test.x)
    bounds["exact_mmse_float64"] = Bound(float(mm.mean()), "none", (
        "the exact MMSE of the float64 affine channel, Tr Cov(x|z)/d at each held-out observation (paired with the "
        "attacks on the same observations); the deployed float32 channel departs from it, so it is a reference, "
        "not a certificate"), stderr=float(mm.std(ddof=1) / math.sqrt(len(mm))), per_input=mm)
    dfil = float((amap.A ** 2).sum()) / (var * d)
    bounds.update(fisher_bounds(np.full(len(obs), dfil), "", d=d, exact=True))
    guarantee = "deterministic" if info["eta2_deterministic"] is not None else "confidence"
    ce = {"h_x": hx_lim.mean, "h_x_stderr": hx_lim.stderr, "d_features": k, "guarantee": guarantee,
          "h_x_deterministic": hx_det, "h_x_confidence": info["h_x_confidence"], "confidence": 1.0 - cfg.alpha,
          "departure_nats": info["departure_nats"], **info["h_x_given_z"],
          "h_x_limit": {k: v for k, v in hx_lim.to_dict().items() if k not in ("value", "alpha")}}
    h_up = theory.mixture_entropy_bounds(prior, which="upper")["upper"]     # deterministic: H(x) <= KL upper bound
    cap = _safe_floor(h_up - min(info["mi_upper_bounds"].values()) + info["mi_rounding_allowance"], d)
    return Analysis(bounds, [AttackRun("bayes", errs)], "", {**amap.summary(), "departure": dep, **{
        key: info[key] for key in ("trace_fisher_upper", "input_rounding_upper", "mi_rounding_allowance", "alpha",
                                   "alpha_each", "mc_quantities", "eta2_deterministic", "eta2_confidence",
                                   "deterministic_why_not")}},
                    ce, {"mean": dfil, "stderr": 0.0, "n": len(obs), "exact": True}, cap, warns)


def _entropy_reference(split, prior, cfg) -> tuple[float, float, float, str]:
    """(H(x) used, its s.e., an upper limit of H(x), what it is) for the estimated route."""
    if prior is not None:
        hx = theory.mixture_entropy_mc(prior, cfg.n_mc, numpy_rng(cfg.seed, "mc", 2))
        return hx.value, hx.stderr, theory.mixture_entropy_bounds(prior, which="upper")["upper"], (
            f"H(x) = {hx.value:.4f} ± {hx.stderr:.2g} nats (Monte Carlo, known prior)")
    x = split.train.x.reshape(len(split.train), -1).double()
    if float(x.min()) >= 0 and float(x.max()) <= 1:
        return 0.0, 0.0, 0.0, ("H(x) replaced by 0, the entropy of the uniform law on [0, 1]^d — an upper bound on "
                               "H(x), so the floor is relative, not certified")
    cov = torch.cov(x.T).reshape(x.shape[1], x.shape[1])
    h = float(0.5 * (x.shape[1] * math.log(2 * math.pi * math.e) + torch.linalg.slogdet(cov)[1]))
    return h, 0.0, h, (f"H(x) replaced by the Gaussian max-entropy ½ log|2πe Cov x| = {h:.4g} of the training data "
                       "(an upper bound on H(x), estimated), so the floor is relative, not certified")


def _fisher(model, split, cfg, dev, s_tot: float, amap) -> tuple[np.ndarray | None, str, dict]:
    d = int(np.prod(split.input_shape))
    if amap is not None:
        v = float((amap.A ** 2).sum()) / (s_tot ** 2 * d)
        return np.full(len(split.test), v), "", {"mean": v, "stderr": 0.0, "n": len(split.test), "exact": True}
    x = split.test.x[:cfg.fisher_samples]
    try:
        dfil = fisher_per_input(model.encode, x, sigma=s_tot, seed=cfg.seed, device=dev)
    except NotDifferentiable as exc:
        return None, str(exc), {"reason": str(exc)}
    except RuntimeError as exc:  # autograd refused (a custom Function without backward ...)
        why = f"the encoder is not differentiable (autograd: {str(exc).splitlines()[0][:200]})"
        return None, why, {"reason": why}
    se = float(dfil.std(ddof=1) / math.sqrt(len(dfil))) if len(dfil) > 1 else 0.0
    return dfil, "", {"mean": float(dfil.mean()), "stderr": se, "n": int(len(dfil)), "exact": False}


def _estimated(model, subject, cfg, dev, encoder_noise: float, why: str, amap) -> Analysis:
    split, prior = subject.split, subject.prior
    d = int(np.prod(split.input_shape))
    h_x, h_se, h_up, note = _entropy_reference(split, prior, cfg)
    z = encode_all(model, split.train.x[:FIT_MAX_SAMPLES])
    bounds, info = fitted_bounds(z, split.train.y[:FIT_MAX_SAMPLES], split.num_classes, noise_sd=cfg.noise,
                                 encoder_noise=encoder_noise, h_x=h_x, h_stderr=h_se, h_note=note, d=d,
                                 k_per_class=cfg.k_per_class)
    s_tot = math.sqrt(cfg.noise ** 2 + encoder_noise ** 2)
    dfil, fwhy, dfil_info = _fisher(model, split, cfg, dev, s_tot, amap)
    pf = theory.mixture_prior_fisher_mc(prior, cfg.n_mc, numpy_rng(cfg.seed, "mc", 3)) if prior is not None else None
    bounds.update(fisher_bounds(dfil, fwhy, d=d, exact=amap is not None, prior_fisher=pf))
    ub = info.get("mi_upper_bounds")
    ce = {"h_x": h_x, "h_x_stderr": h_se, "d_features": int(z.shape[1]), "guarantee": "none",
          **({m: h_x - ub[m] for m in THM12} if ub else {})}
    cap = _safe_floor(h_up - min(ub.values()), d) if ub else None
    warns = []
    if dfil is None:
        warns.append(f"non-differentiable encoder: {fwhy} — no Fisher-information bound, and the optimization "
                     f"attack cannot follow gradients")
    else:
        zero = float(np.mean(dfil <= 0))
        if zero >= PIECEWISE_CONSTANT_FRACTION:
            warns.append(f"piecewise-constant encoder: its Jacobian is zero on {zero:.1%} of the held-out inputs probed "
                         f"(rounding or another step function) — Fisher-information bounds do not apply, and the "
                         f"fitted-mixture floors model a discrete ẑ by Gaussians")
        elif zero > 0:
            warns.append(f"the encoder's Jacobian is zero on {zero:.1%} of the held-out inputs probed (non-zero on "
                         f"{1 - zero:.1%}; e.g. ReLU units all off there): E[1/dFIL] is infinite, so the Cramér–Rao "
                         f"and van Trees floors are not finite")
    return Analysis(bounds, [], why, amap.summary() if amap is not None else None, ce, dfil_info, cap, warns)
