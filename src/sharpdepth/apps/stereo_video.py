"""2D to 3D video: `DIR/<stem>_<layout>.mp4` from a clip, its depth from the video pipeline.

Depth comes from `engine.video.predict_video` — any model, stabilised as the
`video` job stabilises it, frames decoded ahead in a thread, memory bounded by
the stabiliser's look-ahead — and each frame is turned into the layout's frame
(`stereo.compose`) and encoded at once (`io.video.VideoWriter`: the input's
frame times, audio copied, written to a temporary file and renamed).

Per shot: relative results keep one disparity range for the whole shot, so the
3D effect does not breathe with the content; at a scene cut (reported by the
stabiliser) the range and the temporal fill start over.

Resume: each frame's depth is kept in `DIR/<stem>_depth/` (atomic `.npz`
files, the `video` job's format); a run interrupted and started again reads the
frames already computed instead of running the network, and re-encodes the
video. The folder is removed once the video is complete (`keep_depth` keeps it).

VR180 files carry the spherical video metadata (`stereo_mp4.add_spherical_metadata`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..engine.model import DepthModel
from ..engine.video import is_video_model, predict_video
from ..errors import OptionError, SharpDepthError
from ..io.atomic import write_text_atomic
from ..io.depth_files import output_path, read_depth_result, write_result
from ..io.video import Frame, FrameSource, VideoWriter, open_frames
from ..result import DepthResult, OutputKind
from ..video.settings import VideoSettings
from .settings import VIDEO_STEREO_LAYOUTS, StereoSettings, check_choice
from .stereo import Equirect180, compose, parallax_map, result_focal_px
from .stereo_views import disparity_range


@dataclass(frozen=True, kw_only=True)
class StereoVideoSettings:
    """One stereo video job: the stereo geometry/layout and the depth pipeline that feeds it."""

    stereo: StereoSettings = field(default_factory=lambda: StereoSettings(layout="half-sbs"))
    video: VideoSettings = field(default_factory=VideoSettings)
    keep_depth: bool = False
    """Keep the per-frame depth folder after the video is complete."""

    def __post_init__(self) -> None:
        check_choice(self.stereo.layout, VIDEO_STEREO_LAYOUTS, "video stereo layout")


@dataclass
class StereoVideoSummary:
    source: str
    path: Path
    frames: int = 0
    reused: int = 0
    cuts: int = 0


def stereo_video_path(out_dir: Path, stem: str, layout: str) -> Path:
    return Path(out_dir) / f"{stem}_{layout}.mp4"


class _ShotState:
    """What holds for the current shot: the relative disparity range (reset at each cut)."""

    def __init__(self) -> None:
        self.relative_range: tuple[float, float] | None = None
        self.cuts = 0

    def frame(self, result: DepthResult) -> tuple[float, float] | None:
        stab = result.extra.get("stabilizer")
        cut = isinstance(stab, dict) and bool(stab.get("cut"))
        if cut and self.relative_range is not None:
            self.cuts += 1
            self.relative_range = None
        if result.kind is not OutputKind.METRIC_DEPTH and self.relative_range is None:
            self.relative_range = disparity_range(result.disparity)
        return self.relative_range


class _DepthCache:
    """Per-frame depth of an interrupted run (`DIR/<stem>_depth/NNNNNN.npz`), read back on resume.

    `job.json` holds the record of the job that wrote the frames (the video job's settings
    record: model, weights, precision, focal, stabiliser, selection, ... and the loaded model's
    name); a run with another record drops the old frames first, so a re-run with another model
    or other settings never keeps depth that is not its own (as `sharpdepth video` resumes).
    """

    RECORD = "job.json"

    def __init__(self, folder: Path, kind: OutputKind, record: dict[str, object]) -> None:
        self.folder = folder
        self.kind = kind
        folder.mkdir(parents=True, exist_ok=True)
        self._claim(json.loads(json.dumps(record)))

    def _claim(self, record: object) -> None:
        try:
            previous = json.loads((self.folder / self.RECORD).read_text()).get("job")
        except (OSError, ValueError, AttributeError):
            previous = None
        if previous != record:
            for stale in self.folder.glob("*.npz"):
                stale.unlink(missing_ok=True)
            write_text_atomic(self.folder / self.RECORD, json.dumps({"job": record}, indent=1) + "\n")

    def path(self, index: int) -> Path:
        return output_path(self.folder, f"{index:06d}", "npz", self.kind)

    def reuse(self, frame: Frame) -> DepthResult | None:
        path = self.path(frame.index)
        if not path.is_file():
            return None
        try:
            return read_depth_result(path, kind=self.kind)
        except SharpDepthError:
            return None

    def keep(self, result: DepthResult) -> None:
        if result.frame_index is not None and not self.path(result.frame_index).is_file():
            write_result(replace(result, image=None), self.folder, f"{result.frame_index:06d}", "npz")


def run_stereo_video(
    source: str | Path | FrameSource,
    out_dir: Path,
    settings: StereoVideoSettings,
    model: DepthModel | None = None,
    stem: str | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> StereoVideoSummary:
    """Convert one clip; returns what was written. Raises SharpDepthError (one line) if it cannot."""
    video = settings.video
    opened = open_frames(source, video.selection, video.model.max_pixels, video.fps)
    info = opened.info
    stem = stem or info.stem
    dest = stereo_video_path(out_dir, stem, settings.stereo.layout)
    dest.parent.mkdir(parents=True, exist_ok=True)
    model = model or video.model.load()
    record = {**video.record(), "loaded_model": model.name}
    cache = _DepthCache(dest.parent / f"{stem}_depth", model.spec.output_kind, record)
    results = predict_video(model, opened, video.network_options(reuse=None if is_video_model(model) else cache.reuse))
    summary = StereoVideoSummary(info.source, dest)
    shot = _ShotState()
    writer: VideoWriter | None = None
    vr: Equirect180 | None = None
    encoded = dest.with_name(f".{dest.stem}.encoded.mp4") if settings.stereo.layout == "vr180" else dest
    audio = Path(info.source) if info.kind == "video" and info.has_audio else None
    try:
        for result in results:
            if result.image is None:
                raise SharpDepthError(f"{info.source}: frame {result.frame_index} came without its picture")
            reused = bool(result.extra.get("reused"))
            if not reused:
                cache.keep(result)
            if settings.stereo.layout == "vr180" and vr is None:
                vr = Equirect180.for_view(result.width, result.height, result_focal_px(result))
            frame = compose(result.image, parallax_map(result, settings.stereo, shot.frame(result)), settings.stereo,
                            vr)  # fmt: skip
            if writer is None:
                writer = VideoWriter(encoded, frame.shape[1], frame.shape[0], info.rate / video.selection.every,
                                     audio_from=audio, audio_end_s=video.selection.end_s)  # fmt: skip
            writer.write(frame, result.timestamp_s)
            summary.frames += 1
            summary.reused += int(reused)
            if on_frame is not None:
                on_frame(1)
        if writer is None:
            raise SharpDepthError(f"{info.source}: no frames to convert")
        writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if settings.stereo.layout == "vr180":
        from .stereo_mp4 import add_spherical_metadata

        try:
            add_spherical_metadata(encoded, dest, stereo_mode="left-right")
        finally:
            encoded.unlink(missing_ok=True)
    summary.cuts = shot.cuts
    if not settings.keep_depth:
        shutil.rmtree(cache.folder, ignore_errors=True)
    return summary


def check_stereo_video_output(out_dir: Path) -> Path:
    """The output folder exists or can be made, and is writable (before any model is loaded)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OptionError(f"{out_dir}: is not a directory (-o takes a folder for videos)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OptionError(f"{out_dir}: cannot be created ({exc.strerror or exc})") from None
    if not os.access(out_dir, os.W_OK):
        raise OptionError(f"{out_dir}: is not writable")
    return out_dir
