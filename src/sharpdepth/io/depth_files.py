"""Depth result files: writers for every output format and one reader for all of them.

Each file says what its numbers are. Metric results are written as z-depth in
metres (16-bit PNG: a documented integer scale, millimetres by default);
relative results as disparity, with "disparity" in the file name and metadata,
so nobody mistakes them for metres. `read_depth_result` turns any of these
files back into a `DepthResult` so effects can be re-run without the network.

File names, for an input `photo.jpg`:
    photo.npz                 depth or disparity + focal_px, fov_deg, kind, model
    photo_depth.npy / photo_disparity.npy       float32 HxW
    photo_depth.exr / ...     OpenEXR float32, channel "Z" (depth) or "disparity"
    photo_depth.pfm / ...     PFM float32 (little-endian, bottom-up rows)
    photo_depth.png / ...     16-bit PNG: value = offset + scale * pixel (tEXt metadata)
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from ..errors import InputImageError, OptionError
from ..result import DepthResult, FocalSource, OutputKind
from .atomic import atomic_path, write_text_atomic

DATA_FORMATS = ("npy", "npz", "png16", "exr", "pfm")
DEFAULT_PNG16_SCALE_M = 0.001  # millimetres: 0..65.535 m


def kind_word(result_or_kind: DepthResult | OutputKind) -> str:
    kind = result_or_kind.kind if isinstance(result_or_kind, DepthResult) else result_or_kind
    return "depth" if kind is OutputKind.METRIC_DEPTH else "disparity"


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


# ---------------------------------------------------------------- writers
def write_npy(path: Path, result: DepthResult) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, result.prediction.astype(np.float32))


def write_npz(path: Path, result: DepthResult) -> None:
    arrays: dict[str, Any] = {
        kind_word(result): result.prediction.astype(np.float32),
        "output_kind": np.array(str(result.kind)),
        "model": np.array(result.model_name),
        "focal_px": np.array(np.nan if result.focal_px is None else result.focal_px, dtype=np.float64),
        "fov_deg": np.array(np.nan if result.fov_deg is None else result.fov_deg, dtype=np.float64),
        "focal_source": np.array(str(result.focal_source)),
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def write_png16(path: Path, result: DepthResult, scale_m: float = DEFAULT_PNG16_SCALE_M) -> None:
    """Metric: pixel = depth / scale_m (default mm), 0 = invalid, clipped at 65535.
    Relative: disparity min..max spread over 1..65535. Metadata: value = offset + scale * pixel."""
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
        scale = (hi - lo) / 65534.0 if hi > lo else 1.0
        offset = lo - scale  # pixel 1 = lo, 0 stays "invalid"
    pixels = np.zeros(values.shape, dtype=np.float64)
    pixels[valid] = np.rint((values[valid] - offset) / scale)
    clipped = float(np.mean(pixels[valid] > 65535)) if valid.any() else 0.0
    pixels = np.clip(pixels, 0, 65535).astype(np.uint16)
    meta.update(
        {
            "sharpdepth:offset": repr(offset),
            "sharpdepth:scale": repr(scale),
            "sharpdepth:clipped": f"{clipped:.6f}",
        }
    )
    info = PngImagePlugin.PngInfo()
    for key, value in meta.items():
        info.add_text(key, value)
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG", pnginfo=info)


def write_exr(path: Path, result: DepthResult) -> None:
    import OpenEXR

    channel = "Z" if result.is_metric else "disparity"
    header: dict[str, Any] = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    header.update({k.replace(":", "_"): v for k, v in _metadata(result).items()})
    with atomic_path(path) as tmp:
        with OpenEXR.File(header, {channel: np.ascontiguousarray(result.prediction, dtype=np.float32)}) as f:
            f.write(str(tmp))


def write_pfm(path: Path, result: DepthResult) -> None:
    data = np.ascontiguousarray(np.flipud(result.prediction.astype("<f4")))
    header = f"Pf\n{result.width} {result.height}\n-1.0\n".encode("ascii")
    with atomic_path(path) as tmp:
        tmp.write_bytes(header + data.tobytes())


def write_sidecar(path: Path, result: DepthResult, extra: dict[str, Any] | None = None) -> None:
    summary = result.summary()
    if extra:
        summary.update(extra)
    write_text_atomic(path, json.dumps(summary, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


WRITERS = {"npy": write_npy, "npz": write_npz, "png16": write_png16, "exr": write_exr, "pfm": write_pfm}


def write_result(result: DepthResult, out_dir: Path, stem: str, fmt: str, **options: Any) -> Path:
    path = output_path(out_dir, stem, fmt, result.kind)
    WRITERS[fmt](path, result, **options)
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
    if re.search(r"(^|[_.])disparity$", path.stem):
        return OutputKind.RELATIVE_DISPARITY
    if re.search(r"(^|[_.])depth$", path.stem):
        return OutputKind.METRIC_DEPTH
    return None


def _sidecar(path: Path) -> dict[str, Any]:
    stem = re.sub(r"_(depth|disparity)$", "", path.stem)
    candidate = path.with_name(stem + ".json")
    if candidate.is_file():
        try:
            return json.loads(candidate.read_text())
        except (OSError, ValueError):
            return {}
    return {}


def read_depth_result(
    path: str | Path, kind: OutputKind | str | None = None, focal_px: float | None = None
) -> DepthResult:
    """Load any file written by `write_result` (or a plain depth .npy/.pfm/.exr/.png16).

    Kind and focal come from the file's metadata, else its name and JSON sidecar,
    else the arguments. `focal_px` given here overrides the file's value.
    """
    path = Path(path)
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
    except (OSError, ValueError, KeyError) as exc:
        raise InputImageError(f"{path}: unreadable depth file ({exc})") from None
    prediction = np.asarray(prediction, dtype=np.float32)
    if prediction.ndim != 2:
        raise InputImageError(f"{path}: expected a single-channel HxW map, got shape {prediction.shape}")
    side = _sidecar(path)
    resolved_kind = (
        OutputKind(kind)
        if kind is not None
        else meta.get("kind") or _kind_from_name(path) or _kind_or_none(side.get("output_kind"))
    )
    if resolved_kind is None:
        raise InputImageError(
            f"{path}: cannot tell if it holds metric depth or relative disparity; pass the kind explicitly"
        )
    file_focal = meta.get("focal_px", side.get("focal_px"))
    chosen_focal = focal_px if focal_px is not None else _finite_or_none(file_focal)
    source = (
        FocalSource.USER
        if focal_px is not None
        else FocalSource(
            meta.get("focal_source") or side.get("focal_source") or ("none" if chosen_focal is None else "user")
        )
    )
    return DepthResult(
        prediction=prediction,
        kind=OutputKind(resolved_kind),
        focal_px=chosen_focal,
        focal_source=source,
        model_name=str(meta.get("model") or side.get("model") or ""),
        source=str(path),
    )


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
        elif "disparity" in data.files:
            prediction, kind = data["disparity"], OutputKind.RELATIVE_DISPARITY
        else:
            raise KeyError("no 'depth' or 'disparity' array")
        meta: dict[str, Any] = {"kind": kind}
        for key in ("focal_px", "model", "focal_source"):
            if key in data.files:
                meta[key] = data[key].item()
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
    if header.get("sharpdepth_kind"):
        meta["kind"] = OutputKind(header["sharpdepth_kind"])
    elif name == "disparity":
        meta["kind"] = OutputKind.RELATIVE_DISPARITY
    for key in ("focal_px", "model", "focal_source"):
        if f"sharpdepth_{key}" in header:
            meta[key] = header[f"sharpdepth_{key}"]
    return prediction, meta


def _read_png16(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    with Image.open(path) as img:
        img.load()
        text = dict(getattr(img, "text", {}) or {})
        pixels = np.asarray(img, dtype=np.float64)
    if "sharpdepth:scale" not in text:
        raise ValueError("16-bit PNG without sharpdepth scale metadata; cannot recover units")
    offset, scale = float(text.get("sharpdepth:offset", 0.0)), float(text["sharpdepth:scale"])
    values = np.where(
        pixels > 0, offset + scale * pixels, np.nan if "relative" in text.get("sharpdepth:unit", "") else 0.0
    )
    meta: dict[str, Any] = {"kind": OutputKind(text["sharpdepth:kind"])} if "sharpdepth:kind" in text else {}
    for key in ("focal_px", "model", "focal_source"):
        if f"sharpdepth:{key}" in text:
            meta[key] = text[f"sharpdepth:{key}"]
    return values.astype(np.float32), meta
