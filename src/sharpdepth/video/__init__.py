"""Video depth: the `video` job (files out) and the public stabiliser.

`sharpdepth.video.stabilize(disparity, frames, mode="offline")` works on any
model's per-frame disparity; `run_video(source, out_dir, settings)` is what
`sharpdepth video` runs. Names are imported on first use, so the command line
can read `video.settings` without loading torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .settings import VideoSettings

if TYPE_CHECKING:
    from ..engine.stabilize import StabilizerSettings, stabilize
    from .job import VideoSummary, run_video, run_videos

__all__ = ["StabilizerSettings", "VideoSettings", "VideoSummary", "run_video", "run_videos", "stabilize"]


def __getattr__(name: str) -> object:
    if name in ("StabilizerSettings", "stabilize"):
        from ..engine import stabilize as module
    elif name in ("VideoSummary", "run_video", "run_videos"):
        from . import job as module  # type: ignore[no-redef]
    else:
        raise AttributeError(f"module 'sharpdepth.video' has no attribute {name!r}")
    return getattr(module, name)
