"""Settings of the `video` job: the one place where its defaults live (no torch, no OpenCV here).

The CLI builds a `VideoSettings` from its flags, the Ray job ships the same object to its
actors; `sharpdepth.video.job.run_video` runs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..engine.settings import DEFAULT_VIDEO_BATCH_SIZE as DEFAULT_BATCH_SIZE
from ..engine.settings import FocalSettings, ModelSettings, PredictSettings
from ..engine.stabilize import MODES, StabilizerSettings
from ..engine.video import VideoOptions
from ..errors import OptionError
from ..io.depth_files import DEFAULT_PNG16_SCALE_M
from ..io.frames import FrameSelection
from ..io.images import DEFAULT_MAX_PIXELS
from ..io.outputs import OutputOptions

if TYPE_CHECKING:
    from ..engine.video import NetworkCache, Reuse


@dataclass(frozen=True, kw_only=True)
class VideoSettings:
    """One `video` job: model, focal, mode, stabiliser, frame selection, outputs, resuming."""

    model: ModelSettings = field(default_factory=ModelSettings)
    focal: FocalSettings = field(default_factory=FocalSettings)
    mode: str = "offline"
    stabilize: bool | None = None
    """None: the model's default (image models on, Video Depth Anything off)."""
    stabilizer: StabilizerSettings = field(default_factory=StabilizerSettings)
    selection: FrameSelection = field(default_factory=FrameSelection)
    fps: float | None = None
    """Frame rate of image-sequence inputs (video files keep their own)."""
    formats: tuple[str, ...] = ("npz",)
    colormap: str = "inferno"
    png16_scale_m: float = DEFAULT_PNG16_SCALE_M
    preview: bool = True
    side_by_side: bool = False
    skip_existing: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise OptionError(f"unknown --mode {self.mode!r}; choose {' or '.join(MODES)}")
        if not self.formats:
            raise OptionError("give at least one --format")
        self.output_options()  # the predict job's output checks (formats, colormap, PNG scale), not a copy of them
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise OptionError(f"--fps must be a positive number, got {self.fps}")
        if self.batch_size < 1:
            raise OptionError("--batch-size must be at least 1")
        self._check_input_size()

    def _check_input_size(self) -> None:
        """Refuse a network input larger than the frames may be, before anything is allocated.

        A square network input of side `input_size` holds at least `input_size**2` pixels; over
        the pixel limit of an image (the default one, or a larger `--max-pixels`) it would allocate
        gigabytes per frame (and then fail) before any output.
        """
        size, limit = self.model.input_size, max(self.model.max_pixels, DEFAULT_MAX_PIXELS)
        if size is not None and size * size > limit:
            raise OptionError(
                f"--input-size {size} asks for a network input of at least {size * size:,} pixels, over the "
                f"limit of {limit:,}; use a smaller size or raise --max-pixels"
            )

    def output_options(self) -> OutputOptions:
        """The depth files' options as the predict job states them (the video job writes no colour views)."""
        return OutputOptions(formats=self.formats, colormap=self.colormap, png16_scale_m=self.png16_scale_m)

    def network_options(self, reuse: Reuse | None = None, cache: NetworkCache | None = None) -> VideoOptions:
        """What the network stage of a clip needs of these settings (every command that runs one)."""
        return VideoOptions(
            mode=self.mode, stabilize=self.stabilize, batch_size=self.batch_size, focal_px=self.focal.focal_px,
            fov_deg=self.focal.fov_deg, stabilizer=self.stabilizer, reuse=reuse, cache=cache,
        )  # fmt: skip

    def record(self) -> dict[str, object]:
        """What decides the frames' numbers: predict's settings record plus the video's own choices.

        Stored in the clip's sidecar; `skip_existing` resumes a clip or its frames only when it
        matches, so a re-run with another model, weights, focal or stabiliser never keeps old frames.
        """
        sel = self.selection
        return {
            **PredictSettings(model=self.model, focal=self.focal, output=self.output_options()).record(),
            "mode": self.mode,
            "stabilize": self.stabilize,
            "stabilizer": self.stabilizer.as_dict(),
            "selection": {"start_s": sel.start_s, "end_s": sel.end_s, "every": sel.every, "max_frames": sel.max_frames},
            "fps": self.fps,
            "formats": list(self.formats),
        }
