"""Model families: one typed object says everything sharpdepth needs to know about a kind of network.

A `Family[C]` (C: the family's frozen config dataclass) owns

* `build(cfg) -> nn.Module`: the network with the official state-dict key names;
* `data(cfg) -> DataConfig`: how images enter and maps leave the network, as data
  (input-size rule, mean/std, resize kernels, align_corners, ...) that can be queried
  without building anything, like timm's pretrained cfg;
* `converters`: one pure `(state, cfg) -> state` function per checkpoint layout
  ("official", "hf", ...), each returning the official layout;
* `processor(spec, input_size) -> Processor`: the official pre- and post-processing,
  validated when it is made (a bad `input_size` fails at `load`, not on first use);
* what it produces and supports, as data read by generic code (which never branches on a
  family's name or config type): `map_output` and `fov_head` (its raw output fields,
  `ModelSpec.output_fields`), `onnx` (whether and how it exports), `training` (trainable
  parts by key prefix, default losses) and `video_runner` (its own video pipeline, if any).

A `ModelSpec[C]` is one named preset of a family (config, output kind, licence, weight
sources). `ModelSpec` methods are the non-generic face the engine uses, so nothing
outside a family module ever dispatches on the config's type.

How to add a family (e.g. `models/video_depth_anything/`):

1. write the package `sharpdepth/models/<family>/`: the network and its config dataclass,
   the key maps of every checkpoint layout, the processor and any family-specific runner;
2. in it define `FAMILY = Family[MyConfig](name=..., build=..., data=...,
   converters={"official": ..., "hf": ...}, processor=..., onnx=..., training=...)` (use
   `models.processing.MapProcessor` when the network returns one (N, h, w) map) and
   `PRESETS = (FAMILY.preset(name=..., config=..., ...), ...)`, both exported by its `__init__`;
3. add one line to `sharpdepth.registry._register_all`:
   `register_family(my_package.FAMILY, my_package.PRESETS)`.

This module sits at the bottom of the package (it imports only `errors` and `result`,
and torch only for type checking), so `models`, `weights` and `engine` can all use its
types without import cycles, and the registry can be queried without importing torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

from .errors import WeightsError
from .result import OutputKind

if TYPE_CHECKING:  # annotations only: the registry (and so `sharpdepth --help`) must not import torch
    from collections.abc import Sequence
    from typing import TypeAlias

    import numpy as np
    import torch
    from torch import nn

    RawNetworkOutput: TypeAlias = torch.Tensor | Sequence[torch.Tensor | None]
    """What a network's forward returns: the map, or (map, FOV or None)."""

C = TypeVar("C")
StateDict = dict[str, "torch.Tensor"]

Converter = Callable[[StateDict, C], StateDict]
"""A pure key-map function: checkpoint in some layout -> official layout (raises `KeyMapError`)."""

LicenseClass = Literal["commercial", "non-commercial"]
"""Whether the weights' licence allows commercial use (the question users ask most often)."""

SizeRule = Literal["fixed", "lower_bound", "upper_bound", "minimal", "squash"]

OutputSize = Literal["image", "network"]
"""Where maps are returned: at the input image's size, or at the network's processed grid."""


MapOutput = Literal["output_kind", "canonical_inverse_depth"]
"""What the network's map is: the preset's output kind at network resolution (relative
disparity, metres, ...), or canonical inverse depth (inverse depth for a focal length equal to
the image width, Depth Pro), which becomes metres only with a focal length."""

FOV_FIELD = "fov_deg"
"""Name of the raw output that holds a FOV head's horizontal field of view in degrees."""


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
    output_kernel: Literal["bilinear", "bicubic"] = "bilinear"
    output_align_corners: bool = False
    input_size_fixed: bool = False
    """True when the network runs at exactly one input size (`input_size` cannot be changed)."""
    min_input_size: int = 1
    max_area_factor: int = 16
    """Refuse an image whose network input would exceed this many times input_size^2 pixels
    (extreme aspect ratios would otherwise allocate tens of GiB before failing)."""

    @classmethod
    def fixed_square(cls, size: int, mean: tuple[float, float, float], std: tuple[float, float, float]) -> DataConfig:
        """A network that runs at exactly one size x size input (Depth Pro, SHARP): every picture is
        stretched to it, none is refused, and the map is resized back bilinearly (align_corners=False)."""
        return cls(
            input_size=size, size_rule="fixed", multiple_of=size, mean=mean, std=std, output_kernel="bilinear",
            output_align_corners=False, input_size_fixed=True, min_input_size=size,
        )  # fmt: skip


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
    focal_from_default: bool = False
    """The focal length is the model's documented assumption (neither given nor estimated)."""
    confidence: np.ndarray | None = None
    """float32 HxW per-pixel confidence, where the model predicts one."""
    sky: np.ndarray | None = None
    """bool HxW sky mask, where the model predicts one."""
    intrinsics: np.ndarray | None = None
    """3x3 pinhole intrinsics in pixels of `map`, where known (estimated or from the focal length)."""
    crop: tuple[int, int, int, int] | None = None
    """(top, left, height, width) of the part of the input image the map covers, in its pixels, when
    that is not the whole image (Depth Anything 3 centre-crops views of different sizes)."""


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


def decode_output(raw: RawNetworkOutput) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A network's forward result -> ((N, h, w) map, (N,) FOV in degrees or None): the one decoder.

    Networks return either the map ((N, h, w), or (N, 1, h, w) with a channel axis) or a
    tuple (map, FOV or None); processors, the ONNX export and the training objective all
    read raw outputs through this function.
    """
    fov = None
    if isinstance(raw, tuple | list):
        depth_map = raw[0]
        fov = raw[1] if len(raw) > 1 else None
        if depth_map is None:
            raise ValueError("the network returned no map")
    else:
        depth_map = raw
    if depth_map.ndim == 4:
        depth_map = depth_map[:, 0]
    return depth_map, fov


class LoadedNetwork(Protocol):
    """What a family's own runner or an exporter reads from a loaded model (`DepthModel` is one)."""

    spec: ModelSpec[Any]
    processor: Processor
    net: nn.Module
    device: torch.device
    dtype: torch.dtype

    @property
    def name(self) -> str: ...


VideoRunner = Callable[[LoadedNetwork, Iterable["np.ndarray"], str], Iterator["np.ndarray"]]
"""A family's own video pipeline: (model, HxWx3 uint8 frames, mode "offline"/"streaming") ->
one float32 HxW map per frame, in order, in the preset's output kind."""


def _no_fov_head(cfg: object) -> bool:
    return False


def _no_reason(spec: ModelSpec[Any]) -> str | None:
    return None


def _no_extra_outputs(spec: ModelSpec[Any]) -> tuple[str, ...]:
    return ()


@dataclass(frozen=True, kw_only=True)
class OnnxExport:
    """How a family's network becomes one ONNX graph (read by `engine.onnx_graph` and `engine.ort_backend`).

    By default the graph is the network itself, its output read by `decode_output` (the map,
    and the FOV where there is a head). A network with other outputs or another call signature
    declares `traced` (what is exported) and `as_network` (how the running graph stands in for
    the network again), so its processor runs unchanged on either backend.
    """

    refusal: Callable[[ModelSpec[Any]], str | None] = _no_reason
    """Why this preset cannot become a graph at all (None: it can); one line, said as the error."""
    dynamic_refusal: Callable[[ModelSpec[Any]], str | None] = _no_reason
    """Why one graph cannot follow the input size for this preset (None: dynamic height and width work)."""
    example_side: int | None = None
    """Side of the square picture traced through the processor (None: the input size asked for, else 518)."""
    extra_outputs: Callable[[ModelSpec[Any]], tuple[str, ...]] = _no_extra_outputs
    """Names of the graph's outputs after `ModelSpec.output_fields` (e.g. a sky map), in `traced`'s order."""
    traced: Callable[[nn.Module], nn.Module] | None = None
    """Wraps the network into the module that is exported: (N, 3, h, w) network input -> a tuple of
    tensors, `output_fields` then `extra_outputs` (None: the network, read by `decode_output`)."""
    as_network: Callable[[nn.Module], nn.Module] | None = None
    """Wraps the running graph (network input -> that tuple of tensors) into a module called and
    answering as the network is (None: the graph's (map, FOV) already is what the network returns)."""


@dataclass(frozen=True, kw_only=True)
class Training:
    """What fine-tuning needs to know about a family (read by `sharpdepth.train`)."""

    parts: tuple[tuple[str, str], ...]
    """(official key prefix, part) pairs, most specific first; every parameter must be claimed
    by one (parts: "encoder", "decoder", "head", "fov")."""
    relative_loss: str
    """The loss its own paper fine-tunes relative presets with ("affine", "ssi", ...)."""
    metric_loss: str = "silog"
    """The loss for metric presets."""

    @property
    def part_names(self) -> frozenset[str]:
        return frozenset(part for _, part in self.parts)

    def part_of(self, key: str) -> str | None:
        """The part a parameter belongs to by its official key; None when no prefix claims it."""
        for prefix, part in self.parts:
            if key.startswith(prefix):
                return part
        return None

    def default_loss(self, metric: bool) -> str:
        return self.metric_loss if metric else self.relative_loss


@dataclass(frozen=True, kw_only=True)
class Family(Generic[C]):
    """Everything specific to one kind of network; see the module docstring for how to add one."""

    name: str
    """Short identifier, the name of its package under `models/` (e.g. depth_pro); `ModelSpec.family` returns it."""
    build: Callable[[C], nn.Module]
    data: Callable[[C], DataConfig]
    converters: Mapping[str, Converter[C]]
    processor: Callable[[ModelSpec[C], int | None], Processor]
    """Make the processor for a spec at an input size (None: default); raises OptionError for a bad size."""
    map_output: MapOutput = "output_kind"
    """What the network's map holds (see `MapOutput`)."""
    fov_head: Callable[[C], bool] = _no_fov_head
    """Whether a config's network also returns a horizontal FOV (`FOV_FIELD`)."""
    onnx: OnnxExport | None = None
    """How the network exports to ONNX (and runs on onnxruntime); None: it does not."""
    training: Training | None = None
    """Trainable parts and default losses; None: the family cannot be fine-tuned."""
    video_runner: VideoRunner | None = None
    """The family's own video pipeline (whole clips, temporal context); None: frames run as images."""

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
            name=name, model_family=self, config=config, output_kind=output_kind, license=license,
            license_class=license_class, description=description, sources=sources,
            native_resolution=native_resolution, params_millions=params_millions, test_only=test_only, aliases=aliases,
        )  # fmt: skip


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

    def test_variant(self, *, name: str, config: C, description: str) -> ModelSpec[C]:
        """This preset's code paths on a tiny `config`: same family, output kind, licence and
        resolution, no weights to download (`test_only`), for tests that must run offline."""
        return replace(
            self, name=name, config=config, description=description, sources=(), params_millions=None, aliases=(),
            test_only=True,
        )  # fmt: skip

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
    def has_fov_head(self) -> bool:
        return self.model_family.fov_head(self.config)

    @property
    def output_fields(self) -> tuple[str, ...]:
        """The raw network outputs by name, map first (also the ONNX graph's output names)."""
        if self.model_family.map_output == "canonical_inverse_depth":
            first = "canonical_inverse_depth"
        else:
            first = self.output_kind.file_word
        return (first, FOV_FIELD) if self.has_fov_head else (first,)

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
