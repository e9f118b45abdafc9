"""The contract between a network family and the inference engine.

The engine owns everything that is the same for every model: reading images,
devices and precision, batching, focal-length priority, writing results. A
family adapter owns what is specific and must match the official code exactly:
building the network, pre-processing one image into the network input, and
turning the raw output back into a map at the input's resolution.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..registry import ModelSpec


@dataclass
class NetworkOutput:
    """Raw output for one image at network resolution (float32, on CPU)."""

    map: torch.Tensor
    """(h, w): canonical inverse depth (Depth Pro), relative disparity or metric depth."""
    fov_deg: float | None = None
    """Horizontal field of view predicted by the network, if it has a FOV head."""


@dataclass
class Prediction:
    """An adapter's final answer for one image, at the input resolution."""

    map: np.ndarray
    """float32 HxW in the spec's output kind (metres of z-depth, or relative disparity)."""
    focal_px: float | None
    """Focal length used for metric scale (given, or from the network's FOV head)."""
    focal_from_model: bool = False


class ModelAdapter(ABC):
    def __init__(self, spec: ModelSpec, input_size: int | None = None) -> None:
        self.spec = spec
        self.input_size = input_size

    @abstractmethod
    def build_network(self) -> nn.Module:
        """The network with random weights and the official state-dict key names."""

    @abstractmethod
    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        """HxWx3 uint8 RGB -> (3, h, w) float32 network input, exactly as the official code."""

    def forward(self, net: nn.Module, batch: torch.Tensor) -> list[NetworkOutput]:
        """Run a batch (N, 3, h, w) of same-size inputs; outputs returned as float32 on CPU.

        Default for networks whose forward returns one (N, h, w) map; Depth Pro overrides it.
        """
        param = next(net.parameters())
        with torch.inference_mode():
            out = net(batch.to(device=param.device, dtype=param.dtype))
        return [NetworkOutput(map=m.float().cpu()) for m in out]

    @abstractmethod
    def postprocess(self, out: NetworkOutput, height: int, width: int, focal_px: float | None) -> Prediction:
        """Resize to height x width as the official pipeline does; apply metric scale if any.

        `focal_px` is the user's or EXIF's value (None: use the model's own, if it has one).
        """

    def convert_state_dict(self, state: dict[str, torch.Tensor], layout: str) -> dict[str, torch.Tensor]:
        """Map a checkpoint in another layout (e.g. transformers') to official keys."""
        if layout == "official":
            return state
        raise NotImplementedError(f"{self.spec.family}: no key conversion for layout {layout!r}")
