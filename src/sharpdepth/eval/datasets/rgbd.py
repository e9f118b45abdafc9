"""RGB-D sensor datasets: TUM RGB-D (sequences with poses) and SUN RGB-D (single frames)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ...errors import DatasetError
from .base import (
    IMAGE_EXTS,
    DepthDataset,
    Entry,
    Sample,
    decode_sun_depth,
    intrinsics,
    read_png_uint,
    read_rgb,
    safe_name,
)
from .folder import find_pairs
from .others import quat_to_rot

# ------------------------------------------------------------------ TUM RGB-D
TUM_DEPTH_FACTOR = 5000.0
TUM_INTRINSICS = {  # ROS default calibration per sensor, from the dataset's web page
    "freiburg1": (517.3, 516.5, 318.6, 255.3),
    "freiburg2": (520.9, 521.0, 325.1, 249.7),
    "freiburg3": (535.4, 539.2, 320.1, 247.6),
}
MAX_TIME_DIFF = 0.02  # seconds, TUM associate.py default


def read_tum_list(path: Path) -> list[tuple[float, list[str]]]:
    """'timestamp value...' lines of rgb.txt / depth.txt / groundtruth.txt ('#' comments skipped)."""
    rows = []
    for line in path.read_text().splitlines():
        parts = line.replace(",", " ").split()
        if not parts or parts[0].startswith("#"):
            continue
        rows.append((float(parts[0]), parts[1:]))
    return rows


def associate(a: list[float], b: list[float], max_diff: float = MAX_TIME_DIFF) -> list[tuple[int, int]]:
    """Greedy closest-first matching of two timestamp lists (TUM associate.py), sorted by `a`."""
    if not a or not b:
        return []
    bs = np.asarray(b)
    order = np.argsort(bs)
    sorted_b = bs[order]
    candidates = []
    for i, t in enumerate(a):
        k = int(np.searchsorted(sorted_b, t))
        for j in range(max(k - 2, 0), min(k + 2, len(sorted_b))):
            diff = abs(sorted_b[j] - t)
            if diff < max_diff:
                candidates.append((diff, i, int(order[j])))
    used_a, used_b, pairs = set(), set(), []
    for _, i, j in sorted(candidates):
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            pairs.append((i, j))
    return sorted(pairs)


def tum_pose(values: list[str]) -> np.ndarray:
    """'tx ty tz qx qy qz qw' -> 4x4 camera-to-world."""
    tx, ty, tz, qx, qy, qz, qw = (float(v) for v in values[:7])
    pose = np.eye(4)
    pose[:3, :3] = quat_to_rot(qw, qx, qy, qz)
    pose[:3, 3] = (tx, ty, tz)
    return pose


class TumDataset(DepthDataset):
    """TUM RGB-D benchmark sequences.

    Layout (`root` is one sequence folder or a folder of them):

        <seq>/rgb.txt, <seq>/depth.txt         "timestamp filename" lines
        <seq>/rgb/<timestamp>.png               640x480 RGB
        <seq>/depth/<timestamp>.png             uint16, metres = value / 5000, 0 = unknown
        <seq>/groundtruth.txt                   optional, "timestamp tx ty tz qx qy qz qw" (camera-to-world)

    RGB and depth are paired by the closest timestamps (< 0.02 s, as associate.py); poses
    are taken from the closest ground-truth timestamp (< 0.02 s). Intrinsics come from the
    sensor named in the folder (freiburg1/2/3) or options fx, fy, cx, cy. Option `stride`
    keeps every n-th frame.

    Frame-folder layout (clips cut from a sequence, e.g. `data/rgbd/sequences/tum_fr2_desk`;
    used whenever `poses.txt` is present):

        <seq>/rgb/000000.png, <seq>/depth/000000.png   one pair per frame, same names, in order
        <seq>/poses.txt                      one "timestamp tx ty tz qx qy qz qw" line per frame
        <seq>/intrinsics.json                fx, fy, cx, cy (and depth_scale, default 5000)

    Fallback: a folder without rgb.txt is read as flat pairs `<name>_color.png` +
    `<name>_depth.png` with the TUM depth factor (how single exported frames are stored).
    """

    name = "tum"
    default_protocol = "tum"

    def _sequences(self) -> list[Path]:
        if _is_sequence(self.root):
            return [self.root]
        markers = [*self.root.rglob("rgb.txt"), *self.root.rglob("poses.txt")]
        return sorted({p.parent for p in markers if _is_sequence(p.parent)})

    def _K(self, seq: Path) -> np.ndarray | None:
        keys = ("fx", "fy", "cx", "cy")
        if all(k in self.options for k in keys):
            return intrinsics(*(float(self.options[k]) for k in keys))
        match = re.search(r"freiburg[123]", str(seq))
        return intrinsics(*TUM_INTRINSICS[match.group(0)]) if match else None

    def _index(self) -> list[Entry]:
        sequences = self._sequences()
        if not sequences:
            return [
                Entry(safe_name(str(img.relative_to(self.root).with_suffix(""))), {"image": img, "depth": dep})
                for img, dep in find_pairs(self.root)
                if dep.suffix.lower() == ".png"
            ]
        stride = max(int(self.option("stride", 1, int)), 1)
        entries = []
        for seq in sequences:
            if _is_frame_folder(seq):
                entries.extend(self._index_frames(seq)[::stride])
                continue
            rgb = read_tum_list(seq / "rgb.txt")
            depth = read_tum_list(seq / "depth.txt")
            gt_file = seq / "groundtruth.txt"
            gt = read_tum_list(gt_file) if gt_file.is_file() else []
            gt_times = [t for t, _ in gt]
            pairs = associate([t for t, _ in rgb], [t for t, _ in depth])[::stride]
            pose_of = dict(associate([rgb[i][0] for i, _ in pairs], gt_times)) if gt else {}
            for n, (i, j) in enumerate(pairs):
                meta = {"sequence": seq.name, "timestamp": rgb[i][0], "K": self._K(seq)}
                if n in pose_of:
                    meta["pose"] = tum_pose(gt[pose_of[n]][1])
                paths = {"image": seq / rgb[i][1][0], "depth": seq / depth[j][1][0]}
                entries.append(Entry(safe_name(f"{seq.name}/{rgb[i][0]:.6f}"), paths, meta))
        return entries

    def _index_frames(self, seq: Path) -> list[Entry]:
        """Frame-folder layout: frames by sorted name, pose i for frame i, intrinsics from JSON."""
        images = sorted(p for p in (seq / "rgb").iterdir() if p.suffix.lower() in IMAGE_EXTS)
        missing = [p.name for p in images if not (seq / "depth" / p.name).is_file()]
        if missing:
            raise DatasetError(f"tum: {seq.name}: depth/ lacks {missing[0]} ({len(missing)} frame(s) without depth)")
        poses = read_tum_list(seq / "poses.txt")
        if len(poses) != len(images):
            raise DatasetError(f"tum: {seq.name}: poses.txt has {len(poses)} poses for {len(images)} frames")
        info = _read_json(seq / "intrinsics.json")
        keys = ("fx", "fy", "cx", "cy")
        if info and not all(k in self.options for k in keys):
            K: np.ndarray | None = intrinsics(*(_number(info, k, seq) for k in keys))
        else:
            K = self._K(seq)
        factor = _number(info, "depth_scale", seq) if "depth_scale" in info else TUM_DEPTH_FACTOR
        entries = []
        for image, (stamp, values) in zip(images, poses, strict=True):
            meta = {"sequence": seq.name, "timestamp": stamp, "K": K, "pose": tum_pose(values), "depth_factor": factor}
            paths = {"image": image, "depth": seq / "depth" / image.name}
            entries.append(Entry(safe_name(f"{seq.name}/{image.stem}"), paths, meta))
        return entries

    def load(self, entry: Entry) -> Sample:
        raw = read_png_uint(entry.paths["depth"])
        depth = raw.astype(np.float32) / float(entry.meta.get("depth_factor", TUM_DEPTH_FACTOR))
        K = entry.meta.get("K")
        return Sample(
            entry.name,
            read_rgb(entry.paths["image"]),
            depth,
            K=None if K is None else K.copy(),
            pose_c2w=entry.meta.get("pose"),
            sequence=entry.meta.get("sequence"),
            image_path=str(entry.paths["image"]),
            extra={"timestamp": entry.meta["timestamp"]} if "timestamp" in entry.meta else {},
        )


def _is_frame_folder(folder: Path) -> bool:
    return (folder / "poses.txt").is_file() and (folder / "rgb").is_dir() and (folder / "depth").is_dir()


def _is_sequence(folder: Path) -> bool:
    return _is_frame_folder(folder) or ((folder / "rgb.txt").is_file() and (folder / "depth.txt").is_file())


def _number(info: dict[str, object], key: str, seq: Path) -> float:
    value = info.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise DatasetError(f"tum: {seq / 'intrinsics.json'}: {key} must be a number, got {value!r}")
    return float(value)


def _read_json(path: Path) -> dict[str, object]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object with fx, fy, cx, cy")
    return data


# ------------------------------------------------------------------ SUN RGB-D
class SunRGBDDataset(DepthDataset):
    """SUN RGB-D.

    Layout (searched recursively; one folder per frame, as in SUNRGBD/<sensor>/.../<frame>/):

        <frame>/image/<name>.jpg
        <frame>/depth/<name>.png        raw depth (option filled=true: depth_bfx/, the in-painted one)
        <frame>/intrinsics.txt          optional 3x3 K (row-major)

    Units: 16-bit PNG with the bits rotated, mm = ((v >> 3) | (v << 13)) & 0xFFFF, metres = mm / 1000,
    0 = unknown. (The SUN RGB-D toolbox additionally clips at 8 m; use a protocol cap for that.)

    Fallback: flat pairs `<name>_color.jpg` + `<name>_depth.png` (single exported frames).
    """

    name = "sun-rgbd"
    default_protocol = "sun-rgbd"

    def _index(self) -> list[Entry]:
        depth_sub = "depth_bfx" if self.option("filled", False, bool) else "depth"
        entries = []
        for image_dir in sorted(p for p in self.root.rglob("image") if p.is_dir()):
            frame = image_dir.parent
            images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
            depths = sorted((frame / depth_sub).glob("*.png")) if (frame / depth_sub).is_dir() else []
            if not images or not depths:
                continue
            paths = {"image": images[0], "depth": depths[0]}
            if (frame / "intrinsics.txt").is_file():
                paths["intrinsics"] = frame / "intrinsics.txt"
            name = frame.relative_to(self.root) if frame != self.root else Path(frame.name)
            entries.append(Entry(safe_name(str(name)), paths))
        if entries:
            return entries
        return [
            Entry(safe_name(str(img.relative_to(self.root).with_suffix(""))), {"image": img, "depth": dep})
            for img, dep in find_pairs(self.root)
            if dep.suffix.lower() == ".png"
        ]

    def load(self, entry: Entry) -> Sample:
        depth = decode_sun_depth(read_png_uint(entry.paths["depth"]))
        K = None
        if "intrinsics" in entry.paths:
            values = np.array(entry.paths["intrinsics"].read_text().split(), dtype=np.float64)
            if values.size != 9:
                raise DatasetError(f"{entry.paths['intrinsics']}: expected 9 numbers (3x3 K)")
            K = values.reshape(3, 3)
        return Sample(entry.name, read_rgb(entry.paths["image"]), depth, K=K, image_path=str(entry.paths["image"]))
