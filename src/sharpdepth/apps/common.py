"""Image operations shared by the effects: colour space, hole filling, bokeh kernels, filters.

Blurs and warps run in *linear* light: averaging sRGB values darkens
highlights (a bright point blurred in sRGB turns into a grey smudge instead of
a bokeh disc) and makes edges between bright and dark areas look dirty.

Images here are float32 numpy arrays laid out (C, H, W). numpy + scipy.fft
rather than torch: these are memory-bound element-wise passes, and torch's
thread pool costs more than it saves on them on small CPUs.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft as sfft

from .settings import KERNEL_SHAPES, check_choice


# ---------------------------------------------------------------- colour
def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 sRGB -> (3, H, W) linear-light float32."""
    x = np.moveaxis(np.asarray(rgb, dtype=np.float32) / 255.0, -1, 0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """(3, H, W) linear float -> HxWx3 uint8 sRGB (clipped)."""
    x = np.clip(x, 0.0, 1.0)
    y = np.where(x <= 0.0031308, x * 12.92, 1.055 * np.maximum(x, 1e-12) ** (1 / 2.4) - 0.055)
    return np.moveaxis(np.clip(y * 255.0 + 0.5, 0, 255).astype(np.uint8), 0, -1).copy()


# ---------------------------------------------------------------- resampling
def downsample2(x: np.ndarray) -> np.ndarray:
    """Sum over 2x2 blocks of the last two axes (odd sizes padded with zeros)."""
    h, w = x.shape[-2:]
    if h % 2 or w % 2:
        pad = [(0, 0)] * (x.ndim - 2) + [(0, h % 2), (0, w % 2)]
        x = np.pad(x, pad)
    s = x.shape
    return x.reshape(*s[:-2], s[-2] // 2, 2, s[-1] // 2, 2).sum(axis=(-3, -1))


def _up2_axis(x: np.ndarray, axis: int) -> np.ndarray:
    """Bilinear x2 along one axis (half-pixel centres, edges clamped)."""
    prev = np.concatenate([np.take(x, [0], axis=axis), np.take(x, range(x.shape[axis] - 1), axis=axis)], axis)
    nxt = np.concatenate([np.take(x, range(1, x.shape[axis]), axis=axis), np.take(x, [-1], axis=axis)], axis)
    even, odd = 0.75 * x + 0.25 * prev, 0.75 * x + 0.25 * nxt
    out = np.stack([even, odd], axis=axis + 1)
    shape = list(x.shape)
    shape[axis] *= 2
    return out.reshape(shape)


def upsample2(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear x2 of the last two axes, cropped to `size`."""
    y = _up2_axis(_up2_axis(x, x.ndim - 2), x.ndim - 1)
    return y[..., : size[0], : size[1]]


# ---------------------------------------------------------------- hole filling
def pull_push(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Fill every pixel from the weighted known ones (Gortler et al.'s pull-push pyramid).

    `values` (C, H, W), `weights` (H, W) >= 0. Pixels with weight >= 1 keep their
    value; partly known ones blend with the coarser estimate; unknown ones take
    it. Smooth and O(N): used to extend colours into holes.
    """
    weights = np.asarray(weights, dtype=np.float32)
    sums = [(values * weights, weights)]
    while min(sums[-1][1].shape) > 1:
        v, w = sums[-1]
        sums.append((downsample2(v), downsample2(w)))
    v, w = sums[-1]
    colour = v / np.maximum(w, 1e-8)
    for v, w in reversed(sums[:-1]):
        up = upsample2(colour, w.shape)
        alpha = np.clip(w, 0.0, 1.0)
        colour = v / np.maximum(w, 1e-8) * alpha + up * (1.0 - alpha)
    return colour.astype(np.float32)


# ---------------------------------------------------------------- bokeh kernels
def bokeh_kernel(radius: float, shape: str = "disc") -> np.ndarray:
    """Normalised (2R+1)^2 aperture kernel with anti-aliased rim; radius < 0.5 -> identity."""
    check_choice(shape, KERNEL_SHAPES, "bokeh shape")
    if radius < 0.5:
        return np.ones((1, 1), dtype=np.float32)
    size = int(math.ceil(radius + 0.5))
    y, x = np.mgrid[-size : size + 1, -size : size + 1].astype(np.float32)
    if shape == "disc":
        signed = np.sqrt(x * x + y * y) - radius
    else:  # flat-topped regular hexagon with circumradius `radius`
        apothem = radius * math.sqrt(3) / 2
        signed = np.maximum(np.abs(y), np.abs(x) * math.sqrt(3) / 2 + np.abs(y) / 2) - apothem
    kernel = np.clip(0.5 - signed, 0.0, 1.0)
    return (kernel / kernel.sum()).astype(np.float32)


def convolve(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Same-size convolution of (C, H, W) with a centred 2D kernel via the FFT, borders mirrored."""
    kh, kw = kernel.shape
    if kh == 1 and kw == 1:
        return x * kernel[0, 0]
    ph, pw = kh // 2, kw // 2
    c, h, w = x.shape
    pad = ((0, 0), (ph, ph), (pw, pw))
    # mirror the borders; a kernel larger than the image cannot be mirrored, so its edge is repeated
    padded = np.pad(x, pad, mode="reflect") if ph < h and pw < w else np.pad(x, pad, mode="edge")
    shape = (sfft.next_fast_len(h + 2 * ph + kh, real=True), sfft.next_fast_len(w + 2 * pw + kw, real=True))
    spectrum = sfft.rfft2(padded, s=shape, workers=-1) * sfft.rfft2(kernel, s=shape, workers=-1)
    full = sfft.irfft2(spectrum, s=shape, workers=-1)
    return full[:, 2 * ph : 2 * ph + h, 2 * pw : 2 * pw + w].astype(np.float32)


def box_mean(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window of the first two axes (mirrored borders)."""
    from scipy.ndimage import uniform_filter

    return uniform_filter(x, size=2 * radius + 1, mode="reflect", axes=(0, 1))


def guided_coefficients(guide: np.ndarray, src: np.ndarray, radius: int, eps: float, weights: np.ndarray | None = None):
    """Box-averaged linear coefficients (a: HxWx3, b: HxW) of He et al.'s colour guided filter.

    The filtered output is `sum(a * guide, -1) + b`; keeping the coefficients lets
    them be solved at low resolution and applied to the full-size guide (the
    "fast guided filter"). With `weights` (HxW >= 0) each window's linear model is
    fitted to the weighted pixels only (weight 0 = unknown, e.g. a trimap's band).
    """
    guide = guide.astype(np.float32)
    src = src.astype(np.float32)
    wts = np.ones(src.shape, np.float32) if weights is None else weights.astype(np.float32)
    norm = np.maximum(box_mean(wts, radius), 1e-6)

    def wmean(x: np.ndarray) -> np.ndarray:
        scale = norm if x.ndim == 2 else norm[..., None]
        return box_mean(x * (wts if x.ndim == 2 else wts[..., None]), radius) / scale

    mean_i = wmean(guide)
    mean_p = wmean(src)
    cov_ip = wmean(guide * src[..., None]) - mean_i * mean_p[..., None]
    outer = (guide[..., :, None] * guide[..., None, :]).reshape(*guide.shape[:2], 9)
    var_i = wmean(outer).reshape(*guide.shape[:2], 3, 3)
    var_i = var_i - mean_i[..., :, None] * mean_i[..., None, :] + eps * np.eye(3, dtype=np.float32)
    a = np.linalg.solve(var_i, cov_ip[..., None])[..., 0]
    b = mean_p - np.sum(a * mean_i, axis=-1)
    return box_mean(a, radius), box_mean(b, radius)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s colour guided filter: smooths `src` (HxW) while following the edges of `guide` (HxWx3).

    Turns a hard mask into a soft matte that snaps to the photo's actual edges
    (hair, fur), which a depth map is too coarse to resolve.
    """
    a, b = guided_coefficients(guide, src, radius, eps)
    return np.sum(a * guide.astype(np.float32), axis=-1) + b


def resize_plane(x: np.ndarray, size: tuple[int, int], nearest: bool = False) -> np.ndarray:
    """Resize an HxW float array to (h, w) (bilinear, or nearest for labels)."""
    from PIL import Image

    method = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    img = Image.fromarray(np.ascontiguousarray(x, dtype=np.float32), mode="F")
    return np.asarray(img.resize((size[1], size[0]), method), dtype=np.float32)
