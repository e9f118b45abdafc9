"""MiDaS v2.1 small (`midas_v21_small_256`): EfficientNet-Lite3 encoder + DPT-style fusion.

Re-implements the official `MidasNet_small` (isl-org/MiDaS, `midas/midas_net_custom.py`)
without timm/geffnet: the encoder is our `backbones.efficientnet_lite` regrouped into the
official `pretrained.layer1..4`, the decoder is the shared `dpt.Scratch` (`expand=True`:
level widths 64/128/256/512, each fusion block but the finest halves its width), plus the
official `scratch.output_conv` head. State-dict keys are the official ones, so the official
checkpoint (`midas_v21_small_256.pt`, 482 entries incl. `num_batches_tracked`) loads with
`strict=True`.

Network contract: `MidasNetSmall(cfg)(x)` takes (N, 3, h, w) *normalised* input (h, w
multiples of 32 in practice) and returns (N, h, w) relative inverse depth ("disparity",
non-negative), exactly the official squeezed `forward`. `forward(x, pre_relu=True)` returns
the (N, 1, h, w) output of the last 1x1 conv before the final ReLU.

Pre-processing (official `load_model` for this model type; `data_config` states it as the
family's `DataConfig`, run by the shared `models.processing.MapProcessor`):

* image: uint8 RGB -> float64 in [0, 1] (`/ 255.0`);
* resize (official `resize_method="upper_bound"`, `keep_aspect_ratio=True` — the only rule this
  model uses, `models.processing.official_resize_hw`; `multiple_of=32`, `net_size=256` for both
  net_w and net_h): scale = min(256 / h, 256 / w) applied to both
  sides, each side then `np.round(side * scale / 32) * 32` (numpy round-half-to-even), and
  if that exceeds 256, `floor` instead. E.g. 480x640 -> 192x256, so the *long* side is 256
  and the short one is smaller: the network is not fed a square. `net_input_hw` computes it;
  the official `resize_target=None` (only the image is resized);
* interpolation: `cv2.resize(..., interpolation=cv2.INTER_CUBIC)` on the float64 image
  (cv2 cubic). For this down-scale torch's
  `F.interpolate(mode="bicubic", align_corners=False, antialias=False)` on float64 gave a
  bit-identical net input in the fixture's reference self-check (both are a=-0.75 cubic
  with half-pixel centres and no antialiasing);
* normalise `(x - mean) / std` in float64 with ImageNet `mean`/`std`, HWC -> CHW, then
  `astype(float32)`;
* output: `F.interpolate(pred.unsqueeze(1), size=(H, W), mode="bicubic",
  align_corners=False)` in float32 back to the image size. Bicubic overshoot can make a few output pixels slightly
  negative; the official pipeline leaves them so.

The output is relative disparity (affine-invariant inverse depth), not metric depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ...family import DataConfig, Family, ModelSpec, OnnxExport, Training, official_layout
from ...result import OutputKind
from ..backbones.efficientnet_lite import EFFICIENTNET_LITE3, EfficientNetLite, EfficientNetLiteConfig
from ..dpt import Scratch
from ..features import Intermediates, stage_outputs
from ..processing import IMAGENET_MEAN, IMAGENET_STD, MapProcessor, midas_data, official_resize_hw


@dataclass(frozen=True)
class MidasSmallConfig:
    """Architecture and pre/post-processing settings of MiDaS v2.1 small."""

    backbone: EfficientNetLiteConfig = EFFICIENTNET_LITE3
    stage_groups: tuple[tuple[int, int], ...] = ((0, 2), (2, 3), (3, 5), (5, 7))
    """EfficientNet stages [start, stop) forming `pretrained.layer1..4` (layer1 also holds the stem)."""
    encoder_channels: tuple[int, int, int, int] = (32, 48, 136, 384)
    """Channels of `pretrained.layer1..4` outputs; must match the backbone's stage widths."""
    features: int = 64
    expand: bool = True
    use_bn: bool = False
    align_corners: bool = True
    """Bilinear x2 upsampling inside the fusion blocks (the head's x2 uses align_corners=False)."""
    non_negative: bool = True
    # --- pre-processing (official `midas.model_loader.load_model`) ---
    net_size: int = 256
    """net_w == net_h; an upper bound on the resized image's sides (keep-aspect 'upper_bound' resize)."""
    multiple_of: int = 32
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        if len(self.stage_groups) != 4:
            raise ValueError(f"MiDaS small regroups the stages into 4 levels, got {len(self.stage_groups)} groups")
        widths = self.backbone.stage_channels()
        derived = tuple(widths[stop - 1] for _, stop in self.stage_groups)
        if derived != tuple(self.encoder_channels):
            raise ValueError(f"encoder_channels {self.encoder_channels} != backbone stage widths {derived}")

    def net_input_hw(self, height: int, width: int) -> tuple[int, int]:
        """Network input size for an image of height x width (official `Resize.get_size`).

        Faithful to the official code, a side can round to 0 for aspect ratios beyond ~16:1
        (e.g. 100x3000 -> (0, 256)); callers must reject or pad such images.
        """
        return official_resize_hw(height, width, self.net_size, self.net_size, "upper_bound", self.multiple_of)


MIDAS_V21_SMALL_256 = MidasSmallConfig()


class EfficientNetEncoder(nn.Module):
    """`pretrained`: EfficientNet stem + stages regrouped into the four MiDaS levels.

    Official `_make_efficientnet_backbone`: layer1 = Sequential(conv_stem, bn1, act1,
    blocks[0], blocks[1]), layer2 = blocks[2], layer3 = blocks[3:5], layer4 = blocks[5:7]
    (strides 4, 8, 16, 32).
    """

    def __init__(self, cfg: MidasSmallConfig) -> None:
        super().__init__()
        net = EfficientNetLite(cfg.backbone)
        stages = list(net.blocks)
        (a1, b1), (a2, b2), (a3, b3), (a4, b4) = cfg.stage_groups
        self.layer1 = nn.Sequential(net.conv_stem, net.bn1, net.act1, *stages[a1:b1])
        self.layer2 = nn.Sequential(*stages[a2:b2])
        self.layer3 = nn.Sequential(*stages[a3:b3])
        self.layer4 = nn.Sequential(*stages[a4:b4])

    def forward_intermediates(self, x: torch.Tensor, indices: Sequence[int] = (0, 1, 2, 3)) -> Intermediates:
        """(N, C, h, w) outputs of `layer{i+1}` for i in `indices` (strides 4, 8, 16, 32)."""
        return stage_outputs([self.layer1, self.layer2, self.layer3, self.layer4], x, indices)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_intermediates(x).features


class Interpolate(nn.Module):
    """Parameter-free resize kept as a module so `output_conv` indices match the official ones."""

    def __init__(self, scale_factor: float, mode: str, align_corners: bool) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.mode = mode
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.interpolate(
            x, scale_factor=self.scale_factor, mode=self.mode, align_corners=self.align_corners
        )


def make_head(features: int, non_negative: bool) -> nn.Sequential:
    """Official `scratch.output_conv`: conv3x3 -> x2 bilinear -> conv3x3 -> ReLU -> conv1x1 -> ReLU."""
    return nn.Sequential(
        nn.Conv2d(features, features // 2, 3, padding=1),
        Interpolate(2, "bilinear", align_corners=False),
        nn.Conv2d(features // 2, 32, 3, padding=1),
        nn.ReLU(inplace=False),
        nn.Conv2d(32, 1, 1),
        nn.ReLU(inplace=False) if non_negative else nn.Identity(),
        nn.Identity(),
    )


class MidasSmallScratch(Scratch):
    """`scratch`: the DPT fusion with `expand` (64/128/256/512) plus the official `output_conv` head."""

    def __init__(self, cfg: MidasSmallConfig) -> None:
        super().__init__(
            cfg.encoder_channels, cfg.features, use_bn=cfg.use_bn, expand=cfg.expand, align_corners=cfg.align_corners
        )
        self.output_conv = make_head(cfg.features, cfg.non_negative)


class MidasNetSmall(nn.Module):
    """MiDaS v2.1 small with official key names (`pretrained.*`, `scratch.*`)."""

    def __init__(self, cfg: MidasSmallConfig = MIDAS_V21_SMALL_256) -> None:
        super().__init__()
        self.cfg = cfg
        self.pretrained = EfficientNetEncoder(cfg)
        self.scratch = MidasSmallScratch(cfg)

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Four encoder maps -> fused map at half the input resolution (features channels)."""
        # MidasNet_small upsamples by a plain x2 in every fusion block (refinenet4 has no skip).
        return self.scratch.fuse(feats, sizes_from_skips=False)

    def forward(self, x: torch.Tensor, pre_relu: bool = False) -> torch.Tensor:
        """(N, 3, h, w) normalised -> (N, h, w) disparity, or (N, 1, h, w) head output before the ReLU."""
        path = self.decode(self.pretrained(x))
        head = self.scratch.output_conv
        if pre_relu:
            return head[:5](path)
        return torch.squeeze(head(path), dim=1)


# ----------------------------------------------------------------------------- family
def data_config(cfg: MidasSmallConfig) -> DataConfig:
    """Official `run.py` for this model: keep-aspect 'upper_bound' to 256, OpenCV cubic, bicubic back."""
    return midas_data(cfg.net_size, "upper_bound", cfg.multiple_of, cfg.mean, cfg.std)


def _same_padding(spec: ModelSpec[MidasSmallConfig]) -> str:
    return f"{spec.name}: TensorFlow-SAME padding depends on the input size; export one graph per size"


FAMILY = Family[MidasSmallConfig](
    name="midas_small",
    build=MidasNetSmall,
    data=data_config,
    converters={"official": official_layout},
    processor=MapProcessor,
    onnx=OnnxExport(dynamic_refusal=_same_padding),
    training=Training(
        parts=(("scratch.output_conv", "head"), ("pretrained.", "encoder"), ("scratch.", "decoder")),
        relative_loss="ssi",
    ),
)

PRESETS = (
    FAMILY.preset(
        name="midas-v21-small-256",
        config=MIDAS_V21_SMALL_256,
        output_kind=OutputKind.RELATIVE_DISPARITY,
        license="MIT (isl-org/MiDaS)",
        license_class="commercial",
        description=(
            "MiDaS v2.1 small (EfficientNet-Lite3) at 256, for mobile/real-time. Relative inverse depth "
            "(affine-invariant disparity); MiDaS 3.1 (Ranftl et al., Birkl et al. 2023)."
        ),
        sources=(),
        native_resolution="256x256",
        params_millions=21.3,
        aliases=("midas_v21_small_256",),
    ),
)
