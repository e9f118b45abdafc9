"""Small synthetic clips for the video tests (PyAV writes them in milliseconds)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def pattern(i: int, h: int, w: int) -> np.ndarray:
    """Frame i: gradients plus a red block that moves 2 px per frame (so flow has something to track)."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([(xx * 4 + i) % 256, (yy * 4) % 256, ((xx + yy) * 2) % 256], -1).astype(np.uint8)
    x0 = (4 + 2 * i) % max(1, w - 12)
    img[h // 4 : h // 4 + 10, x0 : x0 + 10] = (230, 40, 30)
    return img


def make_clip(
    path: Path,
    n: int = 12,
    w: int = 64,
    h: int = 48,
    fps: int = 24,
    audio: bool = False,
    pix_fmt: str = "yuv420p",
    rotation: int | None = None,
    pts_ms: list[int] | None = None,
) -> Path:
    """An H.264 MP4; `pts_ms` gives variable frame timing, `rotation` a display matrix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        if pts_ms is not None:
            vs.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            vs.set_display_rotation(rotation)
        aus = out.add_stream("aac", rate=48000) if audio else None
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(pattern(i, h, w), format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            for pkt in vs.encode(frame):
                out.mux(pkt)
        if aus is not None:
            samples = int(48000 * n / fps)
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)[None]
            for s in range(0, samples, 1024):
                af = av.AudioFrame.from_ndarray(tone[:, s : s + 1024], format="fltp", layout="mono")
                af.sample_rate = 48000
                for pkt in aus.encode(af):
                    out.mux(pkt)
            for pkt in aus.encode():
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
    return path


def make_audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        aus = out.add_stream("aac", rate=48000)
        af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        af.sample_rate = 48000
        for pkt in aus.encode(af):
            out.mux(pkt)
        for pkt in aus.encode():
            out.mux(pkt)
    return path


def probe(path: Path) -> tuple[int, int, int, float, bool]:
    """(frames, width, height, average fps, has audio) of a written video."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        n = sum(1 for _ in c.decode(v))
        rate = float(v.average_rate or v.base_rate or 0)
        return n, v.codec_context.width, v.codec_context.height, rate, bool(c.streams.audio)
