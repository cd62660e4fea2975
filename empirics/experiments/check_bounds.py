r"""The bounds check-defense holds an encoder to, each with its guarantee and its assumptions.

Every bound carries ``guarantee`` (issue 18), one of :data:`GUARANTEES`:

* ``"deterministic"`` — only exactly known quantities and proved inequalities; nothing random;
* ``"confidence"`` — Monte-Carlo quantities enter through one-sided confidence limits computed
  from the draws actually made; the bound holds with probability ≥ ``confidence`` = 1 − α
  (α family-wise, Bonferroni over the Monte-Carlo quantities it uses);
* ``"none"`` — an estimate or a reference (a point estimate is never called a floor); an attack
  may go below it without a bug.

* :func:`certified_bounds` — an encoder affine by construction (:mod:`.affine`) on a *known*
  Gaussian-mixture prior.  Each floor is Theorem 1 (CEM paper Thm 1; docs/ground-truths.md) applied to

  .. math:: H(x|z') \ge H_- - U_m - \rho - \big(\eta\sqrt{\operatorname{Tr}J} + \tfrac12\eta^2\big),

  then moved from x to the float32 target x₃₂ by the triangle inequality, (√B − r)², where
  U_m (m = huber [Thm 2 as printed], kl, maxent) is an upper bound on I(z; ẑ) of the float64 map,
  exact for the affine pushforward (:func:`theory.affine_mutual_information_upper_bounds`, with ρ
  its float64 rounding allowance), η√Tr J + η²/2 pays for the deployed float32 encoder's departure
  (the lemma of :mod:`.affine`) and r bounds the input's rounding (:func:`.affine.input_rounding_bound`).

  - ``thm1+thm2_<m>.deterministic``: :math:`H_-` = max(ELK, Chernoff-α) lower bound on H(x)
    (:func:`theory.mixture_entropy_bounds`, Huber et al. 2008, Kolchinsky & Tracey 2017) less a
    float64 allowance; η² from the rounding-error analysis (:func:`.affine.rounding_departure_bound`);
    Tr J ≤ Σ wᵢ Tr Cᵢ⁻¹ (convexity, :func:`theory.affine_output_fisher_trace_upper`).  Exists only
    when the rounding analysis covers the encoder (Linear layers and reshapes, float32).
  - ``thm1+thm2_<m>.confidence``: :math:`H_-` = the lower confidence limit of
    :func:`theory.mixture_entropy_lower_limit` (no CLT); η² from the rounding analysis when it
    applies, else the one-sided CLT upper limit of its Monte-Carlo mean (n ≥
    :func:`empirics.kinds.check_defense.min_mc_draws`); the level α split evenly over those that are random.

  van Trees and the exact MMSE of the float64 channel are references (``none``): rounding makes
  z|x discontinuous in x, which Fisher information does not see, and the deployed channel departs
  from the float64 one.
* :func:`fitted_bounds` — anything else: a per-class Gaussian mixture fitted to the features; every
  floor is an estimate (``none``), relative to H(x) when the prior is unknown.
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
from scipy.stats import norm

import theory

from ..defenses.cem.mixture import fit_class_mixture
from ..seeding import torch_generator
from .affine import (AffineMap, RoundingBound, departure_correction, input_rounding_bound, input_rounding_floor,
                     second_moments)

__all__ = ["Bound", "NotDifferentiable", "certified_bounds", "fitted_bounds", "fisher_per_input", "fisher_bounds",
           "bayes_attack", "THM12", "FIT_MAX_SAMPLES", "GUARANTEES", "deterministic_entropy_lower"]

#: the three upper bounds on I(z; ẑ) turned into Theorem 1 floors
THM12 = ("huber", "kl", "maxent")
#: what a bound guarantees (module docstring)
GUARANTEES = ("deterministic", "confidence", "none")
#: features used to fit the class mixture (EM cost grows linearly; 5000 fit the digits features well)
FIT_MAX_SAMPLES = 5000
#: Hutchinson probes per input for Tr JᵀJ (each one vector–Jacobian product)
FISHER_PROBES = 8
#: inputs per batch of vector–Jacobian products (memory: batch × probes graphs are not kept)
FISHER_BATCH = 64
#: float64 allowance on the closed-form entropy bounds of the prior (nats per unit of |H| + d): the
#: tests find them within ~1e-13 of closed forms; 1e-9 is a generous margin
H_ROUNDING = 1e-9
#: a Theorem 1 floor is multiplied by this to cover the float64 rounding of exp(2H/d)/(2πe)
THM1_ROUNDING = 1.0 - 1e-12


class NotDifferentiable(ValueError):
    """The encoder has no usable Jacobian (no autograd graph, or a zero Jacobian everywhere probed)."""


@dataclass
class Bound:
    """One floor on the per-element MSE of any (or: any unbiased) attacker, with its guarantee.

    ``confidence`` is 1 − α for a ``"confidence"`` floor (None otherwise).  A guaranteed floor
    (deterministic or confidence) is a fixed number, so its ``stderr`` is 0; estimates carry theirs.
    """

    value: float | None
    guarantee: str
    assumptions: str
    stderr: float = 0.0
    per_input: np.ndarray | None = None  # per held-out input (first len(...) inputs) for paired tests
    any_attacker: bool = True  # False: holds for unbiased attackers only (Cramér–Rao)
    confidence: float | None = None

    def __post_init__(self):
        if self.guarantee not in GUARANTEES:
            raise ValueError(f"guarantee: expected one of {GUARANTEES}, got {self.guarantee!r}")
        if (self.guarantee == "confidence") != (self.confidence is not None):
            raise ValueError("confidence: a confidence floor states its level 1 − α, and only a confidence floor does")
        if self.value is not None and not math.isfinite(self.value):
            why = "infinite" if self.value == math.inf else f"{self.value}"
            self.assumptions = f"no finite bound (the value is {why}): {self.assumptions}"
            self.value, self.per_input = None, None

    @property
    def finite(self) -> bool:
        return self.value is not None

    @property
    def guaranteed(self) -> bool:
        """A floor that holds for every attacker of the deployed channel (deterministically or at its level)."""
        return self.finite and self.guarantee != "none" and self.any_attacker

    def label(self) -> str:
        """'deterministic', 'confidence 0.999' or 'estimate'."""
        if self.guarantee == "confidence":
            return f"confidence {self.confidence:g}"
        return "deterministic" if self.guarantee == "deterministic" else "estimate"

    def to_dict(self) -> dict:
        return {"value": self.value, "stderr": float(self.stderr), "guarantee": self.guarantee,
                "confidence": self.confidence, "finite": self.finite, "assumptions": self.assumptions}


def no_bound(reason: str, guarantee: str = "none", confidence: float | None = None) -> Bound:
    return Bound(None, guarantee, f"no finite bound: {reason}", confidence=confidence)


def _thm1_floor(h_cond: float, d: int) -> float:
    try:
        return theory.mse_lower_bound(h_cond, d)
    except (OverflowError, ValueError):
        return math.inf if h_cond > 0 else math.nan


def deterministic_entropy_lower(prior) -> float:
    """max(ELK, Chernoff-α over the α grid) lower bound on H(x), less :data:`H_ROUNDING`·(|H| + d).

    Parameters
    ----------
    prior : theory.GaussianMixture
        The known prior of x.

    Returns
    -------
    float
        Nats.
    """
    h = theory.mixture_entropy_bounds(prior, alphas="grid", which="lower")["lower"]
    return h - H_ROUNDING * (abs(h) + prior.dim)


def _floor(h_cond: float, d: int, r: float) -> float:
    b = _thm1_floor(h_cond, d)
    return input_rounding_floor(b * THM1_ROUNDING, r) if math.isfinite(b) else b


def certified_bounds(prior, amap: AffineMap, noise_sd: float, *, hx_det: float, hx_limit, departure: dict,
                     rounding: RoundingBound | None, rounding_why: str, alpha: float,
                     prior_fisher=None) -> tuple[dict, dict]:
    r"""The deterministic and confidence floors of the deployed affine channel on a known prior.

    Returns ``(bounds, info)``.  ``hx_det``: :func:`deterministic_entropy_lower` of the prior;
    ``hx_limit``: :class:`theory.EntropyLimit` from n draws (re-evaluated here at its share of α);
    ``departure``: :func:`.affine.deployed_departure` (measured, with ``above_bound`` when
    ``rounding`` is given); ``rounding``: :func:`.affine.rounding_departure_bound` or None with
    ``rounding_why``; ``alpha``: the family-wise level of the confidence floors; ``prior_fisher``:
    Monte-Carlo Tr J(prior) for the van Trees reference.  The inequality behind each floor is in
    the module docstring.

    Parameters
    ----------
    prior : theory.GaussianMixture
        The known prior of x.
    amap : AffineMap
        The exact float64 map x ↦ A x + b (``A (k, d)``, ``b (k,)``) of the encoder.
    noise_sd : float
        σ of the channel noise.
    hx_det, hx_limit, departure, rounding, rounding_why, alpha, prior_fisher
        See above.

    Returns
    -------
    tuple of (dict, dict)
        ``bounds``: name → :class:`Bound`; ``info``: H(x|z) limits, prices and allowances.
    """
    k, d = amap.A.shape
    cov_n = noise_sd ** 2 * np.eye(k)
    ub = theory.affine_mutual_information_upper_bounds(prior, amap.A, cov_n)   # b shifts no entropy
    rho = ub["rounding"]
    tj = min(float(k), theory.affine_output_fisher_trace_upper(prior, amap.A, cov_n))
    s = second_moments(prior)
    r = input_rounding_bound(s)
    why_det = rounding_why
    eta2_det = None
    if rounding is not None:
        if departure.get("above_bound", 0) > 0:
            why_det = (f"the measured departure exceeds the float32 rounding model on {departure['above_bound']} of "
                       f"{departure['n']} draws: the backend does not compute in IEEE float32 as modelled")
        else:
            eta2_det = rounding.eta2(s, noise_sd)
    n_random = 1 if eta2_det is not None else 2            # H(x), and η² unless the rounding analysis bounds it
    a_each = alpha / n_random
    hx_conf = hx_limit.mean - math.sqrt(2.0 * hx_limit.second_moment * math.log(1.0 / a_each) / hx_limit.n)
    if eta2_det is not None:
        eta2_conf, eta_how = eta2_det, "η² from the rounding-error analysis (deterministic)"
    else:
        eta2_conf = departure["eta2"] + float(norm.isf(a_each)) * departure["eta2_stderr"]
        eta_how = (f"η² ≤ {eta2_conf:.3g}, the one-sided CLT limit at level {a_each:g} of its Monte-Carlo mean "
                   f"{departure['eta2']:.3g} ± {departure['eta2_stderr']:.2g} over {departure['n']} draws")
    corr_conf = departure_correction(eta2_conf, tj)
    common = (f"ẑ = A x + b read off the parameters in float64, so the float64 channel's ẑ is exactly the known "
              f"mixture pushed forward; U_m exact for it (float64 allowance {rho:.2g} nats); Tr J(z) ≤ {tj:.4g} "
              f"(Fisher-information convexity); float32 input rounding r ≤ {r:.2g} (round to nearest); the noise is "
              f"taken as exactly N(0, σ²I) and no value overflows float32")
    out, det_floor, conf_floor = {}, {}, {}
    level = 1.0 - alpha
    for m in THM12:
        if eta2_det is not None:
            corr_det = departure_correction(eta2_det, tj)
            h = hx_det - ub[m] - rho - corr_det
            out[f"thm1+thm2_{m}.deterministic"] = Bound(_floor(h, d, r), "deterministic", (
                f"Thm 1 with H(x|z) >= H(x) - U_{m} - ρ - (η√Tr J + η²/2); H(x) >= {hx_det:.6g} (max of the ELK and "
                f"Chernoff-α lower bounds, closed form); η² ≤ {eta2_det:.3g} by float32 rounding-error analysis "
                f"({rounding.layers} Linear layer(s); measured {departure['eta2']:.3g}), departure price "
                f"{corr_det:.3g} nats; {common}"))
            det_floor[m] = h
        else:
            out[f"thm1+thm2_{m}.deterministic"] = no_bound(f"no deterministic bound on the deployed encoder's "
                                                           f"departure: {why_det}", "deterministic")
        h = hx_conf - ub[m] - rho - corr_conf
        out[f"thm1+thm2_{m}.confidence"] = Bound(_floor(h, d, r), "confidence", (
            f"holds with probability >= {level:g} (family-wise α = {alpha:g}, Bonferroni over {n_random} Monte-Carlo "
            f"quantit{'y' if n_random == 1 else 'ies'}): Thm 1 with H(x|z) >= H(x) - U_{m} - ρ - (η√Tr J + η²/2); "
            f"H(x) >= {hx_conf:.6g}, the lower limit at level {a_each:g} of the Monte-Carlo mean {hx_limit.mean:.6g} ± "
            f"{hx_limit.stderr:.2g} over {hx_limit.n} draws (Maurer's inequality for non-negative variables, no "
            f"CLT); {eta_how}, departure price {corr_conf:.3g} nats; {common}"), confidence=level)
        conf_floor[m] = h
    if prior_fisher is not None:
        total = float((amap.A ** 2).sum()) / noise_sd ** 2 + prior_fisher.value
        vt = d / total
        out["van_trees"] = Bound(vt, "none", (
            f"a reference: any attacker of the float64 affine channel has MSE/d >= d / (‖A‖²_F/σ² + Tr J_prior), "
            f"Tr J_prior = {prior_fisher.value:.4g} ± {prior_fisher.stderr:.2g} (Monte Carlo); not a floor of the "
            f"deployed float32 channel, whose rounding (measured η² = {departure['eta2']:.3g}) makes z|x "
            f"discontinuous in x, which Fisher information does not see"), stderr=vt * prior_fisher.stderr / total)
    info = {"mi_upper_bounds": {m: ub[m] for m in THM12}, "mi_rounding_allowance": rho, "trace_fisher_upper": tj,
            "input_rounding_upper": r, "alpha": alpha, "alpha_each": a_each, "mc_quantities": n_random,
            "h_x_deterministic": hx_det, "h_x_confidence": hx_conf, "h_x": hx_limit.mean,
            "h_x_stderr": hx_limit.stderr, "eta2_deterministic": eta2_det, "eta2_confidence": eta2_conf,
            "departure_nats": {"deterministic": (departure_correction(eta2_det, tj) if eta2_det is not None
                                                 else None), "confidence": corr_conf},
            "deterministic_why_not": "" if eta2_det is not None else why_det,
            "h_x_given_z": {"deterministic": det_floor or None, "confidence": conf_floor}}
    return out, info


def fitted_bounds(z: torch.Tensor, y: torch.Tensor, num_classes: int, *, noise_sd: float, encoder_noise: float,
                  h_x: float, h_stderr: float, h_note: str, d: int, k_per_class: int) -> tuple[dict, dict]:
    """Theorem 1 + 2 *estimates* from a per-class mixture fitted to features ``z`` (N, k) float64.

    Whitened by the total noise s.d. √(σ² + σₑ²); a declared internal encoder noise σₑ is part of
    the fitted covariances and is moved to the channel noise (subtracted from them), so that
    ½ log|Σᵢ + Σp|/|Σp| has the internal noise in its denominator.

    Parameters
    ----------
    z : torch.Tensor, shape (N, k)
        Noise-free features, float64.
    y : torch.Tensor of int, shape (N,)
        Labels.
    num_classes : int
        Classes.
    noise_sd, encoder_noise : float
        σ of the channel noise and of the declared internal noise.
    h_x, h_stderr : float
        The H(x) used and its standard error (0 when it is a fixed reference).
    h_note : str
        What H(x) is, for the assumptions.
    d : int
        Input dimension.
    k_per_class : int
        Components per class.

    Returns
    -------
    tuple of (dict, dict)
        ``bounds``: name → :class:`Bound` (estimates); ``info``: the fitted H(x|z) values.
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
        # an estimate: Thm 1's floor moves by a factor exp(2ΔH/d), so s.e.(floor) = floor·2·s.e.(H)/d (delta method)
        out[f"thm1+thm2_{m}"] = Bound(val, "none", (
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
    """dFIL(x) = Tr J(x)ᵀJ(x) / (σ² d) per input by Hutchinson (:data:`FISHER_PROBES` probes).

    Parameters
    ----------
    encode : callable
        The encoder (inputs (n, *input_shape) → features (n, k)), differentiable.
    x : torch.Tensor, shape (n, *input_shape)
        Inputs.
    sigma : float
        σ of the channel noise.
    seed : int
        Seed of the probes.
    device : torch.device
        Where ``encode`` runs.

    Returns
    -------
    numpy.ndarray, shape (n,)
    """
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

    ``dfil`` None (``why`` says why) or zero anywhere: no finite bound — E[1/dFIL] is infinite
    where the Jacobian vanishes (ReLU units off, or a piecewise-constant encoder, which has a zero
    Jacobian almost everywhere yet reveals its input through its jumps).

    Parameters
    ----------
    dfil : numpy.ndarray, shape (n,), or None
        dFIL per input (:func:`fisher_per_input`).
    why : str
        Why there is none.
    d : int
        Input dimension.
    exact : bool
        The channel's Jacobian is constant (affine), so dFIL is exact.
    prior_fisher : float, optional
        Tr J(prior) of a known prior (enables van Trees).

    Returns
    -------
    dict
        Name → :class:`Bound`.
    """
    if dfil is None or not np.all(dfil > 0):
        if why:
            reason = why
        else:
            frac = float(np.mean(dfil <= 0))
            reason = (f"the encoder's Jacobian is zero on {frac:.1%} of the held-out inputs probed, where the Fisher "
                      f"information vanishes (E[1/dFIL] is infinite)")
        out = {"cramer_rao_dfil": no_bound(reason)}
        if prior_fisher is not None:
            out["van_trees"] = no_bound(reason)
        return out
    inv = 1.0 / dfil
    how = "exact (affine encoder: J = A)" if exact else "Hutchinson estimate of Tr JᵀJ"
    out = {"cramer_rao_dfil": Bound(float(inv.mean()), "none", (
        f"unbiased attackers only: MSE/d >= E[1/dFIL] ({how}, per held-out input); trained decoders are biased "
        f"and may go below it"), per_input=inv, any_attacker=False)}
    if prior_fisher is not None:
        total = d * float(dfil.mean()) + prior_fisher.value
        out["van_trees"] = Bound(d / total, "none", (
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

    Parameters
    ----------
    gmm : theory.GaussianMixture
        The known prior of x (``weights (K,)``, ``means (K, d)``, ``covs (K, d, d)``).
    amap : AffineMap
        The exact float64 map x ↦ A x + b (``A (k, d)``, ``b (k,)``) of the encoder.
    noise_var : float
        σ² of the channel noise.
    obs : torch.Tensor, shape (n, k)
        The deployed observations.
    x : torch.Tensor, shape (n, d)
        The inputs they came from.

    Returns
    -------
    tuple of (numpy.ndarray, shape (n,), numpy.ndarray, shape (n,))
    """
    k, d = amap.A.shape
    post = theory.mixture_posterior(gmm, amap.A, noise_var * np.eye(k))
    zc = obs.reshape(len(obs), -1).double().cpu().numpy() - amap.b
    xh = post.mean(zc)
    x64 = x.reshape(len(x), -1).double().cpu().numpy()
    return ((x64 - xh) ** 2).mean(1), post.trace_cov(zc) / d
