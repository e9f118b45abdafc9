"""Settings of the evaluation job: the one place where `sharpdepth eval`'s defaults live.

`EvalSettings` says how predictions are scored (alignment, limits, which extra metrics);
`EvalJob` adds what is scored and where results go (dataset, root, protocol, output,
cache). Both are keyword-only and validated on construction, so a bad option fails
before a model is loaded or a dataset is read; the CLI and any other front end build
them and hand them to `runner.run_job`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from ..align import ALIGN_METHODS, SPACES
from ..errors import DatasetError, OptionError
from ..io.atomic import cannot_write_in
from .datasets import DepthDataset, dataset_class, open_dataset
from .metrics import silog_preset
from .protocols import Protocol, get_protocol

Scope = Literal["image", "sequence"]
ALIGN_SCOPES: tuple[Scope, ...] = ("image", "sequence")
DEFAULT_SEQUENCE_FIT_PIXELS = 50_000


def _choice(value: str | None, allowed: tuple[str, ...], what: str, flag: str) -> None:
    if value is not None and value not in allowed:
        raise OptionError(f"unknown {what} {value!r} ({flag}); choose from {', '.join(allowed)}")


@dataclass(frozen=True, kw_only=True)
class EvalSettings:
    """How one model's predictions are scored; None means "the protocol's / model's default"."""

    align: str | None = None
    """None: "none" for metric models, the protocol's method for relative ones."""
    align_space: str | None = None
    align_scope: str | None = None
    """None: the protocol's ("sequence" for the video protocols)."""
    silog: str | None = None
    """A SILog preset name (`metrics.SILOG_PRESETS`); None: the protocol's convention."""
    limit: int | None = None
    give_focal: bool = False
    """Hand the dataset's focal length to the model (otherwise models estimate it or go without)."""
    boundary: bool = True
    temporal: bool | None = None
    """Temporal metrics per sequence; None: the protocol's default (on for video protocols)."""
    cache_dir: Path | None = None
    sequence_fit_pixels: int = DEFAULT_SEQUENCE_FIT_PIXELS
    """Per-frame pixel sample used by sequence-scope alignment fits (deterministic)."""

    def __post_init__(self) -> None:
        _choice(self.align, ALIGN_METHODS, "alignment", "--align")
        _choice(self.align_space, SPACES, "alignment space", "--align-space")
        _choice(self.align_scope, ALIGN_SCOPES, "alignment scope", "--align-scope")
        if self.silog is not None:
            silog_preset(self.silog)
        if self.limit is not None and self.limit < 1:
            raise OptionError(f"--limit must be at least 1, got {self.limit}")
        if self.sequence_fit_pixels < 2:
            raise OptionError(f"sequence_fit_pixels must be at least 2, got {self.sequence_fit_pixels}")

    def protocol_for(self, protocol: Protocol) -> Protocol:
        """The protocol with this run's SILog preset applied."""
        return protocol.with_silog(self.silog)

    def scope(self, protocol: Protocol) -> Scope:
        scope = self.align_scope or protocol.align_scope
        if scope not in ALIGN_SCOPES:
            raise OptionError(f"protocol {protocol.name}: alignment scope must be image or sequence, got {scope!r}")
        return "sequence" if scope == "sequence" else "image"

    def temporal_for(self, protocol: Protocol) -> bool:
        return protocol.temporal if self.temporal is None else self.temporal


def _check_output_folder(path: Path) -> None:
    """Refuse an output folder that cannot be created or written, before any work is done."""
    if path.exists() and not path.is_dir():
        raise OptionError(f"-o {path}: exists and is not a folder")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OptionError(f"-o {path}: {existing} is a file, so the results folder cannot be created")
    if cannot_write_in(existing) is not None:
        raise OptionError(f"-o {path}: {existing} is not writable")


EvalOptions = EvalSettings
"""The name the harness used before the settings object existed."""


@dataclass(frozen=True, kw_only=True)
class EvalJob:
    """One `sharpdepth eval` run: which dataset, which protocol, where results go, how to score."""

    dataset: str
    root: Path
    output: Path = Path("results")
    protocol: str | None = None
    """None: the dataset's default protocol."""
    dataset_options: Mapping[str, str] = field(default_factory=dict)
    cache: bool = True
    """Cache predictions under `<output>/cache` (or `scoring.cache_dir`)."""
    scoring: EvalSettings = field(default_factory=EvalSettings)

    def __post_init__(self) -> None:
        name = dataset_class(self.dataset).name  # unknown names fail here, before any model is loaded
        if not Path(self.root).expanduser().exists():
            raise DatasetError(f"{name}: dataset folder {self.root} does not exist")
        if self.protocol is not None:
            get_protocol(self.protocol)
        _check_output_folder(self.output)

    def open_dataset(self) -> DepthDataset:
        return open_dataset(self.dataset, self.root, **dict(self.dataset_options))

    def resolve_protocol(self, dataset: DepthDataset) -> Protocol:
        return self.scoring.protocol_for(get_protocol(self.protocol or dataset.default_protocol))

    def scoring_settings(self) -> EvalSettings:
        """The scoring settings with the cache folder this job uses (None: no cache)."""
        if not self.cache:
            return replace(self.scoring, cache_dir=None)
        return replace(self.scoring, cache_dir=self.scoring.cache_dir or self.output / "cache")
