"""Photo -> 3-D Gaussian scene files (`sharpdepth splat`) and scene -> novel-view video (`sharpdepth render`).

Outputs per picture, in the output folder, under the picture's stem:
* `<stem>.ply`: the Gaussians in the official SHARP / 3DGS layout (`Gaussians.save_ply`);
* `<stem>.json`: the sidecar — model, focal length and its source (and the focal model that
  estimated it, or why none did), number of Gaussians, scene bounds in metres (OpenCV camera
  frame of the picture);
* `<stem>_<trajectory>.mp4` with rendering on: the scene along a camera path
  (`geometry.trajectory`), drawn by `geometry.splat_render`, H.264 through the project's
  video writer;
* `<stem>_<trajectory>_depth.mp4` / `_alpha.mp4` on request (`SplatSettings.maps`): the same views'
  depth (colour-mapped inverse depth, one range for the whole video) and accumulated opacity.
Every file is written atomically (temporary file, then rename).
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

import numpy as np

from ..errors import OptionError
from ..geometry.gaussians import Gaussians
from ..geometry.trajectory import DEFAULT_STEPS, DEFAULT_TRAJECTORY, TRAJECTORIES, View, trajectory
from ..io.atomic import write_text_atomic
from ..registry import DEFAULT_FOCAL_MODEL

if TYPE_CHECKING:
    import torch

    from ..engine.model import DepthModel
    from ..engine.splat import FocalModel

DEFAULT_VIDEO_FPS = 30
MAPS = ("depth", "alpha")
"""Extra videos on request (`--maps depth,alpha`), beside the colour one: `<colour stem>_<map>.mp4`."""
DEPTH_COLORMAP = "inferno"
DEPTH_RANGE_SAMPLES = 200_000
"""Gaussian centres sampled (evenly) to fix the depth video's colour range."""
NO_FOCAL_MODEL = "none"
"""`--focal-model none`: no focal model, the official behaviour (user > EXIF > the default lens)."""


def parse_focal_model(text: str) -> str | None:
    """`--focal-model NAME|none` -> a preset name, or None for no focal model."""
    return None if text.strip().lower() == NO_FOCAL_MODEL else text


@dataclass(frozen=True, kw_only=True)
class SplatSettings:
    """What `splat` and `render` do besides predicting (the front ends build this, nothing else)."""

    focal_px: float | None = None
    """Focal length of the pictures in pixels (None: EXIF, else the focal model, else the model's default)."""
    focal_model: str | None = DEFAULT_FOCAL_MODEL
    """A model with a FOV head that estimates the focal length when neither the user nor EXIF
    gives it, used only when its weights are at hand (`focal_weights` or the local cache; never
    downloaded). None: the official behaviour, the splat model's default lens."""
    focal_weights: Path | None = None
    """Checkpoint file for focal_model (default: the local cache)."""
    render: bool = False
    trajectory: str = DEFAULT_TRAJECTORY
    steps: int = DEFAULT_STEPS
    fps: int = DEFAULT_VIDEO_FPS
    device: str | None = None
    """Renderer device (None: CUDA when present)."""
    maps: tuple[str, ...] = ()
    """Extra videos of the render, from `MAPS`: depth (colour-mapped inverse depth, one range for
    the whole video) and alpha (accumulated opacity, grey)."""

    def __post_init__(self) -> None:
        for name in self.maps:
            if name not in MAPS:
                raise OptionError(f"unknown map {name!r}; choose from {', '.join(MAPS)}")
        if len(set(self.maps)) != len(self.maps):
            raise OptionError(f"--maps names a map twice: {','.join(self.maps)}")
        if self.maps and not self.render:
            raise OptionError("--maps are videos of the render: add --render")
        if self.trajectory not in TRAJECTORIES:
            raise OptionError(f"unknown trajectory {self.trajectory!r}; choose from {', '.join(TRAJECTORIES)}")
        if self.steps < 1 or self.fps < 1:
            raise OptionError("--steps and --fps must be at least 1")
        if self.focal_px is not None and not (np.isfinite(self.focal_px) and self.focal_px > 0):
            raise OptionError(f"focal length must be a positive number of pixels, got {self.focal_px}")
        if self.focal_model is not None:
            from ..engine.splat import focal_model_spec

            focal_model_spec(self.focal_model)
        elif self.focal_weights is not None:
            raise OptionError("--focal-weights needs a --focal-model (not none)")

    def focal_estimator(self, device: str | torch.device | None = "cpu") -> FocalModel | None:
        """The focal model of these settings (loaded on first use; share it across pictures)."""
        if self.focal_model is None:
            return None
        from ..engine.model import load
        from ..engine.splat import FocalModel

        return FocalModel(self.focal_model, self.focal_weights, device, loader=load)


def sidecar(g: Gaussians) -> dict[str, object]:
    """The JSON written beside a scene's PLY."""
    lo, hi = g.bounds()
    return {
        "model": g.model_name,
        "focal_px": g.focal_px,
        "focal_source": str(g.focal_source),
        **({"focal_model": g.focal_model} if g.focal_model else {}),
        **({"focal_notice": g.focal_notice} if g.focal_notice else {}),
        "image_size": list(g.image_size) if g.image_size else None,
        "num_gaussians": len(g),
        "frame": "OpenCV camera frame of the picture: x right, y down, z forward, metres",
        "bounds_m": {"min": [float(v) for v in lo], "max": [float(v) for v in hi]},
    }


def parse_maps(text: str | None) -> tuple[str, ...]:
    """`--maps depth,alpha` -> ("depth", "alpha") (checked by `SplatSettings`)."""
    if text is None:
        return ()
    return tuple(part.strip().lower() for part in text.split(",") if part.strip())


def map_path(colour: Path, name: str) -> Path:
    """Where map `name` of the colour video `colour` goes: `<stem>_<name>.mp4` beside it."""
    return colour.with_name(f"{colour.stem}_{name}.mp4")


def depth_range(g: Gaussians, views: list[View]) -> tuple[float, float]:
    """(near, far) z-depth in metres for the whole video: the 1st and 99th percentiles of the
    centres' depths over every view, counting only centres in front of the camera and in frame.
    Fixed before rendering, so the depth video neither flickers nor needs its frames kept."""
    step = max(1, len(g) // DEPTH_RANGE_SAMPLES)
    points = np.c_[g.means[::step].astype(np.float64), np.ones(len(g.means[::step]))]
    depths = []
    for view in views:
        cam = (points @ view.world_to_camera.T)[:, :3]
        z = cam[:, 2]
        front = z > 1e-6
        uv = (cam[front] @ view.K.T)[:, :2] / z[front, None]
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < view.width) & (uv[:, 1] >= 0) & (uv[:, 1] < view.height)
        depths.append(z[front][inside])
    z_all = np.concatenate(depths) if depths else np.zeros(0)
    if z_all.size == 0:
        return 1.0, 2.0
    near, far = np.percentile(z_all, [1.0, 99.0])
    return float(near), float(max(far, near * (1.0 + 1e-6)))


def depth_frame(depth: np.ndarray, near: float, far: float) -> np.ndarray:
    """Colour view of one rendered depth map (inverse depth, near bright; nothing drawn: darkest)."""
    from ..io.colormap import colorize

    drawn = depth > 0
    inverse = np.where(drawn, 1.0 / np.where(drawn, depth, 1.0), 0.0)
    values = (inverse - 1.0 / far) / (1.0 / near - 1.0 / far)
    return colorize(np.where(drawn, np.clip(values, 0.0, 1.0), 0.0), DEPTH_COLORMAP)


def alpha_frame(alpha: np.ndarray) -> np.ndarray:
    grey = (np.clip(alpha, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def render_video(g: Gaussians, dest: Path, settings: SplatSettings) -> Path:
    """The scene along `settings.trajectory`, as an H.264 MP4 at the picture's size (and the
    videos of `settings.maps` beside it, `map_path`); returns the colour video's path."""
    return render_videos(g, dest, settings)[0]


def render_videos(g: Gaussians, dest: Path, settings: SplatSettings) -> list[Path]:
    """`render_video`, returning every path written: the colour video, then the maps'."""
    from ..geometry.splat_render import prepared_scene, render_scene
    from ..io.video import VideoWriter

    if g.focal_px is None or g.image_size is None:
        raise OptionError("rendering needs the scene's focal length and picture size (a PLY from `splat` has them)")
    width, height = g.image_size
    views = trajectory(g.means[:, 2], g.focal_px, width, height, settings.trajectory, settings.steps)
    near, far = depth_range(g, views) if "depth" in settings.maps else (1.0, 2.0)
    scene = prepared_scene(g, settings.device)  # per-scene work once, not per frame
    paths = [dest] + [map_path(dest, name) for name in settings.maps]
    size, rate = (views[0].width, views[0].height), Fraction(settings.fps)
    with ExitStack() as stack:
        writers = [stack.enter_context(VideoWriter(path, *size, rate)) for path in paths]
        for view in views:
            frame = render_scene(scene, view.world_to_camera, view.K, view.width, view.height)
            writers[0].write((np.clip(frame.color, 0, 1) * 255).astype(np.uint8))  # truncation, as the official
            for name, writer in zip(settings.maps, writers[1:], strict=True):
                picture = depth_frame(frame.depth, near, far) if name == "depth" else alpha_frame(frame.alpha)
                writer.write(picture)
    return paths


def video_path(out_dir: Path, stem: PurePath, settings: SplatSettings) -> Path:
    return out_dir / stem.parent / f"{stem.name}_{settings.trajectory}.mp4"


def splat_one(
    model: DepthModel,
    image: Path,
    out_dir: Path,
    stem: PurePath,
    settings: SplatSettings,
    focal_model: FocalModel | None = None,
) -> list[Path]:
    """Predict one picture's Gaussians and write its files; returns the paths written.

    `focal_model`: `settings.focal_estimator()` made once for a batch (None: made here from
    the settings, for one picture)."""
    estimator = focal_model if focal_model is not None else settings.focal_estimator(model.device)
    g = model.predict_gaussians(image, focal_px=settings.focal_px, focal_model=estimator)
    ply = out_dir / stem.parent / f"{stem.name}.ply"
    g.save_ply(ply)
    side = ply.with_suffix(".json")
    write_text_atomic(side, json.dumps(sidecar(g), indent=2) + "\n")
    written = [ply, side]
    if settings.render:
        written += render_videos(g, video_path(out_dir, stem, settings), settings)
    return written
