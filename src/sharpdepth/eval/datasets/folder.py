"""Generic "folder of images + depth maps" loader, and the pairing rules other loaders reuse.

Two layouts are recognised (`root` is searched recursively):

    A) sub-folders:   <any>/image|images|rgb|color/<stem>.<img>
                      <any>/depth|depths|gt/<stem>[ _depth].<ext>
    B) flat pairs:    <any>/<base>[_color|_rgb|_image].<img>  +  <any>/<base>_depth.<ext>

Options:
    depth_format  auto (by extension, default) | png | sun | npy | npz | pfm | exr | dpt
    depth_scale   metres per stored unit; default 0.001 for 16-bit PNG (millimetres) and
                  1 for float formats (already metres). TUM PNG: 0.0002 (1/5000); KITTI: 1/256.
    focal_px      focal length in pixels for every image (optional)
    invalid       stored value meaning "unknown" besides 0/NaN/inf (optional, e.g. 65535)

"sun" decodes SUN RGB-D's bit-rotated 16-bit PNG: mm = ((v >> 3) | (v << 13)) & 0xFFFF.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import OptionError
from .base import (
    IMAGE_EXTS,
    DepthDataset,
    Entry,
    Sample,
    decode_sun_depth,
    read_float_map,
    read_png_uint,
    read_rgb,
    safe_name,
)

IMAGE_DIRS = ("image", "images", "rgb", "color")
DEPTH_DIRS = ("depth", "depths", "gt")
DEPTH_EXTS = (".png", ".npy", ".npz", ".pfm", ".exr", ".dpt")
IMAGE_SUFFIXES = ("_color", "_rgb", "_image", "_im", "_img")
FORMATS = ("auto", "png", "sun", "npy", "npz", "pfm", "exr", "dpt")


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTS


def _depth_candidate(folder: Path, base: str) -> Path | None:
    for name in (f"{base}_depth", base):
        for ext in DEPTH_EXTS:
            candidate = folder / f"{name}{ext}"
            if candidate.is_file():
                return candidate
    return None


def _strip_image_suffix(stem: str) -> str:
    for suffix in IMAGE_SUFFIXES:
        if stem.lower().endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def find_pairs(root: Path) -> list[tuple[Path, Path]]:
    """(image, depth) pairs under `root` by the two layouts above, sorted by image path."""
    pairs: dict[Path, Path] = {}
    for image_dir in (p for p in root.rglob("*") if p.is_dir() and p.name.lower() in IMAGE_DIRS):
        depth_dirs = [image_dir.parent / d for d in DEPTH_DIRS if (image_dir.parent / d).is_dir()]
        for image in sorted(filter(_is_image, image_dir.iterdir())):
            for depth_dir in depth_dirs:
                depth = _depth_candidate(depth_dir, image.stem) or _depth_candidate(
                    depth_dir, _strip_image_suffix(image.stem)
                )
                if depth is not None:
                    pairs[image] = depth
                    break
    for image in sorted(p for p in root.rglob("*") if _is_image(p) and not p.stem.lower().endswith("_depth")):
        if image in pairs or image.parent.name.lower() in DEPTH_DIRS:
            continue
        base = _strip_image_suffix(image.stem)
        depth = next(
            (
                image.parent / f"{base}_depth{ext}"
                for ext in DEPTH_EXTS
                if (image.parent / f"{base}_depth{ext}").is_file()
            ),
            None,
        )
        if depth is not None:
            pairs[image] = depth
    return sorted(pairs.items())


def read_depth_file(
    path: Path, fmt: str = "auto", scale: float | None = None, invalid: float | None = None
) -> np.ndarray:
    """Depth in metres from one file, by format and scale (see module docstring)."""
    if fmt not in FORMATS:
        raise OptionError(f"unknown depth_format {fmt!r}; choose from {', '.join(FORMATS)}")
    kind = path.suffix.lower().lstrip(".") if fmt == "auto" else fmt
    if kind in ("png", "sun"):
        raw = read_png_uint(path)
        bad = raw == 0
        if invalid is not None:
            bad |= raw == int(invalid)
        if kind == "sun":
            depth = decode_sun_depth(raw).astype(np.float64) * (1.0 if scale is None else scale / 0.001)
        else:
            depth = raw.astype(np.float64) * (0.001 if scale is None else scale)
    else:
        values = read_float_map(path).astype(np.float64)
        bad = ~np.isfinite(values) | (values <= 0)
        if invalid is not None:
            bad |= values == invalid
        depth = values * (1.0 if scale is None else scale)
    depth[bad] = np.nan
    return depth.astype(np.float32)


class FolderDataset(DepthDataset):
    name = "folder"
    default_protocol = "none"

    def _index(self) -> list[Entry]:
        return [
            Entry(safe_name(str(image.relative_to(self.root).with_suffix(""))), {"image": image, "depth": depth})
            for image, depth in find_pairs(self.root)
        ]

    def unpaired_images(self) -> list[str]:
        paired = {e.paths["image"] for e in self.index()}
        return [
            str(p.relative_to(self.root))
            for p in sorted(self.root.rglob("*"))
            if _is_image(p)
            and p not in paired
            and not p.stem.lower().endswith("_depth")
            and p.parent.name.lower() not in DEPTH_DIRS
        ]

    def load(self, entry: Entry) -> Sample:
        depth = read_depth_file(
            entry.paths["depth"],
            self.option("depth_format", "auto"),
            self.option("depth_scale", None, float),
            self.option("invalid", None, float),
        )
        return Sample(
            entry.name,
            read_rgb(entry.paths["image"]),
            depth,
            focal_px=self.option("focal_px", None, float),
            image_path=str(entry.paths["image"]),
        )
