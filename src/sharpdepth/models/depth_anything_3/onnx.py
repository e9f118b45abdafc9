"""Depth Anything 3 as one ONNX graph: the mono and metric networks, at any input size.

The graph is `DepthAnything3.forward_maps` on one view per image: (N, 3, h, w) network
input -> (depth before the sky fill, sky), each (N, h, w). The sky fill (the 99th percentile
of a data-dependent set of pixels, sampled above 100k pixels) cannot be traced; it runs after
the graph, in `GraphAsNetwork`, which answers as the torch network does, so `DA3Processor`
(metric focal rule included) is the same on both backends. Metric and mono share the
network: the metric scale is post-processing.

Any-view models are refused: their graph would need the views' count, the reference-view
reordering and the camera encoder's optional input, which one traced graph does not follow.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...family import ModelSpec, OnnxExport
from .network import DepthAnything3, fill_sky_views

SKY_OUTPUT = "sky"


class MonoGraph(nn.Module):
    """What is exported: network input (N, 3, h, w) -> (depth before the sky fill, sky), (N, h, w) each."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        if not isinstance(net, DepthAnything3):
            raise TypeError(f"expected a DepthAnything3 network, got {type(net).__name__}")
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.net.forward_maps(x[:, None])
        return maps["depth"][:, 0], maps[SKY_OUTPUT][:, 0]


class GraphAsNetwork(nn.Module):
    """The running graph behind `DepthAnything3.forward` (mono): views (B, S, 3, h, w) ->
    {"depth": sky-filled depth, "sky"}, (B, S, h, w) each."""

    def __init__(self, graph: nn.Module) -> None:
        super().__init__()
        self.graph = graph

    def forward(
        self, x: torch.Tensor, world_to_cam: torch.Tensor | None = None, intrinsics: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        b, s, _, h, w = x.shape
        depth, sky = self.graph(x.flatten(0, 1))[:2]
        depth, sky = depth.reshape(b, s, h, w), sky.reshape(b, s, h, w)
        return {"depth": fill_sky_views(depth, sky), SKY_OUTPUT: sky}


def _any_view_refused(spec: ModelSpec[Any]) -> str | None:
    if spec.config.any_view:
        return "any-view models (cameras, several views) do not export to ONNX; the DA3 mono and metric models do"
    return None


def _extra_outputs(spec: ModelSpec[Any]) -> tuple[str, ...]:
    return (SKY_OUTPUT,)


ONNX = OnnxExport(refusal=_any_view_refused, extra_outputs=_extra_outputs, traced=MonoGraph, as_network=GraphAsNetwork)
