"""SHARP's network (apple/ml-sharp @ 1eaa046): Depth Pro's encoder/decoder plus a Gaussian decoder.

Module names follow the official state dict, so a released `sharp_*.pt` loads strictly:

* `monodepth_model.monodepth_predictor`: `sharpdepth.models.depth_pro.DepthPro` itself, built
  with two output channels in its last 1x1 convolution (two disparity layers) and without the
  FOV head. Its encoder's five maps are also the Gaussian decoder's input.
* `feature_model`: a second Depth Pro `MultiresConvDecoder` (narrower) over those five maps,
  fused at 768x768 with a stride-2 2x2 convolution of (image, normalised disparity), then two
  heads of pre-activation residual blocks (texture, geometry).
* `prediction_head`: two 1x1 convolutions giving 14 deltas per Gaussian per layer.

The base Gaussians before the deltas (`compose.initial_gaussians`) and the parameterisation
that adds the deltas (`compose.compose_gaussians`) have no weights.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import overload

import torch
from torch import nn

from ..depth_pro import DEPTH_PRO, DEPTH_PRO_TINY, DepthPro, DepthProConfig, FeatureFusionBlock2d, MultiresConvDecoder
from .compose import DELTA_CHANNELS, NdcGaussians, compose_gaussians, initial_gaussians


@dataclass(frozen=True)
class SharpConfig:
    """Architecture of a SHARP predictor; the defaults are the released model."""

    depth_pro: DepthProConfig = replace(DEPTH_PRO, last_dims=(32, 2), use_fov_head=False)
    """The monodepth network: Depth Pro with two disparity layers and no FOV head."""
    gaussian_features: int = 128
    """Width of the Gaussian decoder (its multi-resolution decoder, fusion and heads)."""
    head_features: int = 32
    """Output width of the texture and geometry heads (input of the prediction head)."""
    norm_groups: int = 8
    num_layers: int = 2
    """Gaussian layers per pixel cell (one per disparity layer)."""
    stride: int = 2
    """Gaussians are predicted on a grid `stride` times coarser than the network input."""
    vit_classes: int = 21841
    """Width of the (never called) ViT classifier heads the checkpoint keeps."""

    def __post_init__(self) -> None:
        if self.depth_pro.use_fov_head or self.depth_pro.last_dims[1] != self.num_layers:
            raise ValueError("SHARP's monodepth is Depth Pro without FOV head, one disparity map per layer")
        if self.gaussian_features % self.norm_groups or (self.gaussian_features // 2) % self.norm_groups:
            raise ValueError("the Gaussian decoder's widths must divide into its norm groups")

    @property
    def img_size(self) -> int:
        return self.depth_pro.img_size

    @property
    def grid_size(self) -> int:
        """Gaussians per side and layer (768 for the released model)."""
        return self.img_size // self.stride

    @property
    def num_gaussians(self) -> int:
        return self.num_layers * self.grid_size**2


SHARP = SharpConfig()
"""The released model (`PredictorParams()`): ViT-L/16 Depth Pro network, 128-wide Gaussian decoder."""

SHARP_TINY = SharpConfig(
    depth_pro=replace(DEPTH_PRO_TINY, last_dims=(32, 2), use_fov_head=False),
    gaussian_features=32,
)
"""The tiny parity fixture: Depth Pro's tiny widths (ViT 64 x 4), 32-wide decoders."""


class PreActResidual(nn.Module):
    """x + conv(relu(norm(conv(relu(norm(x)))))), the official `residual_block_2d` with group norm.
    `residual` keeps the official Sequential indices (0 norm, 2 conv, 3 norm, 5 conv)."""

    def __init__(self, features: int, hidden: int, groups: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.GroupNorm(groups, features),
            nn.ReLU(),
            nn.Conv2d(features, hidden, 3, padding=1),
            nn.GroupNorm(groups, hidden),
            nn.ReLU(),
            nn.Conv2d(hidden, features, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual(x)


def _feature_head(features: int, out: int, groups: int) -> nn.Sequential:
    """Two residual blocks, then ReLU, 1x1 to `out`, ReLU (official `_create_head`)."""
    return nn.Sequential(
        PreActResidual(features, features // 2, groups),
        PreActResidual(features, features // 2, groups),
        nn.ReLU(),
        nn.Conv2d(features, out, 1),
        nn.ReLU(),
    )


class SkipConv(nn.Module):
    """Official `SkipConvBackbone` ("skip_conv_kernel2"): one stride-s s x s convolution of the
    5-channel (image, disparity) input down to the Gaussian grid."""

    def __init__(self, dim_in: int, dim_out: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim_in, dim_out, kernel_size=stride, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class GaussianDecoder(nn.Module):
    """Official `GaussianDensePredictionTransformer`: (texture, geometry) features on the Gaussian grid."""

    def __init__(self, cfg: SharpConfig) -> None:
        super().__init__()
        dp = cfg.depth_pro
        f = cfg.gaussian_features
        self.decoder = MultiresConvDecoder([dp.decoder_features, *dp.encoder_feature_dims], f)
        self.image_encoder = SkipConv(3 + 2, f, cfg.stride)
        self.fusion = FeatureFusionBlock2d(f, deconv=False)
        self.texture_head = _feature_head(f, cfg.head_features, cfg.norm_groups)
        self.geometry_head = _feature_head(f, cfg.head_features, cfg.norm_groups)

    def forward(self, feature_input: torch.Tensor, encodings: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        features, _ = self.decoder(encodings)
        features = self.fusion(features, self.image_encoder(feature_input))
        return self.texture_head(features), self.geometry_head(features)


class PredictionHead(nn.Module):
    """Official `DirectPredictionHead`: 1x1 convolutions to the 14 deltas of each layer.

    The convolutions' channels are channel-major (`c * num_layers + layer`): geometry gives
    the 3 mean deltas, texture the 11 others (3 scale, 4 quaternion, 3 colour, 1 opacity)."""

    def __init__(self, features: int, num_layers: int) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.geometry_prediction_head = nn.Conv2d(features, 3 * num_layers, 1)
        self.texture_prediction_head = nn.Conv2d(features, (DELTA_CHANNELS - 3) * num_layers, 1)

    def forward(self, texture: torch.Tensor, geometry: torch.Tensor) -> torch.Tensor:
        """(N, 14, num_layers, h, w) deltas."""
        geo = self.geometry_prediction_head(geometry).unflatten(1, (3, self.num_layers))
        tex = self.texture_prediction_head(texture).unflatten(1, (DELTA_CHANNELS - 3, self.num_layers))
        return torch.cat([geo, tex], dim=1)


class MonodepthModel(nn.Module):
    """Holder that gives Depth Pro the official prefix `monodepth_model.monodepth_predictor`."""

    def __init__(self, cfg: DepthProConfig) -> None:
        super().__init__()
        self.monodepth_predictor = DepthPro(cfg)


@dataclass
class SharpOutput:
    """One forward pass: the raw outputs the parity fixtures compare, and the Gaussians."""

    disparity: torch.Tensor
    """(N, layers, S, S) Depth Pro head output (canonical inverse depth per layer, after ReLU)."""
    delta: torch.Tensor
    """(N, 14, layers, S/stride, S/stride) raw prediction-head output."""
    gaussians: NdcGaussians
    """Gaussians before unprojection, flattened (layer, row, column)."""


INVERSE_DEPTH_RANGE = (1e-4, 1e4)
"""Official clamp of the disparity before it becomes metric depth."""


class SharpNetwork(nn.Module):
    """(N, 3, S, S) image in [0, 1] and per-image f_px / W -> `SharpOutput` (official `RGBGaussianPredictor`)."""

    def __init__(self, cfg: SharpConfig = SHARP) -> None:
        super().__init__()
        self.cfg = cfg
        self.feature_model = GaussianDecoder(cfg)
        self.monodepth_model = MonodepthModel(cfg.depth_pro)
        self.prediction_head = PredictionHead(cfg.head_features, cfg.num_layers)

    @property
    def depth_pro(self) -> DepthPro:
        return self.monodepth_model.monodepth_predictor

    def monodepth(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Depth Pro on the [0, 1] image mapped to [-1, 1] (Depth Pro's normalisation):
        (disparity layers (N, layers, S, S), the encoder's five maps)."""
        dp = self.depth_pro
        encodings = dp.encoder(image * 2.0 - 1.0)
        features, _ = dp.decoder(encodings)
        return dp.head(features), encodings

    @overload
    def forward(self, image: torch.Tensor, disparity_factor: None = None) -> torch.Tensor: ...
    @overload
    def forward(self, image: torch.Tensor, disparity_factor: torch.Tensor) -> SharpOutput: ...
    def forward(self, image: torch.Tensor, disparity_factor: torch.Tensor | None = None) -> SharpOutput | torch.Tensor:
        """Gaussians for images taken at f_px / W = `disparity_factor`; without it, only the depth
        branch's disparity layers (N, layers, S, S), so that the engine's runner (its fast paths and
        precision guard) serves `predict` with one plain call, as for every other family."""
        size = self.cfg.img_size
        if image.ndim != 4 or image.shape[1] != 3 or image.shape[-2:] != (size, size):
            raise ValueError(f"SHARP takes (N, 3, {size}, {size}) images in [0, 1], got {tuple(image.shape)}")
        if disparity_factor is None:
            dp = self.depth_pro
            features, _ = dp.decoder(dp.encoder(image * 2.0 - 1.0))
            return dp.head(features)
        disparity, encodings = self.monodepth(image)
        depth = disparity_factor[:, None, None, None] / disparity.clamp(*INVERSE_DEPTH_RANGE)
        base = initial_gaussians(image, depth, self.cfg.stride)
        texture, geometry = self.feature_model(base.feature_input, encodings)
        del encodings
        delta = self.prediction_head(texture, geometry)
        return SharpOutput(disparity, delta, compose_gaussians(delta, base))
