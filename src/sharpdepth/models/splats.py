"""What a model that predicts 3-D Gaussians offers the engine (SHARP today).

The engine asks a model's processor for Gaussians only through `SplatProcessor`, so it never
names a family: any processor with these members can serve `DepthModel.predict_gaussians`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass
class SplatTensors:
    """Gaussians of one image in metres, OpenCV camera frame (x right, y down, z forward), as
    float32 tensors in the official order (layer, row, column)."""

    means: torch.Tensor
    """(G, 3) centres."""
    scales: torch.Tensor
    """(G, 3) standard deviations along the rotated axes."""
    quaternions: torch.Tensor
    """(G, 4) unit w x y z."""
    colors: torch.Tensor
    """(G, 3) linear RGB."""
    opacities: torch.Tensor
    """(G,)."""


@runtime_checkable
class SplatProcessor(Protocol):
    """A processor that can also turn its network input into metric Gaussians."""

    @property
    def default_focal_35mm(self) -> float:
        """35 mm-equivalent focal length assumed when neither the user, EXIF nor a focal model gives one."""
        ...

    def predict_gaussians(
        self, net: nn.Module, x: torch.Tensor, height: int, width: int, focal_px: float
    ) -> SplatTensors:
        """Gaussians for one preprocessed (3, h, w) input of a height x width picture taken at focal_px."""
        ...
