"""The inference engine: `sharpdepth.load(name)` returns a `DepthModel`.

Data flows one way: image -> (load, orient, RGB) -> the family's processor
(`spec.processor(input_size).preprocess`) -> batched network forward on the chosen
device/precision -> `processor.postprocess` at the input resolution -> `DepthResult`. Focal length follows one rule for
every model: the user's value (focal_px or fov_deg) > EXIF > the model's own
estimate (Depth Pro's FOV head), and the result records which one was used.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..errors import OptionError, WeightsError
from ..family import NetworkOutput, OutputSize, Prediction, Processor, StateDict, ViewsProcessor
from ..io.images import DEFAULT_MAX_PIXELS, LoadedImage, as_loaded_image
from ..registry import DEFAULT_FOCAL_MODEL, DEFAULT_MODEL, AnySpec, get_spec
from ..result import DepthResult, FocalSource, OutputKind, SceneResult, focal_from_fov
from ..weights.checkpoint import MappedPages, load_state_dict_file, sha256_file_cached
from ..weights.hub import ResolvedWeights, resolve_weights
from .accelerate import Acceleration, NetworkRunner, plan
from .memory import return_large_blocks_to_os
from .options import DEFAULT_VIDEO_BATCH_SIZE, check_backend, check_focal, check_max_pixels, check_torch_weights
from .ort_backend import load_onnxruntime
from .runtime import resolve_device, resolve_precision

if TYPE_CHECKING:
    from ..geometry.gaussians import Gaussians
    from ..io.video import FrameSelection, VideoInput
    from .splat import FocalModel
    from .stabilize import StabilizerSettings
    from .video import Reuse

ImageInput = str | Path | Image.Image | np.ndarray | LoadedImage
"""What `predict` accepts: a path, a PIL image, an HxWx3 array or an already loaded image."""


@dataclass
class FocalRequest:
    """What the caller said about focal length for one image."""

    focal_px: float | None = None
    fov_deg: float | None = None

    def resolve(self, width: int) -> float | None:
        check_focal(self.focal_px, self.fov_deg)
        if self.focal_px is not None:
            return float(self.focal_px)
        if self.fov_deg is not None:
            return focal_from_fov(self.fov_deg, width)
        return None


@dataclass(frozen=True)
class BatchOptions:
    """What `predict_batch` was asked besides the images, carried from its first stage to its last."""

    focal_px: float | Sequence[float | None] | None = None
    """One focal length for every image, or one per image (None: EXIF, then the model)."""
    fov_deg: float | None = None
    batch_size: int = 4
    keep_image: bool = True
    output_size: OutputSize = "image"


@dataclass
class PreparedBatch:
    """Images turned into network inputs (`DepthModel.prepare_batch`), waiting for the forward pass."""

    images: list[LoadedImage]
    requests: list[FocalRequest]
    inputs: list[torch.Tensor]
    """One (3, h, w) float32 CPU tensor per image; same-size ones share a forward pass."""
    options: BatchOptions

    def __len__(self) -> int:
        return len(self.images)


class DepthModel:
    """A loaded network plus its official pre/post-processing; thread-compatible, not thread-safe."""

    def __init__(
        self,
        spec: AnySpec,
        processor: Processor,
        net: nn.Module,
        device: torch.device,
        dtype: torch.dtype,
        weights: ResolvedWeights | None,
        weights_sha256: str | None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        acceleration: Acceleration | None = None,
        backend: str = "torch",
    ) -> None:
        self.spec = spec
        self.processor = processor
        self.net = net
        self.device = device
        self.dtype = dtype
        self.weights = weights
        self.weights_sha256 = weights_sha256
        self.max_pixels = max_pixels
        self.backend = backend
        """What runs the network's forward: "torch", or "onnxruntime" (`engine.ort_backend`)."""
        self.last_timings: dict[str, float] = {}
        self.acceleration = acceleration or Acceleration()
        self._runner: NetworkRunner | None = None

    @property
    def runner(self) -> NetworkRunner:
        """`net` as the forward pass calls it: compile, CUDA graphs and the precision guard
        (`engine.accelerate`); remade if `net` is replaced."""
        if self._runner is None or self._runner.net is not self.net:
            self._runner = NetworkRunner(self.net, name=self.spec.name, options=self.acceleration)
        return self._runner

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def output_kind(self) -> OutputKind:
        return self.spec.output_kind

    @property
    def input_size(self) -> int:
        """Network input size in use (short side, bound or fixed side, as the model's data config says)."""
        return self.processor.input_size

    def __repr__(self) -> str:
        return f"DepthModel({self.name!r}, kind={self.output_kind}, device={self.device}, dtype={self.dtype})"

    # ------------------------------------------------------------ public API
    def predict(
        self,
        image: ImageInput,
        focal_px: float | None = None,
        fov_deg: float | None = None,
        keep_image: bool = True,
        output_size: OutputSize = "image",
    ) -> DepthResult:
        """Depth for one image (path, PIL image, HxWx3 array or LoadedImage).

        `output_size="network"` returns the maps at the network's processed grid, unresized, with
        the focal length and intrinsics of that grid (a given focal is rescaled to it)."""
        return self.predict_batch(
            [image], focal_px=focal_px, fov_deg=fov_deg, keep_image=keep_image, output_size=output_size
        )[0]

    def predict_views(
        self,
        images: Sequence[ImageInput],
        intrinsics: np.ndarray | Sequence[np.ndarray] | None = None,
        poses: np.ndarray | Sequence[np.ndarray] | None = None,
        output_size: OutputSize = "image",
    ) -> SceneResult:
        """Several views of one scene predicted together (any-view models): per-view depth and
        confidence, one camera per view (`SceneResult.intrinsics`, `.cam_to_world`, OpenCV axes).

        `intrinsics` (N x 3 x 3, pixels of each image) and `poses` (N x 4 x 4 camera-to-world)
        are known cameras: the posed path keeps the given poses and brings depth to their units."""
        processor = self.processor
        if not isinstance(processor, ViewsProcessor):
            raise OptionError(f"{self.name} predicts one image at a time; use an any-view model for several views")
        check_output_size(output_size)
        if not images:
            raise OptionError("predict_views needs at least one image")
        loaded = [as_loaded_image(img, self.max_pixels) for img in images]
        k = None if intrinsics is None else _camera_stack(intrinsics, len(loaded), (3, 3), "intrinsics")
        c2w = None if poses is None else _camera_stack(poses, len(loaded), (4, 4), "poses")
        out = processor.predict_views(self.net, [img.rgb for img in loaded], k, c2w, output_size)
        views = []
        for img, pred in zip(loaded, out.views, strict=True):
            source = FocalSource.USER if k is not None else FocalSource.MODEL
            views.append(self._result(img, pred, source, {}, keep_image=True))
        stacked = np.stack([v.intrinsics for v in views if v.intrinsics is not None])
        return SceneResult(views=views, intrinsics=stacked, cam_to_world=out.cam_to_world, model_name=self.name)

    def predict_batch(
        self,
        images: Sequence[ImageInput],
        focal_px: float | Sequence[float | None] | None = None,
        fov_deg: float | None = None,
        batch_size: int = 4,
        keep_image: bool = True,
        output_size: OutputSize = "image",
    ) -> list[DepthResult]:
        """Depth for several images, several per forward pass where their network inputs share a size.

        The three stages (`prepare_batch`, `forward_batch`, `finish_batch`) chained; a batch job
        that overlaps decoding and writing with the network calls them separately.
        """
        prepared = self.prepare_batch(images, BatchOptions(focal_px, fov_deg, batch_size, keep_image, output_size))
        return self.finish_batch(prepared, self.forward_batch(prepared))

    def prepare_batch(self, images: Sequence[ImageInput], options: BatchOptions | None = None) -> PreparedBatch:
        """Stage 1 of `predict_batch`, on the CPU and without the network: images -> network inputs.

        Safe to run in another thread while `forward_batch` runs the previous batch (it only
        reads the processor, which holds no state between calls).
        """
        options = options or BatchOptions()
        loaded = [as_loaded_image(img, self.max_pixels) for img in images]
        focals = _per_image(options.focal_px, len(loaded))
        requests = [FocalRequest(f, options.fov_deg) for f in focals]
        if options.batch_size < 1:
            raise OptionError("batch size must be at least 1")
        check_output_size(options.output_size)
        inputs = [self.processor.preprocess(img.rgb) for img in loaded]
        return PreparedBatch(loaded, requests, inputs, options)

    def forward_batch(self, prepared: PreparedBatch) -> list[NetworkOutput]:
        """Stage 2: the network, one forward pass per group of same-size inputs (at most batch_size each)."""
        inputs = prepared.inputs
        outputs: list[NetworkOutput | None] = [None] * len(inputs)
        for group in _same_shape_chunks(inputs, prepared.options.batch_size):
            start = time.perf_counter()  # the runner stacks the batch and moves it to the device, once
            raw = self.runner.run_batch(self.processor, [inputs[i] for i in group])
            self.last_timings["forward_s"] = time.perf_counter() - start
            for i, output in zip(group, raw, strict=True):
                outputs[i] = output
            del raw
        done: list[NetworkOutput] = []
        for out in outputs:
            if out is None:  # every index belongs to exactly one group
                raise RuntimeError("internal error: an image was not run through the network")
            done.append(out)
        return done

    def finish_batch(self, prepared: PreparedBatch, outputs: Sequence[NetworkOutput]) -> list[DepthResult]:
        """Stage 3: post-processing (resize back, metric scale, focal length) -> one DepthResult per image."""
        options = prepared.options
        return [
            self._finish(img, request, out, options.keep_image, options.output_size)
            for img, request, out in zip(prepared.images, prepared.requests, outputs, strict=True)
        ]

    def predict_gaussians(
        self,
        image: ImageInput,
        focal_px: float | None = None,
        focal_35mm: float | None = None,
        focal_model: str | FocalModel | None = DEFAULT_FOCAL_MODEL,
    ) -> Gaussians:
        """Metric 3-D Gaussians of one picture (models that predict them, e.g. SHARP); focal length:
        focal_px or focal_35mm > EXIF > focal_model's FOV head when its weights are at hand (no
        download; None: skip it) > the model's default. See `sharpdepth.engine.splat`."""
        from .splat import FocalModel, predict_gaussians

        if isinstance(focal_model, str):
            focal_model = FocalModel(focal_model, device=self.device, loader=load)
        return predict_gaussians(self, image, focal_px=focal_px, focal_35mm=focal_35mm, focal_model=focal_model)

    def predict_video(
        self,
        source: VideoInput,
        mode: str = "offline",
        stabilize: bool | None = None,
        batch_size: int = DEFAULT_VIDEO_BATCH_SIZE,
        *,
        selection: FrameSelection | None = None,
        fps: float | None = None,
        focal_px: float | None = None,
        fov_deg: float | None = None,
        stabilizer: StabilizerSettings | None = None,
        focal_frames: int | None = None,
        reuse: Reuse | None = None,
    ) -> Iterator[DepthResult]:
        """One DepthResult per frame of a video, folder, glob or TxHxWx3 array, in order.

        Image models run per frame (batched) and are stabilised by default (`stabilize=False`
        turns it off); Video Depth Anything runs its own offline/streaming pipeline. Options
        are those of `sharpdepth.engine.video.VideoOptions`.
        """
        from .video import DEFAULT_FOCAL_FRAMES, VideoOptions, predict_video

        options = VideoOptions(
            mode, stabilize, batch_size, focal_px=focal_px, fov_deg=fov_deg, stabilizer=stabilizer,
            focal_frames=focal_frames or DEFAULT_FOCAL_FRAMES, reuse=reuse,
        )  # fmt: skip
        return predict_video(self, source, options, selection=selection, fps=fps)

    # ------------------------------------------------------------ internals
    def _finish(
        self,
        img: LoadedImage,
        request: FocalRequest,
        out: NetworkOutput,
        keep_image: bool,
        output_size: OutputSize = "image",
    ) -> DepthResult:
        given = request.resolve(img.width)
        source = FocalSource.USER if given is not None else FocalSource.NONE
        extra: dict[str, object] = {}
        if given is None and img.exif_focal is not None:
            given, source = img.exif_focal.focal_px, FocalSource.EXIF
            extra["exif_focal_rule"] = img.exif_focal.rule
        height, width = img.height, img.width
        if output_size == "network":  # the maps, focal and intrinsics of the processed grid
            height, width = self.processor.network_size(img.height, img.width)
            given = None if given is None else given * width / img.width
        pred = self.processor.postprocess(out, height, width, given)
        if out.fov_deg is not None:
            extra["model_fov_deg"] = float(out.fov_deg)
        return self._result(img, pred, source, extra, keep_image, given)

    def _result(
        self,
        img: LoadedImage,
        pred: Prediction,
        source: FocalSource,
        extra: dict[str, object],
        keep_image: bool,
        given: float | None = None,
    ) -> DepthResult:
        """A processor's prediction for `img` as a DepthResult (the image resized to the map if needed)."""
        focal = pred.focal_px if pred.focal_px is not None else given
        if pred.focal_from_model:
            source = FocalSource.MODEL
        elif pred.focal_from_default:
            source = FocalSource.DEFAULT
        image = img.rgb if keep_image else None
        if pred.crop is not None:  # the map covers part of the image: that part is its picture
            top, left, height, width = pred.crop
            extra = {**extra, "crop": {"top": top, "left": left, "height": height, "width": width}}
            image = None if image is None else image[top : top + height, left : left + width]
        if image is not None and image.shape[:2] != pred.map.shape:
            image = np.asarray(Image.fromarray(image).resize(pred.map.shape[::-1], Image.Resampling.BILINEAR))
        return DepthResult(
            prediction=pred.map,
            kind=self.spec.output_kind,
            focal_px=focal,
            focal_source=source,
            model_name=self.spec.name,
            weights_sha256=self.weights_sha256,
            image=image,
            source=img.path,
            extra=extra,
            confidence=pred.confidence,
            sky=pred.sky,
            intrinsics=pred.intrinsics,
        )


def check_output_size(output_size: str) -> None:
    if output_size not in ("image", "network"):
        raise OptionError(f"output size must be 'image' or 'network', got {output_size!r}")


def _camera_stack(values: np.ndarray | Sequence[np.ndarray], n: int, shape: tuple[int, int], what: str) -> np.ndarray:
    """Given cameras as an (n, *shape) float64 array; OptionError when the count or shape is wrong."""
    try:
        stacked = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise OptionError(f"{what} must be {n} matrices of {shape[0]}x{shape[1]} numbers") from None
    if stacked.shape != (n, *shape) or not np.isfinite(stacked).all():
        raise OptionError(f"{what}: expected {n} finite {shape[0]}x{shape[1]} matrices, got shape {stacked.shape}")
    return stacked


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


# --------------------------------------------------------------------------- weights -> network


def convert_checkpoint(spec: AnySpec, state: StateDict, layout: str, origin: str, expected: set[str]) -> StateDict:
    """The checkpoint in official layout; `layout="auto"` (a user's file) is detected from its keys."""
    detected = layout
    if layout == "auto":
        overlap = len(expected & set(state)) / max(len(expected), 1)
        detected = "official" if overlap > 0.5 else "hf"
    try:
        return spec.convert_state_dict(state, detected)
    except WeightsError as exc:
        if layout == "auto":  # neither official keys nor a convertible transformers layout
            matching = len(expected & set(state))
            raise WeightsError(
                f"{origin} does not fit this model ({spec.name}): {matching} of {len(expected)} official keys present, "
                f"and it is not a convertible transformers checkpoint ({exc})"
            ) from None
        raise WeightsError(f"{origin}: cannot convert {detected} checkpoint ({exc})") from None


def check_keys(expected: dict[str, torch.Tensor], state: StateDict, origin: str) -> None:
    """Strict key and shape check with a one-line summary (works on meta tensors too)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:2])})")
        raise WeightsError(f"{origin} does not fit this model: {'; '.join(parts)}")


def strict_load(net: nn.Module, state: StateDict, origin: str) -> None:
    """load_state_dict(strict=True) with shape checks and a one-line summary on failure."""
    check_keys(net.state_dict(), state, origin)
    net.load_state_dict(state, strict=True)


def _has_computed_buffers(net: nn.Module) -> bool:
    """Non-persistent buffers are computed in __init__ and are not in any checkpoint."""
    return any(m._non_persistent_buffers_set for m in net.modules())


def load_network(spec: AnySpec, resolved: ResolvedWeights, dtype: torch.dtype = torch.float32) -> nn.Module:
    """The network with the checkpoint's weights, in `dtype`, without a second full copy in memory.

    The network is built on the meta device (no storage), the memory-mapped checkpoint is
    converted tensor by tensor to `dtype` and assigned into it (`load_state_dict(assign=True)`),
    so peak memory is one copy of the weights in the target dtype rather than a randomly
    initialised fp32 network plus the checkpoint plus the cast. Values are those of
    `load_state_dict` into an fp32 network followed by `.to(dtype)` (a float -> float cast
    rounds once either way). Networks with computed (non-persistent) buffers are built
    normally, because a meta build cannot compute them.
    """
    origin = str(resolved.path)
    state = load_state_dict_file(resolved.path)
    with torch.device("meta"):
        skeleton = spec.build()
    on_meta = not _has_computed_buffers(skeleton)
    net = skeleton if on_meta else spec.build()
    expected = net.state_dict()
    state = convert_checkpoint(spec, state, resolved.layout, origin, set(expected))
    check_keys(expected, state, origin)
    pages = MappedPages(resolved.path)
    for key in list(state):  # one tensor at a time: the mapped file is never copied whole
        value = state[key]
        target = dtype if value.is_floating_point() else expected[key].dtype  # integer buffers keep theirs
        if value.dtype != target:
            state[key] = value.to(target)
            pages.release(value)  # its file pages are dead weight from here on
    if on_meta:
        net.load_state_dict(state, strict=True, assign=True)
    else:
        net = net.to(dtype)
        net.load_state_dict(state, strict=True)
    del state
    return net


def load(
    name: str = DEFAULT_MODEL,
    weights: str | Path | None = None,
    device: str | torch.device | None = "cpu",
    precision: str | None = "fp32",
    input_size: int | None = None,
    download: bool = True,
    random_weights: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    compile: bool = False,
    cuda_graphs: bool = False,
    precision_guard: bool = True,
    backend: str = "torch",
) -> DepthModel:
    """Build a named model and load its weights; every option is checked before any work.

    Options:
        name: a registered model (`sharpdepth.list_models()`), e.g. "depth-pro",
            "depth-anything-v2-small", "midas-dpt-large-384" (aliases accepted).
        weights: a checkpoint file (.pt/.pth/.bin/.safetensors, official or transformers
            layout, detected from its keys); default: the local cache, else a verified
            Hugging Face hub download.
        device: "cpu" (default), "cuda", "cuda:N", "mps" or "auto".
        precision: "fp32" (default), "bf16", "fp16" (GPU only) or "auto" (bf16 where the
            device computes it natively, else fp32).
        input_size: network input size where the model allows it (Depth Anything: shorter
            side, default 518; MiDaS DPT: net size); Depth Pro and MiDaS Swin-V2 run at a
            fixed size and refuse it.
        download: allow a hub download when the weights are not cached.
        random_weights: skip weights entirely (plumbing tests and benchmarks only: the
            outputs are meaningless).
        max_pixels: refuse larger images (decompression-bomb guard); None disables it.
        compile: run the network through `torch.compile` (compiled on first use per input
            shape; a failed compilation warns and runs eager).
        cuda_graphs: capture and replay the forward as CUDA graphs per (batch, shape); CUDA
            only (refused on an explicit CPU/MPS device, ignored with a warning for "auto").
        precision_guard: in bf16/fp16, re-run a batch in fp32 when its raw output has
            non-finite values or a constant map (see `sharpdepth.engine.accelerate`).
        backend: "torch" (default) or "onnxruntime": the forward pass in an onnxruntime
            session (fp32, CPU or CUDA), the graph exported on first use into a cache
            beside the checkpoint, or `weights=FILE.onnx` (see `engine.ort_backend`).

    Order: options and input size are validated, then the weights are located (a missing
    file is reported at once), and only then is the network built and loaded.
    """
    spec = get_spec(name)
    dev = resolve_device(device)
    dtype = resolve_precision(precision, dev)
    acceleration = plan(
        dev, compile=compile, cuda_graphs=cuda_graphs, precision_guard=precision_guard,
        device_was_auto=str(device or "auto").lower() == "auto",
    )  # fmt: skip
    check_max_pixels(max_pixels)
    processor = spec.processor(input_size)
    if check_backend(backend) == "onnxruntime":
        if random_weights:
            raise OptionError("the onnxruntime backend caches graphs by checkpoint; save random weights to a file")
        if compile or cuda_graphs:
            raise OptionError("--compile and --cuda-graphs speed up the torch backend; onnxruntime runs its own graph")
        graph_dtype = torch.float32 if str(precision).lower() == "auto" else dtype  # the graph is fp32

        def torch_model(checkpoint: Path) -> DepthModel:
            """The same model on torch (fp32, CPU): what an export of its graph is traced from."""
            return load(name, weights=checkpoint, device="cpu", precision="fp32", input_size=input_size)

        graph = load_onnxruntime(spec, processor, weights, dev, graph_dtype, torch_model, download)
        return DepthModel(spec, processor, graph.net, dev, torch.float32, graph.resolved, graph.sha256, max_pixels,
                          backend="onnxruntime")  # fmt: skip
    check_torch_weights(weights)
    resolved = None if random_weights else resolve_weights(spec, weights, download_ok=download)
    if dev.type == "cpu":
        return_large_blocks_to_os()  # activations' memory goes back as it is freed: a flat resident set
    if resolved is None:
        net = spec.build().to(dtype=dtype)
        digest = None
    else:
        net = load_network(spec, resolved, dtype)
        digest = sha256_file_cached(resolved.path)
    net = net.to(device=dev).eval()
    return DepthModel(spec, processor, net, dev, dtype, resolved, digest, max_pixels, acceleration)
