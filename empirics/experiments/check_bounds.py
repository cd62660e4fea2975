r"""The bounds check-defense holds an encoder to, each with its assumptions and whether they hold.

* :func:`certified_bounds` — an encoder affine by construction (:mod:`.affine`) on a *known*
  Gaussian-mixture prior: ẑ of the float64 map is exactly the pushed-forward mixture, H(x) is known
  up to Monte-Carlo error, and the deployed float32 encoder's departure is paid for by the lemma
  of :mod:`.affine`, so the Theorem 1 + 2 floors (``huber`` = Thm 2 as printed, ``kl``, ``maxent``;
  CEM paper Thms 1-2, docs/ground-truths.md) are certificates for every attacker of the deployed channel.
  van Trees is exact for the float64 affine channel; it is a certificate of the deployed channel
  only if that channel *is* the float64 map (rounding makes z|x discontinuous in x, which Fisher
  information does not see).
* :func:`fitted_bounds` — anything else: a per-class Gaussian mixture fitted to the features; every
  floor is an estimate (``rigorous: false``), relative to H(x) when the prior is unknown.
* :func:`fisher_per_input` / :func:`fisher_bounds` — dFIL by Hutchinson per held-out input; the
  Cramér–Rao floor (unbiased attackers only) and, with a known prior, van Trees.
* :func:`bayes_attack` — the exact posterior mean of the float64 affine channel
  (:func:`theory.mixture_posterior`) applied to the *deployed* observations: the attack ``bayes``,
  and the exact MMSE of the float64 channel per observation (a paired reference).

A floor that is infinite or NaN is reported as "no finite bound" with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

import theory

from ..defenses.cem.mixture import fit_class_mixture
from ..seeding import torch_generator
from .affine import UPPER_SE, AffineMap, departure_correction, input_rounding_floor

__all__ = ["Bound", "NotDifferentiable", "certified_bounds", "fitted_bounds", "fisher_per_input", "fisher_bounds",
           "bayes_attack", "THM12", "FIT_MAX_SAMPLES"]

#: the three upper bounds on I(z; ẑ) turned into Theorem 1 floors
THM12 = ("huber", "kl", "maxent")
#: features used to fit the class mixture (EM cost grows linearly; 5000 fit the digits features well)
FIT_MAX_SAMPLES = 5000
#: Hutchinson probes per input for Tr JᵀJ (each one vector–Jacobian product)
FISHER_PROBES = 8
#: inputs per batch of vector–Jacobian products (memory: batch × probes graphs are not kept)
FISHER_BATCH = 64


class NotDifferentiable(ValueError):
    """The encoder has no usable Jacobian (no autograd graph, or a zero Jacobian everywhere probed)."""


@dataclass
class Bound:
    """One floor on the per-element MSE of any (or: any unbiased) attacker."""

    value: float | None
    rigorous: bool
    assumptions: str
    stderr: float = 0.0
    per_input: np.ndarray | None = None  # per held-out input (first len(...) inputs) for paired tests
    any_attacker: bool = True  # False: holds for unbiased attackers only (Cramér–Rao)

    def __post_init__(self):
        if self.value is not None and not math.isfinite(self.value):
            why = "infinite" if self.value == math.inf else f"{self.value}"
            self.assumptions = f"no finite bound (the value is {why}): {self.assumptions}"
            self.value, self.rigorous, self.per_input = None, False, None

    @property
    def finite(self) -> bool:
        return self.value is not None

    def to_dict(self) -> dict:
        return {"value": self.value, "stderr": float(self.stderr), "rigorous": bool(self.rigorous),
                "finite": self.finite, "assumptions": self.assumptions}


def no_bound(reason: str) -> Bound:
    return Bound(None, False, f"no finite bound: {reason}")


def _thm1_floor(h_cond: float, d: int) -> float:
    try:
        return theory.mse_lower_bound(h_cond, d)
    except (OverflowError, ValueError):
        return math.inf if h_cond > 0 else math.nan


def certified_bounds(gmm, amap: AffineMap, noise_var: float, *, hx, departure: dict, trace_fisher,
                     prior_fisher) -> tuple[dict, dict]:
    """Floors of the deployed affine channel on a known prior; returns ``(bounds, info)``.

    ``hx``: Monte-Carlo H(x) (:class:`theory.Estimate`), its s.e. propagated to each floor by the
    delta method (a floor is exp(2H/d)/(2πe)·…, so s.e. = floor·2·s.e.(H)/d).  ``departure``:
    :func:`.affine.deployed_departure`; ``trace_fisher``: Tr J(z) of the float64 channel in
    whitened units (Monte Carlo; its upper limit is used, capped by the proven k); ``prior_fisher``:
    Tr J(prior) for van Trees.
    """
    d, k = amap.A.shape[1], amap.A.shape[0]
    w, means, covs = theory.affine_pushforward(gmm, amap.A)  # translation by b changes no entropy
    ub = theory.mutual_information_upper_bounds(w, means, covs, noise_var * np.eye(k))
    tj_up = min(float(k), trace_fisher.value + UPPER_SE * trace_fisher.stderr)
    corr = departure_correction(departure["eta2_upper"], tj_up)
    r_up = departure["input_rms_upper"]
    how = (f"ẑ = A x + b read off the parameters in float64 (exact), so the float64 channel's ẑ is exactly the "
           f"known mixture pushed forward; H(x) = {hx.value:.4f} ± {hx.stderr:.2g} nats (Monte Carlo, its s.e. in "
           f"the comparisons); the deployed float32 encoder departs from the float64 map by η² = "
           f"{departure['eta2']:.3g} (mean ‖δ/σ‖², upper limit {departure['eta2_upper']:.3g}), paid for by "
           f"η√Tr J + η²/2 = {corr:.3g} nats (Tr J(z) ≤ {tj_up:.3g}); float32 input rounding r ≤ {r_up:.2g}")
    out = {}
    for m in THM12:
        b64 = _thm1_floor(hx.value - ub[m] - corr, d)
        val = input_rounding_floor(b64, r_up) if math.isfinite(b64) else b64
        se = (2 * val / d) * hx.stderr
        out[f"thm1+thm2_{m}"] = Bound(val, True, f"Thm 1 with H(x|z) >= H(x) - U_{m} - (η√Tr J + η²/2); {how}",
                                      stderr=se)
    tr_if = float((amap.A ** 2).sum()) / noise_var
    total = tr_if + prior_fisher.value
    vt = d / total
    exact = departure["eta2"] == 0.0 and departure["input_rms"] == 0.0
    out["van_trees"] = Bound(vt, exact, (
        f"any attacker of the float64 affine channel: MSE/d >= d / (‖A‖²_F/σ² + Tr J_prior), Tr J_prior = "
        f"{prior_fisher.value:.4g} ± {prior_fisher.stderr:.2g} (Monte Carlo); "
        + ("the deployed channel is that map exactly" if exact else
           "not a certificate of the deployed float32 channel: its rounding (η² = "
           f"{departure['eta2']:.3g}) makes z|x discontinuous in x, which Fisher information does not see")),
        stderr=vt * prior_fisher.stderr / total)
    info = {"mi_upper_bounds": {m: ub[m] for m in THM12}, "departure_nats": corr, "trace_fisher_upper": tj_up,
            "h_x": hx.value, "h_x_stderr": hx.stderr}
    return out, info


def fitted_bounds(z: torch.Tensor, y: torch.Tensor, num_classes: int, *, noise_sd: float, encoder_noise: float,
                  h_x: float, h_stderr: float, h_note: str, d: int, k_per_class: int) -> tuple[dict, dict]:
    """Theorem 1 + 2 *estimates* from a per-class mixture fitted to features ``z`` (N, k) float64.

    Whitened by the total noise s.d. √(σ² + σₑ²); a declared internal encoder noise σₑ is part of
    the fitted covariances and is moved to the channel noise (subtracted from them), so that
    ½ log|Σᵢ + Σp|/|Σp| has the internal noise in its denominator.
    """
    s_tot = math.sqrt(noise_sd ** 2 + encoder_noise ** 2)
    k = z.shape[1]
    try:
        fit = fit_class_mixture(z / s_tot, y, num_classes=num_classes, k_per_class=k_per_class)
        covs = _psd_part(fit.covs.numpy() - (encoder_noise ** 2 / s_tot ** 2) * np.eye(k)[None])
        w = fit.weights.numpy() / fit.weights.numpy().sum()
        ub = theory.mutual_information_upper_bounds(w, fit.means.numpy(), covs, np.eye(k))
    except (ValueError, RuntimeError, np.linalg.LinAlgError) as exc:
        reason = f"the class mixture could not be fitted to the features ({type(exc).__name__}: {exc})"
        return {f"thm1+thm2_{m}": no_bound(reason) for m in THM12}, {}
    out = {}
    for m in THM12:
        val = _thm1_floor(h_x - ub[m], d)
        out[f"thm1+thm2_{m}"] = Bound(val, False, (
            f"Thm 1 with H(x|z) >= H(x) - U_{m}; ẑ modelled by a per-class Gaussian mixture fitted to the features "
            f"(an estimate: the encoder output is not exactly a mixture); {h_note}"),
            stderr=2 * val / d * h_stderr if math.isfinite(val) else 0.0)
    return out, {"mi_upper_bounds": {m: ub[m] for m in THM12}, "k_components": int(len(w))}


def _psd_part(covs: np.ndarray) -> np.ndarray:
    """Each symmetric matrix with its negative eigenvalues raised to 0 (a fitted covariance minus a
    declared internal noise may dip below 0; raising it only loosens the upper bound on I(z; ẑ))."""
    sym = 0.5 * (covs + np.swapaxes(covs, 1, 2))
    vals, vecs = np.linalg.eigh(sym)
    return np.einsum("kij,kj,klj->kil", vecs, np.clip(vals, 0.0, None), vecs)


def fisher_per_input(encode, x: torch.Tensor, *, sigma: float, seed: int, device) -> np.ndarray:
    """dFIL(x) = Tr J(x)ᵀJ(x) / (σ² d) per input by Hutchinson (:data:`FISHER_PROBES` probes)."""
    g = torch_generator(int(seed), "mc", 1)
    d = x[0].numel()
    per = []
    with torch.enable_grad():
        for i in range(0, len(x), FISHER_BATCH):
            xb = x[i:i + FISHER_BATCH].to(device).clone().requires_grad_(True)
            z = encode(xb).flatten(1)
            if not z.requires_grad:
                raise NotDifferentiable("the encoder's output has no autograd graph (not differentiable)")
            acc = torch.zeros(len(xb), dtype=torch.float64)
            for _ in range(FISHER_PROBES):
                v = torch.randn(z.shape, generator=g).to(z.device, z.dtype)
                (gx,) = torch.autograd.grad(z, xb, v, retain_graph=True, allow_unused=True)
                if gx is not None:
                    acc += gx.flatten(1).double().pow(2).sum(1).cpu()
            per.append(acc / FISHER_PROBES / (sigma ** 2 * d))
    return torch.cat(per).numpy()


def fisher_bounds(dfil: np.ndarray | None, why: str, *, d: int, exact: bool, prior_fisher=None) -> dict:
    """Cramér–Rao (unbiased attackers) and, with a known prior, van Trees from per-input dFIL.

    ``dfil`` None (``why`` says why) or zero anywhere: no finite bound — a piecewise-constant
    encoder (rounding) has a zero Jacobian almost everywhere yet reveals its input through its
    jumps, which the Fisher information does not see.
    """
    if dfil is None or not np.all(dfil > 0):
        reason = why or "the encoder's Jacobian is zero on held-out inputs (piecewise constant, e.g. rounding): " \
                        "Fisher-information bounds need a differentiable channel"
        out = {"cramer_rao_dfil": no_bound(reason)}
        if prior_fisher is not None:
            out["van_trees"] = no_bound(reason)
        return out
    inv = 1.0 / dfil
    how = "exact (affine encoder: J = A)" if exact else "Hutchinson estimate of Tr JᵀJ"
    out = {"cramer_rao_dfil": Bound(float(inv.mean()), False, (
        f"unbiased attackers only: MSE/d >= E[1/dFIL] ({how}, per held-out input); trained decoders are biased "
        f"and may go below it"), per_input=inv, any_attacker=False)}
    if prior_fisher is not None:
        total = d * float(dfil.mean()) + prior_fisher.value
        out["van_trees"] = Bound(d / total, False, (
            f"any attacker: MSE/d >= d / (Tr E[I_F] + Tr J_prior); Tr E[I_F] by {how} (an estimate for a "
            f"non-affine encoder); Tr J_prior = {prior_fisher.value:.4g} ± {prior_fisher.stderr:.2g} (Monte Carlo)"),
            stderr=d * prior_fisher.stderr / total ** 2)
    return out


def bayes_attack(gmm, amap: AffineMap, noise_var: float, obs: torch.Tensor, x: torch.Tensor):
    """The exact posterior mean of the float64 affine channel on the deployed observations.

    Returns ``(errors, mmse)`` per held-out input, both per element: the squared error of
    E[x | z = obs] against the inputs, and Tr Cov(x | z = obs)/d, the exact MMSE of the float64
    channel at that observation (its mean over draws is the MMSE; paired with any attack that
    reconstructs from the same observations).
    """
    k, d = amap.A.shape
    post = theory.mixture_posterior(gmm, amap.A, noise_var * np.eye(k))
    zc = obs.reshape(len(obs), -1).double().cpu().numpy() - amap.b
    xh = post.mean(zc)
    x64 = x.reshape(len(x), -1).double().cpu().numpy()
    return ((x64 - xh) ** 2).mean(1), post.trace_cov(zc) / d
