"""Video in: streaming frame readers (PyAV, image sequences, arrays). The writer is `io.video_writer`.

Why streaming: a 10-minute 4K clip is ~15 000 frames of 25 MB each, so nothing
here ever holds more than the frame being handed out (readers) or being
encoded (writers); memory does not grow with the length of the video.

What a frame carries: its upright RGB pixels (the container's rotation matrix
applied, as phones record portrait video sideways), its index in the source
(files of per-frame results carry it, so `--every 2` gives 0, 2, 4 ...) and
its real presentation time in seconds from the start of the stream (variable
frame rate clips keep their irregular timing). Every user-caused failure
(corrupt file, no video stream, no frames, mixed sizes, too many pixels) is a
`VideoError`: one line, no traceback, raised when the source is opened where
possible, so a batch can report it before any model work.

"""

from __future__ import annotations

import glob
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..errors import InputImageError, OptionError, first_line
from .images import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, load_image, read_exif

if TYPE_CHECKING:
    import av.container

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"})
DEFAULT_SEQUENCE_FPS = 24.0


class VideoError(InputImageError):
    """A video or frame sequence that cannot be read (corrupt, empty, no video stream, ...)."""


@dataclass(frozen=True, kw_only=True)
class FrameSelection:
    """Which frames of a source to use: a time range in seconds, every N-th, at most M."""

    start_s: float = 0.0
    end_s: float | None = None
    every: int = 1
    max_frames: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start_s) and self.start_s >= 0):
            raise OptionError(f"--start must be a non-negative number of seconds, got {self.start_s}")
        if self.end_s is not None and not (math.isfinite(self.end_s) and self.end_s > self.start_s):
            raise OptionError(f"--end ({self.end_s}) must be after --start ({self.start_s})")
        if self.every < 1:
            raise OptionError(f"--every must be at least 1, got {self.every}")
        if self.max_frames is not None and self.max_frames < 1:
            raise OptionError(f"--max-frames must be at least 1, got {self.max_frames}")


@dataclass(frozen=True)
class Frame:
    """One upright RGB frame of a source."""

    index: int
    """Index of the frame in the source (before `every`/`start` selection)."""
    timestamp_s: float
    """Presentation time in seconds from the start of the source."""
    rgb: np.ndarray
    """HxWx3 uint8, upright."""


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a source before decoding it."""

    source: str
    kind: str
    """"video", "frames" (a folder, glob or list of image files) or "array"."""
    width: int
    height: int
    fps: float
    """Average frame rate of the source (frames per second)."""
    rate: Fraction
    """The same as an exact fraction (what the preview writer is given)."""
    frame_count: int | None
    """Frames in the source as the container reports it (None if unknown)."""
    duration_s: float | None
    rotation: int = 0
    """Degrees counter-clockwise applied to make frames upright."""
    has_audio: bool = False
    pixel_format: str | None = None
    time_base: Fraction | None = None
    """Time base of the video stream (video files only)."""
    exif_focal_px: float | None = None
    """Focal length from the first frame's EXIF (image sequences only)."""

    @property
    def stem(self) -> str:
        name = Path(self.source.rstrip("/")).name if self.kind != "array" else "array"
        return Path(name).stem if self.kind == "video" else (name or "frames")


def natural_key(text: str) -> list[int | str]:
    """Sort key that orders frame_2 before frame_10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _check_pixels(source: str, width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise VideoError(
            f"{source}: frames are {width}x{height} ({width * height:,} pixels), over the limit of "
            f"{max_pixels:,}; raise it with --max-pixels"
        )


# ------------------------------------------------------------------ sources
class FrameSource:
    """A source of frames: `info` (known at open) and `frames()` (a fresh stream each call)."""

    info: VideoInfo

    def frames(self) -> Iterator[Frame]:
        raise NotImplementedError


class _Selector:
    """Applies a FrameSelection to a stream of (index, time) in order."""

    def __init__(self, selection: FrameSelection) -> None:
        self.sel = selection
        self.in_range = 0
        self.kept = 0

    def done(self, t: float) -> bool:
        if self.sel.max_frames is not None and self.kept >= self.sel.max_frames:
            return True
        return self.sel.end_s is not None and t >= self.sel.end_s - 1e-9

    def keep(self, t: float) -> bool:
        if t < self.sel.start_s - 1e-9:
            return False
        take = self.in_range % self.sel.every == 0
        self.in_range += 1
        if take:
            self.kept += 1
        return take


def _selected_frames(selection: FrameSelection, count: int, fps: float) -> Iterator[tuple[int, float]]:
    """(index, time) of the frames a selection keeps among `count` frames at `fps` (sources with random access)."""
    selector = _Selector(selection)
    for i in range(count):
        t = i / fps
        if selector.done(t):
            return
        if selector.keep(t):
            yield i, t


class VideoFileSource(FrameSource):
    """Frames decoded by PyAV (FFmpeg), one at a time."""

    def __init__(self, path: Path, selection: FrameSelection, max_pixels: int | None) -> None:
        self.path = path
        self.selection = selection
        container = _open_container(path)
        try:
            self.info = self._probe(container)
        finally:
            container.close()
        _check_pixels(str(path), self.info.width, self.info.height, max_pixels)
        # Decode the first selected frame now: zero frames, bad streams and a start past the end fail here.
        first = next(self.frames(), None)
        if first is None:
            where = f" after {selection.start_s:g} s" if selection.start_s > 0 else ""
            raise VideoError(f"{path}: no decodable video frames{where}")

    def _probe(self, container: av.container.InputContainer) -> VideoInfo:
        if not container.streams.video:
            what = "audio only" if container.streams.audio else "no streams"
            raise VideoError(f"{self.path}: no video stream ({what})")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if not ctx.width or not ctx.height:
            raise VideoError(f"{self.path}: video stream has no frame size (corrupt header)")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or float(rate) <= 0 or not math.isfinite(float(rate)):
            rate = Fraction(int(DEFAULT_SEQUENCE_FPS))
        rotation = _stream_rotation(container)
        width, height = int(ctx.width), int(ctx.height)
        if rotation % 180:
            width, height = height, width
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        return VideoInfo(
            source=str(self.path),
            kind="video",
            width=width,
            height=height,
            fps=float(rate),
            rate=Fraction(rate),
            frame_count=int(stream.frames) or None,
            duration_s=duration,
            rotation=rotation,
            has_audio=bool(container.streams.audio),
            pixel_format=ctx.pix_fmt,
            time_base=Fraction(stream.time_base) if stream.time_base is not None else None,
        )

    def frames(self) -> Iterator[Frame]:
        import av

        container = _open_container(self.path)
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            tb = stream.time_base or Fraction(1, 1)
            origin = stream.start_time or 0
            if self.selection.start_s > 0:
                container.seek(int(self.selection.start_s / tb) + origin, stream=stream, backward=True)
            selector = _Selector(self.selection)
            index = -1
            last_t: float | None = None
            decoded = container.decode(stream)
            while True:
                try:
                    frame = next(decoded)
                except StopIteration:
                    if self.selection.max_frames is None or selector.kept < self.selection.max_frames:
                        self._check_complete(last_t, stream.duration * tb if stream.duration else None)
                    return
                except av.FFmpegError as exc:
                    reason = first_line(exc)
                    raise VideoError(f"{self.path}: corrupt video data after frame {index} ({reason})") from None
                t = float((frame.pts - origin) * tb) if frame.pts is not None else (index + 1) / self.info.fps
                # After a seek the index is recovered from the time (frames are rate-spaced on average).
                index = int(round(t * self.info.fps)) if self.selection.start_s > 0 else index + 1
                last_t = t
                if selector.done(t):
                    return
                if not selector.keep(t):
                    continue
                rgb: np.ndarray = frame.to_ndarray(format="rgb24")
                rotation = _frame_rotation(frame, self.info.rotation)
                if rotation:
                    rgb = np.ascontiguousarray(np.rot90(rgb, k=rotation // 90))
                yield Frame(index=index, timestamp_s=t, rgb=rgb)
        finally:
            container.close()

    def _check_complete(self, last_t: float | None, stream_duration: Fraction | None) -> None:
        """Refuse a clip whose frames stop well before the duration its video stream declares (truncated file).

        Its frames up to there were processed; without this the clip would end early without a word.
        """
        if stream_duration is None:
            return
        declared = float(stream_duration)
        wanted_end = declared if self.selection.end_s is None else min(declared, self.selection.end_s)
        reached = -1.0 / self.info.fps if last_t is None else last_t
        if reached + TRUNCATED_FRAMES / self.info.fps < wanted_end:
            raise VideoError(
                f"{self.path}: the video data ends at {max(reached, 0.0):.2f} s of the {declared:.2f} s its header "
                "declares (truncated or damaged file); the frames before were processed, the clip is incomplete"
            )


TRUNCATED_FRAMES = 2.5
"""Frames missing at the end of a clip (by the header's duration) that mark it as truncated."""


def _open_container(path: Path) -> av.container.InputContainer:
    import av

    if not path.is_file():
        raise VideoError(f"{path}: no such file")
    try:
        return av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        raise VideoError(
            f"{path}: not a readable video (corrupt, truncated or unknown format: {first_line(exc)})"
        ) from None


def _rotation_degrees(value: float | int | None) -> int:
    if value is None or not math.isfinite(float(value)):
        return 0
    return int(round(float(value) / 90.0)) * 90 % 360


def _stream_rotation(container: av.container.InputContainer) -> int:
    """Rotation from the first frame's display matrix (how FFmpeg exposes phone orientation)."""
    import av

    try:
        for frame in container.decode(container.streams.video[0]):
            return _rotation_degrees(getattr(frame, "rotation", 0))
    except av.FFmpegError as exc:
        raise VideoError(f"{container.name}: corrupt video data ({first_line(exc)})") from None
    return 0


def _frame_rotation(frame: object, fallback: int) -> int:
    value = getattr(frame, "rotation", None)
    return _rotation_degrees(value) if value is not None else fallback


class ImageSequenceSource(FrameSource):
    """Image files in a given order, all of one size (checked from headers at open)."""

    def __init__(
        self,
        name: str,
        files: Sequence[Path],
        selection: FrameSelection,
        max_pixels: int | None,
        fps: float | None,
    ) -> None:
        if not files:
            raise VideoError(f"{name}: no image frames found")
        self.files = list(files)
        self.selection = selection
        self.max_pixels = max_pixels
        rate = _rate(fps)
        width, height = _header_size(self.files[0])
        _check_pixels(name, width, height, max_pixels)
        for path in self.files[1:]:
            size = _header_size(path)
            if size != (width, height):
                raise VideoError(
                    f"{name}: frames differ in size: {self.files[0].name} is {width}x{height}, "
                    f"{path.name} is {size[0]}x{size[1]}"
                )
        first = load_image(self.files[0], max_pixels)
        self.info = VideoInfo(
            source=name,
            kind="frames",
            exif_focal_px=first.exif_focal.focal_px if first.exif_focal else None,
            width=width,
            height=height,
            fps=float(rate),
            rate=rate,
            frame_count=len(self.files),
            duration_s=len(self.files) / float(rate),
        )
        if next(iter(self._selected()), None) is None:
            raise VideoError(f"{name}: the selection (--start/--end/--every) leaves no frames")

    def _selected(self) -> Iterator[tuple[int, float]]:
        return _selected_frames(self.selection, len(self.files), self.info.fps)

    def frames(self) -> Iterator[Frame]:
        for i, t in self._selected():
            rgb = load_image(self.files[i], self.max_pixels).rgb
            if rgb.shape[:2] != (self.info.height, self.info.width):
                raise VideoError(f"{self.files[i]}: frame size changed while reading")
            yield Frame(index=i, timestamp_s=t, rgb=rgb)


def _header_size(path: Path) -> tuple[int, int]:
    """Upright (width, height) from the file header, without decoding pixels."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            orientation, _ = read_exif(img)
    except (OSError, SyntaxError, ValueError) as exc:
        raise VideoError(f"{path}: not a readable image ({first_line(exc)})") from None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _rate(fps: float | None) -> Fraction:
    value = DEFAULT_SEQUENCE_FPS if fps is None else fps
    if not (math.isfinite(value) and value > 0):
        raise OptionError(f"--fps must be a positive number, got {fps}")
    return Fraction(value).limit_denominator(1001)


class ArraySource(FrameSource):
    """Frames already in memory: a TxHxWx3 uint8 array or a list of HxWx3 arrays."""

    def __init__(
        self, frames: np.ndarray | Sequence[np.ndarray], selection: FrameSelection, max_pixels: int | None,
        fps: float | None,
    ) -> None:  # fmt: skip
        self.arrays = frames
        if len(frames) == 0:
            raise VideoError("frame array: no frames")
        first = np.asarray(frames[0])
        if first.ndim != 3 or first.shape[2] != 3 or first.dtype != np.uint8:
            raise VideoError(f"frame array: frames must be HxWx3 uint8, got {first.shape} {first.dtype}")
        height, width = first.shape[:2]
        for i, arr in enumerate(frames):
            if np.shape(arr) != first.shape:
                raise VideoError(f"frame array: frame {i} is {np.shape(arr)}, frame 0 is {first.shape}")
        _check_pixels("frame array", width, height, max_pixels)
        rate = _rate(fps)
        self.selection = selection
        self.info = VideoInfo(
            source="array", kind="array", width=width, height=height, fps=float(rate), rate=rate,
            frame_count=len(frames), duration_s=len(frames) / float(rate),
        )  # fmt: skip

    def frames(self) -> Iterator[Frame]:
        for i, t in _selected_frames(self.selection, len(self.arrays), self.info.fps):
            yield Frame(index=i, timestamp_s=t, rgb=np.ascontiguousarray(self.arrays[i]))


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def frame_files_in(folder: Path) -> list[Path]:
    """Image files directly in `folder`, in natural order."""
    return sorted((p for p in folder.iterdir() if p.is_file() and _is_image(p)), key=lambda p: natural_key(p.name))


VideoInput = str | Path | np.ndarray | Sequence[np.ndarray] | Sequence[str | Path] | FrameSource


def open_frames(
    source: VideoInput,
    selection: FrameSelection | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    fps: float | None = None,
) -> FrameSource:
    """Open any supported source; raises VideoError/InputImageError (one line) if it cannot be used.

    Sources: a video file, a folder of frames (natural sort), a glob of frames, a
    TxHxWx3 uint8 array, a list of HxWx3 arrays or a list of image paths. `fps`
    is the frame rate of image sequences and arrays (video files keep theirs).
    """
    selection = selection or FrameSelection()
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, np.ndarray):
        if source.ndim != 4:
            raise VideoError(f"frame array must be TxHxWx3 uint8, got shape {source.shape}")
        return ArraySource(source, selection, max_pixels, fps)
    if isinstance(source, str | Path):
        path = Path(source)
        if path.is_dir():
            return ImageSequenceSource(str(path), frame_files_in(path), selection, max_pixels, fps)
        if path.is_file():
            if _is_image(path):
                return ImageSequenceSource(str(path), [path], selection, max_pixels, fps)
            return VideoFileSource(path, selection, max_pixels)
        if glob.has_magic(str(source)):
            files = [Path(p) for p in glob.glob(str(source)) if _is_image(Path(p)) and Path(p).is_file()]
            files.sort(key=lambda p: natural_key(str(p)))
            return ImageSequenceSource(str(source), files, selection, max_pixels, fps)
        raise VideoError(f"{source}: no such file or directory")
    items = list(source)
    if not items:
        raise VideoError("empty list of frames")
    if all(isinstance(x, str | Path) for x in items):
        return ImageSequenceSource("frames", [Path(str(x)) for x in items], selection, max_pixels, fps)
    return ArraySource([np.asarray(x) for x in items], selection, max_pixels, fps)


def is_video_input(path: Path) -> bool:
    """True for paths the `video` command treats as one clip (a video file or a folder of frames)."""
    return path.is_dir() or (path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES)


# ------------------------------------------------------------------ writers
