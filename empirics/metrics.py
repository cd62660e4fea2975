"""Reconstruction and task metrics, functions first.

Every function accepts numpy arrays or torch tensors, one image (``H×W`` or ``C×H×W``) or a batch
(``N×C×H×W``).  A 2-D input is one ``H×W`` image; batches of vectors go as ``(N, 1, 1, d)``
(for ``mse`` with the default mean reduction the layout does not matter).  Computation is in
float64 numpy.  Batch results are means over images unless ``reduction="none"``.

* ``mse(x, y)`` — mean squared error per element, ``mean((x − y)²)``.
* ``psnr(x, y, data_range)`` — ``10 log10(data_range² / mse)``, per image, then averaged.
* ``ssim(x, y, data_range)`` — Wang, Bovik, Sheikh & Simoncelli (2004), Eq. 13: 11×11 Gaussian
  window with σ = 1.5, K1 = 0.01, K2 = 0.03, population (not sample) covariances; local maps
  computed with symmetric ("reflect") boundary extension and averaged over the pixels at least
  5 from the border (the same convention as ``skimage.metrics.structural_similarity(...,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``), channels averaged.
  Departure: for images smaller than 11 pixels on a side (8×8 digits) the border is not cropped
  (the whole reflected map is averaged); scikit-image refuses such images.
* ``accuracy(logits_or_labels, y)``.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate1d

__all__ = ["mse", "psnr", "ssim", "accuracy", "gaussian_window"]


def _np(a, name) -> np.ndarray:
    try:
        import torch  # deferred: the metrics take numpy arrays; torch only to convert a tensor

        if isinstance(a, torch.Tensor):
            a = a.detach().cpu().double().numpy()
    except ImportError:  # pragma: no cover
        pass
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a numeric array or tensor, got {type(a).__name__}") from None
    if arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite values, found NaN or inf")
    return arr


def _pair(x, y):
    a, b = _np(x, "x"), _np(y, "y")
    if a.shape != b.shape:
        raise ValueError(f"y: expected the same shape as x {a.shape}, got {b.shape}")
    return a, b


def _batch_images(a: np.ndarray) -> np.ndarray:
    """H×W → 1×1×H×W; C×H×W → 1×C×H×W; N×C×H×W as is."""
    if a.ndim == 2:
        return a[None, None]
    if a.ndim == 3:
        return a[None]
    if a.ndim == 4:
        return a
    raise ValueError(f"x: expected an image H×W, C×H×W or a batch N×C×H×W, got shape {a.shape}")


def _reduce(v: np.ndarray, reduction: str):
    if reduction == "mean":
        return float(np.mean(v))
    if reduction == "none":
        return v
    raise ValueError(f"reduction: expected 'mean' or 'none', got {reduction!r}")


def _per_sample(a: np.ndarray) -> np.ndarray:
    """One image (H×W, C×H×W) or vector (d,) is one sample; N×C×H×W is N samples."""
    if a.ndim <= 3:
        return a.reshape(1, -1)
    if a.ndim == 4:
        return a.reshape(a.shape[0], -1)
    raise ValueError(f"x: expected an image H×W, C×H×W or a batch N×C×H×W, got shape {a.shape}")


def mse(x, y, *, reduction: str = "mean"):
    """Mean squared error per element, ``mean((x − y)²)``.

    ``reduction="none"`` gives one value per image of a batch ``N×C×H×W`` (a 2-D or 3-D input is
    one image; for a batch of vectors pass ``(N, 1, 1, d)``).

    Parameters
    ----------
    x, y : array_like or torch.Tensor, shape (N, C, H, W), (C, H, W) or (H, W)
        Images (a 2-D or 3-D input is one image).
    reduction : {'mean', 'none'}
        Average over the batch, or one value per image.

    Returns
    -------
    float or numpy.ndarray, shape (N,)

    Examples
    --------
    >>> mse(np.zeros((2, 3)), np.ones((2, 3)))
    1.0
    """
    a, b = _pair(x, y)
    d = (_per_sample(a) - _per_sample(b)) ** 2
    return _reduce(d.mean(axis=1), reduction)


def psnr(x, y, data_range: float = 1.0, *, reduction: str = "mean"):
    """Peak signal-to-noise ratio ``10 log10(data_range² / MSE)`` in dB, per sample, then averaged.

    A sample with zero error has infinite PSNR.

    Parameters
    ----------
    x, y : array_like or torch.Tensor, shape (N, C, H, W), (C, H, W) or (H, W)
        Images (a 2-D or 3-D input is one image).
    data_range : float
        L, the range of the values.
    reduction : {'mean', 'none'}
        Average over the batch, or one value per image.

    Returns
    -------
    float or numpy.ndarray, shape (N,)

    Examples
    --------
    >>> round(psnr(np.zeros((4, 4)), np.full((4, 4), 0.1)), 6)
    20.0
    """
    if not (np.isscalar(data_range) and data_range > 0):
        raise ValueError(f"data_range: expected a positive number, got {data_range!r}")
    a, b = _pair(x, y)
    m = ((_per_sample(a) - _per_sample(b)) ** 2).mean(axis=1)
    with np.errstate(divide="ignore"):
        v = 10.0 * np.log10(data_range ** 2 / m)
    return _reduce(v, reduction)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian taps (the 2-D window is their outer product).

    Parameters
    ----------
    size : int
        Number of taps.
    sigma : float
        Standard deviation in pixels.

    Returns
    -------
    numpy.ndarray, shape (size,)
    """
    r = (size - 1) / 2
    t = np.arange(size) - r
    w = np.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum()


def _filter(img: np.ndarray, w: np.ndarray) -> np.ndarray:
    out = correlate1d(img, w, axis=-1, mode="reflect")
    return correlate1d(out, w, axis=-2, mode="reflect")


def ssim(x, y, data_range: float = 1.0, *, reduction: str = "mean", win_size: int = 11,
         sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03):
    r"""Structural similarity (Wang et al. 2004), Gaussian window.

    .. math::
        \mathrm{SSIM}(x, y) = \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}
        {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)},\quad C_i = (K_i L)^2,

    with local statistics under an ``win_size``×``win_size`` Gaussian window of std ``sigma``
    (population covariances), averaged over the valid interior (see module docstring) and over
    channels; one value per image, averaged over the batch unless ``reduction="none"``.

    Parameters
    ----------
    x, y : array_like or torch.Tensor, shape (N, C, H, W), (C, H, W) or (H, W)
        Images (a 2-D or 3-D input is one image).
    data_range : float
        L, the range of the values.
    reduction : {'mean', 'none'}
        Average over the batch, or one value per image.
    win_size : int
        Window size.
    sigma : float
        Window standard deviation.
    k1, k2 : float
        The constants K₁, K₂.

    Returns
    -------
    float or numpy.ndarray, shape (N,)

    Examples
    --------
    >>> img = np.linspace(0, 1, 256).reshape(16, 16)
    >>> ssim(img, img)
    1.0
    """
    if not (np.isscalar(data_range) and data_range > 0):
        raise ValueError(f"data_range: expected a positive number, got {data_range!r}")
    a, b = _pair(x, y)
    a, b = _batch_images(a), _batch_images(b)
    w = gaussian_window(win_size, sigma)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    mx, my = _filter(a, w), _filter(b, w)
    sxx = _filter(a * a, w) - mx * mx
    syy = _filter(b * b, w) - my * my
    sxy = _filter(a * b, w) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    pad = (win_size - 1) // 2
    h, wd = s.shape[-2:]
    if h > 2 * pad and wd > 2 * pad:
        s = s[..., pad:h - pad, pad:wd - pad]
    v = s.mean(axis=(1, 2, 3))
    return float(np.round(v.mean(), 12)) if reduction == "mean" else _reduce(v, reduction)


def accuracy(pred, y) -> float:
    """Fraction of correct predictions; ``pred`` is logits ``(N, K)`` or labels ``(N,)``.

    Parameters
    ----------
    pred : array_like or torch.Tensor, shape (N, K) or (N,)
        Logits or predicted labels.
    y : array_like or torch.Tensor, shape (N,)
        Labels.

    Returns
    -------
    float

    Examples
    --------
    >>> accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1]))
    0.5
    """
    p = _np(pred, "pred")
    t = _np(y, "y")
    if p.ndim == 2:
        p = p.argmax(axis=1)
    if p.ndim != 1 or t.ndim != 1 or p.shape[0] != t.shape[0]:
        raise ValueError(f"y: expected labels of shape ({p.shape[0]},) matching pred, got {t.shape}")
    return float(np.mean(p == t))
