"""The ResNet-50 stem of ViT-Hybrid (timm `vit_base_r50_s16_384`), as used by MiDaS `dpt_hybrid_384`.

timm builds it as `ResNetV2(layers=(3, 4, 9), preact=False, stem_type="same",
conv_layer=partial(StdConv2dSame, eps=1e-8))`: a non-pre-activation ("v1.5") bottleneck
ResNet whose convolutions standardise their weights on the fly and pad like TensorFlow
("SAME", asymmetric for stride 2), with GroupNorm(32) everywhere. Three stages give
256 ch at H/4, 512 ch at H/8 and 1024 ch at H/16; MiDaS feeds the first two to its
decoder and the last, projected, to the ViT. Keys follow timm: `stem.conv`, `stem.norm`,
`stages.S.blocks.B.{downsample.conv, downsample.norm, conv1..3, norm1..3}`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..features import Intermediates, stage_outputs


def pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """TensorFlow 'SAME' padding: output = ceil(input / stride), extra pixel on the bottom/right."""
    ih, iw = x.shape[-2:]
    pad_h = max((math.ceil(ih / stride) - 1) * stride + kernel - ih, 0)
    pad_w = max((math.ceil(iw / stride) - 1) * stride + kernel - iw, 0)
    if pad_h or pad_w:
        x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2], value=value)
    return x


class StdConv2dSame(nn.Conv2d):
    """Weight-standardised conv (per output channel: zero mean, unit variance, eps 1e-8), no bias.

    Stride 1 uses the equivalent static symmetric padding; stride 2 pads dynamically.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, eps: float = 1e-8) -> None:
        self.dynamic = stride > 1
        super().__init__(cin, cout, kernel, stride=stride, padding=0 if self.dynamic else kernel // 2, bias=False)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dynamic:
            x = pad_same(x, self.kernel_size[0], self.stride[0])
        # Same arithmetic as timm: batch_norm over each output channel's weights.
        w = F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1), None, None, training=True, momentum=0.0, eps=self.eps
        ).reshape_as(self.weight)
        return F.conv2d(x, w, None, self.stride, self.padding)


class GroupNormAct(nn.GroupNorm):
    """GroupNorm(32 groups, eps 1e-5) optionally followed by ReLU (timm GroupNormAct)."""

    def __init__(self, channels: int, act: bool = True) -> None:
        super().__init__(32, channels, eps=1e-5)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        return F.relu(x) if self.act else x


class MaxPool2dSame(nn.Module):
    """3x3 / stride 2 max pool with TF 'SAME' padding by -inf."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(pad_same(x, 3, 2, value=float("-inf")), 3, 2)


class Stem(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = StdConv2dSame(3, 64, 7, stride=2)
        self.norm = GroupNormAct(64)
        self.pool = MaxPool2dSame()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.norm(self.conv(x)))


class Downsample(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv = StdConv2dSame(cin, cout, 1, stride=stride)
        self.norm = GroupNormAct(cout, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here) -> 1x1, GroupNorm after each, ReLU after the residual sum."""

    def __init__(self, cin: int, cout: int, stride: int, project: bool) -> None:
        super().__init__()
        mid = cout // 4
        self.downsample = Downsample(cin, cout, stride) if project else None
        self.conv1 = StdConv2dSame(cin, mid, 1)
        self.norm1 = GroupNormAct(mid)
        self.conv2 = StdConv2dSame(mid, mid, 3, stride=stride)
        self.norm2 = GroupNormAct(mid)
        self.conv3 = StdConv2dSame(mid, cout, 1)
        self.norm3 = GroupNormAct(cout, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.downsample(x) if self.downsample is not None else x
        x = self.norm1(self.conv1(x))
        x = self.norm2(self.conv2(x))
        x = self.norm3(self.conv3(x))
        return F.relu(x + shortcut)


class Stage(nn.Module):
    def __init__(self, cin: int, cout: int, depth: int, stride: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            *(Bottleneck(cin if i == 0 else cout, cout, stride if i == 0 else 1, project=i == 0) for i in range(depth))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class ResNetV2(nn.Module):
    """Stem + bottleneck stages (no head); `forward` returns every stage's output."""

    def __init__(self, layers: tuple[int, ...] = (3, 4, 9)) -> None:
        super().__init__()
        self.stem = Stem()
        widths = [256 * 2**i for i in range(len(layers))]
        cins = [64, *widths[:-1]]
        self.stages = nn.ModuleList(
            Stage(cin, cout, depth, stride=1 if i == 0 else 2)
            for i, (cin, cout, depth) in enumerate(zip(cins, widths, layers, strict=True))
        )

    @property
    def out_channels(self) -> int:
        return 256 * 2 ** (len(self.stages) - 1)

    def forward_intermediates(self, x: torch.Tensor, indices: Sequence[int]) -> Intermediates:
        """(N, C, h, w) outputs of the stages in `indices`; stops after the last one asked for."""
        return stage_outputs(list(self.stages), x, indices, stem=self.stem)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's output."""
        return self.forward_intermediates(x, range(len(self.stages))).features


class HybridEmbed(nn.Module):
    """ViT-Hybrid patch embedding: ResNet features at H/16 -> 1x1 conv -> tokens.

    Satisfies the `vit.PatchEmbed` contract (`forward` -> tokens, grid); `forward_stages`
    also returns the ResNet stage outputs that MiDaS taps for its two finest levels.
    """

    def __init__(self, embed_dim: int, layers: tuple[int, ...] = (3, 4, 9)) -> None:
        super().__init__()
        self.backbone = ResNetV2(layers)
        self.proj = nn.Conv2d(self.backbone.out_channels, embed_dim, 1)

    def forward_stages(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, tuple[int, int]]:
        """(ResNet stage maps but the last, patch tokens, patch grid)."""
        stages = self.backbone.forward_intermediates(x, range(len(self.backbone.stages))).features
        feat = self.proj(stages[-1])
        rows, cols = feat.shape[-2:]
        return stages[:-1], feat.flatten(2).transpose(1, 2), (rows, cols)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        _, tokens, grid = self.forward_stages(x)
        return tokens, grid
