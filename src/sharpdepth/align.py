"""Aligning relative predictions to known depths: scale (and shift) fits, closed form.

Relative models (MiDaS, Depth Anything) predict disparity up to an unknown scale s and
shift t. Given metric depths at some pixels (dense ground truth in an evaluation, or a
few measured points: `predict --align-to points.csv`) we fit

    s * pred + t ~= target          in `space`

where `pred` is the model's raw output in that space and `target` is the known depth in
metres, converted to the space: 1 / depth for "disparity" (MiDaS, Depth Anything,
DepthCrafter, Video Depth Anything all align in disparity), depth itself for "depth"
(Marigold-style affine-invariant depth). Methods:

* "lstsq": ordinary least squares, closed form (the 2x2 normal equations of MiDaS,
  Ranftl et al. 2020, Eq. 2-5, solved in centred form for numerical stability).
* "lstsq-robust": iteratively reweighted least squares; Huber weights (k = 1.345) until
  the fit settles, then Tukey's biweight (c = 4.685) so that gross outliers get weight 0;
  residual scale from the median absolute deviation. No random sampling, deterministic.
* "median": scale only, s = median(target) / median(pred), t = 0 (the "median scaling" of
  self-supervised monocular depth papers; in depth space for metric or up-to-scale depth).
* "none": s = 1, t = 0 (metric models evaluated as they are).

The fit is per call: pass one image for per-image alignment, or the pixels of a whole
sequence (concatenated) for per-sequence alignment.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import InputImageError, OptionError
from .maps import valid_depth_mask
from .result import DepthResult, OutputKind

Space = Literal["disparity", "depth"]
ALIGN_METHODS = ("none", "median", "lstsq", "lstsq-robust")
SPACES = ("disparity", "depth")

_HUBER_K = 1.345
_TUKEY_C = 4.685
_MAD_TO_SIGMA = 1.4826


def _array(x: Any) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _check_space(space: str) -> None:
    if space not in SPACES:
        raise OptionError(f"unknown alignment space {space!r}; choose from {', '.join(SPACES)}")


def depth_to_space(depth: Any, space: str) -> np.ndarray:
    """Metric depth expressed in `space` (1/depth for disparity; non-positive depth -> NaN)."""
    _check_space(space)
    d = _array(depth)
    d = np.where(valid_depth_mask(d), d, np.nan)
    return 1.0 / d if space == "disparity" else d


def _pairs(pred: Any, target: Any, mask: Any, space: str) -> tuple[np.ndarray, np.ndarray]:
    """Finite (pred, target-in-space) pairs where the mask allows and the target is a valid depth."""
    p = _array(pred)
    y = depth_to_space(target, space)
    if p.shape != y.shape:
        raise OptionError(f"prediction shape {p.shape} does not match target shape {y.shape}")
    keep = np.isfinite(p) & np.isfinite(y)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != p.shape:
            raise OptionError(f"mask shape {m.shape} does not match prediction shape {p.shape}")
        keep &= m
    return p[keep], y[keep]


def _weighted_fit(x: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> tuple[float, float]:
    """argmin_{s,t} sum w (s x + t - y)^2, via weighted means (centred normal equations)."""
    if w is None:
        w = np.ones_like(x)
    wsum = w.sum()
    if wsum <= 0:
        raise OptionError("no usable points to fit a scale and shift")
    mx, my = (w * x).sum() / wsum, (w * y).sum() / wsum
    dx = x - mx
    var = (w * dx * dx).sum()
    if not var > 0:
        raise OptionError("cannot fit a scale and shift: the prediction is constant over the known points")
    s = (w * dx * (y - my)).sum() / var
    return float(s), float(my - s * mx)


def _robust_sigma(r: np.ndarray, y: np.ndarray) -> float:
    mad = float(np.median(np.abs(r - np.median(r))))
    floor = 1e-12 * max(float(np.median(np.abs(y))), 1e-300)
    return max(_MAD_TO_SIGMA * mad, floor)


def _irls(x: np.ndarray, y: np.ndarray, max_iter: int = 100, tol: float = 1e-12) -> tuple[float, float]:
    """Huber IRLS to a stable fit, then Tukey biweight IRLS to drop gross outliers."""
    s, t = _weighted_fit(x, y, None)
    for weight_fn in (_huber_weights, _tukey_weights):
        for _ in range(max_iter):
            r = y - (s * x + t)
            sigma = _robust_sigma(r, y)
            w = weight_fn(np.abs(r) / sigma)
            if np.count_nonzero(w) < 2:
                break
            s_new, t_new = _weighted_fit(x, y, w)
            done = abs(s_new - s) <= tol * (abs(s) + tol) and abs(t_new - t) <= tol * (abs(t) + abs(s) + tol)
            s, t = s_new, t_new
            if done:
                break
    return s, t


def _huber_weights(u: np.ndarray) -> np.ndarray:
    return np.where(u <= _HUBER_K, 1.0, _HUBER_K / np.maximum(u, 1e-300))


def _tukey_weights(u: np.ndarray) -> np.ndarray:
    v = u / _TUKEY_C
    return np.where(v < 1.0, (1.0 - v * v) ** 2, 0.0)


def fit_scale_shift(
    pred: Any,
    target: Any,
    mask: Any = None,
    space: Space = "disparity",
    robust: bool = False,
) -> tuple[float, float]:
    """(scale, shift) with scale * pred + shift ~= target in `space`; target is depth in metres.

    Closed-form least squares, or the IRLS fit with `robust=True`. Needs at least two
    points with different predictions.
    """
    _check_space(space)
    x, y = _pairs(pred, target, mask, space)
    if x.size < 2:
        raise OptionError(f"need at least 2 valid points to fit a scale and shift, got {x.size}")
    return _irls(x, y) if robust else _weighted_fit(x, y, None)


def fit_median_scale(pred: Any, target: Any, mask: Any = None, space: Space = "depth") -> float:
    """Scale-only fit: median(target in space) / median(pred)."""
    _check_space(space)
    x, y = _pairs(pred, target, mask, space)
    if x.size == 0:
        raise OptionError("no valid points to fit a scale")
    mx = float(np.median(x))
    if not mx > 0:
        raise OptionError("cannot fit a median scale: the median prediction is not positive")
    return float(np.median(y)) / mx


@dataclass(frozen=True)
class Alignment:
    """A fitted map from raw predictions to `space`, and from there to metres."""

    scale: float = 1.0
    shift: float = 0.0
    space: str = "depth"
    method: str = "none"
    n_points: int = 0
    extra: dict[str, float] = field(default_factory=dict)

    def to_space(self, pred: Any) -> np.ndarray:
        return self.scale * _array(pred) + self.shift

    def apply(
        self,
        pred: Any,
        min_depth: float | None = None,
        max_depth: float | None = None,
        invalid: float = math.inf,
    ) -> np.ndarray:
        """Metric depth (float32) from a raw prediction.

        In disparity space the aligned disparity is clamped to [1/max_depth, 1/min_depth]
        when caps are given (MiDaS's "disparity cap"); disparity <= 0 (beyond infinity)
        becomes `invalid` otherwise. In depth space depths are clipped to the caps and
        depth <= 0 becomes `invalid`.
        """
        v = self.to_space(pred)
        if self.space == "disparity":
            if max_depth is not None:
                v = np.maximum(v, 1.0 / max_depth)
            if min_depth is not None and min_depth > 0:
                v = np.minimum(v, 1.0 / min_depth)
            with np.errstate(divide="ignore", invalid="ignore"):
                depth = np.where(v > 0, 1.0 / v, invalid)
        else:
            depth = np.clip(v, min_depth, max_depth) if (min_depth or max_depth) else v
            depth = np.where(depth > 0, depth, invalid)
        depth = np.where(np.isnan(v), np.nan, depth)
        return depth.astype(np.float32)

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "space": self.space,
            "scale": self.scale,
            "shift": self.shift,
            "n_points": self.n_points,
            **self.extra,
        }


def fit_alignment(
    pred: Any,
    target: Any,
    mask: Any = None,
    method: str = "lstsq",
    space: Space = "disparity",
) -> Alignment:
    """Fit one of ALIGN_METHODS; `target` is metric depth (NaN / <= 0 = unknown)."""
    if method not in ALIGN_METHODS:
        raise OptionError(f"unknown alignment {method!r}; choose from {', '.join(ALIGN_METHODS)}")
    _check_space(space)
    n = int(_pairs(pred, target, mask, space)[0].size)
    if method == "none":
        return Alignment(1.0, 0.0, space, method, n)
    if method == "median":
        return Alignment(fit_median_scale(pred, target, mask, space), 0.0, space, method, n)
    scale, shift = fit_scale_shift(pred, target, mask, space, robust=method == "lstsq-robust")
    return Alignment(scale, shift, space, method, n)


def align_to_depth(
    pred: Any,
    target: Any,
    mask: Any = None,
    method: str = "lstsq",
    space: Space = "disparity",
    min_depth: float | None = None,
    max_depth: float | None = None,
) -> tuple[np.ndarray, Alignment]:
    """Fit on the known pixels and return (metric depth of the whole map, the alignment)."""
    alignment = fit_alignment(pred, target, mask, method, space)
    return alignment.apply(pred, min_depth, max_depth), alignment


# ------------------------------------------------------------------ sparse points
@dataclass(frozen=True)
class SparsePoints:
    """Known depths at pixels: x = column, y = row (pixel centres at integers, origin top-left)."""

    x: np.ndarray
    y: np.ndarray
    depth_m: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return int(self.depth_m.size)

    def to_target(self, height: int, width: int) -> np.ndarray:
        """An HxW depth map, NaN except at the points (rounded to the nearest pixel)."""
        cols = np.rint(self.x).astype(np.int64)
        rows = np.rint(self.y).astype(np.int64)
        outside = (cols < 0) | (cols >= width) | (rows < 0) | (rows >= height)
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            raise OptionError(
                f"{self.source or 'sparse points'}: {int(outside.sum())} point(s) outside the "
                f"{width}x{height} image (first: x={self.x[i]:g}, y={self.y[i]:g})"
            )
        target = np.full((height, width), np.nan)
        target[rows, cols] = self.depth_m
        return target


def load_sparse_points(path: str | Path) -> SparsePoints:
    """Read `x,y,depth_m` rows (header line optional; '#' comments and blank lines skipped)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InputImageError(f"{path}: cannot read sparse depth points ({exc.strerror or exc})") from None
    xs, ys, ds = [], [], []
    reader = csv.reader(line for line in text.splitlines())
    for lineno, row in enumerate(reader, start=1):
        cells = [c.strip() for c in row]
        if not cells or not any(cells) or cells[0].startswith("#"):
            continue
        if lineno == 1 and cells[0].lower() == "x":
            if [c.lower() for c in cells[:3]] != ["x", "y", "depth_m"]:
                raise InputImageError(f"{path}: header must be x,y,depth_m, got {','.join(cells)}")
            continue
        if len(cells) < 3:
            raise InputImageError(f"{path}:{lineno}: expected x,y,depth_m, got {','.join(cells)!r}")
        try:
            x, y, d = float(cells[0]), float(cells[1]), float(cells[2])
        except ValueError:
            raise InputImageError(f"{path}:{lineno}: not numbers: {','.join(cells[:3])!r}") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise InputImageError(f"{path}:{lineno}: pixel coordinates must be finite")
        if not (math.isfinite(d) and d > 0):
            raise InputImageError(f"{path}:{lineno}: depth_m must be a positive number of metres, got {d}")
        xs.append(x)
        ys.append(y)
        ds.append(d)
    if not ds:
        raise InputImageError(f"{path}: no depth points (expected rows of x,y,depth_m)")
    return SparsePoints(np.array(xs), np.array(ys), np.array(ds), str(path))


def _values_in_space(result: DepthResult, space: Space) -> np.ndarray:
    """The raw map as values in `space`: depth up to scale (Depth Anything 3) is inverted for disparity
    space; relative disparity cannot be depth (its unknown shift), so depth space refuses it."""
    if space == "depth":
        return np.asarray(result.relative_depth, dtype=np.float64)  # RelativeDepthError for disparity
    if not result.kind.is_depth:
        return np.asarray(result.prediction, dtype=np.float64)
    p = np.asarray(result.prediction, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, 1.0 / p, np.nan)


def align_result_to_points(
    result: DepthResult,
    points: SparsePoints,
    method: str = "lstsq",
    space: Space = "disparity",
) -> DepthResult:
    """A metric `DepthResult` from a relative one, fitted to known depths at a few pixels.

    Pixels whose aligned disparity is not positive get NaN. The fit and its residual at the
    points (AbsRel, in `extra["alignment"]`) are recorded so the user can judge it.
    """
    if result.is_metric:
        raise OptionError(f"{result.model_name or 'this model'} already predicts metres; nothing to align")
    if method == "none":
        raise OptionError("a relative prediction needs an alignment (median, lstsq or lstsq-robust)")
    target = points.to_target(result.height, result.width)
    values = _values_in_space(result, space)
    alignment = fit_alignment(values, target, None, method, space)
    depth = alignment.apply(values, invalid=np.nan)
    known = np.isfinite(target)
    fitted = depth[known].astype(np.float64)
    ok = np.isfinite(fitted) & (fitted > 0)
    residual = float(np.mean(np.abs(fitted[ok] - target[known][ok]) / target[known][ok])) if ok.any() else math.nan
    info = alignment.as_dict() | {"abs_rel_at_points": residual, "points_file": points.source}
    return replace(
        result,
        prediction=depth,
        kind=OutputKind.METRIC_DEPTH,
        extra={**result.extra, "alignment": info},
    )
