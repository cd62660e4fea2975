"""CEM's ``objective="code"``: the released trainer's recipe (github.com/xiasong0501/CEM,
``model_training_paral_pruning.MIA_train``), term by term against hand computations on tiny
batches, and how it differs from the paper's objective (Eq. 7) on the same features.

Hand values are written out with ``math`` on explicit numbers; inputs are float64, so the
tolerances (1e-12) cover rounding only.
"""

import math

import pytest
import torch

from empirics.defenses import CEM, GaussianNoise, defend, make_defense
from empirics.defenses.base import EpochContext, Step
from empirics.defenses.cem import KMeansFit, code_lambda, code_objective, fit_class_kmeans

F64 = torch.float64
G = 0.01  # the released γ inside both logarithms
TOL = 1e-12  # float64 rounding of a handful of logs and means


def _fit(centroids, counts, variances, class_size):
    c = torch.tensor(centroids, dtype=F64)
    n = torch.tensor(counts)
    return KMeansFit(c, n, torch.tensor(variances, dtype=F64), n.sum(1) > 0, class_size)


def _z(rows):
    return torch.tensor(rows, dtype=F64)


# ----------------------------------------------------------------------------- the term


@pytest.mark.parametrize("a, t, s2", [
    (1.0, 0.1, 0.25),    # v = 1 ≫ tσ² = 0.025: above the threshold
    (0.5, 0.125, 1.0),   # v = 0.25 > 0.125 (run_exp.sh threshold)
    (0.3, 0.125, 1.0),   # v = 0.09 < 0.125: ReLU gives exactly 0
])
def test_term_is_relu_of_log_difference(a, t, s2):
    """w·ReLU(log(v + 0.01) − log(t·σ² + 0.01)) for one cluster (w = 1) and two batch points ±a
    about the centroid: v_b = a²; the epoch variance is set to a² too, so v = a² whatever β is.
    The old floor log(ReLU(v − tσ²) + 0.01) would give log(a² − tσ² + 0.01) here instead."""
    fit = _fit([[[0.0]]], [[100]], [[a * a]], 100.0)
    z = _z([[a], [-a]]).requires_grad_(True)
    loss = code_objective(z, torch.tensor([0, 0]), fit, noise_var=s2, var_threshold=t)
    want = max(0.0, math.log(a * a + G) - math.log(t * s2 + G))
    assert abs(float(loss.detach()) - want) <= TOL
    loss.backward()
    # d/dz_i: β·(2 z_i / n)/(v + γ) above the threshold (β = 10·2/100 = 0.2), exactly 0 below
    g = 0.2 * 2 * z.detach() / 2 / (a * a + G) if want > 0 else torch.zeros_like(z)
    assert torch.allclose(z.grad, g, rtol=0, atol=TOL)


def test_batch_variance_is_mean_over_points_and_dimensions():
    """v_b = mean over the cluster's batch points *and* dimensions of (z − μ)²: points (1, 3),
    (−1, −3) about 0 give (1 + 9 + 1 + 9)/4 = 5 (a sum over dimensions would give 10).  V = 3,
    β = 10·2/(1·100) = 0.2, threshold 0: L = log(0.2·5 + 0.8·3 + γ) − log γ."""
    fit = _fit([[[0.0, 0.0]]], [[100]], [[3.0]], 100.0)
    loss = code_objective(_z([[1.0, 3.0], [-1.0, -3.0]]), torch.tensor([0, 0]), fit, noise_var=1.0,
                          var_threshold=0.0)
    assert abs(float(loss) - (math.log(0.2 * 5 + 0.8 * 3 + G) - math.log(G))) <= TOL


@pytest.mark.parametrize("counts, class_size, beta", [
    ([[100, 0]], 100.0, 0.2),          # w = 1: 10·2/(1·100) = 0.2 < 1, kept
    ([[100, 0]], 20.1, 20 / 20.1),     # 0.995: in (0.99, 1), kept (the released test is β >= 1)
    ([[100, 0]], 20.0, 0.99),          # exactly 1: set to 0.99
    ([[100, 0]], 5.0, 0.99),           # 4: set to 0.99
    ([[50, 50]], 100.0, 0.4),          # w = 0.5: 10·2/(0.5·100) = 0.4
])
def test_blend_weight_of_batch_and_epoch_variance(counts, class_size, beta):
    """v = β·v_b + (1 − β)·V with β = 10·n_b/(w·C), replaced by 0.99 once ≥ 1: batch points ±1
    (v_b = 1), epoch variance V = 4, threshold 0 (floor log γ), so L = w·(log(v + γ) − log γ)."""
    fit = _fit([[[0.0], [100.0]]], counts, [[4.0, 4.0]], class_size)
    w = counts[0][0] / sum(counts[0])
    loss = code_objective(_z([[1.0], [-1.0]]), torch.tensor([0, 0]), fit, noise_var=1.0, var_threshold=0.0)
    v = beta * 1.0 + (1 - beta) * 4.0
    assert abs(float(loss) - w * (math.log(v + G) - math.log(G))) <= TOL


# ----------------------------------------------------------------------------- log_entropy switch


def _plain_term(w, n_b, vb, V, C=40.0):
    """The released ``log_entropy=0`` branch by hand: w·(v + 0.001), v the same blend."""
    beta = 10 * n_b / (w * C)
    beta = 0.99 if beta >= 1 else beta
    return w * (beta * vb + (1 - beta) * V + 0.001)


@pytest.mark.parametrize("a, t, s2", [(1.0, 0.1, 0.25), (0.3, 0.125, 1.0), (2.0, 0.0, 1.0)])
def test_log_entropy_false_is_the_blended_variance_plus_0_001(a, t, s2):
    """``log_entropy=False`` (the released trainer's default ``log_entropy=0``): w·(v + 0.001) —
    no logarithm, and the threshold t and γ play no part (the same value for every t, even where
    the log branch's ReLU is 0).  One cluster, w = 1, points ±a, V = a²: v = a²; gradient
    β·2z/n (β = 10·2/100)."""
    fit = _fit([[[0.0]]], [[100]], [[a * a]], 100.0)
    z = _z([[a], [-a]]).requires_grad_(True)
    loss = code_objective(z, torch.tensor([0, 0]), fit, noise_var=s2, var_threshold=t, log_entropy=False)
    assert abs(float(loss.detach()) - (a * a + 0.001)) <= TOL
    loss.backward()
    assert torch.allclose(z.grad, 0.2 * 2 * z.detach() / 2, rtol=0, atol=TOL)


def test_log_entropy_branches_on_two_classes_against_hand_sums():
    """Both branches on the same two-class batch (weights, blends, sums over clusters and the
    division by the classes present are shared): True gives Σ w·ReLU(log(v + γ) − log(tσ² + γ)),
    False gives Σ w·(v + 0.001), each computed by hand."""
    fit = _two_class_fit()
    z, y = _z([[1.0], [-1.0], [12.0], [31.0], [29.0]]), torch.tensor([0, 0, 0, 1, 1])
    floor = math.log(0.125 * 0.5 + G)
    log_branch = code_objective(z, y, fit, noise_var=0.5, var_threshold=0.125)
    want_log = (_term(0.75, 2, 1.0, 1.0, floor=floor) + _term(0.25, 1, 4.0, 2.0, floor=floor)
                + _term(0.5, 2, 1.0, 4.0, floor=floor)) / 2
    assert abs(float(log_branch) - want_log) <= TOL
    plain = code_objective(z, y, fit, noise_var=0.5, var_threshold=0.125, log_entropy=False)
    want_plain = (_plain_term(0.75, 2, 1.0, 1.0) + _plain_term(0.25, 1, 4.0, 2.0) + _plain_term(0.5, 2, 1.0, 4.0)) / 2
    assert abs(float(plain) - want_plain) <= TOL
    assert abs(want_plain - want_log) > 0.1  # the two branches are different functions here


def test_log_entropy_default_is_the_run_scripts_branch_and_reaches_the_defense():
    """Default True (what run_exp.sh passes, and what every record before the switch was computed
    with); ``cem:...,log_entropy=false`` builds a ReleasedCEM whose loss is the plain branch."""
    import inspect
    from empirics.defenses import ReleasedCEM
    assert inspect.signature(code_objective).parameters["log_entropy"].default is True
    assert inspect.signature(ReleasedCEM.__init__).parameters["log_entropy"].default is True
    c = make_defense("cem", lam=1.0, objective="code", log_entropy=False)
    assert isinstance(c, ReleasedCEM) and c.log_entropy is False and c.config()["log_entropy"] is False
    with pytest.raises(ValueError, match="log_entropy"):
        make_defense("cem", objective="code", log_entropy=0.5)


def _two_class_fit():
    # class 0: clusters at 0 and 10 with 30 and 10 points (w = 0.75, 0.25), V = 1, 2;
    # class 1: clusters at 20 and 30 with 20 and 20 points (w = 0.5, 0.5), V = 3, 4; C = 40
    return _fit([[[0.0], [10.0]], [[20.0], [30.0]]], [[30, 10], [20, 20]], [[1.0, 2.0], [3.0, 4.0]], 40.0)


def _term(w, n_b, vb, V, C=40.0, floor=math.log(G)):
    beta = 10 * n_b / (w * C)
    beta = 0.99 if beta >= 1 else beta
    return w * max(0.0, math.log(beta * vb + (1 - beta) * V + G) - floor)


def test_weights_sum_over_clusters_and_divide_by_classes_present():
    """Σ_c Σ_j w_j·term_j / |classes present|, w_j = n_j/N_class from the epoch fit (not the batch
    share n_b/N_batch); threshold 0.  Batch: class 0 with points 1, −1 (cluster 0: v_b = 1) and
    12 (cluster 1: v_b = 4); class 1 with 31, 29 (cluster 1 of class 1: v_b = 1)."""
    fit = _two_class_fit()
    z, y = _z([[1.0], [-1.0], [12.0], [31.0], [29.0]]), torch.tensor([0, 0, 0, 1, 1])
    loss = code_objective(z, y, fit, noise_var=1.0, var_threshold=0.0)
    want = (_term(0.75, 2, 1.0, 1.0) + _term(0.25, 1, 4.0, 2.0) + _term(0.5, 2, 1.0, 4.0)) / 2
    assert abs(float(loss) - want) <= TOL
    # class 0 alone: divided by 1
    only0 = code_objective(z[:3], y[:3], fit, noise_var=1.0, var_threshold=0.0)
    assert abs(float(only0) - (_term(0.75, 2, 1.0, 1.0) + _term(0.25, 1, 4.0, 2.0))) <= TOL


@pytest.mark.parametrize("rows, labels, released, want", [
    # sorted rows [0, 0, 1]: the 2nd class present (class 1) reads row 1, which is class 0
    ([1.0, -1.0, 31.0], [0, 0, 1], False, lambda: (_term(0.75, 2, 1.0, 1.0) + _term(0.5, 1, 1.0, 4.0)) / 2),
    ([1.0, -1.0, 31.0], [0, 0, 1], True, lambda: (_term(0.75, 2, 1.0, 1.0) + _term(0.25, 1, 1.0, 2.0)) / 2),
    # sorted rows [0, 1, 1]: row 1 is class 1, so the bug is invisible
    ([1.0, 31.0, 29.0], [0, 1, 1], False, lambda: (_term(0.75, 1, 1.0, 1.0) + _term(0.5, 2, 1.0, 4.0)) / 2),
    ([1.0, 31.0, 29.0], [0, 1, 1], True, lambda: (_term(0.75, 1, 1.0, 1.0) + _term(0.5, 2, 1.0, 4.0)) / 2),
])
def test_released_class_counter_indexing_switch(rows, labels, released, want):
    """released_indexing=True: the m-th class present takes w and V from the class of the m-th
    row of the label-sorted batch.  Every point is at distance 1 from its centroid (v_b = 1)."""
    fit = _two_class_fit()
    loss = code_objective(_z([[r] for r in rows]), torch.tensor(labels), fit, noise_var=1.0, var_threshold=0.0,
                          released_indexing=released)
    assert abs(float(loss) - want()) <= TOL


def test_released_tables_are_compacted_and_padded():
    """Released kmeans_cuda: variances over non-empty clusters, padded with the last; weights over
    clusters with ≥ 2 points, padded with 0.01 — so with cluster 0 empty, entry 1 is cluster 2."""
    fit = _fit([[[0.0], [10.0], [20.0]], [[0.0], [10.0], [20.0]]], [[0, 30, 10], [1, 30, 9]],
               [[0.0, 5.0, 7.0], [3.0, 5.0, 7.0]], 40.0)
    w, v = fit.released_tables(0)
    assert w.tolist() == [0.75, 0.25, 0.01] and v.tolist() == [5.0, 7.0, 7.0]
    w, v = fit.released_tables(1)
    assert w.tolist() == [30 / 40, 9 / 40, 0.01] and v.tolist() == [3.0, 5.0, 7.0]
    # a batch point of class 0 in cluster 1 (centroid 10, v_b = 1): fixed w = 0.75, V = 5;
    # released w = 0.25, V = 7
    z, y = _z([[11.0]]), torch.tensor([0])
    fixed = code_objective(z, y, fit, noise_var=1.0, var_threshold=0.0)
    rel = code_objective(z, y, fit, noise_var=1.0, var_threshold=0.0, released_indexing=True)
    assert abs(float(fixed) - _term(0.75, 1, 1.0, 5.0)) <= TOL
    assert abs(float(rel) - _term(0.25, 1, 1.0, 7.0)) <= TOL


def test_cluster_empty_in_epoch_fit_contributes_nothing():
    """w_j = 0 (cluster empty in the epoch pass): the term is 0 (the blend ratio would be n/0)."""
    fit = _fit([[[0.0], [10.0]]], [[40, 0]], [[1.0, 0.0]], 40.0)
    loss = code_objective(_z([[9.0], [1.0]]), torch.tensor([0, 0]), fit, noise_var=1.0, var_threshold=0.0)
    assert abs(float(loss) - _term(1.0, 1, 1.0, 1.0)) <= TOL


# ----------------------------------------------------------------------------- the epoch fit


def test_kmeans_epoch_statistics_by_hand():
    """Weights n_j/N_class, variance = mean over the cluster's points *and* dimensions of
    (z − μ_j)², class size N/num_classes.  Class 0 (2-d): {(0,0), (2,0)} and {(10,1), (10,3),
    (10,5)}; class 1: {(0,0), (0,2)}, {(5,5), (7,5)}."""
    z = _z([[0, 0], [2, 0], [10, 1], [10, 3], [10, 5], [0, 0], [0, 2], [5, 5], [7, 5]])
    y = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 1])
    fit = fit_class_kmeans(z, y, num_classes=2, clusters_per_class=2)
    order0 = torch.argsort(fit.centroids[0, :, 0])
    assert fit.centroids[0, order0].tolist() == [[1.0, 0.0], [10.0, 3.0]]
    assert fit.weights[0, order0].tolist() == [0.4, 0.6]
    # (1+0+1+0)/4 = 0.5 and (0+4+0+0+0+4)/6 = 4/3
    assert torch.allclose(fit.variances[0, order0], torch.tensor([0.5, 4 / 3], dtype=F64), rtol=0, atol=TOL)
    order1 = torch.argsort(fit.centroids[1, :, 0])
    assert fit.weights[1, order1].tolist() == [0.5, 0.5]
    assert torch.allclose(fit.variances[1, order1], torch.tensor([0.5, 0.5], dtype=F64), rtol=0, atol=TOL)
    assert fit.class_size == 4.5


def test_kmeans_warm_start_and_iteration_cap():
    """Warm start: the iterations start from the previous centroids.  Points 0, 1, 2, 10 from
    centroids (0.5, 1.7): one update gives (0.5, 6) (means of {0, 1} and {2, 10}); the next gives
    (1, 10) (means of {0, 1, 2} and {10}), a fixed point.  (A cold start splits {0, 1} | {2, 10}
    too but stops there only after its own first update.)"""
    z, y = _z([[0.0], [1.0], [2.0], [10.0]]), torch.tensor([0, 0, 0, 0])
    prev = _fit([[[0.5], [1.7]]], [[2, 2]], [[0.0, 0.0]], 4.0)
    one = fit_class_kmeans(z, y, num_classes=1, clusters_per_class=2, n_iter=1, warm_start=prev)
    assert one.centroids[0, :, 0].tolist() == [0.5, 6.0] and one.counts[0].tolist() == [2, 2] and one.n_iter == 1
    full = fit_class_kmeans(z, y, num_classes=1, clusters_per_class=2, warm_start=prev)
    assert full.centroids[0, :, 0].tolist() == [1.0, 10.0] and full.counts[0].tolist() == [3, 1]
    assert full.n_iter == 2
    again = fit_class_kmeans(z, y, num_classes=1, clusters_per_class=2, warm_start=full)
    assert again.n_iter == 1 and torch.equal(again.centroids, full.centroids)


def test_kmeans_small_class_keeps_previous_fit_or_raises():
    z, y = _z([[0.0], [1.0], [2.0], [10.0], [5.0]]), torch.tensor([0, 0, 0, 0, 1])
    with pytest.raises(ValueError, match="clusters_per_class"):
        fit_class_kmeans(z, y, num_classes=2, clusters_per_class=2)
    prev = _fit([[[0.5], [1.5]], [[4.0], [6.0]]], [[2, 2], [3, 3]], [[0.1, 0.2], [0.3, 0.4]], 4.0)
    fit = fit_class_kmeans(z, y, num_classes=2, clusters_per_class=2, warm_start=prev)
    assert torch.equal(fit.centroids[1], prev.centroids[1]) and fit.counts[1].tolist() == [3, 3]


# ----------------------------------------------------------------------------- the defense


def _compose(cem, sigma, optimizer=None):
    """Attach ``cem`` composed with noise σ (and the optimizer) through the public entry point."""
    defend(encoder=torch.nn.Identity(), defenses=[GaussianNoise(sigma), cem], optimizer=optimizer)
    return cem


def _features(seed, n=240, d=12, classes=3):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    centres = torch.randn(classes, d, generator=g, dtype=F64) * 3
    z = centres[y] + torch.randn(n, d, generator=g, dtype=F64) @ torch.randn(d, d, generator=g, dtype=F64) * 0.3
    return z, y


def _step(z, y):
    return Step(x=None, y=y, z=z, z_sent=z, logits=None, model=None, epoch=0, step=0)


@pytest.mark.parametrize("lr, factor", [
    (0.05, 0.001 / 0.05),        # the released run's initial lr: λ·0.02
    (0.00041, 0.001 / 0.00041),  # at the switch the rescaling still applies (lr < 0.00041 is strict)
    (0.0004, 1.0),               # below the switch: plain λ
    (0.00008, 1.0),
])
def test_scale_is_lambda_times_0001_over_current_lr(lr, factor):
    """extra_loss = λ·0.001/lr·L while lr ≥ 0.00041, λ·L below; lr read from the attached
    optimizer at each step (a scheduler writes it there)."""
    z, y = _features(0)
    c = CEM(lam=16.0, objective="code", clusters_per_class=3, var_threshold=0.125)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.05)
    _compose(c, 0.5, opt)
    c.estimate(z, y)
    opt.param_groups[0]["lr"] = lr  # what lr_scheduler.step() does
    L = float(c.code_loss(z[:40], y[:40]))
    assert L > 0
    got = float(c.extra_loss(_step(z[:40], y[:40])))
    assert abs(got - 16.0 * factor * L) <= 1e-12 * abs(got)
    assert c.last_loss == L


def test_code_lambda_switch():
    assert code_lambda(16.0, 0.05) == 16.0 * 0.001 / 0.05
    assert code_lambda(16.0, 0.00041) == 16.0 * 0.001 / 0.00041
    assert code_lambda(16.0, 0.000409) == 16.0
    assert code_lambda(16.0, None) == 16.0


def test_defense_uses_raw_features_and_noise_variance():
    """The defense's loss is code_objective on the noise-free features in raw coordinates with
    σ² = the composed noise's variance and its own k-means (not whitened by the noise)."""
    z, y = _features(1)
    c = CEM(lam=1.0, objective="code", clusters_per_class=3, var_threshold=0.125)
    _compose(c, 0.5)
    c.estimate(z, y)
    ref = fit_class_kmeans(z, y, num_classes=3, clusters_per_class=3)
    assert torch.equal(c.kmeans.centroids, ref.centroids)
    want = code_objective(z[:30], y[:30], ref, noise_var=0.25, var_threshold=0.125)
    assert abs(float(c.code_loss(z[:30], y[:30])) - float(want)) <= 1e-12 * float(want)
    cfg = c.config()
    assert (cfg["clusters_per_class"], cfg["var_threshold"], cfg["released_indexing"]) == (3, 0.125, False)


def test_hooks_no_loss_in_first_epoch_then_warm_started_refit():
    """First on_epoch_start fits nothing and every step of epoch 1 returns no loss; the next
    on_epoch_start fits k-means on the encoder's features (eval mode, whole training set); the
    one after starts from those centroids (encoder unchanged: converged after one update)."""
    from empirics.models import make_model

    m = make_model("synthetic", num_classes=3, input_shape=(8,), hidden=16, bottleneck=6, seed=0)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(60, 8, generator=g), torch.arange(60) % 3
    m.defenses = [GaussianNoise(0.1)]
    c = CEM(lam=1.0, objective="code", clusters_per_class=2)
    m.defenses.append(c)
    c.attach(m, None)
    ctx = EpochContext(model=m, data=(x, y), epoch=0, device="cpu")
    c.on_epoch_start(ctx)
    assert c.kmeans is None
    assert c.extra_loss(_step(m.encode(x[:12]), y[:12])) is None and c.history == []
    c.on_epoch_start(ctx)
    m.eval()
    with torch.no_grad():
        ref = fit_class_kmeans(m.encode(x), y, num_classes=3, clusters_per_class=2)
    assert torch.equal(c.kmeans.centroids, ref.centroids)
    assert c.extra_loss(_step(m.encode(x[:12]), y[:12])) is not None and len(c.history) == 1
    c.on_epoch_start(ctx)
    assert c.kmeans.n_iter == 1 and torch.equal(c.kmeans.centroids, ref.centroids)


def test_training_epoch_one_is_unchanged_by_code_cem():
    """Released recipe: no CEM loss in epoch 1.  One epoch with noise + code-CEM is bit-identical
    to noise alone (no loss, no random numbers); the second epoch differs and logs its steps."""
    from empirics.data import synthetic_mixture
    from empirics.models import make_model
    from empirics.training import train

    data = synthetic_mixture(n_train=96, n_test=16, d=8, k=3, seed=0)

    def run(epochs, with_cem):
        m = make_model("synthetic", num_classes=3, input_shape=(8,), hidden=16, bottleneck=6, seed=0)
        defs = [make_defense("noise", sigma=0.1)]
        if with_cem:
            defs.append(make_defense("cem", lam=50.0, objective="code", clusters_per_class=2, var_threshold=0.0))
        train(m, data.train, epochs=epochs, batch_size=32, lr=1e-2, defenses=defs, seed=0, device="cpu",
              progress=False)
        return m, defs

    (a, _), (b, defs) = run(1, False), run(1, True)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert defs[1].history == [] and defs[1].steps == 3
    (a2, _), (b2, defs2) = run(2, False), run(2, True)
    assert len(defs2[1].history) == 3  # the 3 steps of epoch 2
    assert not all(torch.equal(p, q) for p, q in zip(a2.state_dict().values(), b2.state_dict().values()))
    other = make_defense("cem", objective="code", clusters_per_class=2)
    other.load_state_dict(defs2[1].state_dict())
    assert torch.equal(other.kmeans.centroids, defs2[1].kmeans.centroids) and other.steps == 6


# ----------------------------------------------------------------------------- vs the paper


def _spread(zb, y, s):
    """Scale every batch point's offset from its class mean by (1 + s)."""
    means = torch.stack([zb[y == c].mean(0) for c in range(3)])
    return means[y] + (1 + s) * (zb - means[y])


@pytest.mark.parametrize("s0", [0.0, -0.97])
def test_code_and_paper_objectives_are_different_functions(s0):
    """Same features (class offsets scaled by 1 + s0), same noise (σ = 1), each objective fitted
    on them (paper: 2 components per class, code: 2 clusters per class), same batch.  Both grow
    when the batch spreads about its class means (derivative in s > 0) while the features are
    spread (s0 = 0), but the values differ: Eq. 7 is Σπ(−log π + ½ log|Σ + Σp|/|Σp|) over full
    covariances, the code term a thresholded log of one scalar variance per cluster.  With the
    features collapsed (s0 = −0.97, cluster variances ≈ 7e-4 < tσ² = 0.125) the code objective
    is exactly 0 with zero gradient, while Eq. 7 stays positive (mostly −Σπ log π ≈ log 6, which
    no spread changes) and still increases with the spread."""
    z, y = _features(4)
    z = _spread(z, y, torch.tensor(s0, dtype=F64))
    paper = CEM(lam=1.0, k_per_class=2, method="dense")
    code = CEM(lam=1.0, objective="code", clusters_per_class=2, var_threshold=0.125)
    for c in (paper, code):
        _compose(c, 1.0)
        c.estimate(z, y)
    zb, yb = z[:60], y[:60]
    s = torch.tensor(0.0, dtype=F64, requires_grad=True)
    zs = _spread(zb, yb, s)
    lp, lc = paper.batch_loss(zs, yb, commit=False), code.code_loss(zs, yb)
    gp, = torch.autograd.grad(lp, s, retain_graph=True)
    gc, = torch.autograd.grad(lc, s, allow_unused=True)
    gc = 0.0 if gc is None else float(gc)
    lp, lc = float(lp.detach()), float(lc.detach())
    assert float(gp) > 0 and lp > 0
    if s0 == 0.0:
        assert gc > 0
        assert abs(lp - lc) > 0.5 * lc  # 4.75 vs 1.76 nats here
    else:
        assert lc == 0.0 and gc == 0.0


@pytest.mark.parametrize("kw, match", [
    (dict(clusters_per_class=0), "clusters_per_class"), (dict(var_threshold=-1.0), "var_threshold"),
    (dict(gamma=0.0), "gamma"), (dict(kmeans_iters=0), "kmeans_iters"),
])
def test_code_settings_validated(kw, match):
    with pytest.raises(ValueError, match=match):
        make_defense("cem", objective="code", **kw)
