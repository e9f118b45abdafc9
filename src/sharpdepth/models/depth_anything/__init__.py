"""Depth Anything V1/V2 (DINOv2 + DPT head): the network, its key maps and its presets."""

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
