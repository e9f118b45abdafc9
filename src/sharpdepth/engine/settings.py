"""Settings objects of the predict job: the one place where its defaults live.

Every front end (the CLI, the HTTP service, the Ray job, the video command)
builds these same objects from its own kind of input (flags, query strings,
configs) and hands them to the same engine and writers; none of them re-states
a default or re-implements a check. They are keyword-only and validated on
construction, so a bad value fails before any model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..errors import OptionError
from ..io.images import DEFAULT_MAX_PIXELS
from ..io.outputs import OutputOptions
from ..registry import DEFAULT_MODEL
from .options import BACKENDS as BACKENDS  # the backend rules live in `engine.options`; named here for front ends
from .options import DEFAULT_BACKEND, check_backend, check_focal, check_max_pixels, check_torch_weights
from .options import DEFAULT_VIDEO_BATCH_SIZE as DEFAULT_VIDEO_BATCH_SIZE
from .options import ONNX_SUFFIX as ONNX_SUFFIX

if TYPE_CHECKING:
    from .model import DepthModel

DEFAULT_DEVICE = "cpu"
DEFAULT_PRECISION = "fp32"
DEFAULT_BATCH_SIZE = 1
ALIGN_METHODS = ("lstsq", "lstsq-robust", "median")
DEFAULT_ALIGN_METHOD = "lstsq"
PRECISIONS = ("fp32", "bf16", "fp16")


def parse_output_size(text: str) -> Literal["image", "network"]:
    """`--output-size`: maps at the image's size or at the network's processed grid."""
    if text == "image":
        return "image"
    if text == "network":
        return "network"
    raise OptionError(f"--output-size must be image or network, got {text!r}")


def set_threads(threads: int | None) -> None:
    """Use `threads` CPU threads for torch's operators (None: torch's default, one per core).

    Under contention (a shared machine, several jobs) fewer threads are often
    much faster: every thread busy-waits for the slowest one.
    """
    if threads is None:
        return
    if threads < 1:
        raise OptionError(f"--threads must be at least 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


@dataclass(frozen=True, kw_only=True)
class ModelSettings:
    """Which network to run and how: everything `sharpdepth.load` needs."""

    name: str = DEFAULT_MODEL
    weights: Path | None = None
    device: str = DEFAULT_DEVICE
    precision: str = DEFAULT_PRECISION
    input_size: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    threads: int | None = None
    """CPU threads for torch (None: torch's default); applied by `load()`."""
    compile: bool = False
    """torch.compile the network (first use per input shape compiles; see engine.accelerate)."""
    cuda_graphs: bool = False
    """Capture/replay the forward as CUDA graphs (CUDA only; opt-in, see engine.accelerate)."""
    precision_guard: bool = True
    """bf16/fp16: re-run a batch in fp32 when its output is non-finite or a constant map."""
    backend: str = DEFAULT_BACKEND
    """"torch", or "onnxruntime" (fp32; `weights` may then be an exported .onnx graph)."""

    def __post_init__(self) -> None:
        if not self.name:
            raise OptionError("--model needs a model name (see `sharpdepth weights list`)")
        if self.input_size is not None and self.input_size <= 0:
            raise OptionError(f"input size must be a positive number of pixels, got {self.input_size}")
        check_max_pixels(self.max_pixels)
        if self.precision.lower() not in PRECISIONS:
            raise OptionError(f"unknown precision {self.precision!r}; choose {', '.join(PRECISIONS)}")
        if self.threads is not None and self.threads < 1:
            raise OptionError(f"--threads must be at least 1, got {self.threads}")
        self._check_backend()

    def _check_backend(self) -> None:
        """Combinations the backends cannot run, refused before any model is loaded."""
        if check_backend(self.backend) == "torch":
            check_torch_weights(self.weights)
            return
        if self.precision.lower() != "fp32":
            raise OptionError(
                f"--backend onnxruntime runs the fp32 graph; use --precision fp32 ({self.precision}: --backend torch)"
            )

    def load(self) -> DepthModel:
        """Build the network and load its weights (slow: call once per process or actor)."""
        from .model import load

        set_threads(self.threads)
        return load(
            self.name,
            weights=self.weights,
            device=self.device,
            precision=self.precision,
            input_size=self.input_size,
            max_pixels=self.max_pixels,
            compile=self.compile,
            cuda_graphs=self.cuda_graphs,
            precision_guard=self.precision_guard,
            backend=self.backend,
        )


@dataclass(frozen=True, kw_only=True)
class FocalSettings:
    """What the user said about the focal length (user > EXIF > model)."""

    focal_px: float | None = None
    fov_deg: float | None = None

    def __post_init__(self) -> None:
        check_focal(self.focal_px, self.fov_deg)  # the rules the model applies per image, before any work


@dataclass(frozen=True, kw_only=True)
class PredictSettings:
    """One `predict` job: model, focal length, batching, outputs, resuming, alignment."""

    model: ModelSettings = field(default_factory=ModelSettings)
    focal: FocalSettings = field(default_factory=FocalSettings)
    output: OutputOptions = field(default_factory=OutputOptions)
    batch_size: int = DEFAULT_BATCH_SIZE
    skip_existing: bool = False
    """Skip an image only when its sidecar records this model, these settings and every requested file."""
    align_to: Path | None = None
    align_method: str = DEFAULT_ALIGN_METHOD
    pipeline: bool = True
    """Decode and prepare the next images and write the previous ones while the network runs
    (`engine.jobs.predict_items`); off runs every step in turn. The files are the same either way."""
    output_size: Literal["image", "network"] = "image"
    """Maps at the image's size, or at the network's processed grid (`--output-size network`)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise OptionError("--batch-size must be at least 1")
        parse_output_size(self.output_size)
        if self.align_method not in ALIGN_METHODS:
            raise OptionError(f"unknown --align-method {self.align_method!r}; choose {', '.join(ALIGN_METHODS)}")
        if self.align_to is not None and not Path(self.align_to).is_file():
            raise OptionError(f"--align-to {self.align_to}: no such file")

    def record(self) -> dict[str, object]:
        """What decides a result's numbers, as stored in the sidecar (`--skip-existing` compares it)."""
        return {
            "model": self.model.name,
            "weights": None if self.model.weights is None else str(self.model.weights),
            "precision": self.model.precision.lower(),
            "input_size": self.model.input_size,
            "focal_px": self.focal.focal_px,
            "fov_deg": self.focal.fov_deg,
            "align_to": None if self.align_to is None else str(self.align_to),
            "align_method": self.align_method if self.align_to is not None else None,
            "png16_scale_m": self.output.png16_scale_m if "png16" in self.output.formats else None,
            **({"output_size": self.output_size} if self.output_size != "image" else {}),
        }
