"""The exact affine map of an encoder (float64, from the parameters), the deployed departure, and the
lemma that pays for it (empirics/experiments/affine.py)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from empirics.experiments.affine import (affine_by_construction, departure_correction, deployed_departure,
                                         exact_affine_map, input_rounding_floor)

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
    assert dep["eta2"] <= dep["eta2_upper"] and dep["max_abs"] <= 2.0 ** -10  # ≤ ½ ulp(8192) + input rounding
    assert 0 < dep["input_rms"] < 1e-6


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
