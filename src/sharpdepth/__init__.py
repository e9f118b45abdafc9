"""sharpdepth: sharp monocular depth — metric where the model is metric — and what you do with it.

import sharpdepth
model = sharpdepth.load("depth-pro")          # weights: file > cache > Hugging Face hub
result = model.predict("photo.jpg")            # path, PIL image or HxWx3 uint8 array
result.depth, result.focal_px, result.fov_deg, result.focal_source
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import (
    InputImageError,
    OptionError,
    RelativeDepthError,
    SharpDepthError,
    WeightsError,
)
from .registry import DEFAULT_MODEL as DEFAULT_MODEL
from .result import DepthResult, FocalSource, OutputKind, SceneResult
from .version import __version__ as __version__

__all__ = [
    "DepthResult",
    "FocalSource",
    "Gaussians",
    "InputImageError",
    "OptionError",
    "OutputKind",
    "RelativeDepthError",
    "SceneResult",
    "SharpDepthError",
    "WeightsError",
    "list_models",
    "load",
]

if TYPE_CHECKING:
    from .engine.model import load as load
    from .family import LicenseClass
    from .geometry.gaussians import Gaussians

DEFAULT_MAX_PIXELS = 89_478_485
"""Pillow's decompression-bomb limit, as `sharpdepth.io.images.DEFAULT_MAX_PIXELS` (repeated here so
that `import sharpdepth` does not import the image stack)."""


def list_models(
    include_test_only: bool = False,
    *,
    kind: OutputKind | str | None = None,
    family: str | None = None,
    license: LicenseClass | None = None,
) -> list[str]:
    """Names of the registered models, filtered by output kind ("metric_depth" or
    "relative_disparity"), family ("depth_pro", "depth_anything", "midas", ...) and licence
    class ("commercial": the weights' licence allows commercial use; "non-commercial").

    `include_test_only=True` adds the test presets ("depth-pro-tiny", "depth-anything-v2-tiny",
    ...): tiny networks without published weights, to try every command offline (`sharpdepth
    weights random NAME FILE` writes a checkpoint of their random initialisation)."""
    from .registry import list_specs

    specs = list_specs(include_test_only, kind=kind, family=family, license=license)
    return [spec.name for spec in specs]


def __getattr__(name: str) -> object:
    """`sharpdepth.load` and `sharpdepth.Gaussians` on first use (they need torch and NumPy;
    `import sharpdepth` stays light). `load` is `sharpdepth.engine.model.load` itself, so its
    options and their documentation are written once."""
    if name == "load":
        from .engine.model import load

        return load
    if name == "Gaussians":
        from .geometry.gaussians import Gaussians

        return Gaussians
    raise AttributeError(f"module 'sharpdepth' has no attribute {name!r}")
