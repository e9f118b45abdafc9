"""The engine's option rules, written once: backends, ONNX files, image-size limits and focal lengths.

At the bottom of `engine` (it imports only `errors` and `maps`): the settings objects check a
front end's values with these functions before anything is loaded, and `load` and the model
check a library caller's values with the same functions, so both answer with the same messages.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import OptionError
from ..maps import check_focal_px

BACKENDS = ("torch", "onnxruntime")
"""What runs the network's forward pass (`engine.ort_backend`: fp32 graphs, exported on first use)."""
DEFAULT_BACKEND = "torch"
ONNX_SUFFIX = ".onnx"
DEFAULT_VIDEO_BATCH_SIZE = 4
"""Frames per forward pass of an image model in `predict_video` (frames share a size)."""


def check_backend(backend: str) -> str:
    """The backend's canonical name, or an OptionError naming the choices."""
    name = backend.lower()
    if name not in BACKENDS:
        raise OptionError(f"unknown --backend {backend!r}; choose {', '.join(BACKENDS)}")
    return name


def is_onnx_file(weights: str | Path | None) -> bool:
    return weights is not None and Path(weights).suffix.lower() == ONNX_SUFFIX


def check_torch_weights(weights: str | Path | None) -> None:
    """The torch backend cannot run an exported graph."""
    if is_onnx_file(weights):
        raise OptionError(f"--weights {weights} is an ONNX graph: run it with --backend onnxruntime")


def check_max_pixels(max_pixels: int | None) -> None:
    if max_pixels is not None and max_pixels <= 0:
        raise OptionError(f"--max-pixels must be positive, got {max_pixels}")


def check_fov_deg(fov_deg: float) -> float:
    if not (math.isfinite(fov_deg) and 0 < fov_deg < 180):
        raise OptionError(f"field of view must be between 0 and 180 degrees, got {fov_deg}")
    return float(fov_deg)


def check_focal(focal_px: float | None, fov_deg: float | None) -> None:
    """What a caller says about the focal length: at most one of the two, each in its range."""
    if focal_px is not None and fov_deg is not None:
        raise OptionError("give either focal_px or fov_deg, not both")
    if focal_px is not None:
        check_focal_px(focal_px)
    if fov_deg is not None:
        check_fov_deg(fov_deg)
