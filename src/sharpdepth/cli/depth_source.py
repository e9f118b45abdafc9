"""Where a geometry/effect command gets its depth: a saved result, or the network.

Every command that works from depth takes the photo plus either `--depth FILE`
(a result written by `sharpdepth predict`; no network, so an effect can be
re-run in seconds with other settings) or `--model NAME [--weights PATH]` to
predict now. Without either, the default model predicts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import OptionError
from ..io.depth_files import match_result_to_image, result_with_focal
from ..io.depth_files import read_depth_result as load_depth_result
from ..io.photos import load_photo
from ..result import DepthResult

DEFAULT_MODEL = "depth-pro"

# Shared option declarations, so every command spells them the same way.
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


def obtain_result(
    image_path: Path,
    depth: Path | None = None,
    model: str | None = None,
    weights: Path | None = None,
    focal_px: float | None = None,
    device: str = "cpu",
) -> DepthResult:
    """The depth result for `image_path`, with the upright photo attached at matching size."""
    if depth is not None and (model is not None or weights is not None):
        raise OptionError("give either --depth (a saved result) or --model/--weights (predict), not both")
    rgb = load_photo(image_path)
    if depth is not None:
        return load_depth_result(depth, image=rgb, focal_px=focal_px)
    return match_result_to_image(predict(image_path, model or DEFAULT_MODEL, weights, focal_px, device), rgb)


def predict(image_path: Path, model: str, weights: Path | None, focal_px: float | None, device: str) -> DepthResult:
    """Run the network through the public API (imported lazily: loading torch models is slow)."""
    import sharpdepth

    if not hasattr(sharpdepth, "load"):
        raise OptionError("this build has no prediction engine; pass --depth with a saved result")
    net = sharpdepth.load(model, weights=weights, device=device)
    return result_with_focal(net.predict(image_path, focal_px=focal_px), focal_px)
