"""3-D Gaussians of a scene (SHARP's output): a typed container, the standard 3DGS PLY, rendering.

`Gaussians` holds NumPy arrays in metres in the OpenCV camera frame of the source picture
(x right, y down, z forward, camera at the origin), in the order the model produced them.
`save_ply` writes the official SHARP `save_ply` layout — the INRIA 3D Gaussian Splatting
vertex element (x y z, f_dc_0..2, opacity, scale_0..2, rot_0..3) that common splat viewers
read, plus SHARP's metadata elements (extrinsic, intrinsic, image_size, frame, disparity,
color_space, version). Colours are stored as degree-0 spherical harmonics of sRGB ("for public
renderers", as the official code says), opacities as logits and scales as logarithms; `load_ply`
inverts all of it. `render` draws the Gaussians with `splat_render` (compiled tiles on the CPU, PyTorch on CUDA).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputImageError, OptionError
from ..io.atomic import atomic_path
from ..result import FocalSource

if TYPE_CHECKING:
    import torch

    from .pointcloud import PointCloud
    from .splat_render import SplatImage

SH_C0 = math.sqrt(1.0 / (4.0 * math.pi))
"""Degree-0 spherical-harmonic constant: colour = SH_C0 * f_dc + 0.5."""
PLY_VERSION = (1, 5, 0)
"""The layout version SHARP's `save_ply` writes (read back by its `load_ply`)."""
VERTEX_PROPERTIES = (
    "x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
    "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3",
)  # fmt: skip
_PLY_TYPES = {"float": "<f4", "double": "<f8", "uint": "<u4", "int": "<i4", "uchar": "u1", "char": "i1",
              "ushort": "<u2", "short": "<i2", "float32": "<f4", "float64": "<f8", "uint8": "u1", "int8": "i1",
              "uint32": "<u4", "int32": "<i4", "uint16": "<u2", "int16": "<i2"}  # fmt: skip


def _array(name: str, values: object, columns: int | None) -> np.ndarray:
    a = np.ascontiguousarray(_to_numpy(values), dtype=np.float32)
    shape_ok = a.ndim == 1 if columns is None else (a.ndim == 2 and a.shape[1] == columns)
    if not shape_ok:
        want = "N" if columns is None else f"Nx{columns}"
        raise OptionError(f"Gaussians.{name} must be {want}, got shape {a.shape}")
    return a


def _to_numpy(values: object) -> np.ndarray:
    detach = getattr(values, "detach", None)
    if detach is not None:  # a torch tensor, on any device
        return np.asarray(detach().float().cpu().numpy())
    return np.asarray(values)


def srgb_from_linear(x: np.ndarray) -> np.ndarray:
    """Linear RGB -> sRGB (float32, official thresholds)."""
    x = np.asarray(x, np.float32)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.maximum(x, 0.0031308) ** (1 / 2.4) - 0.055).astype(np.float32)


def linear_from_srgb(x: np.ndarray) -> np.ndarray:
    """sRGB -> linear RGB (float32, official thresholds)."""
    x = np.asarray(x, np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4).astype(np.float32)


@dataclass(eq=False)
class Gaussians:
    """A scene of N 3-D Gaussians, metres, OpenCV camera frame (see the module docstring)."""

    means: np.ndarray
    """(N, 3) centres."""
    scales: np.ndarray
    """(N, 3) standard deviations along the rotated axes."""
    quaternions: np.ndarray
    """(N, 4) rotations, w x y z (unit)."""
    colors: np.ndarray
    """(N, 3) linear RGB in [0, 1]."""
    opacities: np.ndarray
    """(N,) in [0, 1]."""
    focal_px: float | None = None
    """Focal length of the source picture (pixels), if known."""
    focal_source: FocalSource = FocalSource.NONE
    """Where focal_px came from: user, exif, model or default (the 30 mm assumption)."""
    image_size: tuple[int, int] | None = None
    """(width, height) of the source picture."""
    model_name: str | None = None
    focal_model: str | None = None
    """The model whose FOV head estimated focal_px (focal_source model), else None."""
    focal_notice: str | None = None
    """Why a wanted focal model was not used (e.g. its weights are not at hand), else None."""

    def __post_init__(self) -> None:
        self.means = _array("means", self.means, 3)
        self.scales = _array("scales", self.scales, 3)
        self.quaternions = _array("quaternions", self.quaternions, 4)
        self.colors = _array("colors", self.colors, 3)
        self.opacities = _array("opacities", self.opacities, None)
        n = len(self.means)
        if any(len(a) != n for a in (self.scales, self.quaternions, self.colors, self.opacities)):
            raise OptionError("Gaussians: means, scales, quaternions, colors and opacities differ in length")
        self.focal_source = FocalSource(self.focal_source)

    def __len__(self) -> int:
        return int(self.means.shape[0])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(min, max) corners of the centres' box in metres (zeros for an empty scene)."""
        if not len(self):
            return np.zeros(3, np.float32), np.zeros(3, np.float32)
        return self.means.min(axis=0), self.means.max(axis=0)

    # ------------------------------------------------------------------ PLY
    def ply_bytes(self) -> bytes:
        """The official `save_ply` file as bytes (binary little-endian PLY)."""
        n = len(self)
        vertex = np.empty(n, dtype=[(p, "<f4") for p in VERTEX_PROPERTIES])
        for i, axis in enumerate("xyz"):
            vertex[axis] = self.means[:, i]
        sh = (srgb_from_linear(self.colors) - np.float32(0.5)) / np.float32(SH_C0)
        for i in range(3):
            vertex[f"f_dc_{i}"] = sh[:, i]
        with np.errstate(divide="ignore"):
            vertex["opacity"] = np.log(self.opacities / (np.float32(1) - self.opacities))
            log_scales = np.log(self.scales)
        for i in range(3):
            vertex[f"scale_{i}"] = log_scales[:, i]
        for i in range(4):
            vertex[f"rot_{i}"] = self.quaternions[:, i]
        width, height = self.image_size or (0, 0)
        f = float(self.focal_px or 0.0)
        meta: list[tuple[str, str, str, np.ndarray]] = [
            ("extrinsic", "float", "<f4", np.eye(4).ravel()),
            ("intrinsic", "float", "<f4", np.array([f, 0, width * 0.5, 0, f, height * 0.5, 0, 0, 1])),
            ("image_size", "uint", "<u4", np.array([width, height])),
            ("frame", "int", "<i4", np.array([1, n])),
            ("disparity", "float", "<f4", self._disparity_quantiles()),
            ("color_space", "uchar", "u1", np.array([0])),  # sRGB colours in the file
            ("version", "uchar", "u1", np.array(PLY_VERSION)),
        ]
        header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
        header += [f"property float {p}" for p in VERTEX_PROPERTIES]
        for name, ply_type, _, values in meta:
            header += [f"element {name} {len(values)}", f"property {ply_type} {name}"]
        header.append("end_header\n")
        parts = ["\n".join(header).encode("ascii"), vertex.tobytes()]
        parts += [values.astype(dtype).tobytes() for _, _, dtype, values in meta]
        return b"".join(parts)

    def _disparity_quantiles(self) -> np.ndarray:
        """10 % and 90 % quantiles of 1/z (official metadata, used by viewers to frame the scene)."""
        if not len(self):
            return np.zeros(2, np.float32)
        import torch

        disparity = 1.0 / torch.from_numpy(self.means[:, 2])
        return torch.quantile(disparity, torch.tensor([0.1, 0.9])).numpy()

    def save_ply(self, path: str | Path) -> Path:
        """Write the official SHARP / 3DGS PLY atomically (temporary file, then rename)."""
        path = Path(path)
        data = self.ply_bytes()
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        return path

    # ------------------------------------------------------------------ views
    def render(
        self,
        world_to_camera: np.ndarray | torch.Tensor,
        K: np.ndarray | torch.Tensor,
        width: int,
        height: int,
        device: str | None = None,
    ) -> SplatImage:
        """Colour (sRGB, HxWx3 in [0, 1]), depth and alpha seen by a pinhole camera.

        world_to_camera: 4x4 (OpenCV axes; the identity is the source camera); K: 3x3 intrinsics
        in pixels (pixel centres at +0.5); device: "cpu", "cuda", ... (None: CUDA when present).
        """
        from .splat_render import prepared_scene, render_scene

        return render_scene(prepared_scene(self, device), world_to_camera, K, width, height)

    def to_point_cloud(self) -> PointCloud:
        """The centres as a coloured point cloud (sRGB uint8), for the point-cloud writers."""
        from .pointcloud import PointCloud

        rgb = np.clip(srgb_from_linear(self.colors) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return PointCloud(points=self.means.copy(), colors=rgb)


def load_ply(path: str | Path) -> Gaussians:
    """Read a 3DGS PLY (binary little-endian; SHARP's metadata elements when present)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputImageError(f"{path}: cannot read ({exc.strerror})") from None
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise InputImageError(f"{path}: not a PLY file")
    lines = data[:end].decode("ascii", "replace").splitlines()
    if "format binary_little_endian 1.0" not in lines:
        raise InputImageError(f"{path}: only binary little-endian PLY files are read")
    elements: list[tuple[str, int, list[tuple[str, str]]]] = []
    for line in lines:
        parts = line.split()
        if parts[:1] == ["element"] and len(parts) == 3:
            elements.append((parts[1], int(parts[2]), []))
        elif parts[:1] == ["property"] and elements:
            if parts[1] == "list" or parts[1] not in _PLY_TYPES:
                raise InputImageError(f"{path}: unsupported PLY property {' '.join(parts[1:])!r}")
            elements[-1][2].append((parts[2], _PLY_TYPES[parts[1]]))
    offset = end + len(b"end_header\n")
    arrays: dict[str, np.ndarray] = {}
    for name, count, props in elements:
        dtype = np.dtype(props)
        size = dtype.itemsize * count
        if offset + size > len(data):
            raise InputImageError(f"{path}: truncated PLY (element {name})")
        arrays[name] = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        offset += size
    vertex = arrays.get("vertex")
    names = set(vertex.dtype.names or ()) if vertex is not None else set()
    missing = [p for p in VERTEX_PROPERTIES if p not in names]
    if vertex is None or missing:
        raise InputImageError(f"{path}: not a 3D Gaussian Splatting PLY (missing {', '.join(missing) or 'vertex'})")

    def cols(*keys: str) -> np.ndarray:
        return np.stack([np.asarray(vertex[k], np.float32) for k in keys], axis=-1)

    colors = cols("f_dc_0", "f_dc_1", "f_dc_2") * np.float32(SH_C0) + np.float32(0.5)
    stored_srgb = "color_space" not in arrays or int(arrays["color_space"]["color_space"][0]) == 0
    focal: float | None = None
    picture_size: tuple[int, int] | None = None
    if "intrinsic" in arrays and "image_size" in arrays:
        k = arrays["intrinsic"]["intrinsic"]
        w, h = (int(v) for v in arrays["image_size"]["image_size"][:2])
        focal = float(k[0]) or None
        picture_size = (w, h) if w and h else None
    return Gaussians(
        means=cols("x", "y", "z"),
        scales=np.exp(cols("scale_0", "scale_1", "scale_2")),
        quaternions=cols("rot_0", "rot_1", "rot_2", "rot_3"),
        colors=linear_from_srgb(colors) if stored_srgb else colors,
        opacities=1.0 / (1.0 + np.exp(-np.asarray(vertex["opacity"], np.float32))),
        focal_px=focal,
        focal_source=FocalSource.NONE,
        image_size=picture_size,
    )
