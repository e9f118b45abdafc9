"""The result of one depth prediction, shared by writers, geometry and applications.

A result carries *what kind* of numbers it holds. Metric models give z-depth in
metres; relative models give affine-invariant disparity (inverse depth up to an
unknown scale and shift). Asking a relative result for metres raises
`RelativeDepthError` instead of silently handing out numbers that look like metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from .errors import RelativeDepthError


class OutputKind(StrEnum):
    METRIC_DEPTH = "metric_depth"
    RELATIVE_DISPARITY = "relative_disparity"


class FocalSource(StrEnum):
    USER = "user"
    EXIF = "exif"
    MODEL = "model"
    NONE = "none"


def fov_from_focal(focal_px: float, width: int) -> float:
    """Horizontal field of view (degrees) of a pinhole camera."""
    return math.degrees(2.0 * math.atan(0.5 * width / focal_px))


def focal_from_fov(fov_deg: float, width: int) -> float:
    """Focal length in pixels for a horizontal field of view (degrees)."""
    return 0.5 * width / math.tan(0.5 * math.radians(fov_deg))


@dataclass
class DepthResult:
    """One prediction at the input image's resolution (after EXIF orientation).

    `prediction` is the model's output in its own kind (`kind`): metres of
    z-depth, or relative disparity. Use `depth` (metric only) or `disparity`.
    """

    prediction: np.ndarray
    kind: OutputKind
    focal_px: float | None = None
    focal_source: FocalSource = FocalSource.NONE
    model_name: str = ""
    weights_sha256: str | None = None
    image: np.ndarray | None = field(default=None, repr=False)
    source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    frame_index: int | None = None
    """Index of the frame in its video (video predictions only)."""
    timestamp_s: float | None = None
    """Presentation time of the frame in seconds (video predictions only)."""

    def __post_init__(self) -> None:
        self.prediction = np.asarray(self.prediction, dtype=np.float32)
        if self.prediction.ndim != 2:
            raise ValueError(f"prediction must be HxW, got shape {self.prediction.shape}")
        self.kind = OutputKind(self.kind)
        self.focal_source = FocalSource(self.focal_source)

    def __repr__(self) -> str:
        """One line: shape, kind, range and focal length; never the arrays themselves."""
        finite = self.prediction[np.isfinite(self.prediction)]
        value_range = f"{float(finite.min()):.4g}..{float(finite.max()):.4g}" if finite.size else "no valid pixel"
        focal = "None" if self.focal_px is None else f"{self.focal_px:.1f}"
        return (
            f"DepthResult({self.width}x{self.height} {self.kind}, {value_range} {self.unit.split(' ')[0]}, "
            f"focal_px={focal} ({self.focal_source}), model={self.model_name!r}"
            + (f", image={self.image.shape[1]}x{self.image.shape[0]}" if self.image is not None else "")
            + ")"
        )

    @property
    def height(self) -> int:
        return int(self.prediction.shape[0])

    @property
    def width(self) -> int:
        return int(self.prediction.shape[1])

    @property
    def is_metric(self) -> bool:
        return self.kind is OutputKind.METRIC_DEPTH

    @property
    def depth(self) -> np.ndarray:
        """Z-depth in metres (float32 HxW). Only metric results have it."""
        if not self.is_metric:
            raise RelativeDepthError(
                f"model '{self.model_name or 'unknown'}' predicts relative disparity, not metres; "
                "use .disparity, or align it to known depths first (sharpdepth.align / --align-to)"
            )
        return self.prediction

    @property
    def disparity(self) -> np.ndarray:
        """Inverse depth: 1/metres for metric results, the raw relative disparity otherwise."""
        if self.is_metric:
            with np.errstate(divide="ignore"):
                return np.where(self.prediction > 0, 1.0 / self.prediction, 0.0).astype(np.float32)
        return self.prediction

    @property
    def fov_deg(self) -> float | None:
        """Horizontal field of view implied by `focal_px`."""
        if self.focal_px is None:
            return None
        return fov_from_focal(self.focal_px, self.width)

    @property
    def unit(self) -> str:
        return "m" if self.is_metric else "relative disparity (unitless, affine-invariant)"

    def summary(self) -> dict[str, Any]:
        """Scalars for the JSON sidecar: what the numbers are, where focal came from, ranges."""
        valid = self.prediction[np.isfinite(self.prediction)]
        stats = {
            "min": float(valid.min()) if valid.size else None,
            "median": float(np.median(valid)) if valid.size else None,
            "max": float(valid.max()) if valid.size else None,
        }
        out: dict[str, Any] = {
            "model": self.model_name,
            "weights_sha256": self.weights_sha256,
            "output_kind": str(self.kind),
            "unit": self.unit,
            "width": self.width,
            "height": self.height,
            "focal_px": self.focal_px,
            "fov_deg": self.fov_deg,
            "focal_source": str(self.focal_source),
        }
        key = "depth_m" if self.is_metric else "disparity"
        out[key] = stats
        if self.source:
            out["source"] = self.source
        out.update(self.extra)
        return out
