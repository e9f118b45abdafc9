"""EfficientNet-Lite (Tan & Le 2019, "lite" variant) in plain torch, with TF-SAME padding.

MiDaS v2.1 small uses `tf_efficientnet_lite3` from rwightman's gen-efficientnet
(the TensorFlow-trained weights, hence TensorFlow's "SAME" padding, BatchNorm
eps 1e-3 and ReLU6). We cannot depend on geffnet/timm (they import torchvision),
so this module rebuilds the network from its architecture definition:

* stem: 3x3 stride-2 conv -> BN -> ReLU6 (stem width fixed at 32, not scaled);
* seven stages of depthwise-separable (`ds`) or inverted-residual (`ir`) blocks,
  widths scaled by `channel_multiplier` (rounded to multiples of 8 the geffnet
  way) and repeat counts by `depth_multiplier` (ceil), except the first and last
  stage whose repeats are fixed ("lite" rule);
* no squeeze-excite, no activation after the projection convs, identity skip
  whenever a block keeps its stride 1 and width.

Module attribute names follow geffnet (`conv_stem`, `bn1`, `blocks.i.j.conv_pw`,
`conv_dw`, `conv_pwl`, `bnK`) so a checkpoint regrouped the MiDaS way
(`pretrained.layer1 = Sequential(conv_stem, bn1, act1, blocks[0], blocks[1])`, ...)
loads strictly. The classifier head (conv_head/bn2/classifier) is not built:
dense-prediction users only need the stages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..features import Intermediates, stage_outputs


def tf_same_pad(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow 'SAME' padding for one spatial dim: (before, after), extra pixel after.

    TF pads so that the output has ceil(size / stride) samples, splitting the total
    padding with the odd pixel on the bottom/right. For even sizes and stride 2 that is
    asymmetric ((0, 1) for k=3), which a symmetric PyTorch `padding=` cannot express.
    """
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class Conv2dSame(nn.Conv2d):
    """nn.Conv2d with TF-SAME zero padding computed from each input's own size.

    geffnet's exportable `Conv2dSameExport` computes the same pads on the first call
    and then freezes them (a tracing convenience); its non-exportable `Conv2dSame`
    recomputes them per input, as we do. Both agree for every input of the size the
    frozen pads were computed at; only the dynamic form is correct for other sizes
    (frozen pads would give a different output size than TensorFlow's SAME), so it is
    the right generalisation.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=0, groups=groups, bias=False)

    def same_pads(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) zero padding for an input of height x width."""
        top, bottom = tf_same_pad(height, self.kernel_size[0], self.stride[0], self.dilation[0])
        left, right = tf_same_pad(width, self.kernel_size[1], self.stride[1], self.dilation[1])
        return left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = self.same_pads(x.shape[-2], x.shape[-1])
        if any(pads):
            x = F.pad(x, pads)
        return super().forward(x)


def create_conv(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """Bias-free conv with TF-SAME semantics, static where TF-SAME is symmetric.

    For stride 1 and an odd kernel TF-SAME equals symmetric padding k//2 (geffnet uses a
    plain nn.Conv2d there too); only strided convs need the per-input `Conv2dSame`.
    """
    if stride == 1 and kernel % 2 == 1:
        return nn.Conv2d(in_channels, out_channels, kernel, 1, padding=kernel // 2, groups=groups, bias=False)
    return Conv2dSame(in_channels, out_channels, kernel, stride, groups=groups)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """geffnet/TF channel rounding: nearest multiple of `divisor`, never more than 10% down."""
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


class DepthwiseSeparable(nn.Module):
    """dw conv -> BN -> ReLU6 -> pw conv -> BN (no activation), skip if shape is kept."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, bn_eps: float) -> None:
        super().__init__()
        self.has_residual = stride == 1 and in_ch == out_ch
        self.conv_dw = create_conv(in_ch, in_ch, kernel, stride, groups=in_ch)
        self.bn1 = nn.BatchNorm2d(in_ch, eps=bn_eps)
        self.act1 = nn.ReLU6()
        self.conv_pw = create_conv(in_ch, out_ch, 1)
        self.bn2 = nn.BatchNorm2d(out_ch, eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv_dw(x)))
        out = self.bn2(self.conv_pw(out))
        return out + x if self.has_residual else out


class InvertedResidual(nn.Module):
    """MobileNetV2 block: pw expand -> BN -> ReLU6 -> dw -> BN -> ReLU6 -> pw project -> BN."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand_ratio: float, bn_eps: float) -> None:
        super().__init__()
        mid_ch = make_divisible(in_ch * expand_ratio)
        self.has_residual = stride == 1 and in_ch == out_ch
        self.conv_pw = create_conv(in_ch, mid_ch, 1)
        self.bn1 = nn.BatchNorm2d(mid_ch, eps=bn_eps)
        self.act1 = nn.ReLU6()
        self.conv_dw = create_conv(mid_ch, mid_ch, kernel, stride, groups=mid_ch)
        self.bn2 = nn.BatchNorm2d(mid_ch, eps=bn_eps)
        self.act2 = nn.ReLU6()
        self.conv_pwl = create_conv(mid_ch, out_ch, 1)
        self.bn3 = nn.BatchNorm2d(out_ch, eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv_pw(x)))
        out = self.act2(self.bn2(self.conv_dw(out)))
        out = self.bn3(self.conv_pwl(out))
        return out + x if self.has_residual else out


@dataclass(frozen=True)
class StageSpec:
    """One row of the EfficientNet architecture definition (before width/depth scaling)."""

    block: Literal["ds", "ir"]
    repeats: int
    kernel: int
    stride: int
    expand_ratio: float
    out_channels: int


# geffnet `_gen_efficientnet_lite` arch_def: ds_r1_k3_s1_e1_c16, ir_r2_k3_s2_e6_c24, ...
LITE_STAGES: tuple[StageSpec, ...] = (
    StageSpec("ds", 1, 3, 1, 1, 16),
    StageSpec("ir", 2, 3, 2, 6, 24),
    StageSpec("ir", 2, 5, 2, 6, 40),
    StageSpec("ir", 3, 3, 2, 6, 80),
    StageSpec("ir", 3, 5, 1, 6, 112),
    StageSpec("ir", 4, 5, 2, 6, 192),
    StageSpec("ir", 1, 3, 1, 6, 320),
)


@dataclass(frozen=True)
class EfficientNetLiteConfig:
    """Width/depth-scaled EfficientNet-Lite; defaults are TF-trained Lite3 (geffnet `tf_efficientnet_lite3`)."""

    stages: tuple[StageSpec, ...] = LITE_STAGES
    channel_multiplier: float = 1.2
    depth_multiplier: float = 1.4
    stem_channels: int = 32
    in_channels: int = 3
    bn_eps: float = 1e-3
    """TensorFlow's BatchNorm epsilon (PyTorch's default is 1e-5)."""

    def stage_channels(self) -> tuple[int, ...]:
        return tuple(make_divisible(s.out_channels * self.channel_multiplier) for s in self.stages)

    def stage_repeats(self) -> tuple[int, ...]:
        """Repeats after depth scaling; "lite" keeps the first and last stage unscaled."""
        last = len(self.stages) - 1
        return tuple(
            s.repeats if i in (0, last) else math.ceil(s.repeats * self.depth_multiplier)
            for i, s in enumerate(self.stages)
        )


EFFICIENTNET_LITE3 = EfficientNetLiteConfig()


def _make_block(spec: StageSpec, in_ch: int, out_ch: int, stride: int, bn_eps: float) -> nn.Module:
    if spec.block == "ds":
        return DepthwiseSeparable(in_ch, out_ch, spec.kernel, stride, bn_eps)
    return InvertedResidual(in_ch, out_ch, spec.kernel, stride, spec.expand_ratio, bn_eps)


class EfficientNetLite(nn.Module):
    """Stem + stages of EfficientNet-Lite (no head), geffnet attribute names.

    `forward` returns the output of every stage so callers can tap any of them;
    MiDaS instead regroups these very modules into its `pretrained.layerN`.
    """

    def __init__(self, cfg: EfficientNetLiteConfig = EFFICIENTNET_LITE3) -> None:
        super().__init__()
        self.cfg = cfg
        self.conv_stem = create_conv(cfg.in_channels, cfg.stem_channels, 3, stride=2)
        self.bn1 = nn.BatchNorm2d(cfg.stem_channels, eps=cfg.bn_eps)
        self.act1 = nn.ReLU6()
        in_ch = cfg.stem_channels
        stages = []
        for spec, out_ch, repeats in zip(cfg.stages, cfg.stage_channels(), cfg.stage_repeats(), strict=True):
            blocks = []
            for j in range(repeats):
                blocks.append(_make_block(spec, in_ch, out_ch, spec.stride if j == 0 else 1, cfg.bn_eps))
                in_ch = out_ch
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)

    def forward_intermediates(self, x: torch.Tensor, indices: Sequence[int]) -> Intermediates:
        """(N, C, h, w) outputs of the stages in `indices`; stops after the last one asked for."""
        return stage_outputs(list(self.blocks), x, indices, stem=self._stem)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.act1(self.bn1(self.conv_stem(x)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's output."""
        return self.forward_intermediates(x, range(len(self.blocks))).features
