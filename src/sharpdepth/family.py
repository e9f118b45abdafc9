"""Model families: one typed object says everything sharpdepth needs to know about a kind of network.

A `Family[C]` (C: the family's frozen config dataclass) owns

* `build(cfg) -> nn.Module`: the network with the official state-dict key names;
* `data(cfg) -> DataConfig`: how images enter and maps leave the network, as data
  (input-size rule, mean/std, resize kernels, align_corners, ...) that can be queried
  without building anything, like timm's pretrained cfg;
* `converters`: one pure `(state, cfg) -> state` function per checkpoint layout
  ("official", "hf", ...), each returning the official layout;
* `processor(spec, input_size) -> Processor`: the official pre- and post-processing,
  validated when it is made (a bad `input_size` fails at `load`, not on first use).

A `ModelSpec[C]` is one named preset of a family (config, output kind, licence, weight
sources). `ModelSpec` methods are the non-generic face the engine uses, so nothing
outside a family module ever dispatches on the config's type.

How to add a family (e.g. `models/video_depth_anything.py`):

1. write the network and its config dataclass in `sharpdepth/models/<family>.py`;
2. in the same module define `FAMILY = Family[MyConfig](name=..., build=..., data=...,
   converters={"official": ..., "hf": ...}, processor=...)` (use
   `models.processing.MapProcessor` when the network returns one (N, h, w) map) and
   `PRESETS = (FAMILY.preset(name=..., config=..., ...), ...)`;
3. add one line to `sharpdepth.registry._register_all`:
   `register_family(my_module.FAMILY, my_module.PRESETS)`.

This module sits at the bottom of the package (it imports only `errors` and `result`,
and torch only for type checking), so `models`, `weights` and `engine` can all use its
types without import cycles, and the registry can be queried without importing torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Literal, Protocol, TypeVar, runtime_checkable

from .errors import WeightsError
from .result import OutputKind

if TYPE_CHECKING:  # annotations only: the registry (and so `sharpdepth --help`) must not import torch
    import numpy as np
    import torch
    from torch import nn

C = TypeVar("C")
StateDict = dict[str, "torch.Tensor"]
Converter = Callable[[StateDict, C], StateDict]
"""A pure key-map function: checkpoint in some layout -> official layout (raises `KeyMapError`)."""

LicenseClass = Literal["commercial", "non-commercial"]
"""Whether the weights' licence allows commercial use (the question users ask most often)."""

SizeRule = Literal["fixed", "lower_bound", "upper_bound", "minimal", "squash"]

OutputSize = Literal["image", "network"]
"""Where maps are returned: at the input image's size, or at the network's processed grid."""


class KeyMapError(WeightsError):
    """A checkpoint's keys do not map onto the model (missing, unexpected or inconsistent keys)."""


@dataclass(frozen=True)
class WeightSource:
    """One downloadable checkpoint on the Hugging Face hub.

    `layout` says whose key names the file uses: "official" (loads as is) or
    "hf" (transformers' layout, converted through the family's key table).
    """

    repo_id: str
    filename: str
    layout: Literal["official", "hf"] = "official"
    revision: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo_id}/blob/{self.revision or 'main'}/{self.filename}"


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """How images enter and outputs leave one model: plain data, queryable without building it."""

    input_size: int
    """Default network input side (short side for 'lower_bound', bound for the others, exact for 'fixed')."""
    size_rule: SizeRule
    """Official resize rule: 'fixed' square, keep-aspect 'lower_bound'/'upper_bound'/'minimal', or 'squash'."""
    multiple_of: int
    """Network input sides are multiples of this (patch size or encoder stride)."""
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_kernel: Literal["bilinear", "cv2_cubic"]
    """Input resize: torch bilinear (align_corners=False) or OpenCV INTER_CUBIC, emulated bit for bit."""
    normalize_before_resize: bool = False
    """Depth Pro normalises, then resizes; the OpenCV pipelines resize, then normalise (float64)."""
    output_kernel: Literal["bilinear", "bicubic"] = "bilinear"
    output_align_corners: bool = False
    output_resized_as: Literal["map", "inverse_depth"] = "map"
    """What is resized back to the image: the raw map, or (Depth Pro) the metric inverse depth."""
    input_size_fixed: bool = False
    """True when the network runs at exactly one input size (`input_size` cannot be changed)."""
    min_input_size: int = 1
    max_area_factor: int = 16
    """Refuse an image whose network input would exceed this many times input_size^2 pixels
    (extreme aspect ratios would otherwise allocate tens of GiB before failing)."""


@dataclass
class NetworkOutput:
    """Raw output for one image at network resolution (float32, on the network's device).

    Post-processing (scale, resize to the image, clamp) runs on that device too; the one
    conversion to numpy happens when the `Prediction` is made (`models.processing.to_numpy`)."""

    map: torch.Tensor
    """(h, w): canonical inverse depth (Depth Pro), relative disparity or metric depth."""
    fov_deg: float | None = None
    """Horizontal field of view predicted by the network, if it has a FOV head."""
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    """Further per-image outputs at network resolution, read only by the family's own processor
    (Depth Anything 3: confidence, sky, camera)."""


@dataclass
class Prediction:
    """A processor's final answer for one image, at the input resolution."""

    map: np.ndarray
    """float32 HxW in the spec's output kind (metres of z-depth, or relative disparity)."""
    focal_px: float | None
    """Focal length used for metric scale (given, or from the network's FOV head)."""
    focal_from_model: bool = False
    confidence: np.ndarray | None = None
    """float32 HxW per-pixel confidence, where the model predicts one."""
    sky: np.ndarray | None = None
    """bool HxW sky mask, where the model predicts one."""
    intrinsics: np.ndarray | None = None
    """3x3 pinhole intrinsics in pixels of `map`, where known (estimated or from the focal length)."""


class Processor(Protocol):
    """The official pre/post-processing of one model at one input size (made by `Family.processor`)."""

    @property
    def input_size(self) -> int: ...

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the network input for an image of height x width; raises InputImageError if refused."""
        ...

    def preprocess(self, rgb: np.ndarray) -> torch.Tensor:
        """HxWx3 uint8 RGB -> (3, h, w) float32 network input, exactly as the official code."""
        ...

    def forward(self, net: nn.Module, batch: torch.Tensor) -> list[NetworkOutput]:
        """Run a batch (N, 3, h, w) of same-size inputs, moved once to the network's device and dtype
        inside one inference scope; outputs as float32 on that device."""
        ...

    def postprocess(self, out: NetworkOutput, height: int, width: int, focal_px: float | None) -> Prediction:
        """Resize back to height x width as the official pipeline does; metric scale if any."""
        ...


@dataclass
class ViewsPrediction:
    """A views processor's answer: one `Prediction` per view (input order) and the cameras."""

    views: list[Prediction]
    cam_to_world: np.ndarray
    """(N, 4, 4) camera-to-world poses, OpenCV axes, in the units of the views' depth."""


@runtime_checkable
class ViewsProcessor(Protocol):
    """The ability to predict several views of one scene together (any-view models)."""

    def predict_views(
        self,
        net: nn.Module,
        images: list[np.ndarray],
        intrinsics: np.ndarray | None,
        cam_to_world: np.ndarray | None,
        output_size: OutputSize,
    ) -> ViewsPrediction:
        """HxWx3 uint8 views -> depth, confidence, intrinsics and poses; known intrinsics (N, 3, 3,
        pixels of each image) and camera-to-world poses (N, 4, 4) are used where given."""
        ...


@dataclass(frozen=True, kw_only=True)
class Family(Generic[C]):
    """Everything specific to one kind of network; see the module docstring for how to add one."""

    name: str
    """Short identifier (e.g. "depth_pro"); `ModelSpec.family` returns it."""
    build: Callable[[C], nn.Module]
    data: Callable[[C], DataConfig]
    converters: Mapping[str, Converter[C]]
    processor: Callable[[ModelSpec[C], int | None], Processor]
    """Make the processor for a spec at an input size (None: default); raises OptionError for a bad size."""

    def preset(
        self,
        *,
        name: str,
        config: C,
        output_kind: OutputKind,
        license: str,
        license_class: LicenseClass,
        description: str,
        sources: tuple[WeightSource, ...] = (),
        native_resolution: str = "",
        params_millions: float | None = None,
        test_only: bool = False,
        aliases: tuple[str, ...] = (),
    ) -> ModelSpec[C]:
        return ModelSpec(
            name=name,
            model_family=self,
            config=config,
            output_kind=output_kind,
            license=license,
            license_class=license_class,
            description=description,
            sources=sources,
            native_resolution=native_resolution,
            params_millions=params_millions,
            test_only=test_only,
            aliases=aliases,
        )


@dataclass(frozen=True, kw_only=True)
class ModelSpec(Generic[C]):
    """One named model: a family, its config, output kind, licence and weight sources."""

    name: str
    model_family: Family[C]
    config: C
    output_kind: OutputKind
    license: str
    license_class: LicenseClass
    description: str
    sources: tuple[WeightSource, ...] = ()
    native_resolution: str = ""
    params_millions: float | None = None
    test_only: bool = False
    """Tiny test architectures have no published weights."""
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def family(self) -> str:
        return self.model_family.name

    @property
    def data(self) -> DataConfig:
        return self.model_family.data(self.config)

    @property
    def commercial_use(self) -> bool:
        return self.license_class == "commercial"

    def build(self) -> nn.Module:
        """The network with random weights and the official state-dict key names."""
        return self.model_family.build(self.config)

    def processor(self, input_size: int | None = None) -> Processor:
        """Pre/post-processing at `input_size` (None: the default); bad sizes raise OptionError here."""
        return self.model_family.processor(self, input_size)

    @property
    def layouts(self) -> tuple[str, ...]:
        return tuple(self.model_family.converters)

    def convert_state_dict(self, state: StateDict, layout: str) -> StateDict:
        """A checkpoint in `layout` -> the official layout; KeyMapError when it does not map."""
        converter = self.model_family.converters.get(layout)
        if converter is None:
            known = ", ".join(self.model_family.converters)
            raise KeyMapError(f"{self.name}: no key conversion for layout {layout!r} (known: {known})")
        return converter(state, self.config)


def official_layout(state: StateDict, cfg: object) -> StateDict:
    """The converter of a family whose official checkpoints load as they are."""
    return state
