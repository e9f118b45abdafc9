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
    """What the numbers of a prediction are.

    * `METRIC_DEPTH`: z-depth in metres.
    * `RELATIVE_DISPARITY`: inverse depth up to an unknown scale *and shift* (MiDaS,
      Depth Anything V1/V2): neither metres nor proportional to 1/depth.
    * `RELATIVE_DEPTH`: z-depth up to one unknown scale, no shift (Depth Anything 3's
      any-view and mono models): ratios of depths are right, metres are not.

    Only `METRIC_DEPTH` ever answers in metres; every other kind refuses (`RelativeDepthError`).
    """

    METRIC_DEPTH = "metric_depth"
    RELATIVE_DISPARITY = "relative_disparity"
    RELATIVE_DEPTH = "relative_depth"

    @property
    def is_metric(self) -> bool:
        return self is OutputKind.METRIC_DEPTH

    @property
    def is_depth(self) -> bool:
        """True where the numbers grow with distance (metric or scale-only depth), not disparity."""
        return self is not OutputKind.RELATIVE_DISPARITY

    @property
    def file_word(self) -> str:
        """The word that names this kind's map in file names and output fields (`photo_depth.npy`)."""
        return _FILE_WORDS[self]

    @property
    def meaning(self) -> str:
        """What the numbers are, for messages: "metric depth", "relative disparity", ..."""
        return _MEANINGS[self]

    @property
    def unit(self) -> str:
        """The unit of the numbers, for sidecars: "m", or what a relative kind's numbers are."""
        return _UNITS[self]


_FILE_WORDS = {
    OutputKind.METRIC_DEPTH: "depth",
    OutputKind.RELATIVE_DISPARITY: "disparity",
    OutputKind.RELATIVE_DEPTH: "relative_depth",
}
_UNITS = {
    OutputKind.METRIC_DEPTH: "m",
    OutputKind.RELATIVE_DISPARITY: "relative disparity (unitless, affine-invariant)",
    OutputKind.RELATIVE_DEPTH: "relative depth (unitless, up to scale)",
}
_MEANINGS = {
    OutputKind.METRIC_DEPTH: "metric depth",
    OutputKind.RELATIVE_DISPARITY: "relative disparity",
    OutputKind.RELATIVE_DEPTH: "depth up to an unknown scale",
}


class FocalSource(StrEnum):
    USER = "user"
    EXIF = "exif"
    MODEL = "model"
    DEFAULT = "default"
    """The model's documented assumption when nothing else is known (SHARP: a 30 mm lens)."""
    NONE = "none"


def fov_from_focal(focal_px: float, width: int) -> float:
    """Horizontal field of view (degrees) of a pinhole camera."""
    return math.degrees(2.0 * math.atan(0.5 * width / focal_px))


def focal_from_35mm(focal_35mm: float, width: int, height: int) -> float:
    """Focal length in pixels for a 35 mm-equivalent focal length (the diagonal rule of EXIF's
    FocalLengthIn35mmFilm: a 36 x 24 mm frame's diagonal maps onto the image's)."""
    return focal_35mm * math.hypot(width, height) / math.hypot(36.0, 24.0)


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
    confidence: np.ndarray | None = field(default=None, repr=False)
    """Per-pixel confidence (float32 HxW, higher is surer) where the model predicts one."""
    sky: np.ndarray | None = field(default=None, repr=False)
    """Sky mask (bool HxW, True = sky) where the model predicts one."""
    intrinsics: np.ndarray | None = None
    """Pinhole intrinsics K (float64 3x3) in pixels of *this* map, where known (estimated or given)."""

    def __post_init__(self) -> None:
        self.prediction = np.asarray(self.prediction, dtype=np.float32)
        if self.prediction.ndim != 2:
            raise ValueError(f"prediction must be HxW, got shape {self.prediction.shape}")
        self.kind = OutputKind(self.kind)
        self.focal_source = FocalSource(self.focal_source)
        shape = self.prediction.shape
        if self.confidence is not None:
            self.confidence = np.asarray(self.confidence, dtype=np.float32)
            if self.confidence.shape != shape:
                raise ValueError(f"confidence must be {shape[0]}x{shape[1]}, got shape {self.confidence.shape}")
        if self.sky is not None:
            self.sky = np.asarray(self.sky, dtype=bool)
            if self.sky.shape != shape:
                raise ValueError(f"sky must be {shape[0]}x{shape[1]}, got shape {self.sky.shape}")
        if self.intrinsics is not None:
            self.intrinsics = np.asarray(self.intrinsics, dtype=np.float64)
            if self.intrinsics.shape != (3, 3):
                raise ValueError(f"intrinsics must be 3x3, got shape {self.intrinsics.shape}")

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
        return self.kind.is_metric

    @property
    def depth(self) -> np.ndarray:
        """Z-depth in metres (float32 HxW). Only metric results have it."""
        if not self.is_metric:
            what = "depth up to an unknown scale" if self.kind.is_depth else "relative disparity"
            hint = "use .relative_depth or .disparity" if self.kind.is_depth else "use .disparity"
            raise RelativeDepthError(
                f"model '{self.model_name or 'unknown'}' predicts {what}, not metres; "
                f"{hint}, or align it to known depths first (sharpdepth.align / --align-to)"
            )
        return self.prediction

    @property
    def relative_depth(self) -> np.ndarray:
        """Depth in the model's own units: metres (metric) or up to one scale (relative depth).

        Refused for relative disparity, whose unknown shift makes 1/x meaningless as depth.
        """
        if not self.kind.is_depth:
            raise RelativeDepthError(
                f"model '{self.model_name or 'unknown'}' predicts relative disparity (unknown scale and shift); "
                "its inverse is not depth: use .disparity"
            )
        return self.prediction

    @property
    def disparity(self) -> np.ndarray:
        """Inverse depth: 1/depth for depth kinds (1/metres when metric), the raw relative disparity otherwise."""
        if self.kind.is_depth:
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
        return self.kind.unit

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
        key = "depth_m" if self.is_metric else ("depth_relative" if self.kind.is_depth else "disparity")
        out[key] = stats
        if self.intrinsics is not None:
            out["intrinsics"] = [[float(v) for v in row] for row in self.intrinsics]
        if self.source:
            out["source"] = self.source
        out.update(self.extra)
        return out


@dataclass
class SceneResult:
    """Several views predicted together: per-view maps plus one camera per view in one frame.

    `views[i]` is the `DepthResult` of input i (input order), with its own `intrinsics`.
    `intrinsics` stacks them (N x 3 x 3, pixels of each returned map); `cam_to_world` holds
    N camera-to-world poses (4 x 4, OpenCV axes: x right, y down, z forward). Translations are
    in metres when the views are metric, otherwise in the scene's own (up-to-scale) units.
    """

    views: list[DepthResult]
    intrinsics: np.ndarray
    cam_to_world: np.ndarray
    model_name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.views)
        if n == 0:
            raise ValueError("a scene needs at least one view")
        self.intrinsics = np.asarray(self.intrinsics, dtype=np.float64)
        self.cam_to_world = np.asarray(self.cam_to_world, dtype=np.float64)
        if self.intrinsics.shape != (n, 3, 3):
            raise ValueError(f"intrinsics must be {n}x3x3, got shape {self.intrinsics.shape}")
        if self.cam_to_world.shape != (n, 4, 4):
            raise ValueError(f"cam_to_world must be {n}x4x4, got shape {self.cam_to_world.shape}")

    def __len__(self) -> int:
        return len(self.views)

    @property
    def is_metric(self) -> bool:
        """True when every view is in metres (so are the camera translations)."""
        return all(v.is_metric for v in self.views)

    @property
    def world_to_cam(self) -> np.ndarray:
        """N x 4 x 4 inverses of `cam_to_world` (the extrinsics COLMAP and any-view models store)."""
        return np.linalg.inv(self.cam_to_world)
