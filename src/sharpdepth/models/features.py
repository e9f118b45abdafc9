"""The one intermediate-feature contract of every backbone: `forward_intermediates(x, indices)`.

Every encoder a depth head taps (the ViT/DINOv2 of Depth Pro and Depth Anything, MiDaS'
ViT, BEiT and Swin-V2, the ResNet stem of ViT-Hybrid, EfficientNet-Lite) returns an
`Intermediates`: the outputs of the requested blocks or stages, in the order asked for,
with the spatial grid of each and whether they are token sequences or maps. Heads turn
them into maps with `as_map` (or read the raw tokens, prefix tokens included, where the
official head does: Depth Pro's stitching, MiDaS' readout), so no head depends on which
backbone it sits on beyond what it asks for.

`indices` are block indices for the plain transformers (ViT, BEiT; negative counts from
the end), one block index per stage for Swin-V2, and stage indices for the CNNs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn


@dataclass(frozen=True)
class Intermediates:
    """Outputs of selected blocks/stages of a backbone, in request order."""

    features: list[torch.Tensor]
    """'tokens': (N, P + h*w, C) raw block outputs with P prefix tokens first; 'maps': (N, C, h, w)."""
    grids: list[tuple[int, int]]
    """(h, w) of each feature's spatial grid."""
    layout: Literal["tokens", "maps"]
    num_prefix_tokens: int = 0
    """cls (+ register) tokens before the patch tokens; 0 for maps and Swin tokens."""
    final: torch.Tensor | None = None
    """Normed output of the whole stack where it ran to the end (ViT), else None."""

    def __len__(self) -> int:
        return len(self.features)

    def as_map(self, i: int) -> torch.Tensor:
        """Feature i as an (N, C, h, w) map (prefix tokens dropped)."""
        feature = self.features[i]
        if self.layout == "maps":
            return feature
        rows, cols = self.grids[i]
        patches = feature[:, self.num_prefix_tokens :]
        return patches.transpose(1, 2).reshape(feature.shape[0], -1, rows, cols)

    def maps(self) -> list[torch.Tensor]:
        return [self.as_map(i) for i in range(len(self))]


def check_indices(indices: tuple[int, ...] | list[int], count: int, what: str) -> list[int]:
    """Indices normalised to 0..count-1 (negative ones count from the end); ValueError when out of range."""
    out = []
    for idx in indices:
        if not -count <= idx < count:
            raise ValueError(f"{what} index {idx} out of range for {count} {what}s")
        out.append(idx % count)
    return out


def stage_outputs(
    stages: Sequence[nn.Module],
    x: torch.Tensor,
    indices: Sequence[int],
    stem: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Intermediates:
    """A CNN's `forward_intermediates`: (N, C, h, w) outputs of the stages in `indices`, in that
    order, after `stem`; the indices are checked first, and the stages stop after the last one asked for."""
    wanted = check_indices(list(indices), len(stages), "stage")
    if stem is not None:
        x = stem(x)
    outs: dict[int, torch.Tensor] = {}
    for i, stage in enumerate(stages[: max(wanted) + 1]):
        x = stage(x)
        outs[i] = x
    maps = [outs[i] for i in wanted]
    return Intermediates(maps, [(m.shape[-2], m.shape[-1]) for m in maps], "maps")
