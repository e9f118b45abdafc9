"""KITTI, Eigen test split with the annotated (accumulated LiDAR) depth maps.

Layout (the BTS / AdaBins / ZoeDepth convention):

    <root>/2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png    raw RGB
    <gt_root>/[train|val/]2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png
    <filelist>   lines "<image path rel. to root> <depth path rel. to gt_root or None> <focal px>"
                 e.g. BTS's eigen_test_files_with_gt.txt (652 of 697 images have GT)

Options: `filelist` (default `<root>/eigen_test_files_with_gt.txt`), `gt_root` (default
`root`; `train/` and `val/` sub-folders are searched), `kb_crop` (crop image and GT to the
352x1216 KITTI benchmark window, bottom-centred, as BTS `--do_kb_crop`).

Units: depth PNG uint16, metres = value / 256, 0 = no LiDAR point (sparse GT).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DatasetError, OptionError
from .base import DepthDataset, Entry, Sample, read_png_uint, read_rgb, safe_name

KB_HEIGHT, KB_WIDTH = 352, 1216


def kb_crop_window(height: int, width: int) -> tuple[int, int]:
    """(top, left) of the KITTI benchmark crop: bottom rows, centred columns."""
    return height - KB_HEIGHT, (width - KB_WIDTH) // 2


class KittiDataset(DepthDataset):
    name = "kitti"
    default_protocol = "kitti-garg"

    def _resolve_gt(self, gt_root: Path, rel: str) -> Path | None:
        for base in (gt_root, gt_root / "train", gt_root / "val"):
            candidate = base / rel
            if candidate.is_file():
                return candidate
        return None

    def _index(self) -> list[Entry]:
        filelist = Path(self.option("filelist", self.root / "eigen_test_files_with_gt.txt"))
        if not filelist.is_file():
            raise OptionError(
                f"kitti: file list {filelist} not found; pass --option filelist=PATH "
                "(lines: image_path depth_path focal)"
            )
        gt_root = Path(self.option("gt_root", self.root))
        entries = []
        for lineno, line in enumerate(filelist.read_text().splitlines(), start=1):
            parts = line.split()
            if not parts or line.lstrip().startswith("#"):
                continue
            if len(parts) < 2:
                raise DatasetError(f"{filelist}:{lineno}: expected 'image depth [focal]'")
            if parts[1] == "None":
                continue  # no ground truth for this frame (the usual 45 of the 697)
            image = self.root / parts[0]
            depth = self._resolve_gt(gt_root, parts[1])
            if depth is None or not image.is_file():
                continue
            focal = float(parts[2]) if len(parts) > 2 else None
            name = safe_name(parts[0].replace("/image_02/data/", "_").rsplit(".", 1)[0])
            entries.append(Entry(name, {"image": image, "depth": depth}, {"focal": focal}))
        return entries

    def load(self, entry: Entry) -> Sample:
        image = read_rgb(entry.paths["image"])
        depth = read_png_uint(entry.paths["depth"]).astype(np.float32) / 256.0
        if image.shape[:2] != depth.shape:
            raise DatasetError(f"{entry.name}: image {image.shape[:2]} and depth {depth.shape} differ in size")
        extra = {}
        if self.option("kb_crop", False, bool):
            top, left = kb_crop_window(*depth.shape)
            image = image[top : top + KB_HEIGHT, left : left + KB_WIDTH]
            depth = depth[top : top + KB_HEIGHT, left : left + KB_WIDTH]
            extra["kb_crop"] = (top, left)
        focal = entry.meta.get("focal")
        return Sample(
            entry.name,
            np.ascontiguousarray(image),
            depth,
            focal_px=focal,
            image_path=str(entry.paths["image"]),
            extra=extra,
        )
