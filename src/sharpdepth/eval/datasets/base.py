"""What every dataset loader yields, and the file readers they share.

A loader reads the user's local copy of a dataset (nothing is ever downloaded), in the
folder layout its docstring describes, and yields `Sample`s:

* `image`  HxWx3 uint8 RGB, as stored (no EXIF rotation: the depth map is aligned to
  the stored pixels),
* `depth`  HxW float32 z-depth in metres, NaN where unknown (every dataset's own
  "unknown" code — 0, inf, a mask — is turned into NaN here),
* `valid`  HxW bool, the dataset's own validity (finite depth > 0 and any mask it ships),
* `focal_px`, `K` (3x3) and `pose_c2w` (4x4 camera-to-world) where the dataset has them,
* `sequence` for video datasets (frames of one sequence are yielded in order).

Indexing is cheap (file names only); pixels are read by `load(entry)`, so `--limit`
and resuming never read more than needed.
"""

from __future__ import annotations

import fnmatch
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image

from ...errors import DatasetError, OptionError
from ...maps import valid_depth_mask


@dataclass
class Sample:
    name: str
    """Unique, file-system-safe id within the dataset (used for cache files and the JSON)."""
    image: np.ndarray
    depth: np.ndarray
    valid: np.ndarray | None = None
    focal_px: float | None = None
    K: np.ndarray | None = None
    pose_c2w: np.ndarray | None = None
    sequence: str | None = None
    image_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.depth = np.asarray(self.depth, dtype=np.float32)
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise DatasetError(f"{self.name}: image must be HxWx3 uint8, got {self.image.shape} {self.image.dtype}")
        if self.depth.ndim != 2:
            raise DatasetError(f"{self.name}: depth must be HxW, got {self.depth.shape}")
        ok = valid_depth_mask(self.depth)
        self.valid = ok if self.valid is None else (np.asarray(self.valid, dtype=bool) & ok)
        self.depth = np.where(self.valid, self.depth, np.nan).astype(np.float32)
        if self.K is not None and self.focal_px is None:
            self.focal_px = float(self.K[0, 0])


@dataclass(frozen=True)
class Entry:
    """One sample before its pixels are read: a name and whatever the loader needs."""

    name: str
    paths: dict[str, Path] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


class DepthDataset(ABC):
    """Base loader: `index()` lists entries (cheap), `load(entry)` reads one sample."""

    name: ClassVar[str] = ""
    default_protocol: ClassVar[str] = "none"

    def __init__(self, root: str | Path, **options: Any) -> None:
        self.root = Path(root).expanduser()
        if not self.root.exists():
            raise DatasetError(f"{self.name}: dataset folder {self.root} does not exist")
        self.options = options
        self._entries: list[Entry] | None = None

    @abstractmethod
    def _index(self) -> list[Entry]: ...

    @abstractmethod
    def load(self, entry: Entry) -> Sample: ...

    def index(self) -> list[Entry]:
        if self._entries is None:
            try:
                entries = self._index()
            except (OSError, ValueError, UnicodeDecodeError) as exc:  # unreadable or malformed list files
                raise DatasetError(f"{self.name}: cannot index {self.root}: {exc}") from None
            pattern = self.options.get("match")
            if pattern:
                entries = [e for e in entries if _matches(e, str(pattern))]
            if not entries:
                raise DatasetError(
                    f"{self.name}: no samples found under {self.root}; see docs/evaluation.md for the layout"
                )
            self._entries = entries
        return self._entries

    def __len__(self) -> int:
        return len(self.index())

    def unpaired_images(self) -> list[str]:
        """Images under the root that `index()` left out for want of a depth file (loaders that
        read a list file name every sample they use and have none)."""
        return []

    def __iter__(self) -> Iterator[Sample]:
        for entry in self.index():
            yield self.sample(entry)

    def sample(self, entry: Entry) -> Sample:
        """`load(entry)`, with a malformed file reported as one `DatasetError` line."""
        try:
            return self.load(entry)
        except (OSError, ValueError, KeyError) as exc:
            raise DatasetError(f"{self.name}: {entry.name}: cannot read the sample: {exc}") from None

    def option(self, key: str, default: Any = None, kind: type | None = None) -> Any:
        value = self.options.get(key, default)
        if kind is not None and value is not None and not isinstance(value, kind):
            try:
                value = _convert(value, kind)
            except ValueError:
                raise OptionError(f"{self.name}: option {key}={value!r} is not a {kind.__name__}") from None
        return value


def _matches(entry: Entry, pattern: str) -> bool:
    """Option `match`: a glob on the image file name or the sample name."""
    image = entry.paths.get("image")
    return fnmatch.fnmatch(entry.name, pattern) or (image is not None and fnmatch.fnmatch(image.name, pattern))


def _convert(value: Any, kind: type) -> Any:
    if kind is bool:
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(value)
    return kind(value)


# ------------------------------------------------------------------ readers
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


def _read_pixels(path: Path, what: str, mode: str | None = None) -> np.ndarray:
    """The image's pixels as stored (or converted to `mode`); one-line DatasetError naming `what` if unreadable."""
    try:
        with Image.open(path) as img:
            return np.asarray(img if mode is None else img.convert(mode))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable {what} ({exc})") from None


def read_rgb(path: Path) -> np.ndarray:
    return np.asarray(_read_pixels(path, "image", "RGB"), dtype=np.uint8).copy()


def read_png_uint(path: Path) -> np.ndarray:
    """A 16-bit (or 8-bit) single-channel PNG as integers, refusing colour images."""
    arr = _read_pixels(path, "depth PNG")
    if arr.ndim != 2:
        raise DatasetError(f"{path}: expected a single-channel depth PNG, got shape {arr.shape}")
    return arr.astype(np.uint32)


def read_gray(path: Path) -> np.ndarray:
    """A mask image as integers (first channel of colour images)."""
    arr = _read_pixels(path, "mask")
    return arr[..., 0] if arr.ndim == 3 else arr


def read_mask(path: Path) -> np.ndarray:
    """Non-zero = true."""
    return read_gray(path) > 0


def read_pfm(path: Path) -> np.ndarray:
    from ...io.depth_files import read_pfm as _read

    return _read(path)


DPT_TAG = 202021.25


def read_dpt(path: Path) -> np.ndarray:
    """Sintel .dpt: float32 tag 202021.25, int32 width, int32 height, float32 depth row-major."""
    with open(path, "rb") as fh:
        tag = np.fromfile(fh, dtype="<f4", count=1)
        if tag.size != 1 or tag[0] != np.float32(DPT_TAG):
            raise DatasetError(f"{path}: not a Sintel .dpt file (bad tag)")
        width, height = (int(v) for v in np.fromfile(fh, dtype="<i4", count=2))
        if not (0 < width < 100_000 and 0 < height < 100_000):
            raise DatasetError(f"{path}: implausible .dpt size {width}x{height}")
        data = np.fromfile(fh, dtype="<f4", count=width * height)
    if data.size != width * height:
        raise DatasetError(f"{path}: truncated .dpt file")
    return data.reshape(height, width)


def write_dpt(path: Path, depth: np.ndarray) -> None:
    """Writer for the .dpt format (tests and conversions)."""
    h, w = depth.shape
    with open(path, "wb") as fh:
        np.array([DPT_TAG], dtype="<f4").tofile(fh)
        np.array([w, h], dtype="<i4").tofile(fh)
        np.ascontiguousarray(depth, dtype="<f4").tofile(fh)


def read_float_map(path: Path) -> np.ndarray:
    """Float depth from .npy / .npz (first array) / .pfm / .exr / .dpt, squeezed to HxW."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            key = "depth" if "depth" in data.files else data.files[0]
            arr = data[key]
    elif suffix == ".pfm":
        arr = read_pfm(path)
    elif suffix == ".dpt":
        arr = read_dpt(path)
    elif suffix == ".exr":
        import OpenEXR

        with OpenEXR.File(str(path)) as f:
            channels = f.channels()
            key = next((c for c in ("Z", "depth", "Y", "R") if c in channels), next(iter(channels)))
            arr = np.array(channels[key].pixels)
    else:
        raise DatasetError(f"{path}: unsupported depth file type {suffix!r}")
    arr = np.squeeze(np.asarray(arr, dtype=np.float32))
    if arr.ndim != 2:
        raise DatasetError(f"{path}: expected an HxW depth map, got shape {arr.shape}")
    return arr


def decode_sun_depth(raw: np.ndarray) -> np.ndarray:
    """SUN RGB-D PNG values have their 16 bits rotated by 3: mm = (v >> 3) | (v << 13), metres out."""
    v = raw.astype(np.uint32)
    mm = ((v >> 3) | (v << 13)) & 0xFFFF
    return (mm.astype(np.float32) / 1000.0).astype(np.float32)


def intrinsics(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def safe_name(text: str) -> str:
    """File-system-safe sample id from a relative path."""
    return re.sub(r"[^A-Za-z0-9._-]+", "__", text).strip("_") or "sample"


def find_image(folder: Path, stem: str) -> Path | None:
    for ext in IMAGE_EXTS + tuple(e.upper() for e in IMAGE_EXTS):
        candidate = folder / f"{stem}{ext}"
        if candidate.is_file():
            return candidate
    return None
