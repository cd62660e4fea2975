"""The exact affine map of an encoder (float64, from the parameters), the deployed departure, and the
lemma that pays for it (empirics/experiments/affine.py)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from empirics.experiments.affine import (ETA32, U32, affine_by_construction, departure_correction, deployed_departure,
                                         exact_affine_map, input_rounding_bound, input_rounding_floor,
                                         rounding_departure_bound)

BIG_W = 10.45 * 2.0 ** -10  # the audit's repro: weight 10.45·2⁻¹⁰·I, bias 8192


def _linear(W, b):
    m = nn.Linear(W.shape[1], W.shape[0])
    with torch.no_grad():
        m.weight.copy_(torch.as_tensor(W))
        m.bias.copy_(torch.as_tensor(b))
    return m


def _pool_bn():
    """Unflatten → Conv2d → eval BatchNorm (odd running statistics, a large shift) → AvgPool → Linear."""
    torch.manual_seed(0)
    m = nn.Sequential(nn.Unflatten(1, (1, 4, 4)), nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.AvgPool2d(2),
                      nn.Flatten(), nn.Dropout(0.5), nn.Linear(16, 6))
    with torch.no_grad():
        m[2].running_mean.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0]))
        m[2].running_var.copy_(torch.tensor([0.01, 4.0, 0.3, 1.0]))
        m[2].weight.copy_(torch.tensor([1.0, -2.0, 0.5, 3.0]))
        m[2].bias.copy_(torch.tensor([100.0, -3.0, 0.0, 1.0]))
    return m


def test_big_bias_map_is_exact_where_the_float32_read_off_was_not():
    enc = _linear(BIG_W * torch.eye(16), torch.full((16,), 8192.0))
    x = torch.randn(200, 16, generator=torch.Generator().manual_seed(0))
    amap, why = exact_affine_map(enc, (16,), x)
    assert why == ""
    w32 = float(enc.weight.detach()[0, 0])  # the deployed parameter (float32 rounding of 10.45·2⁻¹⁰)
    assert np.array_equal(amap.A, w32 * np.eye(16))  # ratio to the truth exactly 1
    assert np.array_equal(amap.b, np.full(16, 8192.0))
    # the old read-off f(e_i) − f(0) in float32 is off by 4 %: the bias eats the weight's low bits
    with torch.no_grad():
        read = float(enc(torch.eye(16))[0, 0] - enc(torch.zeros(1, 16))[0, 0])
    assert read == 0.009765625 and abs(read / w32 - 0.957) < 1e-3


def test_composed_map_matches_an_independent_basis_push():
    enc = _pool_bn().eval()
    x = torch.randn(100, 16, generator=torch.Generator().manual_seed(1))
    amap, why = exact_affine_map(enc, (16,), x)
    assert why == "" and amap.A.shape == (6, 16)
    e64 = __import__("copy").deepcopy(enc).double().eval()
    with torch.no_grad():
        basis = e64(torch.eye(16, dtype=torch.float64)) - e64(torch.zeros(1, 16, dtype=torch.float64))
    # float64 differences against a bias of ~1e3 (BN shift / small running variance): ~1e-13 absolute
    np.testing.assert_allclose(amap.A, basis.numpy().T, rtol=0, atol=1e-10)
    assert amap.check["max_error_over_variation"] < 1e-9


class Hidden(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 3)

    def forward(self, v):
        return torch.tanh(self.lin(v))


class MyLinear(nn.Linear):  # a subclass may override forward: not affine by construction
    pass


@pytest.mark.parametrize("make, why", [
    (lambda: nn.Sequential(nn.Linear(5, 3), nn.ReLU()), "ReLU"),
    (Hidden, "Hidden"),
    (lambda: MyLinear(5, 3), "MyLinear"),
    (lambda: nn.Sequential(nn.Linear(5, 3), nn.BatchNorm1d(3, track_running_stats=False)), "running statistics"),
])
def test_not_affine_by_construction(make, why):
    m = make()
    assert why in affine_by_construction(m)
    amap, reason = exact_affine_map(m, (5,), torch.randn(8, 5))
    assert amap is None and why in reason


def test_hooks_are_not_affine_by_construction():
    m = nn.Linear(5, 3)
    m.register_forward_hook(lambda mod, inp, out: torch.tanh(out))
    assert "hooks" in affine_by_construction(m)


def test_confirmation_on_data_catches_a_nonlinear_map(monkeypatch):
    """If the by-construction test were fooled, the float64 confirmation still refuses the map."""
    import empirics.experiments.affine as aff
    monkeypatch.setattr(aff, "affine_by_construction", lambda m: "")
    torch.manual_seed(0)
    relu = nn.Sequential(nn.Linear(5, 3), nn.ReLU())
    amap, why = aff.exact_affine_map(relu, (5,), torch.randn(64, 5))
    assert amap is None and "not affine on the data" in why


def test_departure_of_the_big_bias_encoder_is_float32_rounding():
    """η² measured through the deployed encoder equals the float32 rounding of the ideal output
    (independently: numpy's float32 cast), within 5 % (20000 draws: s.e. ~1 %)."""
    enc = _linear(BIG_W * torch.eye(16), torch.full((16,), 8192.0)).requires_grad_(False)
    rng = np.random.default_rng(0)
    x64 = rng.normal(size=(20000, 16)) * 2.0
    amap, _ = exact_affine_map(enc, (16,), torch.as_tensor(x64[:500]))
    sigma = 3e-3
    dep = deployed_departure(enc, amap, x64, sigma, device="cpu")
    ideal = x64.astype(np.float32).astype(np.float64) * float(enc.weight.detach()[0, 0]) + 8192.0
    indep = (((ideal.astype(np.float32).astype(np.float64) - amap(x64)) / sigma) ** 2).sum(1).mean()
    assert abs(dep["eta2"] / indep - 1) < 0.05
    assert dep["eta2_stderr"] > 0 and dep["max_abs"] <= 2.0 ** -10  # ≤ ½ ulp(8192) + input rounding
    assert 0 < dep["input_rms"] < 1e-6


class Wiggle(nn.Module):
    """Affine up to a nonlinearity of ~1e-5 of the output's variation (a model a loose tolerance would pass)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 3)

    def forward(self, v):
        y = self.lin(v)
        return y + 1e-4 * torch.tanh(y) ** 2


def test_confirmation_tolerance_is_tight(monkeypatch):
    """The float64 confirmation refuses a map that is non-affine by ~1e-5 of its variation (its
    tolerance is 1e-6 of it): fooled by-construction checks cannot slip a small nonlinearity in."""
    import empirics.experiments.affine as aff
    monkeypatch.setattr(aff, "affine_by_construction", lambda m: "")
    torch.manual_seed(0)
    amap, why = aff.exact_affine_map(Wiggle(), (5,), torch.randn(256, 5))
    assert amap is None and "not affine on the data" in why


def _moments(x64):
    return np.sqrt((x64 ** 2).mean(0))


def _chain():
    torch.manual_seed(2)
    return nn.Sequential(nn.Linear(16, 8), nn.Unflatten(1, (2, 4)), nn.Linear(4, 4), nn.Flatten(), nn.Dropout(0.3),
                         nn.Identity(), nn.Linear(8, 5)).eval()


def _tiny():
    m = _linear(1e-41 * torch.randn(4, 16, generator=torch.Generator().manual_seed(5)), torch.zeros(4))
    return m  # subnormal float32 weights: products underflow


@pytest.mark.parametrize("name, make", [
    ("identity", lambda: _linear(torch.eye(16), torch.zeros(16))),          # all of δ is the input's rounding
    ("big_bias", lambda: _linear(BIG_W * torch.eye(16), torch.full((16,), 8192.0))),
    ("chain", _chain),
    ("tiny", _tiny),
])
def test_rounding_bound_dominates_the_measured_departure(name, make):
    """|δ(x)| ≤ H|x| + h on every draw, and E‖δ/σ‖² ≤ ‖Hs + h‖²/σ² (s² = E x²) above the measured mean."""
    enc = make().requires_grad_(False)
    x64 = np.random.default_rng(1).normal(size=(4000, 16)) * 3.0
    amap, why = exact_affine_map(enc, (16,), torch.as_tensor(x64[:300]))
    assert why == ""
    rb, why = rounding_departure_bound(enc, amap)
    assert why == "" and rb.layers == (3 if name == "chain" else 1)
    dep = deployed_departure(enc, amap, x64, 1e-3, device="cpu", bound=rb)
    assert dep["above_bound"] == 0
    assert dep["eta2"] <= rb.eta2(_moments(x64), 1e-3)
    if name == "identity":  # one term per output (γ₁ = u) plus the input's rounding u|x|: H ≈ 2u
        assert np.allclose(np.diag(rb.H), 2 * U32, rtol=1e-6) and np.count_nonzero(rb.H) == 16
        # round-to-nearest errs by about u|x|/(2√3)·(1..2) in r.m.s. against the bound's 2u|x|: a ratio of
        # ~20 in η² (measured 22 here); a bound 50× above the measured one would be needlessly loose
        assert dep["eta2"] > rb.eta2(_moments(x64), 1e-3) / 50


def test_input_rounding_bound_dominates_the_measured_rounding():
    x64 = np.random.default_rng(0).normal(size=(5000, 8)) * np.array([1e-3, 1, 10, 1e5, 1, 1, 1e-40, 3])
    r = np.sqrt(((x64.astype(np.float32).astype(np.float64) - x64) ** 2).mean())
    assert r <= input_rounding_bound(_moments(x64)) and input_rounding_bound(np.zeros(3)) == ETA32


@pytest.mark.parametrize("make, why", [(_pool_bn, "Conv2d"), (lambda: _linear(torch.eye(4), torch.zeros(4)).double(),
                                                                 "float64")])
def test_rounding_analysis_covers_only_modelled_layers(make, why):
    enc = make().eval()
    d = 16 if why == "Conv2d" else 4
    amap, _ = exact_affine_map(enc, (d,), torch.randn(50, d, dtype=torch.float64))
    rb, reason = rounding_departure_bound(enc, amap)
    assert rb is None and why in reason


def test_rounding_analysis_refuses_reduced_precision_matmul():
    enc = _linear(torch.eye(4), torch.zeros(4))
    amap, _ = exact_affine_map(enc, (4,), torch.randn(20, 4))
    old = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")
        rb, why = rounding_departure_bound(enc, amap)
    finally:
        torch.set_float32_matmul_precision(old)
    assert rb is None and "'high'" in why


def _mi_1d(a, delta, nx=3001, dz=0.02, x_max=7.5):
    """I(x; a·x + δ(x) + ε), x, ε ~ N(0, 1), by quadrature: h(z') − ½ log(2πe); and η² = E δ²."""
    x = np.linspace(-x_max, x_max, nx)
    px = np.exp(-x ** 2 / 2) / math.sqrt(2 * math.pi) * (x[1] - x[0])
    mu = a * x + delta(x)
    z = np.arange(mu.min() - 8, mu.max() + 8, dz)
    pz = (np.exp(-(z[:, None] - mu[None, :]) ** 2 / 2) / math.sqrt(2 * math.pi)) @ px
    h = -np.sum(pz * np.log(np.maximum(pz, 1e-300))) * dz
    return h - 0.5 * math.log(2 * math.pi * math.e), float(np.sum(px * delta(x) ** 2))


DELTAS = {"sin": lambda c, w: (lambda t: c * np.sin(w * t)),
          "step": lambda c, w: (lambda t: c * (w * t - np.round(w * t))),  # a rounding residual, as float32's
          "tanh": lambda c, w: (lambda t: c * np.tanh(w * t))}             # a departure that reveals sign(x)


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(a=st.floats(0.0, 4.0), c=st.floats(0.05, 1.5), w=st.floats(0.5, 12.0), kind=st.sampled_from(sorted(DELTAS)))
def test_departure_lemma(a, c, w, kind):
    """I(x; z') ≤ I(x; z) + η√Tr J(z) + η²/2 (affine.py's lemma) for x ~ N(0,1), z = a x + ε and a
    deployed z' = z + δ(x).  Gaussian x: I(x; z) = ½ log(1 + a²), J(z) = 1/(1 + a²).
    Tolerance 1e-3: the quadrature errs by at most 2e-4 against a 20× finer grid on these δ (the
    step's jumps are the worst); the smallest slack seen over 200 random cases was 6e-3."""
    mi, eta2 = _mi_1d(a, DELTAS[kind](c, w))
    bound = 0.5 * math.log(1 + a * a) + departure_correction(eta2, 1.0 / (1 + a * a))
    assert mi <= bound + 1e-3


def test_departure_lemma_fails_without_its_correction():
    """The lemma's correction is needed: a departure that reveals sign(x) raises I(x; z') above I(x; z)."""
    mi, eta2 = _mi_1d(0.5, DELTAS["tanh"](1.0, 5.0))
    assert mi > 0.5 * math.log(1 + 0.25) + 0.05
    assert mi <= 0.5 * math.log(1 + 0.25) + departure_correction(eta2, 1 / 1.25)


def test_departure_correction_and_rounding_floor_values():
    assert departure_correction(0.0, 5.0) == 0.0
    assert departure_correction(0.04, 1.0) == pytest.approx(0.2 + 0.02, abs=1e-15)
    with pytest.raises(ValueError):
        departure_correction(-1.0, 1.0)
    assert input_rounding_floor(0.25, 0.1) == pytest.approx(0.16, abs=1e-15)  # (0.5 − 0.1)²
    assert input_rounding_floor(0.01, 0.2) == 0.0
