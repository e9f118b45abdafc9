"""Option declarations shared by commands, so every command spells them, and checks them, the same way.

Declarations only (no torch): `sharpdepth --help` imports every command module.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ..distributed.settings import RaySettings
from ..io.images import DEFAULT_MAX_PIXELS

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
