"""What the evaluation runs: anything that predicts depth and says, up front, what it predicts.

A predictor declares its output kind (so alignment is chosen and the report exists before
the first image) and a fingerprint (a stable id of its behaviour for the prediction cache;
None when outputs are not reproducible, e.g. random weights). Models from
`sharpdepth.load(...)` are wrapped by `LoadedModel`; test doubles implement `Predictor`.
"""

from __future__ import annotations

import json
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import SharpDepthError
from ..result import DepthResult, OutputKind


class PredictorError(SharpDepthError):
    """A predictor broke its declaration (e.g. returned another output kind than it declared)."""


@runtime_checkable
class Predictor(Protocol):
    name: str
    output_kind: OutputKind
    fingerprint: str | None

    def predict(self, image: np.ndarray, focal_px: float | None = None) -> DepthResult: ...


@runtime_checkable
class ModelLike(Protocol):
    """The part of `sharpdepth.engine.model.DepthModel` the evaluation uses."""

    @property
    def name(self) -> str: ...

    @property
    def output_kind(self) -> OutputKind: ...

    @property
    def weights_sha256(self) -> str | None: ...

    def predict(self, image: np.ndarray, focal_px: float | None = None) -> DepthResult: ...


def model_fingerprint(model: object) -> str | None:
    """Stable id of a model's behaviour, or None when outputs are not reproducible (random weights).

    Name, weights SHA-256, dtype and input size: the things that change a loaded model's output.
    """
    explicit = getattr(model, "cache_id", None)
    if explicit:
        return str(explicit)
    digest = getattr(model, "weights_sha256", None)
    if not digest:
        return None
    parts = {
        "name": getattr(model, "name", ""),
        "weights": digest,
        "dtype": str(getattr(model, "dtype", "")),
        "input_size": getattr(getattr(model, "processor", None), "input_size", None),
    }
    return json.dumps(parts, sort_keys=True, default=str)


class LoadedModel:
    """A `sharpdepth.load(...)` model as a `Predictor`."""

    def __init__(self, model: ModelLike) -> None:
        self.model = model
        self.name: str = model.name
        self.output_kind: OutputKind = OutputKind(model.output_kind)
        self.fingerprint: str | None = model_fingerprint(model)

    def predict(self, image: np.ndarray, focal_px: float | None = None) -> DepthResult:
        return self.model.predict(image, focal_px=focal_px)


def as_predictor(obj: Predictor | ModelLike) -> Predictor:
    """`obj` itself when it declares kind and fingerprint, else a `LoadedModel` around it."""
    if isinstance(obj, Predictor):
        return obj
    if isinstance(obj, ModelLike):
        return LoadedModel(obj)
    raise TypeError("a predictor needs .name, .output_kind, .fingerprint and .predict(image, focal_px=None)")


def checked_predict(predictor: Predictor, image: np.ndarray, focal_px: float | None) -> DepthResult:
    """`predictor.predict`, refusing a result of another kind than the predictor declared."""
    result = predictor.predict(image, focal_px=focal_px)
    if OutputKind(result.kind) is not predictor.output_kind:
        raise PredictorError(
            f"{predictor.name} declared {predictor.output_kind} output but predicted {OutputKind(result.kind)}"
        )
    return result
