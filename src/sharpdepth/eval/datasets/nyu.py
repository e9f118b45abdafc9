"""NYU Depth V2: the labelled .mat file, or the extracted Eigen test split.

Layout A, the official labelled release (`root` holds):

    nyu_depth_v2_labeled.mat   MATLAB v7.3 (= HDF5): `images` 1449x3x640x480 uint8,
                               `depths` 1449x640x480 float32 metres (in-painted),
                               `rawDepths` (raw sensor, 0 = unknown)
    splits.mat                 optional, MATLAB v5: `testNdxs` (654 test images, 1-based)

Reading the .mat needs h5py (`pip install h5py`). Option `split`: "test" (needs
splits.mat; the 654-image Eigen test split every paper uses) or "all" (1449 images);
`depth_key`: "depths" (default) or "rawDepths".

Layout B, the extracted PNG test split (as produced by the BTS / Marigold extraction
scripts):

    <root>/<scene>/rgb_00045.jpg (or .png)
    <root>/<scene>/sync_depth_00045.png   (or depth_00045.png) uint16 millimetres, 0 = unknown

Both give 480x640 images; the Eigen crop is applied by the protocol ("nyu-eigen"), not
here. Intrinsics are the NYU toolbox's RGB camera (fx 518.86, fy 519.47, cx 325.58,
cy 253.74 px).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...errors import DatasetError, OptionError
from .base import DepthDataset, Entry, Sample, find_image, intrinsics, read_png_uint, read_rgb, safe_name

NYU_K = intrinsics(518.8579, 519.4696, 325.5824, 253.7362)
MAT_NAME = "nyu_depth_v2_labeled.mat"


def _h5py():
    try:
        import h5py
    except ImportError:
        raise OptionError(
            "reading nyu_depth_v2_labeled.mat (MATLAB v7.3 = HDF5) needs h5py: pip install h5py "
            "(or use the extracted PNG test split; see docs/evaluation.md)"
        ) from None
    return h5py


def load_test_indices(path: Path) -> list[int]:
    """0-based indices of the official test split from splits.mat (`testNdxs`, 1-based)."""
    from scipy.io import loadmat

    try:
        data = loadmat(path)
    except (OSError, ValueError, NotImplementedError) as exc:
        raise DatasetError(f"{path}: cannot read splits ({exc})") from None
    if "testNdxs" not in data:
        raise DatasetError(f"{path}: no 'testNdxs' in splits file")
    return [int(i) - 1 for i in np.asarray(data["testNdxs"]).ravel()]


class NYUv2Dataset(DepthDataset):
    name = "nyuv2"
    default_protocol = "nyu-eigen"

    def _mat_path(self) -> Path | None:
        if self.root.is_file() and self.root.suffix == ".mat":
            return self.root
        candidate = self.root / MAT_NAME
        return candidate if candidate.is_file() else None

    def _index(self) -> list[Entry]:
        mat = self._mat_path()
        if mat is not None:
            return self._index_mat(mat)
        return self._index_pngs()

    def _index_mat(self, mat: Path) -> list[Entry]:
        split = self.option("split", "test")
        h5py = _h5py()
        with h5py.File(mat, "r") as f:
            count = int(f["images"].shape[0])
        if split == "all":
            indices = list(range(count))
        elif split == "test":
            splits = mat.parent / "splits.mat"
            if not splits.is_file():
                raise OptionError(
                    f"{splits} not found: it defines the 654-image test split "
                    "(or pass --option split=all to evaluate all 1449 images)"
                )
            indices = load_test_indices(splits)
        else:
            raise OptionError(f"nyuv2: split must be 'test' or 'all', got {split!r}")
        return [Entry(f"nyu_{i + 1:04d}", {"mat": mat}, {"index": i}) for i in indices if 0 <= i < count]

    def _index_pngs(self) -> list[Entry]:
        entries = []
        for rgb in sorted(self.root.rglob("rgb_*")):
            match = re.fullmatch(r"rgb_(\w+)", rgb.stem)
            if rgb.suffix.lower() not in (".jpg", ".jpeg", ".png") or match is None:
                continue
            ident = match.group(1)
            depth = next(
                (
                    rgb.with_name(f"{p}_{ident}.png")
                    for p in ("sync_depth", "depth")
                    if rgb.with_name(f"{p}_{ident}.png").is_file()
                ),
                None,
            )
            if depth is None:
                continue
            rel = rgb.relative_to(self.root).with_suffix("")
            entries.append(Entry(safe_name(str(rel)), {"image": rgb, "depth": depth}))
        return entries

    def load(self, entry: Entry) -> Sample:
        if "mat" in entry.paths:
            return self._load_mat(entry)
        depth = read_png_uint(entry.paths["depth"]).astype(np.float32) / 1000.0
        image = read_rgb(entry.paths["image"])
        return Sample(entry.name, image, depth, K=NYU_K.copy(), image_path=str(entry.paths["image"]))

    def _load_mat(self, entry: Entry) -> Sample:
        h5py = _h5py()
        key = self.option("depth_key", "depths")
        i = int(entry.meta["index"])
        with h5py.File(entry.paths["mat"], "r") as f:
            if key not in f:
                raise OptionError(f"nyuv2: {entry.paths['mat']} has no {key!r} (use depths or rawDepths)")
            image = np.asarray(f["images"][i]).transpose(2, 1, 0)  # MATLAB column-major: 3xWxH -> HxWx3
            depth = np.asarray(f[key][i], dtype=np.float32).T
        return Sample(entry.name, np.ascontiguousarray(image, dtype=np.uint8), depth, K=NYU_K.copy())


__all__ = ["NYUv2Dataset", "NYU_K", "find_image"]
