"""DPT building blocks shared by every DPT-style head (Depth Anything, MiDaS/DPT).

The decoder of "Vision Transformers for Dense Prediction" (Ranftl et al. 2021) is a
ladder of RefineNet-style fusion blocks over four feature maps. Depth Anything
and every MiDaS model keep the same module names (`scratch.layerN_rn`,
`scratch.refinenetN.resConfUnit{1,2}`, `out_conv`), so one implementation loads
all of their checkpoints strictly. Families attach their own reassemble stage
(ViT tokens -> maps) and output head to the `Scratch` built here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ResidualConvUnit(nn.Module):
    """x + conv(relu(conv(relu(x)))), with optional BatchNorm after each conv."""

    def __init__(self, features: int, use_bn: bool = False) -> None:
        super().__init__()
        self.use_bn = use_bn
        self.conv1 = nn.Conv2d(features, features, 3, padding=1, bias=not use_bn)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1, bias=not use_bn)
        if use_bn:
            self.bn1 = nn.BatchNorm2d(features)
            self.bn2 = nn.BatchNorm2d(features)
        # Not in-place: the input is also the residual.
        self.activation = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.activation(x))
        if self.use_bn:
            out = self.bn1(out)
        out = self.conv2(self.activation(out))
        if self.use_bn:
            out = self.bn2(out)
        return out + x


class FeatureFusionBlock(nn.Module):
    """Fuse a coarser path with a skip feature map, refine, upsample, project.

    `expand` halves the channel count at the output (MiDaS small); the
    upsampling target is an explicit size (next skip's size) or x2.
    """

    def __init__(self, features: int, use_bn: bool = False, expand: bool = False, align_corners: bool = True) -> None:
        super().__init__()
        self.align_corners = align_corners
        out_features = features // 2 if expand else features
        self.out_conv = nn.Conv2d(features, out_features, 1, bias=True)
        self.resConfUnit1 = ResidualConvUnit(features, use_bn)
        self.resConfUnit2 = ResidualConvUnit(features, use_bn)

    def forward(
        self, path: torch.Tensor, skip: torch.Tensor | None = None, size: Sequence[int] | None = None
    ) -> torch.Tensor:
        if skip is not None:
            path = path + self.resConfUnit1(skip)
        path = self.resConfUnit2(path)
        if size is None:
            path = F.interpolate(path, scale_factor=2, mode="bilinear", align_corners=self.align_corners)
        else:
            path = F.interpolate(path, size=tuple(size), mode="bilinear", align_corners=self.align_corners)
        return self.out_conv(path)


class Scratch(nn.Module):
    """The `scratch` module of DPT checkpoints: per-level 3x3 projections + fusion ladder.

    Families add their output head as further attributes (e.g. `output_conv`).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        features: int,
        use_bn: bool = False,
        expand: bool = False,
        align_corners: bool = True,
    ) -> None:
        super().__init__()
        # With `expand`, level i gets features * 2**i channels (MiDaS small's scratch).
        widths = [features * (2**i if expand else 1) for i in range(4)]
        for i, (cin, cout) in enumerate(zip(in_channels, widths, strict=True), start=1):
            setattr(self, f"layer{i}_rn", nn.Conv2d(cin, cout, 3, padding=1, bias=False))
        for i, width in enumerate(widths, start=1):
            setattr(
                self,
                f"refinenet{i}",
                FeatureFusionBlock(width, use_bn, expand=expand and i > 1, align_corners=align_corners),
            )

    def fuse(self, feats: Sequence[torch.Tensor], sizes_from_skips: bool = True) -> torch.Tensor:
        """Four backbone maps (fine -> coarse) -> fused map at 2x the finest resolution.

        `sizes_from_skips`: upsample each path to the next skip's exact size (robust to odd
        sizes; Depth Anything, MiDaS 3.x DPT) rather than by a plain factor 2 (MiDaS small).
        """
        rn = [getattr(self, f"layer{i}_rn")(f) for i, f in enumerate(feats, start=1)]
        size = (lambda t: t.shape[-2:]) if sizes_from_skips else (lambda t: None)
        path = self.refinenet4(rn[3], size=size(rn[2]))
        path = self.refinenet3(path, rn[2], size=size(rn[1]))
        path = self.refinenet2(path, rn[1], size=size(rn[0]))
        return self.refinenet1(path, rn[0])
