"""Loaders for ETH3D, Sintel, iBims-1 and DIODE (layouts and units in each class docstring)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DatasetError
from .base import (
    DepthDataset,
    Entry,
    Sample,
    find_image,
    intrinsics,
    read_dpt,
    read_mask,
    read_png_uint,
    read_rgb,
    safe_name,
)


# ------------------------------------------------------------------ ETH3D
def quat_to_rot(qw: float, qx: float, qy: float, qz: float) -> np.ndarray:
    q = np.array([qw, qx, qy, qz], dtype=np.float64)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def read_colmap_cameras(scene: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{image file name: (K, pose_c2w)} from COLMAP text files, if the scene has them."""
    calib = scene / "dslr_calibration_undistorted"
    cams_txt, imgs_txt = calib / "cameras.txt", calib / "images.txt"
    if not (cams_txt.is_file() and imgs_txt.is_file()):
        return {}
    cameras: dict[str, np.ndarray] = {}
    for line in cams_txt.read_text().splitlines():
        parts = line.split()
        if not parts or parts[0].startswith("#") or parts[1] != "PINHOLE":
            continue
        fx, fy, cx, cy = (float(v) for v in parts[4:8])
        cameras[parts[0]] = intrinsics(fx, fy, cx, cy)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    lines = [ln for ln in imgs_txt.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    for line in lines[::2]:  # every image line is followed by a 2D-points line
        parts = line.split()
        if len(parts) < 10 or parts[8] not in cameras:
            continue
        R = quat_to_rot(*(float(v) for v in parts[1:5]))  # world -> camera
        t = np.array([float(v) for v in parts[5:8]])
        c2w = np.eye(4)
        c2w[:3, :3] = R.T
        c2w[:3, 3] = -R.T @ t
        out[Path(parts[9]).name] = (cameras[parts[8]], c2w)
    return out


def _eth3d_missing(scene: Path, image_dir: Path, missing: list[str]) -> str:
    """Why a scene without its undistorted images is refused rather than read from dslr_images/."""
    where = (
        "is missing"
        if not image_dir.is_dir()
        else f"lacks {missing[0]}" + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
    )
    return (
        f"eth3d: {scene.name}: images/dslr_images_undistorted/ {where}; the ground truth belongs to the "
        "undistorted DSLR images (the distorted images/dslr_images/ have the same size but would be "
        "silently misaligned) - unpack the scene's undistorted JPG archive"
    )


class ETH3DDataset(DepthDataset):
    """ETH3D high-resolution multi-view training scenes (DSLR).

    Layout:

        <root>/<scene>/images/dslr_images_undistorted/DSC_0286.JPG   (required: not images/dslr_images/)
        <root>/<scene>/ground_truth_depth/dslr_images/DSC_0286.JPG   depth: raw float32, no header,
                                                                      row-major, image size, inf = unknown
        <root>/<scene>/dslr_calibration_undistorted/{cameras,images}.txt   optional COLMAP intrinsics/poses

    Units: metres. The depth file keeps the image's name (with its .JPG suffix). The depth
    maps are rendered for the undistorted images; a scene whose undistorted image is missing
    is refused (the distorted ones are the same size, so they would be scored misaligned).
    """

    name = "eth3d"
    default_protocol = "eth3d"

    def _index(self) -> list[Entry]:
        entries: list[Entry] = []
        scenes = [self.root] if (self.root / "ground_truth_depth").is_dir() else sorted(self.root.iterdir())
        for scene in scenes:
            depth_dir = scene / "ground_truth_depth" / "dslr_images"
            if not depth_dir.is_dir():
                continue
            image_dir = scene / "images" / "dslr_images_undistorted"
            depths = sorted(p for p in depth_dir.iterdir() if p.is_file())
            missing = [d.name for d in depths if not (image_dir / d.name).is_file()]
            if missing:
                raise DatasetError(_eth3d_missing(scene, image_dir, missing))
            entries.extend(
                Entry(safe_name(f"{scene.name}/{d.stem}"), {"image": image_dir / d.name, "depth": d}, {"scene": scene})
                for d in depths
            )
        return entries

    def load(self, entry: Entry) -> Sample:
        image = read_rgb(entry.paths["image"])
        h, w = image.shape[:2]
        raw = np.fromfile(entry.paths["depth"], dtype="<f4")
        if raw.size != h * w:
            raise DatasetError(f"{entry.paths['depth']}: {raw.size} values for a {w}x{h} image")
        depth = raw.reshape(h, w)
        cams = read_colmap_cameras(entry.meta["scene"])
        K, pose = cams.get(entry.paths["image"].name, (None, None))
        return Sample(entry.name, image, depth, K=K, pose_c2w=pose, image_path=str(entry.paths["image"]))


# ------------------------------------------------------------------ Sintel
CAM_TAG = 202021.25


def read_sintel_cam(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Sintel .cam: float32 tag, 3x3 intrinsics M and 3x4 world-to-camera N (float64)."""
    with open(path, "rb") as fh:
        tag = np.fromfile(fh, dtype="<f4", count=1)
        if tag.size != 1 or tag[0] != np.float32(CAM_TAG):
            raise DatasetError(f"{path}: not a Sintel .cam file")
        M = np.fromfile(fh, dtype="<f8", count=9).reshape(3, 3)
        N = np.fromfile(fh, dtype="<f8", count=12).reshape(3, 4)
    w2c = np.eye(4)
    w2c[:3] = N
    return M, np.linalg.inv(w2c)


class SintelDataset(DepthDataset):
    """MPI Sintel training set (video; frames of one scene form a sequence).

    Layout (`root` is the folder holding `training/`, or `training/` itself):

        training/final/<scene>/frame_0001.png        (option pass=clean for training/clean)
        training/depth/<scene>/frame_0001.dpt        float32 depth, tag 202021.25 + width + height
        training/camdata_left/<scene>/frame_0001.cam optional intrinsics + extrinsics

    Units: Sintel scene units, treated as metres by every paper. Poses make TAE possible.
    """

    name = "sintel"
    default_protocol = "sintel"

    def _index(self) -> list[Entry]:
        base = self.root / "training" if (self.root / "training").is_dir() else self.root
        image_root = base / self.option("pass", "final")
        depth_root = base / "depth"
        if not depth_root.is_dir():
            return []
        entries = []
        for scene in sorted(p for p in depth_root.iterdir() if p.is_dir()):
            for depth in sorted(scene.glob("*.dpt")):
                image = find_image(image_root / scene.name, depth.stem)
                if image is None:
                    continue
                paths = {"image": image, "depth": depth}
                cam = base / "camdata_left" / scene.name / f"{depth.stem}.cam"
                if cam.is_file():
                    paths["cam"] = cam
                entries.append(Entry(f"{scene.name}__{depth.stem}", paths, {"sequence": scene.name}))
        return entries

    def load(self, entry: Entry) -> Sample:
        K = pose = None
        if "cam" in entry.paths:
            K, pose = read_sintel_cam(entry.paths["cam"])
        return Sample(
            entry.name,
            read_rgb(entry.paths["image"]),
            read_dpt(entry.paths["depth"]),
            K=K,
            pose_c2w=pose,
            sequence=entry.meta["sequence"],
            image_path=str(entry.paths["image"]),
        )


# ------------------------------------------------------------------ iBims-1
class IBimsDataset(DepthDataset):
    """iBims-1 (core, raw PNG release).

    Layout:

        <root>/imagelist.txt                names, one per line
        <root>/rgb/<name>.png
        <root>/depth/<name>.png             uint16, metres = value * 50 / 65535
        <root>/mask_invalid/<name>.png      optional, non-zero = valid
        <root>/mask_transp/<name>.png       optional, non-zero = not transparent (valid)
        <root>/calib/<name>.txt             optional, "fx,fy,cx,cy"

    Units: metres (16-bit spread over 0..50 m).
    """

    name = "ibims"
    default_protocol = "ibims"

    def _index(self) -> list[Entry]:
        listing = self.root / "imagelist.txt"
        if listing.is_file():
            names = listing.read_text().split()
        else:
            names = sorted(p.stem for p in (self.root / "depth").glob("*.png"))
        entries = []
        for name in names:
            paths = {"image": self.root / "rgb" / f"{name}.png", "depth": self.root / "depth" / f"{name}.png"}
            for key in ("mask_invalid", "mask_transp"):
                if (self.root / key / f"{name}.png").is_file():
                    paths[key] = self.root / key / f"{name}.png"
            if (self.root / "calib" / f"{name}.txt").is_file():
                paths["calib"] = self.root / "calib" / f"{name}.txt"
            if paths["image"].is_file() and paths["depth"].is_file():
                entries.append(Entry(safe_name(name), paths))
        return entries

    def load(self, entry: Entry) -> Sample:
        depth = read_png_uint(entry.paths["depth"]).astype(np.float64) * 50.0 / 65535.0
        valid = np.ones(depth.shape, dtype=bool)
        for key in ("mask_invalid", "mask_transp"):
            if key in entry.paths:
                valid &= read_mask(entry.paths[key])
        K = None
        if "calib" in entry.paths:
            values = [float(v) for v in entry.paths["calib"].read_text().replace(",", " ").split()]
            if len(values) >= 4:
                K = intrinsics(*values[:4])
        return Sample(
            entry.name, read_rgb(entry.paths["image"]), depth, valid=valid, K=K, image_path=str(entry.paths["image"])
        )


# ------------------------------------------------------------------ DIODE
DIODE_K = intrinsics(886.81, 927.06, 512.0, 384.0)


class DiodeDataset(DepthDataset):
    """DIODE (val or train split, indoors and outdoor scans).

    Layout:

        <root>/<split>/<indoors|outdoor>/scene_XXXXX/scan_XXXXX/<name>.png
        .../<name>_depth.npy        float32 HxWx1 metres
        .../<name>_depth_mask.npy   HxW, non-zero = valid

    Option `subset`: "indoors", "outdoor" or "all" (default). Units: metres. Intrinsics:
    the dataset's published pinhole model (fx 886.81, fy 927.06, cx 512, cy 384 at 1024x768).
    """

    name = "diode"
    default_protocol = "diode"

    def _index(self) -> list[Entry]:
        subset = self.option("subset", "all")
        entries = []
        for depth in sorted(self.root.rglob("*_depth.npy")):
            parts = depth.relative_to(self.root).parts
            if subset != "all" and subset not in parts:
                continue
            stem = depth.name[: -len("_depth.npy")]
            image = find_image(depth.parent, stem)
            if image is None:
                continue
            paths = {"image": image, "depth": depth}
            mask = depth.with_name(f"{stem}_depth_mask.npy")
            if mask.is_file():
                paths["mask"] = mask
            entries.append(Entry(safe_name(str(depth.relative_to(self.root).parent / stem)), paths))
        return entries

    def load(self, entry: Entry) -> Sample:
        depth = np.squeeze(np.load(entry.paths["depth"], allow_pickle=False)).astype(np.float32)
        valid = None
        if "mask" in entry.paths:
            valid = np.squeeze(np.load(entry.paths["mask"], allow_pickle=False)) > 0
        image = read_rgb(entry.paths["image"])
        K = DIODE_K.copy() if image.shape[:2] == (768, 1024) else None
        return Sample(entry.name, image, depth, valid=valid, K=K, image_path=str(entry.paths["image"]))
