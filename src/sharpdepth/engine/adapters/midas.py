"""MiDaS adapter (DPT models and v2.1 small): the official `run.py` pre- and post-processing.

Official pipeline (`utils.read_image`, the transform from `midas.model_loader.load_model`,
`run.process`):

1. RGB uint8 -> float64 / 255;
2. `Resize(net_w, net_h, keep_aspect_ratio, ensure_multiple_of=32, resize_method)`:
   'minimal' for the DPT models (scale as little as possible; 480x640 -> 384x512 at 384,
   512x672 at 512), 'upper_bound' for v2.1 small (480x640 -> 192x256), Swin-V2 squashes
   to 256x256 (keep_aspect_ratio=False); see `models.midas.midas_resize_hw`;
3. `cv2.resize(..., INTER_CUBIC)` on the float64 image, reproduced bit for bit by the
   float32-emulating `resize_cubic_cv2` shared with the Depth Anything adapter (plain
   torch bicubic differs by up to ~2e-5 on up-scales);
4. `(x - mean) / std` in float64 (0.5/0.5 for DPT, ImageNet for small), CHW, float32;
5. the (h, w) output is resized to the image with `F.interpolate(bicubic,
   align_corners=False)` in float32 (bicubic overshoot can leave a few slightly negative
   values; the official pipeline keeps them).

`input_size` replaces net_w = net_h (the official `--height`): larger is finer and slower.
Swin-V2 runs only at its 256x256 grid. The output is relative disparity.

Loading: official checkpoints of BEiT / Swin models carry buffers the network computes
(`models.midas.computed_buffers`); `convert_state_dict` verifies (Swin masks) and drops
them for every layout, after the transformers key conversion for "hf" files.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import InputImageError, OptionError, WeightsError
from ...models.midas import MidasDPT, MidasDPTConfig, drop_computed_keys, midas_resize_hw
from ...registry import ModelSpec
from ...weights.keymaps.midas import hf_to_official
from ..adapter import ModelAdapter, NetworkOutput, Prediction
from ..resize import resize_cubic_cv2


class Adapter(ModelAdapter):
    """Every model registered with family "midas"; the config type selects the network."""

    def __init__(self, spec: ModelSpec, input_size: int | None = None) -> None:
        super().__init__(spec, input_size)
        cfg = spec.config
        if input_size is not None and getattr(cfg, "fixed_input_size", False) and input_size != cfg.net_size:
            raise OptionError(f"{spec.name} runs only at {cfg.net_size}x{cfg.net_size}; drop the input size option")

    @property
    def net_size(self) -> int:
        return int(self.input_size or self.spec.config.net_size)

    def build_network(self) -> nn.Module:
        cfg = self.spec.config
        if isinstance(cfg, MidasDPTConfig):
            return MidasDPT(cfg)
        from ...models.midas_small import MidasNetSmall, MidasSmallConfig  # written separately; imported on use

        if isinstance(cfg, MidasSmallConfig):
            return MidasNetSmall(cfg)
        raise TypeError(f"{self.spec.name}: unsupported MiDaS config {type(cfg).__name__}")

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) the official Resize gives an image of height x width."""
        cfg = self.spec.config
        size = self.net_size
        return midas_resize_hw(height, width, size, size, cfg.resize_method, cfg.keep_aspect_ratio, cfg.multiple_of)

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InputImageError(f"expected an HxWx3 uint8 RGB image, got {rgb.dtype} {rgb.shape}")
        height, width = rgb.shape[:2]
        out_h, out_w = self.network_size(height, width)
        cfg = self.spec.config
        if min(out_h, out_w) < cfg.multiple_of:
            raise InputImageError(
                f"a {width}x{height} image is too elongated for {self.spec.name} (it would resize to {out_w}x{out_h})"
            )
        image = resize_cubic_cv2(rgb.astype(np.float64) / 255.0, out_h, out_w)
        image = (image - np.asarray(cfg.mean)) / np.asarray(cfg.std)
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32))

    def postprocess(self, out: NetworkOutput, height: int, width: int, focal_px: float | None) -> Prediction:
        """Bicubic (align_corners=False) resize to the image, as `run.process`; focal passes through."""
        raw = out.map.float()[None, None]
        resized = F.interpolate(raw, size=(height, width), mode="bicubic", align_corners=False)
        return Prediction(map=resized[0, 0].numpy().astype(np.float32), focal_px=focal_px, focal_from_model=False)

    def convert_state_dict(self, state: dict[str, torch.Tensor], layout: str) -> dict[str, torch.Tensor]:
        cfg = self.spec.config
        if not isinstance(cfg, MidasDPTConfig):
            return super().convert_state_dict(state, layout)
        if layout == "hf":
            state = hf_to_official(state, cfg)
        elif layout != "official":
            return super().convert_state_dict(state, layout)
        try:
            return drop_computed_keys(cfg, state)
        except ValueError as exc:
            raise WeightsError(f"{self.spec.name}: {exc}") from None
