"""Video out: the H.264 MP4 writer of previews, with the input's audio copied in.

Nothing here holds more than the frame being encoded. The file is written through the
package's one atomic writer (`io.atomic.atomic_path`): a temporary named for this process
beside the target, renamed when complete, so a preview is either whole or absent and a
killed run's leftover is removed by the next run (`clean_stale_parts`). The input's audio
packets are copied (remuxed, not re-encoded), interleaved as the video packets are
written and never past the last video frame.
"""

from __future__ import annotations

from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import first_line
from .atomic import atomic_path

if TYPE_CHECKING:
    from collections.abc import Iterator

    import av
    import av.container

__all__ = ["AUDIO_PACKET_S", "VideoWriter"]


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
