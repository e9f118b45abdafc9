"""Where a geometry/effect command gets its depth: a saved result, or the network.

Every command that works from depth takes the photo plus either `--depth FILE`
(a result written by `sharpdepth predict`; no network, so an effect can be
re-run in seconds with other settings) or `--model NAME [--weights PATH]` to
predict now. Without either, the default model predicts.

Order of work, so that nothing expensive happens before a mistake is found:
the job's settings are built (and validated) first, then the output location
is checked, then the photo is decoded — once: the same pixels go to the
network and to the effect — and only then is a network loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from ..engine.settings import DEFAULT_MODEL
from ..errors import OptionError
from ..geometry.gaussians import Gaussians
from ..io.atomic import cannot_write_in
from ..io.depth_files import match_result_to_image, read_depth_result, result_with_focal
from ..io.images import DEFAULT_MAX_PIXELS, LoadedImage, load_image
from ..io.photos import save_image
from ..maps import check_focal_px
from ..result import DepthResult
from .options import MaxPixelsOpt, OptionBundle, model_settings

# The depth-source options, declared once: see `DEPTH_SOURCE_OPTIONS` below.
DepthOpt = Annotated[
    Path | None, typer.Option("--depth", "-d", help="Saved result (.npz from predict, .npy, ...): skip the network.")
]
ModelOpt = Annotated[
    str | None, typer.Option("--model", "-m", help=f"Predict with this model (default {DEFAULT_MODEL}).")
]
WeightsOpt = Annotated[Path | None, typer.Option("--weights", help="Checkpoint file for --model.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, cuda, mps or auto (when predicting).")]
FocalOpt = Annotated[
    float | None, typer.Option("--focal-px", help="Focal length in pixels (overrides the file's / EXIF / model's).")
]


@dataclass(frozen=True, kw_only=True)
class DepthSource:
    """The photo and where its depth comes from: a saved result (`depth`) or a network (`model`)."""

    image: Path
    depth: Path | None = None
    """A saved result (.npz/.npy/.exr/.pfm/.png from `predict`); None: predict."""
    model: str | None = None
    """Model to predict with; None: the default model (when `depth` is None)."""
    weights: Path | None = None
    device: str = "cpu"
    focal_px: float | None = None
    """Focal length in pixels; overrides the file's, the EXIF's and the model's."""
    max_pixels: int = DEFAULT_MAX_PIXELS
    """Refuse photos with more pixels than this (decompression bombs, accidental giants)."""

    def __post_init__(self) -> None:
        if self.depth is not None and (self.model is not None or self.weights is not None):
            raise OptionError("give either --depth (a saved result) or --model/--weights (predict), not both")
        if self.focal_px is not None:
            check_focal_px(self.focal_px)
        if isinstance(self.max_pixels, bool) or not isinstance(self.max_pixels, int) or self.max_pixels <= 0:
            raise OptionError(f"--max-pixels must be a positive number of pixels, got {self.max_pixels}")

    def obtain(self) -> DepthResult:
        """The depth result with the upright photo attached at matching size (the photo decoded once)."""
        loaded = load_image(self.image, self.max_pixels)
        if self.depth is not None:
            # the reader refuses unreadable, empty and ambiguous files in one line (`sharpdepth.io.depth_files`)
            return read_depth_result(self.depth, focal_px=self.focal_px, image=loaded.rgb)
        return match_result_to_image(predict(loaded, self), loaded.rgb)


def _depth_source_flags(
    image: Annotated[Path, typer.Argument(help="The photo.")],
    depth: DepthOpt = None,
    model: ModelOpt = None,
    weights: WeightsOpt = None,
    device: DeviceOpt = "cpu",
    focal_px: FocalOpt = None,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
) -> None:
    """Declares the depth-source flags (never called)."""


DEPTH_SOURCE_OPTIONS = OptionBundle.of(_depth_source_flags, DepthSource)
"""The photo and --depth, --model, --weights, --device, --focal-px, --max-pixels: a `DepthSource`,
for every effect and geometry command (`@bundled(source=DEPTH_SOURCE_OPTIONS)`)."""


def predict(loaded: LoadedImage, source: DepthSource) -> DepthResult:
    """Run the network on the decoded photo through the public `sharpdepth.load` (imported lazily:
    loading torch is slow)."""
    import sharpdepth

    model = model_settings(
        model=source.model or DEFAULT_MODEL, weights=source.weights, device=source.device,
        max_pixels=source.max_pixels,
    )  # fmt: skip
    net = sharpdepth.load(model.name, weights=model.weights, device=model.device, max_pixels=model.max_pixels)
    return result_with_focal(net.predict(loaded, focal_px=source.focal_px), source.focal_px)


def predict_gaussians(source: DepthSource) -> Gaussians:
    """SHARP's Gaussians of the photo, for an effect's `--source splat`: `--model` (default the
    model `sharpdepth splat` runs), `--weights`, `--device`, and the focal rule of `splat` (user >
    EXIF > the focal model when its weights are at hand > the 30 mm lens)."""
    from ..apps.splat import SplatSettings
    from ..models.splats import SplatProcessor
    from ..registry import DEFAULT_SPLAT_MODEL, get_spec

    if source.depth is not None:
        raise OptionError("--source splat predicts SHARP Gaussians from the photo; --depth is for --source depth")
    name = source.model or DEFAULT_SPLAT_MODEL
    if not isinstance(get_spec(name).processor(), SplatProcessor):
        raise OptionError(f"--source splat: model {name} does not predict 3-D Gaussians (use {DEFAULT_SPLAT_MODEL})")
    import sharpdepth

    loaded = load_image(source.image, source.max_pixels)
    net = sharpdepth.load(name, weights=source.weights, device=source.device, max_pixels=source.max_pixels)
    estimator = SplatSettings(focal_px=source.focal_px).focal_estimator(net.device)
    return net.predict_gaussians(loaded, focal_px=source.focal_px, focal_model=estimator)


# ---------------------------------------------------------------- outputs
def check_output(path: Path) -> Path:
    """Refuse, before any work, an output that cannot be written; nothing is created here.

    The nearest existing folder on the way to `path` must be a folder (not a
    regular file: `-o photo.jpg/x.png`) in which a file can really be created
    (not `/proc`, not read-only); `path` itself must not be a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise OptionError(f"{path}: is a directory; give a file name for the output")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OptionError(f"{path}: cannot be written ({ancestor} is not a directory)")
    reason = cannot_write_in(ancestor)
    if reason is not None:
        raise OptionError(f"{path}: cannot be written ({ancestor}: {reason})")
    return path


def check_image_output(path: Path) -> Path:
    """`check_output`, and the suffix must name an image format that can be written."""
    from PIL import Image

    if Image.registered_extensions().get(path.suffix.lower()) is None:
        raise OptionError(f"{path}: unknown image type {path.suffix!r} (use .png, .jpg or .webp)")
    return check_output(path)


def write_failed(path: Path, exc: OSError) -> OptionError:
    """The one-line error for an output that could not be written after all (disk full, removed folder)."""
    return OptionError(f"{path}: could not be written ({exc.strerror or exc})")


def save_rgb(path: Path, rgb: np.ndarray) -> Path:
    """Write an effect's picture atomically; an OS failure is one line, never a half-written file."""
    try:
        return save_image(path, rgb)
    except OSError as exc:
        raise write_failed(path, exc) from None
