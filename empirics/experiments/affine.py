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

**What each term is, and how it is bounded** (issue 18).  The floor is *deterministic* only when
every term is: :math:`\operatorname{Tr}J(z) \le \sum_i w_i\operatorname{Tr}(I + M_iM_i^\top)^{-1}
\le k` (convexity of Fisher information, :func:`theory.affine_output_fisher_trace_upper`); the
input rounding :math:`r \le \big(\tfrac1d\sum_j(u\,s_j + \eta_{\min})^2\big)^{1/2}` with
:math:`s_j^2 = E x_j^2` in closed form (:func:`input_rounding_bound`: round-to-nearest errs by at
most :math:`u = 2^{-24}` relative, or :math:`\eta_{\min} = 2^{-150}` in the subnormal range); and
:math:`\eta^2` from a rounding-error analysis of the deployed arithmetic
(:func:`rounding_departure_bound`) — available only for encoders built from ``Linear`` layers
and exact reshapes (Flatten, Unflatten, Identity, eval Dropout) with float32 parameters and
float32 matmul precision "highest", where every output is a dot product plus bias evaluated in
IEEE binary32 in any order, so :math:`|\mathrm{fl}(w\cdot y + c) - (w\cdot y + c)| \le
\gamma_{n+1}(|w|\cdot|y| + |c|) + 2(n+1)\eta_{\min}` (Higham, *Accuracy and Stability of Numerical
Algorithms*, 2nd ed., §3.1, Lemma 3.1/Eq. 3.4; :math:`\gamma_n = nu/(1-nu)`).  Propagated through
the layers this gives :math:`|\delta(x)| \le H|x| + h` elementwise, and by Cauchy–Schwarz
:math:`E\|\delta\|^2 \le \|Hs + h\|^2`.  The bound is also checked against the measured
departure on every Monte-Carlo draw: one draw above it (a backend computing in TF32 or bf16, a
convolution algorithm outside the model) refuses the deterministic floor.  For any other
affine-by-construction encoder (convolutions, pooling, BatchNorm: the backend chooses
algorithms, e.g. Winograd, FFT or TF32, whose errors this analysis does not cover) :math:`\eta^2`
is a Monte-Carlo mean and enters through its one-sided CLT upper limit, so only a *confidence*
floor exists.  Assumptions stated rather than proved: the noise is exactly
:math:`\mathcal N(0, \sigma^2 I)` (its float32 sampler is taken as exact), and no value
overflows float32 (the prior's mass beyond 3.4·10³⁸ is neglected).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

__all__ = ["AFFINE_LAYERS", "MODELLED_LAYERS", "AffineMap", "RoundingBound", "affine_by_construction",
           "exact_affine_map", "rounding_departure_bound", "deployed_departure", "departure_correction",
           "input_rounding_bound", "input_rounding_floor", "second_moments", "U32", "ETA32"]

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
#: IEEE binary32: unit roundoff (round to nearest) and the largest absolute error of an operation
#: whose result underflows (half the smallest subnormal, 2⁻¹⁴⁹)
U32, ETA32 = 2.0 ** -24, 2.0 ** -150
#: float64 unit roundoff (the float64 map A x + b is itself evaluated in float64)
U64 = 2.0 ** -53
#: layers whose float32 arithmetic :func:`rounding_departure_bound` models (dot products + bias, and
#: reshapes that compute nothing); exact types, like AFFINE_LAYERS
MODELLED_LAYERS = (nn.Sequential, nn.Linear, nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout)
#: prior draws per forward pass of the deployed encoder when measuring its departure
DEPARTURE_BATCH = 1024


def affine_by_construction(module: nn.Module) -> str:
    """Why ``module`` is not affine by construction in eval mode ("" when it is).

    Parameters
    ----------
    module : torch.nn.Module
        The encoder.

    Returns
    -------
    str
        The first reason it is not (a layer outside the affine ones, a hook, training mode ...), or "".
    """
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

    Parameters
    ----------
    encoder : torch.nn.Module
        The encoder (read, never modified).
    input_shape : tuple of int
        One input's shape (d = its product).
    x_check : torch.Tensor, shape (N, *input_shape)
        Inputs on which the map is confirmed.

    Returns
    -------
    tuple of (AffineMap or None, str)

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


@dataclass
class RoundingBound:
    r"""``|δ(x)| ≤ H|x| + h`` elementwise for the deployed float32 encoder (:func:`rounding_departure_bound`)."""

    H: np.ndarray  # (k, d), non-negative
    h: np.ndarray  # (k,), non-negative
    layers: int

    def per_draw(self, x64: np.ndarray) -> np.ndarray:
        """The bound on |δ| at each row of ``x64`` (n, d): shape (n, k)."""
        return np.abs(x64.reshape(len(x64), -1)) @ self.H.T + self.h

    def eta2(self, moments: np.ndarray, noise_sd: float) -> float:
        r""":math:`E\|\delta/\sigma\|^2 \le \|Hs + h\|^2/\sigma^2`, ``moments`` = s (d,), :math:`s_j^2 = E x_j^2`."""
        v = self.H @ moments + self.h
        return float(v @ v) / noise_sd ** 2


def _gamma(n: int, u: float) -> float:
    if n * u >= 0.5:
        return math.inf
    return n * u / (1.0 - n * u)


def rounding_departure_bound(encoder: nn.Module, amap: AffineMap) -> tuple[RoundingBound | None, str]:
    r"""``(RoundingBound, "")`` bounding the deployed float32 encoder's departure from ``amap``, or ``(None, why)``.

    For the layers in :data:`MODELLED_LAYERS` only (module docstring).  With exact values
    :math:`y_l = W_ly_{l-1} + c_l` from :math:`y_0 = x_{32}` (the float32 input), computed values
    :math:`\hat y_l` and errors :math:`e_l = \hat y_l - y_l`, an output of a Linear layer with m
    non-zero terms (weights, and the bias; an exact zero adds no rounding) gives
    :math:`|e_l| \le |W_l||e_{l-1}| + \gamma_m(|W_l|(|y_{l-1}| + |e_{l-1}|) + |c_l|) + 2m\eta_{\min}`
    (γ taken row by row),
    and :math:`|y_l| \le P_l|x_{32}| + p_l` with the absolute-value network
    :math:`P_l = |W_l|P_{l-1}`, :math:`p_l = |W_l|p_{l-1} + |c_l|`; so :math:`|e| \le G|x_{32}| + g`
    by the recursion :math:`G_l = (1+\gamma)|W_l|G_{l-1} + \gamma|W_l|P_{l-1}`,
    :math:`g_l = (1+\gamma)|W_l|g_{l-1} + \gamma(|W_l|p_{l-1} + |c_l|) + 2m\eta_{\min}`.
    The float64 map A, b (:func:`exact_affine_map`) is itself the product of the parameters
    evaluated in float64: it differs from the exact product by at most :math:`c_{64}(P|x| + p)`,
    :math:`c_{64} = 2\sum_l(n_l + 1)u_{64}`.  Finally :math:`|x_{32}| \le (1+u)|x| + \eta_{\min}`
    and :math:`|x_{32} - x| \le u|x| + \eta_{\min}`, so with :math:`\tilde G = G + c_{64}P`,
    :math:`\delta = \hat y - (Ax + b)` obeys :math:`|\delta| \le H|x| + h`,
    :math:`H = (1+u)\tilde G + u|A|`, :math:`h = \eta_{\min}(\tilde G + |A|)\mathbf 1 + g + c_{64}p`.

    Parameters
    ----------
    encoder : torch.nn.Module
        The deployed float32 encoder.
    amap : AffineMap
        The exact float64 map x ↦ A x + b (``A (k, d)``, ``b (k,)``) of the encoder.

    Returns
    -------
    tuple of (RoundingBound or None, str)

    Examples
    --------
    The identity in float32 computes exactly (one non-zero term per output: γ₁ = u); δ is the
    input's rounding, at most u|x|, so H is ≈ 2u on the diagonal.

    >>> lin = nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = lin.weight.copy_(torch.eye(2)); _ = lin.bias.zero_()
    >>> amap, _ = exact_affine_map(lin, (2,), torch.randn(10, 2))
    >>> rb, why = rounding_departure_bound(lin, amap)
    >>> why, bool(np.all(np.diag(rb.H) >= 2.0 ** -24)), bool(rb.H.max() < 2.01 * 2.0 ** -24)
    ('', True, True)
    """
    if torch.get_float32_matmul_precision() != "highest":
        return None, (f"torch's float32 matmul precision is {torch.get_float32_matmul_precision()!r}, not 'highest' "
                      f"(TF32 / bf16 arithmetic is not the modelled IEEE float32)")
    for name, m in encoder.named_modules():
        if type(m) not in MODELLED_LAYERS:
            where = f"its module {name!r}" if name else "the encoder"
            return None, (f"{where} is a {type(m).__name__}: its float32 arithmetic (the algorithm is the backend's "
                          f"choice) is outside the rounding model, so the departure is bounded statistically")
        if isinstance(m, nn.Linear) and any(t is not None and t.dtype != torch.float32 for t in (m.weight, m.bias)):
            return None, f"its module {name!r} has {m.weight.dtype} parameters (the rounding model is float32's)"
    shape = tuple(amap.input_shape)
    d = int(np.prod(shape))
    P, p = np.eye(d), np.zeros(d)
    G, g = np.zeros((d, d)), np.zeros(d)
    c64, layers = 0.0, 0
    cur = torch.zeros((1, *shape), dtype=torch.float32)
    leaves = [m for m in encoder.modules() if not isinstance(m, nn.Sequential)]
    with torch.no_grad():
        for m in leaves:
            if isinstance(m, nn.Linear):
                n_in = m.in_features
                reps = int(np.prod(cur.shape[1:-1], dtype=np.int64))
                w = m.weight.detach().cpu().double().numpy()
                c = m.bias.detach().cpu().double().numpy() if m.bias is not None else np.zeros(w.shape[0])
                # terms that are exactly zero add no rounding: γ of the non-zero terms of each row
                terms = np.tile(np.count_nonzero(w, axis=1) + (c != 0), reps)
                gam = np.array([_gamma(int(t), U32) for t in terms])[:, None]
                if not np.all(np.isfinite(gam)):
                    return None, f"a Linear layer's fan-in {n_in} is too large for float32's error bound"
                Wa = np.kron(np.eye(reps), np.abs(w))
                ca = np.tile(np.abs(c), reps)
                a = 2 * terms * ETA32
                G, g = (1 + gam) * (Wa @ G) + gam * (Wa @ P), (1 + gam[:, 0]) * (Wa @ g) + gam[:, 0] * (Wa @ p + ca) + a
                P, p = Wa @ P, Wa @ p + ca
                c64 += 2 * (n_in + 1) * U64
                layers += 1
            cur = _run_leaf(m, cur)
    if P.shape[0] != amap.A.shape[0]:
        return None, "the layer walk does not reproduce the encoder's output size"
    Gt = G + c64 * P
    absA = np.abs(amap.A)
    H = (1 + U32) * Gt + U32 * absA
    h = ETA32 * (Gt.sum(1) + absA.sum(1)) + g + c64 * p
    return RoundingBound(H, h, layers), ""


def _run_leaf(m: nn.Module, cur: torch.Tensor) -> torch.Tensor:
    """The per-sample shape after a leaf module (a float64 copy on the CPU: the user's module is not run)."""
    mm = copy.deepcopy(m).to(device="cpu", dtype=torch.float64).eval()
    return mm(cur.to(torch.float64))


def second_moments(gmm) -> np.ndarray:
    r""":math:`s_j = (E x_j^2)^{1/2}` of a Gaussian mixture, :math:`E x_j^2 = \sum_i w_i(\mu_{ij}^2 + \Sigma_{i,jj})`.

    Parameters
    ----------
    gmm : theory.GaussianMixture
        The known prior of x (``weights (K,)``, ``means (K, d)``, ``covs (K, d, d)``).

    Returns
    -------
    numpy.ndarray, shape (d,)
    """
    ex2 = gmm.weights @ (gmm.means ** 2 + np.diagonal(gmm.covs, axis1=1, axis2=2))
    return np.sqrt(ex2)


def input_rounding_bound(moments: np.ndarray) -> float:
    r"""A bound on the root-mean-square rounding of x to float32 per element:
    :math:`r \le (\tfrac1d\sum_j(u s_j + \eta_{\min})^2)^{1/2}` (``moments`` = s).

    Parameters
    ----------
    moments : numpy.ndarray, shape (d,)
        :math:`s_j`, the root second moments of the inputs (:func:`second_moments`).

    Returns
    -------
    float

    Examples
    --------
    >>> input_rounding_bound(np.ones(4)) == 2.0 ** -24 + 2.0 ** -150
    True
    """
    v = U32 * np.asarray(moments, dtype=np.float64) + ETA32
    return float(math.sqrt(float(v @ v) / len(v)))


@torch.no_grad()
def deployed_departure(encode, amap: AffineMap, x64: np.ndarray, noise_sd: float, *, device,
                       bound: RoundingBound | None = None) -> dict:
    """How far the deployed encoder departs from ``amap`` on float64 prior draws ``x64``.

    ``encode``: the deployed encoder as called by the attacks (fed the float32 inputs the data
    holds).  Returns ``eta2`` = mean of ‖δ/σ‖² ± ``eta2_stderr`` (sample s.d./√n) and its sample
    ``eta2_skewness``, ``max_abs`` = max |δ|, ``max_over_variation`` = max |δⱼ| / s.d.ⱼ of ẑ,
    ``input_rms`` = measured root-mean-square rounding of x to float32 per element, and — with a
    :class:`RoundingBound` — ``above_bound``: the draws on which some |δⱼ| exceeds it (plus the
    float64 evaluation of A x + b, 4(d + 1)u₆₄(|A||x| + |b|)), which must be 0.

    Parameters
    ----------
    encode : callable
        The deployed encoder (float32 inputs (n, *input_shape) → features (n, k)).
    amap : AffineMap
        The exact float64 map x ↦ A x + b (``A (k, d)``, ``b (k,)``) of the encoder.
    x64 : numpy.ndarray, shape (n, d)
        Prior draws, float64.
    noise_sd : float
        σ of the channel noise.
    device : torch.device
        Where ``encode`` runs.
    bound : RoundingBound, optional
        The analysis's bound on the departure.

    Returns
    -------
    dict
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
    sd = float(e2.std(ddof=0))
    skew = float(((e2 - e2.mean()) ** 3).mean() / sd ** 3) if sd > 0 else 0.0
    r2 = ((x32.double().numpy() - x64) ** 2).reshape(n, -1).mean(1)
    variation = np.maximum(ideal.std(0), 1e-300)
    out = {"n": n, "eta2": float(e2.mean()), "eta2_stderr": se, "eta2_skewness": skew,
           "max_abs": float(np.abs(delta).max()), "max_over_variation": float((np.abs(delta) / variation).max()),
           "input_rms": float(math.sqrt(r2.mean()))}
    if bound is not None:
        xs = x64.reshape(n, -1)
        slack = 4 * (xs.shape[1] + 1) * U64 * (np.abs(xs) @ np.abs(amap.A).T + np.abs(amap.b))
        out["above_bound"] = int(np.any(np.abs(delta) > bound.per_draw(xs) + slack, axis=1).sum())
    return out


def departure_correction(eta2_upper: float, trace_fisher_upper: float) -> float:
    """Nats added to an upper bound on I(x; z) by the lemma: η·√Tr J + η²/2 (whitened units), for
    upper bounds η² ≥ E‖δ/σ‖² and Tr J ≥ Tr J(z).

    Parameters
    ----------
    eta2_upper : float
        An upper bound η² on E‖δ/σ‖².
    trace_fisher_upper : float
        An upper bound on Tr J(z) (whitened).

    Returns
    -------
    float
        Nats.

    Examples
    --------
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

    Parameters
    ----------
    bound : float
        A floor for the MSE per element against the exact inputs.
    rms_upper : float
        An upper bound r on the root-mean-square rounding of the inputs.

    Returns
    -------
    float

    Examples
    --------
    >>> round(input_rounding_floor(0.25, 0.1), 12)      # (0.5 − 0.1)²
    0.16
    """
    root = math.sqrt(bound) - rms_upper
    return root * root if root > 0 else 0.0
