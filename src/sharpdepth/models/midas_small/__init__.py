"""MiDaS v2.1 small (EfficientNet-Lite3): the network and its presets."""

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
