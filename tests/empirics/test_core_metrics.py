"""Metrics: SSIM agrees with scikit-image's Wang et al. (2004) setting; PSNR/MSE closed forms."""

import numpy as np
import pytest
import torch
from hypothesis import given, strategies as st
from skimage.metrics import structural_similarity

from empirics.metrics import accuracy, mse, psnr, ssim


def _sk(a, b, data_range):
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=data_range)


@pytest.mark.parametrize("shape", [(11, 11), (16, 23), (32, 32)])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("data_range", [1.0, 255.0])
def test_ssim_matches_skimage(shape, seed, data_range):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, data_range, shape)
    b = np.clip(a + rng.normal(0, 0.2 * data_range, shape), 0, data_range)
    # both are the same float64 formula up to summation order: 1e-9 is round-off room
    assert abs(ssim(a, b, data_range) - _sk(a, b, data_range)) < 1e-9


def test_ssim_channels_and_batch_and_torch():
    rng = np.random.default_rng(2)
    a = rng.uniform(size=(3, 2, 16, 16))
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    per = ssim(a, b, reduction="none")
    expect = [np.mean([_sk(a[i, c], b[i, c], 1.0) for c in range(2)]) for i in range(3)]
    np.testing.assert_allclose(per, expect, atol=1e-9)
    assert abs(ssim(torch.tensor(a), torch.tensor(b)) - np.mean(expect)) < 1e-9
    assert abs(ssim(a[0], b[0]) - expect[0]) < 1e-9  # C×H×W is one image


@given(st.floats(0.01, 0.5), st.integers(0, 2**31 - 1))
def test_psnr_closed_form_and_ssim_range(eps, seed):
    rng = np.random.default_rng(seed)
    a = rng.uniform(size=(2, 1, 12, 12))
    b = a + eps * rng.choice([-1.0, 1.0], a.shape)
    # every element differs by exactly eps: MSE = eps², PSNR = -20 log10 eps (float round-off only)
    assert abs(mse(a, b) - eps ** 2) < 1e-12
    assert abs(psnr(a, b, 1.0) + 20 * np.log10(eps)) < 1e-9
    s = ssim(a, b)
    assert -1.0 <= s < 1.0  # SSIM is at most 1, with equality only for identical images
    assert ssim(a, a) == 1.0


def test_small_images_and_accuracy():
    a = np.random.default_rng(0).uniform(size=(4, 1, 8, 8))
    assert ssim(a, a) == 1.0 and ssim(a, 1 - a) < 0.5
    assert accuracy(torch.tensor([[0.0, 1.0], [2.0, 0.0], [0.0, 3.0]]), [1, 0, 0]) == pytest.approx(2 / 3)


@pytest.mark.parametrize("fn", [mse, psnr, ssim])
def test_bad_input(fn):
    with pytest.raises(ValueError, match="same shape"):
        fn(np.zeros((1, 1, 12, 12)), np.zeros((1, 1, 12, 11)))
    with pytest.raises(ValueError, match="NaN"):
        fn(np.full((12, 12), np.nan), np.zeros((12, 12)))
    with pytest.raises(ValueError, match="non-empty"):
        fn(np.zeros((0, 1, 12, 12)), np.zeros((0, 1, 12, 12)))
    if fn is not mse:
        with pytest.raises(ValueError, match="data_range"):
            fn(np.zeros((12, 12)), np.zeros((12, 12)), data_range=0)
