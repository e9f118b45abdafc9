"""Video Depth Anything as a family: per-frame processing, the family's facts and its presets."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import nn

from ...family import DataConfig, Family, KeyMapError, LicenseClass, ModelSpec, NetworkOutput, Training, WeightSource
from ...result import OutputKind
from ..depth_anything.network import data_config as depth_anything_data
from ..depth_anything.network import make_config
from ..processing import MapProcessor, check_network_size, check_rgb, network_outputs
from ..resize import resize_cubic_cv2
from .network import VideoDepthAnything, VideoDepthAnythingConfig, drop_computed_keys, vda_network_size
from .video import vda_video_maps


def data_config(cfg: VideoDepthAnythingConfig) -> DataConfig:
    """Depth Anything V2's pipeline (lower bound, multiples of 14, OpenCV cubic, ImageNet, bilinear
    align_corners=True back); `VdaProcessor` adds the wide-frame rule and the float32 input."""
    return replace(depth_anything_data(cfg.base), input_size=cfg.input_size, output_align_corners=True)


class VdaProcessor(MapProcessor[VideoDepthAnythingConfig]):
    """The per-frame pre/post-processing of the official `infer_video_depth(_one)`.

    Two differences from Depth Anything V2, both reproduced: the wide-frame rule
    (`effective_input_size`), and the frame is converted to *float32* / 255 before the
    cv2.INTER_CUBIC resize (V2: float64), so the resized image is rounded to float32
    before the float64 ImageNet normalisation. Single images (`predict`) run as one-frame
    clips; videos go through this package's `video.vda_video_maps`, which adds the official
    windowing or streaming on top of `preprocess` and `resize_to_frame`.
    """

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        out = vda_network_size(height, width, self.input_size)
        check_network_size(self.name, height, width, out, self.data, self.input_size)
        return out

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        check_rgb(rgb)
        out_h, out_w = self.network_size(*rgb.shape[:2])
        image = rgb.astype(np.float32) / np.float32(255.0)
        # cv2 resizes the float32 image and returns float32: round our float64 result the same way.
        resized = resize_cubic_cv2(image.astype(np.float64), out_h, out_w).astype(np.float32)
        normalised = (resized - np.asarray(self.data.mean)) / np.asarray(self.data.std)
        return torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)).astype(np.float32))

    def forward(self, net: nn.Module, batch: torch.Tensor) -> list[NetworkOutput]:
        """Images (N, 3, h, w) -> one-frame clips (N, 1, 3, h, w): no temporal context."""
        param = next(net.parameters())
        with torch.inference_mode():  # (N, 1, h, w): one map per one-frame clip, on the device
            return network_outputs(net(batch.to(device=param.device, dtype=param.dtype)[:, None]))


def _official_converter(state: dict[str, torch.Tensor], cfg: VideoDepthAnythingConfig) -> dict[str, torch.Tensor]:
    """Official files carry the computed temporal position tables: verify and drop them."""
    try:
        return drop_computed_keys(cfg, state)
    except ValueError as exc:
        raise KeyMapError(str(exc)) from None


FAMILY = Family[VideoDepthAnythingConfig](
    name="video_depth_anything",
    build=VideoDepthAnything,
    data=data_config,
    converters={"official": _official_converter},
    processor=VdaProcessor,
    training=Training(
        parts=(("head.scratch.output_conv", "head"), ("pretrained.", "encoder"), ("head.", "decoder")),
        relative_loss="ssi",
    ),
    video_runner=vda_video_maps,
)


# ----------------------------------------------------------------- presets


def make_vda_config(encoder: str, metric: bool = False) -> VideoDepthAnythingConfig:
    """Official configuration (run.py model_configs): Depth Anything V2's widths and taps per encoder."""
    return VideoDepthAnythingConfig(base=make_config("v2", encoder), metric=metric)


_SIZES = {"vits": "small", "vitb": "base", "vitl": "large"}
# Official README: "Video-Depth-Anything-Small model is under the Apache-2.0 license.
# Video-Depth-Anything-Base/Large model is under the CC-BY-NC-4.0 license."
_LICENSE: dict[str, tuple[str, LicenseClass]] = {
    "vits": ("Apache-2.0", "commercial"),
    "vitb": ("CC-BY-NC-4.0", "non-commercial"),
    "vitl": ("CC-BY-NC-4.0", "non-commercial"),
}
# Learned parameters of our network (= official state dict minus the 8 computed tables), counted.
_PARAMS_M = {"vits": 29.035137, "vitb": 114.441409, "vitl": 384.390337}
_NATIVE = "518 (shorter side)"


def _presets() -> list[ModelSpec[VideoDepthAnythingConfig]]:
    specs = []
    for enc, size in _SIZES.items():
        title = size.capitalize()
        licence, licence_class = _LICENSE[enc]
        specs.append(
            FAMILY.preset(
                name=f"video-depth-anything-{size}",
                config=make_vda_config(enc),
                output_kind=OutputKind.RELATIVE_DISPARITY,
                license=licence,
                license_class=licence_class,
                description=(
                    f"Video Depth Anything {size} ({enc}): temporally consistent relative disparity "
                    "for videos (32-frame windows or streaming)."
                ),
                sources=(
                    WeightSource(f"depth-anything/Video-Depth-Anything-{title}", f"video_depth_anything_{enc}.pth"),
                ),
                native_resolution=_NATIVE,
                params_millions=_PARAMS_M[enc],
            )
        )
        specs.append(
            FAMILY.preset(
                name=f"video-depth-anything-metric-{size}",
                config=make_vda_config(enc, metric=True),
                output_kind=OutputKind.METRIC_DEPTH,
                license=licence,
                license_class=licence_class,
                description=(
                    f"Metric Video Depth Anything {size} ({enc}), trained on Virtual KITTI and IRS: "
                    "temporally consistent depth in metres for videos."
                ),
                sources=(
                    WeightSource(
                        f"depth-anything/Metric-Video-Depth-Anything-{title}", f"metric_video_depth_anything_{enc}.pth"
                    ),
                ),
                native_resolution=_NATIVE,
                params_millions=_PARAMS_M[enc],
            )
        )
    small, small_metric = specs[:2]  # the vits presets: Apache-2.0, like the tiny test networks
    for full, name, metric in ((small, "video-depth-anything-tiny", False),
                               (small_metric, "video-depth-anything-metric-tiny", True)):  # fmt: skip
        description = "Test-only Video Depth Anything (width 64, 6 blocks): plumbing tests, no weights."
        specs.append(
            full.test_variant(name=name, config=make_vda_config("tiny", metric=metric), description=description)
        )
    return specs


PRESETS = tuple(_presets())
