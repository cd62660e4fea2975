"""Linear-Gaussian channel: closed forms, Theorem 1 (CEM Thm 1) on random channels, equality case."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import theory
from theory.strategies import linear_gaussian_channels, spd_matrices

LOG_2PI_E = math.log(2 * math.pi * math.e)


# --- equality case (docs/ground-truths.md): x ~ N(0, I_d), z = x + N(0, 0.25 I) -> MMSE/d = bound = 0.2 ----

@pytest.mark.parametrize("d", range(1, 65))
def test_equality_case_thm1_is_0_2(d):
    A, cx, cn = np.eye(d), np.eye(d), 0.25 * np.eye(d)
    mmse_per_dim = theory.linear_gaussian_mmse(A, cx, cn) / d
    bound = theory.mse_lower_bound(theory.linear_gaussian_conditional_entropy(A, cx, cn), d)
    # 1e-12 absolute: the requirement; float64 Cholesky of 4I + I and exp/log of O(d)
    # numbers lose at most a few hundred ulps (~1e-14) at d = 64.
    assert abs(mmse_per_dim - 0.2) <= 1e-12
    assert abs(bound - 0.2) <= 1e-12


# --- closed forms against independent formulas ---------------------------------------------------

@given(linear_gaussian_channels(dim=st.integers(1, 5)))
def test_posterior_cov_matches_woodbury_form(ch):
    A, cx, cn = ch
    P = theory.linear_gaussian_posterior_cov(A, cx, cn)
    S = A @ cx @ A.T + cn
    P2 = cx - cx @ A.T @ np.linalg.solve(S, A @ cx)
    # relative 1e-8: eigenvalues of cov_x, cov_noise in [0.1, 4] and |A| <= 2 keep the condition
    # number of S below ~1e3, so two float64 routes agree to ~1e-12 relative; 1e-8 leaves room.
    assert np.allclose(P, P2, rtol=1e-8, atol=1e-10 * np.max(np.abs(cx)))
    assert np.allclose(P, P.T, atol=0)


@given(linear_gaussian_channels(dim=st.integers(1, 5)))
def test_mutual_information_equals_hz_minus_hz_given_x(ch):
    """I(x;z) closed form = H(z) - H(z|x) for a Gaussian prior (H(z|x) = H(ε))."""
    A, cx, cn = ch
    i_closed = theory.linear_gaussian_mutual_information(A, cx, cn)
    hz = theory.gaussian_entropy(A @ cx @ A.T + cn)
    hz_x = theory.gaussian_entropy(cn)
    # 1e-9 absolute: both are sums of log-determinants of matrices with condition numbers < ~1e4
    assert abs(i_closed - (hz - hz_x)) <= 1e-9 * max(1.0, abs(hz))
    # and I = H(x) - H(x|z)
    assert abs(i_closed - (theory.gaussian_entropy(cx) - theory.linear_gaussian_conditional_entropy(A, cx, cn))) <= 1e-9 * max(1.0, abs(hz))
    assert i_closed >= -1e-12


@given(linear_gaussian_channels(dim=st.integers(1, 5)))
def test_conditional_entropy_is_gaussian_entropy_of_posterior(ch):
    A, cx, cn = ch
    h = theory.linear_gaussian_conditional_entropy(A, cx, cn)
    P = theory.linear_gaussian_posterior_cov(A, cx, cn)
    assert abs(h - theory.gaussian_entropy(P)) <= 1e-9 * max(1.0, abs(h))


def test_posterior_mean_by_monte_carlo_regression():
    """E[x|z] is the least-squares predictor: its error is uncorrelated with z (orthogonality)."""
    rng = np.random.default_rng(3)
    A = rng.normal(size=(2, 3))
    cx = np.diag([1.0, 2.0, 0.5])
    cn = 0.3 * np.eye(2)
    mu = np.array([1.0, -1.0, 0.5])
    n = 20000
    x = mu + rng.normal(size=(n, 3)) @ np.linalg.cholesky(cx).T
    z = x @ A.T + rng.normal(size=(n, 2)) * math.sqrt(0.3)
    m = theory.linear_gaussian_posterior_mean(A, cx, cn, z, mean_x=mu)
    err = x - m
    mse = np.sum(err ** 2, axis=1)
    mmse = theory.linear_gaussian_mmse(A, cx, cn)
    se = mse.std(ddof=1) / math.sqrt(n)
    # 5 s.e.: a single Monte-Carlo comparison, two-sided false-failure rate 6e-7
    assert abs(mse.mean() - mmse) <= 5 * se
    cross = err[:, :, None] * (z - z.mean(0))[:, None, :]
    se_c = cross.reshape(n, -1).std(0, ddof=1) / math.sqrt(n)
    assert np.all(np.abs(cross.reshape(n, -1).mean(0)) <= 5 * se_c)


def test_entropy_base_conversion():
    c = np.diag([2.0, 3.0])
    assert abs(theory.gaussian_entropy(c, base=2) - theory.gaussian_entropy(c) / math.log(2)) < 1e-14


# --- Theorem 1 on random linear-Gaussian channels ----------------------------------------------

@given(linear_gaussian_channels(dim=st.integers(1, 6)))
def test_thm1_holds_on_random_channels(ch):
    """CEM Thm 1: exp(2H(x|z)/d)/(2πe) <= MMSE/d; the gap is AM/GM of the eigenvalues of P."""
    A, cx, cn = ch
    d = cx.shape[0]
    mmse = theory.linear_gaussian_mmse(A, cx, cn) / d
    bound = theory.mse_lower_bound(theory.linear_gaussian_conditional_entropy(A, cx, cn), d)
    ev = np.linalg.eigvalsh(theory.linear_gaussian_posterior_cov(A, cx, cn))
    # exact: bound = geometric mean of ev, mmse = arithmetic mean (relative 1e-9, float64 round-off)
    assert abs(bound - np.exp(np.mean(np.log(ev)))) <= 1e-9 * bound
    assert abs(mmse - ev.mean()) <= 1e-9 * mmse
    assert bound <= mmse * (1 + 1e-12)


@given(linear_gaussian_channels(dim=st.integers(1, 6), isotropic_posterior=True))
def test_thm1_equality_when_posterior_isotropic(ch):
    A, cx, cn = ch
    d = cx.shape[0]
    mmse = theory.linear_gaussian_mmse(A, cx, cn) / d
    bound = theory.mse_lower_bound(theory.linear_gaussian_conditional_entropy(A, cx, cn), d)
    assert abs(bound - mmse) <= 1e-10 * mmse


@given(spd_matrices(dim=st.integers(2, 5), min_eig=0.1, max_eig=4.0), st.floats(0.05, 2.0))
def test_thm1_strict_when_posterior_not_isotropic(cx, noise):
    """Equality iff isotropic: a spread in the posterior eigenvalues gives a strict, predicted gap."""
    d = cx.shape[0]
    A, cn = np.eye(d), noise * np.eye(d)
    ev = np.linalg.eigvalsh(theory.linear_gaussian_posterior_cov(A, cx, cn))
    mmse = theory.linear_gaussian_mmse(A, cx, cn) / d
    bound = theory.mse_lower_bound(theory.linear_gaussian_conditional_entropy(A, cx, cn), d)
    spread = (ev.max() - ev.min()) / ev.mean()
    if spread > 1e-3:
        # AM - GM >= (max - min)^2 / (8 d max) for positive numbers (a weak but sufficient form)
        assert mmse - bound >= (ev.max() - ev.min()) ** 2 / (8 * d * ev.max()) * (1 - 1e-9)
    else:
        assert mmse - bound <= 1e-4 * mmse


@pytest.mark.parametrize("d", [1, 3, 10])
@pytest.mark.parametrize("h", [-20.0, -1.0, 0.0, 4.0])
def test_implied_entropy_inverts_thm1(d, h):
    # 1e-12 relative: exp then log of O(1) numbers in float64
    assert abs(theory.implied_entropy(theory.mse_lower_bound(h, d), d) - h) <= 1e-12 * max(1, abs(h))
