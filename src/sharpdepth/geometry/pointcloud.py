"""Point clouds and meshes from a metric depth map, without flying pixels.

A depth network's map is smooth across object boundaries: between a person at
2 m and a wall at 5 m there are a few pixels at 3 m, 4 m... Back-projected, they
become "flying pixels" — a curtain of points hanging in mid-air — and a naive
grid mesh stretches "rubber sheet" triangles from the person to the wall.
Two tests remove them (both configurable):

- **depth jump**: a pixel is dropped when a 4-neighbour is nearer by more than
  `max_rel_jump` (relative, e.g. 0.05 = 5 %). Only the *far* side of an edge is
  dropped, so the foreground keeps its silhouette and in-between flying pixels
  (farther than the foreground) go. A triangle is dropped when any edge spans a
  relative jump above the threshold.
- **grazing angle**: a pixel (triangle) whose surface is seen nearly edge-on —
  angle between its normal and the line of sight above `max_grazing_deg` — is
  dropped; smoothed depth edges are exactly such steep ramps.

Downsampling: `stride` keeps every n-th pixel (points and mesh); `voxel_size`
(metres) averages points per voxel (points only).

Files are written with trimesh (binary PLY with colours and optional normals;
GLB with vertex colours), atomically. By default they use the OpenGL/glTF axes
(x right, y up, z toward the viewer) so viewers show the scene upright and
seen from the camera; `axes="opencv"` keeps the camera frame (y down, z forward).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EmptyResultError, OptionError, OutOfRangeError
from ..io.atomic import write_bytes_atomic
from ..maps import require_valid
from ..result import DepthResult
from .camera import Camera, valid_depth_mask
from .normals import surface_normals, view_angle_deg
from .settings import (
    AXES,
    DEFAULT_MAX_GRAZING_DEG,
    DEFAULT_MAX_REL_JUMP,
    FORMATS,
    PointCloudSettings,
    check_thresholds,
    check_voxel,
)

_OPENCV_TO_OPENGL = np.array([1.0, -1.0, -1.0])
MAX_VOXEL_CELLS = 2.0**62
"""Voxel keys are flattened into one int64: a grid with more cells would wrap around (one-point clouds)."""


@dataclass
class PointCloud:
    points: np.ndarray
    """Nx3 float32, camera frame (x right, y down, z forward), metres."""
    colors: np.ndarray | None = None
    """Nx3 uint8."""
    normals: np.ndarray | None = None
    """Nx3 float32 unit normals facing the camera."""

    def __len__(self) -> int:
        return int(self.points.shape[0])


@dataclass
class Mesh:
    vertices: np.ndarray
    """Vx3 float32, camera frame, metres."""
    faces: np.ndarray
    """Fx3 int64, counter-clockwise seen from the camera."""
    colors: np.ndarray | None = None
    """Vx3 uint8 vertex colours."""


def _subsample(
    depth: np.ndarray, camera: Camera, image: np.ndarray | None, stride: int
) -> tuple[np.ndarray, Camera, np.ndarray | None]:
    """Every `stride`-th pixel, with a camera whose pixel grid is the subsampled one."""
    require_valid(valid_depth_mask(depth))
    if stride == 1:
        return depth, camera, image
    return depth[::stride, ::stride], camera.subsampled(stride), None if image is None else image[::stride, ::stride]


def far_side_of_edges(depth: np.ndarray, max_rel_jump: float = DEFAULT_MAX_REL_JUMP) -> np.ndarray:
    """Pixels with a 4-neighbour nearer by more than `max_rel_jump` (relative): the far side of an edge."""
    z = np.where(valid_depth_mask(depth), depth, np.inf).astype(np.float64)
    nearest = np.full_like(z, np.inf)
    nearest[1:, :] = np.minimum(nearest[1:, :], z[:-1, :])
    nearest[:-1, :] = np.minimum(nearest[:-1, :], z[1:, :])
    nearest[:, 1:] = np.minimum(nearest[:, 1:], z[:, :-1])
    nearest[:, :-1] = np.minimum(nearest[:, :-1], z[:, 1:])
    with np.errstate(invalid="ignore"):
        return np.isfinite(z) & (z > nearest * (1.0 + max_rel_jump))


def keep_mask(
    depth: np.ndarray,
    camera: Camera,
    max_rel_jump: float = DEFAULT_MAX_REL_JUMP,
    max_grazing_deg: float = DEFAULT_MAX_GRAZING_DEG,
    normals: np.ndarray | None = None,
) -> np.ndarray:
    """Pixels that make trustworthy 3D points: valid, not behind a depth edge, not seen edge-on."""
    keep = valid_depth_mask(depth) & ~far_side_of_edges(depth, max_rel_jump)
    if max_grazing_deg < 90:
        if normals is None:
            normals = surface_normals(depth, camera, max_rel_jump)
        angle = view_angle_deg(normals, camera)
        keep &= np.nan_to_num(angle, nan=90.0) <= max_grazing_deg
    return keep


def depth_to_point_cloud(
    depth: np.ndarray,
    camera: Camera,
    image: np.ndarray | None = None,
    *,
    stride: int = 1,
    voxel_size: float | None = None,
    max_rel_jump: float = DEFAULT_MAX_REL_JUMP,
    max_grazing_deg: float = DEFAULT_MAX_GRAZING_DEG,
    with_normals: bool = True,
) -> PointCloud:
    """Back-project the trustworthy pixels (see module doc) into a coloured point cloud."""
    check_thresholds(max_rel_jump, max_grazing_deg, stride)
    depth = np.asarray(depth, dtype=np.float64)
    depth, camera, image = _subsample(depth, camera, image, stride)
    normals = surface_normals(depth, camera, max_rel_jump)
    keep = keep_mask(depth, camera, max_rel_jump, max_grazing_deg, normals)
    points = camera.unproject(np.where(keep, depth, 0.0))[keep]
    colors = None if image is None else np.asarray(image)[keep][:, :3].astype(np.uint8)
    cloud = PointCloud(points.astype(np.float32), colors, normals[keep] if with_normals else None)
    _require_points(len(cloud), "point cloud")
    if voxel_size is not None:
        cloud = voxel_downsample(cloud, voxel_size)
    return cloud


def _require_points(count: int, what: str) -> None:
    """An empty cloud or mesh is no answer: say why in one line instead of writing an empty file."""
    if count == 0:
        raise EmptyResultError(
            f"the {what} is empty: no pixel has a valid depth with valid neighbours that passes the "
            "depth-jump and grazing-angle filters (loosen --max-jump / --max-grazing, or check the depth map)"
        )


def voxel_downsample(cloud: PointCloud, voxel_size: float) -> PointCloud:
    """One point per occupied voxel: the mean position, colour and (renormalised) normal."""
    check_voxel(voxel_size)
    if len(cloud) == 0:
        return cloud
    low = cloud.points.min(axis=0).astype(np.float64)
    cells = np.floor((cloud.points.max(axis=0) - low) / voxel_size) + 1
    if float(np.prod(cells)) >= MAX_VOXEL_CELLS:
        extent = float((cloud.points.max(axis=0) - low).max())
        raise OutOfRangeError(
            f"voxel size {voxel_size:g} m is too fine for a scene {extent:.3g} m across "
            f"(over {MAX_VOXEL_CELLS:.0e} voxels); use a larger --voxel"
        )
    keys = np.floor((cloud.points - low) / voxel_size).astype(np.int64)
    dims = cells.astype(np.int64)
    flat = (keys[:, 0] * dims[1] + keys[:, 1]) * dims[2] + keys[:, 2]
    _, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)

    def mean(values: np.ndarray) -> np.ndarray:
        out = np.zeros((counts.size, values.shape[1]), dtype=np.float64)
        np.add.at(out, inverse, values.astype(np.float64))
        return out / counts[:, None]

    points = mean(cloud.points).astype(np.float32)
    colors = None if cloud.colors is None else np.clip(np.rint(mean(cloud.colors)), 0, 255).astype(np.uint8)
    normals = None
    if cloud.normals is not None:
        summed = mean(cloud.normals)
        length = np.linalg.norm(summed, axis=1, keepdims=True)
        normals = np.where(length > 0, summed / np.maximum(length, 1e-12), 0.0).astype(np.float32)
    return PointCloud(points, colors, normals)


def depth_to_mesh(
    depth: np.ndarray,
    camera: Camera,
    image: np.ndarray | None = None,
    *,
    stride: int = 1,
    max_rel_jump: float = DEFAULT_MAX_REL_JUMP,
    max_grazing_deg: float = DEFAULT_MAX_GRAZING_DEG,
) -> Mesh:
    """Grid mesh over the pixels, without triangles across depth edges or seen edge-on.

    Each pixel quad is split along the diagonal with the smaller depth change,
    so an edge running diagonally through a quad still keeps one of its halves.
    """
    check_thresholds(max_rel_jump, max_grazing_deg, stride)
    depth = np.asarray(depth, dtype=np.float64)
    depth, camera, image = _subsample(depth, camera, image, stride)
    h, w = depth.shape
    valid = valid_depth_mask(depth)
    z = np.where(valid, depth, np.nan)
    vertices = camera.unproject(np.where(valid, depth, 0.0)).reshape(-1, 3)
    idx = np.arange(h * w).reshape(h, w)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    za, zb, zc, zd = z[:-1, :-1], z[:-1, 1:], z[1:, :-1], z[1:, 1:]
    with np.errstate(invalid="ignore"):
        split_ad = np.abs(za - zd) <= np.abs(zb - zc)  # diagonal a-d is the smoother one
    # counter-clockwise seen from the camera in the x-right/y-down frame: (a, c, b) and (b, c, d)
    tri1 = np.where(split_ad[..., None], np.stack([a, c, d], -1), np.stack([a, c, b], -1))
    tri2 = np.where(split_ad[..., None], np.stack([a, d, b], -1), np.stack([b, c, d], -1))
    faces = np.concatenate([tri1.reshape(-1, 3), tri2.reshape(-1, 3)])
    faces = faces[_good_faces(faces, vertices, valid.reshape(-1), max_rel_jump, max_grazing_deg)]
    _require_points(len(faces), "mesh")
    colors = None if image is None else np.asarray(image).reshape(-1, np.asarray(image).shape[-1])[:, :3]
    return _compact(vertices, faces, colors)


def _good_faces(
    faces: np.ndarray, vertices: np.ndarray, valid: np.ndarray, max_rel_jump: float, max_grazing_deg: float
) -> np.ndarray:
    ok = valid[faces].all(axis=1)
    zf = vertices[faces, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        ok &= zf.max(axis=1) <= zf.min(axis=1) * (1.0 + max_rel_jump)
    if max_grazing_deg < 90:
        p0, p1, p2 = (vertices[faces[:, k]] for k in range(3))
        normal = np.cross(p1 - p0, p2 - p0)
        centroid = (p0 + p1 + p2) / 3.0
        with np.errstate(invalid="ignore", divide="ignore"):
            cos = np.abs(np.sum(normal * centroid, axis=1)) / (
                np.linalg.norm(normal, axis=1) * np.linalg.norm(centroid, axis=1)
            )
        ok &= np.nan_to_num(cos, nan=0.0) >= np.cos(np.radians(max_grazing_deg))
    return ok


def _compact(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None) -> Mesh:
    """Drop vertices no face uses and renumber the faces."""
    used = np.zeros(len(vertices), dtype=bool)
    used[faces.reshape(-1)] = True
    remap = np.cumsum(used) - 1
    return Mesh(
        vertices[used].astype(np.float32),
        remap[faces].astype(np.int64),
        None if colors is None else np.asarray(colors)[used].astype(np.uint8),
    )


def result_to_point_cloud(result: DepthResult, settings: PointCloudSettings | None = None) -> PointCloud:
    """Point cloud of a metric result, coloured by its image when it has one."""
    settings = settings or PointCloudSettings()
    return depth_to_point_cloud(
        result.depth, Camera.from_result(result), result.image, stride=settings.stride, voxel_size=settings.voxel_m,
        max_rel_jump=settings.max_rel_jump, max_grazing_deg=settings.max_grazing_deg, with_normals=settings.normals,
    )  # fmt: skip


def result_to_mesh(result: DepthResult, settings: PointCloudSettings | None = None) -> Mesh:
    """Mesh of a metric result (vertex colours from its image when it has one)."""
    settings = settings or PointCloudSettings(mesh=True)
    return depth_to_mesh(
        result.depth, Camera.from_result(result), result.image, stride=settings.stride,
        max_rel_jump=settings.max_rel_jump, max_grazing_deg=settings.max_grazing_deg,
    )  # fmt: skip


# ---------------------------------------------------------------- files
def file_type_for(path: Path, file_type: str | None = None) -> str:
    """The 3D format to write: `file_type`, or the suffix of `path` (checked before any work)."""
    kind = (file_type or path.suffix.lstrip(".")).lower()
    if kind not in FORMATS:
        raise OptionError(f"{path}: unsupported 3D format {kind!r}; choose from {', '.join(FORMATS)}")
    return kind


def _axes(values: np.ndarray, axes: str) -> np.ndarray:
    if axes not in AXES:
        raise OptionError(f"unknown axes {axes!r}; choose from {', '.join(AXES)}")
    return values * _OPENCV_TO_OPENGL if axes == "opengl" else values


def point_cloud_bytes(cloud: PointCloud, file_type: str = "ply", axes: str = "opengl") -> bytes:
    import trimesh

    points = _axes(cloud.points, axes).astype(np.float32)
    colors = cloud.colors
    if file_type == "glb":
        return trimesh.PointCloud(points, colors=colors).export(file_type="glb")
    normals = None if cloud.normals is None else _axes(cloud.normals, axes).astype(np.float32)
    # A face-less Trimesh exports as a PLY point cloud and, unlike trimesh.PointCloud, carries normals.
    geom = trimesh.Trimesh(
        vertices=points,
        faces=np.zeros((0, 3), dtype=np.int64),
        vertex_normals=normals,
        vertex_colors=colors,
        process=False,
    )
    return trimesh.exchange.ply.export_ply(geom, encoding="binary", vertex_normal=normals is not None)


def mesh_bytes(mesh: Mesh, file_type: str = "ply", axes: str = "opengl") -> bytes:
    import trimesh

    # the axis flip is a rotation (det = +1), so the winding stays counter-clockwise toward the viewer
    geom = trimesh.Trimesh(
        vertices=_axes(mesh.vertices, axes).astype(np.float32),
        faces=mesh.faces,
        vertex_colors=mesh.colors,
        process=False,
    )
    data = geom.export(file_type=file_type)
    if not isinstance(data, bytes):  # trimesh returns text or dicts for some formats; ours are binary
        raise OptionError(f"unsupported 3D format {file_type!r}; choose from {', '.join(FORMATS)}")
    return data


def save_point_cloud(path: str | Path, cloud: PointCloud, file_type: str | None = None, axes: str = "opengl") -> Path:
    """Write a point cloud (.ply binary with colours + normals, or .glb) atomically."""
    path = Path(path)
    write_bytes_atomic(path, point_cloud_bytes(cloud, file_type_for(path, file_type), axes))
    return path


def save_mesh(path: str | Path, mesh: Mesh, file_type: str | None = None, axes: str = "opengl") -> Path:
    """Write a mesh (.ply binary or .glb, vertex colours) atomically."""
    path = Path(path)
    write_bytes_atomic(path, mesh_bytes(mesh, file_type_for(path, file_type), axes))
    return path
