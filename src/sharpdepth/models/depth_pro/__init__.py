"""Depth Pro (Apple, 2024): the network, its official processing, its key maps and its presets."""

from .family import (
    FAMILY,
    INVERSE_DEPTH_RANGE,
    PARAMS_MILLIONS,
    PRESETS,
    DepthProProcessor,
    data_config,
)
from .network import (
    DEPTH_PRO,
    DEPTH_PRO_TINY,
    DepthPro,
    DepthProConfig,
    DepthProEncoder,
    EncoderMaps,
    FeatureFusionBlock2d,
    FOVNetwork,
    MultiresConvDecoder,
    PyramidLevel,
    ResidualBlock,
)

__all__ = [
    "DEPTH_PRO",
    "DEPTH_PRO_TINY",
    "DepthPro",
    "DepthProConfig",
    "DepthProEncoder",
    "DepthProProcessor",
    "EncoderMaps",
    "FAMILY",
    "FOVNetwork",
    "FeatureFusionBlock2d",
    "INVERSE_DEPTH_RANGE",
    "MultiresConvDecoder",
    "PARAMS_MILLIONS",
    "PRESETS",
    "PyramidLevel",
    "ResidualBlock",
    "data_config",
]
