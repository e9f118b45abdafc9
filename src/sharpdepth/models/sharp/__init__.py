"""SHARP (Mescheder et al., Apple 2025; apple/ml-sharp @ 1eaa046): one photo to ~1.2 M metric 3-D Gaussians.

The network is Depth Pro's (`sharpdepth.models.depth_pro`, reused, two disparity layers, no
FOV head) plus a Gaussian decoder (`network`); the weight-free Gaussian maths is in
`compose`, the checkpoint layout in `checkpoint`. This module is the family: presets,
licence, weight source and the official pre/post-processing.

As a depth model, SHARP gives its first disparity layer as metric depth (the official
pipeline's `f_px / (W * disparity)`); its real output is `DepthModel.predict_gaussians`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...family import DataConfig, Family, NetworkOutput, Prediction, WeightSource
from ...result import OutputKind, focal_from_35mm
from ..depth_pro.family import metric_depth
from ..processing import SizedProcessor, check_rgb
from ..splats import SplatTensors
from .checkpoint import from_official
from .compose import unproject, unprojection_matrix
from .network import SHARP, SHARP_TINY, SharpConfig, SharpNetwork

__all__ = ["FAMILY", "PRESETS", "SHARP", "SHARP_TINY", "SharpConfig", "SharpNetwork", "SharpProcessor"]

DEFAULT_FOCAL_35MM = 30.0
"""What `sharp predict` assumes without EXIF (`sharp.utils.io.load_rgb`)."""


def data_config(cfg: SharpConfig) -> DataConfig:
    """Official `predict_image`: [0, 1] image stretched to a fixed square, bilinear with
    align_corners=True (unlike Depth Pro's), no normalisation outside the network."""
    return DataConfig.fixed_square(cfg.img_size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def _network(net: nn.Module) -> SharpNetwork:
    if not isinstance(net, SharpNetwork):
        raise TypeError(f"SHARP's processor got a {type(net).__name__}")
    return net


class SharpProcessor(SizedProcessor[SharpConfig]):
    """The official pre- and post-processing around `SharpNetwork` (`sharp.cli.predict.predict_image`)."""

    default_focal_35mm = DEFAULT_FOCAL_35MM

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        return self._size, self._size

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        """uint8 -> float / 255 -> bilinear (align_corners=True) to size x size: bit for bit the official input."""
        check_rgb(rgb)
        x = torch.from_numpy(np.array(rgb)).float().permute(2, 0, 1) / 255.0  # a writable copy
        size = (self._size, self._size)
        return F.interpolate(x[None], size=size, mode="bilinear", align_corners=True)[0]

    def forward(self, net: nn.Module, batch: torch.Tensor) -> list[NetworkOutput]:
        """Depth only: Depth Pro's branch, first disparity layer (canonical inverse depth)."""
        param = next(net.parameters())
        with torch.inference_mode():
            disparity = net(batch.to(param.device, param.dtype))
        return [NetworkOutput(map=m.float()) for m in disparity[:, 0]]

    def postprocess(self, out: NetworkOutput, height: int, width: int, focal_px: float | None) -> Prediction:
        """Metric depth of the first layer, resized as Depth Pro does (at inverse depth). Focal:
        the given one (user or EXIF), else the official tool's 30 mm assumption, as for Gaussians."""
        assumed = focal_px is None
        if focal_px is None:
            focal_px = focal_from_35mm(self.default_focal_35mm, width, height)
        depth = metric_depth(out.map.float() * (width / focal_px), height, width)
        return Prediction(map=depth, focal_px=float(focal_px), focal_from_default=assumed)

    def predict_gaussians(
        self, net: nn.Module, x: torch.Tensor, height: int, width: int, focal_px: float
    ) -> SplatTensors:
        """Network forward, then unprojection to metres with the official intrinsics."""
        param = next(net.parameters())
        factor = torch.tensor([focal_px / width], dtype=torch.float32, device=param.device)
        with torch.inference_mode():
            out = _network(net)(x[None].to(param.device, param.dtype), factor.to(param.dtype))
            ndc = out.gaussians
            del out
            ndc.means, ndc.scales, ndc.quaternions = ndc.means.float(), ndc.scales.float(), ndc.quaternions.float()
            ndc.colors, ndc.opacities = ndc.colors.float(), ndc.opacities.float()
            return unproject(ndc, 0, unprojection_matrix(focal_px, width, height, self._size))


FAMILY = Family[SharpConfig](
    name="sharp",
    build=SharpNetwork,
    data=data_config,
    converters={"official": from_official},
    processor=SharpProcessor,
)

_LICENSE = (
    "Apple Machine Learning Research Model License (apple/ml-sharp LICENSE_MODEL): research purposes only, "
    "non-commercial; code under the Apple sample-code licence"
)

PARAMS_MILLIONS = 655.52
"""Released model: 655,515,838 parameters held (checked by tests against the built network): the
checkpoint's 702.3 M less the never-read ViT classifier heads and depth-alignment UNet, which
are checked and dropped at load."""

_FULL_SIZE = FAMILY.preset(
    name="sharp",
    config=SHARP,
    output_kind=OutputKind.METRIC_DEPTH,
    license=_LICENSE,
    license_class="non-commercial",
    description=(
        "SHARP (Apple, 2025): one photo to ~1.2 M metric 3-D Gaussians for novel views "
        "(Depth Pro network with two depth layers + Gaussian decoder)"
    ),
    sources=(WeightSource("apple/Sharp", "sharp_2572gikvuh.pt", layout="official"),),
    native_resolution="1536x1536",
    params_millions=PARAMS_MILLIONS,
)

PRESETS = (
    _FULL_SIZE,
    _FULL_SIZE.test_variant(
        name="sharp-tiny",
        config=SHARP_TINY,
        description="SHARP code paths on tiny widths (parity tests only; no weights)",
    ),
)
