"""Depth error metrics, with the formulas the papers' evaluation code uses.

Notation: `p` predicted depth, `g` ground-truth depth (both metres, > 0), over the
N pixels that the protocol keeps (valid GT, inside the crop, inside the depth cap).

    AbsRel   = mean(|p - g| / g)
    SqRel    = mean((p - g)^2 / g)              Eigen et al. 2014 / BTS / AdaBins / ZoeDepth
    RMSE     = sqrt(mean((p - g)^2))            metres
    RMSE-log = sqrt(mean((ln p - ln g)^2))
    log10    = mean(|log10 p - log10 g|)
    delta_k  = mean(max(p/g, g/p) < 1.25^k),  k = 1, 2, 3
    SILog    = sqrt(mean(d^2) - lambda * mean(d)^2) * scale,   d = ln p - ln g
    iRMSE    = sqrt(mean((1/p - 1/g)^2))        1/km (KITTI benchmark unit)
    MAE      = mean(|p - g|)                    metres

SILog conventions (checked against the public evaluation code):
  * BTS `eval_with_pngs.py`, AdaBins `evaluate.py`, ZoeDepth `compute_errors`:
    lambda = 1, scale = 100 -> `sqrt(mean(d^2) - mean(d)^2) * 100`.
  * KITTI depth-prediction devkit (`evaluate_depth.cpp`): lambda = 1, no factor in the
    code; the leaderboard prints it x100 ("log(m)*100"), i.e. the same number as above.
  * AdaBins / BTS *training loss*: `10 * sqrt(var(d) + 0.15 mean(d)^2)`, i.e. lambda = 0.85
    and scale = 10 (torch.var is the unbiased variance, a negligible difference).
    This is a loss, not the reported metric.
  * Eigen et al. 2014 (paper, Eq. 4): training loss with lambda = 0.5; their reported
    scale-invariant error uses lambda = 1.
  * Depth Anything V2 `metric_depth/util/metric.py` `eval_depth`:
    `sqrt(mean(d^2) - 0.5 * mean(d)^2)`, i.e. lambda = 0.5 and no factor.
The defaults (lambda = 1, scale = 100; preset "zoedepth") reproduce the numbers in the tables
of BTS, AdaBins, ZoeDepth, Depth Anything V1 (metric; its fine-tuning used ZoeDepth's code) and
the KITTI leaderboard; Depth Anything V2's metric tables need the preset "depth-anything-v2".
Presets by name: `SILOG_PRESETS`.

Per-image metrics are averaged over images by the harness (as all the above code does),
not pooled over pixels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import OptionError
from ..maps import valid_depth_mask

MetricGroup = Literal["depth", "boundary", "focal", "temporal"]


@dataclass(frozen=True)
class MetricInfo:
    """What a reported number is called and which way is better: the one place this is said."""

    key: str
    label: str
    higher_is_better: bool
    group: MetricGroup


METRICS: tuple[MetricInfo, ...] = (
    MetricInfo("abs_rel", "AbsRel", False, "depth"),
    MetricInfo("sq_rel", "SqRel", False, "depth"),
    MetricInfo("rmse", "RMSE [m]", False, "depth"),
    MetricInfo("rmse_log", "RMSE log", False, "depth"),
    MetricInfo("log10", "log10", False, "depth"),
    MetricInfo("silog", "SILog", False, "depth"),
    MetricInfo("delta1", "δ1 (<1.25)", True, "depth"),
    MetricInfo("delta2", "δ2 (<1.25²)", True, "depth"),
    MetricInfo("delta3", "δ3 (<1.25³)", True, "depth"),
    MetricInfo("irmse", "iRMSE [1/km]", False, "depth"),
    MetricInfo("mae", "MAE [m]", False, "depth"),
    MetricInfo("boundary_f1", "Boundary F1 (SI)", True, "boundary"),
    MetricInfo("focal_abs_rel", "Focal AbsRel", False, "focal"),
    MetricInfo("focal_median_rel", "Focal median rel", False, "focal"),
    MetricInfo("focal_delta25", "Focal δ25", True, "focal"),
    MetricInfo("focal_delta50", "Focal δ50", True, "focal"),
    MetricInfo("tae", "TAE ×100", False, "temporal"),
    MetricInfo("temporal_change_error", "Temporal change err", False, "temporal"),
    MetricInfo("flicker", "Flicker (static clips)", False, "temporal"),
)
"""Every metric of a report, in table order."""

METRIC_INFO: dict[str, MetricInfo] = {m.key: m for m in METRICS}


def metric_keys(group: MetricGroup) -> tuple[str, ...]:
    return tuple(m.key for m in METRICS if m.group == group)


DEPTH_METRICS = metric_keys("depth")
"""Every key `depth_metrics` returns, in table order."""

TEMPORAL_METRICS = metric_keys("temporal")
HIGHER_IS_BETTER = frozenset(m.key for m in METRICS if m.higher_is_better)


@dataclass(frozen=True)
class SilogConvention:
    """SILog = sqrt(mean(d^2) - lam * mean(d)^2) * scale, as one paper's code computes it."""

    lam: float
    scale: float
    source: str


_ZOEDEPTH = SilogConvention(
    1.0, 100.0, "BTS/AdaBins/ZoeDepth compute_errors; Depth Anything V1 metric (ZoeDepth code); KITTI leaderboard"
)
SILOG_PRESETS: dict[str, SilogConvention] = {
    "zoedepth": _ZOEDEPTH,
    "depth-anything-v1": _ZOEDEPTH,
    "depth-anything-v2": SilogConvention(0.5, 1.0, "Depth Anything V2 metric_depth/util/metric.py (λ 0.5, no ×100)"),
}


def silog_preset(name: str) -> SilogConvention:
    try:
        return SILOG_PRESETS[name]
    except KeyError:
        raise OptionError(f"unknown SILog preset {name!r}; choose from {', '.join(SILOG_PRESETS)}") from None


def as_numpy(x: Any) -> np.ndarray:
    """NumPy view of an array-like; torch tensors are detached and moved to the CPU."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def valid_pairs(pred: Any, gt: Any, mask: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The (pred, gt) values that can be scored, as float64 1-D arrays.

    A pixel counts when `mask` (if given) is true and both depths are finite and > 0:
    logarithms and ratios need positive numbers, and invalid ground truth is stored as
    0, NaN or inf depending on the dataset.
    """
    p = as_numpy(pred).astype(np.float64, copy=False)
    g = as_numpy(gt).astype(np.float64, copy=False)
    if p.shape != g.shape:
        raise ValueError(f"prediction shape {p.shape} != ground-truth shape {g.shape}")
    keep = valid_depth_mask(p) & valid_depth_mask(g)
    if mask is not None:
        m = as_numpy(mask).astype(bool, copy=False)
        if m.shape != g.shape:
            raise ValueError(f"mask shape {m.shape} != ground-truth shape {g.shape}")
        keep &= m
    return p[keep], g[keep]


def abs_rel(p: np.ndarray, g: np.ndarray) -> float:
    return float(np.mean(np.abs(p - g) / g))


def sq_rel(p: np.ndarray, g: np.ndarray) -> float:
    """Eigen's squared relative error, mean((p-g)^2/g) (metres; *not* the KITTI devkit's
    mean((p-g)^2/g^2), which is unitless)."""
    return float(np.mean((p - g) ** 2 / g))


def rmse(p: np.ndarray, g: np.ndarray) -> float:
    return float(np.sqrt(np.mean((p - g) ** 2)))


def rmse_log(p: np.ndarray, g: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.log(p) - np.log(g)) ** 2)))


def log10_error(p: np.ndarray, g: np.ndarray) -> float:
    return float(np.mean(np.abs(np.log10(p) - np.log10(g))))


def delta_accuracy(p: np.ndarray, g: np.ndarray, k: int = 1, base: float = 1.25) -> float:
    """Share of pixels with max(p/g, g/p) < base**k (strict, as in all the reference code)."""
    ratio = np.maximum(p / g, g / p)
    return float(np.mean(ratio < base**k))


def silog(p: np.ndarray, g: np.ndarray, lam: float = 1.0, scale: float = 100.0) -> float:
    """sqrt(mean(d^2) - lam * mean(d)^2) * scale with d = ln p - ln g.

    lam = 1 makes it invariant to a global scale of `p` (it is then the standard deviation
    of the log error). Rounding can push the radicand a hair below zero for a perfect
    prediction; it is clamped at 0.
    """
    d = np.log(p) - np.log(g)
    radicand = float(np.mean(d**2) - lam * np.mean(d) ** 2)
    return float(np.sqrt(max(radicand, 0.0)) * scale)


def irmse(p: np.ndarray, g: np.ndarray) -> float:
    """RMSE of inverse depth in 1/km (the KITTI benchmark's unit): 1000 * sqrt(mean((1/p-1/g)^2))."""
    return float(1000.0 * np.sqrt(np.mean((1.0 / p - 1.0 / g) ** 2)))


def mae(p: np.ndarray, g: np.ndarray) -> float:
    return float(np.mean(np.abs(p - g)))


def depth_metrics(
    pred: Any,
    gt: Any,
    mask: Any = None,
    *,
    silog_lambda: float = 1.0,
    silog_scale: float = 100.0,
) -> dict[str, float]:
    """Every metric of `DEPTH_METRICS` for one image, plus `n_pixels`.

    `pred` and `gt` are depth maps in metres of the same shape (resize the prediction to
    the ground truth first; see `protocols.Protocol.prepare`). With no valid pixel every
    metric is NaN and `n_pixels` is 0, so one bad frame cannot crash a long run.
    """
    p, g = valid_pairs(pred, gt, mask)
    if p.size == 0:
        out = {name: float("nan") for name in DEPTH_METRICS}
        out["n_pixels"] = 0
        return out
    return {
        "abs_rel": abs_rel(p, g),
        "sq_rel": sq_rel(p, g),
        "rmse": rmse(p, g),
        "rmse_log": rmse_log(p, g),
        "log10": log10_error(p, g),
        "silog": silog(p, g, silog_lambda, silog_scale),
        "delta1": delta_accuracy(p, g, 1),
        "delta2": delta_accuracy(p, g, 2),
        "delta3": delta_accuracy(p, g, 3),
        "irmse": irmse(p, g),
        "mae": mae(p, g),
        "n_pixels": int(p.size),
    }


def mean_metrics(rows: list[Mapping[str, Any]], keys: tuple[str, ...] | None = None) -> dict[str, float]:
    """Per-image metrics averaged over images (NaN rows, i.e. images without valid pixels, skipped)."""
    if not rows:
        return {}
    keys = keys or tuple(k for k, v in rows[0].items() if isinstance(v, int | float) and k != "n_pixels")
    out: dict[str, float] = {}
    for key in keys:
        values = np.array([float(r[key]) for r in rows if key in r and r[key] is not None], dtype=np.float64)
        values = values[np.isfinite(values)]
        out[key] = float(values.mean()) if values.size else float("nan")
    return out
