"""sharpdepth: sharp monocular depth — metric where the model is metric — and what you do with it.

import sharpdepth
model = sharpdepth.load("depth-pro")          # weights: file > cache > Hugging Face hub
result = model.predict("photo.jpg")            # path, PIL image or HxWx3 uint8 array
result.depth, result.focal_px, result.fov_deg, result.focal_source
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import (
    InputImageError,
    OptionError,
    RelativeDepthError,
    SharpDepthError,
    WeightsError,
)
from .registry import DEFAULT_MODEL
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
    from .engine.model import DepthModel
    from .family import LicenseClass
    from .geometry.gaussians import Gaussians

DEFAULT_MAX_PIXELS = 89_478_485
"""Pillow's decompression-bomb limit, as `sharpdepth.io.images.DEFAULT_MAX_PIXELS` (repeated here so
that `import sharpdepth` does not import the image stack)."""


def load(
    name: str = DEFAULT_MODEL,
    weights: str | Path | None = None,
    device: str | None = "cpu",
    precision: str | None = "fp32",
    input_size: int | None = None,
    download: bool = True,
    random_weights: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    compile: bool = False,
    cuda_graphs: bool = False,
    precision_guard: bool = True,
    backend: str = "torch",
) -> DepthModel:
    """Build a named model and load its weights: `weights` file > cache > hub download.

    name: a registered model (see `list_models()`); weights: a checkpoint file (official or
    transformers layout); device: cpu | cuda | cuda:N | mps | auto; precision: fp32 | bf16 |
    fp16 (GPU) | auto; input_size: network input size where the model allows it (Depth
    Anything, MiDaS DPT; Depth Pro is fixed at 1536 and refuses it); download: allow a hub
    download; random_weights: no weights (tests/benchmarks only); max_pixels: refuse larger
    images (None: no limit); compile: torch.compile the network; cuda_graphs: replay it as CUDA
    graphs (CUDA only); precision_guard: re-run a bf16/fp16 batch in fp32 when its output is
    non-finite or blank; backend: torch | onnxruntime (fp32 forward pass in onnxruntime,
    graph exported on first use and cached, or weights=FILE.onnx). Options are validated
    before the network is built; see `sharpdepth.engine.model.load` for details.
    """
    from .engine.model import load as _load

    return _load(
        name,
        weights=weights,
        device=device,
        precision=precision,
        input_size=input_size,
        download=download,
        random_weights=random_weights,
        max_pixels=max_pixels,
        compile=compile,
        cuda_graphs=cuda_graphs,
        precision_guard=precision_guard,
        backend=backend,
    )


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
    """`sharpdepth.Gaussians` on first use (it needs NumPy; `import sharpdepth` stays light)."""
    if name == "Gaussians":
        from .geometry.gaussians import Gaussians

        return Gaussians
    raise AttributeError(f"module 'sharpdepth' has no attribute {name!r}")
