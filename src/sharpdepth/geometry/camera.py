"""Pinhole camera for turning a depth map into 3D points and back.

Conventions (used by every geometry and effect module):

- Pixel coordinates: `u` = column, `v` = row, with the *centre* of pixel
  (row i, column j) at (u, v) = (j, i). The image spans u in [-0.5, W-0.5].
- Principal point: the image centre, (cx, cy) = ((W-1)/2, (H-1)/2) in those
  coordinates, unless given. (Depth Pro and the other models assume a centred
  principal point; a photo cropped off-centre needs cx, cy.)
- Focal length: fx = fy = focal_px (square pixels).
- Camera frame: OpenCV's — x right, y down, z forward (into the scene).
- Depth is **z-depth**: the distance along the optical axis, not the length of
  the ray to the point. A point at pixel (u, v) with depth z is
  X = (u - cx) z / fx, Y = (v - cy) z / fy, Z = z; its distance from the camera
  centre is z * sqrt(1 + ((u-cx)/fx)^2 + ((v-cy)/fy)^2).

Metric geometry needs metres *and* a focal length, so `Camera.from_result`
refuses relative disparity (RelativeDepthError) and results without a focal
length (OptionError): any number it produced would look like metres but not be.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import OptionError, RelativeDepthError
from ..maps import check_focal_px, rescale_intrinsics, valid_depth_mask
from ..result import DepthResult

__all__ = ["Camera", "require_metric", "valid_depth_mask"]


@dataclass(frozen=True)
class Camera:
    """Pinhole intrinsics for an image of `width` x `height` pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_focal(
        cls, focal_px: float, width: int, height: int, cx: float | None = None, cy: float | None = None
    ) -> Camera:
        """Square-pixel camera; principal point at the image centre unless given."""
        focal_px = check_focal_px(focal_px)
        cx = (width - 1) / 2.0 if cx is None else float(cx)
        cy = (height - 1) / 2.0 if cy is None else float(cy)
        return cls(float(focal_px), float(focal_px), cx, cy, int(width), int(height))

    @classmethod
    def from_result(cls, result: DepthResult, cx: float | None = None, cy: float | None = None) -> Camera:
        """The camera of a metric result; refuses relative disparity and unknown focal length."""
        require_metric(result)
        return cls.from_focal(check_focal_px(result.focal_px), result.width, result.height, cx, cy)

    @property
    def K(self) -> np.ndarray:
        """3x3 intrinsic matrix."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def scaled(self, factor: float) -> Camera:
        """The same camera for the image resized by `factor` (pixel centres stay consistent)."""
        return self.resized(round(self.width * factor), round(self.height * factor))

    def resized(self, width: int, height: int) -> Camera:
        """The same camera for the image resized to `width` x `height` pixels."""
        fx, fy, cx, cy = rescale_intrinsics(
            self.fx, self.fy, self.cx, self.cy, width / self.width, height / self.height
        )
        return Camera(fx, fy, cx, cy, int(width), int(height))

    def subsampled(self, stride: int) -> Camera:
        """The camera of every `stride`-th pixel (pixel (0, 0) kept: centres scale about it, not the corner)."""
        width, height = -(-self.width // stride), -(-self.height // stride)
        return Camera(self.fx / stride, self.fy / stride, self.cx / stride, self.cy / stride, width, height)

    def pixel_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """(u, v) float arrays HxW of pixel-centre coordinates."""
        v, u = np.mgrid[0 : self.height, 0 : self.width].astype(np.float64)
        return u, v

    def rays(self) -> np.ndarray:
        """HxWx3 ray directions with z = 1 (multiply by z-depth to get points)."""
        u, v = self.pixel_grid()
        return np.stack([(u - self.cx) / self.fx, (v - self.cy) / self.fy, np.ones_like(u)], axis=-1)

    def unproject(self, depth: np.ndarray, u: np.ndarray | None = None, v: np.ndarray | None = None) -> np.ndarray:
        """3D points (..., 3) in the camera frame from z-depth.

        With `u`, `v` given, `depth` holds the depth at those pixel coordinates
        (any matching shape); otherwise `depth` is the HxW map and the result HxWx3.
        """
        depth = np.asarray(depth, dtype=np.float64)
        if u is None or v is None:
            if depth.shape != (self.height, self.width):
                raise ValueError(f"depth map {depth.shape} does not match camera {self.height}x{self.width}")
            u, v = self.pixel_grid()
        u = np.asarray(u, dtype=np.float64)
        v = np.asarray(v, dtype=np.float64)
        return np.stack([(u - self.cx) / self.fx * depth, (v - self.cy) / self.fy * depth, depth], axis=-1)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(u, v, z) of camera-frame points (..., 3). Points with z <= 0 get NaN coordinates."""
        points = np.asarray(points, dtype=np.float64)
        z = points[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.where(z > 0, 1.0 / z, np.nan)
        return self.fx * points[..., 0] * inv + self.cx, self.fy * points[..., 1] * inv + self.cy, z

    def ray_length_factor(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Distance from the camera centre per metre of z-depth at pixel (u, v)."""
        return np.sqrt(1.0 + ((np.asarray(u) - self.cx) / self.fx) ** 2 + ((np.asarray(v) - self.cy) / self.fy) ** 2)


def require_metric(result: DepthResult) -> None:
    """Raise a clear error unless `result` holds metres and a focal length."""
    if not result.is_metric:
        raise RelativeDepthError(
            f"model '{result.model_name or 'unknown'}' predicts {result.kind.meaning} (no metric scale): "
            "metric geometry needs a metric model such as depth-pro, or a result aligned to known depths (--align-to)"
        )
    if result.focal_px is None or not (np.isfinite(result.focal_px) and result.focal_px > 0):
        raise OptionError("this result has no focal length; pass --focal-px (or --fov-deg when predicting)")
