"""Measuring the stabiliser on an RGB-D sequence with ground truth (issue 9 §3).

The experiment: take ground-truth disparity of a real sequence, make
"per-frame predictions" with a known jitter (a random scale and shift per
frame plus pixel noise), and compare, after least-squares alignment in
disparity space (the protocol of Video Depth Anything and DepthCrafter),
AbsRel with ONE scale/shift for the whole sequence against one per frame.
Jitter makes the first much worse than the second; a good stabiliser closes
the gap. Everything here is plain numpy so the numbers can be checked by hand.
"""

from __future__ import annotations

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


def stabilizer_table(seq: Sequence, seed: int = 0) -> list[tuple[str, float, float, float, float]]:
    """Rows (name, AbsRel per sequence, AbsRel per frame, delta1 per sequence, delta1 per frame)."""
    from ..engine.stabilize import stabilize

    raw = jitter(gt_disparity(seq.depth), seed=seed)
    rows = []
    for name, pred in (
        ("raw jittered", raw),
        ("stabilised offline", stabilize(raw, seq.rgb, mode="offline")),
        ("stabilised streaming", stabilize(raw, seq.rgb, mode="streaming")),
    ):
        seq_abs, seq_d1 = evaluate(pred, seq.depth, "sequence")
        frame_abs, frame_d1 = evaluate(pred, seq.depth, "frame")
        rows.append((name, seq_abs, frame_abs, seq_d1, frame_d1))
    return rows
