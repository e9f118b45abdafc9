"""Temporal consistency of depth over a video.

TAE (temporal alignment error), with ground-truth camera poses and intrinsics, as in the
Video Depth Anything benchmark (`benchmark/eval/eval_tae.py`, following DepthCrafter's
video protocol): for each pair of consecutive frames (t, t+1) the *predicted* depth of
frame t is back-projected with K, moved by the ground-truth relative pose
T_{t+1<-t} = inv(T_{t+1}) @ T_t (camera-to-world poses), projected into frame t+1
(rounded to the nearest pixel), and compared with the *predicted* depth of frame t+1 by
AbsRel over the pixels where both exist; the same is done from t+1 back to t, and

    TAE = 100 * sum_t (AbsRel_{t->t+1} + AbsRel_{t+1->t}) / (2 (N - 1))

Predictions must be metric (or aligned once per sequence, so that the alignment itself
does not hide flicker). Difference from the reference: when several points land on one
pixel we keep the nearest (a z-buffer), where the reference keeps an arbitrary one.

Pose-free measures, for datasets without poses:

* `temporal_change_error` (needs ground-truth depth, no poses): per pixel, the change of
  log depth between consecutive frames, predicted minus ground truth,
      TCE = mean_t mean_px |(ln p_{t+1} - ln p_t) - (ln g_{t+1} - ln g_t)|
  It is invariant to a constant per-sequence scale, zero for a perfect prediction, and
  grows when the prediction flickers while the ground truth does not.
* `flicker` (needs nothing): mean_t mean_px |p_{t+1} - p_t| / ((p_{t+1} + p_t) / 2), the
  raw frame-to-frame relative change of the prediction. It also counts real motion, so it
  only ranks models on the same (ideally static-camera) clip.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..maps import valid_depth_mask


def reproject_depth(depth: np.ndarray, K: np.ndarray, T_dst_src: np.ndarray) -> np.ndarray:
    """Depth of frame `src` seen from frame `dst` (z-buffered, nearest pixel; 0 = no point)."""
    depth = np.asarray(depth, dtype=np.float64)
    h, w = depth.shape
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    ys, xs = np.nonzero(np.isfinite(depth) & (depth > 0))
    z = depth[ys, xs]
    pts = np.stack([(xs - cx) * z / fx, (ys - cy) * z / fy, z], axis=1)
    moved = pts @ T_dst_src[:3, :3].T + T_dst_src[:3, 3]
    zd = moved[:, 2]
    front = zd > 0
    moved, zd = moved[front], zd[front]
    u = np.rint(moved[:, 0] * fx / zd + cx).astype(np.int64)
    v = np.rint(moved[:, 1] * fy / zd + cy).astype(np.int64)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    flat, zd = v[inside] * w + u[inside], zd[inside]
    # z-buffer: sort by pixel, then depth; the first point of each pixel is the nearest
    order = np.lexsort((zd, flat))
    flat, zd = flat[order], zd[order]
    first = np.ones(flat.size, dtype=bool)
    first[1:] = flat[1:] != flat[:-1]
    out = np.zeros(h * w)
    out[flat[first]] = zd[first]
    return out.reshape(h, w)


def _abs_rel_between(projected: np.ndarray, target: np.ndarray, mask: np.ndarray | None) -> float | None:
    ok = (projected > 0) & np.isfinite(target) & (target > 0)
    if mask is not None:
        ok &= mask
    if not ok.any():
        return None
    return float(np.mean(np.abs(target[ok] - projected[ok]) / target[ok]))


def temporal_alignment_error(
    depths: Sequence[np.ndarray],
    poses_c2w: Sequence[np.ndarray],
    K: np.ndarray | Sequence[np.ndarray],
    masks: Sequence[np.ndarray] | None = None,
) -> float:
    """TAE (x100) of a predicted metric depth sequence with ground-truth poses and intrinsics.

    `poses_c2w` are 4x4 camera-to-world matrices; `K` one 3x3 matrix or one per frame.
    `masks` (optional) restrict where the comparison frame is scored. Pairs without any
    overlap count as 0, as in the reference.
    """
    n = len(depths)
    if n < 2:
        return float("nan")
    if len(poses_c2w) != n:
        raise ValueError(f"{n} depth maps but {len(poses_c2w)} poses")
    Ks = [np.asarray(K, dtype=np.float64)] * n if np.ndim(K) == 2 else [np.asarray(k, np.float64) for k in K]
    total = 0.0
    for t in range(n - 1):
        T_next_cur = np.linalg.inv(poses_c2w[t + 1]) @ poses_c2w[t]
        forward = reproject_depth(depths[t], Ks[t], T_next_cur)
        backward = reproject_depth(depths[t + 1], Ks[t + 1], np.linalg.inv(T_next_cur))
        m_next = None if masks is None else np.asarray(masks[t + 1], bool)
        m_cur = None if masks is None else np.asarray(masks[t], bool)
        total += _abs_rel_between(forward, np.asarray(depths[t + 1], np.float64), m_next) or 0.0
        total += _abs_rel_between(backward, np.asarray(depths[t], np.float64), m_cur) or 0.0
    return 100.0 * total / (2 * (n - 1))


_positive = valid_depth_mask


def temporal_change_error(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> float:
    """Mean |Δ ln pred - Δ ln gt| between consecutive frames, over pixels valid in all four maps."""
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} ground-truth maps")
    errors = []
    for t in range(len(preds) - 1):
        p0, p1 = np.asarray(preds[t], np.float64), np.asarray(preds[t + 1], np.float64)
        g0, g1 = np.asarray(gts[t], np.float64), np.asarray(gts[t + 1], np.float64)
        ok = _positive(p0) & _positive(p1) & _positive(g0) & _positive(g1)
        if ok.any():
            dp = np.log(p1[ok]) - np.log(p0[ok])
            dg = np.log(g1[ok]) - np.log(g0[ok])
            errors.append(float(np.mean(np.abs(dp - dg))))
    return float(np.mean(errors)) if errors else float("nan")


def flicker(preds: Sequence[np.ndarray]) -> float:
    """Mean symmetric relative change of the prediction between consecutive frames."""
    values = []
    for t in range(len(preds) - 1):
        a, b = np.asarray(preds[t], np.float64), np.asarray(preds[t + 1], np.float64)
        ok = _positive(a) & _positive(b)
        if ok.any():
            values.append(float(np.mean(np.abs(b[ok] - a[ok]) / (0.5 * (a[ok] + b[ok])))))
    return float(np.mean(values)) if values else float("nan")
