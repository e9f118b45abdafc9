"""sharpdepth: sharp monocular depth — metric where the model is metric — and what you do with it.

import sharpdepth
model = sharpdepth.load("depth-pro")          # weights: file > cache > Hugging Face hub
result = model.predict("photo.jpg")            # path, PIL image or HxWx3 uint8 array
result.depth, result.focal_px, result.fov_deg, result.focal_source
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    InputImageError,
    OptionError,
    RelativeDepthError,
    SharpDepthError,
    WeightsError,
)
from .result import DepthResult, FocalSource, OutputKind

__version__ = "0.1.0"

__all__ = [
    "DepthResult",
    "FocalSource",
    "InputImageError",
    "OptionError",
    "OutputKind",
    "RelativeDepthError",
    "SharpDepthError",
    "WeightsError",
    "list_models",
    "load",
]

if TYPE_CHECKING:
    from .engine.model import DepthModel


def load(name: str = "depth-pro", **kwargs: Any) -> DepthModel:
    """Load a named model; see `sharpdepth.engine.model.load` for the options."""
    from .engine.model import load as _load

    return _load(name, **kwargs)


def list_models(include_test_only: bool = False) -> list[str]:
    from .registry import list_specs

    return [spec.name for spec in list_specs(include_test_only)]
