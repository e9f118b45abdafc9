"""A multi-view scene on disk: cameras (JSON and COLMAP text), a fused point cloud (GLB with
the cameras drawn) and per-view depth files named as `predict` names them.

Conventions: cameras are OpenCV (x right, y down, z forward), intrinsics in pixels with the
centre of the top-left pixel at (0, 0), as in `SceneResult`. COLMAP's text format puts that
pixel's centre at (0.5, 0.5), so its principal points are ours + 0.5; its poses are
world-to-camera with a scalar-first quaternion. The GLB is in glTF's axes (y up, z towards
the viewer): the world is turned 180 degrees about x.

Every file is written atomically; `cameras.json` last, so its presence means the scene is
complete.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

import numpy as np

from ..errors import OptionError
from ..io.atomic import write_bytes_atomic, write_text_atomic
from ..io.images import LoadedImage
from ..io.outputs import OutputOptions, write_outputs
from ..result import DepthResult, SceneResult

DEFAULT_CONFIDENCE_PERCENTILE = 40.0
"""Points below this percentile of a view's confidence are dropped (the official any-view GLB export default)."""
DEFAULT_MAX_POINTS = 1_000_000
DEFAULT_COLMAP_POINTS = 100_000
GLTF_FROM_OPENCV = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class SceneSettings:
    """What `sharpdepth scene` writes besides the cameras."""

    confidence_percentile: float = DEFAULT_CONFIDENCE_PERCENTILE
    max_points: int = DEFAULT_MAX_POINTS
    colmap_points: int = DEFAULT_COLMAP_POINTS
    depth: OutputOptions = OutputOptions(formats=("npz",))
    camera_size: float | None = None
    """Drawn frustum depth in scene units (None: 5% of the cloud's extent)."""

    def __post_init__(self) -> None:
        if not 0 <= self.confidence_percentile < 100:
            raise OptionError(f"confidence percentile must be in [0, 100), got {self.confidence_percentile}")
        if self.max_points < 1 or self.colmap_points < 0:
            raise OptionError("point limits must be positive")


@dataclass
class FusedCloud:
    points: np.ndarray
    """(N, 3) float64 world points."""
    colors: np.ndarray
    """(N, 3) uint8."""


def back_project(depth: np.ndarray, k: np.ndarray, cam_to_world: np.ndarray) -> np.ndarray:
    """(H, W) z-depth -> (H, W, 3) world points: pixel (u, v) at z is K^-1 [u, v, 1] z, then c2w."""
    h, w = depth.shape
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    z = depth.astype(np.float64)
    x = (u - k[0, 2]) / k[0, 0] * z
    y = (v - k[1, 2]) / k[1, 1] * z
    cam = np.stack([x, y, z], axis=-1)
    return cam @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]


def view_mask(view: DepthResult, percentile: float) -> np.ndarray:
    """Pixels kept in the fused cloud: finite positive depth, not sky, confidence above the percentile."""
    keep = np.isfinite(view.prediction) & (view.prediction > 0)
    if view.sky is not None:
        keep &= ~view.sky
    if view.confidence is not None and percentile > 0 and keep.any():
        keep &= view.confidence >= np.percentile(view.confidence[keep], percentile)
    return keep


def fuse(scene: SceneResult, percentile: float, max_points: int, seed: int = 0) -> FusedCloud:
    """All views' kept pixels in the world frame (a seeded random subset above `max_points`)."""
    points, colors = [], []
    for view, k, c2w in zip(scene.views, scene.intrinsics, scene.cam_to_world, strict=True):
        keep = view_mask(view, percentile)
        points.append(back_project(view.prediction, k, c2w)[keep])
        rgb = view.image if view.image is not None and view.image.shape[:2] == keep.shape else None
        colors.append(rgb[keep] if rgb is not None else np.full((int(keep.sum()), 3), 200, np.uint8))
    pts, cols = np.concatenate(points), np.concatenate(colors)
    if len(pts) > max_points:
        pick = np.sort(np.random.default_rng(seed).choice(len(pts), max_points, replace=False))
        pts, cols = pts[pick], cols[pick]
    return FusedCloud(pts, cols.astype(np.uint8))


def rotation_to_quaternion(r: np.ndarray) -> np.ndarray:
    """3x3 rotation -> unit quaternion (w, x, y, z) with w >= 0."""
    m = np.asarray(r, dtype=np.float64)
    trace = np.trace(m)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = np.array([0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s])
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = np.empty(4)
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def cameras_json(scene: SceneResult, names: Sequence[str]) -> dict[str, object]:
    """cameras.json: per view its name, map size, intrinsics (pixels of the map) and camera-to-world pose,
    and the part of the input image the map covers (`crop`: top, left, height, width) where views of
    different sizes were centre-cropped to one grid."""
    first = scene.views[0]
    return {
        "model": scene.model_name,
        "output_kind": str(first.kind),
        "units": "metres" if scene.is_metric else "scene units (depth up to one scale)",
        "axes": "OpenCV: x right, y down, z forward; pixel centres at integer coordinates",
        "cameras": [
            {
                "name": name,
                "width": view.width,
                "height": view.height,
                "intrinsics": k.tolist(),
                "cam_to_world": c2w.tolist(),
                "focal_source": str(view.focal_source),
                **({"crop": view.extra["crop"]} if "crop" in view.extra else {}),
            }
            for name, view, k, c2w in zip(names, scene.views, scene.intrinsics, scene.cam_to_world, strict=True)
        ],
    }


def colmap_texts(scene: SceneResult, names: Sequence[str], cloud: FusedCloud) -> dict[str, str]:
    """COLMAP text model: one PINHOLE camera per view, its world-to-camera pose, the fused points."""
    cams = ["# Camera list with one line of data per camera:", "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]"]
    images = [
        "# Image list with two lines of data per image:",
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
        "#   POINTS2D[] as (X, Y, POINT3D_ID)",
    ]
    for i, (name, view, k, c2w) in enumerate(
        zip(names, scene.views, scene.intrinsics, scene.cam_to_world, strict=True), start=1
    ):
        params = (k[0, 0], k[1, 1], k[0, 2] + 0.5, k[1, 2] + 0.5)
        cams.append(f"{i} PINHOLE {view.width} {view.height} " + " ".join(f"{p:.10g}" for p in params))
        w2c = np.linalg.inv(c2w)
        q = rotation_to_quaternion(w2c[:3, :3])
        values = " ".join(f"{x:.12g}" for x in (*q, *w2c[:3, 3]))
        images.extend([f"{i} {values} {i} {name}", ""])
    points = ["# 3D point list with one line of data per point:",
              "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)"]  # fmt: skip
    for j, (p, c) in enumerate(zip(cloud.points, cloud.colors, strict=True), start=1):
        points.append(f"{j} {p[0]:.7g} {p[1]:.7g} {p[2]:.7g} {c[0]} {c[1]} {c[2]} 0")
    return {
        "cameras.txt": "\n".join(cams) + "\n",
        "images.txt": "\n".join(images) + "\n",
        "points3D.txt": "\n".join(points) + "\n",
    }


def frustum(k: np.ndarray, c2w: np.ndarray, width: int, height: int, size: float) -> tuple[np.ndarray, np.ndarray]:
    """A camera drawn as a pyramid (apex at the centre, base at depth `size`): world vertices, faces."""
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
    base = np.stack([(corners[:, 0] - k[0, 2]) / k[0, 0], (corners[:, 1] - k[1, 2]) / k[1, 1], np.ones(4)], 1) * size
    local = np.vstack([np.zeros(3), base])
    world = local @ c2w[:3, :3].T + c2w[:3, 3]
    faces = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1]])
    return world, faces


def glb_bytes(scene: SceneResult, cloud: FusedCloud, camera_size: float | None) -> bytes:
    """The fused cloud (glTF POINTS with colours) and one pyramid per camera, as GLB."""
    import trimesh

    gl = trimesh.Scene()
    if len(cloud.points):
        colors = np.hstack([cloud.colors, np.full((len(cloud.colors), 1), 255, np.uint8)])
        gl.add_geometry(trimesh.PointCloud(cloud.points @ GLTF_FROM_OPENCV.T, colors=colors), geom_name="points")
    extent = float(np.ptp(cloud.points, axis=0).max()) if len(cloud.points) > 1 else 1.0
    size = camera_size if camera_size is not None else 0.05 * (extent or 1.0)
    for i, (view, k, c2w) in enumerate(zip(scene.views, scene.intrinsics, scene.cam_to_world, strict=True)):
        vertices, faces = frustum(k, c2w, view.width, view.height, size)
        red = np.tile([255, 64, 32, 255], (len(faces), 1)).astype(np.uint8)
        mesh = trimesh.Trimesh(vertices @ GLTF_FROM_OPENCV.T, faces, face_colors=red, process=False)
        gl.add_geometry(mesh, geom_name=f"camera_{i}")
    data = gl.export(file_type="glb")
    return data if isinstance(data, bytes) else io.BytesIO(data).getvalue()


def write_scene(
    scene: SceneResult, out_dir: Path, stems: Sequence[PurePath], names: Sequence[str], settings: SceneSettings
) -> list[Path]:
    """Per-view depth files, colmap/*.txt, scene.glb, then cameras.json; returns the paths."""
    written: list[Path] = []
    for view, stem in zip(scene.views, stems, strict=True):
        written.extend(write_outputs(view, out_dir, stem, settings.depth))
    cloud = fuse(scene, settings.confidence_percentile, settings.max_points)
    sparse = cloud
    if len(cloud.points) > settings.colmap_points:
        pick = np.sort(np.random.default_rng(1).choice(len(cloud.points), settings.colmap_points, replace=False))
        sparse = FusedCloud(cloud.points[pick], cloud.colors[pick])
    for filename, text in colmap_texts(scene, names, sparse).items():
        path = out_dir / "colmap" / filename
        write_text_atomic(path, text)
        written.append(path)
    glb = out_dir / "scene.glb"
    write_bytes_atomic(glb, glb_bytes(scene, cloud, settings.camera_size))
    cameras = out_dir / "cameras.json"
    write_text_atomic(cameras, json.dumps(cameras_json(scene, names), indent=2) + "\n")
    return [*written, glb, cameras]


# ---------------------------------------------------------------- known cameras (--poses, --intrinsics)


def _tum_poses(text: str) -> np.ndarray:
    """TUM trajectory lines `timestamp tx ty tz qx qy qz qw` (camera-to-world)."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or line.lstrip().startswith("#"):
            continue
        if len(parts) != 8:
            raise ValueError(f"TUM line with {len(parts)} numbers, not 8: {line[:60]!r}")
        tx, ty, tz, qx, qy, qz, qw = map(float, parts[1:])
        m = np.eye(4)
        m[:3, :3] = quaternion_to_rotation(np.array([qw, qx, qy, qz]))
        m[:3, 3] = (tx, ty, tz)
        out.append(m)
    return np.stack(out) if out else np.zeros((0, 4, 4))


def quaternion_to_rotation(q: np.ndarray) -> np.ndarray:
    """Quaternion (w, x, y, z), normalised here -> 3x3 rotation."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _matrices(obj: object, key: str) -> np.ndarray:
    """A JSON value -> (n, a, b) array: a list of matrices, {key: [...]}, or a cameras.json."""
    if isinstance(obj, dict):
        if key in obj:
            return _matrices(obj[key], key)
        if "cameras" in obj:
            return np.stack([np.asarray(c[key], dtype=np.float64) for c in obj["cameras"]])
        if key == "intrinsics" and all(k in obj for k in ("fx", "fy", "cx", "cy")):
            return np.array([[[obj["fx"], 0, obj["cx"]], [0, obj["fy"], obj["cy"]], [0, 0, 1.0]]])
        raise ValueError(f"no {key!r} in the JSON object")
    return np.asarray(obj, dtype=np.float64)


def read_cameras_file(path: Path, what: str, n: int) -> np.ndarray:
    """--poses (n x 4 x 4 camera-to-world) or --intrinsics (n x 3 x 3, one for all allowed) from a file.

    Poses: JSON (a list of 4x4 or 3x4 matrices, {"cam_to_world": [...]}, or a cameras.json), a
    TUM trajectory (`timestamp tx ty tz qx qy qz qw` lines) or .npy. Intrinsics: JSON (a list of
    3x3, one 3x3, {"intrinsics": ...}, {"fx", "fy", "cx", "cy"} or a cameras.json) or .npy."""
    key = "cam_to_world" if what == "poses" else "intrinsics"
    try:
        if path.suffix.lower() == ".npy":
            arr = np.load(path, allow_pickle=False).astype(np.float64)
        else:
            text = path.read_text()
            try:
                arr = _matrices(json.loads(text), key)
            except json.JSONDecodeError:
                if what != "poses":
                    raise
                arr = _tum_poses(text)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OptionError(f"--{what} {path}: cannot read it ({str(exc).splitlines()[0][:120]})") from None
    side = 4 if what == "poses" else 3
    if arr.ndim == 2:
        arr = arr[None]
    if what == "poses" and arr.shape[1:] == (3, 4):
        arr = np.concatenate([arr, np.tile([[[0.0, 0.0, 0.0, 1.0]]], (len(arr), 1, 1))], axis=1)
    if what == "intrinsics" and len(arr) == 1:
        arr = np.repeat(arr, n, axis=0)
    if arr.shape != (n, side, side) or not np.isfinite(arr).all():
        raise OptionError(f"--{what} {path}: expected {n} {side}x{side} matrices (one per view), got shape {arr.shape}")
    return arr


# ---------------------------------------------------------------- views of a video


@dataclass(frozen=True)
class SceneView:
    """One input view: its picture (None when it could not be read), output stem and name."""

    image: LoadedImage | None
    stem: PurePath
    name: str


def video_views(path: Path, fps: float, max_pixels: int | None) -> list[SceneView]:
    """Frames of a video at `fps` frames per second of its timeline (the first at t = 0), as views
    named `<video stem>_<frame index>`."""
    from ..io.video import open_frames

    if not (fps > 0):
        raise OptionError(f"--fps must be positive, got {fps}")
    views = []
    next_time = 0.0
    for frame in open_frames(path, max_pixels=max_pixels).frames():
        if frame.timestamp_s + 1e-6 < next_time:
            continue
        next_time += 1.0 / fps
        while next_time <= frame.timestamp_s:
            next_time += 1.0 / fps
        stem = f"{path.stem}_{frame.index:06d}"
        views.append(SceneView(LoadedImage(rgb=frame.rgb, path=f"{path}#{frame.index}"), PurePath(stem), stem))
    if not views:
        raise OptionError(f"{path}: no frames")
    return views
