"""Video depth: the `video` job (files out) and the public stabiliser.

`sharpdepth.video.stabilize(disparity, frames, mode="offline")` works on any
model's per-frame disparity; `run_video(source, out_dir, settings)` is what
`sharpdepth video` runs.
"""

from __future__ import annotations

from ..engine.stabilize import StabilizerSettings, stabilize
from .job import VideoSettings, VideoSummary, run_video, run_videos

__all__ = ["StabilizerSettings", "VideoSettings", "VideoSummary", "run_video", "run_videos", "stabilize"]
