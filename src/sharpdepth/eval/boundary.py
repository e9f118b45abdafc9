"""Depth Pro's scale-invariant boundary metrics, vectorised.

Re-implements the definitions of apple/ml-depth-pro `src/depth_pro/eval/boundary_metrics.py`
(`SI_boundary_F1`, `SI_boundary_Recall`) without its per-pixel Python loops; the test
suite checks equality with a direct loop transcription on random inputs.

Definitions (all on *inverse* depth q = 1 / max(depth, 1e-6)):

* A neighbour pair along one of four directions is an *occluding contour at threshold t*
  when the ratio of the two inverse depths exceeds t (the nearer pixel is at least t
  times nearer). Directions: left, top, right, bottom (`q[:, :-1] / q[:, 1:] > t`, ...).
* Boundary F1 between a predicted and a ground-truth depth map at threshold t: per
  direction, precision = |P & G| / max(|P|, 1) and recall = |P & G| / max(|G|, 1); the
  four directions are averaged (a direction without contours contributes 0), then
  F1 = 2PR / (P + R) (0 when P + R = 0).
* Boundary recall against a binary mask (matting / segmentation ground truth): ground-
  truth contours are the mask's foreground/background neighbour pairs; predicted contours
  are thinned by non-maximum suppression: of every run of consecutive above-threshold
  pairs along the direction, only the first largest ratio is kept.
* The scale-invariant scores sum the per-threshold scores over t in
  linspace(1.05, 1.25, 10), weighted by t / sum(t).

Ratios of inverse depth are invariant to a global scale, hence "scale-invariant".

Extension (not in the official code): `valid` masks out pairs touching an invalid
ground-truth pixel, for real datasets with holes (the official code assumes dense ground
truth; a 0 would become a 1e6 inverse depth and a fake contour). With `valid=None` the
results are the official ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .metrics import as_numpy

T_MIN, T_MAX, N_THRESHOLDS = 1.05, 1.25, 10


def thresholds_and_weights(
    t_min: float = T_MIN, t_max: float = T_MAX, n: int = N_THRESHOLDS
) -> tuple[np.ndarray, np.ndarray]:
    """linspace(t_min, t_max, n) and weights proportional to the thresholds (summing to 1)."""
    thresholds = np.linspace(t_min, t_max, n)
    return thresholds, thresholds / thresholds.sum()


def invert_depth(depth: Any, eps: float = 1e-6) -> np.ndarray:
    """1 / depth with depth clipped at `eps` (the dtype of the input is kept, as upstream)."""
    d = as_numpy(depth)
    return 1.0 / d.clip(min=eps)


def neighbour_ratios(q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Inverse-depth ratios for the (left, top, right, bottom) relations.

    left[i, j]   = q[i, j] / q[i, j+1]   (the left pixel is nearer)
    top[i, j]    = q[i, j] / q[i+1, j]
    right[i, j]  = q[i, j+1] / q[i, j]
    bottom[i, j] = q[i+1, j] / q[i, j]
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return (
            q[:, :-1] / q[:, 1:],
            q[:-1, :] / q[1:, :],
            q[:, 1:] / q[:, :-1],
            q[1:, :] / q[:-1, :],
        )


def _pair_valid(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    horizontal = valid[:, :-1] & valid[:, 1:]
    vertical = valid[:-1, :] & valid[1:, :]
    return horizontal, vertical, horizontal, vertical


def _masked(ratios: tuple[np.ndarray, ...], valid: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """NaN where a pair touches an invalid pixel: NaN > t is False, so it never counts."""
    if valid is None:
        return ratios
    return tuple(np.where(ok, r, np.nan) for r, ok in zip(ratios, _pair_valid(valid), strict=True))


def _count_above(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """For every t: count of values > t, from one sort (NaNs never count)."""
    v = values[~np.isnan(values)].astype(np.float64, copy=False)
    v.sort()
    return v.size - np.searchsorted(v, thresholds, side="right")


def boundary_precision_recall(
    pred_depth: Any,
    gt_depth: Any,
    thresholds: Any,
    valid: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Direction-averaged boundary precision and recall at each threshold (two arrays).

    All thresholds come from a single sort per direction: |P_t| = #(r_pred > t),
    |G_t| = #(r_gt > t) and |P_t & G_t| = #(min(r_pred, r_gt) > t).
    """
    p, g = as_numpy(pred_depth), as_numpy(gt_depth)
    if p.ndim != 2 or p.shape != g.shape:
        raise ValueError(f"need two HxW depth maps of one shape, got {p.shape} and {g.shape}")
    t = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    v = None if valid is None else as_numpy(valid).astype(bool)
    rp = _masked(neighbour_ratios(invert_depth(p)), v)
    rg = _masked(neighbour_ratios(invert_depth(g)), v)
    precision = np.zeros(t.shape)
    recall = np.zeros(t.shape)
    for a, b in zip(rp, rg, strict=True):
        n_pred = _count_above(a.ravel(), t)
        n_gt = _count_above(b.ravel(), t)
        n_both = _count_above(np.minimum(a, b).ravel(), t)
        precision += n_both / np.maximum(n_pred, 1)
        recall += n_both / np.maximum(n_gt, 1)
    return 0.25 * precision, 0.25 * recall


def boundary_f1(pred_depth: Any, gt_depth: Any, thresholds: Any, valid: Any = None) -> np.ndarray:
    """Boundary F1 at each threshold (0 where precision + recall = 0)."""
    precision, recall = boundary_precision_recall(pred_depth, gt_depth, thresholds, valid)
    total = precision + recall
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, 2.0 * precision * recall / total, 0.0)


def si_boundary_f1(
    pred_depth: Any,
    gt_depth: Any,
    t_min: float = T_MIN,
    t_max: float = T_MAX,
    n: int = N_THRESHOLDS,
    valid: Any = None,
) -> float:
    """Depth Pro's scale-invariant boundary F1 between two depth maps (higher is better)."""
    thresholds, weights = thresholds_and_weights(t_min, t_max, n)
    return float(np.sum(boundary_f1(pred_depth, gt_depth, thresholds, valid) * weights))


# ------------------------------------------------------------------ mask-based recall
def nms_runs(ratio: np.ndarray, threshold: float, axis: int) -> np.ndarray:
    """Keep, of each run of consecutive `ratio > threshold` along `axis`, its first maximum.

    Vectorised version of upstream `nms_horizontal` / `nms_vertical`: runs are found with a
    start marker and a cumulative sum, the run maximum with `maximum.reduceat`, and the
    first pixel reaching it with `unique(..., return_index=True)`.
    """
    r = ratio if axis == 1 else ratio.T
    above = r > threshold
    keep = np.zeros(r.shape, dtype=bool)
    if not above.any():
        return keep if axis == 1 else keep.T
    starts = above.copy()
    starts[:, 1:] &= ~above[:, :-1]  # a run starts where the previous pixel in the row is off
    flat = np.flatnonzero(above)  # row-major: runs are contiguous in this list
    values = r.ravel()[flat]
    is_start = starts.ravel()[flat]
    run_id = np.cumsum(is_start) - 1
    run_max = np.maximum.reduceat(values, np.flatnonzero(is_start))
    at_max = np.flatnonzero(values == run_max[run_id])
    _, first = np.unique(run_id[at_max], return_index=True)
    keep.ravel()[flat[at_max[first]]] = True
    return keep if axis == 1 else keep.T


def thinned_edges(q: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Predicted contours (left, top, right, bottom) after non-maximum suppression."""
    left, top, right, bottom = neighbour_ratios(q)
    return (
        nms_runs(left, threshold, axis=1),
        nms_runs(top, threshold, axis=0),
        nms_runs(right, threshold, axis=1),
        nms_runs(bottom, threshold, axis=0),
    )


def mask_edges(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Foreground/background neighbour pairs of a boolean mask (left, top, right, bottom)."""
    m = mask.astype(bool)
    return (
        m[:, :-1] & ~m[:, 1:],
        m[:-1, :] & ~m[1:, :],
        m[:, 1:] & ~m[:, :-1],
        m[1:, :] & ~m[:-1, :],
    )


def boundary_recall_mask(pred_depth: Any, gt_mask: Any, thresholds: Any) -> np.ndarray:
    """Direction-averaged recall of the mask's contours by thinned depth contours, per threshold."""
    p, m = as_numpy(pred_depth), as_numpy(gt_mask).astype(bool)
    if p.ndim != 2 or p.shape != m.shape:
        raise ValueError(f"need an HxW depth map and mask of one shape, got {p.shape} and {m.shape}")
    q = invert_depth(p)
    gt_edges = mask_edges(m)
    gt_counts = [max(int(np.count_nonzero(e)), 1) for e in gt_edges]
    out = []
    for t in np.atleast_1d(np.asarray(thresholds, dtype=np.float64)):
        pred_edges = thinned_edges(q, float(t))
        total = sum(np.count_nonzero(pe & ge) / n for pe, ge, n in zip(pred_edges, gt_edges, gt_counts, strict=True))
        out.append(0.25 * total)
    return np.asarray(out)


def si_boundary_recall(
    pred_depth: Any,
    gt_mask: Any,
    t_min: float = T_MIN,
    t_max: float = T_MAX,
    n: int = N_THRESHOLDS,
    alpha_threshold: float = 0.1,
) -> float:
    """Depth Pro's scale-invariant boundary recall against a (soft) mask: mask > alpha_threshold."""
    thresholds, weights = thresholds_and_weights(t_min, t_max, n)
    binary = as_numpy(gt_mask) > alpha_threshold
    return float(np.sum(boundary_recall_mask(pred_depth, binary, thresholds) * weights))
