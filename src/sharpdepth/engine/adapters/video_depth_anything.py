"""Video Depth Anything adapter: the official per-frame pre- and post-processing.

The official `infer_video_depth` / `infer_video_depth_one` preprocess every frame
like Depth Anything V2 with two differences, both reproduced here:

1. a wide-frame rule first: if max(h, w) / min(h, w) > 1.78 the input size shrinks to
   `round(int(size * 1.777 / ratio) / 14) * 14` (memory, per the authors);
2. the frame is converted to *float32* / 255 before the cv2.INTER_CUBIC resize (Depth
   Anything V2 uses float64), so the resized image is rounded to float32 before the
   float64 ImageNet normalisation.

The raw map is resized back to the frame with bilinear `align_corners=True`.

Single images (`predict`) run as one-frame clips: temporal attention over a single
frame. Videos go through `sharpdepth.engine.vda_video`, which reuses this adapter's
`preprocess`/`resize_to_frame` and adds the official windowing or streaming.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import InputImageError, WeightsError
from ...models.depth_anything import IMAGENET_MEAN, IMAGENET_STD, PATCH
from ...models.video_depth_anything import VideoDepthAnything, VideoDepthAnythingConfig, drop_computed_keys
from ..adapter import ModelAdapter, NetworkOutput, Prediction
from ..resize import resize_cubic_cv2
from .depth_anything import network_size


def effective_input_size(height: int, width: int, size: int) -> int:
    """The official wide-frame rule: frames wider (or taller) than 1.78:1 get a smaller input size."""
    ratio = max(height, width) / min(height, width)
    if ratio > 1.78:
        size = int(size * 1.777 / ratio)
        size = round(size / PATCH) * PATCH  # Python round: half to even, as the official code
    return size


def vda_network_size(height: int, width: int, size: int) -> tuple[int, int]:
    """Network input (h, w) for a frame: wide-frame rule, then Depth Anything's lower-bound resize."""
    return network_size(height, width, effective_input_size(height, width, size))


def resize_to_frame(raw: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, h, w) network maps -> (N, height, width) float32, bilinear align_corners=True (official)."""
    return F.interpolate(raw.float()[:, None], size=(height, width), mode="bilinear", align_corners=True)[:, 0]


class Adapter(ModelAdapter):
    """Video Depth Anything, relative (disparity) and metric (metres); same network for both."""

    @property
    def cfg(self) -> VideoDepthAnythingConfig:
        cfg = self.spec.config
        assert isinstance(cfg, VideoDepthAnythingConfig)
        return cfg

    @property
    def size(self) -> int:
        """Shorter side of the network input: `input_size` if given, else 518."""
        return int(self.input_size or self.cfg.input_size)

    def build_network(self) -> nn.Module:
        return VideoDepthAnything(self.cfg)

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise InputImageError(f"expected an HxWx3 uint8 RGB frame, got {rgb.dtype} {rgb.shape}")
        height, width = rgb.shape[:2]
        out_h, out_w = vda_network_size(height, width, self.size)
        image = rgb.astype(np.float32) / np.float32(255.0)
        # cv2 resizes the float32 image and returns float32: round our float64 result the same way.
        resized = resize_cubic_cv2(image.astype(np.float64), out_h, out_w).astype(np.float32)
        normalised = (resized - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
        return torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)).astype(np.float32))

    def forward(self, net: nn.Module, batch: torch.Tensor) -> list[NetworkOutput]:
        """Images (N, 3, h, w) -> one-frame clips (N, 1, 3, h, w): no temporal context."""
        param = next(net.parameters())
        with torch.inference_mode():
            out = net(batch.to(device=param.device, dtype=param.dtype)[:, None])
        return [NetworkOutput(map=m[0].float().cpu()) for m in out]

    def postprocess(self, out: NetworkOutput, height: int, width: int, focal_px: float | None) -> Prediction:
        resized = resize_to_frame(out.map[None], height, width)[0]
        return Prediction(map=resized.numpy().astype(np.float32), focal_px=focal_px, focal_from_model=False)

    def convert_state_dict(self, state: dict[str, torch.Tensor], layout: str) -> dict[str, torch.Tensor]:
        """Official files carry the computed temporal position tables: verify and drop them."""
        if layout != "official":
            return super().convert_state_dict(state, layout)
        try:
            return drop_computed_keys(self.cfg, state)
        except ValueError as exc:
            raise WeightsError(f"{self.spec.name}: {exc}") from None
