"""Dataset loaders for the user's local copies (nothing is downloaded).

`open_dataset(name, root, **options)` returns a `DepthDataset`; each loader's docstring
(and docs/evaluation.md) gives the folder layout and units it expects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import OptionError
from .base import DepthDataset, Entry, Sample
from .folder import FolderDataset
from .kitti import KittiDataset
from .middlebury import MiddleburyDataset
from .nyu import NYUv2Dataset
from .others import DiodeDataset, ETH3DDataset, IBimsDataset, SintelDataset
from .rgbd import SunRGBDDataset, TumDataset

DATASETS: dict[str, type[DepthDataset]] = {
    cls.name: cls
    for cls in (
        MiddleburyDataset,
        NYUv2Dataset,
        KittiDataset,
        ETH3DDataset,
        SintelDataset,
        IBimsDataset,
        DiodeDataset,
        TumDataset,
        SunRGBDDataset,
        FolderDataset,
    )
}
ALIASES = {"nyu": "nyuv2", "sun": "sun-rgbd", "sunrgbd": "sun-rgbd", "ibims1": "ibims", "ibims-1": "ibims"}


def dataset_class(name: str) -> type[DepthDataset]:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise OptionError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return DATASETS[key]


def open_dataset(name: str, root: str | Path, **options: Any) -> DepthDataset:
    return dataset_class(name)(root, **options)


__all__ = ["DATASETS", "DepthDataset", "Entry", "Sample", "dataset_class", "open_dataset"]
