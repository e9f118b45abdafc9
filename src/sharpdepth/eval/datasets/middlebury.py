"""Middlebury stereo (2014 training scenes, also 2003/2005 scenes in the same format).

Layout (`root` is a folder of scenes, or one scene folder):

    <root>/<Scene>/im0.png          left image (evaluated view)
    <root>/<Scene>/disp0GT.pfm      left disparity in pixels, inf = unknown ("disp0.pfm" also accepted)
    <root>/<Scene>/calib.txt        cam0=[f 0 cx; 0 f cy; 0 0 1], doffs, baseline (mm), ...
    <root>/<Scene>/mask0nocc.png    optional: 255 non-occluded, 128 occluded, 0 unknown

Units: metric depth Z = baseline * f / (d + doffs) is in millimetres (baseline is in
mm), divided by 1000 here. Focal length and K come from cam0 (pixels, at the stored
resolution, so reduced-size copies must ship a matching calib.txt).
Option `nonocc=true` scores only non-occluded pixels (mask0nocc == 255).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...errors import DatasetError
from .base import DepthDataset, Entry, Sample, read_gray, read_pfm, read_rgb

_GT_NAMES = ("disp0GT.pfm", "disp0.pfm")


CalibValue = float | str | np.ndarray


def parse_calib(path: Path) -> dict[str, CalibValue]:
    """calib.txt -> {"cam0": 3x3 array, "cam1": ..., "doffs": float, "baseline": float, ...}."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read calibration ({exc})") from None
    out: dict[str, CalibValue] = {}
    for key, value in re.findall(r"(\w+)\s*=\s*(\[[^\]]*\]|[^\s\[]+)", text):
        if value.startswith("["):
            rows = [r.split() for r in value.strip("[]").split(";")]
            out[key] = np.array([[float(v) for v in row] for row in rows if row])
        else:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    for required in ("cam0", "doffs", "baseline"):
        if required not in out:
            raise DatasetError(f"{path}: calibration lacks {required!r}")
    for number in ("doffs", "baseline"):
        if not isinstance(out[number], float):
            raise DatasetError(f"{path}: calibration {number} is not a number ({out[number]!r})")
    return out


def _number(calib: dict[str, CalibValue], key: str) -> float:
    value = calib[key]
    return value if isinstance(value, float) else float("nan")  # parse_calib checked the required ones


def disparity_to_depth_m(disp: np.ndarray, focal_px: float, baseline_mm: float, doffs: float) -> np.ndarray:
    """Z (m) = baseline * f / (d + doffs) / 1000; unknown (inf / NaN / non-positive) -> NaN."""
    d = np.asarray(disp, dtype=np.float64)
    denom = d + doffs
    ok = np.isfinite(d) & (denom > 0)
    depth = np.full(d.shape, np.nan)
    depth[ok] = baseline_mm * focal_px / denom[ok] / 1000.0
    return depth.astype(np.float32)


class MiddleburyDataset(DepthDataset):
    name = "middlebury"
    default_protocol = "middlebury"

    def _scene_dirs(self) -> list[Path]:
        if (self.root / "calib.txt").is_file():
            return [self.root]
        return sorted(p for p in self.root.iterdir() if p.is_dir() and (p / "calib.txt").is_file())

    def _index(self) -> list[Entry]:
        entries = []
        for scene in self._scene_dirs():
            gt = next((scene / n for n in _GT_NAMES if (scene / n).is_file()), None)
            image = scene / "im0.png"
            if gt is None or not image.is_file():
                continue
            paths = {"image": image, "disparity": gt, "calib": scene / "calib.txt"}
            if (scene / "mask0nocc.png").is_file():
                paths["nonocc"] = scene / "mask0nocc.png"
            entries.append(Entry(scene.name, paths))
        return entries

    def load(self, entry: Entry) -> Sample:
        calib = parse_calib(entry.paths["calib"])
        K = np.asarray(calib["cam0"], dtype=np.float64)
        disp = read_pfm(entry.paths["disparity"])
        depth = disparity_to_depth_m(disp, float(K[0, 0]), _number(calib, "baseline"), _number(calib, "doffs"))
        image = read_rgb(entry.paths["image"])
        if image.shape[:2] != depth.shape:
            raise DatasetError(f"{entry.name}: image {image.shape[:2]} and disparity {depth.shape} differ in size")
        valid = None
        if self.option("nonocc", False, bool) and "nonocc" in entry.paths:
            valid = read_gray(entry.paths["nonocc"]) == 255
        return Sample(
            name=entry.name,
            image=image,
            depth=depth,
            valid=valid,
            K=K,
            image_path=str(entry.paths["image"]),
            extra={"baseline_mm": _number(calib, "baseline"), "doffs": _number(calib, "doffs")},
        )
