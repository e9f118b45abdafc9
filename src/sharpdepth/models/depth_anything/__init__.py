"""Depth Anything V1/V2 (DINOv2 + DPT head): the network, its key maps and its presets.

The family package: `FAMILY` and `PRESETS` are what `sharpdepth.registry` registers; the
public names of its modules are re-exported here, so `sharpdepth.models.depth_anything` is the import path.
"""

from __future__ import annotations

from .network import (
    FAMILY,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PATCH,
    PRESETS,
    DepthAnything,
    DepthAnythingConfig,
    DepthAnythingScratch,
    DPTHead,
    Quad,
    data_config,
    dinov2_config,
    make_config,
    network_size,
)

__all__ = [
    "DPTHead",
    "DepthAnything",
    "DepthAnythingConfig",
    "DepthAnythingScratch",
    "FAMILY",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PATCH",
    "PRESETS",
    "Quad",
    "data_config",
    "dinov2_config",
    "make_config",
    "network_size",
]
