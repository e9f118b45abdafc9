"""Focal-length estimation error, as reported in the Depth Pro paper.

For each image with a known focal length f* (pixels) and an estimate f:

    rel_err = |f - f*| / f*

Reported over a dataset: the mean relative error (`focal_abs_rel`), its median, and the
shares of images with rel_err < 25 % and < 50 % (`focal_delta25`, `focal_delta50`; the
Depth Pro paper's δ25 / δ50 columns, higher is better). Images without an estimate or
without ground truth are left out and counted in `focal_n`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .metrics import metric_keys

FOCAL_METRICS = metric_keys("focal")


def focal_relative_error(pred_focal: float, gt_focal: float) -> float:
    if not (gt_focal > 0 and np.isfinite(gt_focal)):
        raise ValueError(f"ground-truth focal length must be positive, got {gt_focal}")
    return abs(float(pred_focal) - float(gt_focal)) / float(gt_focal)


def focal_metrics(pred_focals: Sequence[float | None], gt_focals: Sequence[float | None]) -> dict[str, float]:
    """Aggregate focal-length metrics over image pairs; pairs with a missing value are skipped."""
    if len(pred_focals) != len(gt_focals):
        raise ValueError(f"{len(pred_focals)} estimates for {len(gt_focals)} ground-truth focal lengths")
    errors = np.array(
        [
            focal_relative_error(p, g)
            for p, g in zip(pred_focals, gt_focals, strict=True)
            if p is not None and g is not None and np.isfinite(p) and np.isfinite(g) and g > 0
        ],
        dtype=np.float64,
    )
    if errors.size == 0:
        return {name: float("nan") for name in FOCAL_METRICS} | {"focal_n": 0}
    return {
        "focal_abs_rel": float(errors.mean()),
        "focal_median_rel": float(np.median(errors)),
        "focal_delta25": float(np.mean(errors < 0.25)),
        "focal_delta50": float(np.mean(errors < 0.50)),
        "focal_n": int(errors.size),
    }
