"""The mixture fit behind ``empirics.measure.conditional_entropy`` (and CEM's Algorithm 1 line 5),
held to scikit-learn's ``GaussianMixture`` on the same data from the same start.

Both are EM for a full-covariance mixture (the E-step responsibilities, then weights n_k/n, means
and covariances + the diagonal regularisation).  Started from the same means, weights and
covariances with the same regularisation, and run for the same number of EM steps (sklearn with
``tol=0`` and ``max_iter`` = the steps ours took), they must give the same parameters: the only
differences are the order of floating-point operations, so the tolerance is 1e-8 (float64 rounding
over ~100 steps of 1800-point sums).  Then the entropy bounds of ``conditional_entropy`` are those
of sklearn's fit, to the same rounding.
"""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

import theory.bounds as tb
from empirics.defenses.cem.mixture import fit_class_mixture, init_means
from empirics.measure import conditional_entropy

K, D, N = 3, 3, 1800


def _data(seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(K, D))
    a = rng.normal(size=(K, D, D)) * 0.5
    covs = a @ a.transpose(0, 2, 1) + 0.2 * np.eye(D)
    comp = rng.choice(K, size=N, p=[0.5, 0.3, 0.2])
    x = centres[comp] + np.einsum("nij,nj->ni", np.linalg.cholesky(covs)[comp], rng.normal(size=(N, D)))
    return x


def _sklearn_from_our_start(x, reg, steps):
    """sklearn's EM from the start ours uses: our deterministic initial means, the covariances and
    weights of the hard assignment to them, the same absolute regularisation."""
    xt = torch.tensor(x)
    m0 = init_means(xt, K).numpy()
    a = np.argmin(((x[:, None, :] - m0[None]) ** 2).sum(-1), 1)
    w0 = np.array([(a == j).mean() for j in range(K)])
    c0 = np.stack([(x[a == j] - m0[j]).T @ (x[a == j] - m0[j]) / (a == j).sum() for j in range(K)]) + reg * np.eye(D)
    g = GaussianMixture(K, covariance_type="full", reg_covar=reg, tol=0.0, max_iter=steps, weights_init=w0,
                        means_init=m0, precisions_init=np.linalg.inv(c0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol = 0: it never "converges", by design
        return g.fit(x)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_class_mixture_matches_sklearn(seed):
    x = _data(seed)
    ours = fit_class_mixture(torch.tensor(x), torch.zeros(N, dtype=torch.long), num_classes=1, k_per_class=K,
                             n_iter=500)
    reg = 1e-6 * float(x.var(0).mean())  # ours: reg_covar × the mean feature variance
    assert 2 < ours.n_iter < 500  # EM ran, and stopped by its own criterion
    g = _sklearn_from_our_start(x, reg, ours.n_iter)
    assert g.n_iter_ == ours.n_iter
    assert np.allclose(ours.weights.numpy(), g.weights_, rtol=0, atol=1e-8)
    assert np.allclose(ours.means.numpy(), g.means_, rtol=0, atol=1e-8)
    assert np.allclose(ours.covs.numpy(), g.covariances_, rtol=0, atol=1e-8)


def test_conditional_entropy_is_theorem_2_of_the_sklearn_fit():
    """measure.conditional_entropy on an identity encoder with noise σ: H(x) − U for U = Huber/KL/
    max-entropy of the fitted mixture of the whitened features — equal (1e-3 nats) to the same
    bounds computed from sklearn's fit of the same whitened data."""
    from empirics.defenses import make_defense
    from empirics.models import SplitModel
    x = _data(5)
    sigma = 0.5
    model = SplitModel(torch.nn.Identity(), torch.nn.Linear(D, 2), defenses=[make_defense("noise", sigma=sigma)],
                       input_shape=(D,))
    y = torch.zeros(N, dtype=torch.long)
    got = conditional_entropy(model, (torch.tensor(x, dtype=torch.float32), y), k_per_class=K, max_samples=N)
    xw = torch.tensor(x, dtype=torch.float32).double().numpy() / sigma  # the features as the model sends them
    ours = fit_class_mixture(torch.tensor(xw), y, num_classes=1, k_per_class=K)  # the fit measure.py makes
    g = _sklearn_from_our_start(xw, 1e-6 * float(xw.var(0).mean()), ours.n_iter)
    ub = tb.mutual_information_upper_bounds(g.weights_, g.means_, g.covariances_, np.eye(D))
    for m in ("huber", "kl", "maxent"):
        assert abs(got[m] - (0.0 - ub[m])) <= 1e-8, (m, got[m], -ub[m])
