"""Named models: architecture config, weight sources, licence and output kind.

Like timm's registry, a name is all a user needs (`sharpdepth.load("depth-pro")`).
Each family module registers its presets at import time; `get_spec` imports
them lazily so that `import sharpdepth` stays cheap.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import OptionError
from .result import OutputKind

FAMILY_MODULES = (
    "sharpdepth.models.depth_pro",
    "sharpdepth.models.depth_anything",
    "sharpdepth.models.midas",
    "sharpdepth.models.video_depth_anything",
)


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


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    """Key of the family adapter in `sharpdepth.engine.adapters` (e.g. "depth_pro")."""
    config: Any
    output_kind: OutputKind
    license: str
    description: str
    sources: tuple[WeightSource, ...] = ()
    native_resolution: str = ""
    params_millions: float | None = None
    test_only: bool = False
    """Tiny test architectures have no published weights."""
    aliases: tuple[str, ...] = field(default_factory=tuple)


_REGISTRY: dict[str, ModelSpec] = {}
_ALIASES: dict[str, str] = {}
_loaded = False


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    for alias in spec.aliases:
        _ALIASES[alias] = spec.name
    return spec


def _load_families() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in FAMILY_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:  # a family not written yet must not break the others
            if err.name != module:
                raise


def list_specs(include_test_only: bool = False) -> list[ModelSpec]:
    _load_families()
    return [s for s in _REGISTRY.values() if include_test_only or not s.test_only]


def get_spec(name: str) -> ModelSpec:
    _load_families()
    key = _ALIASES.get(name, name)
    if key in _REGISTRY:
        return _REGISTRY[key]
    known = sorted(_REGISTRY) + sorted(_ALIASES)
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `sharpdepth weights list`"
    raise OptionError(f"unknown model {name!r}{hint}")
