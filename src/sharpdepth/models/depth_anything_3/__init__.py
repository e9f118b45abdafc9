"""Depth Anything 3 (ByteDance Seed, 2025): monocular, metric and any-view depth.

One family, three kinds of preset:

* any-view (`depth-anything-3-{small,base,large,giant}`): depth up to scale, confidence and a
  camera per view, from one view (`predict`) or several seen together (`predict_views`);
* mono (`depth-anything-3-mono-large`): relative depth + sky;
* metric (`depth-anything-3-metric-large`): metres with the focal rule user > EXIF > the
  focal a DA3 any-view model (depth-anything-3-small) estimates, applied on the processed grid.

Checkpoints: the hub's `model.safetensors` (every key prefixed `model.`) or the bare
`DepthAnything3Net` keys; the any-view head's tied LayerNorm may be stored under one or all
four of its names; the Giant's Gaussian-splatting head is not used and its keys are dropped.

ONNX (`sharpdepth export onnx`, `--backend onnxruntime`): mono and metric presets, one dynamic
graph without the sky fill (see `onnx`); any-view presets are refused in one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ...family import DataConfig, Family, KeyMapError, LicenseClass, ModelSpec, StateDict, WeightSource
from ...result import OutputKind
from ..processing import dinov2_data
from . import configs
from .network import PATCH, DA3Config, DepthAnything3
from .onnx import ONNX
from .processor import DA3Processor, FocalEstimator

if TYPE_CHECKING:
    from torch import nn

HUB_PREFIX = "model."
_TIED_NORM = "head.scratch.output_conv2_aux.{}.2.{}"
_UNUSED_PREFIXES = ("gs_head.", "gs_adapter.")
FOCAL_ESTIMATOR = "depth-anything-3-small"
"""The any-view model that estimates a focal length for the metric model when none is given."""


def hub_to_official(state: StateDict, cfg: DA3Config) -> StateDict:
    """Hub (`model.`-prefixed) or bare keys -> `DepthAnything3Net` keys.

    The any-view head's auxiliary LayerNorm is one module under four names; a checkpoint saved
    with shared tensors deduplicated keeps only some of them, so missing names get the copy held."""
    out = {(k[len(HUB_PREFIX) :] if k.startswith(HUB_PREFIX) else k): v for k, v in state.items()}
    out = {k: v for k, v in out.items() if not k.startswith(_UNUSED_PREFIXES)}
    if cfg.any_view:
        for part in ("weight", "bias"):
            names = [_TIED_NORM.format(i, part) for i in range(4)]
            held = [out[n] for n in names if n in out]
            if not held:
                raise KeyMapError(f"no {_TIED_NORM.format('N', part)} in the checkpoint")
            for name in names:
                out.setdefault(name, held[0])
    return out


def data_config(cfg: DA3Config) -> DataConfig:
    """DA3's process_res rule: long side to `input_size` ('upper_bound'), sides multiples of 14."""
    return dinov2_data(cfg.input_size, "upper_bound", PATCH, output_align_corners=False)


def make_focal_estimator(name: str = FOCAL_ESTIMATOR) -> FocalEstimator:
    """The any-view model `name` (cached or downloaded weights) as a focal estimator."""
    from ...weights.checkpoint import load_state_dict_file
    from ...weights.hub import resolve_weights

    spec = next(s for s in PRESETS if s.name == name)
    resolved = resolve_weights(spec, None, download_ok=True)
    net = spec.build()
    net.load_state_dict(spec.convert_state_dict(load_state_dict_file(resolved.path), resolved.layout), strict=True)
    net.eval()
    return lambda x: estimate_intrinsics(net, x)


def estimate_intrinsics(net: nn.Module, x: torch.Tensor) -> np.ndarray:
    """K (3x3, pixels of the grid of `x`) an any-view network estimates for one normalised input."""
    param = next(net.parameters())
    with torch.inference_mode():
        out = net(x.to(device=param.device, dtype=param.dtype)[None, None])
    return np.asarray(out["intrinsics"][0, 0].double().cpu().numpy())


def _processor(spec: ModelSpec[DA3Config], input_size: int | None) -> DA3Processor:
    metric = spec.output_kind is OutputKind.METRIC_DEPTH
    return DA3Processor(spec, input_size, metric=metric, focal_estimator=make_focal_estimator if metric else None)


FAMILY = Family[DA3Config](
    name="depth_anything_3",
    build=DepthAnything3,
    data=data_config,
    converters={"official": hub_to_official, "hf": hub_to_official},
    processor=_processor,
    onnx=ONNX,
)

_LICENSE_CLASS: dict[str, LicenseClass] = {"Apache-2.0": "commercial", "CC-BY-NC-4.0": "non-commercial"}
_NATIVE = "504 (long side)"


def _preset(
    name: str, cfg: DA3Config, kind: OutputKind, license: str, repo: str | None, description: str, params: float | None
) -> ModelSpec[DA3Config]:
    sources = (WeightSource(f"depth-anything/{repo}", "model.safetensors"),) if repo else ()
    return FAMILY.preset(
        name=name,
        config=cfg,
        output_kind=kind,
        license=license,
        license_class=_LICENSE_CLASS[license],
        description=description,
        sources=sources,
        native_resolution=_NATIVE,
        params_millions=params,
        test_only=repo is None,
    )


_ANY = "any-view: depth up to scale, confidence and cameras, from one view or several together"
PRESETS = (
    _preset("depth-anything-3-small", configs.SMALL, OutputKind.RELATIVE_DEPTH, "Apache-2.0", "DA3-SMALL",
            f"Depth Anything 3 Small (ViT-S) {_ANY}.", 34.3),
    _preset("depth-anything-3-base", configs.BASE, OutputKind.RELATIVE_DEPTH, "Apache-2.0", "DA3-BASE",
            f"Depth Anything 3 Base (ViT-B) {_ANY}.", 135.4),
    _preset("depth-anything-3-large", configs.LARGE, OutputKind.RELATIVE_DEPTH, "CC-BY-NC-4.0", "DA3-LARGE-1.1",
            f"Depth Anything 3 Large 1.1 (ViT-L) {_ANY}.", 410.9),
    _preset("depth-anything-3-giant", configs.GIANT, OutputKind.RELATIVE_DEPTH, "CC-BY-NC-4.0", "DA3-GIANT-1.1",
            f"Depth Anything 3 Giant 1.1 (ViT-g) {_ANY} (its Gaussian-splatting head is not used).", None),
    _preset("depth-anything-3-mono-large", configs.MONO_LARGE, OutputKind.RELATIVE_DEPTH, "Apache-2.0",
            "DA3MONO-LARGE", "Depth Anything 3 Mono Large: relative depth (up to scale) and a sky mask.", 334.2),
    _preset("depth-anything-3-metric-large", configs.MONO_LARGE, OutputKind.METRIC_DEPTH, "Apache-2.0",
            "DA3METRIC-LARGE", "Depth Anything 3 Metric Large: metres from focal length (user > EXIF > "
            "estimated by depth-anything-3-small) and a sky mask.", 334.2),
    _preset("depth-anything-3-mono-tiny", configs.MONO_TINY, OutputKind.RELATIVE_DEPTH, "Apache-2.0", None,
            "Test-only DA3 mono (width 64, 4 blocks; the parity fixture's configuration), no weights.", 0.58),
    _preset("depth-anything-3-mono-vits", configs.MONO_VITS, OutputKind.RELATIVE_DEPTH, "Apache-2.0", None,
            "Test-only DA3 mono on ViT-S (the parity fixture's configuration), no weights.", 24.7),
)  # fmt: skip

__all__ = ["FAMILY", "PRESETS", "DA3Config", "DepthAnything3", "hub_to_official"]
