"""Depth Pro adapter: the official pre- and post-processing around `DepthPro`.

The official `DepthPro.infer` (apple/ml-depth-pro @ 9efe5c1) is reproduced step by step:

- preprocess: uint8 RGB -> float in [0, 1] (ToTensor) -> normalise with mean 0.5 / std
  0.5 -> bilinear resize (align_corners=False, no antialias) to 1536x1536. The order is
  the official one (normalise, then resize) even though both are linear, so that the
  float rounding matches too.
- forward: canonical inverse depth (inverse depth for a focal length equal to the image
  width) and the FOV head's field of view, per image.
- postprocess: f_px = the given focal length, else 0.5 * W / tan(0.5 * fov); inverse
  depth = canonical * W / f_px; bilinear resize (align_corners=False) back to H x W at
  *inverse depth*, then depth = 1 / clamp(inverse depth, 1e-4, 1e4) metres. Resizing the
  inverse (not the depth) is what the official code does and keeps far-away pixels from
  bleeding into edges.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import OptionError
from ...models.depth_pro import DepthPro, DepthProConfig
from ...weights.keymaps.depth_pro import hf_to_official
from ..adapter import ModelAdapter, NetworkOutput, Prediction

MEAN = 0.5
STD = 0.5
INVERSE_DEPTH_RANGE = (1e-4, 1e4)


class Adapter(ModelAdapter):
    @property
    def config(self) -> DepthProConfig:
        return self.spec.config

    def _size(self) -> int:
        size = self.config.img_size
        if self.input_size not in (None, size):
            raise OptionError(f"{self.spec.name} runs at a fixed {size}x{size}; input size cannot be changed")
        return size

    def build_network(self) -> nn.Module:
        return DepthPro(self.config)

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        size = self._size()
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div(255.0)
        x = x.sub(MEAN).div(STD)
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False)[0]
        return x

    def forward(self, net: nn.Module, batch: torch.Tensor) -> list[NetworkOutput]:
        param = next(net.parameters())
        with torch.inference_mode():
            inverse_depth, fov = net(batch.to(param.device, param.dtype))
            maps = inverse_depth[:, 0].float().cpu()
            fovs = fov.float().cpu().tolist() if fov is not None else [None] * len(maps)
        return [NetworkOutput(map=m, fov_deg=f) for m, f in zip(maps, fovs, strict=True)]

    def postprocess(self, out: NetworkOutput, height: int, width: int, focal_px: float | None) -> Prediction:
        from_model = focal_px is None
        if from_model:
            if out.fov_deg is None:
                raise OptionError(f"{self.spec.name} has no FOV head here; give a focal length")
            # float32 tensor maths, like the official code.
            fov = torch.tensor(out.fov_deg, dtype=torch.float32)
            f_px = 0.5 * width / torch.tan(0.5 * torch.deg2rad(fov))
            scale: float | torch.Tensor = width / f_px
            focal = float(f_px)
        else:
            scale = width / focal_px
            focal = float(focal_px)
        inverse_depth = out.map.float()[None, None] * scale
        if inverse_depth.shape[-2:] != (height, width):
            inverse_depth = F.interpolate(inverse_depth, size=(height, width), mode="bilinear", align_corners=False)
        depth = 1.0 / torch.clamp(inverse_depth, *INVERSE_DEPTH_RANGE)
        return Prediction(
            map=depth[0, 0].numpy().astype(np.float32, copy=False), focal_px=focal, focal_from_model=from_model
        )

    def convert_state_dict(self, state: dict[str, torch.Tensor], layout: str) -> dict[str, torch.Tensor]:
        if layout == "hf":
            return hf_to_official(state)
        return super().convert_state_dict(state, layout)
