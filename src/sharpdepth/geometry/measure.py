"""Measuring in a photo: distance from the camera to a pixel, and between two pixels.

A single pixel's depth is a poor measurement: it may sit on an object edge, be
invalid, or carry the network's pixel-level noise. Each pick therefore takes the
median depth of the valid pixels in a small window around it (`window` pixels
square). On a plane the median of a symmetric window equals the centre value, so
this costs no accuracy; on an edge it picks the surface covering most of the
window. The point is then placed on the ray through the *picked* pixel at that
depth.

Distances are only defined for metric results with a focal length; relative
disparity is refused (RelativeDepthError) instead of printing unit-less numbers
as metres.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import OptionError
from ..result import DepthResult
from .camera import Camera, require_metric, valid_depth_mask
from .settings import DEFAULT_WINDOW, MeasureSettings, check_window

__all__ = [
    "DistanceMeasurement",
    "MeasureSettings",
    "PointMeasurement",
    "measure",
    "measure_distance",
    "measure_point",
    "parse_pixel",
    "robust_depth",
]


@dataclass(frozen=True)
class PointMeasurement:
    pixel: tuple[float, float]
    """(x, y) = (column, row) as picked."""
    depth_m: float
    """Robust z-depth: distance along the optical axis."""
    distance_m: float
    """Distance from the camera centre (length of the ray)."""
    point: tuple[float, float, float]
    """Camera frame (x right, y down, z forward), metres."""
    spread_m: float
    """Median absolute deviation of the depths in the window: how much the pick wavers."""
    n_valid: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields (`sharpdepth measure --json` and `POST /v1/measure` give the same)."""
        return {
            "pixel": list(self.pixel),
            "depth_m": self.depth_m,
            "distance_from_camera_m": self.distance_m,
            "xyz_m": list(self.point),
            "spread_m": self.spread_m,
        }


@dataclass(frozen=True)
class DistanceMeasurement:
    a: PointMeasurement
    b: PointMeasurement
    distance_m: float

    def to_dict(self) -> dict[str, object]:
        return {"distance_m": self.distance_m, "a": self.a.to_dict(), "b": self.b.to_dict()}


Measurement = PointMeasurement | DistanceMeasurement


def measurement_report(m: Measurement, focal_px: float | None) -> dict[str, object]:
    """The JSON of a measurement: one pixel's distance from the camera, or two pixels' distance."""
    body = {"point": m.to_dict()} if isinstance(m, PointMeasurement) else m.to_dict()
    return {**body, "focal_px": focal_px}


def parse_pixel(text: str) -> tuple[float, float]:
    """'x,y' (column,row) -> (x, y); OptionError otherwise."""
    parts = text.replace(" ", "").split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        x, y = float(parts[0]), float(parts[1])
    except ValueError:
        raise OptionError(f"pixel must be given as x,y (column,row), got {text!r}") from None
    if not (np.isfinite(x) and np.isfinite(y)):
        raise OptionError(f"pixel must be finite numbers, got {text!r}")
    return x, y


def _check_pixel(pixel: Sequence[float], width: int, height: int) -> tuple[float, float]:
    x, y = float(pixel[0]), float(pixel[1])
    if not (-0.5 <= x <= width - 0.5 and -0.5 <= y <= height - 0.5):
        raise OptionError(f"pixel ({x:g}, {y:g}) is outside the {width}x{height} image (x = column, y = row)")
    return x, y


def robust_depth(depth: np.ndarray, pixel: Sequence[float], window: int = DEFAULT_WINDOW) -> tuple[float, float, int]:
    """(median depth, MAD, number of valid pixels) in a `window` x `window` box around (x, y).

    Works on any positive map (metres or disparity); NaN, inf and <= 0 are ignored.
    """
    check_window(window)
    h, w = depth.shape
    x, y = _check_pixel(pixel, w, h)
    col, row = int(round(x)), int(round(y))
    half = window // 2
    patch = depth[max(row - half, 0) : row + half + 1, max(col - half, 0) : col + half + 1]
    values = patch[valid_depth_mask(patch)].astype(np.float64)
    if values.size == 0:
        raise OptionError(f"no valid depth within {window}x{window} pixels of ({x:g}, {y:g})")
    med = float(np.median(values))
    return med, float(np.median(np.abs(values - med))), int(values.size)


def measure_point(
    result: DepthResult, pixel: Sequence[float], window: int = DEFAULT_WINDOW, camera: Camera | None = None
) -> PointMeasurement:
    """3D position and distance from the camera of the surface at pixel (x, y)."""
    require_metric(result)
    camera = camera or Camera.from_result(result)
    x, y = _check_pixel(pixel, result.width, result.height)
    z, mad, n = robust_depth(result.depth, (x, y), window)
    point = camera.unproject(np.array(z), np.array(x), np.array(y))
    return PointMeasurement(
        pixel=(x, y),
        depth_m=z,
        distance_m=float(np.linalg.norm(point)),
        point=(float(point[0]), float(point[1]), float(point[2])),
        spread_m=mad,
        n_valid=n,
    )


def measure_distance(
    result: DepthResult,
    pixel_a: Sequence[float],
    pixel_b: Sequence[float],
    window: int = DEFAULT_WINDOW,
    camera: Camera | None = None,
) -> DistanceMeasurement:
    """Straight-line 3D distance (metres) between the surfaces at two pixels."""
    camera = camera or Camera.from_result(result)
    a = measure_point(result, pixel_a, window, camera)
    b = measure_point(result, pixel_b, window, camera)
    return DistanceMeasurement(a, b, float(np.linalg.norm(np.subtract(a.point, b.point))))


def measure(result: DepthResult, settings: MeasureSettings) -> Measurement:
    """The measurement the settings ask for: one pixel's distance, or the distance between two."""
    if len(settings.pixels) == 1:
        return measure_point(result, settings.pixels[0], settings.window)
    return measure_distance(result, settings.pixels[0], settings.pixels[1], settings.window)
