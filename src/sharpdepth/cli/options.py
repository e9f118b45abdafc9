"""Option declarations shared by commands, so every command spells them, and checks them, the same way.

Single options are `Annotated` aliases (`ThreadsOpt`, ...). Options that together make one
settings object are an `OptionBundle`: a command declares one parameter of the object's type
(e.g. `model: ModelSettings`) and `@bundled(MODEL_OPTIONS)` puts the bundle's flags in its place
and hands the command the object built from them. So `ModelSettings` is made from flags in
exactly one place (`MODEL_OPTIONS`), for `predict`, `video` and `serve` alike.

Declarations only (no torch): `sharpdepth --help` imports every command module.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from ..distributed.settings import DEFAULT_ACTORS as DEFAULT_RAY_ACTORS
from ..distributed.settings import RaySettings
from ..engine.settings import (
    DEFAULT_BACKEND,
    DEFAULT_DEVICE,
    DEFAULT_MODEL,
    DEFAULT_PRECISION,
    FocalSettings,
    ModelSettings,
)
from ..io.images import DEFAULT_MAX_PIXELS

F = TypeVar("F", bound=Callable[..., Any])

ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help="CPU threads for the network (default: one per core; fewer is faster on a busy machine).",
    ),
]
CompileOpt = Annotated[
    bool,
    typer.Option(
        "--compile", help="torch.compile the network (slow first image per input size, faster after; best on GPU)."
    ),
]
CudaGraphsOpt = Annotated[
    bool,
    typer.Option("--cuda-graphs", help="Replay the forward pass as CUDA graphs (CUDA only; fixed-size inputs)."),
]
BackendOpt = Annotated[
    str,
    typer.Option(
        "--backend",
        help="torch, or onnxruntime: the fp32 forward pass in onnxruntime (faster on CPUs; the graph is "
        "exported on first use and cached beside the checkpoint; --weights may be an exported .onnx file).",
    ),
]
MaxPixelsOpt = Annotated[
    int,
    typer.Option("--max-pixels", min=1, help="Refuse images larger than this many pixels (decompression-bomb guard)."),
]
DEFAULT_MAX_PIXELS_OPT = DEFAULT_MAX_PIXELS


def apply_threads(threads: int | None) -> None:
    """Set torch's CPU thread count for this process (imports torch only when a count is given)."""
    from ..engine.settings import set_threads

    set_threads(threads)


RayOpt = Annotated[bool, typer.Option("--ray", help="Run on a local Ray instance (Ray Data; sharpdepth[ray]).")]
RayAddressOpt = Annotated[
    str | None, typer.Option("--ray-address", help="Run on a Ray cluster: auto or ray://head:10001 (implies --ray).")
]
RayActorsOpt = Annotated[int, typer.Option("--ray-actors", min=1, help="Model replicas (Ray actors).")]
RayGpusOpt = Annotated[float, typer.Option("--ray-gpus-per-actor", min=0.0, help="GPUs per Ray actor.")]
RayCpusOpt = Annotated[
    float | None, typer.Option("--ray-cpus-per-actor", help="CPUs per Ray actor (default: leave a core free).")
]


def ray_settings(
    ray: bool, address: str | None, actors: int, gpus: float, cpus: float | None, threads: int | None = None
) -> RaySettings | None:
    """The Ray settings the flags ask for, or None for a local run."""
    if not ray and address is None:
        return None
    return RaySettings(address=address, actors=actors, cpus_per_actor=cpus, gpus_per_actor=gpus, threads=threads)


@dataclass(frozen=True)
class RayFlags:
    """The --ray* flags of a command that can run on Ray; `settings(threads)` is what they ask for."""

    ray: bool = False
    address: str | None = None
    actors: int = DEFAULT_RAY_ACTORS
    gpus: float = 0.0
    cpus: float | None = None

    def settings(self, threads: int | None) -> RaySettings | None:
        """Ray settings with the model's torch threads per actor, or None for a local run."""
        return ray_settings(self.ray, self.address, self.actors, self.gpus, self.cpus, threads)


LOCAL_RUN = RayFlags()
"""No --ray flag given: the job runs here."""


# ---------------------------------------------------------------- option bundles
@dataclass(frozen=True)
class OptionBundle:
    """Flags that build one settings object: `options` (typer parameters) and `build(**flags)`."""

    options: tuple[inspect.Parameter, ...]
    build: Callable[..., object]

    @classmethod
    def of(cls, declarations: Callable[..., object], build: Callable[..., object]) -> OptionBundle:
        """The options are the parameters of `declarations`, a function written only to declare them."""
        params = inspect.signature(declarations, eval_str=True).parameters.values()
        return cls(tuple(p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params), build)


def bundled(**bundles: OptionBundle) -> Callable[[F], F]:
    """Replace each parameter named in `bundles` by the bundle's flags; the command gets the built object.

    `@bundled(model=MODEL_OPTIONS)` on `def cmd(inputs, model: ModelSettings, quiet)` gives the
    command `inputs`, every model flag and `quiet`, and calls it with `model=ModelSettings(...)`.
    """

    def decorate(command: F) -> F:
        signature = inspect.signature(command, eval_str=True)
        params: list[inspect.Parameter] = []
        for param in signature.parameters.values():
            bundle = bundles.get(param.name)
            params.extend(bundle.options if bundle is not None else (param,))
        # typer passes every parameter by name; keyword-only lets an option with a default precede an argument
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]

        @functools.wraps(command)
        def run(**flags: Any) -> Any:
            for name, bundle in bundles.items():
                mine = {p.name: flags.pop(p.name) for p in bundle.options}
                flags[name] = bundle.build(**mine)
            return command(**flags)

        del run.__wrapped__  # typer must see the new signature, not the command's
        run.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params}
        return run  # type: ignore[return-value]

    return decorate


def _model_flags(
    model: Annotated[str, typer.Option("--model", "-m", help="Model name (sharpdepth weights list).")] = (
        DEFAULT_MODEL
    ),
    weights: Annotated[
        Path | None, typer.Option(help="Checkpoint file (.pt/.pth/.safetensors); .onnx with --backend onnxruntime.")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N, mps or auto.")] = DEFAULT_DEVICE,
    precision: Annotated[str, typer.Option(help="fp32, bf16 (CPU/GPU) or fp16 (GPU only).")] = DEFAULT_PRECISION,
    input_size: Annotated[int | None, typer.Option(help="Network input size (DA/VDA/MiDaS; higher = finer).")] = None,
    max_pixels: MaxPixelsOpt = DEFAULT_MAX_PIXELS,
    threads: ThreadsOpt = None,
    compile: CompileOpt = False,
    cuda_graphs: CudaGraphsOpt = False,
    backend: BackendOpt = DEFAULT_BACKEND,
) -> None:
    """Declares the model flags (never called)."""


def model_settings(
    model: str = DEFAULT_MODEL, weights: Path | None = None, device: str = DEFAULT_DEVICE,
    precision: str = DEFAULT_PRECISION, input_size: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
    threads: int | None = None, compile: bool = False, cuda_graphs: bool = False, backend: str = DEFAULT_BACKEND,
) -> ModelSettings:  # fmt: skip
    """The one place where model flags become `ModelSettings` (validated there).

    Commands with fewer model flags (`export onnx`, the effects predicting without --depth) call it
    with theirs; the rest keep the settings' defaults.
    """
    return ModelSettings(
        name=model, weights=weights, device=device, precision=precision, input_size=input_size,
        max_pixels=max_pixels, threads=threads, compile=compile, cuda_graphs=cuda_graphs, backend=backend,
    )  # fmt: skip


MODEL_OPTIONS = OptionBundle.of(_model_flags, model_settings)
"""--model, --weights, --device, --precision, --input-size, --max-pixels, --threads, --compile,
--cuda-graphs, --backend: the network a command runs, as `ModelSettings`."""


def _focal_flags(
    focal_px: Annotated[
        float | None, typer.Option(help="Focal length in pixels (overrides EXIF and the model's estimate).")
    ] = None,
    fov_deg: Annotated[float | None, typer.Option(help="Horizontal field of view in degrees.")] = None,
) -> FocalSettings:
    """Declares the focal flags and makes them the job's `FocalSettings` (checked on construction)."""
    return FocalSettings(focal_px=focal_px, fov_deg=fov_deg)


FOCAL_OPTIONS = OptionBundle.of(_focal_flags, _focal_flags)
"""--focal-px, --fov-deg: what the user says about the focal length (user > EXIF > model), as
`FocalSettings`, for `predict` and `video`."""
NO_FOCAL = FocalSettings()
"""No focal flag given: EXIF, then the model."""


def _ray_flags(
    ray: RayOpt = False,
    ray_address: RayAddressOpt = None,
    ray_actors: RayActorsOpt = DEFAULT_RAY_ACTORS,
    ray_gpus_per_actor: RayGpusOpt = 0.0,
    ray_cpus_per_actor: RayCpusOpt = None,
) -> RayFlags:
    """Declares the Ray flags and makes them one value (threads come from the model flags later)."""
    return RayFlags(ray, ray_address, ray_actors, ray_gpus_per_actor, ray_cpus_per_actor)


RAY_OPTIONS = OptionBundle.of(_ray_flags, _ray_flags)
"""--ray, --ray-address, --ray-actors, --ray-gpus-per-actor, --ray-cpus-per-actor: where a
`predict` or `video` job runs, as `RayFlags`."""
