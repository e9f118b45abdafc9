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
from typing import TYPE_CHECKING

from ..errors import OptionError
from ..io.images import DEFAULT_MAX_PIXELS
from ..io.outputs import OutputOptions

if TYPE_CHECKING:
    from .model import DepthModel

DEFAULT_MODEL = "depth-pro"
ALIGN_METHODS = ("lstsq", "lstsq-robust", "median")


@dataclass(frozen=True, kw_only=True)
class ModelSettings:
    """Which network to run and how: everything `sharpdepth.load` needs."""

    name: str = DEFAULT_MODEL
    weights: Path | None = None
    device: str = "cpu"
    precision: str = "fp32"
    input_size: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if self.input_size is not None and self.input_size <= 0:
            raise OptionError(f"input size must be a positive number of pixels, got {self.input_size}")
        if self.max_pixels <= 0:
            raise OptionError(f"--max-pixels must be positive, got {self.max_pixels}")

    def load(self) -> DepthModel:
        """Build the network and load its weights (slow: call once per process or actor)."""
        from .model import load

        return load(
            self.name,
            weights=self.weights,
            device=self.device,
            precision=self.precision,
            input_size=self.input_size,
            max_pixels=self.max_pixels,
        )


@dataclass(frozen=True, kw_only=True)
class FocalSettings:
    """What the user said about the focal length (user > EXIF > model)."""

    focal_px: float | None = None
    fov_deg: float | None = None

    def __post_init__(self) -> None:
        from .model import FocalRequest

        FocalRequest(self.focal_px, self.fov_deg).resolve(width=1000)  # reject bad values before any work


@dataclass(frozen=True, kw_only=True)
class PredictSettings:
    """One `predict` job: model, focal length, batching, outputs, resuming, alignment."""

    model: ModelSettings = field(default_factory=ModelSettings)
    focal: FocalSettings = field(default_factory=FocalSettings)
    output: OutputOptions = field(default_factory=OutputOptions)
    batch_size: int = 1
    skip_existing: bool = False
    align_to: Path | None = None
    align_method: str = "lstsq"

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise OptionError("--batch-size must be at least 1")
        if self.align_method not in ALIGN_METHODS:
            raise OptionError(f"unknown --align-method {self.align_method!r}; choose {', '.join(ALIGN_METHODS)}")
