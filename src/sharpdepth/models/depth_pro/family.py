"""Depth Pro as a family: the official pre- and post-processing, the family's facts and its presets."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import OptionError
from ...family import (
    DataConfig,
    Family,
    ModelSpec,
    NetworkOutput,
    OnnxExport,
    Prediction,
    Training,
    WeightSource,
    official_layout,
)
from ...result import OutputKind
from ..processing import SizedProcessor, check_rgb, network_outputs, to_numpy
from . import keymap
from .network import DEPTH_PRO, DEPTH_PRO_TINY, DepthPro, DepthProConfig

INVERSE_DEPTH_RANGE = (1e-4, 1e4)
"""Official clamp of the metric inverse depth before taking its reciprocal (metres)."""


def data_config(cfg: DepthProConfig) -> DataConfig:
    """Official `DepthPro.infer`: ToTensor, normalise (0.5, 0.5), then bilinear resize to a fixed square."""
    return DataConfig.fixed_square(cfg.img_size, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def metric_depth(inverse_depth: torch.Tensor, height: int, width: int) -> np.ndarray:
    """Metric inverse depth (h, w) -> depth in metres at height x width, as the official code does:
    bilinear resize (align_corners=False) at *inverse* depth, then 1 / clamp(1e-4, 1e4). Resizing
    the inverse keeps far-away pixels from bleeding into edges (SHARP's depth layer reuses it)."""
    inverse = inverse_depth[None, None]
    if inverse.shape[-2:] != (height, width):
        inverse = F.interpolate(inverse, size=(height, width), mode="bilinear", align_corners=False)
    depth = 1.0 / torch.clamp(inverse, *INVERSE_DEPTH_RANGE)
    return to_numpy(depth[0, 0])


class DepthProProcessor(SizedProcessor[DepthProConfig]):
    """The official pre- and post-processing around `DepthPro` (apple/ml-depth-pro `infer`).

    - preprocess: uint8 RGB -> float in [0, 1] (ToTensor) -> normalise with mean 0.5 / std
      0.5 -> bilinear resize (align_corners=False, no antialias) to 1536x1536. The order is
      the official one (normalise, then resize) even though both are linear, so that the
      float rounding matches too. Any aspect ratio is squashed, so none is refused.
    - forward: canonical inverse depth (inverse depth for a focal length equal to the image
      width) and the FOV head's field of view, per image.
    - postprocess: f_px = the given focal length, else 0.5 * W / tan(0.5 * fov); inverse
      depth = canonical * W / f_px; bilinear resize (align_corners=False) back to H x W at
      *inverse depth*, then depth = 1 / clamp(inverse depth, 1e-4, 1e4) metres. Resizing the
      inverse (not the depth) is what the official code does and keeps far-away pixels from
      bleeding into edges.
    """

    def __init__(self, spec: ModelSpec[DepthProConfig], input_size: int | None = None) -> None:
        super().__init__(spec, input_size)
        self.has_fov = spec.config.use_fov_head

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        return self._size, self._size

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        check_rgb(rgb)
        size = self._size
        mean, std = self.data.mean[0], self.data.std[0]
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div(255.0)
        x = x.sub(mean).div(std)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False)[0]
        return x

    def forward(self, net: nn.Module, batch: torch.Tensor) -> list[NetworkOutput]:
        param = next(net.parameters())
        with torch.inference_mode():  # maps stay on the device: scale, resize and clamp run there
            return network_outputs(net(batch.to(param.device, param.dtype)))

    def postprocess(self, out: NetworkOutput, height: int, width: int, focal_px: float | None) -> Prediction:
        scale: float | torch.Tensor
        if focal_px is None:
            if out.fov_deg is None:
                raise OptionError(f"{self.name} has no FOV head here; give a focal length")
            # float32 tensor maths, like the official code.
            fov = torch.tensor(out.fov_deg, dtype=torch.float32)
            f_px = 0.5 * width / torch.tan(0.5 * torch.deg2rad(fov))
            scale, focal, from_model = width / f_px, float(f_px), True
        else:
            scale, focal, from_model = width / focal_px, float(focal_px), False
        depth = metric_depth(out.map.float() * scale, height, width)
        return Prediction(map=depth, focal_px=focal, focal_from_model=from_model)


def _has_fov_head(cfg: DepthProConfig) -> bool:
    return cfg.use_fov_head


def _fixed_input(spec: ModelSpec[DepthProConfig]) -> str:
    return "Depth Pro's network input is fixed at 1536x1536; export without --dynamic"


FAMILY = Family[DepthProConfig](
    name="depth_pro",
    build=DepthPro,
    data=data_config,
    converters={"official": official_layout, "hf": keymap.hf_to_official},
    processor=DepthProProcessor,
    map_output="canonical_inverse_depth",
    fov_head=_has_fov_head,
    onnx=OnnxExport(dynamic_refusal=_fixed_input, example_side=384),
    training=Training(
        parts=(("fov.", "fov"), ("head.", "head"), ("encoder.", "encoder"), ("decoder.", "decoder")),
        relative_loss="depth-pro",
        metric_loss="depth-pro",
    ),
)

_LICENSE = (
    "Apple Machine Learning Research Model License (apple/ml-depth-pro LICENSE); weights are Apple's, research use"
)

PARAMS_MILLIONS = 951.99
"""Official model: 951,991,330 parameters (checked by tests against the built network)."""

_FULL_SIZE = FAMILY.preset(
    name="depth-pro",
    config=DEPTH_PRO,
    output_kind=OutputKind.METRIC_DEPTH,
    license=_LICENSE,
    license_class="non-commercial",
    description=(
        "Depth Pro (Apple, 2024): sharp metric depth and focal length from one image; "
        "multi-scale ViT-L/16 (DINOv2) encoder at 1536x1536"
    ),
    sources=(
        WeightSource("apple/DepthPro", "depth_pro.pt", layout="official"),
        WeightSource("apple/DepthPro-hf", "model.safetensors", layout="hf"),
    ),
    native_resolution="1536x1536",
    params_millions=PARAMS_MILLIONS,
)

PRESETS = (
    _FULL_SIZE,
    _FULL_SIZE.test_variant(
        name="depth-pro-tiny",
        config=DEPTH_PRO_TINY,
        description="Depth Pro code paths on tiny widths (parity tests only; no weights)",
    ),
)
