"""Video Depth Anything's two official inference modes, as bounded-memory generators.

`vda_video_maps(model, frames, mode)` is the family's video runner (`Family.video_runner`), which
`DepthModel.predict_video` calls for Video Depth Anything models: frames in (HxWx3 uint8 RGB, any iterable, consumed
lazily), one float32 HxW map per frame out, in order, in the model's output kind.

Offline (official `video_depth.infer_video_depth`)
    Windows of 32 frames starting every 22 frames (10 overlap). The clip is padded
    with copies of its last frame so the last window is full. From the second window
    on, the first 10 slots of the network input are replaced by the previous window's
    input at slots KEYFRAMES = [0, 12, 24..31], so slot 0 is always frame 0 and slot 1
    the frame the previous window had at slot 12. Relative models: each window's raw
    output is mapped onto the previous one by a least-squares scale and shift fitted on
    slots 0 and 1 against the reference maps (frame 0 of window 1, forever, and the
    previous window's slot 12, aligned); metric models use scale 1, shift 0. Slots 2..9
    (the previous window's last 8 frames) are cross-faded into the already aligned last
    8 frames with weights 0, 1/7, ..., 1; slots 10..31 are new frames. Aligned maps are
    clamped at 0.
    Only the last 8 aligned maps can still change, so everything before them is
    yielded as soon as a window is done: memory is one window, not the clip.

Streaming (official `video_depth_stream.infer_video_depth_one`)
    One network pass per frame. Every temporal attention block keeps the state of each
    processed frame; frame k attends over the states of 31 earlier frames plus itself.
    The official bookkeeping is a list that starts as 32 copies of frame 0's state,
    grows by one per frame and, from frame 11 on, drops its second entry each time; the
    window is entries [0, 1] and the last 29. That gives frame k the window
    [0, max(k-41, 0), max(k-29, 0), ..., max(k-1, 0), k] (`stream_window_ids`): frame 0
    forever, one frame 41 back, the last 29 frames. No alignment. The list holds at
    most 42 frames of state, so memory does not grow with the clip.

Both reproduce the official float32 CPU outputs (fixtures in
`shared/fixtures/video_depth_anything`) to ~3e-6 relative.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from ...errors import InputImageError, OptionError
from ...family import LoadedNetwork
from .network import WINDOW, VideoDepthAnything, VideoDepthAnythingConfig, resize_to_frame

Mode = Literal["offline", "streaming"]

OVERLAP = 10
"""Slots of each window (after the first) filled from the previous window."""
KEYFRAMES = (0, 12, 24, 25, 26, 27, 28, 29, 30, 31)
"""Previous-window slots copied into slots 0..9 of the next window."""
INTERP_LEN = 8
"""Overlapping frames cross-faded between consecutive windows."""
STEP = WINDOW - OVERLAP
"""Window stride (22 frames)."""
ALIGN_SLOTS = OVERLAP - INTERP_LEN
"""Slots (0 and 1) whose maps fit the scale/shift against the reference maps."""
STREAM_GAP = 2 * STEP - 1 - ALIGN_SLOTS
"""41: how far back the streaming window's second entry reaches in steady state."""


@dataclass
class VideoTrace:
    """What the pipeline did, for tests and sidecars: frames per temporal window, fitted alignments."""

    windows: list[list[int]] = field(default_factory=list)
    """Offline: the frame index in each of the 32 slots of each window. Streaming: per frame, the
    frames whose states form its temporal window, the frame itself last."""
    scale_shift: list[tuple[float, float]] = field(default_factory=list)
    """Offline: (scale, shift) applied to each window after the first ((1, 0) for metric models)."""


def vda_video_maps(
    model: LoadedNetwork, frames: Iterable[np.ndarray], mode: Mode | str = "offline", trace: VideoTrace | None = None
) -> Iterator[np.ndarray]:
    """Per-frame maps of a clip with a Video Depth Anything model, as the official code computes them.

    `model`: a loaded `video-depth-anything-*` LoadedNetwork (its net, device, dtype,
    processor's preprocessing and `input_size` are used). `frames`: HxWx3 uint8 RGB
    arrays, all the same size, read lazily. `mode`: "offline" (32-frame windows,
    aligned and cross-faded; needs up to 32 frames of look-ahead) or "streaming"
    (causal, one pass per frame). Yields one float32 HxW array per input frame, in
    order, at frame resolution: relative disparity, or metres for metric models.
    Raises InputImageError for a clip without frames or with frames of different sizes.
    `trace`, if given, is filled in as the clip is processed.
    """
    net, cfg = _vda_net(model)
    trace = trace if trace is not None else VideoTrace()
    if mode == "offline":
        yield from _offline(model, net, cfg, frames, trace)
    elif mode == "streaming":
        yield from _streaming(model, net, frames, trace)
    else:
        raise OptionError(f"unknown video mode {mode!r}; choose offline or streaming")


# ----------------------------------------------------------------------- shared


def _vda_net(model: LoadedNetwork) -> tuple[VideoDepthAnything, VideoDepthAnythingConfig]:
    net, cfg = model.net, model.spec.config
    if not isinstance(net, VideoDepthAnything) or not isinstance(cfg, VideoDepthAnythingConfig):
        raise OptionError(f"{model.name} is not a Video Depth Anything model")
    return net, cfg


@dataclass
class _FrameReader:
    """Preprocesses frames on demand and checks that they all share one size."""

    model: LoadedNetwork
    frames: Iterator[np.ndarray]
    size: tuple[int, int] | None = None
    count: int = 0
    ended: bool = False

    def next_input(self) -> torch.Tensor | None:
        """The next frame's (3, h, w) network input, or None at the end of the clip."""
        if self.ended:
            return None
        frame = next(self.frames, None)
        if frame is None:
            self.ended = True
            if self.count == 0:
                raise InputImageError("the clip has no frames")
            return None
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise InputImageError(f"frame {self.count}: expected HxWx3 uint8 RGB, got {frame.dtype} {frame.shape}")
        hw = (int(frame.shape[0]), int(frame.shape[1]))
        if self.size is None:
            self.size = hw
        elif hw != self.size:
            raise InputImageError(f"frame {self.count} is {hw[1]}x{hw[0]}, the clip is {self.size[1]}x{self.size[0]}")
        self.count += 1
        return self.model.processor.preprocess(frame)


def _run(
    model: LoadedNetwork, net: VideoDepthAnything, clip: torch.Tensor, past: Sequence[torch.Tensor] | None = None
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(T, 3, h, w) inputs -> ((T, h, w) float32 maps on CPU, states) on the model's device and dtype."""
    with torch.inference_mode():
        depth, states = net.forward_frames(clip[None].to(model.device, model.dtype), past)
    return depth[0].float().cpu(), states


# ----------------------------------------------------------------------- offline


def offline_window_ids(n_frames: int) -> list[list[int]]:
    """Frame index in each slot of each offline window, for a clip of n_frames (the official plan)."""
    windows: list[list[int]] = []
    for start in range(0, n_frames, STEP):
        slots = [min(start + s, n_frames - 1) for s in range(WINDOW)]  # padding = copies of the last frame
        if windows:
            slots[:OVERLAP] = [windows[-1][k] for k in KEYFRAMES]
        windows.append(slots)
    return windows


@dataclass
class OfflineAligner:
    """Official alignment of consecutive window outputs, holding only what can still change."""

    metric: bool
    reference: list[np.ndarray] = field(default_factory=list)
    """Maps slots 0 and 1 of the next window are fitted to: frame 0 of window 1, previous slot 12."""
    tail: list[np.ndarray] = field(default_factory=list)
    """The last INTERP_LEN aligned maps, which the next window cross-fades into."""
    scales: list[tuple[float, float]] = field(default_factory=list)

    def add(self, raw: list[np.ndarray]) -> list[np.ndarray]:
        """One window's 32 raw maps -> the aligned maps that are now final (in order)."""
        if not self.reference:
            self.reference = [raw[k] for k in KEYFRAMES[:ALIGN_SLOTS]]
            done, self.tail = raw[:-INTERP_LEN], raw[-INTERP_LEN:]
            return done
        if self.metric:
            scale, shift = np.float32(1.0), np.float32(0.0)
        else:
            scale, shift = least_squares_scale_shift(raw[:ALIGN_SLOTS], self.reference)
        self.scales.append((float(scale), float(shift)))

        def aligned(m: np.ndarray) -> np.ndarray:
            return np.maximum(m * scale + shift, np.float32(0.0))

        faded = cross_fade(self.tail, [aligned(m) for m in raw[ALIGN_SLOTS:OVERLAP]])
        new = [aligned(m) for m in raw[OVERLAP:]]
        self.reference = [self.reference[0]] + [aligned(raw[k]) for k in KEYFRAMES[1:ALIGN_SLOTS]]
        done, self.tail = faded + new[:-INTERP_LEN], new[-INTERP_LEN:]
        return done

    def finish(self) -> list[np.ndarray]:
        tail, self.tail = self.tail, []
        return tail


def least_squares_scale_shift(
    pred: Sequence[np.ndarray], target: Sequence[np.ndarray]
) -> tuple[np.float32, np.float32]:
    """(s, t) minimising sum (s*pred + t - target)^2 over all pixels, in float32 like the official code.

    Solved from the 2x2 normal equations with float32 sums; a singular system
    (constant prediction) keeps (1, 0).
    """
    p = np.concatenate(pred).astype(np.float32)
    q = np.concatenate(target).astype(np.float32)
    ones = np.ones_like(p)
    a00, a01, a11 = np.sum(ones * p * p), np.sum(ones * p), np.sum(ones)
    b0, b1 = np.sum(ones * p * q), np.sum(ones * q)
    det = a00 * a11 - a01 * a01
    if det == 0:
        return np.float32(1.0), np.float32(0.0)
    return np.float32((a11 * b0 - a01 * b1) / det), np.float32((-a01 * b0 + a00 * b1) / det)


def cross_fade(before: Sequence[np.ndarray], after: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Linear blend from `before` (weight 1 at the first map) to `after` (weight 1 at the last)."""
    n = len(before)
    if n != len(after) or n < 2:
        raise ValueError("cross-fade needs two equally long runs of at least 2 maps")
    weights = [i / (n - 1) for i in range(n)]
    return [b * (1 - w) + a * w for b, a, w in zip(before, after, weights, strict=True)]


def _offline(
    model: LoadedNetwork,
    net: VideoDepthAnything,
    cfg: VideoDepthAnythingConfig,
    frames: Iterable[np.ndarray],
    trace: VideoTrace,
) -> Iterator[np.ndarray]:
    reader = _FrameReader(model, iter(frames))
    aligner = OfflineAligner(metric=cfg.metric)
    keyframes: tuple[torch.Tensor, list[int]] | None = None
    last: tuple[torch.Tensor, int] | None = None
    emitted = windows = 0
    while True:
        inputs, ids = ([], []) if keyframes is None else (list(keyframes[0]), list(keyframes[1]))
        while len(inputs) < WINDOW:
            tensor = reader.next_input()
            last = (tensor, reader.count - 1) if tensor is not None else last
            assert last is not None
            inputs.append(last[0])  # past the end: copies of the last frame (official padding)
            ids.append(last[1])
        clip = torch.stack(inputs)
        windows += 1
        trace.windows.append(ids)
        raw, _ = _run(model, net, clip)
        assert reader.size is not None
        for depth in aligner.add(list(resize_to_frame(raw, *reader.size).numpy())):
            if emitted < reader.count:
                yield depth
                emitted += 1
        if aligner.scales:
            trace.scale_shift.append(aligner.scales[-1])
        keyframes = (clip[list(KEYFRAMES)], [ids[k] for k in KEYFRAMES])
        # The next window starts at frame windows * STEP and exists only if that frame does;
        # it has been read already (this window reached frame (windows - 1) * STEP + 31).
        if reader.count <= windows * STEP:
            break
    for depth in aligner.finish():
        if emitted < reader.count:
            yield depth
            emitted += 1


# ----------------------------------------------------------------------- streaming


def stream_window_ids(step: int) -> list[int]:
    """Frames whose states form step `step`'s temporal window (closed form of the official list rule)."""
    if step == 0:
        return [0]
    back = [max(step - STREAM_GAP, 0)] + [max(j, 0) for j in range(step - (WINDOW - 3), step)]
    return [0] + back + [step]


@dataclass
class StreamCache:
    """The official streaming bookkeeping: per-frame attention states in a sliding list."""

    entries: list[tuple[int, list[torch.Tensor]]] = field(default_factory=list)
    step: int = -1

    def window(self) -> tuple[list[int], list[torch.Tensor] | None]:
        """(frame ids, concatenated past states) for the next frame; (.., None) for the first."""
        if not self.entries:
            return [], None
        chosen = self.entries[:2] + self.entries[-(WINDOW - 3) :]
        ids = [frame for frame, _ in chosen]
        past = [torch.cat([states[i] for _, states in chosen], dim=1) for i in range(len(chosen[0][1]))]
        return ids, past

    def push(self, states: list[torch.Tensor]) -> None:
        """Record the newest frame's states and slide the list as the official code does."""
        self.step += 1
        if not self.entries:
            self.entries = [(0, states)] * WINDOW  # the first frame stands in for a full window
        else:
            self.entries.append((self.step, states))
        if self.step + WINDOW > STREAM_GAP + 1:
            del self.entries[1]


def _streaming(
    model: LoadedNetwork, net: VideoDepthAnything, frames: Iterable[np.ndarray], trace: VideoTrace
) -> Iterator[np.ndarray]:
    reader = _FrameReader(model, iter(frames))
    cache = StreamCache()
    while (tensor := reader.next_input()) is not None:
        ids, past = cache.window()
        trace.windows.append(ids + [cache.step + 1])
        raw, states = _run(model, net, tensor[None], past)
        cache.push(states)
        assert reader.size is not None
        yield resize_to_frame(raw, *reader.size)[0].numpy()
