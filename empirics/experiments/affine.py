r"""The exact affine map of an encoder that is affine by construction, and how far the deployed one departs.

check-defense certifies a bound only for *the channel deployed*.  For an encoder built only from
layers that are affine in eval mode (Linear, Conv1d/2d/3d, transposed convolutions, average
pooling, eval-mode BatchNorm with running statistics, Dropout in eval mode, Flatten, Unflatten,
Identity, composed in ``nn.Sequential``), the map :math:`\hat z = A\,\mathrm{vec}(x) + b` is read
off the parameters in float64:

* :func:`exact_affine_map` — a float64 *copy* of the encoder (the user's module is never touched);
  :math:`A` is its Jacobian at 0 by forward-mode differentiation (no finite differences, so no
  cancellation against a large bias: an audit's repro, bias 8192 and weights ~0.01, had A read
  off as :math:`f(e_i) - f(0)` in float32 with a 4 % error), :math:`b` its value at 0.  The map is
  confirmed on data against the same float64 copy with a tolerance relative to the output's
  *variation* (its standard deviation per coordinate), plus the float64 rounding allowance of a
  dot product with those magnitudes — never relative to the output's magnitude, which a bias can
  make arbitrarily large.
* :func:`deployed_departure` — the deployed encoder (float32, on its device, fed float32 inputs)
  is *not* that map: every layer rounds, and so does the input.  With :math:`\delta(x) =
  f_{\text{deployed}}(x) - (Ax + b)` and the noise covariance :math:`\sigma^2 I`, it measures
  :math:`\eta^2 = E\|\delta(x)/\sigma\|^2` over draws from the prior, with an upper confidence
  limit.
* :func:`departure_correction` — the price of that departure in nats, from the lemma below.

**Lemma** (what makes a bound on the float64 channel a bound on the deployed one).  Let
:math:`z = \mu(x) + \varepsilon` and :math:`z' = \mu(x) + \delta(x) + \varepsilon` with
:math:`\varepsilon\sim\mathcal N(0, I)` (whitened coordinates: divide by σ) independent of x.
Then

.. math:: I(x; z') \le I(x; z) + \eta\sqrt{\operatorname{Tr} J(z)} + \tfrac12\eta^2,
          \qquad \eta^2 = E\|\delta(x)\|^2,

where :math:`J(z)` is the Fisher information matrix of the law of z (location family), and
:math:`\operatorname{Tr}J(z) \le k` always.  *Proof.*  (1) The "golden formula":
:math:`I(x;z') = \min_q E_x\,\mathrm{KL}(p_{z'|x}\|q) \le E_x\,\mathrm{KL}(p_{z'|x}\|p_z)`.
(2) With :math:`\psi = -\log p_z`, :math:`\mathrm{KL}(p_{z'|x}\|p_z) = E_\varepsilon[\log
\phi(\varepsilon) + \psi(\mu + \delta + \varepsilon)]`.  (3) :math:`p_z` is a law convolved with
:math:`\mathcal N(0, I)`, so :math:`\nabla^2\psi = I - \operatorname{Cov}(\mu|z) \preceq I`
(Tweedie) and :math:`\psi(y+\delta) \le \psi(y) + \nabla\psi(y)\cdot\delta + \tfrac12\|\delta\|^2`.
(4) Averaging over :math:`\varepsilon` and x: :math:`E_x\mathrm{KL}(p_{z'|x}\|p_z) \le I(x;z) +
E_x[\delta\cdot G(x)] + \tfrac12\eta^2` with :math:`G(x) = E_\varepsilon\nabla\psi(\mu(x)+
\varepsilon)`.  (5) Cauchy–Schwarz and Jensen: :math:`|E_x[\delta\cdot G]| \le \eta\,(E\|\nabla
\log p_z(z)\|^2)^{1/2} = \eta\sqrt{\operatorname{Tr}J(z)}`, and :math:`J(z) \preceq J(\varepsilon)
= I` (Fisher information does not grow under convolution).  ∎

So with :math:`H(x|z') = H(x) - I(x;z')` and any upper bound U on :math:`I(x;z)` (Thm 2's Huber
sum, Kolchinsky–Tracey's, max-entropy), Theorem 1 applied to
:math:`H(x) - U - \eta\sqrt{\operatorname{Tr}J} - \eta^2/2` is a floor for every attacker of the
deployed channel.  No mixture or differentiability assumption is made about :math:`\delta`: it
may be a piecewise-constant rounding error.  (The Gaussian noise itself is taken as exact
:math:`\mathcal N(0,\sigma^2 I)`; the float32 rounding of :math:`\hat z + \varepsilon` is a
post-processing of z, which cannot help an attacker.)  The attack's target is the float32 input
:math:`x_{32}`, not x: the triangle inequality in :math:`L^2` turns a floor B for x into
:math:`(\sqrt B - r)^2` for :math:`x_{32}`, with r the root-mean-square rounding of the input
(:func:`input_rounding_floor`).

The expectations :math:`\eta^2`, :math:`r^2` and :math:`\operatorname{Tr}J(z)` are Monte-Carlo
averages over draws from the prior; their upper :data:`UPPER_SE`-standard-error limits are used
(the same standard as H(x), whose Monte-Carlo error enters the comparisons as a standard error).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

__all__ = ["AFFINE_LAYERS", "AffineMap", "affine_by_construction", "exact_affine_map", "deployed_departure",
           "departure_correction", "input_rounding_floor", "UPPER_SE"]

#: module types that are affine maps in eval mode.  Exact types only: a subclass may override
#: ``forward``.  (Lazy modules become one of these after their first forward pass.)
AFFINE_LAYERS = (nn.Sequential, nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d,
                 nn.ConvTranspose2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
                 nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout, nn.Flatten, nn.Unflatten, nn.Identity)

#: a map is confirmed affine when the float64 copy and ``A x + b`` agree to this fraction of the
#: output's variation (s.d. per coordinate).  A real nonlinearity shows errors of the order of the
#: variation itself; float64 evaluation of an affine map errs by ~1e-16 relative to magnitudes,
#: which the rounding allowance below covers separately.
AFFINE_RTOL = 1e-6
#: float64 rounding allowance: |error| <= ROUNDING_SLACK · n · eps64 · (|A||x| + |b|) per
#: coordinate — Higham's bound γ_n for a dot product of n terms, with a factor for a composition
#: of several layers (each adds its own γ)
ROUNDING_SLACK = 64
#: largest A (entries) built: 2·10⁷ float64 = 160 MB; beyond it the encoder is not certified
MAX_AFFINE_ENTRIES = 20_000_000
#: upper confidence limits of Monte-Carlo means use this many standard errors (one-sided ~3e-5)
UPPER_SE = 4.0
#: prior draws per forward pass of the deployed encoder when measuring its departure
DEPARTURE_BATCH = 1024


def affine_by_construction(module: nn.Module) -> str:
    """Why ``module`` is not affine by construction in eval mode ("" when it is)."""
    from torch.nn.modules import module as _m  # deferred: torch's private module, read only here
    if _m._global_forward_hooks or _m._global_forward_pre_hooks:
        return "global forward hooks are registered (they may change any module's output)"
    for name, m in module.named_modules():
        where = f"its module {name!r}" if name else "the encoder"
        if type(m) not in AFFINE_LAYERS:
            return f"{where} is a {type(m).__name__}, not one of the layers known to be affine in eval mode"
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and (not m.track_running_stats or m.running_mean is None):
            return f"{where} is a BatchNorm without running statistics (batch statistics in eval mode: not a fixed map)"
        if m._forward_hooks or m._forward_pre_hooks or getattr(m, "_forward_hooks_with_kwargs", None) \
                or "forward" in vars(m):
            return f"{where} has forward hooks or an instance-level forward (may be anything)"
    return ""


@dataclass
class AffineMap:
    """``ẑ = A·vec(x) + b`` in float64 (numpy), with how it was confirmed."""

    A: np.ndarray  # (k, d)
    b: np.ndarray  # (k,)
    input_shape: tuple
    output_shape: tuple
    check: dict = field(default_factory=dict)

    def __call__(self, x64: np.ndarray) -> np.ndarray:
        return x64.reshape(len(x64), -1) @ self.A.T + self.b

    def summary(self) -> dict:
        return {"k": int(self.A.shape[0]), "d": int(self.A.shape[1]), "input_shape": list(self.input_shape),
                "output_shape": list(self.output_shape), "frobenius_norm": float(np.linalg.norm(self.A)),
                "bias_max_abs": float(np.abs(self.b).max()), **self.check}


def _float64_copy(encoder: nn.Module) -> nn.Module:
    return copy.deepcopy(encoder).to(device="cpu", dtype=torch.float64).eval()


def exact_affine_map(encoder: nn.Module, input_shape, x_check) -> tuple[AffineMap | None, str]:
    """``(AffineMap, "")`` for an encoder affine by construction, else ``(None, reason)``.

    ``x_check`` (N, *input_shape): inputs on which the map is confirmed against the float64 copy
    (tolerance: :data:`AFFINE_RTOL` of the output's s.d. per coordinate plus the float64 rounding
    allowance).  The encoder's own parameters are read, never modified.

    Examples
    --------
    A bias of 8192 next to weights of 0.01: the float64 Jacobian is the parameter exactly.

    >>> lin = nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = lin.weight.copy_(torch.tensor([[0.01, 0.0], [0.0, 0.02]])); _ = lin.bias.fill_(8192.0)
    >>> amap, why = exact_affine_map(lin, (2,), torch.randn(10, 2))
    >>> bool((amap.A == lin.weight.detach().double().numpy()).all()), amap.b.tolist(), why
    (True, [8192.0, 8192.0], '')
    >>> exact_affine_map(nn.Sequential(nn.Linear(2, 2), nn.ReLU()), (2,), torch.randn(10, 2))[1]
    "its module '1' is a ReLU, not one of the layers known to be affine in eval mode"
    """
    why = affine_by_construction(encoder)
    if why:
        return None, why
    shape = tuple(int(s) for s in input_shape)
    d = int(np.prod(shape))
    enc64 = _float64_copy(encoder)
    with torch.no_grad():
        b = enc64(torch.zeros((1, *shape), dtype=torch.float64))
    out_shape, k = tuple(b.shape[1:]), int(b[0].numel())
    if k * d > MAX_AFFINE_ENTRIES:
        return None, f"the affine map has {k}×{d} entries, more than the {MAX_AFFINE_ENTRIES} built"

    def f(v):
        return enc64(v.reshape(1, *shape)).reshape(-1)

    A = torch.func.jacfwd(f)(torch.zeros(d, dtype=torch.float64)).detach()
    amap = AffineMap(A.numpy(), b.reshape(-1).numpy(), shape, out_shape)
    x64 = torch.as_tensor(x_check).to(torch.float64).reshape(-1, *shape)
    with torch.no_grad():
        got = enc64(x64).reshape(len(x64), -1).numpy()
    xs = x64.reshape(len(x64), -1).numpy()
    err = np.abs(amap(xs) - got).max(0)
    variation = got.std(0) if len(got) > 1 else np.zeros(k)
    scale = (np.abs(xs) @ np.abs(amap.A).T + np.abs(amap.b)).max(0)
    tol = AFFINE_RTOL * variation + ROUNDING_SLACK * (d + 1) * np.finfo(np.float64).eps * scale
    worst = int(np.argmax(err - tol))
    amap.check = {"confirmed_on": int(len(x64)), "max_error_float64": float(err.max()),
                  "max_error_over_variation": float((err / np.maximum(variation, 1e-300)).max())}
    if err[worst] > tol[worst]:
        return None, (f"the float64 copy is not affine on the data: output {worst} errs by {err[worst]:.3g} "
                      f"(tolerance {tol[worst]:.3g}, output s.d. {variation[worst]:.3g})")
    return amap, ""


@torch.no_grad()
def deployed_departure(encode, amap: AffineMap, x64: np.ndarray, noise_sd: float, *, device) -> dict:
    """How far the deployed encoder departs from ``amap`` on float64 prior draws ``x64``.

    ``encode``: the deployed encoder as called by the attacks (fed the float32 inputs the data
    holds).  Returns ``eta2`` = mean of ‖δ/σ‖² (± ``eta2_stderr``, ``eta2_upper`` its upper
    :data:`UPPER_SE` limit), ``max_abs`` = max |δ|, ``max_over_variation`` = max |δⱼ| / s.d.ⱼ of
    ẑ, and ``input_rms`` / ``input_rms_upper`` = root-mean-square rounding of x to float32 per element.
    """
    x32 = torch.as_tensor(x64, dtype=torch.float32)
    outs = []
    for i in range(0, len(x32), DEPARTURE_BATCH):
        xb = x32[i:i + DEPARTURE_BATCH]
        outs.append(encode(xb.to(device)).reshape(len(xb), -1).double().cpu())
    dep = torch.cat(outs).numpy()
    ideal = amap(x64)
    delta = dep - ideal
    e2 = (delta ** 2).sum(1) / noise_sd ** 2
    n = len(e2)
    se = float(e2.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    r2 = ((x32.double().numpy() - x64) ** 2).reshape(n, -1).mean(1)
    r2_up = float(r2.mean() + UPPER_SE * (r2.std(ddof=1) / math.sqrt(n) if n > 1 else math.inf))
    variation = np.maximum(ideal.std(0), 1e-300)
    return {"n": n, "eta2": float(e2.mean()), "eta2_stderr": se, "eta2_upper": float(e2.mean() + UPPER_SE * se),
            "max_abs": float(np.abs(delta).max()), "max_over_variation": float((np.abs(delta) / variation).max()),
            "input_rms": float(math.sqrt(r2.mean())), "input_rms_upper": math.sqrt(max(r2_up, 0.0))}


def departure_correction(eta2_upper: float, trace_fisher_upper: float) -> float:
    """Nats added to an upper bound on I(x; z) by the lemma: η·√Tr J + η²/2 (whitened units).

    >>> round(departure_correction(0.04, 1.0), 12)      # η = 0.2: 0.2·1 + 0.02
    0.22
    """
    if not (eta2_upper >= 0 and trace_fisher_upper >= 0):
        raise ValueError(f"eta2_upper, trace_fisher_upper: expected non-negative numbers, got "
                         f"{eta2_upper!r}, {trace_fisher_upper!r}")
    return math.sqrt(eta2_upper * trace_fisher_upper) + 0.5 * eta2_upper


def input_rounding_floor(bound: float, rms_upper: float) -> float:
    """A floor for the MSE against the float32 inputs from a floor ``bound`` for the exact ones.

    ‖x₃₂ − x̂‖ ≥ ‖x − x̂‖ − ‖x − x₃₂‖ in L²: MSE₃₂ ≥ (√bound − r)² when √bound > r (else 0).

    >>> round(input_rounding_floor(0.25, 0.1), 12)      # (0.5 − 0.1)²
    0.16
    """
    root = math.sqrt(bound) - rms_upper
    return root * root if root > 0 else 0.0
