"""The `video` job: one clip in, per-frame depth files + preview video + one JSON sidecar out.

Layout of `OUT/<stem>/`:
    000000.npz, 000001.npz, ...     per-frame lossless depth in each chosen format
                                    (the number is the frame's index in the source)
    <stem>_preview.mp4              H.264 colour view of inverse depth, the input's
                                    frame count, timing, size and audio
    <stem>_sbs.mp4                  input | view side by side (optional)
    <stem>.json                     the sidecar, written last

Why this shape: every file is written atomically, and a frame counts as done
only when all its format files exist, so `skip_existing` can resume an
interrupted run: finished frames are read back instead of recomputed (and
seed the stabiliser, so the frames after the gap continue smoothly), missing
ones are computed, none is duplicated, and the preview and sidecar are
rebuilt from the complete set. Decoding, the network and encoding overlap:
frames are decoded in a thread ahead of the network (engine.video) and
results are written by another thread behind it, through bounded queues.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.model import DepthModel
from ..engine.staged import run_staged
from ..engine.video import is_video_model, video_network
from ..errors import Failure, OptionError, Scope, SharpDepthError, classify, make_failure
from ..io.atomic import clean_stale_parts, ensure_writable_dir, write_bytes_atomic, write_text_atomic
from ..io.colormap import colorize, lut
from ..io.depth_files import Notice, output_path, read_depth_result, write_result
from ..io.frames import Frame, FrameSource, open_frames
from ..io.video_writer import VideoWriter
from ..result import DepthResult, FocalSource, OutputKind
from .settings import VideoSettings

PREFETCH_FRAMES = 8
"""Frames decoded ahead of the network."""
READ_BACK_ORDER = ("npz", "npy", "exr", "pfm", "png16")
"""Which format an interrupted run's frame is read back from (lossless float first)."""


@dataclass
class VideoSummary:
    """What one clip produced."""

    source: str
    folder: Path
    frames: int = 0
    computed: int = 0
    reused: int = 0
    sidecar: Path | None = None


@dataclass
class BatchSummary:
    videos: list[VideoSummary] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0


def frame_stem(index: int) -> str:
    return f"{index:06d}"


def frame_paths(folder: Path, index: int, formats: Sequence[str], kind: OutputKind) -> list[Path]:
    return [output_path(folder, frame_stem(index), fmt, kind) for fmt in formats]


class _FixedRange:
    """One display range for the whole clip (set from the first frame), so the preview does not flicker."""

    def __init__(self, colormap: str) -> None:
        self.colormap = colormap
        self.lo: float | None = None
        self.hi: float | None = None
        lut(colormap)

    def view(self, disparity: np.ndarray) -> np.ndarray:
        finite = np.isfinite(disparity) & (disparity > 0)
        if self.lo is None or self.hi is None:
            if finite.any():
                lo, hi = np.percentile(disparity[finite], [1.0, 99.0])
            else:
                lo, hi = 0.0, 1.0
            margin = 0.1 * float(hi - lo) if hi > lo else 1e-6
            self.lo, self.hi = float(lo) - margin, float(hi) + margin
        scaled = np.clip((disparity - self.lo) / (self.hi - self.lo), 0.0, 1.0)
        scaled = np.where(finite, scaled, 0.0)
        return colorize(scaled, self.colormap)


class _ResumeCache:
    """The hidden `.resume/` folder of a clip: the job record and raw network results of a running job.

    The record (`job.json`, the settings record a predict sidecar holds: model, weights,
    precision, focal, ... plus the video's own mode, stabiliser and selection) says which job
    the frame files on disk belong to; a run with another record clears them first, so a
    re-run with another model never keeps old frames. The raw results (`NNNNNN.npz`, before
    focal lock and stabiliser) let a resumed run skip the network and still compute every later
    frame exactly as an uninterrupted run does; they are removed when the clip is finished.
    """

    def __init__(self, folder: Path, record: dict[str, Any]) -> None:
        self.root = folder / RESUME_FOLDER
        self.record = _json_roundtrip(record)

    def previous_record(self, sidecar: Path) -> Any:
        """The record of the job that wrote this folder before: the sidecar's, else a running job's."""
        for path in (sidecar, self.root / "job.json"):
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and "job" in data:
                return data["job"]
        return None

    def start(self, folder: Path, sidecar: Path, skip_existing: bool) -> bool:
        """Claim the folder for this job; True when its existing frames may be reused."""
        same = self.previous_record(sidecar) == self.record
        if not same:
            _remove_frames_of_another_job(folder)
            shutil.rmtree(self.root, ignore_errors=True)
        elif not skip_existing:
            self.finish()  # not resuming: every frame goes through the network again
        write_text_atomic(self.root / "job.json", json.dumps({"job": self.record}, indent=1) + "\n")
        return same and skip_existing

    def get(self, frame: Frame) -> DepthResult | None:
        path = self.root / f"{frame_stem(frame.index)}.npz"
        if not path.is_file():
            return None
        try:
            return decode_raw(path.read_bytes())
        except (OSError, ValueError, KeyError):
            return None

    def put(self, frame: Frame, result: DepthResult) -> None:
        data = encode_raw(result)
        if data is not None:
            write_bytes_atomic(self.root / f"{frame_stem(frame.index)}.npz", data)

    def finish(self) -> None:
        """The clip is complete: drop the raw results, keep the record."""
        for path in self.root.glob("*.npz"):
            path.unlink(missing_ok=True)


RESUME_FOLDER = ".resume"
_FRAME_FILE = re.compile(r"^\d{6}(_[a-z]+)?\.(npz|npy|exr|pfm|png)$")


def _remove_frames_of_another_job(folder: Path) -> None:
    """Frame files, previews and sidecar written with other settings (another model, ...)."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.is_file() and (_FRAME_FILE.match(path.name) or path.suffix in (".mp4", ".json")):
            path.unlink(missing_ok=True)


def encode_raw(result: DepthResult) -> bytes | None:
    """A raw network result as npz bytes (arrays + JSON facts, no pickle); None if it cannot be kept."""
    facts = {
        "kind": str(result.kind),
        "focal_px": result.focal_px,
        "focal_source": str(result.focal_source),
        "model_name": result.model_name,
        "weights_sha256": result.weights_sha256,
        "extra": result.extra,
    }
    try:
        text = json.dumps(facts, default=_json_scalar)
    except (TypeError, ValueError):
        return None
    arrays: dict[str, Any] = {"prediction": result.prediction}
    for name in ("confidence", "sky", "intrinsics"):
        value = getattr(result, name)
        if value is not None:
            arrays[name] = value
    buffer = io.BytesIO()
    np.savez(buffer, facts=np.array(text), **arrays)
    return buffer.getvalue()


def decode_raw(data: bytes) -> DepthResult:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        facts = json.loads(str(archive["facts"]))
        arrays = {name: archive[name] for name in archive.files if name != "facts"}
    return DepthResult(
        kind=OutputKind(facts["kind"]),
        focal_px=facts["focal_px"],
        focal_source=FocalSource(facts["focal_source"]),
        model_name=facts["model_name"],
        weights_sha256=facts["weights_sha256"],
        extra=facts["extra"],
        **arrays,
    )


def _json_scalar(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _json_roundtrip(value: object) -> Any:
    return json.loads(json.dumps(value))


class _ClipJob:
    """State of one clip while it is being processed."""

    def __init__(self, source: FrameSource, folder: Path, stem: str, settings: VideoSettings, kind: OutputKind):
        self.source = source
        self.folder = folder
        self.stem = stem
        self.settings = settings
        self.kind = kind
        self.view = _FixedRange(settings.colormap)
        self.records: list[dict[str, Any]] = []
        self.preview: VideoWriter | None = None
        self.sbs: VideoWriter | None = None
        self.model_name = ""
        self.weights_sha256: str | None = None
        self.focal_locked: float | None = None
        self.focal_source: str | None = None
        self.notices: dict[str, dict[str, str | int]] = {}
        self.cache = _ResumeCache(folder, settings.record())
        self.may_reuse = False
        """Set by `start`: the frame files on disk were written by this very job (same record)."""
        self.write_s = 0.0

    def start(self, sidecar: Path) -> None:
        self.may_reuse = self.cache.start(self.folder, sidecar, self.settings.skip_existing)

    # ---------------------------------------------------------------- files
    def reuse(self, frame: Frame) -> DepthResult | None:
        """A frame finished by an earlier (interrupted) run, read back; None if it must be computed."""
        if not self.may_reuse or self.cache.get(frame) is not None:
            return None  # raw results of the interrupted run: the network stage recomputes it exactly
        paths = dict(zip(self.settings.formats, frame_paths(self.folder, frame.index, self.settings.formats,
                                                            self.kind), strict=True))  # fmt: skip
        if not all(p.is_file() for p in paths.values()):
            return None
        fmt = next(f for f in READ_BACK_ORDER if f in paths)
        try:
            return read_depth_result(paths[fmt], kind=self.kind)
        except SharpDepthError:
            return None  # unreadable: compute it again (the rewrite is atomic)

    def _notice(self, notice: Notice) -> None:
        """Writer notices (e.g. 16-bit PNG saturation), counted per kind for the sidecar."""
        entry = self.notices.setdefault(notice.kind, {"message": notice.message, "frames": 0})
        entry["frames"] = int(entry["frames"]) + 1

    def already_written(self, result: DepthResult) -> bool:
        """Resuming a video model (which recomputes every frame): keep the files that exist."""
        if not self.may_reuse or result.frame_index is None:
            return False
        return all(p.is_file() for p in frame_paths(self.folder, result.frame_index, self.settings.formats, self.kind))

    def open_writers(self) -> None:
        info = self.source.info
        audio = Path(info.source) if info.kind == "video" and info.has_audio else None
        end = self.settings.selection.end_s
        rate = info.rate / self.settings.selection.every
        if self.settings.preview:
            self.preview = VideoWriter(self.folder / f"{self.stem}_preview.mp4", info.width, info.height, rate,
                                       audio_from=audio, audio_end_s=end)  # fmt: skip
        if self.settings.side_by_side:
            self.sbs = VideoWriter(self.folder / f"{self.stem}_sbs.mp4", 2 * info.width, info.height, rate,
                                   audio_from=audio, audio_end_s=end)  # fmt: skip

    def write_frame(self, result: DepthResult) -> bool:
        """Write one frame's files and preview frames (the writer stage); True if its files were reused."""
        start = time.perf_counter()
        reused = bool(result.extra.get("reused")) or self.already_written(result)
        self._write_frame(result, reused)
        self.write_s += time.perf_counter() - start
        return reused

    def _write_frame(self, result: DepthResult, reused: bool) -> None:
        assert result.frame_index is not None
        names = []
        stem = frame_stem(result.frame_index)
        for fmt in self.settings.formats:
            if reused:
                path = output_path(self.folder, stem, fmt, result.kind)
            else:
                path = write_result(result, self.folder, stem, fmt, scale_m=self.settings.png16_scale_m,
                                    on_notice=self._notice)  # fmt: skip
            names.append(path.name)
        view = self.view.view(result.disparity)
        if self.preview is not None:
            self.preview.write(view, result.timestamp_s)
        if self.sbs is not None and result.image is not None:
            self.sbs.write(np.concatenate([result.image, view], axis=1), result.timestamp_s)
        self.model_name = self.model_name or result.model_name
        self.weights_sha256 = self.weights_sha256 or result.weights_sha256
        if result.focal_px is not None:
            self.focal_locked, self.focal_source = float(result.focal_px), str(result.focal_source)
        estimate = result.extra.get("focal_estimate_px")
        stab = result.extra.get("stabilizer")
        self.records.append(
            {
                "index": result.frame_index,
                "timestamp_s": result.timestamp_s,
                "files": names,
                "reused": reused,
                "focal_estimate_px": None if estimate is None else float(estimate),
                "stabilizer": stab,
            }
        )

    def finish_writers(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, writer in (("preview", self.preview), ("side_by_side", self.sbs)):
            if writer is not None:
                out[key] = writer.close().name
                if writer.audio_note:
                    out["audio_note"] = writer.audio_note
        return out

    def _stabilizer_settings(self) -> dict[str, float | int | str]:
        return replace(self.settings.stabilizer, mode=self.settings.mode).as_dict()

    def abort(self) -> None:
        for writer in (self.preview, self.sbs):
            if writer is not None:
                writer.abort()

    def sidecar(self, videos: dict[str, Any], stabilized: bool, timings: dict[str, float | None]) -> dict[str, Any]:
        info = self.source.info
        sel = self.settings.selection
        per_format = {fmt: [r["files"][i] for r in self.records] for i, fmt in enumerate(self.settings.formats)}
        estimates = [r["focal_estimate_px"] for r in self.records]
        return {
            "source": info.source,
            "source_kind": info.kind,
            "model": self.model_name,
            "weights_sha256": self.weights_sha256,
            "job": self.cache.record,
            "output_kind": str(self.kind),
            "unit": self.kind.unit,
            "fps": info.fps / sel.every,
            "source_fps": info.fps,
            "frame_count": len(self.records),
            "width": info.width,
            "height": info.height,
            "rotation_applied_deg": info.rotation,
            "audio_copied": bool(info.has_audio and videos and "audio_note" not in videos),
            "selection": {
                "start_s": sel.start_s,
                "end_s": sel.end_s,
                "every": sel.every,
                "max_frames": sel.max_frames,
            },  # fmt: skip
            "mode": self.settings.mode,
            "stabilizer": {"enabled": stabilized, **(self._stabilizer_settings() if stabilized else {})},
            "focal": {
                "locked_px": self.focal_locked,
                "source": self.focal_source,
                "per_frame_estimates_px": estimates if any(e is not None for e in estimates) else None,
            },
            "formats": list(self.settings.formats),
            "frame_files": per_format,
            "frame_indices": [r["index"] for r in self.records],
            "timestamps_s": [r["timestamp_s"] for r in self.records],
            "frames_reused": sum(1 for r in self.records if r["reused"]),
            "per_frame_stabilizer": [r["stabilizer"] for r in self.records] if stabilized else None,
            "videos": videos,
            "view_encodes": "inverse depth (near = bright), one fixed range for the clip",
            "notices": self.notices,
            "timings": timings,
        }


def _finished(sidecar: Path, settings: VideoSettings) -> bool:
    """A clip done by an earlier run of the same job (same settings record), every file still there."""
    try:
        done = json.loads(sidecar.read_text())
        same = done["job"] == _json_roundtrip(settings.record())
        files = [name for names in done["frame_files"].values() for name in names]
        files += [name for key, name in done["videos"].items() if key in ("preview", "side_by_side")]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return bool(same) and all((sidecar.parent / name).is_file() for name in files)


def run_video(
    source: str | Path | np.ndarray | FrameSource,
    out_dir: Path,
    settings: VideoSettings,
    model: DepthModel | None = None,
    stem: str | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> VideoSummary:
    """Process one clip into `out_dir/<stem>/`; raises SharpDepthError (one line) if it cannot."""
    opened = open_frames(source, settings.selection, settings.model.max_pixels, settings.fps)
    stem = stem or opened.info.stem
    folder = Path(out_dir) / stem
    try:
        ensure_writable_dir(folder)
    except OptionError as exc:
        raise SharpDepthError(f"cannot write to {exc}") from None
    clean_stale_parts(folder)
    name = Path(stem).name  # a clip found in a sub-folder: `sub/clip` -> OUT/sub/clip/clip.json
    sidecar = folder / f"{name}.json"
    if settings.skip_existing and _finished(sidecar, settings):
        done = json.loads(sidecar.read_text())
        count = int(done["frame_count"])
        return VideoSummary(opened.info.source, folder, frames=count, reused=count, sidecar=sidecar)
    model = model or settings.model.load()
    kind = model.spec.output_kind
    job = _ClipJob(opened, folder, name, settings, kind)
    stabilized = (not is_video_model(model)) if settings.stabilize is None else settings.stabilize
    summary = VideoSummary(source=opened.info.source, folder=folder)
    start = time.perf_counter()
    job.start(sidecar)
    job.open_writers()
    network = video_network(
        model, opened, settings.network_options(
            reuse=job.reuse if job.may_reuse and not is_video_model(model) else None,
            cache=None if is_video_model(model) else job.cache,
        ),
    )  # fmt: skip
    try:
        for reused in run_staged(opened.frames(), network, job.write_frame, ahead=PREFETCH_FRAMES, behind=8):
            summary.frames += 1
            summary.reused += int(reused)
            if on_frame is not None:
                on_frame(1)
    except BaseException:
        job.abort()
        raise
    videos = job.finish_writers()
    elapsed = time.perf_counter() - start
    timings: dict[str, float | None] = {
        "total_s": round(elapsed, 3),
        "frames_per_s": round(summary.frames / elapsed, 3) if elapsed > 0 else None,
        "write_thread_s": round(job.write_s, 3),
    }
    summary.computed = summary.frames - summary.reused
    write_text_atomic(sidecar, json.dumps(job.sidecar(videos, stabilized, timings), indent=2) + "\n")
    job.cache.finish()
    summary.sidecar = sidecar
    return summary


@dataclass(frozen=True)
class ClipInput:
    """One clip of a batch: what to open and the name of its output folder."""

    source: str
    stem: str


def expand_video_inputs(arguments: Sequence[str]) -> tuple[list[ClipInput], list[Failure]]:
    """Video files, folders (of frames = one clip; of videos = one clip each) and globs -> clips.

    A glob matching images is one image sequence; a glob matching videos is one clip per video.
    """
    import glob as globlib

    from ..io.frames import VIDEO_SUFFIXES, frame_files_in, natural_key

    clips: list[ClipInput] = []
    problems: list[Failure] = []
    for arg in arguments:
        path = Path(arg)
        if path.is_dir():
            videos = videos_under(path)
            if videos and not frame_files_in(path):
                # Sub-folders too, as predict does; each clip's folder mirrors where it was found.
                clips.extend(ClipInput(str(v), v.relative_to(path).with_suffix("").as_posix()) for v in videos)
            else:
                clips.append(ClipInput(str(path), path.resolve().name or "frames"))
        elif path.is_file():
            clips.append(ClipInput(str(path), path.stem))
        elif globlib.has_magic(arg):
            matches = sorted(
                (Path(m) for m in globlib.glob(arg) if Path(m).is_file()), key=lambda p: natural_key(str(p))
            )
            videos = [m for m in matches if m.suffix.lower() in VIDEO_SUFFIXES]
            if videos:
                clips.extend(ClipInput(str(v), v.stem) for v in videos)
            elif matches:
                parent = matches[0].parent.resolve().name or "frames"
                clips.append(ClipInput(arg, parent))
            else:
                problems.append(Failure(arg, "pattern matched no files"))
        else:
            problems.append(Failure(arg, "no such file or directory"))
    seen: dict[str, str] = {}
    unique: list[ClipInput] = []
    for clip in clips:
        if clip.stem in seen:
            problems.append(Failure(clip.source, f"same output folder name as {seen[clip.stem]} ({clip.stem}/)"))
            continue
        seen[clip.stem] = clip.source
        unique.append(clip)
    return unique, problems


def videos_under(folder: Path) -> list[Path]:
    """Video files in `folder` and its sub-folders, in natural order (hidden entries skipped)."""
    from ..io.frames import VIDEO_SUFFIXES, natural_key

    found = (
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in VIDEO_SUFFIXES
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    return sorted(found, key=lambda p: natural_key(p.relative_to(folder).as_posix()))


def plan_videos(
    arguments: Sequence[str], on_failure: Callable[[Failure], None] | None = None
) -> tuple[list[ClipInput], BatchSummary]:
    """The clips of a batch, and its summary holding the arguments that matched nothing (reported now)."""
    clips, problems = expand_video_inputs(arguments)
    batch = BatchSummary(failures=list(problems))
    for failure in problems:
        if on_failure is not None:
            on_failure(failure)
    return clips, batch


def run_videos(
    arguments: Sequence[str],
    out_dir: Path,
    settings: VideoSettings,
    on_done: Callable[[VideoSummary], None] | None = None,
    on_failure: Callable[[Failure], None] | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> BatchSummary:
    """A batch of clips with one model; a clip that fails is reported and the others go on."""
    clips, batch = plan_videos(arguments, on_failure)
    model: DepthModel | None = None
    for clip in clips:
        try:
            opened = open_frames(clip.source, settings.selection, settings.model.max_pixels, settings.fps)
        except SharpDepthError as exc:  # bad input: report it before any model work
            _fail(batch, make_failure(clip.source, str(exc)), on_failure)
            continue
        if model is None:
            model = settings.model.load()  # a model that cannot load stops the batch (one line)
        try:
            summary = run_video(opened, out_dir, settings, model=model, stem=clip.stem, on_frame=on_frame)
        except Exception as exc:
            reason = clip_failure(exc, model.name)
            if reason is None:
                raise
            _fail(batch, make_failure(clip.source, reason), on_failure)
        else:
            batch.videos.append(summary)
            if on_done is not None:
                on_done(summary)
    return batch


def clip_failure(exc: BaseException, model_name: str) -> str | None:
    """Why one clip failed (a bad input, a full disk, out of memory); None for a bug that ends the batch."""
    verdict = classify(exc, model_name=model_name)
    return None if verdict.scope is Scope.CRASH else verdict.reason


def _fail(batch: BatchSummary, failure: Failure, on_failure: Callable[[Failure], None] | None) -> None:
    batch.failures.append(failure)
    if on_failure is not None:
        on_failure(failure)
