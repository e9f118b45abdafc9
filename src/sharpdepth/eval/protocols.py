"""Evaluation protocols: which pixels count, how predictions are prepared, per paper.

A protocol fixes everything that changes the numbers besides the model: the depth range
of ground truth that is scored (the "cap"), the crop, the clipping of predictions, how a
prediction is resized to the ground truth, and the default alignment for relative models.
Each preset names the public evaluation code it reproduces; docs/evaluation.md lists them
next to the papers' tables.

Preparing one image (`Protocol.prepare`):
1. resize the prediction to the ground-truth resolution (bilinear; `align_corners` as the
   reference code: True for ZoeDepth-style evaluation, False otherwise),
2. (harness) align relative predictions, using only the scored pixels,
3. clip predictions to [min_depth, max_depth]: below the minimum (also <= 0, e.g. a
   depth-space fit that overshoots, or a metric 0 m) -> min, inf (beyond infinity in
   disparity) -> max, NaN -> min (ZoeDepth `compute_metrics`, Marigold `eval.py`, BTS,
   AdaBins); protocols without a cap clip to [1e-3, 1e4] m so that logarithms stay finite,
4. score pixels where GT is finite, min_depth < GT < max_depth (strict, as the reference
   code) and inside the crop.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import OptionError
from .metrics import as_numpy, silog_preset

FALLBACK_MIN_DEPTH = 1e-3
FALLBACK_MAX_DEPTH = 1e4


# ------------------------------------------------------------------ crops
def eigen_crop_nyu(height: int, width: int) -> tuple[int, int, int, int]:
    """Eigen et al. (NIPS 2014) NYUv2 crop, rows 45:471, cols 41:601 of 480x640.

    Other resolutions get the same crop scaled proportionally (the reference code only
    defines it for 480x640).
    """
    if (height, width) == (480, 640):
        return 45, 471, 41, 601
    return (
        int(round(45 / 480 * height)),
        int(round(471 / 480 * height)),
        int(round(41 / 640 * width)),
        int(round(601 / 640 * width)),
    )


def eigen_crop_absolute(height: int, width: int) -> tuple[int, int, int, int]:
    """The Eigen NYUv2 window at absolute indices 45:471, 41:601 whatever the GT size.

    ZoeDepth's `compute_metrics` applies it so to every non-KITTI dataset with
    `eigen_crop=True` (iBims-1 at 480x640, DIODE indoor at 768x1024: a window of the upper
    left, not a scaled crop); reproducing its numbers needs the same absolute indices.
    """
    return min(45, height), min(471, height), min(41, width), min(601, width)


def garg_crop_kitti(height: int, width: int) -> tuple[int, int, int, int]:
    """Garg et al. (ECCV 2016) KITTI crop as fractions of the GT size (BTS / AdaBins / ZoeDepth).

    ZoeDepth applies the same fractions to every dataset with `garg_crop=True` (DIODE outdoor).
    """
    return _fraction_crop(height, width, (0.40810811, 0.99189189, 0.03594771, 0.96405229))


def eigen_crop_kitti(height: int, width: int) -> tuple[int, int, int, int]:
    """Eigen et al. (NIPS 2014) KITTI crop as fractions of the GT size (BTS / Marigold)."""
    return _fraction_crop(height, width, (0.3324324, 0.91351351, 0.0359477, 0.96405229))


def _fraction_crop(height: int, width: int, fractions: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """A crop published as fractions (top, bottom, left, right) of the GT size, truncated to pixels
    as the published code does (`int(f * size)`)."""
    top, bottom, left, right = fractions
    return int(top * height), int(bottom * height), int(left * width), int(right * width)


def scannet_depthcrafter_crop(height: int, width: int) -> tuple[int, int, int, int]:
    """DepthCrafter / Video Depth Anything ScanNet crop: [8:-8, 11:-11]."""
    return 8, height - 8, 11, width - 11


CROPS = {
    "eigen-nyu": eigen_crop_nyu,
    "eigen-absolute": eigen_crop_absolute,
    "garg-kitti": garg_crop_kitti,
    "garg": garg_crop_kitti,
    "eigen-kitti": eigen_crop_kitti,
    "scannet-depthcrafter": scannet_depthcrafter_crop,
}


def crop_mask(name: str | None, height: int, width: int) -> np.ndarray:
    """Boolean HxW mask of the evaluated region (all True without a crop)."""
    mask = np.zeros((height, width), dtype=bool)
    if name is None:
        mask[:] = True
        return mask
    if name not in CROPS:
        raise OptionError(f"unknown crop {name!r}; choose from {', '.join(CROPS)}")
    top, bottom, left, right = CROPS[name](height, width)
    mask[top:bottom, left:right] = True
    return mask


# ------------------------------------------------------------------ resizing
def resize_bilinear(array: Any, height: int, width: int, align_corners: bool = False) -> np.ndarray:
    """Bilinear resize of a float HxW map (torch's F.interpolate semantics, float32 out)."""
    a = as_numpy(array).astype(np.float32, copy=False)
    if a.shape == (height, width):
        return a
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(a))[None, None]
    out = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=align_corners)
    return out[0, 0].numpy()


# ------------------------------------------------------------------ protocols
@dataclass(frozen=True)
class Protocol:
    name: str
    min_depth: float | None = None
    max_depth: float | None = None
    crop: str | None = None
    align_corners: bool = False
    clip_prediction: bool = True
    align_relative: str = "lstsq"
    """Default alignment for relative models (metric models default to none)."""
    align_space: str = "disparity"
    align_scope: str = "image"
    """"image" or "sequence" (one fit per video, as the video-depth papers)."""
    temporal: bool = False
    """Temporal metrics (TAE, temporal change, flicker) by default: the video protocols."""
    silog_lambda: float = 1.0
    silog_scale: float = 100.0
    papers: str = ""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def eval_mask(self, gt: Any) -> np.ndarray:
        """Pixels that are scored: finite GT strictly inside the cap, inside the crop."""
        g = as_numpy(gt)
        mask = np.isfinite(g) & (g > (self.min_depth if self.min_depth is not None else 0.0))
        if self.max_depth is not None:
            mask &= g < self.max_depth
        return mask & crop_mask(self.crop, *g.shape)

    def resize(self, pred: Any, shape: tuple[int, int]) -> np.ndarray:
        return resize_bilinear(pred, shape[0], shape[1], self.align_corners)

    @property
    def clip_range(self) -> tuple[float, float]:
        lo = self.min_depth if self.min_depth else FALLBACK_MIN_DEPTH
        hi = self.max_depth if self.max_depth else FALLBACK_MAX_DEPTH
        return lo, hi

    def clip(self, depth: Any) -> np.ndarray:
        """inf -> max, NaN -> min, then clip to [min, max] (the reference code's order).

        Everything below the minimum, zero and negative values included, becomes the
        minimum (ZoeDepth `pred[pred < min_depth_eval] = min_depth_eval`, Marigold
        `np.clip(depth_pred, min_depth, max_depth)`): a non-positive depth is a very bad
        near prediction, never a far one.
        """
        d = as_numpy(depth).astype(np.float32, copy=True)
        if not self.clip_prediction:
            return d
        lo, hi = self.clip_range
        d[np.isposinf(d)] = hi
        d[np.isnan(d)] = lo
        return np.clip(d, lo, hi)

    def with_overrides(self, **changes: Any) -> Protocol:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def with_silog(self, preset: str | None) -> Protocol:
        """This protocol with a named SILog convention (`metrics.SILOG_PRESETS`); None keeps its own."""
        if preset is None:
            return self
        convention = silog_preset(preset)
        return replace(self, silog_lambda=convention.lam, silog_scale=convention.scale)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "min_depth": self.min_depth,
            "max_depth": self.max_depth,
            "crop": self.crop,
            "resize": f"bilinear (align_corners={self.align_corners})",
            "clip_prediction": self.clip_prediction,
            "align_relative": self.align_relative,
            "align_space": self.align_space,
            "align_scope": self.align_scope,
            "temporal": self.temporal,
            "silog": f"sqrt(mean(d^2) - {self.silog_lambda:g} mean(d)^2) x {self.silog_scale:g}",
            "papers": self.papers,
        }


PROTOCOLS: dict[str, Protocol] = {}


def _add(p: Protocol) -> None:
    PROTOCOLS[p.name] = p


_add(
    Protocol(
        "nyu-eigen",
        1e-3,
        10.0,
        "eigen-nyu",
        align_corners=True,
        papers="BTS, AdaBins, ZoeDepth (and Depth Anything V1 metric, ZoeDepth code); Marigold: same cap + crop",
        notes="NYUv2 official test split (654 images), GT in (1e-3, 10) m, Eigen crop 45:471 x 41:601.",
    )
)
_add(
    Protocol(
        "kitti-garg",
        1e-3,
        80.0,
        "garg-kitti",
        align_corners=True,
        papers="BTS, AdaBins, ZoeDepth (and Depth Anything V1 metric): Eigen split, Garg crop, cap 80 m",
    )
)
_add(
    Protocol(
        "kitti-eigen",
        1e-3,
        80.0,
        "eigen-kitti",
        align_corners=True,
        align_space="depth",
        papers="Eigen crop on the Eigen split (BTS --eigen_crop); Marigold evaluates KITTI with this crop "
        "(min 1e-5) and least squares in depth space",
    )
)
_add(
    Protocol(
        "kitti-benchmark",
        None,
        None,
        None,
        papers="KITTI depth-prediction devkit: every valid GT pixel, no crop, no cap; SILog x100, iRMSE 1/km",
        notes="The devkit's 'squared relative' is mean((p-g)^2/g^2), unlike Eigen's SqRel reported here.",
    )
)
_add(
    Protocol(
        "eth3d",
        1e-5,
        None,
        None,
        align_space="depth",
        papers="Marigold ETH3D (min 1e-5, no max, least squares in depth space)",
    )
)
_add(
    Protocol(
        "diode",
        0.6,
        350.0,
        None,
        align_space="depth",
        papers="Marigold DIODE (0.6..350 m, least squares in depth space)",
    )
)
_add(
    Protocol(
        "diode-indoor",
        1e-3,
        10.0,
        "eigen-absolute",
        align_corners=True,
        papers="ZoeDepth DIODE indoor zero-shot (cap 10 m, eigen_crop: absolute 45:471, 41:601)",
    )
)
_add(
    Protocol(
        "diode-outdoor",
        1e-3,
        80.0,
        "garg",
        align_corners=True,
        papers="ZoeDepth DIODE outdoor zero-shot (cap 80 m, garg_crop: fractions of the GT size)",
    )
)
_add(
    Protocol(
        "ibims",
        None,
        10.0,
        "eigen-absolute",
        align_corners=True,
        papers="ZoeDepth iBims-1 zero-shot (GT in (0, 10) m, eigen_crop: absolute 45:471, 41:601)",
        notes="ZoeDepth's min_depth_eval is 0 for iBims: GT > 0 is scored, predictions clip at 1e-3 m.",
    )
)
_add(
    Protocol(
        "sintel",
        0.1,
        70.0,
        None,
        papers="DepthCrafter / Video Depth Anything Sintel (0.1..70 m, per-sequence LS in disparity)",
        align_scope="sequence",
        temporal=True,
    )
)
_add(
    Protocol(
        "video-kitti",
        0.1,
        80.0,
        None,
        align_scope="sequence",
        temporal=True,
        papers="DepthCrafter / Video Depth Anything KITTI video (0.1..80 m, per-sequence LS in disparity)",
    )
)
_add(
    Protocol(
        "video-bonn",
        0.1,
        10.0,
        None,
        align_scope="sequence",
        temporal=True,
        papers="DepthCrafter / Video Depth Anything Bonn RGB-D (0.1..10 m, per-sequence LS in disparity)",
    )
)
_add(
    Protocol(
        "video-scannet",
        0.1,
        10.0,
        "scannet-depthcrafter",
        align_scope="sequence",
        temporal=True,
        papers="DepthCrafter / Video Depth Anything ScanNet (0.1..10 m, crop [8:-8, 11:-11])",
    )
)
_add(
    Protocol(
        "video-tum",
        0.1,
        10.0,
        None,
        align_scope="sequence",
        temporal=True,
        papers="sharpdepth video protocol for TUM RGB-D, as DepthCrafter / Video Depth Anything on Bonn RGB-D "
        "(same Kinect-class sensor: 0.1..10 m, one LS fit in disparity per sequence, TAE with GT poses)",
    )
)
_add(
    Protocol(
        "middlebury",
        None,
        None,
        None,
        papers="sharpdepth protocol: every pixel with known disparity, no cap, no crop "
        "(metric models unaligned, as Depth Pro's zero-shot metric evaluation)",
    )
)
_add(
    Protocol(
        "tum",
        1e-3,
        10.0,
        None,
        papers="sharpdepth protocol for TUM RGB-D (Kinect range: GT in (1e-3, 10) m)",
    )
)
_add(
    Protocol(
        "sun-rgbd",
        1e-3,
        10.0,
        None,
        papers="sharpdepth protocol for SUN RGB-D (indoor sensors: GT in (1e-3, 10) m)",
    )
)
_add(
    Protocol(
        "none",
        None,
        None,
        None,
        papers="no cap, no crop: every valid GT pixel",
    )
)

DATASET_DEFAULT_PROTOCOL = {
    "middlebury": "middlebury",
    "nyuv2": "nyu-eigen",
    "kitti": "kitti-garg",
    "eth3d": "eth3d",
    "sintel": "sintel",
    "ibims": "ibims",
    "diode": "diode",
    "tum": "tum",
    "sun-rgbd": "sun-rgbd",
    "folder": "none",
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise OptionError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOLS)}") from None


def default_protocol(dataset: str) -> Protocol:
    return get_protocol(DATASET_DEFAULT_PROTOCOL.get(dataset, "none"))
