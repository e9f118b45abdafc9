"""MiDaS 3.x DPT models (ViT, hybrid, BEiT, Swin-V2 backbones): the network, its key maps and its presets.

The family package: `FAMILY` and `PRESETS` are what `sharpdepth.registry` registers; the
public names of its modules are re-exported here, so `sharpdepth.models.midas` is the import path.
"""

from __future__ import annotations

from ..backbones.beit import BeitConfig
from ..backbones.swin2 import Swin2Config  # backbone configs of the presets, named beside them
from .network import (
    ABOUT,
    DPT_BEIT_LARGE_512,
    DPT_HYBRID_384,
    DPT_LARGE_384,
    DPT_SWIN2_TINY_256,
    FAMILY,
    LICENSE,
    PRESETS,
    Interpolate,
    MidasDPT,
    MidasDPTConfig,
    MidasEncoder,
    MidasScratch,
    ProjectReadout,
    ResizeMethod,
    Transpose,
    computed_buffers,
    convert_hf,
    convert_official,
    data_config,
    drop_computed_keys,
    make_dpt_head,
    make_reassemble,
    midas_resize_hw,
    reassemble,
)

__all__ = [
    "BeitConfig",
    "Swin2Config",
    "ABOUT",
    "DPT_BEIT_LARGE_512",
    "DPT_HYBRID_384",
    "DPT_LARGE_384",
    "DPT_SWIN2_TINY_256",
    "FAMILY",
    "Interpolate",
    "LICENSE",
    "MidasDPT",
    "MidasDPTConfig",
    "MidasEncoder",
    "MidasScratch",
    "PRESETS",
    "ProjectReadout",
    "ResizeMethod",
    "Transpose",
    "computed_buffers",
    "convert_hf",
    "convert_official",
    "data_config",
    "drop_computed_keys",
    "make_dpt_head",
    "make_reassemble",
    "midas_resize_hw",
    "reassemble",
]
