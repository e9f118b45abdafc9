"""Official pre- and post-processing, driven by a family's `DataConfig`.

Depth Anything and MiDaS (and every network that returns one (N, h, w) map) share one
pipeline, which their official code writes twice (`Resize` + `NormalizeImage` +
`PrepareForNet`, then `F.interpolate` back):

1. RGB uint8 -> float64 / 255;
2. the official `Resize.get_size` rule (`official_resize_hw`) to sides that are multiples
   of the patch/stride;
3. `cv2.resize(..., INTER_CUBIC)` on the float64 image, reproduced bit for bit by
   `resize_cubic_cv2` (no OpenCV dependency);
4. `(x - mean) / std` in float64, HWC -> CHW, float32;
5. the raw map is resized back to the image with the family's kernel and align_corners.

What differs between models is data (`DataConfig`), so `MapProcessor` has no branches
per family. Input sizes are validated when the processor is made (at `load`), and an
image whose network input would be absurdly large (extreme aspect ratios) is refused
before anything is allocated.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputImageError, OptionError
from ..family import DataConfig, ModelSpec, NetworkOutput, Prediction, SizeRule, decode_output
from .resize import resize_cubic_cv2

if TYPE_CHECKING:
    from ..family import RawNetworkOutput

C = TypeVar("C")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def dinov2_data(input_size: int, size_rule: SizeRule, patch: int, output_align_corners: bool) -> DataConfig:
    """How images enter a DINOv2-encoder model (Depth Anything V1/V2, Depth Anything 3): keep-aspect
    resize (`size_rule`) to sides that are multiples of the patch, at least one patch, ImageNet
    mean/std; the maps go back bilinearly."""
    return DataConfig(
        input_size=input_size, size_rule=size_rule, multiple_of=patch, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        output_kernel="bilinear", output_align_corners=output_align_corners, min_input_size=patch,
    )  # fmt: skip


def midas_data(
    net_size: int,
    size_rule: SizeRule,
    multiple_of: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    input_size_fixed: bool = False,
) -> DataConfig:
    """How images enter a MiDaS model (DPT and v2.1 small), official `run.py`: OpenCV cubic resize
    to multiples of `multiple_of` (at least one), the maps back bicubic with align_corners=False."""
    return DataConfig(
        input_size=net_size, size_rule=size_rule, multiple_of=multiple_of, mean=mean, std=std,
        output_kernel="bicubic", output_align_corners=False, input_size_fixed=input_size_fixed,
        min_input_size=multiple_of,
    )  # fmt: skip


def official_resize_hw(
    height: int, width: int, net_h: int, net_w: int, rule: SizeRule, multiple_of: int
) -> tuple[int, int]:
    """Official `Resize.get_size` (MiDaS / Depth Anything transforms) -> (new_height, new_width).

    'minimal' scales as little as possible (the side closer to its target decides),
    'upper_bound' fits inside the net size, 'lower_bound' covers it, 'squash'/'fixed'
    ignore the aspect ratio (official keep_aspect_ratio=False); each side is then rounded
    to the multiple (numpy round-half-to-even) and floored / ceiled where the rule bounds it.
    """
    scale_h, scale_w = net_h / height, net_w / width
    if rule == "lower_bound":
        scale_h = scale_w = max(scale_h, scale_w)
    elif rule == "upper_bound":
        scale_h = scale_w = min(scale_h, scale_w)
    elif rule == "minimal":
        scale_h = scale_w = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h

    def constrain(x: float, bound: int) -> int:
        y = int(np.round(x / multiple_of) * multiple_of)
        if rule == "upper_bound" and y > bound:
            y = int(math.floor(x / multiple_of) * multiple_of)
        if rule == "lower_bound" and y < bound:
            y = int(math.ceil(x / multiple_of) * multiple_of)
        return y

    return constrain(scale_h * height, net_h), constrain(scale_w * width, net_w)


def validate_input_size(name: str, data: DataConfig, input_size: int | None) -> int:
    """The network input size to use; OptionError (at load time) for one the model cannot run at."""
    if input_size is None:
        return data.input_size
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size <= 0:
        raise OptionError(f"input size must be a positive number of pixels, got {input_size!r}")
    if data.input_size_fixed and input_size != data.input_size:
        size = data.input_size
        raise OptionError(f"{name} runs at a fixed {size}x{size} input; its input size cannot be changed")
    if input_size < data.min_input_size:
        raise OptionError(
            f"input size {input_size} is too small for {name}: at least {data.min_input_size} pixels "
            f"(sides are multiples of {data.multiple_of}; the default is {data.input_size})"
        )
    return input_size


def check_network_size(
    name: str, height: int, width: int, out_hw: tuple[int, int], data: DataConfig, size: int
) -> None:
    """Refuse, before allocating, an image whose network input is empty or absurdly large."""
    out_h, out_w = out_hw
    if min(out_h, out_w) < data.multiple_of:
        raise InputImageError(
            f"a {width}x{height} image is too elongated for {name} (it would resize to {out_w}x{out_h})"
        )
    limit = data.max_area_factor * size * size
    if out_h * out_w > limit:
        raise InputImageError(
            f"a {width}x{height} image is too elongated for {name}: its network input would be "
            f"{out_w}x{out_h} ({out_h * out_w / 1e6:.1f} Mpx, limit {limit / 1e6:.1f}); crop it to a "
            f"less extreme aspect ratio"
        )


def check_network_input(name: str, data: DataConfig, height: int, width: int) -> None:
    """Refuse an exact network input (h, w) the network cannot take, with the rule (e.g. for an export).

    Fixed-size networks take only their size; the others take sides that are multiples of
    `data.multiple_of` (the patch size or the encoder's stride: other sides make the skip
    connections disagree by a pixel deep inside the network).
    """
    if data.input_size_fixed:
        size = data.input_size
        if (height, width) != (size, size):
            raise OptionError(f"{name} takes a fixed {size}x{size} network input, not {height}x{width}")
        return
    step = data.multiple_of
    if height % step or width % step:

        def near(x: int) -> str:
            down, up = (x // step) * step, -(-x // step) * step
            return str(x) if x % step == 0 else f"{down} or {up}" if down else str(up)

        raise OptionError(
            f"{name} takes network inputs whose sides are multiples of {step}; {height}x{width} is not "
            f"(height {near(height)}, width {near(width)})"
        )


def network_outputs(raw: RawNetworkOutput) -> list[NetworkOutput]:
    """A batch's raw forward result -> one `NetworkOutput` per image (maps stay on their device)."""
    maps, fov = decode_output(raw)
    fovs: list[float | None] = [float(f) for f in fov.float().cpu().tolist()] if fov is not None else [None] * len(maps)
    return [NetworkOutput(map=m.float(), fov_deg=f) for m, f in zip(maps, fovs, strict=True)]


def to_numpy(values: torch.Tensor) -> np.ndarray:
    """The one device -> host conversion of a finished map: float32 numpy, no further copy."""
    return values.detach().to(device="cpu", dtype=torch.float32).numpy()


def check_rgb(rgb: np.ndarray) -> None:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InputImageError(f"expected an HxWx3 uint8 RGB image, got {rgb.dtype} {rgb.shape}")
    if min(rgb.shape[:2]) < 1:
        raise InputImageError(f"empty image ({rgb.shape[1]}x{rgb.shape[0]})")


class SizedProcessor(Generic[C]):
    """What every processor starts from: the preset's name, its data config and its input size,
    validated when the processor is made (so a bad size fails at `load`, not on first use)."""

    def __init__(self, spec: ModelSpec[C], input_size: int | None = None) -> None:
        self.name = spec.name
        self.data = spec.data
        self._size = validate_input_size(spec.name, self.data, input_size)

    @property
    def input_size(self) -> int:
        return self._size


class MapProcessor(SizedProcessor[C]):
    """The OpenCV-style official pipeline for networks whose forward returns one (N, h, w) map."""

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        data = self.data
        size = self._size
        out = official_resize_hw(height, width, size, size, data.size_rule, data.multiple_of)
        check_network_size(self.name, height, width, out, data, self._size)
        return out

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        check_rgb(rgb)
        out_h, out_w = self.network_size(*rgb.shape[:2])
        image = resize_cubic_cv2(rgb.astype(np.float64) / 255.0, out_h, out_w)
        image = (image - np.asarray(self.data.mean)) / np.asarray(self.data.std)
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)).astype(np.float32))

    def forward(self, net: nn.Module, batch: torch.Tensor) -> list[NetworkOutput]:
        param = next(net.parameters())
        with torch.inference_mode():
            return network_outputs(net(batch.to(device=param.device, dtype=param.dtype)))

    def postprocess(self, out: NetworkOutput, height: int, width: int, focal_px: float | None) -> Prediction:
        """Resize to the image with the official kernel (on the map's device); the focal length passes through."""
        raw = out.map.float()[None, None]
        data = self.data
        resized = F.interpolate(
            raw, size=(height, width), mode=data.output_kernel, align_corners=data.output_align_corners
        )
        return Prediction(map=to_numpy(resized[0, 0]), focal_px=focal_px, focal_from_model=False)
