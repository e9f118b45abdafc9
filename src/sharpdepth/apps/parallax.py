"""3D photo: a short video of the picture seen from a gently moving camera.

Camera paths (`t` runs over [0, 1) for loops, [0, 1] otherwise; `A` = amplitude
as a fraction of the pivot depth, so the same setting suits a room or a
landscape):

| path        | camera motion                                                      |
|-------------|--------------------------------------------------------------------|
| horizontal  | side to side: x = A sin 2πt (one way: -A..A)                       |
| vertical    | up and down: y = A sin 2πt                                         |
| circle      | x = A cos 2πt, y = A sin 2πt                                       |
| swing       | side to side on an arc: x = A sin 2πt, z = A (1 - cos 2πt) / 2     |
| zoom-in     | forward and back: z = A (1 - cos 2πt) / 2 (one way: ease in to A)  |
| dolly-zoom  | forward like zoom-in while the focal length shrinks so the pivot   |
|             | plane keeps its size ("Vertigo" effect)                            |

The camera does not rotate; instead its principal point shifts so the *pivot*
depth plane stays still in the frame: nearer things move one way, farther ones
the other, each by f * shift * |1/z - 1/pivot| pixels (parallax falls off as
1/z). Each frame is rendered by `warp.render_view` (z-buffered splatting,
background-side hole filling). Unless `crop=False`, the view is zoomed in just
enough that the path never uncovers the picture's borders.

Relative results (no metres) use a pseudo-depth 1 / (0.1 + 0.9 d) from the
normalised disparity d in [0, 1]: the nearest things are 10x nearer than the
farthest. Video is H.264 MP4 through PyAV (bundled FFmpeg with libx264).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import OptionError
from ..geometry.camera import Camera
from ..io.atomic import atomic_path
from ..maps import fill_invalid_as_far, normalize_percentile, require_valid
from ..result import DepthResult, focal_from_fov
from .common import linear_to_srgb, resize_plane, srgb_to_linear
from .settings import DEFAULT_AMPLITUDE, PATHS, ParallaxSettings, check_camera_path, check_positive
from .warp import render_view

__all__ = [
    "PATHS",
    "CameraPath",
    "ParallaxPlan",
    "ParallaxSettings",
    "parallax_video",
    "plan_parallax",
    "plan_view",
    "working_size",
]

DEFAULT_FOV_DEG = 60.0  # assumed for results without a focal length
MAX_CROP = 0.25


@dataclass(frozen=True)
class CameraPath:
    kind: str
    amplitude: float | None = None
    """Fraction of the pivot depth; None: the path's default."""
    loop: bool = True

    def __post_init__(self) -> None:
        check_camera_path(self.kind, self.amplitude)

    @classmethod
    def from_settings(cls, settings: ParallaxSettings) -> CameraPath:
        return cls(settings.path, settings.amplitude, settings.loop)

    @property
    def amp(self) -> float:
        return DEFAULT_AMPLITUDE[self.kind] if self.amplitude is None else float(self.amplitude)

    def times(self, frames: int) -> np.ndarray:
        if frames < 1:
            raise OptionError("a video needs at least one frame")
        if self.loop:
            return np.arange(frames) / frames
        return np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)

    def pose(self, t: float) -> tuple[np.ndarray, float]:
        """(translation in units of the pivot depth, focal-length factor) at time t."""
        a, phase = self.amp, 2.0 * math.pi * t
        wave = math.sin(phase) if self.loop else 2.0 * t - 1.0
        push = 0.5 * (1.0 - math.cos(phase)) if self.loop else t * t * (3.0 - 2.0 * t)
        x = y = z = 0.0
        if self.kind == "horizontal":
            x = a * wave
        elif self.kind == "vertical":
            y = a * wave
        elif self.kind == "circle":
            x, y = a * math.cos(phase), a * math.sin(phase)
        elif self.kind == "swing":
            x, z = a * math.sin(phase), a * 0.5 * (1.0 - math.cos(phase))
        else:  # zoom-in, dolly-zoom
            z = a * push
        focal = 1.0 - z if self.kind == "dolly-zoom" else 1.0
        return np.array([x, y, z]), focal


def motion_depth(result: DepthResult) -> tuple[np.ndarray, float, bool]:
    """(depth for warping, focal_px, metric?) — metres, or the pseudo-depth of a relative result.

    Unknown depth is treated as the farthest depth (it moves like the background).
    """
    if result.is_metric:
        depth = fill_invalid_as_far(result.depth).astype(np.float64)
        metric = True
    else:
        disp = result.disparity.astype(np.float64)
        finite = np.isfinite(disp)
        require_valid(finite, "disparity map")
        depth = 1.0 / (0.1 + 0.9 * normalize_percentile(disp, finite, fill=0.0).astype(np.float64))
        metric = False
    focal = result.focal_px or focal_from_fov(DEFAULT_FOV_DEG, result.width)
    return depth, float(focal), metric


@dataclass
class ParallaxPlan:
    """Everything needed to render frame i: working-size photo, depth, camera, pivot, poses, crop."""

    image_linear: np.ndarray
    depth: np.ndarray
    camera: Camera
    pivot: float
    poses: list[tuple[np.ndarray, float]]
    crop: float

    def frame_camera(self, translation_m: np.ndarray, focal_factor: float) -> Camera:
        """Intrinsics of the moved camera: pivot plane kept still, zoomed by the crop."""
        cam = self.camera
        f = cam.fx * focal_factor / (1.0 - self.crop)
        dz = self.pivot - translation_m[2]
        cx = cam.cx + f * translation_m[0] / dz
        cy = cam.cy + f * translation_m[1] / dz
        return Camera(f, f, cx, cy, cam.width, cam.height)


def plan_parallax(result: DepthResult, settings: ParallaxSettings, image: np.ndarray | None = None) -> ParallaxPlan:
    """Working-size photo, depth and camera, and the poses of every frame (nothing rendered yet)."""
    image = result.image if image is None else image
    if image is None:
        raise OptionError("the parallax video needs the photo")
    depth, focal, _ = motion_depth(result)
    h, w = depth.shape
    out_h, out_w = working_size(w, h, settings)
    camera = Camera.from_focal(focal, w, h)
    if (out_h, out_w) != (h, w):
        camera = camera.resized(out_w, out_h)
        depth = resize_plane(depth, (out_h, out_w), nearest=True).astype(np.float64)
        image = np.stack([resize_plane(c, (out_h, out_w)) for c in image.transpose(2, 0, 1)], -1)
        image = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    return plan_view(image, depth, camera, settings)


def working_size(width: int, height: int, settings: ParallaxSettings) -> tuple[int, int]:
    """(height, width) of the video for a picture of this size: at most `max_size_px`, even."""
    max_size = settings.max_size_px
    scale = 1.0 if not max_size or max(height, width) <= max_size else max_size / max(height, width)
    return _even(round(height * scale)), _even(round(width * scale))


def plan_view(image: np.ndarray, depth: np.ndarray, camera: Camera, settings: ParallaxSettings) -> ParallaxPlan:
    """The plan from the picture (HxWx3 uint8), its depth and camera, all at the video's size:
    pivot, poses and crop (shared by the depth warp and the views rendered from Gaussians)."""
    path = CameraPath.from_settings(settings)
    near = float(np.percentile(depth, 1))
    if settings.pivot_m is None:
        pivot = float(np.percentile(depth, 20 if path.kind in ("zoom-in", "dolly-zoom") else 50))
    else:
        pivot = float(settings.pivot_m)
    poses = [path.pose(t) for t in path.times(settings.frames)]
    # never drive the camera into (or past) the nearest surface: forward motion at most half the way
    max_forward = max(p[0][2] for p in poses) * pivot
    shrink = min(1.0, 0.5 * near / max_forward) if max_forward > 0 else 1.0
    poses = [(t * pivot * shrink, 1.0 - (1.0 - f) * shrink) for t, f in poses]
    plan = ParallaxPlan(srgb_to_linear(image), depth, camera, pivot, poses, 0.0)
    if settings.crop:
        plan.crop = _border_crop(plan)
    return plan


def _even(n: int) -> int:
    return max(2, n - n % 2)


def _border_crop(plan: ParallaxPlan) -> float:
    """Smallest zoom (fraction of the half-size) that keeps the picture's borders outside every frame."""
    cam, depth = plan.camera, plan.depth
    h, w = depth.shape
    rows = np.r_[np.zeros(w), np.full(w, h - 1), np.arange(h), np.arange(h)].astype(int)
    cols = np.r_[np.arange(w), np.arange(w), np.zeros(h), np.full(h, w - 1)].astype(int)
    pts = cam.unproject(depth[rows, cols], cols.astype(float), rows.astype(float))
    need = 0.0
    for translation, focal in plan.poses:
        f = cam.fx * focal
        dz = plan.pivot - translation[2]
        moved = Camera(f, f, cam.cx + f * translation[0] / dz, cam.cy + f * translation[1] / dz, w, h)
        u, v, _ = moved.project(pts - translation)
        # how far each border moved inward, relative to the half-size
        inward = np.concatenate(
            [
                (v[rows == 0] - 0) / (h / 2),
                ((h - 1) - v[rows == h - 1]) / (h / 2),
                (u[cols == 0] - 0) / (w / 2),
                ((w - 1) - u[cols == w - 1]) / (w / 2),
            ]
        )
        need = max(need, float(np.nanmax(inward)))
    return float(np.clip(need, 0.0, MAX_CROP))


def render_frames(plan: ParallaxPlan, progress: Callable[[int], None] | None = None) -> Iterator[np.ndarray]:
    """HxWx3 uint8 frames along the plan's path."""
    for i, (translation, focal) in enumerate(plan.poses):
        dst = plan.frame_camera(translation, focal)
        view = render_view(plan.image_linear, plan.depth, plan.camera, translation, dst)
        yield linear_to_srgb(view.image)
        if progress:
            progress(i + 1)


def write_mp4(
    path: str | Path, frames: Iterator[np.ndarray], fps: float, crf: int = 18, preset: str = "medium"
) -> Path:
    """Encode frames (HxWx3 uint8, even size) as H.264 MP4 (yuv420p) atomically."""
    import av

    path = Path(path)
    check_positive(fps, "fps (frames per second)")
    with atomic_path(path) as tmp:
        container = av.open(str(tmp), mode="w", format="mp4")
        try:
            stream = None
            for frame in frames:
                if stream is None:
                    stream = container.add_stream("libx264", rate=_fps_fraction(fps))
                    stream.height, stream.width = frame.shape[:2]
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"crf": str(crf), "preset": preset}
                video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                container.mux(stream.encode(video_frame))
            if stream is None:
                raise OptionError("no frames to write")
            container.mux(stream.encode(None))
        finally:
            container.close()
    return path


def _fps_fraction(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)


def parallax_video(
    result: DepthResult,
    output: str | Path,
    settings: ParallaxSettings,
    progress: Callable[[int], None] | None = None,
) -> tuple[Path, int]:
    """Render and write the MP4; returns (path, number of frames)."""
    if settings.source != "depth":
        raise OptionError("a parallax video from SHARP Gaussians is `apps.splat_views.splat_parallax_video`")
    plan = plan_parallax(result, settings)
    write_mp4(output, render_frames(plan, progress), settings.fps)
    return Path(output), settings.frames
