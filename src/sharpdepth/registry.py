"""Named models: every family registered with one explicit call, every preset found by name.

Like timm's registry, a name is all a user needs (`sharpdepth.load("depth-pro")`).
A family (`sharpdepth.family.Family`) lives in one package under `sharpdepth/models/`
and exports `FAMILY` and `PRESETS`; `_register_all` below imports each such module by
name in code (no string lookup, so a missing module fails loudly at import) and calls
`register_family` once per family.

Adding a family: write the package `models/<family>/` as described in `sharpdepth.family`, then add
ONE line to `_register_all`:

    register_family(my_family.FAMILY, my_family.PRESETS)

The family modules import torch, so they are loaded on the first registry query, not
when `sharpdepth` is imported.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from .errors import OptionError
from .family import Family, LicenseClass, ModelSpec, WeightSource
from .result import OutputKind

DEFAULT_MODEL = "depth-pro"
"""The model every front end runs when none is named (`sharpdepth.load()`, the CLI, the service)."""
DEFAULT_SPLAT_MODEL = "sharp"
"""The model `splat` runs when none is named (one photo -> metric 3D Gaussians)."""
DEFAULT_FOCAL_MODEL = "depth-pro"
"""The model whose FOV head gives `splat` its focal length when neither the user nor EXIF does
(used only when its weights are at hand; `--focal-model none` turns it off)."""

__all__ = [
    "ModelSpec",
    "WeightSource",
    "get_family",
    "get_spec",
    "list_families",
    "list_specs",
    "register",
    "register_family",
]

AnySpec = ModelSpec[Any]
"""A preset of some family; its config's type is known to its family, not to the registry."""

_REGISTRY: dict[str, AnySpec] = {}
_ALIASES: dict[str, str] = {}
_FAMILIES: dict[str, Family[Any]] = {}
_loaded = False


def register(spec: AnySpec) -> AnySpec:
    """Register one preset (its family is registered with it if it is new)."""
    if spec.name in _REGISTRY or spec.name in _ALIASES:
        raise OptionError(f"model {spec.name!r} registered twice")
    known = _FAMILIES.setdefault(spec.family, spec.model_family)
    if known is not spec.model_family:
        raise OptionError(f"two different families are both named {spec.family!r}")
    _REGISTRY[spec.name] = spec
    for alias in spec.aliases:
        _ALIASES[alias] = spec.name
    return spec


def register_family(family: Family[Any], presets: Iterable[AnySpec]) -> None:
    """Register a family and its named presets (each preset must belong to it)."""
    if family.name in _FAMILIES:
        raise OptionError(f"family {family.name!r} registered twice")
    specs = list(presets)
    for spec in specs:  # checked before anything is registered: a refused family leaves no trace
        if spec.model_family is not family:
            raise OptionError(f"preset {spec.name!r} does not belong to family {family.name!r}")
    _FAMILIES[family.name] = family
    for spec in specs:
        register(spec)


def _register_all() -> None:
    """The one list of families; each line is one explicit registration."""
    from .models import depth_anything, depth_anything_3, depth_pro, midas, midas_small, sharp, video_depth_anything

    register_family(depth_pro.FAMILY, depth_pro.PRESETS)
    register_family(depth_anything.FAMILY, depth_anything.PRESETS)
    register_family(midas.FAMILY, midas.PRESETS)
    register_family(midas_small.FAMILY, midas_small.PRESETS)
    register_family(video_depth_anything.FAMILY, video_depth_anything.PRESETS)
    register_family(sharp.FAMILY, sharp.PRESETS)
    register_family(depth_anything_3.FAMILY, depth_anything_3.PRESETS)


def _ensure_loaded() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        _register_all()


def list_specs(
    include_test_only: bool = False,
    *,
    kind: OutputKind | str | None = None,
    family: str | None = None,
    license: LicenseClass | None = None,
) -> list[AnySpec]:
    """Registered presets, optionally filtered by output kind, family and licence class."""
    _ensure_loaded()
    if kind is not None and str(kind) not in {str(k) for k in OutputKind}:
        raise OptionError(f"unknown output kind {kind!r}; choose {', '.join(str(k) for k in OutputKind)}")
    if family is not None and family not in _FAMILIES:
        raise OptionError(f"unknown family {family!r}; known: {', '.join(sorted(_FAMILIES))}")
    if license is not None and license not in ("commercial", "non-commercial"):
        raise OptionError(f"unknown licence class {license!r}; choose commercial or non-commercial")
    return [
        s
        for s in _REGISTRY.values()
        if (include_test_only or not s.test_only)
        and (kind is None or str(s.output_kind) == str(kind))
        and (family is None or s.family == family)
        and (license is None or s.license_class == license)
    ]


def list_families() -> list[str]:
    _ensure_loaded()
    return list(_FAMILIES)


def get_family(name: str) -> Family[Any]:
    _ensure_loaded()
    if name not in _FAMILIES:
        raise OptionError(f"unknown family {name!r}; known: {', '.join(sorted(_FAMILIES))}")
    return _FAMILIES[name]


def get_spec(name: str) -> AnySpec:
    _ensure_loaded()
    key = _ALIASES.get(name, name)
    if key in _REGISTRY:
        return _REGISTRY[key]
    known = sorted(_REGISTRY) + sorted(_ALIASES)
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `sharpdepth weights list`"
    raise OptionError(f"unknown model {name!r}{hint}")
