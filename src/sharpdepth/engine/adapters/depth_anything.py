"""Depth Anything V1/V2 adapter: the official pre- and post-processing, without OpenCV.

Official pipeline (V2 `image2tensor` / `infer_image`, V1 `run.py`, identical up to
the final resize):

1. RGB uint8 -> float64 / 255;
2. `Resize(keep_aspect_ratio=True, ensure_multiple_of=14, resize_method="lower_bound")`:
   one scale `max(size/h, size/w)` for both sides, each side `np.round(side*scale/14)*14`
   and raised to the next multiple of 14 if that fell below `size` (480x640 -> 518x686);
3. `cv2.resize(..., INTER_CUBIC)` on the float64 image;
4. `(x - mean) / std` in float64 (ImageNet), HWC -> CHW, float32;
5. the raw (h, w) map is resized to the image with bilinear interpolation,
   `align_corners=True` for V2 and `align_corners=False` for V1.

Step 3 is reproduced bit for bit by `sharpdepth.engine.resize.resize_cubic_cv2`. torch's bicubic uses
the same a=-0.75 kernel with half-pixel centres and replicated borders, but OpenCV
computes each sample position in float32 (`fx = (float)((dx+0.5)*scale - 0.5)`) and
stores the tap weights as float32; positions near 600 px are then off by up to ~3e-5
px, enough for 2e-5..2e-4 differences per pixel (measured against cv2 5.0 on upscales
and 4000 -> 686 downscales). Emulating those float32 steps makes the net input
identical to the fixture's `net_input.npy`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import InputImageError
from ...models.depth_anything import IMAGENET_MEAN, IMAGENET_STD, PATCH, DepthAnything, DepthAnythingConfig
from ...weights.keymaps.depth_anything import hf_to_official
from ..adapter import ModelAdapter, NetworkOutput, Prediction
from ..resize import resize_cubic_cv2


def _multiple_of(x: float, multiple: int, min_val: int) -> int:
    """Official `Resize.constrain_to_multiple_of` (no max_val): round-half-even, then ceil if too small."""
    y = int(np.round(x / multiple) * multiple)
    if y < min_val:
        y = int(np.ceil(x / multiple) * multiple)
    return y


def network_size(height: int, width: int, size: int, multiple: int = PATCH) -> tuple[int, int]:
    """Network input (h, w) of the official 'lower_bound' resize: shorter side >= size, multiples of 14."""
    scale = max(size / height, size / width)
    return _multiple_of(scale * height, multiple, size), _multiple_of(scale * width, multiple, size)


class Adapter(ModelAdapter):
    """Depth Anything V1/V2, relative (disparity) and metric (metres)."""

    @property
    def cfg(self) -> DepthAnythingConfig:
        return self.spec.config

    @property
    def size(self) -> int:
        """Shorter side of the network input: `input_size` if given (higher = finer), else 518."""
        return int(self.input_size or self.cfg.input_size)

    def build_network(self) -> nn.Module:
        return DepthAnything(self.cfg)

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InputImageError(f"expected an HxWx3 uint8 RGB image, got {rgb.dtype} {rgb.shape}")
        height, width = rgb.shape[:2]
        out_h, out_w = network_size(height, width, self.size)
        image = resize_cubic_cv2(rgb.astype(np.float64) / 255.0, out_h, out_w)
        image = (image - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32))

    def postprocess(self, out: NetworkOutput, height: int, width: int, focal_px: float | None) -> Prediction:
        """Bilinear resize to the image (V2 align_corners=True, V1 False); focal passes through."""
        raw = out.map.float()[None, None]
        resized = F.interpolate(raw, size=(height, width), mode="bilinear", align_corners=self.cfg.output_align_corners)
        return Prediction(map=resized[0, 0].numpy().astype(np.float32), focal_px=focal_px, focal_from_model=False)

    def convert_state_dict(self, state: dict[str, torch.Tensor], layout: str) -> dict[str, torch.Tensor]:
        if layout == "hf":
            return hf_to_official(state)
        return super().convert_state_dict(state, layout)
