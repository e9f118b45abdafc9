"""MiDaS v2.1 small (EfficientNet-Lite3): the network and its presets.

The family package: `FAMILY` and `PRESETS` are what `sharpdepth.registry` registers; the
public names of its modules are re-exported here, so `sharpdepth.models.midas_small` is the import path.
"""

from __future__ import annotations

from .network import (
    FAMILY,
    MIDAS_V21_SMALL_256,
    PRESETS,
    EfficientNetEncoder,
    Interpolate,
    MidasNetSmall,
    MidasSmallConfig,
    MidasSmallScratch,
    data_config,
    make_head,
)

__all__ = [
    "EfficientNetEncoder",
    "FAMILY",
    "Interpolate",
    "MIDAS_V21_SMALL_256",
    "MidasNetSmall",
    "MidasSmallConfig",
    "MidasSmallScratch",
    "PRESETS",
    "data_config",
    "make_head",
]
