"""3D-photo effects rendered from SHARP's Gaussians (`--source splat`) instead of a depth warp.

The depth path (`stereo`, `parallax`) moves the photo's pixels by their depth and fills what
they uncover by stretching or mirroring nearby colour. A SHARP scene also holds what the
network predicted *behind* objects, so new views rendered from the Gaussians show it there.
Both effects keep the depth path's geometry and conventions; only the pixels come from
`Gaussians.render` (the public render API):

* Stereo: the eyes are the source camera translated along x, `interaxial` apart (the photo is
  the middle view, or the left eye with `center=False`), converged on the screen plane at
  `convergence_m` by shifting each eye's principal point: a point at depth z has the parallax
  f * B * (1/z - 1/c) of `stereo_views.metric_parallax`, crossed (further right in the left
  view) in front of the screen. The frames go through the same layout code
  (`stereo.layout_frame`, `stereo.Equirect180`).
* Parallax: the same plan as the depth path (`parallax.plan_view`: working size, pivot,
  poses, border crop), made from the depth the Gaussians render at the source camera, then
  every frame rendered from the moved camera and written by `parallax.write_mp4`.

Pixel conventions: `Camera` puts pixel centres on integers (cx = (W-1)/2), the renderer and
SHARP's unprojection on +0.5 (cx = W/2); `camera_matrix` converts, so the source view renders
the photo in place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ..errors import OptionError
from ..geometry.camera import Camera
from ..geometry.gaussians import Gaussians
from .parallax import ParallaxPlan, plan_view, working_size, write_mp4
from .settings import ParallaxSettings, StereoSettings
from .stereo import Equirect180, _sides, layout_frame

ALPHA_SEEN = 0.5
"""Pixels of the source view with at least this accumulated opacity have a rendered depth."""


def camera_matrix(camera: Camera) -> np.ndarray:
    """3x3 intrinsics for `Gaussians.render` (pixel centres at +0.5) from a `Camera` (at integers)."""
    return np.array([[camera.fx, 0.0, camera.cx + 0.5], [0.0, camera.fy, camera.cy + 0.5], [0.0, 0.0, 1.0]])


def translated(position_m: np.ndarray) -> np.ndarray:
    """4x4 world-to-camera of a camera at `position_m` (source frame, metres), not rotated."""
    w2c = np.eye(4)
    w2c[:3, 3] = -np.asarray(position_m, np.float64)
    return w2c


def to_uint8(color: np.ndarray) -> np.ndarray:
    return (np.clip(color, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def scene_camera(g: Gaussians) -> Camera:
    """The source picture's camera (its size and focal length, centred principal point)."""
    if g.focal_px is None or g.image_size is None:
        raise OptionError("rendering needs the scene's focal length and picture size (a PLY from `splat` has them)")
    width, height = g.image_size
    return Camera.from_focal(g.focal_px, width, height)


# ---------------------------------------------------------------- stereo
def eye_view(camera: Camera, side: float, settings: StereoSettings) -> tuple[np.ndarray, np.ndarray]:
    """(world_to_camera, K) of the eye `side` (+1 left, -1 right, in half interaxials; 0 the photo).

    The eye sits at x = -side * B / 2 (OpenCV x points right), so a point at depth z moves by
    side * f * B / (2 z) pixels; shifting the principal point by -side * f * B / (2 c) puts the
    screen plane at c, as `stereo_views.metric_parallax` does."""
    if settings.max_disparity is not None:
        raise OptionError("give --interaxial-mm / --convergence-m for a metric result, not --max-disparity")
    half_b = side * settings.interaxial_m / 2.0
    shift = 0.0 if np.isinf(settings.screen_m) else camera.fx * half_b / settings.screen_m
    eye = Camera(camera.fx, camera.fy, camera.cx - shift, camera.cy, camera.width, camera.height)
    return translated(np.array([-half_b, 0.0, 0.0])), camera_matrix(eye)


def splat_stereo_pair(
    g: Gaussians, settings: StereoSettings, device: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Left and right eyes (HxWx3 uint8, the picture's size) rendered from the Gaussians."""
    from ..geometry.splat_render import prepared_scene, render_scene

    camera = scene_camera(g)
    scene = prepared_scene(g, device)  # per-scene work once for both eyes
    eyes = []
    for side in _sides(settings):
        w2c, k = eye_view(camera, side, settings)
        eyes.append(to_uint8(render_scene(scene, w2c, k, camera.width, camera.height).color))
    return eyes[0], eyes[1]


def splat_stereo_images(g: Gaussians, settings: StereoSettings, device: str | None = None) -> list[np.ndarray]:
    """The pictures to write for a photo (as `stereo.stereo_images`): one frame, or two for
    pair / spatial-heic (left, right)."""
    left, right = splat_stereo_pair(g, settings, device)
    if settings.layout in ("pair", "spatial-heic"):
        return [left, right]
    camera = scene_camera(g)
    vr = Equirect180.for_view(camera.width, camera.height, camera.fx)
    return [layout_frame(left, right, settings, vr)]


# ---------------------------------------------------------------- parallax
def splat_parallax_plan(
    g: Gaussians, settings: ParallaxSettings, device: str | None = None
) -> tuple[ParallaxPlan, Callable[[np.ndarray, float], np.ndarray]]:
    """(the depth path's plan at the video's size, a renderer of one frame from a pose)."""
    from ..geometry.splat_render import prepared_scene, render_scene

    source = scene_camera(g)
    out_h, out_w = working_size(source.width, source.height, settings)
    camera = source.resized(out_w, out_h)
    scene = prepared_scene(g, device)
    view = render_scene(scene, np.eye(4), camera_matrix(camera), out_w, out_h)
    seen = (view.alpha >= ALPHA_SEEN) & (view.depth > 0)
    if not seen.any():
        raise OptionError("the Gaussians cover nothing of the picture: no depth to plan the camera path")
    depth = np.where(seen, view.depth, np.max(view.depth[seen])).astype(np.float64)  # unknown: far, as the warp
    plan = plan_view(to_uint8(view.color), depth, camera, settings)

    def frame(translation_m: np.ndarray, focal_factor: float) -> np.ndarray:
        moved = plan.frame_camera(translation_m, focal_factor)
        return to_uint8(render_scene(scene, translated(translation_m), camera_matrix(moved), out_w, out_h).color)

    return plan, frame


def splat_parallax_frames(
    g: Gaussians,
    settings: ParallaxSettings,
    progress: Callable[[int], None] | None = None,
    device: str | None = None,
) -> Iterator[np.ndarray]:
    """HxWx3 uint8 frames along the path of `settings`, rendered from the Gaussians."""
    plan, frame = splat_parallax_plan(g, settings, device)
    for i, (translation, focal) in enumerate(plan.poses):
        yield frame(translation, focal)
        if progress:
            progress(i + 1)


def splat_parallax_video(
    g: Gaussians,
    output: str | Path,
    settings: ParallaxSettings,
    progress: Callable[[int], None] | None = None,
    device: str | None = None,
) -> tuple[Path, int]:
    """Render and write the MP4 (as `parallax.parallax_video`); returns (path, number of frames)."""
    write_mp4(output, splat_parallax_frames(g, settings, progress, device), settings.fps)
    return Path(output), settings.frames
