"""Depth Anything 3's official pre- and post-processing (`InputProcessor`, `OutputProcessor`,
the metric rule and the posed alignment of `DepthAnything3.inference`), without autocast.

Input: the long side resized to `input_size` (DA3's process_res, "upper_bound_resize") with
OpenCV on uint8 (INTER_AREA down, INTER_CUBIC up; Python's half-to-even rounding), then each
side to the nearest multiple of 14 (ties up) by a second resize only when a side changes;
ToTensor + ImageNet Normalize in float32. Views of different sizes are centre-cropped to the
smallest grid (principal points moved), as DA3 does.

Output: DA3 returns maps at the processed grid (`output_size="network"`); at the image size
("image") depth and confidence are resized bilinearly, sky is thresholded after the resize,
and intrinsics are scaled per axis. Sky is `sky >= 0.5` (the fill inside the network used 0.3).

Metric model (`metric=True`): depth * focal / 300 with the focal of the processed grid, (fx_proc +
fy_proc) / 2, as DA3's Nested model applies it; the focal is the user's, else EXIF, else the
horizontal focal a DA3 any-view model estimates (`focal_estimator`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...errors import InputImageError, OptionError
from ...family import NetworkOutput, OutputSize, Prediction, ViewsPrediction
from ..processing import IMAGENET_MEAN, IMAGENET_STD, check_rgb, to_numpy
from .camera import normalise_world_to_cam, rigid_inverse, umeyama_scale
from .network import PATCH, DA3Config

if TYPE_CHECKING:
    from ...family import ModelSpec

SKY_MASK_THRESHOLD = 0.5
METRIC_FOCAL_PX = 300.0
"""DA3Metric's canonical focal: metres = focal_px (processed grid) * output / 300."""
MAX_AREA_FACTOR = 16

FocalEstimator = Callable[[torch.Tensor], np.ndarray]
"""A normalised network input (3, h, w) -> the intrinsics (3x3) an any-view model estimates on that grid."""


def upper_bound_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) after DA3's long-side resize (no resize when the long side already is `size`)."""
    longest = max(height, width)
    if longest == size:
        return height, width
    scale = size / float(longest)
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def nearest_multiple(x: int, p: int = PATCH) -> int:
    """Nearest multiple of p, ties going up (DA3 `_make_divisible_by_resize`)."""
    down = (x // p) * p
    up = down + p
    return max(1, up if abs(up - x) <= abs(x - down) else down)


def _cv2_resize(rgb: np.ndarray, height: int, width: int, grow: bool) -> np.ndarray:
    interpolation = cv2.INTER_CUBIC if grow else cv2.INTER_AREA
    return np.ascontiguousarray(cv2.resize(rgb, (width, height), interpolation=interpolation))


def normalise(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 3xHxW float32, exactly torchvision's ToTensor + Normalize(ImageNet)."""
    rgb = rgb if rgb.flags.writeable and rgb.flags.c_contiguous else np.array(rgb, order="C")
    t = torch.from_numpy(rgb).permute(2, 0, 1).contiguous().float().div(255)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32)[:, None, None]
    return (t - mean) / std


def centred_intrinsics(focal_px: float, height: int, width: int) -> np.ndarray:
    return np.array([[focal_px, 0.0, width / 2], [0.0, focal_px, height / 2], [0.0, 0.0, 1.0]])


def scale_intrinsics(k: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """K of the same camera on a grid resized by (sx, sy): row 0 times sx, row 1 times sy."""
    out = np.array(k, dtype=np.float64)
    out[0] *= sx
    out[1] *= sy
    return out


class DA3Processor:
    """The official pipeline of one DA3 model at one input size (see the module docstring)."""

    def __init__(
        self,
        spec: ModelSpec[DA3Config],
        input_size: int | None = None,
        metric: bool = False,
        focal_estimator: Callable[[], FocalEstimator] | None = None,
    ) -> None:
        self.name = spec.name
        self.cfg = spec.config
        if input_size is None:
            input_size = self.cfg.input_size
        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < PATCH:
            raise OptionError(
                f"input size for {spec.name} must be a whole number of pixels >= {PATCH}, got {input_size!r}"
            )
        self._size = input_size
        self.metric = metric
        self._make_estimator = focal_estimator
        self._estimator: FocalEstimator | None = None

    @property
    def input_size(self) -> int:
        return self._size

    # ------------------------------------------------------------ input
    def network_size(self, height: int, width: int) -> tuple[int, int]:
        h, w = upper_bound_size(height, width, self._size)
        out = nearest_multiple(h), nearest_multiple(w)
        if min(out) < PATCH:
            raise InputImageError(
                f"a {width}x{height} image is too elongated for {self.name} (network input {out[1]}x{out[0]})"
            )
        if out[0] * out[1] > MAX_AREA_FACTOR * self._size**2:
            raise InputImageError(f"a {width}x{height} image is too large a network input for {self.name}")
        return out

    def resized(self, rgb: np.ndarray) -> np.ndarray:
        """The uint8 picture the network sees (before normalisation)."""
        check_rgb(rgb)
        height, width = rgb.shape[:2]
        h, w = upper_bound_size(height, width, self._size)
        if (h, w) != (height, width):
            rgb = _cv2_resize(rgb, h, w, grow=self._size > max(height, width))
        nh, nw = self.network_size(height, width)
        if (nh, nw) != (h, w):
            rgb = _cv2_resize(rgb, nh, nw, grow=nh > h or nw > w)
        return rgb

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        return normalise(self.resized(rgb))

    # ------------------------------------------------------------ network
    def forward(self, net: nn.Module, batch: torch.Tensor) -> list[NetworkOutput]:
        """Each image is its own one-view scene (DA3's API with one image)."""
        param = next(net.parameters())
        with torch.inference_mode():
            out = net(batch.to(device=param.device, dtype=param.dtype)[:, None])
        keys = [k for k in ("confidence", "sky", "intrinsics") if k in out]
        outputs = []
        for i in range(batch.shape[0]):
            extras = {k: out[k][i, 0].float() for k in keys}
            if self.metric:  # the focal estimator (no focal given) sees the same processed picture
                extras["input"] = batch[i]
            outputs.append(NetworkOutput(map=out["depth"][i, 0].float(), extras=extras))
        return outputs

    # ------------------------------------------------------------ output
    def postprocess(self, out: NetworkOutput, height: int, width: int, focal_px: float | None) -> Prediction:
        """Maps at height x width; `focal_px` (user or EXIF) is in pixels of that grid."""
        h, w = out.map.shape
        sx, sy = width / w, height / h
        k_net = out.extras.get("intrinsics")
        from_model = focal_px is None and k_net is not None
        if from_model and k_net is not None:
            k = scale_intrinsics(k_net.double().cpu().numpy(), sx, sy)
        elif focal_px is not None:
            k = centred_intrinsics(focal_px, height, width)
        else:
            k = None
        depth = out.map
        if self.metric:
            depth, k, from_model = self._metric(depth, k, sx, sy, out)
        confidence = out.extras.get("confidence")
        sky = out.extras.get("sky")
        return Prediction(
            map=to_numpy(_resize(depth, height, width)),
            focal_px=None if k is None else float(k[0, 0]),
            focal_from_model=from_model,
            confidence=None if confidence is None else to_numpy(_resize(confidence, height, width)),
            sky=None if sky is None else to_numpy(_resize(sky, height, width)) >= SKY_MASK_THRESHOLD,
            intrinsics=k,
        )

    def _metric(
        self, depth: torch.Tensor, k: np.ndarray | None, sx: float, sy: float, out: NetworkOutput
    ) -> tuple[torch.Tensor, np.ndarray, bool]:
        """Metres: depth * (fx + fy) / 2 / 300 with the focal of the processed grid; `k` (user or
        EXIF) is at the output grid, else the any-view estimator's K of the processed grid."""
        if k is not None:
            focal_net = (k[0, 0] / sx + k[1, 1] / sy) / 2
            return depth * (focal_net / METRIC_FOCAL_PX), k, False
        if self._make_estimator is None or "input" not in out.extras:
            raise OptionError(f"{self.name} needs a focal length (give focal_px / --focal-px, or a photo with EXIF)")
        if self._estimator is None:
            self._estimator = self._make_estimator()
        k_net = self._estimator(out.extras["input"])
        focal_net = (k_net[0, 0] + k_net[1, 1]) / 2
        return depth * (focal_net / METRIC_FOCAL_PX), scale_intrinsics(k_net, sx, sy), True

    # ------------------------------------------------------------ several views
    def predict_views(
        self,
        net: nn.Module,
        images: list[np.ndarray],
        intrinsics: np.ndarray | None,
        cam_to_world: np.ndarray | None,
        output_size: OutputSize,
    ) -> ViewsPrediction:
        if not self.cfg.any_view:
            raise OptionError(f"{self.name} is a single-view model; several views need an any-view model")
        if len(images) > self.cfg.max_views:
            raise OptionError(
                f"{len(images)} views are more than {self.name} runs together (limit {self.cfg.max_views}); "
                "split the scene or pick fewer views"
            )
        pictures = [self.resized(rgb) for rgb in images]
        crop_h, crop_w = min(p.shape[0] for p in pictures), min(p.shape[1] for p in pictures)
        boxes = [((p.shape[0] - crop_h) // 2, (p.shape[1] - crop_w) // 2) for p in pictures]
        batch = torch.stack(
            [normalise(p[t : t + crop_h, le : le + crop_w]) for p, (t, le) in zip(pictures, boxes, strict=True)]
        )
        # per view: (sx, sy) from the cropped network grid to the returned map, and the crop offset
        scales = []
        for rgb, p in zip(images, pictures, strict=True):
            fx, fy = rgb.shape[1] / p.shape[1], rgb.shape[0] / p.shape[0]
            scales.append((fx, fy) if output_size == "image" else (1.0, 1.0))
        k_net = None
        if intrinsics is not None:
            k_net = np.stack(
                [
                    _to_crop(scale_intrinsics(k, p.shape[1] / rgb.shape[1], p.shape[0] / rgb.shape[0]), box)
                    for k, rgb, p, box in zip(intrinsics, images, pictures, boxes, strict=True)
                ]
            )
        raw = self._run_views(net, batch, k_net, cam_to_world)
        c2w_pred = rigid_inverse(_homogeneous(raw["world_to_cam"][0].double())).cpu().numpy()
        depth_scale = 1.0
        if cam_to_world is not None:  # depth into the given poses' units; cameras are the given ones
            fitted = umeyama_scale(cam_to_world[:, :3, 3], c2w_pred[:, :3, 3])
            # predicted centres that do not spread (duplicate views) fit no scale: keep the network's units
            depth_scale = 1.0 / fitted if np.isfinite(fitted) and fitted > 1e-9 else 1.0
            cameras = np.asarray(cam_to_world, dtype=np.float64)
        else:
            cameras = c2w_pred
        views = []
        for i, (sx, sy) in enumerate(scales):
            height, width = round(crop_h * sy), round(crop_w * sx)
            crop = _image_crop(images[i], pictures[i], boxes[i], (crop_h, crop_w))
            k = k_net[i] if k_net is not None else raw["intrinsics"][0, i].double().cpu().numpy()
            views.append(
                Prediction(
                    map=to_numpy(_resize(raw["depth"][0, i].float() * depth_scale, height, width)),
                    focal_px=float(k[0, 0] * width / crop_w),
                    focal_from_model=k_net is None,
                    confidence=to_numpy(_resize(raw["confidence"][0, i].float(), height, width)),
                    intrinsics=scale_intrinsics(k, width / crop_w, height / crop_h),
                    crop=crop,
                )
            )
        return ViewsPrediction(views=views, cam_to_world=cameras)

    def _run_views(
        self, net: nn.Module, batch: torch.Tensor, k_net: np.ndarray | None, cam_to_world: np.ndarray | None
    ) -> dict[str, torch.Tensor]:
        """One forward of the views as one scene; known cameras through the camera encoder
        (DA3 needs both poses and intrinsics for it; poses alone are used by the alignment only)."""
        param = next(net.parameters())
        x = batch.to(device=param.device, dtype=param.dtype)[None]
        w2c = k = None
        if cam_to_world is not None and k_net is not None:
            w2c_given = torch.linalg.inv(torch.as_tensor(cam_to_world, dtype=torch.float64))
            w2c = normalise_world_to_cam(w2c_given.float()[None]).to(param.device)
            k = torch.as_tensor(k_net, dtype=torch.float32, device=param.device)[None]
        with torch.inference_mode():
            out: dict[str, torch.Tensor] = net(x, w2c, k)
        return out


def _image_crop(
    rgb: np.ndarray, picture: np.ndarray, box: tuple[int, int], size: tuple[int, int]
) -> tuple[int, int, int, int] | None:
    """The centre crop of a view's network picture in pixels of its input image (None: no crop)."""
    if box == (0, 0) and size == picture.shape[:2]:
        return None
    fy, fx = rgb.shape[0] / picture.shape[0], rgb.shape[1] / picture.shape[1]
    return round(box[0] * fy), round(box[1] * fx), round(size[0] * fy), round(size[1] * fx)


def _homogeneous(m: torch.Tensor) -> torch.Tensor:
    """(..., 3, 4) -> (..., 4, 4)."""
    bottom = torch.zeros(m.shape[:-2] + (1, 4), dtype=m.dtype, device=m.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat([m, bottom], dim=-2)


def _to_crop(k: np.ndarray, box: tuple[int, int]) -> np.ndarray:
    out = np.array(k, dtype=np.float64)
    out[0, 2] -= box[1]
    out[1, 2] -= box[0]
    return out


def _resize(values: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A (h, w) map at height x width (bilinear; the map itself when the size is already right)."""
    if tuple(values.shape) == (height, width):
        return values
    return F.interpolate(values.float()[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
