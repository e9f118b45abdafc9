"""Video in and out, one import for both: frame sources (`io.frames`) and the writer (`io.video_writer`).

Kept so that `sharpdepth.io.video` names stay where users import them from.
"""

from __future__ import annotations

from .frames import (
    DEFAULT_SEQUENCE_FPS,
    VIDEO_SUFFIXES,
    ArraySource,
    Frame,
    FrameSelection,
    FrameSource,
    ImageSequenceSource,
    VideoError,
    VideoFileSource,
    VideoInfo,
    VideoInput,
    frame_files_in,
    is_video_input,
    natural_key,
    open_frames,
)
from .video_writer import AUDIO_PACKET_S, VideoWriter

__all__ = [
    "AUDIO_PACKET_S",
    "DEFAULT_SEQUENCE_FPS",
    "VIDEO_SUFFIXES",
    "ArraySource",
    "Frame",
    "FrameSelection",
    "FrameSource",
    "ImageSequenceSource",
    "VideoError",
    "VideoFileSource",
    "VideoInfo",
    "VideoInput",
    "VideoWriter",
    "frame_files_in",
    "is_video_input",
    "natural_key",
    "open_frames",
]
