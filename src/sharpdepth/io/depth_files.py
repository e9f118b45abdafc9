"""Depth result files: writers for every output format and the one reader for all of them.

Each file says what its numbers are. Metric results are written as z-depth in
metres (16-bit PNG: a documented integer scale, millimetres by default);
relative results as disparity, with "disparity" in the file name and metadata,
so nobody mistakes them for metres. `read_depth_result` turns any of these
files back into a `DepthResult` so effects can be re-run without the network.

File names, for an input `photo.jpg`:
    photo.npz                 depth or disparity + focal_px, fov_deg, kind, model (and, where the
                              model gives them, confidence, sky and intrinsics: read back too)
    photo_depth.npy / photo_disparity.npy       float32 HxW
    photo_depth.exr / ...     OpenEXR float32, channel "Z" (depth) or "disparity"
    photo_depth.pfm / ...     PFM float32 (little-endian, bottom-up rows)
    photo_depth.png / ...     16-bit PNG: value = offset + scale * pixel (tEXt metadata)

The one rule for what a file holds (`read_depth_result`): the `kind=` argument
if given; else the file's own metadata (npz arrays, EXR header, PNG text);
else its name (`*_depth.*` = metric depth, `*_disparity.*` = relative
disparity, as `predict` names them); else the JSON sidecar beside it; else the
caller's `default_kind=`; else the file is refused, because a bare array of
numbers cannot say whether it is metres or relative disparity.

Invalid pixels read back as NaN from every format. A 16-bit PNG holds metric
depth up to 65535 units (65.535 m at the default millimetre scale): deeper
pixels are written as the invalid value 0, never as a valid-looking 65.535 m,
and their share is stored in the metadata and reported to the caller.
"""

from __future__ import annotations

import io
import json
import math
import re
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, PngImagePlugin

from ..errors import InputImageError, OptionError, first_line
from ..maps import check_focal_px, resize_map
from ..result import DepthResult, FocalSource, OutputKind
from .atomic import write_bytes_atomic

DATA_FORMATS = ("npy", "npz", "png16", "exr", "pfm")
DEFAULT_PNG16_SCALE_M = 0.001  # millimetres: 0..65.535 m
PNG16_MAX = 65535


@dataclass(frozen=True)
class Notice:
    """Something the user should hear about a written result (said once on the command line)."""

    kind: str
    """What happened, e.g. "png16_saturated", "normals_skipped"."""
    message: str
    share: float | None = None
    """Fraction of the map concerned, where that applies."""
    source: str | None = None
    """The input it is about (set by the job that writes many results)."""


NoticeSink = Callable[[Notice], None]


def kind_word(result_or_kind: DepthResult | OutputKind) -> str:
    kind = result_or_kind.kind if isinstance(result_or_kind, DepthResult) else result_or_kind
    return kind.file_word


def output_path(out_dir: Path, stem: str, fmt: str, kind: OutputKind) -> Path:
    """Where format `fmt` of a result for input `stem` goes."""
    word = kind_word(kind)
    names = {
        "npz": f"{stem}.npz",
        "npy": f"{stem}_{word}.npy",
        "exr": f"{stem}_{word}.exr",
        "pfm": f"{stem}_{word}.pfm",
        "png16": f"{stem}_{word}.png",
        "json": f"{stem}.json",
    }
    if fmt not in names:
        raise OptionError(f"unknown format {fmt!r}; choose from {', '.join(DATA_FORMATS)}")
    return out_dir / names[fmt]


def _metadata(result: DepthResult) -> dict[str, str]:
    meta = {
        "sharpdepth:kind": str(result.kind),
        "sharpdepth:unit": "m" if result.is_metric else "relative",
        "sharpdepth:model": result.model_name,
    }
    if result.focal_px is not None:
        meta["sharpdepth:focal_px"] = repr(float(result.focal_px))
        meta["sharpdepth:focal_source"] = str(result.focal_source)
    return meta


# ---------------------------------------------------------------- encoders (bytes) and writers (files)
# Each format is encoded to bytes once; a file is those bytes written atomically, an HTTP
# response is those bytes returned as they are: `predict` and the service give the same bytes.


@dataclass(frozen=True)
class EncodedDepth:
    """One format of a result as bytes, with what the user should hear about it."""

    data: bytes
    notices: tuple[Notice, ...] = ()


def encode_npy(result: DepthResult) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, result.prediction.astype(np.float32))
    return buffer.getvalue()


def encode_npz(result: DepthResult) -> bytes:
    arrays: dict[str, Any] = {
        kind_word(result): result.prediction.astype(np.float32),
        "output_kind": np.array(str(result.kind)),
        "model": np.array(result.model_name),
        "focal_px": np.array(np.nan if result.focal_px is None else result.focal_px, dtype=np.float64),
        "fov_deg": np.array(np.nan if result.fov_deg is None else result.fov_deg, dtype=np.float64),
        "focal_source": np.array(str(result.focal_source)),
    }
    for name in ("confidence", "sky", "intrinsics"):  # where the model gives them (Depth Anything 3)
        value = getattr(result, name)
        if value is not None:
            arrays[name] = value
    buffer = io.BytesIO()
    save_npz_reproducible(buffer, arrays)
    return buffer.getvalue()


NPZ_DATE = (1980, 1, 1, 0, 0, 0)
"""Date stamped on every entry of the .npz files we write (zip's earliest)."""


def save_npz_reproducible(fh: BinaryIO, arrays: dict[str, Any]) -> None:
    """`np.savez_compressed`, minus the wall clock it stamps on each zip entry: the same depth
    map gives the same bytes on every run, so outputs can be compared or deduplicated by hash."""
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=NPZ_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, np.asanyarray(value), allow_pickle=False)


def encode_png16(result: DepthResult, scale_m: float = DEFAULT_PNG16_SCALE_M) -> EncodedDepth:
    """Metric: pixel = depth / scale_m (default mm), 0 = invalid; deeper than 65535 units -> 0 (invalid).
    Relative: disparity min..max spread over 1..65535. Metadata: value = offset + scale * pixel.

    Depth too deep for the format is reported as a `png16_saturated` notice (its share of the valid pixels)."""
    values = result.prediction.astype(np.float64)
    valid = np.isfinite(values) & (values > 0 if result.is_metric else np.isfinite(values))
    meta = _metadata(result)
    if result.is_metric:
        if not scale_m > 0:
            raise OptionError("--png-scale must be a positive number of metres per unit")
        offset, scale = 0.0, float(scale_m)
    else:
        lo = float(values[valid].min()) if valid.any() else 0.0
        hi = float(values[valid].max()) if valid.any() else 1.0
        scale = (hi - lo) / (PNG16_MAX - 1.0) if hi > lo else 1.0
        offset = lo - scale  # pixel 1 = lo, 0 stays "invalid"
    pixels = np.zeros(values.shape, dtype=np.float64)
    pixels[valid] = np.rint((values[valid] - offset) / scale)
    too_deep = pixels > PNG16_MAX
    saturated = float(np.count_nonzero(too_deep)) / max(int(np.count_nonzero(valid)), 1)
    pixels[too_deep] = 0  # the invalid value: never a valid-looking maximum depth
    pixels = np.clip(pixels, 0, PNG16_MAX).astype(np.uint16)
    meta.update(
        {
            "sharpdepth:offset": repr(offset),
            "sharpdepth:scale": repr(scale),
            "sharpdepth:saturated": f"{saturated:.6f}",
        }
    )
    info = PngImagePlugin.PngInfo()
    for key, value in meta.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", pnginfo=info)
    notices: tuple[Notice, ...] = ()
    if saturated > 0:
        limit = PNG16_MAX * scale
        message = (
            f"16-bit PNG holds depth up to {limit:g} m: {saturated:.1%} of the pixels were deeper "
            "and are written as invalid (0); use npz/exr/pfm or a larger --png-scale to keep them"
        )
        notices = (Notice("png16_saturated", message, saturated),)
    return EncodedDepth(buffer.getvalue(), notices)


def encode_exr(result: DepthResult) -> bytes:
    """OpenEXR's binding writes only to a named file: a private temporary one, read back."""
    import OpenEXR

    channel = "Z" if result.kind.is_depth else "disparity"  # Z: depth, in metres or up to scale
    header: dict[str, Any] = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    header.update({k.replace(":", "_"): v for k, v in _metadata(result).items()})
    with tempfile.TemporaryDirectory(prefix="sharpdepth-exr-") as folder:
        tmp = Path(folder) / "depth.exr"
        with OpenEXR.File(header, {channel: np.ascontiguousarray(result.prediction, dtype=np.float32)}) as f:
            f.write(str(tmp))
        return tmp.read_bytes()


def encode_pfm(result: DepthResult) -> bytes:
    data = np.ascontiguousarray(np.flipud(result.prediction.astype("<f4")))
    header = f"Pf\n{result.width} {result.height}\n-1.0\n".encode("ascii")
    return header + data.tobytes()


def encode_sidecar(result: DepthResult, extra: dict[str, Any] | None = None) -> bytes:
    """The JSON sidecar: the result's summary (model, kind, unit, focal, statistics) plus `extra`."""
    summary = result.summary()
    if extra:
        summary.update(extra)
    return (json.dumps(summary, indent=2, default=_json_default) + "\n").encode("utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


ENCODERS: dict[str, Callable[[DepthResult], bytes]] = {
    "npy": encode_npy,
    "npz": encode_npz,
    "exr": encode_exr,
    "pfm": encode_pfm,
}
"""Formats whose bytes depend on the result only (png16 also takes its scale)."""


def encode_depth(result: DepthResult, fmt: str, scale_m: float = DEFAULT_PNG16_SCALE_M) -> EncodedDepth:
    """One data format of `result` as bytes: exactly the file `predict -f FMT` writes."""
    if fmt == "png16":
        return encode_png16(result, scale_m)
    if fmt not in ENCODERS:
        raise OptionError(f"unknown format {fmt!r}; choose from {', '.join(DATA_FORMATS)}")
    return EncodedDepth(ENCODERS[fmt](result))


def write_npy(path: Path, result: DepthResult) -> None:
    write_bytes_atomic(path, encode_npy(result))


def write_npz(path: Path, result: DepthResult) -> None:
    write_bytes_atomic(path, encode_npz(result))


def write_png16(
    path: Path, result: DepthResult, scale_m: float = DEFAULT_PNG16_SCALE_M, on_notice: NoticeSink | None = None
) -> float:
    """`encode_png16` written atomically; returns the share of valid pixels too deep for the format."""
    encoded = encode_png16(result, scale_m)
    write_bytes_atomic(path, encoded.data)
    for notice in encoded.notices:
        if on_notice is not None:
            on_notice(notice)
    return encoded.notices[0].share if encoded.notices and encoded.notices[0].share is not None else 0.0


def write_exr(path: Path, result: DepthResult) -> None:
    write_bytes_atomic(path, encode_exr(result))


def write_pfm(path: Path, result: DepthResult) -> None:
    write_bytes_atomic(path, encode_pfm(result))


def write_sidecar(path: Path, result: DepthResult, extra: dict[str, Any] | None = None) -> None:
    write_bytes_atomic(path, encode_sidecar(result, extra))


def write_result(
    result: DepthResult,
    out_dir: Path,
    stem: str,
    fmt: str,
    scale_m: float = DEFAULT_PNG16_SCALE_M,
    on_notice: NoticeSink | None = None,
) -> Path:
    """Write one format of `result` as `out_dir/stem...` (name from `output_path`); returns the path."""
    path = output_path(out_dir, stem, fmt, result.kind)
    encoded = encode_depth(result, fmt, scale_m)
    write_bytes_atomic(path, encoded.data)
    for notice in encoded.notices:
        if on_notice is not None:
            on_notice(notice)
    return path


# ---------------------------------------------------------------- readers
def read_pfm(path: Path) -> np.ndarray:
    with open(path, "rb") as fh:
        kind = fh.readline().strip()
        if kind not in (b"Pf", b"PF"):
            raise InputImageError(f"{path}: not a PFM file")
        dims = fh.readline().split()
        while not dims:  # tolerate blank/comment lines
            dims = fh.readline().split()
        width, height = int(dims[0]), int(dims[1])
        scale = float(fh.readline().strip())
        channels = 3 if kind == b"PF" else 1
        dtype = "<f4" if scale < 0 else ">f4"
        data = np.frombuffer(fh.read(), dtype=dtype, count=width * height * channels)
    data = data.reshape(height, width, channels) if channels == 3 else data.reshape(height, width)
    return np.flipud(data).astype(np.float32)


def _kind_from_name(path: Path) -> OutputKind | None:
    if re.search(r"(^|[_.])relative_depth$", path.stem):
        return OutputKind.RELATIVE_DEPTH
    if re.search(r"(^|[_.])disparity$", path.stem):
        return OutputKind.RELATIVE_DISPARITY
    if re.search(r"(^|[_.])depth$", path.stem):
        return OutputKind.METRIC_DEPTH
    return None


def _sidecar(path: Path) -> dict[str, Any]:
    stem = re.sub(r"_(relative_depth|depth|disparity)$", "", path.stem)
    candidate = path.with_name(stem + ".json")
    if candidate.is_file():
        try:
            data = json.loads(candidate.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}
    return {}


def read_depth_result(
    path: str | Path,
    kind: OutputKind | str | None = None,
    focal_px: float | None = None,
    *,
    default_kind: OutputKind | str | None = None,
    image: np.ndarray | None = None,
) -> DepthResult:
    """Load any file written by `write_result` (or a plain depth .npy/.pfm/.exr/.png16).

    What the numbers are follows the module's one rule: `kind` (forces it), the
    file's metadata, its name, its JSON sidecar, then `default_kind` (what the
    caller assumes for a bare array); with none of them the file is refused.
    `focal_px` overrides the file's focal length (and is the only source of one
    for a bare array). With `image` (HxWx3 uint8), the map is matched to the
    photo (`match_result_to_image`) and the photo attached.
    """
    path = Path(path)
    chosen = None if focal_px is None else check_focal_px(focal_px)
    prediction, meta = _read_map(path)
    side = _sidecar(path)
    resolved = _resolve_kind(path, kind, meta, side, default_kind)
    file_focal = _finite_or_none(meta.get("focal_px", side.get("focal_px")))
    focal = chosen if chosen is not None else file_focal
    source = FocalSource.USER if chosen is not None else _focal_source(meta, side, focal)
    result = DepthResult(
        prediction=prediction,
        kind=resolved,
        focal_px=focal,
        focal_source=source,
        model_name=str(meta.get("model") or side.get("model") or ""),
        source=str(path),
        confidence=meta.get("confidence"),
        sky=meta.get("sky"),
        intrinsics=_intrinsics(meta, side, prediction.shape, chosen),
    )
    return result if image is None else match_result_to_image(result, image)


def _intrinsics(
    meta: dict[str, Any], side: dict[str, Any], shape: tuple[int, ...], focal_px: float | None
) -> np.ndarray | None:
    """K of the map: the npz's, else the sidecar's when it describes a map of this size; a focal length
    given by the caller replaces its focal (the principal point stays)."""
    k = meta.get("intrinsics")
    if k is None and side.get("intrinsics") is not None and (side.get("height"), side.get("width")) == shape:
        try:
            k = np.asarray(side["intrinsics"], dtype=np.float64)
        except (TypeError, ValueError):
            k = None
    if k is None or k.shape != (3, 3) or not np.isfinite(k).all():
        return None
    k = np.array(k, dtype=np.float64)
    if focal_px is not None:
        k[0, 0] = k[1, 1] = focal_px
    return k


def _read_map(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """The HxW float32 map of a depth file and the metadata it carries; InputImageError if unusable."""
    if not path.is_file():
        raise InputImageError(f"{path}: no such depth file")
    meta: dict[str, Any] = {}
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            prediction, meta = _read_npz(path)
        elif suffix == ".npy":
            prediction = np.load(path, allow_pickle=False)
        elif suffix == ".pfm":
            prediction = read_pfm(path)
        elif suffix == ".exr":
            prediction, meta = _read_exr(path)
        elif suffix == ".png":
            prediction, meta = _read_png16(path)
        else:
            raise InputImageError(f"{path}: unsupported depth file type {suffix!r} (npz, npy, pfm, exr, png)")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise InputImageError(f"{path}: unreadable depth file ({first_line(exc, 120)})") from None
    try:
        prediction = np.asarray(prediction, dtype=np.float32)
    except (TypeError, ValueError):
        raise InputImageError(f"{path}: the depth array is not numeric") from None
    if prediction.ndim != 2:
        raise InputImageError(f"{path}: expected a single-channel HxW map, got shape {prediction.shape}")
    if prediction.shape[0] < 2 or prediction.shape[1] < 2:
        raise InputImageError(f"{path}: empty or degenerate depth map ({prediction.shape[1]}x{prediction.shape[0]})")
    return prediction, meta


def _resolve_kind(
    path: Path,
    kind: OutputKind | str | None,
    meta: dict[str, Any],
    side: dict[str, Any],
    default_kind: OutputKind | str | None,
) -> OutputKind:
    """The module's one rule: kind > file metadata > file name > sidecar > default_kind > refuse."""
    forced, fallback = _given_kind(kind), _given_kind(default_kind)
    if forced is not None:
        return forced
    for candidate in (meta.get("kind"), _kind_from_name(path), _kind_or_none(side.get("output_kind")), fallback):
        if candidate is not None:
            return OutputKind(candidate)
    raise InputImageError(
        f"{path}: a bare array does not say whether it holds metric depth or relative disparity; "
        "name it *_depth.npy or *_disparity.npy (as predict does), or pass the kind explicitly"
    )


def _given_kind(value: OutputKind | str | None) -> OutputKind | None:
    if value is None:
        return None
    try:
        return OutputKind(value)
    except ValueError:
        raise OptionError(f"unknown depth kind {value!r}; choose metric_depth or relative_disparity") from None


def _focal_source(meta: dict[str, Any], side: dict[str, Any], focal: float | None) -> FocalSource:
    """The file's focal source; an unknown or missing one is "none" without a focal, else "user"."""
    if focal is None:
        return FocalSource.NONE
    for value in (meta.get("focal_source"), side.get("focal_source")):
        if value is None:
            continue
        try:
            return FocalSource(str(value))
        except ValueError:
            continue
    return FocalSource.USER


def _kind_or_none(value: Any) -> OutputKind | None:
    try:
        return OutputKind(value) if value else None
    except ValueError:
        return None


def _finite_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _read_npz(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    with np.load(path, allow_pickle=False) as data:
        if "depth" in data.files:
            prediction, kind = data["depth"], OutputKind.METRIC_DEPTH
        elif "relative_depth" in data.files:
            prediction, kind = data["relative_depth"], OutputKind.RELATIVE_DEPTH
        elif "disparity" in data.files:
            prediction, kind = data["disparity"], OutputKind.RELATIVE_DISPARITY
        else:
            raise KeyError("no 'depth' or 'disparity' array")
        meta: dict[str, Any] = {"kind": kind}
        for key in ("focal_px", "model", "focal_source"):
            if key in data.files and data[key].size == 1:
                meta[key] = data[key].item()
        for key, dtype in (("confidence", np.float32), ("sky", bool), ("intrinsics", np.float64)):
            if key in data.files:  # Depth Anything 3's further maps and its camera
                meta[key] = np.asarray(data[key], dtype=dtype)
                want = (3, 3) if key == "intrinsics" else prediction.shape
                if meta[key].shape != want:
                    raise ValueError(f"its {key} is {meta[key].shape}, expected {want}")
    return prediction, meta


def _read_exr(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    import OpenEXR

    with OpenEXR.File(str(path)) as f:
        # The header dict is tied to the open file: copy what we need before closing.
        header, channels = dict(f.header()), f.channels()
        name = next((c for c in ("Z", "disparity", "Y", "R") if c in channels), None)
        if name is None:
            raise KeyError(f"no depth channel among {sorted(channels)}")
        prediction = np.array(channels[name].pixels, dtype=np.float32)
    meta: dict[str, Any] = {}
    if _kind_or_none(header.get("sharpdepth_kind")) is not None:
        meta["kind"] = OutputKind(header["sharpdepth_kind"])
    elif name == "disparity":
        meta["kind"] = OutputKind.RELATIVE_DISPARITY
    for key in ("focal_px", "model", "focal_source"):
        if f"sharpdepth_{key}" in header:
            meta[key] = header[f"sharpdepth_{key}"]
    return prediction, meta


def _read_png16(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """A 16-bit PNG of ours: value = offset + scale * pixel; pixel 0 is invalid (NaN) in both kinds."""
    with Image.open(path) as img:
        img.load()
        text = dict(getattr(img, "text", {}) or {})
        pixels = np.asarray(img, dtype=np.float64)
    if "sharpdepth:scale" not in text:
        raise ValueError("16-bit PNG without sharpdepth scale metadata; cannot recover units")
    offset, scale = float(text.get("sharpdepth:offset", 0.0)), float(text["sharpdepth:scale"])
    values = np.where(pixels > 0, offset + scale * pixels, np.nan)
    meta: dict[str, Any] = {}
    if _kind_or_none(text.get("sharpdepth:kind")) is not None:
        meta["kind"] = OutputKind(text["sharpdepth:kind"])
    for key in ("focal_px", "model", "focal_source"):
        if f"sharpdepth:{key}" in text:
            meta[key] = text[f"sharpdepth:{key}"]
    return values.astype(np.float32), meta


# ---------------------------------------------------------------- matching a result to its photo
def match_result_to_image(result: DepthResult, image: np.ndarray) -> DepthResult:
    """Return `result` at the image's resolution with the image attached.

    Depth maps and photos must line up pixel for pixel. A map saved at another
    resolution (same aspect ratio) is resampled bilinearly over its valid pixels
    (`maps.resize_map`: invalid ones stay invalid and never bleed into their
    neighbours) and its focal length scaled with the width; a different aspect
    ratio is refused.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputImageError(f"image must be HxWx3 uint8, got {image.shape} {image.dtype}")
    h, w = image.shape[:2]
    if (result.height, result.width) == (h, w):
        return replace(result, image=image)
    if abs((result.width / result.height) / (w / h) - 1.0) > 0.01:
        raise InputImageError(
            f"depth map is {result.width}x{result.height} but the photo is {w}x{h} (another aspect ratio); "
            "was it computed from this photo?"
        )
    prediction = resize_map(result.prediction, (h, w), result.kind)
    sx, sy = w / result.width, h / result.height
    focal = None if result.focal_px is None else float(result.focal_px) * sx
    return replace(
        result,
        prediction=prediction,
        focal_px=focal,
        image=image,
        confidence=None if result.confidence is None else resize_map(result.confidence, (h, w), result.kind),
        sky=None if result.sky is None else _resize_mask(result.sky, h, w),
        intrinsics=None if result.intrinsics is None else result.intrinsics * np.array([[sx], [sy], [1.0]]),
    )


def _resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """A bool mask at height x width, each pixel from the nearest source pixel."""
    image = Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255)
    return np.asarray(image.resize((width, height), Image.Resampling.NEAREST)) > 127


def result_with_focal(result: DepthResult, focal_px: float | None) -> DepthResult:
    """`result` with a user-given focal length (None keeps the result's own)."""
    if focal_px is None:
        return result
    return replace(result, focal_px=check_focal_px(focal_px), focal_source=FocalSource.USER)
