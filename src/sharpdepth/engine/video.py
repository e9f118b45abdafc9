"""`predict_video`: one DepthResult per frame, in order, for every model.

Image models run frame by frame (several frames per forward pass) and are
stabilised by default (`sharpdepth.engine.stabilize`); a family with its own video
pipeline (`Family.video_runner`, e.g. Video Depth Anything's windowed / streaming
runner) runs the whole clip through it and is not stabilised by default, so that it
matches its official pipeline. Decoding runs in a background thread a few frames ahead of
the network, and nothing is kept beyond the batch and the stabiliser's
look-ahead, so memory does not grow with the length of the video.

Focal length (metric models with a FOV head, i.e. Depth Pro): metric depth
scales with it, so a per-frame estimate makes the whole scene breathe. It is
locked for the shot: the user's value > EXIF (image sequences) > the median of
the model's estimates on the first `focal_frames` frames. Each result still
records the model's own per-frame estimate in `extra["focal_estimate_px"]`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..errors import OptionError
from ..family import VideoRunner
from ..io.frames import Frame, FrameSelection, FrameSource, VideoInput, open_frames
from ..result import DepthResult, FocalSource, focal_from_fov
from .options import DEFAULT_VIDEO_BATCH_SIZE as DEFAULT_BATCH_SIZE
from .stabilize import MODES, Stabilized, Stabilizer, StabilizerSettings
from .staged import decode_ahead

if TYPE_CHECKING:
    from .model import DepthModel  # `DepthModel.predict_video` calls this module: no import back

DEFAULT_FOCAL_FRAMES = 8

Reuse = Callable[[Frame], DepthResult | None]
"""Returns an already-computed (stabilised) result for a frame, or None (resuming a run)."""


def video_runner(model: DepthModel) -> VideoRunner | None:
    """The family's own video pipeline, or None when frames run as images."""
    return model.spec.model_family.video_runner


def is_video_model(model: DepthModel) -> bool:
    """True for a family with its own video pipeline (whole clips: not stabilised or resumed by default)."""
    return video_runner(model) is not None


def prefetch(items: Iterable[Frame], size: int = 8) -> Iterator[Frame]:
    """Decode `items` in a background thread, at most `size` frames ahead (the staged runner's decoder)."""
    return decode_ahead(items, size)


class NetworkCache(Protocol):
    """Raw network results of a clip kept by an interrupted run, so a resumed run can skip the network.

    Everything after the network (focal lock, stabiliser) runs again on them, so the frames after
    the gap are the frames an uninterrupted run computes.
    """

    def get(self, frame: Frame) -> DepthResult | None: ...

    def put(self, frame: Frame, result: DepthResult) -> None: ...


@dataclass(frozen=True)
class VideoOptions:
    """How a clip's decoded frames become results (`video_network`): batching, focal lock, stabiliser,
    resuming. Plain data; `check` runs when the clip starts, as the options of `predict_video` always did."""

    mode: str = "offline"
    """"offline" (look-ahead, best quality) or "streaming" (causal)."""
    stabilize: bool | None = None
    """None: the model's default (on for image models, off for a family with its own video runner)."""
    batch_size: int = DEFAULT_BATCH_SIZE
    focal_px: float | None = None
    fov_deg: float | None = None
    stabilizer: StabilizerSettings | None = None
    focal_frames: int = DEFAULT_FOCAL_FRAMES
    reuse: Reuse | None = None
    cache: NetworkCache | None = None
    """Raw network results of an interrupted run (resuming), see `NetworkCache`."""

    def check(self) -> None:
        if self.mode not in MODES:
            raise OptionError(f"unknown video mode {self.mode!r}; choose {' or '.join(MODES)}")
        if self.batch_size < 1:
            raise OptionError("batch size must be at least 1")
        if self.focal_frames < 1:
            raise OptionError("focal_frames must be at least 1")


def _to_disparity(result: DepthResult) -> np.ndarray:
    return result.disparity


def _from_disparity(result: DepthResult, stabilized: np.ndarray) -> np.ndarray:
    """Stabilised disparity back to the model's output kind; unknown pixels keep the raw value."""
    raw = result.prediction
    good = np.isfinite(stabilized) & (stabilized > 0)
    if result.kind.is_depth:  # metres or depth up to scale: the stabiliser saw 1/depth
        with np.errstate(divide="ignore"):
            return np.where(good, 1.0 / np.where(good, stabilized, 1.0), raw).astype(np.float32)
    return np.where(good, stabilized, raw).astype(np.float32)


class _FocalLock:
    """User > EXIF > median of the first frames' estimates, for the whole shot."""

    def __init__(self, user_px: float | None, exif_px: float | None, frames: int) -> None:
        self.value = user_px if user_px is not None else exif_px
        self.source = FocalSource.USER if user_px is not None else FocalSource.EXIF if exif_px else None
        self.frames = frames
        self.estimates: list[float] = []

    @property
    def locked(self) -> bool:
        return self.value is not None

    def adopt(self, result: DepthResult) -> None:
        """Resuming: take the lock from a frame written by the interrupted run."""
        if not self.locked and result.focal_px is not None and result.focal_source is FocalSource.MODEL:
            self.value, self.source = result.focal_px, FocalSource.MODEL

    def lock_from(self, results: list[DepthResult]) -> None:
        estimates = [r.focal_px for r in results if r.focal_px is not None]
        if estimates:
            self.value, self.source = float(np.median(estimates)), FocalSource.MODEL

    def apply(self, result: DepthResult) -> DepthResult:
        """Re-express a result at the locked focal length (metric depth is proportional to it)."""
        estimate = result.focal_px
        fov = result.extra.get("model_fov_deg")
        if fov is not None:
            estimate = focal_from_fov(float(fov), result.width)
        extra = dict(result.extra)
        if estimate is not None:
            extra["focal_estimate_px"] = float(estimate)
        if self.value is None or self.source is None:
            return replace(result, extra=extra)
        prediction = result.prediction
        if result.is_metric and result.focal_px is not None and result.focal_px != self.value:
            prediction = (prediction * np.float32(self.value / result.focal_px)).astype(np.float32)
        extra["focal_locked"] = True
        return replace(result, prediction=prediction, focal_px=float(self.value), focal_source=self.source, extra=extra)


class _ImageModelVideo:
    """Per-frame predictions, batched, with the focal lock and the stabiliser applied in order."""

    def __init__(
        self, model: DepthModel, info_exif: float | None, stabilizer: StabilizerSettings | None, options: VideoOptions
    ) -> None:
        self.model = model
        self.stab_settings = stabilizer
        self.batch_size = options.batch_size
        fov_deg = options.fov_deg
        self.focal = _FocalLock(options.focal_px, info_exif if fov_deg is None else None, options.focal_frames)
        self.user_fov = fov_deg
        self.reuse = options.reuse
        self.cache = options.cache
        self.stab = Stabilizer(stabilizer) if stabilizer is not None else None
        self.waiting: deque[DepthResult] = deque()
        self.unlocked: list[DepthResult] = []
        self.uses_model_focal: bool | None = None

    # -------------------------------------------------------------- pipeline
    def run(self, frames: Iterable[Frame]) -> Iterator[DepthResult]:
        batch: list[Frame] = []
        for frame in frames:
            done = self.reuse(frame) if self.reuse is not None else None
            if done is not None:
                yield from self._predict(batch)
                batch = []
                yield from self._flush()
                yield self._reused(done, frame)
                continue
            batch.append(frame)
            if len(batch) >= self.batch_size:
                yield from self._predict(batch)
                batch = []
        yield from self._predict(batch)
        yield from self._flush()

    def _reused(self, result: DepthResult, frame: Frame) -> DepthResult:
        self.focal.adopt(result)
        result = replace(
            result,
            frame_index=frame.index,
            timestamp_s=frame.timestamp_s,
            image=frame.rgb,
            extra={**result.extra, "reused": True},
        )
        if self.stab_settings is not None:
            self.stab = Stabilizer(self.stab_settings)
            self.stab.prime(result.disparity, frame.rgb)
        return result

    def _predict(self, batch: list[Frame]) -> Iterator[DepthResult]:
        if not batch:
            return
        for frame, result in zip(batch, self._network(batch), strict=True):
            result = replace(result, frame_index=frame.index, timestamp_s=frame.timestamp_s, source=None)
            if self.uses_model_focal is None:
                self.uses_model_focal = result.focal_source is FocalSource.MODEL
            if self.uses_model_focal and not self.focal.locked:
                self.unlocked.append(result)
                if len(self.unlocked) >= self.focal.frames:
                    yield from self._release_unlocked()
                continue
            if self.focal.locked or self.uses_model_focal:
                result = self.focal.apply(result)
            yield from self._stabilise(result)

    def _network(self, batch: list[Frame]) -> list[DepthResult]:
        """The model's raw results for a batch: from the cache of an interrupted run, else the network."""
        cached = [self.cache.get(frame) if self.cache is not None else None for frame in batch]
        todo = [frame for frame, hit in zip(batch, cached, strict=True) if hit is None]
        computed: Iterator[DepthResult] = iter(())
        if todo:
            focal = self.focal.value if self.focal.locked else None
            fresh = self.model.predict_batch(
                [f.rgb for f in todo],
                focal_px=focal,
                fov_deg=self.user_fov if focal is None else None,
                batch_size=self.batch_size,
            )
            if self.cache is not None:
                for frame, result in zip(todo, fresh, strict=True):
                    self.cache.put(frame, result)
            computed = iter(fresh)
        return [
            replace(hit, image=frame.rgb) if hit is not None else next(computed)
            for frame, hit in zip(batch, cached, strict=True)
        ]

    def _release_unlocked(self) -> Iterator[DepthResult]:
        pending, self.unlocked = self.unlocked, []
        if pending:
            self.focal.lock_from(pending)
        for result in pending:
            yield from self._stabilise(self.focal.apply(result))

    def _stabilise(self, result: DepthResult) -> Iterator[DepthResult]:
        if self.stab is None:
            yield result
            return
        assert result.image is not None
        self.waiting.append(result)
        for out in self.stab.push(_to_disparity(result), result.image):
            yield self._finish(out)

    def _finish(self, out: Stabilized) -> DepthResult:
        return _stabilised(self.waiting.popleft(), out)

    def _flush(self) -> Iterator[DepthResult]:
        yield from self._release_unlocked()
        if self.stab is not None:
            for out in self.stab.flush():
                yield self._finish(out)


def _stabilised(result: DepthResult, out: Stabilized) -> DepthResult:
    extra = {**result.extra, "stabilizer": {"scale": out.scale, "shift": out.shift, "cut": out.cut}}
    return replace(result, prediction=_from_disparity(result, out.disparity), extra=extra)


def _video_model_results(
    model: DepthModel, runner: VideoRunner, frames: Iterable[Frame], mode: str, stabilizer: StabilizerSettings | None
) -> Iterator[DepthResult]:
    """A family's own video pipeline over the whole clip; frames are matched to maps in order."""
    fed: deque[Frame] = deque()

    def feed() -> Iterator[np.ndarray]:
        for frame in frames:
            fed.append(frame)
            yield frame.rgb

    stab = Stabilizer(stabilizer) if stabilizer is not None else None
    waiting: deque[DepthResult] = deque()
    for depth_map in runner(model, feed(), "streaming" if mode == "streaming" else "offline"):
        frame = fed.popleft()
        result = DepthResult(
            prediction=np.asarray(depth_map, dtype=np.float32),
            kind=model.spec.output_kind,
            model_name=model.spec.name,
            weights_sha256=model.weights_sha256,
            image=frame.rgb,
            frame_index=frame.index,
            timestamp_s=frame.timestamp_s,
        )
        if stab is None:
            yield result
            continue
        waiting.append(result)
        for out in stab.push(result.disparity, frame.rgb):
            done = waiting.popleft()
            yield _stabilised(done, out)
    if stab is not None:
        for out in stab.flush():
            done = waiting.popleft()
            yield _stabilised(done, out)


def predict_video(
    model: DepthModel,
    source: VideoInput,
    options: VideoOptions | None = None,
    *,
    selection: FrameSelection | None = None,
    fps: float | None = None,
    prefetch_frames: int = 8,
) -> Iterator[DepthResult]:
    """Depth for every (selected) frame of `source`, in order, one `DepthResult` each.

    `source`: a video file, a folder or glob of frames, a TxHxWx3 uint8 array, a
    list of frames, or an opened `FrameSource`; `options`: see `VideoOptions`.
    """
    options = options or VideoOptions()
    options.check()
    opened: FrameSource = open_frames(source, selection, model.max_pixels, fps)
    network = video_network(model, opened, options)
    yield from network(prefetch(opened.frames(), prefetch_frames))


def video_network(
    model: DepthModel, opened: FrameSource, options: VideoOptions | None = None
) -> Callable[[Iterator[Frame]], Iterator[DepthResult]]:
    """The network stage of a clip for the staged runner: decoded frames in, final results out, in order.

    Everything between decoding and writing: batching, the focal lock, the stabiliser.
    """
    options = options or VideoOptions()
    options.check()
    mode = options.mode
    own_runner = video_runner(model)
    use_stab = (own_runner is None) if options.stabilize is None else bool(options.stabilize)
    stab_settings = None
    if use_stab:
        base = options.stabilizer or StabilizerSettings()
        stab_settings = replace(base, mode=mode)
    if own_runner is not None:
        if options.reuse is not None:
            raise OptionError("resuming is not supported for video models (they need every frame)")
        video_runner_of_family = own_runner
        return lambda frames: _video_model_results(model, video_runner_of_family, frames, mode, stab_settings)
    runner = _ImageModelVideo(model, opened.info.exif_focal_px, stab_settings, options)
    return runner.run
