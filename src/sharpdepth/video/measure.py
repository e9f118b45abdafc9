"""Measuring the stabiliser on an RGB-D sequence with ground truth (issue 9 §3, issue 22 §1).

The experiment: take ground-truth disparity of a real sequence, make
"per-frame predictions" with a known jitter (a random scale and shift per
frame plus pixel noise), and compare, after least-squares alignment in
disparity space (the protocol of Video Depth Anything and DepthCrafter),
AbsRel with ONE scale/shift for the whole sequence against one per frame.
Jitter makes the first much worse than the second; a good stabiliser closes
the gap. Everything here is plain numpy so the numbers can be checked by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..io.frames import frame_files_in

TUM_DEPTH_FACTOR = 5000.0


@dataclass(frozen=True)
class Sequence:
    rgb: np.ndarray
    """TxHxWx3 uint8."""
    depth: np.ndarray
    """TxHxW float32 metres, 0 = no measurement."""


def load_tum_sequence(folder: Path, frames: int | None = None, size: tuple[int, int] | None = None) -> Sequence:
    """rgb/*.png and depth/*.png (uint16 / 5000 = metres) of a TUM-layout folder, optionally resized (w, h)."""
    import cv2

    rgb_files = frame_files_in(folder / "rgb")[:frames]
    depth_files = frame_files_in(folder / "depth")[:frames]
    rgbs, depths = [], []
    for rp, dp in zip(rgb_files, depth_files, strict=True):
        rgb: np.ndarray = np.asarray(Image.open(rp).convert("RGB"))
        depth: np.ndarray = np.asarray(Image.open(dp)).astype(np.float32) / TUM_DEPTH_FACTOR
        if size is not None:
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            depth = cv2.resize(depth, size, interpolation=cv2.INTER_NEAREST)
        rgbs.append(rgb)
        depths.append(depth)
    return Sequence(np.stack(rgbs), np.stack(depths))


def gt_disparity(depth: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(depth > 0, 1.0 / depth, 0.0).astype(np.float32)


def jitter(
    disparity: np.ndarray, seed: int = 0, scale_sigma: float = 0.25, shift_frac: float = 0.15, noise: float = 0.02
) -> np.ndarray:
    """Per-frame predictions: disparity x lognormal scale + shift (x median) + multiplicative pixel noise.

    Pixels without ground truth stay 0 (unknown)."""
    rng = np.random.default_rng(seed)
    out = np.zeros_like(disparity, dtype=np.float32)
    valid = disparity > 0
    median = float(np.median(disparity[valid]))
    for t in range(len(disparity)):
        k = float(np.exp(rng.normal(0.0, scale_sigma)))
        c = float(rng.uniform(-shift_frac, shift_frac)) * median
        pix = disparity[t] * (1.0 + noise * rng.standard_normal(disparity[t].shape))
        out[t] = np.where(valid[t], k * pix + c, 0.0)
    return out


def fill_holes(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Unknown pixels filled smoothly from known ones (normalised Gaussian convolution, coarse to fine).

    Why: a depth network predicts every pixel, also where the sensor saw nothing; the
    stand-in predictions must not carry the sensor's holes (the stabiliser would see them)."""
    import cv2

    out = np.where(known, values, 0.0).astype(np.float32)
    weight = known.astype(np.float32)
    filled = out.copy()
    missing = ~known
    for sigma in (2.0, 4.0, 8.0, 16.0, 32.0, 64.0):
        if not missing.any():
            break
        num = cv2.GaussianBlur(out, (0, 0), sigma)
        den = cv2.GaussianBlur(weight, (0, 0), sigma)
        ok = missing & (den > 1e-3)
        filled[ok] = num[ok] / den[ok]
        missing &= ~ok
    filled[missing] = float(np.median(values[known])) if known.any() else 1.0
    return filled


def jitter_filled(
    disparity: np.ndarray, seed: int = 0, scale_sigma: float = 0.25, shift_sigma: float = 0.08, noise: float = 0.02
) -> np.ndarray:
    """Per-frame predictions as issue 22 describes them: disparity x e^N(0, scale_sigma) +
    N(0, shift_sigma) x median, multiplicative pixel noise, sensor holes filled smoothly
    (every pixel known, like a network's output)."""
    rng = np.random.default_rng(seed)
    valid = disparity > 0
    median = float(np.median(disparity[valid]))
    out = np.empty_like(disparity, dtype=np.float32)
    for t in range(len(disparity)):
        k = float(np.exp(rng.normal(0.0, scale_sigma)))
        c = float(rng.normal(0.0, shift_sigma)) * median
        pix = fill_holes(disparity[t], valid[t]) * (1.0 + noise * rng.standard_normal(disparity[t].shape))
        out[t] = k * pix + c
    return out


def chained_fit_baseline(raw: np.ndarray, sigma: float = 4.0) -> np.ndarray:
    """The flow-free reference of issue 22: chain frame-to-previous affine fits (same pixels,
    no motion model) and keep only the high-frequency part of the chained correction
    (Gaussian low-pass over sigma frames removed), so slow real change is not frozen."""
    from scipy.ndimage import gaussian_filter1d

    from ..engine.stabilize import robust_affine

    n = len(raw)
    log_a, b = np.zeros(n), np.zeros(n)
    a_prev, b_prev = 1.0, 0.0
    for t in range(1, n):
        both = np.isfinite(raw[t]) & np.isfinite(raw[t - 1]) & (raw[t] != 0) & (raw[t - 1] != 0)
        fit = robust_affine(raw[t][both], raw[t - 1][both]) or (1.0, 0.0)
        # C_t(d) = C_{t-1}(alpha d + beta)
        a_prev, b_prev = a_prev * fit[0], a_prev * fit[1] + b_prev
        log_a[t], b[t] = math.log(a_prev), b_prev
    low_log_a = gaussian_filter1d(log_a, sigma, mode="nearest")
    low_b = gaussian_filter1d(b, sigma, mode="nearest")
    # C_t = L_t o H_t with L_t(d) = A d + B  =>  H_t(d) = (C_t(d) - B) / A
    scale = np.exp(log_a - low_log_a)
    shift = (b - low_b) / np.exp(low_log_a)
    return (scale[:, None, None] * raw + shift[:, None, None]).astype(np.float32)


def _fit(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    a = np.stack([pred, np.ones_like(pred)], axis=1).astype(np.float64)
    sol, *_ = np.linalg.lstsq(a, gt.astype(np.float64), rcond=None)
    return float(sol[0]), float(sol[1])


def _metrics(pred_disp: np.ndarray, gt_depth: np.ndarray) -> tuple[float, float]:
    """(AbsRel, delta1) of depth = 1 / aligned disparity against ground-truth depth."""
    disp = np.maximum(pred_disp, 1.0 / 1000.0)  # aligned disparity can dip below 0; cap depth at 1 km
    depth = 1.0 / disp
    abs_rel = float(np.mean(np.abs(depth - gt_depth) / gt_depth))
    ratio = np.maximum(depth / gt_depth, gt_depth / depth)
    return abs_rel, float(np.mean(ratio < 1.25))


def evaluate(pred_disparity: np.ndarray, gt_depth: np.ndarray, per: str) -> tuple[float, float]:
    """AbsRel and delta1 with one scale/shift per `sequence` or per `frame` (fit in disparity)."""
    valid = (gt_depth > 0) & np.isfinite(pred_disparity) & (pred_disparity != 0)
    gt_disp = gt_disparity(gt_depth)
    if per == "sequence":
        s, t = _fit(pred_disparity[valid], gt_disp[valid])
        return _metrics(s * pred_disparity[valid] + t, gt_depth[valid])
    if per != "frame":
        raise ValueError(per)
    aligned, gts = [], []
    for i in range(len(pred_disparity)):
        m = valid[i]
        s, t = _fit(pred_disparity[i][m], gt_disp[i][m])
        aligned.append(s * pred_disparity[i][m] + t)
        gts.append(gt_depth[i][m])
    return _metrics(np.concatenate(aligned), np.concatenate(gts))


# ------------------------------------------------------------------ variants (issue 22 §1)
def resized(seq: Sequence, size: tuple[int, int]) -> Sequence:
    """Every frame resized to (w, h): area for colour, nearest for depth."""
    import cv2

    rgb = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in seq.rgb])
    depth = np.stack([cv2.resize(d, size, interpolation=cv2.INTER_NEAREST) for d in seq.depth])
    return Sequence(rgb, depth)


def axial_zoom(seq: Sequence, size: tuple[int, int], amplitude: float = 0.6, period: float = 25.0) -> Sequence:
    """Camera motion along the optical axis, emulated by zoom-cropping: frame t is the central
    1/k_t of the frame resized back, with depth / k_t, k_t = 1 + amplitude (1 - cos(2 pi t / period)) / 2.

    For every pixel this gives what moving toward the scene gives, an image expanding by the
    same factor as the disparity grows (k_t / k_{t-1}): forward and back twice in 50 frames,
    up to ~7 % per frame, disparity ranging over 1.6x."""
    import cv2

    h, w = seq.depth.shape[1:]
    rgbs, depths = [], []
    for t in range(len(seq.rgb)):
        k = 1.0 + amplitude * (1.0 - math.cos(2.0 * math.pi * t / period)) / 2.0
        ch, cw = round(h / k), round(w / k)
        top, left = (h - ch) // 2, (w - cw) // 2
        rgbs.append(cv2.resize(seq.rgb[t, top : top + ch, left : left + cw], size, interpolation=cv2.INTER_AREA))
        crop = seq.depth[t, top : top + ch, left : left + cw] / k
        depths.append(cv2.resize(crop, size, interpolation=cv2.INTER_NEAREST))
    return Sequence(np.stack(rgbs), np.stack(depths))


@dataclass(frozen=True)
class Variant:
    name: str
    seq: Sequence
    scale_sigma: float = 0.25
    shift_sigma: float = 0.08


def variants(full: Sequence, size: tuple[int, int]) -> list[Variant]:
    """fr2_desk as given, subsampled (faster apparent motion), reversed, stronger jitter, and
    strong forward/backward motion (zoom-crop), at (w, h)."""
    base = resized(full, size)
    out = [Variant("as given", base)]
    for step in (2, 3, 5):
        out.append(
            Variant(
                f"every {step}th frame" if step > 3 else f"every {step}{'nd' if step == 2 else 'rd'} frame",
                Sequence(base.rgb[::step], base.depth[::step]),
            )
        )
    out.append(Variant("reversed", Sequence(base.rgb[::-1].copy(), base.depth[::-1].copy())))
    out.append(Variant("stronger jitter", base, scale_sigma=0.5, shift_sigma=0.16))
    axial = axial_zoom(full, size)
    out.append(Variant("axial motion (zoom)", axial))
    out.append(Variant("axial, every 3rd", Sequence(axial.rgb[::3], axial.depth[::3])))
    return out


METHODS = ("raw", "per-frame floor", "chained-fit baseline", "ours offline", "ours streaming")


def variant_row(variant: Variant, seed: int) -> dict[str, float]:
    """AbsRel after one alignment per sequence for each method (the floor: one per frame, raw)."""
    from ..engine.stabilize import stabilize

    raw = jitter_filled(gt_disparity(variant.seq.depth), seed, variant.scale_sigma, variant.shift_sigma)
    depth = variant.seq.depth
    return {
        "raw": evaluate(raw, depth, "sequence")[0],
        "per-frame floor": evaluate(raw, depth, "frame")[0],
        "chained-fit baseline": evaluate(chained_fit_baseline(raw), depth, "sequence")[0],
        "ours offline": evaluate(stabilize(raw, variant.seq.rgb, mode="offline"), depth, "sequence")[0],
        "ours streaming": evaluate(stabilize(raw, variant.seq.rgb, mode="streaming"), depth, "sequence")[0],
    }
