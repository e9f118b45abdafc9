"""Photo -> metric 3-D Gaussians (`DepthModel.predict_gaussians`), for models whose processor
offers it (`models.splats.SplatProcessor`; SHARP today).

Focal length, the one number that sets the scene's metric scale: the user's value (pixels,
or a 35 mm-equivalent length) > EXIF > a focal model's estimate (a model with a FOV head,
`registry.DEFAULT_FOCAL_MODEL` unless told otherwise; only when its weights are at hand, see
`FocalModel`) > the splat model's documented default (SHARP's official tool assumes a 30 mm
lens). `Gaussians.focal_source` says which one was used, `Gaussians.focal_model` which model
estimated it, and `Gaussians.focal_notice` why a wanted focal model was not used.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..errors import OptionError
from ..geometry.gaussians import Gaussians
from ..io.images import as_loaded_image
from ..models.processing import to_numpy
from ..models.splats import SplatProcessor
from ..registry import DEFAULT_FOCAL_MODEL, AnySpec, get_spec
from ..result import FocalSource, focal_from_35mm
from ..weights.hub import find_cached

if TYPE_CHECKING:
    import torch

    from .model import DepthModel, ImageInput

log = logging.getLogger(__name__)


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


def focal_model_spec(name: str) -> AnySpec:
    """The preset named `name` if it can estimate a focal length (its spec has a FOV head), else
    a one-line OptionError: a model without one would silently give nothing."""
    spec = get_spec(name)
    if not spec.has_fov_head:
        raise OptionError(
            f"--focal-model {name}: this model has no field-of-view head; "
            f"name one that has (e.g. {DEFAULT_FOCAL_MODEL}) or none"
        )
    return spec


class ModelLoader(Protocol):
    """`engine.model.load`, handed in by the caller (this module sits below `engine.model`)."""

    def __call__(
        self, name: str, *, weights: str | Path | None, device: str | torch.device | None, download: bool
    ) -> DepthModel: ...


class FocalModel:
    """A model with a FOV head that estimates a picture's focal length for `predict_gaussians`.

    It is loaded on first use (pictures with a user or EXIF focal never need it) and only from
    weights at hand: an explicit file, or the local cache. It never downloads: a splat must not
    start fetching a second multi-GB checkpoint the user did not ask for. When the weights are not
    at hand, `notice` says why (one line, logged once) and the pictures get the default lens.
    """

    def __init__(
        self,
        name: str,
        weights: str | Path | None = None,
        device: str | torch.device | None = "cpu",
        *,
        loader: ModelLoader,
    ) -> None:
        self.loader = loader
        self.spec = focal_model_spec(name)
        self.name = self.spec.name
        self.weights = None if weights is None else Path(weights).expanduser()
        if self.weights is not None and not self.weights.is_file():
            raise OptionError(f"--focal-weights {self.weights}: no such file")
        self.device = device
        self.notice: str | None = None
        self._model: DepthModel | None = None

    def _load(self) -> DepthModel | None:
        """The loaded model, or None (with `notice` set) when its weights are not at hand."""
        if self._model is not None or self.notice is not None:
            return self._model
        if self.weights is None and find_cached(self.spec) is None:
            self.notice = self._not_at_hand()
            log.warning(self.notice)
            return None
        self._model = self.loader(self.name, weights=self.weights, device=self.device, download=False)
        return self._model

    def _not_at_hand(self) -> str:
        why = (
            "its weights are not in the local cache (`sharpdepth weights download "
            f"{self.name}`, or --focal-weights PATH)"
            if self.spec.sources
            else "it has no published weights (pass --focal-weights PATH)"
        )
        return f"focal model {self.name} not used: {why}; assumed the default lens"

    def estimate(self, rgb: np.ndarray) -> float | None:
        """Focal length in pixels of an HxWx3 uint8 picture, from the FOV head; None when not at hand."""
        model = self._load()
        if model is None:
            return None
        result = model.predict(rgb, keep_image=False)
        if result.focal_source != FocalSource.MODEL or result.focal_px is None:
            return None
        return float(result.focal_px)


def predict_gaussians(
    model: DepthModel,
    image: ImageInput,
    focal_px: float | None = None,
    focal_35mm: float | None = None,
    focal_model: FocalModel | None = None,
) -> Gaussians:
    """The Gaussians of one picture, metres, OpenCV camera frame of that picture.

    `focal_model`: estimates the focal length when neither the user nor EXIF gives it (reuse
    one across pictures so that it loads once); None: the official behaviour (user > EXIF >
    the default lens). `DepthModel.predict_gaussians` makes one from a preset name."""
    processor = model.processor
    if not isinstance(processor, SplatProcessor):
        raise OptionError(f"model {model.name} does not predict 3-D Gaussians (use a SHARP model, e.g. sharp)")
    estimator = focal_model
    img = as_loaded_image(image, model.max_pixels)
    exif = img.exif_focal.focal_px if img.exif_focal is not None else None
    focal, source = resolve_focal(img.width, img.height, focal_px, focal_35mm, exif, processor.default_focal_35mm)
    estimated_by, notice = None, None
    if source == FocalSource.DEFAULT and estimator is not None:
        estimate = estimator.estimate(img.rgb)
        if estimate is not None:
            focal, source, estimated_by = (
                _positive("estimated focal length", estimate),
                FocalSource.MODEL,
                estimator.name,
            )
        notice = estimator.notice
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
        focal_model=estimated_by,
        focal_notice=notice,
    )
