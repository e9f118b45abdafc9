"""Video in and out: streaming frame readers (PyAV, image sequences, arrays) and H.264 writers.

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

Writers render into a temporary file beside the target and rename it when
complete, so a preview is either whole or absent. The input's audio packets
are copied (remuxed, not re-encoded) into the preview, interleaved as the
video packets are written so that nothing is buffered.
"""

from __future__ import annotations

import glob
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..errors import InputImageError, OptionError, first_line
from .atomic import atomic_path
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
        selector = _Selector(self.selection)
        for i in range(len(self.files)):
            t = i / self.info.fps
            if selector.done(t):
                return
            if selector.keep(t):
                yield i, t

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
        selector = _Selector(self.selection)
        for i in range(len(self.arrays)):
            t = i / self.info.fps
            if selector.done(t):
                return
            if selector.keep(t):
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
class _AudioCopier:
    """Copies the audio packets of `source` in [start, end) into `out`, shifted to start at 0."""

    def __init__(self, source: Path, out: av.container.OutputContainer, end_s: float | None) -> None:
        import av

        self.container = av.open(str(source), mode="r")
        self.in_stream = self.container.streams.audio[0]
        self.out_stream = out.add_stream_from_template(self.in_stream)
        self.out = out
        self.tb = self.in_stream.time_base or Fraction(1, 1)
        self.origin = self.in_stream.start_time or 0
        self.start_s, self.end_s = 0.0, end_s
        self.packets: Iterator[av.Packet] | None = None
        self.pending: av.Packet | None = None
        self.finished = False

    def begin(self, start_s: float) -> None:
        """Start copying at `start_s` of the source (the first video frame's time), before any mux."""
        self.start_s = start_s
        if start_s > 0:
            self.container.seek(int(start_s / self.tb) + self.origin, stream=self.in_stream, backward=True)
        self.packets = self.container.demux(self.in_stream)

    def _next(self) -> av.Packet | None:
        import av

        while not self.finished and self.packets is not None:
            try:
                pkt = next(self.packets)
            except (StopIteration, av.FFmpegError):
                self.finished = True
                return None
            if pkt.pts is None or pkt.size == 0:
                continue
            t = float((pkt.pts - self.origin) * self.tb)
            if t < self.start_s - 1e-6:
                continue
            if self.end_s is not None and t >= self.end_s:
                self.finished = True
                return None
            return pkt
        return None

    def copy_until(self, t_s: float | None) -> None:
        """Mux every audio packet up to time `t_s` (seconds from the output start; None: all)."""
        shift = int(round(self.start_s / self.tb)) + self.origin
        while True:
            pkt = self.pending or self._next()
            self.pending = None
            if pkt is None or pkt.pts is None:
                return
            t = float((pkt.pts - self.origin) * self.tb) - self.start_s
            if t_s is not None and t > t_s:
                self.pending = pkt
                return
            pkt.pts -= shift
            if pkt.dts is not None:
                pkt.dts -= shift
            pkt.stream = self.out_stream
            self.out.mux(pkt)

    def close(self) -> None:
        self.container.close()


AUDIO_PACKET_S = 0.02
"""About one audio packet (1024 samples at 48 kHz): a packet starting this close to the video's end is dropped."""


class VideoWriter:
    """H.264 MP4 writer fed upright RGB frames with their timestamps; atomic (temp + rename).

    Frame times are kept (seconds from the first written frame), so a variable
    frame rate source and `--every` selections keep their timing and the copied
    audio stays in sync. Odd sizes are encoded as 4:4:4 (4:2:0 needs even sizes)
    so the preview has exactly the input's size.
    """

    def __init__(
        self,
        dest: Path,
        width: int,
        height: int,
        rate: Fraction,
        audio_from: Path | None = None,
        audio_end_s: float | None = None,
        crf: int = 18,
    ) -> None:
        import av

        self.dest = dest
        # The package's one atomic writer: a temporary named for this process (a killed run's
        # leftover is removed by `clean_stale_parts`), the usual file mode, renamed when complete.
        self._atomic = ExitStack()
        self.tmp = self._atomic.enter_context(atomic_path(dest))
        self.width, self.height = width, height
        self.rate = rate
        self.time_base = Fraction(1, 90000)
        self.out = av.open(str(self.tmp), mode="w", format="mp4")
        self.stream = self.out.add_stream("libx264", rate=rate)
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        self.stream.codec_context.time_base = self.time_base
        self.stream.options = {"crf": str(crf), "preset": "veryfast"}
        self.audio: _AudioCopier | None = None
        self.audio_note: str | None = None
        if audio_from is not None:
            try:
                self.audio = _AudioCopier(audio_from, self.out, audio_end_s)
            except (av.FFmpegError, ValueError, IndexError) as exc:
                self.audio_note = f"audio not copied ({first_line(exc)})"
        self.first_t: float | None = None
        self.last_pts = -1
        self.count = 0

    def write(self, rgb: np.ndarray, timestamp_s: float | None = None) -> None:
        import av

        if rgb.shape[:2] != (self.height, self.width):
            raise ValueError(f"frame {rgb.shape[:2]} does not match the writer's {self.height}x{self.width}")
        t = self.count / float(self.rate) if timestamp_s is None else timestamp_s
        if self.first_t is None:
            self.first_t = t
            if self.audio is not None:
                self.audio.begin(t)
        pts = int(round((t - self.first_t) / self.time_base))
        pts = max(pts, self.last_pts + 1)  # strictly increasing, whatever the source said
        self.last_pts = pts
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = pts
        frame.time_base = self.time_base
        for packet in self.stream.encode(frame):
            self._mux_video(packet)
        self.count += 1

    def _mux_video(self, packet: av.Packet) -> None:
        # Audio only up to the video written so far: the clip may end at any frame (--max-frames),
        # and the audio must not run past it.
        if self.audio is not None and packet.pts is not None:
            self.audio.copy_until(float(packet.pts * self.time_base))
        self.out.mux(packet)

    def close(self) -> Path:
        """Flush, finish the file and rename it into place."""
        try:
            for packet in self.stream.encode():
                self._mux_video(packet)
            if self.audio is not None:
                self.audio.copy_until(None if self.first_t is None else self.video_end_s() - AUDIO_PACKET_S)
                self.audio.close()
                self.audio = None
            self.out.close()
            self._atomic.close()  # rename into place
        finally:
            self.abort()
        return self.dest

    def video_end_s(self) -> float:
        """Where the written video ends: the last frame's time plus one frame."""
        return max(self.last_pts, 0) * float(self.time_base) + 1.0 / float(self.rate)

    def abort(self) -> None:
        """Drop a half-written file (after an error)."""
        if self.audio is not None:
            self.audio.close()
            self.audio = None
        try:
            self.out.close()
        except Exception:  # closing a broken muxer must not hide the original error
            pass
        self._atomic.pop_all()  # after `close` renamed it, nothing is left to undo
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
