"""Which network /v1/splat runs: the served model when it predicts Gaussians, else one loaded on first use.

A model is asked for by name (`?model=`, default `registry.DEFAULT_SPLAT_MODEL`). Whether it
predicts 3-D Gaussians is read from its processor (`models.splats.SplatProcessor`), never from
its family's name, and checked before the upload is read: a depth-only model is refused (422)
at once. When the name is the served model's, the Gaussians are made on the model thread, in
queue order with the depth batches (`batching.Task`). Any other splat model is loaded once, on
the first request for it, on the served model's device and precision, from the weights cache
only: a request never starts a multi-gigabyte download. Missing weights are answered like a
served model that failed to load (503, with what to do); its forward passes run one at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from typing import TypeVar

import anyio

from ..engine.model import DepthModel, load
from ..engine.settings import ModelSettings
from ..errors import WeightsError
from ..models.splats import SplatProcessor
from ..registry import AnySpec, get_spec
from .errors import ApiError

T = TypeVar("T")


@cache
def predicts_gaussians(name: str) -> bool:
    """Whether the registered model `name` can make 3-D Gaussians (its processor says so)."""
    return isinstance(get_spec(name).processor(), SplatProcessor)


def splat_spec(name: str) -> AnySpec:
    """The registered model for a /v1/splat request: 400 unknown name, 422 a model without Gaussians."""
    spec = get_spec(name)  # OptionError (400) with the nearest names
    if not predicts_gaussians(spec.name):
        raise ApiError(422, f"model {spec.name} does not predict 3-D Gaussians (use a SHARP model, e.g. sharp)")
    return spec


class ExtraSplatModels:
    """Splat models other than the served one, each loaded once and run by one thread at a time."""

    def __init__(self, served: ModelSettings) -> None:
        self.served = served
        self._models: dict[str, DepthModel] = {}
        self._lock = threading.Lock()
        """Held while a model loads or runs: one extra network in memory at work at a time."""

    def settings_for(self, spec: AnySpec) -> ModelSettings:
        """The served model's device, precision and pixel limit, the named model's own weights and size."""
        return replace(
            self.served, name=spec.name, weights=None, input_size=None, backend="torch",
            compile=False, cuda_graphs=False,
        )  # fmt: skip

    def _model(self, spec: AnySpec) -> DepthModel:
        model = self._models.get(spec.name)
        if model is None:
            s = self.settings_for(spec)
            try:
                model = load(
                    s.name, device=s.device, precision=s.precision, max_pixels=s.max_pixels,
                    precision_guard=s.precision_guard, download=False,
                )  # fmt: skip
            except WeightsError as exc:
                raise ApiError(503, f"model {spec.name} is not available on this server: {exc}") from None
            self._models[spec.name] = model
        return model

    def run(self, spec: AnySpec, work: Callable[[DepthModel], T]) -> T:
        """`work(model)` with the named model, loading it first if needed (call from a worker thread)."""
        with self._lock:
            return work(self._model(spec))

    async def run_async(self, spec: AnySpec, work: Callable[[DepthModel], T]) -> T:
        """`run` off the event loop, on a thread of its own (a load can take long: no decoder thread is held)."""
        return await anyio.to_thread.run_sync(self.run, spec, work)
