"""DPT building blocks shared by every DPT-style head (Depth Anything, MiDaS/DPT).

The decoder of "Vision Transformers for Dense Prediction" (Ranftl et al. 2021) is a
ladder of RefineNet-style fusion blocks over four feature maps. Depth Anything
and every MiDaS model keep the same module names (`scratch.layerN_rn`,
`scratch.refinenetN.resConfUnit{1,2}`, `out_conv`), so one implementation loads
all of their checkpoints strictly. Families subclass `Scratch` for their output
head and build their own reassemble stage (ViT tokens -> maps).
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
    upsampling target is an explicit size (next skip's size) or x2. `has_skip=False` (the
    coarsest block of Depth Anything 3, which never gets a skip) has no `resConfUnit1`.
    """

    def __init__(
        self,
        features: int,
        use_bn: bool = False,
        expand: bool = False,
        align_corners: bool = True,
        has_skip: bool = True,
    ) -> None:
        super().__init__()
        self.align_corners = align_corners
        out_features = features // 2 if expand else features
        self.out_conv = nn.Conv2d(features, out_features, 1, bias=True)
        if has_skip:
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


def reassemble_resizes(out_channels: Sequence[int]) -> nn.ModuleList:
    """The `resize_layers` of a ViT DPT head (the Depth Anything families): the patch grid of the four
    levels to 4x, 2x, 1x and 0.5x; index 2 is an Identity (no keys)."""
    oc = out_channels
    return nn.ModuleList(
        [
            nn.ConvTranspose2d(oc[0], oc[0], kernel_size=4, stride=4),
            nn.ConvTranspose2d(oc[1], oc[1], kernel_size=2, stride=2),
            nn.Identity(),
            nn.Conv2d(oc[3], oc[3], kernel_size=3, stride=2, padding=1),
        ]
    )


class Scratch(nn.Module):
    """The `scratch` module of DPT checkpoints: per-level 3x3 projections + fusion ladder.

    Each family's head is a subclass that builds its own output modules in its
    `__init__` (`output_conv` for MiDaS, `output_conv1`/`output_conv2` for Depth
    Anything), so the checkpoint names stay `scratch.output_conv*` without anyone
    attaching modules from outside.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        features: int,
        use_bn: bool = False,
        expand: bool = False,
        align_corners: bool = True,
        coarsest_has_skip: bool = True,
    ) -> None:
        """`coarsest_has_skip=False`: `refinenet4` without the (never used) skip unit (any-view DPT heads)."""
        super().__init__()
        # With `expand`, level i gets features * 2**i channels (MiDaS small's scratch).
        widths = [features * (2**i if expand else 1) for i in range(4)]
        if len(in_channels) != 4:
            raise ValueError(f"DPT fuses four levels, got {len(in_channels)} input widths")
        c1, c2, c3, c4 = in_channels
        self.layer1_rn = nn.Conv2d(c1, widths[0], 3, padding=1, bias=False)
        self.layer2_rn = nn.Conv2d(c2, widths[1], 3, padding=1, bias=False)
        self.layer3_rn = nn.Conv2d(c3, widths[2], 3, padding=1, bias=False)
        self.layer4_rn = nn.Conv2d(c4, widths[3], 3, padding=1, bias=False)
        # Official order: refinenet1 is created first; every block but the finest halves with `expand`.
        self.refinenet1 = FeatureFusionBlock(widths[0], use_bn, expand=False, align_corners=align_corners)
        self.refinenet2 = FeatureFusionBlock(widths[1], use_bn, expand=expand, align_corners=align_corners)
        self.refinenet3 = FeatureFusionBlock(widths[2], use_bn, expand=expand, align_corners=align_corners)
        self.refinenet4 = FeatureFusionBlock(
            widths[3], use_bn, expand=expand, align_corners=align_corners, has_skip=coarsest_has_skip
        )

    def fuse(self, feats: Sequence[torch.Tensor], sizes_from_skips: bool = True) -> torch.Tensor:
        """Four backbone maps (fine -> coarse) -> fused map at 2x the finest resolution.

        `sizes_from_skips`: upsample each path to the next skip's exact size (robust to odd
        sizes; Depth Anything, MiDaS 3.x DPT) rather than by a plain factor 2 (MiDaS small).
        """
        f1, f2, f3, f4 = feats
        rn = [self.layer1_rn(f1), self.layer2_rn(f2), self.layer3_rn(f3), self.layer4_rn(f4)]
        size = (lambda t: t.shape[-2:]) if sizes_from_skips else (lambda t: None)
        path = self.refinenet4(rn[3], size=size(rn[2]))
        path = self.refinenet3(path, rn[2], size=size(rn[1]))
        path = self.refinenet2(path, rn[1], size=size(rn[0]))
        return self.refinenet1(path, rn[0])
