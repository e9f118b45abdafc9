"""The inference engine: `sharpdepth.load(name)` returns a `DepthModel`.

Data flows one way: image -> (load, orient, RGB) -> adapter.preprocess ->
batched network forward on the chosen device/precision -> adapter.postprocess
at the input resolution -> `DepthResult`. Focal length follows one rule for
every model: the user's value (focal_px or fov_deg) > EXIF > the model's own
estimate (Depth Pro's FOV head), and the result records which one was used.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import OptionError, WeightsError
from ..io.images import DEFAULT_MAX_PIXELS, LoadedImage, as_loaded_image
from ..registry import ModelSpec, get_spec
from ..result import DepthResult, FocalSource, focal_from_fov
from ..weights.checkpoint import load_state_dict_file, sha256_file
from ..weights.hub import ResolvedWeights, resolve_weights
from .adapter import ModelAdapter
from .runtime import resolve_device, resolve_precision


def adapter_for(spec: ModelSpec, input_size: int | None = None) -> ModelAdapter:
    module = importlib.import_module(f"sharpdepth.engine.adapters.{spec.family}")
    return module.Adapter(spec, input_size=input_size)


@dataclass
class FocalRequest:
    """What the caller said about focal length for one image."""

    focal_px: float | None = None
    fov_deg: float | None = None

    def resolve(self, width: int) -> float | None:
        if self.focal_px is not None and self.fov_deg is not None:
            raise OptionError("give either focal_px or fov_deg, not both")
        if self.focal_px is not None:
            if not (np.isfinite(self.focal_px) and self.focal_px > 0):
                raise OptionError(f"focal length must be a positive number of pixels, got {self.focal_px}")
            return float(self.focal_px)
        if self.fov_deg is not None:
            if not (0 < self.fov_deg < 180):
                raise OptionError(f"field of view must be between 0 and 180 degrees, got {self.fov_deg}")
            return focal_from_fov(self.fov_deg, width)
        return None


class DepthModel:
    """A loaded network plus its official pre/post-processing; thread-compatible, not thread-safe."""

    def __init__(
        self,
        spec: ModelSpec,
        adapter: ModelAdapter,
        net: nn.Module,
        device: torch.device,
        dtype: torch.dtype,
        weights: ResolvedWeights | None,
        weights_sha256: str | None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.spec = spec
        self.adapter = adapter
        self.net = net
        self.device = device
        self.dtype = dtype
        self.weights = weights
        self.weights_sha256 = weights_sha256
        self.max_pixels = max_pixels
        self.last_timings: dict[str, float] = {}

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def output_kind(self):
        return self.spec.output_kind

    def __repr__(self) -> str:
        return f"DepthModel({self.name!r}, kind={self.output_kind}, device={self.device}, dtype={self.dtype})"

    # ------------------------------------------------------------ public API
    def predict(
        self, image: Any, focal_px: float | None = None, fov_deg: float | None = None, keep_image: bool = True
    ) -> DepthResult:
        """Depth for one image (path, PIL image, HxWx3 array or LoadedImage)."""
        return self.predict_batch([image], focal_px=focal_px, fov_deg=fov_deg, keep_image=keep_image)[0]

    def predict_batch(
        self,
        images: Sequence[Any],
        focal_px: float | Sequence[float | None] | None = None,
        fov_deg: float | None = None,
        batch_size: int = 4,
        keep_image: bool = True,
    ) -> list[DepthResult]:
        """Depth for several images, several per forward pass where their network inputs share a size."""
        loaded = [as_loaded_image(img, self.max_pixels) for img in images]
        focals = _per_image(focal_px, len(loaded))
        requests = [FocalRequest(f, fov_deg) for f in focals]
        return list(self._run(loaded, requests, batch_size, keep_image))

    def predict_video(
        self, source: Any, mode: str = "offline", stabilize: bool | None = None, **kw: Any
    ) -> Iterator[DepthResult]:
        """One DepthResult per frame of a video, folder, glob or TxHxWx3 array (see engine.video)."""
        from .video import predict_video

        return predict_video(self, source, mode=mode, stabilize=stabilize, **kw)

    # ------------------------------------------------------------ internals
    def _run(
        self, loaded: list[LoadedImage], requests: list[FocalRequest], batch_size: int, keep_image: bool
    ) -> Iterator[DepthResult]:
        if batch_size < 1:
            raise OptionError("batch size must be at least 1")
        inputs = [self.adapter.preprocess(img.rgb) for img in loaded]
        outputs: list[Any] = [None] * len(loaded)
        for group in _same_shape_chunks(inputs, batch_size):
            batch = torch.stack([inputs[i] for i in group]).to(self.device, self.dtype)
            start = time.perf_counter()
            with torch.inference_mode():
                raw = self.adapter.forward(self.net, batch)
            self.last_timings["forward_s"] = time.perf_counter() - start
            for i, out in zip(group, raw, strict=True):
                outputs[i] = out
            del batch, raw
        for img, request, out in zip(loaded, requests, outputs, strict=True):
            yield self._finish(img, request, out, keep_image)

    def _finish(self, img: LoadedImage, request: FocalRequest, out: Any, keep_image: bool) -> DepthResult:
        given = request.resolve(img.width)
        source = FocalSource.USER if given is not None else FocalSource.NONE
        extra: dict[str, Any] = {}
        if given is None and img.exif_focal is not None:
            given, source = img.exif_focal.focal_px, FocalSource.EXIF
            extra["exif_focal_rule"] = img.exif_focal.rule
        pred = self.adapter.postprocess(out, img.height, img.width, given)
        focal = pred.focal_px if pred.focal_px is not None else given
        if pred.focal_from_model:
            source = FocalSource.MODEL
        if out.fov_deg is not None:
            extra["model_fov_deg"] = float(out.fov_deg)
        return DepthResult(
            prediction=pred.map,
            kind=self.spec.output_kind,
            focal_px=focal,
            focal_source=source,
            model_name=self.spec.name,
            weights_sha256=self.weights_sha256,
            image=img.rgb if keep_image else None,
            source=img.path,
            extra=extra,
        )


def _per_image(value: float | Sequence[float | None] | None, n: int) -> list[float | None]:
    if value is None or isinstance(value, int | float):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise OptionError(f"got {len(values)} focal lengths for {n} images")
    return values


def _same_shape_chunks(inputs: Sequence[torch.Tensor], batch_size: int) -> Iterable[list[int]]:
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, tensor in enumerate(inputs):
        groups.setdefault(tuple(tensor.shape), []).append(i)
    for members in groups.values():
        for start in range(0, len(members), batch_size):
            yield members[start : start + batch_size]


def load_weights_into(net: nn.Module, adapter: ModelAdapter, resolved: ResolvedWeights) -> None:
    """Load a checkpoint with strict key checks, converting from the HF layout if needed."""
    state = load_state_dict_file(resolved.path)
    layout = resolved.layout
    if layout == "auto":
        layout = _detect_layout(net, state)
    try:
        state = adapter.convert_state_dict(state, layout)
    except (NotImplementedError, KeyError, ValueError) as exc:
        if resolved.layout == "auto":  # neither official keys nor a convertible transformers layout
            matching = len(set(net.state_dict()) & set(state))
            raise WeightsError(
                f"{resolved.path} does not fit this model: {matching} of {len(net.state_dict())} official keys "
                f"present, and it is not a convertible transformers checkpoint ({type(exc).__name__}: {exc})"
            ) from None
        raise WeightsError(f"{resolved.path}: cannot convert {layout} checkpoint ({exc})") from None
    strict_load(net, state, f"{resolved.path}")


def _detect_layout(net: nn.Module, state: dict[str, torch.Tensor]) -> str:
    ours = set(net.state_dict())
    overlap = len(ours & set(state)) / max(len(ours), 1)
    return "official" if overlap > 0.5 else "hf"


def strict_load(net: nn.Module, state: dict[str, torch.Tensor], origin: str) -> None:
    """load_state_dict(strict=True) with shape checks and a one-line summary on failure."""
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:2])})")
        raise WeightsError(f"{origin} does not fit this model: {'; '.join(parts)}")
    net.load_state_dict(state, strict=True)


def load(
    name: str = "depth-pro",
    weights: str | Path | None = None,
    device: str | torch.device | None = "cpu",
    precision: str | None = "fp32",
    input_size: int | None = None,
    download: bool = True,
    random_weights: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> DepthModel:
    """Build a named model and load its weights: `weights` file > cache > hub download.

    `random_weights=True` skips weights entirely (for plumbing tests and benchmarks only:
    the outputs are meaningless).
    """
    spec = get_spec(name)
    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev)
    if input_size is not None and input_size <= 0:
        raise OptionError(f"input size must be positive, got {input_size}")
    adapter = adapter_for(spec, input_size)
    net = adapter.build_network()
    resolved = None
    digest = None
    if not random_weights:
        resolved = resolve_weights(spec, weights, download_ok=download)
        load_weights_into(net, adapter, resolved)
        digest = sha256_file(resolved.path)
    net = net.to(device=dev, dtype=dtype).eval()
    return DepthModel(spec, adapter, net, dev, dtype, resolved, digest, max_pixels)
