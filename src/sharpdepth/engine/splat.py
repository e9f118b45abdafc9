"""Photo -> metric 3-D Gaussians (`DepthModel.predict_gaussians`), for models whose processor
offers it (`models.splats.SplatProcessor`; SHARP today).

Focal length, the one number that sets the scene's metric scale: the user's value (pixels,
or a 35 mm-equivalent length) > EXIF > the model's documented default (SHARP's official tool
assumes a 30 mm lens). `Gaussians.focal_source` says which one was used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import OptionError
from ..geometry.gaussians import Gaussians
from ..io.images import as_loaded_image
from ..models.processing import to_numpy
from ..models.splats import SplatProcessor
from ..result import FocalSource, focal_from_35mm

if TYPE_CHECKING:
    from .model import DepthModel, ImageInput


def _positive(name: str, value: float) -> float:
    if not (np.isfinite(value) and value > 0):
        raise OptionError(f"{name} must be a positive number, got {value}")
    return float(value)


def resolve_focal(
    width: int,
    height: int,
    focal_px: float | None,
    focal_35mm: float | None,
    exif_px: float | None,
    default_35mm: float,
) -> tuple[float, FocalSource]:
    """(focal length in pixels, where it came from) by the rule in the module docstring."""
    if focal_px is not None and focal_35mm is not None:
        raise OptionError("give either focal_px or focal_35mm, not both")
    if focal_px is not None:
        return _positive("focal length (pixels)", focal_px), FocalSource.USER
    if focal_35mm is not None:
        return focal_from_35mm(_positive("35 mm focal length", focal_35mm), width, height), FocalSource.USER
    if exif_px is not None:
        return float(exif_px), FocalSource.EXIF
    return focal_from_35mm(default_35mm, width, height), FocalSource.DEFAULT


def predict_gaussians(
    model: DepthModel, image: ImageInput, focal_px: float | None = None, focal_35mm: float | None = None
) -> Gaussians:
    """The Gaussians of one picture, metres, OpenCV camera frame of that picture."""
    processor = model.processor
    if not isinstance(processor, SplatProcessor):
        raise OptionError(f"model {model.name} does not predict 3-D Gaussians (use a SHARP model, e.g. sharp)")
    img = as_loaded_image(image, model.max_pixels)
    exif = img.exif_focal.focal_px if img.exif_focal is not None else None
    focal, source = resolve_focal(img.width, img.height, focal_px, focal_35mm, exif, processor.default_focal_35mm)
    x = processor.preprocess(img.rgb)
    out = processor.predict_gaussians(model.net, x, img.height, img.width, focal)
    return Gaussians(
        means=to_numpy(out.means),
        scales=to_numpy(out.scales),
        quaternions=to_numpy(out.quaternions),
        colors=to_numpy(out.colors),
        opacities=to_numpy(out.opacities),
        focal_px=focal,
        focal_source=source,
        image_size=(img.width, img.height),
        model_name=model.name,
    )
