"""CEM (Xia et al. CVPR 2025, Alg. 1, Eq. 5–8): the objective, the mixture estimate, the two
per-batch routes, the released-code recipe and bad input."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st

import theory.bounds as tb
import theory.strategies as ts
from empirics.defenses import CEM, cem_objective, defend, fit_class_mixture, make_defense


def _random_mixture(rng, k, d, diag_noise=False):
    w = rng.dirichlet(np.ones(k))
    covs = []
    for _ in range(k):
        a = rng.normal(size=(d, rng.integers(1, d + 2)))
        covs.append(a @ a.T / a.shape[1])
    if diag_noise:
        noise = np.diag(rng.uniform(0.05, 1.0, size=d))
    else:
        b = rng.normal(size=(d, d))
        noise = b @ b.T / d + 0.1 * np.eye(d)
    return w, np.array(covs), noise


@st.composite
def _mixture_and_noise(draw):
    """(π, Σ, Σp) drawn element by element (so hypothesis can shrink them): k ≤ 5 components in
    d ≤ 6, Σᵢ with eigenvalues in [1e-3, 5] (near-singular allowed), Σp with eigenvalues in
    [0.05, 5]."""
    k, d = draw(st.integers(1, 5)), draw(st.integers(1, 6))
    w = draw(ts.simplex_weights(k, min_weight=0.01))
    covs = np.stack([draw(ts.spd_matrices(d, min_eig=1e-3, max_eig=5.0)) for _ in range(k)])
    return w, covs, draw(ts.spd_matrices(d, min_eig=0.05, max_eig=5.0))


@given(_mixture_and_noise())
def test_objective_equals_theorem2_sum(mix):
    """cem_objective ≡ theory.gmm_mutual_information_bound (Thm 2's sum); 1e-8 absolute: both
    are float64 Cholesky log-determinants of matrices with condition number ≤ 5e3."""
    w, covs, noise = mix
    got = float(cem_objective(torch.tensor(w), torch.tensor(covs), torch.tensor(noise)))
    want = tb.gmm_mutual_information_bound(w, covs, noise)
    assert abs(got - want) <= 1e-8


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_objective_diagonal_forms_agree(seed):
    rng = np.random.default_rng(seed)
    k, d = 3, 4
    w = rng.dirichlet(np.ones(k))
    var = rng.uniform(0.0, 2.0, size=(k, d))
    nv = rng.uniform(0.1, 1.0, size=d)
    a = cem_objective(torch.tensor(w), torch.tensor(var), torch.tensor(nv))
    b = tb.gmm_mutual_information_bound(w, np.stack([np.diag(v) for v in var]), np.diag(nv))
    assert abs(float(a) - b) <= 1e-10  # closed form log1p vs Cholesky: rounding only


@pytest.mark.parametrize("seed", [0, 1])
def test_objective_gradient_matches_finite_differences(seed):
    """float64 central differences, step 1e-6: truncation O(h²)≈1e-12, rounding ≈1e-16/h≈1e-10;
    torch.autograd.gradcheck's default tolerances (atol 1e-5, rtol 1e-3) are far above both."""
    rng = np.random.default_rng(seed)
    w, covs, noise = _random_mixture(rng, 3, 4)
    a = torch.tensor(rng.normal(size=(3, 4, 4)), requires_grad=True)
    logits = torch.tensor(rng.normal(size=3), requires_grad=True)
    P = torch.tensor(noise)

    def f(a, logits):
        return cem_objective(torch.softmax(logits, 0), a @ a.transpose(-1, -2) / 4, P)

    assert torch.autograd.gradcheck(f, (a, logits), eps=1e-6)


def test_objective_closed_form():
    # Σ = Σp: each term ½ log 2^d; uniform π over 4: log 4.
    d = 3
    val = cem_objective(torch.full((4,), 0.25, dtype=torch.float64), torch.eye(d, dtype=torch.float64).repeat(4, 1, 1),
                        torch.eye(d, dtype=torch.float64))
    assert abs(float(val) - (math.log(4) + 0.5 * d * math.log(2))) < 1e-12


@pytest.mark.parametrize("bad, match", [
    (dict(weights=[0.5, 0.6]), "weights"),
    (dict(weights=[-0.5, 1.5]), "weights"),
    (dict(covs=np.ones((2, 2, 3))), "covs"),
    (dict(noise_cov=np.zeros((2, 2))), "noise_cov"),
    (dict(noise_cov=-1.0), "noise_cov"),
    (dict(covs=np.array([[[1, 0], [0, -5.0]]] * 2)), "covs"),
    (dict(weights=[float("nan"), 1.0]), "weights"),
])
def test_objective_bad_input(bad, match):
    args = dict(weights=[0.5, 0.5], covs=np.stack([np.eye(2)] * 2), noise_cov=np.eye(2))
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        cem_objective(**args)


# ----------------------------------------------------------------------------- mixture and routes

def _features(seed, n=240, d=12, classes=3):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    centres = torch.randn(classes, d, generator=g, dtype=torch.float64) * 3
    z = centres[y] + torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.randn(d, d, generator=g, dtype=torch.float64) * 0.3
    return z, y


def _cem(method, covariance="full", sigma=0.5, **kw):
    """A CEM composed with noise σ through the public entry point (Σp = σ²I comes from it)."""
    c = CEM(lam=1.0, k_per_class=2, covariance=covariance, method=method, **kw)
    defend(encoder=torch.nn.Identity(), defenses=[f"noise:sigma={sigma}", c])
    return c


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_lowrank_route_equals_dense_route(covariance):
    """The low-rank route (eigenbasis + determinant lemma, refreshed every few steps) gives the
    same L_C and gradients as a fresh Cholesky per step; float64, 1e-9 relative: rounding of
    O(d) accumulated updates."""
    z, y = _features(0)
    a, b = _cem("lowrank", covariance, refresh_rank=7), _cem("dense", covariance)
    a.estimate(z, y)
    b.estimate(z, y)
    for s in range(12):
        zb = z[s * 20:(s + 1) * 20].clone().requires_grad_(True)
        zc = zb.detach().clone().requires_grad_(True)
        la, lb_ = a.batch_loss(zb, y[s * 20:(s + 1) * 20]), b.batch_loss(zc, y[s * 20:(s + 1) * 20])
        assert abs(float(la.detach()) - float(lb_.detach())) <= 1e-9 * abs(float(lb_.detach()))
        la.backward()
        lb_.backward()
        assert torch.allclose(zb.grad, zc.grad, rtol=1e-7, atol=1e-10)


def test_running_loss_is_theorem2_of_running_mixture():
    """After each batch, L_C equals Thm 2's sum evaluated (by the theory package) on the running
    mixture (π after Eq. 5, Σ after Eq. 6) with Σp from the composed noise defense."""
    z, y = _features(1)
    c = _cem("lowrank", refresh_rank=5, sigma=0.3)
    c.estimate(z, y)
    for s in range(5):
        loss = c.batch_loss(z[s * 20:(s + 1) * 20], y[s * 20:(s + 1) * 20])
        w, covs, nv = c.current_mixture()
        want = tb.gmm_mutual_information_bound(w.numpy(), covs.numpy(), np.diag(nv.numpy()))
        assert abs(float(loss) - want) <= 1e-8 * max(1.0, abs(want))


def _independent_step(pi, means, labels, covs, zt, y, N, diagonal):
    """Eq. 5–6 for one batch, written from the paper in numpy float64 (whitened coordinates):
    nearest mean among the point's own class, πⱼ' = (πⱼ(N − n_b) + nⱼ)/N, then with the *updated*
    weight αⱼ = nⱼ/(πⱼ' N): Σⱼ' = (1 − αⱼ)Σⱼ + αⱼ ΔΣⱼ, ΔΣⱼ the second moment about μⱼ."""
    d2 = ((zt[:, None, :] - means[None]) ** 2).sum(-1)
    d2[labels[None, :] != y[:, None]] = np.inf
    a = d2.argmin(1)
    n = np.bincount(a, minlength=len(pi)).astype(float)
    pi_new = (pi * (N - len(y)) + n) / N
    covs = covs.copy()
    for j in np.flatnonzero(n):
        alpha = n[j] / (pi_new[j] * N)
        dv = zt[a == j] - means[j]
        delta = (dv ** 2).mean(0) if diagonal else dv.T @ dv / n[j]
        covs[j] = (1 - alpha) * covs[j] + alpha * delta
    return pi_new, covs


def _eq7(pi, covs, noise_var, diagonal):
    """Eq. 7 in original coordinates with numpy's slogdet: Σπ(−log π + ½ log|Σ + Σp|/|Σp|)."""
    total = 0.0
    for p, c in zip(pi, covs):
        full = np.diag(c) if diagonal else c
        ld = np.linalg.slogdet(full + np.diag(noise_var))[1] - np.log(noise_var).sum()
        total += p * (-np.log(p) + 0.5 * ld)
    return total


@pytest.mark.parametrize("method, covariance", [("dense", "full"), ("lowrank", "full"), ("dense", "diag")])
def test_eq5_eq6_eq7_against_independent_recursion(method, covariance):
    """Three committed batches: after each, the running π and Σ (``current_mixture``) equal an
    independent numpy recursion of Eq. 5 and Eq. 6 (α from Eq. 5's *updated* weight), and the
    returned L_C equals Eq. 7 on those π, Σ via numpy's slogdet.  The low-rank route refreshes
    its eigenbasis on the way (refresh_rank 5).  1e-9 relative: float64 rounding of a few d = 12
    factorisations; the old-weight α changes Σ by ~1e-3 relative and L_C by ~1e-4."""
    sigma = 0.5
    diagonal = covariance == "diag"
    z, y = _features(9)
    c = _cem(method, covariance, sigma=sigma, refresh_rank=5)
    c.estimate(z, y)
    fit = c.fit
    pi, means, labels = fit.weights.numpy(), fit.means.numpy(), fit.labels.numpy()
    covs = fit.covs.numpy()  # whitened: Σ̃ = Σ/σ²
    N = z.shape[0]
    noise_var = np.full(z.shape[1], sigma ** 2)
    for s in range(3):
        zb, yb = z[s * 20:(s + 1) * 20], y[s * 20:(s + 1) * 20]
        pi, covs = _independent_step(pi, means, labels, covs, zb.numpy() / sigma, yb.numpy(), N, diagonal)
        loss = float(c.batch_loss(zb, yb, commit=True))
        w, got, nv = c.current_mixture()
        assert np.allclose(nv.numpy(), noise_var, rtol=1e-15, atol=0)
        assert np.allclose(w.numpy(), pi, rtol=1e-12, atol=0)
        want_covs = covs * sigma ** 2  # back to original coordinates
        assert np.abs(got.numpy() - want_covs).max() <= 1e-9 * np.abs(want_covs).max()
        want = _eq7(pi, want_covs, noise_var, diagonal)
        assert abs(loss - want) <= 1e-9 * abs(want)


def test_eq5_weights_update():
    z, y = _features(2)
    c = _cem("dense")
    c.estimate(z, y)
    pi0 = c._state["pi"].clone()
    zb, yb = z[:30], y[:30]
    a = c._assign(zb / c._state["noise_sd"], yb)
    counts = torch.bincount(a, minlength=pi0.shape[0]).to(pi0)
    c.batch_loss(zb, yb)
    N = z.shape[0]
    assert torch.allclose(c._state["pi"], (pi0 * (N - 30) + counts) / N, atol=1e-15)
    # nearest mean among the point's own class (labels used)
    assert bool((c._state["labels"][a] == yb).all())


def test_mixture_fit_recovers_components_and_warm_start_converges_fast():
    g = torch.Generator().manual_seed(3)
    z = torch.cat([torch.randn(300, 3, generator=g, dtype=torch.float64) + 4,
                   torch.randn(300, 3, generator=g, dtype=torch.float64) * 0.5 - 4])
    y = torch.zeros(600, dtype=torch.long)
    fit = fit_class_mixture(z, y, num_classes=1, k_per_class=2)
    order = torch.argsort(fit.means[:, 0])
    # means within 4 standard errors (1/sqrt(300) ≈ 0.06 per coordinate)
    assert torch.allclose(fit.means[order, 0], torch.tensor([-4.0, 4.0], dtype=torch.float64), atol=0.25)
    warm = fit_class_mixture(z, y, num_classes=1, k_per_class=2, warm_start=fit)
    assert warm.n_iter <= 2


@pytest.mark.parametrize("kw, match", [
    (dict(lam=-1.0), "lam"), (dict(lam=float("nan")), "lam"), (dict(covariance="tied"), "covariance"),
    (dict(objective="x"), "objective"), (dict(k_per_class=0), "k_per_class"),
])
def test_cem_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        make_defense("cem", **kw)


def test_too_few_points_per_class_raises():
    z, y = _features(5, n=12, classes=3)
    c = _cem("dense")
    c.k_per_class = 3
    with pytest.raises(ValueError, match="k_per_class"):
        c.estimate(z, y)


def test_nan_features_raise():
    z, y = _features(6)
    z[3, 2] = float("nan")
    with pytest.raises(ValueError, match="nan"):
        _cem("dense").estimate(z, y)


def test_collapsed_features_are_regularised():
    """All features of a class identical: the explicit reg_covar keeps L_C finite."""
    z, y = _features(7)
    z[y == 0] = 1.0
    c = _cem("lowrank")
    c.estimate(z, y)
    assert math.isfinite(float(c.batch_loss(z[:30], y[:30])))


def test_missing_noise_warns_and_uses_floor():
    z, y = _features(8)
    c = CEM(lam=1.0, k_per_class=2, min_noise_var=0.01)
    defend(encoder=torch.nn.Identity(), defenses=[c])
    with pytest.warns(UserWarning, match="noise"):
        c.estimate(z, y)
    assert torch.allclose(c._state["noise_sd"], torch.full((12,), 0.1, dtype=torch.float64))


def test_history_records_every_step_and_survives_state_dict():
    from empirics.data import synthetic_mixture
    from empirics.models import make_model
    from empirics.training import train

    data = synthetic_mixture(n_train=96, n_test=16, d=8, k=3, seed=0)
    m = make_model("synthetic", num_classes=3, input_shape=(8,), hidden=16, bottleneck=6, seed=0)
    cem = make_defense("cem", lam=0.5, k_per_class=2)
    train(m, data.train, epochs=2, batch_size=32, lr=1e-2, defenses=[make_defense("noise", sigma=0.1), cem],
          seed=0, device="cpu", progress=False)
    assert len(cem.history) == 2 * 3  # 96 points / batch 32 = 3 steps per epoch
    assert all(math.isfinite(v) for v in cem.history) and cem.history[-1] == cem.last_loss
    other = make_defense("cem", lam=0.5, k_per_class=2)
    other.load_state_dict(cem.state_dict())
    assert other.history == cem.history
