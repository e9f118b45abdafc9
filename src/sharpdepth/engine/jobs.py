"""The predict job, shared by every front end: inputs in, files out, failures reported.

The CLI, the Ray job and the video command all call these pieces instead of
writing their own loops: `plan_predict` decides what is left to do (checking
the output folder is writable before any model is loaded, removing temporary
files a killed run left, resuming with `skip_existing`), `predict_items` runs
the network on a list of inputs and writes each image's files with the one set
of writers (atomic, sidecar last). A bad file never stops the batch: it becomes
a `Failure` with a one-line reason, reported through `on_failure` as it happens
and returned at the end. What the user should hear about a result that *was*
written (depth beyond a 16-bit PNG, ignored EXIF, a clamped map) goes to
`on_notice` and into the sidecar.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from ..errors import Failure, OptionError, Scope, SharpDepthError, classify, make_failure
from ..family import NetworkOutput
from ..geometry.camera import Camera
from ..geometry.normals import normals_to_rgb, surface_normals
from ..io.atomic import clean_stale_parts, ensure_writable_dir
from ..io.depth_files import Notice, NoticeSink
from ..io.images import LoadedImage, load_image
from ..io.inputs import InputItem, expand_inputs
from ..io.outputs import OutputOptions, planned_files, sidecar_path, write_outputs
from ..maps import share_at_maximum, valid_depth_mask
from ..result import DepthResult, OutputKind
from ..version import __version__
from .model import BatchOptions, DepthModel, PreparedBatch
from .settings import PredictSettings
from .staged import run_staged

Aligner = Callable[[DepthResult], DepthResult]
CLAMPED_WARNING_SHARE = 0.5
"""Warn when more than this share of a metric map sits at its maximum (the network's clamp)."""
_PRECISION_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
__all__ = [
    "PIPELINE_DEPTH",
    "Failure",
    "PredictPlan",
    "PredictSummary",
    "is_done",
    "job_output",
    "make_aligner",
    "make_failure",
    "plan_predict",
    "predict_items",
    "render_normals",
    "run_record",
    "write_item",
    "write_result_files",
]


@dataclass
class PredictSummary:
    written: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0


@dataclass
class PredictPlan:
    """What a predict job will do: the inputs left, how many were skipped, bad arguments."""

    items: list[InputItem]
    skipped: int
    failures: list[Failure]
    renamed: list[InputItem] = field(default_factory=list)
    """Inputs whose output name keeps the file extension because another input has the same stem."""
    cleaned: int = 0
    """Stale temporary files of killed runs removed from the output folder."""


def plan_predict(inputs: Sequence[str], out_dir: Path, settings: PredictSettings) -> PredictPlan:
    """Expand the input arguments, check the output folder, and drop what is really done already."""
    items, problems = expand_inputs(list(inputs))
    failures = [Failure(arg, reason) for arg, reason in problems]
    renamed = [it for it in items if it.renamed]
    cleaned = 0
    if items:
        ensure_writable_dir(out_dir)
        cleaned = len(clean_stale_parts(out_dir))
    skipped = 0
    if settings.skip_existing:
        todo = [it for it in items if not is_done(out_dir, it, settings)]
        skipped = len(items) - len(todo)
        items = todo
    return PredictPlan(items, skipped, failures, renamed, cleaned)


def is_done(out_dir: Path, item: InputItem, settings: PredictSettings) -> bool:
    """True when the sidecar of `item` records these settings and every file they ask for exists."""
    side_path = sidecar_path(out_dir, item.stem)
    try:
        side = json.loads(side_path.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(side, dict) or side.get("job") != _json_roundtrip(settings.record()):
        return False
    try:
        wanted = planned_files(side.get("output_kind", ""), item.stem.name, settings.output)
    except ValueError:
        return False
    if settings.output.normals and "normals_skipped" not in side:
        wanted.append(f"{item.stem.name}_normals.png")
    recorded = set(side.get("files") or ())
    folder = side_path.parent
    return all(name in recorded and (folder / name).is_file() for name in wanted)


def _json_roundtrip(value: dict[str, object]) -> Any:
    return json.loads(json.dumps(value))


def make_aligner(settings: PredictSettings, output_kind: OutputKind, model_name: str) -> Aligner | None:
    """Relative -> metric with a scale/shift fit (in disparity) to known sparse depths, if asked for."""
    if settings.align_to is None:
        return None
    from ..align import align_result_to_points, load_sparse_points

    if output_kind is OutputKind.METRIC_DEPTH:
        raise OptionError(f"--align-to is for relative models; {model_name} already predicts metres")
    points = load_sparse_points(settings.align_to)
    method = settings.align_method
    return lambda result: align_result_to_points(result, points, method=method)


def render_normals(result: DepthResult) -> np.ndarray:
    """The surface-normal view of a metric result (the renderer `write_outputs` is given)."""
    return normals_to_rgb(surface_normals(result.depth, Camera.from_result(result)))


def write_result_files(
    result: DepthResult, out_dir: Path, stem: PurePath, output: OutputOptions, on_notice: NoticeSink | None = None
) -> list[Path]:
    """`io.outputs.write_outputs` with the engine's normal renderer: what every front end should call."""
    return write_outputs(result, out_dir, stem, output, normals_view=render_normals, on_notice=on_notice)


def run_record(model: DepthModel, settings: PredictSettings) -> dict[str, Any]:
    """Sidecar fields that say how a result was made: version, device, precision, input size, job."""
    dtype = str(model.dtype).removeprefix("torch.")
    processor = model.processor
    effective = next(
        (v for v in (getattr(processor, "size", None), getattr(processor, "net_size", None)) if isinstance(v, int)),
        getattr(processor, "input_size", None),
    )
    return {
        "sharpdepth_version": __version__,
        "device": str(model.device),
        "backend": getattr(model, "backend", "torch"),  # stand-in models (tests, adapters) run torch
        "precision": _PRECISION_NAMES.get(dtype, dtype),
        "input_size": effective,
        "job": _json_roundtrip(settings.record()),
    }


def _chunks(items: Sequence[InputItem], size: int) -> Iterator[Sequence[InputItem]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def job_output(model: DepthModel, settings: PredictSettings) -> OutputOptions:
    """The job's output options with the run record (version, device, precision, ...) for every sidecar."""
    return replace(settings.output, extra_sidecar={**settings.output.extra_sidecar, **run_record(model, settings)})


def write_item(
    result: DepthResult,
    input_notes: Sequence[str],
    out_dir: Path,
    stem: PurePath,
    output: OutputOptions,
    on_notice: NoticeSink | None = None,
) -> list[Path]:
    """Everything after the network for one image: notes, the clamp warning, the files (sidecar last).

    Local and distributed runs both end here, so they write the same files.
    """
    sink: NoticeSink = on_notice or (lambda _notice: None)
    for note in input_notes:
        sink(Notice("input_note", note))
    if input_notes:
        result.extra["input_notes"] = list(input_notes)
    clamped = _clamp_notice(result)
    if clamped is not None:
        sink(clamped)
    return write_result_files(result, out_dir, stem, output, on_notice=sink)


def _clamp_notice(result: DepthResult) -> Notice | None:
    if not result.is_metric:
        return None
    share, top = share_at_maximum(result.prediction, valid_depth_mask(result.prediction))
    if share <= CLAMPED_WARNING_SHARE:
        return None
    result.extra["clamped_share"] = round(share, 6)
    return Notice(
        "depth_clamped",
        f"{share:.0%} of the depth map sits at its maximum ({top:g} m), where the model clamps: "
        f"the focal length ({result.focal_source}) is probably wrong; try --focal-px or --fov-deg",
        share,
    )


PIPELINE_DEPTH = 2
"""Chunks the pipelined job keeps in flight on each side of the forward pass: decoded and
prepared ahead of it, and forwarded but not yet written behind it. Bounded, so memory stays
flat on a folder of any size (the staged runner's `ahead` and `behind`)."""


@dataclass
class _Chunk:
    """One chunk of inputs on its way through the job, with everything that happened to it.

    Stages only record here; the main thread reports, chunk after chunk, so callbacks never
    run in a worker thread and failures and notices come in the order of a plain loop.
    """

    items: Sequence[InputItem]
    ok_items: list[InputItem] = field(default_factory=list)
    loaded: list[LoadedImage] = field(default_factory=list)
    decode_failures: list[tuple[str, str]] = field(default_factory=list)
    prepared: PreparedBatch | None = None
    outputs: list[NetworkOutput] | None = None
    results: list[DepthResult] | None = None
    batch_error: str | None = None
    """Why every decoded image of the chunk failed (input the network refuses, out of memory)."""
    crash: BaseException | None = None
    """An unexpected error: the job ends with it once the chunks before this one are reported."""

    @property
    def runnable(self) -> bool:
        return bool(self.loaded) and self.batch_error is None and self.crash is None


@dataclass(frozen=True)
class _Written:
    """What writing one image came to: the notices heard, then a failure reason, a crash, or neither."""

    source: str
    notices: list[Notice]
    failure: str | None = None
    crash: BaseException | None = None


@dataclass
class _WriteReport:
    entries: list[_Written] = field(default_factory=list)
    batch_error: str | None = None
    """Post-processing refused the chunk (same meaning as `_Chunk.batch_error`)."""
    crash: BaseException | None = None


class _Job:
    """The three stages of `predict_items` for one model and settings, each recording into a `_Chunk`.

    prepare (decode + network inputs) and write (post-processing + files) run in the staged
    runner's worker threads; forward runs in the caller's thread. Errors are sorted by
    `errors.classify`: a bad input fails the image (decoding, writing), a refused network
    input, post-processing error or out-of-memory fails the chunk, anything else ends the job.
    """

    def __init__(self, model: DepthModel, out_dir: Path, settings: PredictSettings, aligner: Aligner | None) -> None:
        self.model = model
        self.out_dir = out_dir
        self.settings = settings
        self.output = job_output(model, settings)
        self.aligner = aligner
        self.stop = threading.Event()
        # A model that overrides predict_batch (a wrapper, a test double) runs it whole in the forward stage.
        self.staged = isinstance(model, DepthModel) and type(model).predict_batch is DepthModel.predict_batch

    def chunk_error(self, exc: Exception) -> str | None:
        """The reason for an error that fails a whole chunk but not the job; None ends the job."""
        verdict = classify(exc, chunk=True, model_name=self.model.name)
        return None if verdict.scope is Scope.CRASH else verdict.reason

    def _record(self, chunk: _Chunk, exc: Exception) -> None:
        reason = self.chunk_error(exc)
        chunk.batch_error = reason
        chunk.crash = exc if reason is None else None

    def prepare(self, items: Sequence[InputItem]) -> _Chunk:
        """Decode every image of a chunk and turn them into network inputs (CPU, no network)."""
        chunk = _Chunk(items)
        for item in items:
            try:
                chunk.loaded.append(load_image(item.path, self.settings.model.max_pixels))
                chunk.ok_items.append(item)
            except Exception as exc:
                verdict = classify(exc, model_name=self.model.name)
                if verdict.scope is Scope.CRASH or not isinstance(exc, SharpDepthError):
                    chunk.crash = exc  # only the user's bad file fails an image while decoding
                    return chunk
                chunk.decode_failures.append((str(item.path), verdict.reason))
        if self.staged and chunk.loaded:
            focal = self.settings.focal
            try:
                options = BatchOptions(
                    focal_px=focal.focal_px, fov_deg=focal.fov_deg, batch_size=self.settings.batch_size,
                    output_size=self.settings.output_size,
                )  # fmt: skip
                chunk.prepared = self.model.prepare_batch(chunk.loaded, options)
            except Exception as exc:
                self._record(chunk, exc)
        return chunk

    def forward(self, chunk: _Chunk) -> None:
        """The network on a prepared chunk: the only stage that runs torch's forward pass."""
        if not chunk.runnable:
            return
        try:
            if chunk.prepared is not None:
                chunk.outputs = self.model.forward_batch(chunk.prepared)
            else:
                chunk.results = self._predict_whole(chunk.loaded)
        except Exception as exc:
            self._record(chunk, exc)

    def _predict_whole(self, loaded: list[LoadedImage]) -> list[DepthResult]:
        """A model that overrides predict_batch, called whole; `output_size` only when it is not the
        default, so wrappers and test doubles written against the older signature keep working."""
        focal, size, batch = self.settings.focal, self.settings.output_size, self.settings.batch_size
        if size == "image":
            return self.model.predict_batch(loaded, focal_px=focal.focal_px, fov_deg=focal.fov_deg, batch_size=batch)
        return self.model.predict_batch(
            loaded, focal_px=focal.focal_px, fov_deg=focal.fov_deg, batch_size=batch, output_size=size
        )

    def write(self, chunk: _Chunk) -> _WriteReport:
        """Post-process a forwarded chunk and write each image's files (sidecar last), in order."""
        report = _WriteReport()
        try:
            results = self._finish(chunk)
        except Exception as exc:
            report.batch_error = self.chunk_error(exc)
            if report.batch_error is None:
                report.crash = exc
                self.stop.set()  # the job ends here: later chunks are neither decoded nor written
            return report
        finally:  # inputs and raw maps are not needed any more: keep memory flat
            chunk.prepared, chunk.outputs, chunk.results = None, None, None
        for item, image, result in zip(chunk.ok_items, chunk.loaded, results, strict=False):
            if self.stop.is_set():  # Ctrl-C or a crash: the file being written was finished, no new one
                break
            report.entries.append(self._write_one(item, image, result))
            if report.entries[-1].crash is not None:
                self.stop.set()
                break
        chunk.loaded = []
        return report

    def _write_one(self, item: InputItem, image: LoadedImage, result: DepthResult) -> _Written:
        source = str(item.path)
        notices: list[Notice] = []

        def sink(notice: Notice) -> None:
            notices.append(replace(notice, source=source))

        try:
            if self.aligner is not None:
                result = self.aligner(result)
            write_item(result, image.notes, self.out_dir, item.stem, self.output, on_notice=sink)
        except Exception as exc:
            verdict = classify(exc, model_name=self.model.name)
            if verdict.scope is Scope.CRASH:
                return _Written(source, notices, crash=exc)
            return _Written(source, notices, failure=verdict.reason)
        return _Written(source, notices)

    def _finish(self, chunk: _Chunk) -> list[DepthResult]:
        if chunk.results is not None:
            return chunk.results
        if chunk.prepared is None or chunk.outputs is None:
            raise RuntimeError("internal error: a chunk reached the writer without its forward pass")
        return self.model.finish_batch(chunk.prepared, chunk.outputs)


@dataclass
class _Reporter:
    """Turns recorded chunks into the job's callbacks and summary, always in the caller's thread."""

    on_failure: Callable[[Failure], None] | None
    on_progress: Callable[[int], None] | None
    on_notice: NoticeSink | None
    summary: PredictSummary = field(default_factory=PredictSummary)

    def fail(self, source: object, reason: str) -> None:
        failure = make_failure(source, reason)
        self.summary.failures.append(failure)
        if self.on_failure is not None:
            self.on_failure(failure)

    def report(self, chunk: _Chunk, written: _WriteReport | None) -> None:
        """Everything that happened to one chunk, in the order the plain loop said it; re-raises a crash."""
        for source, reason in chunk.decode_failures:
            self.fail(source, reason)
        if chunk.crash is not None:
            raise chunk.crash
        batch_error = chunk.batch_error or (written.batch_error if written is not None else None)
        if batch_error is not None:
            for item in chunk.ok_items:
                self.fail(item.path, batch_error)
        elif written is not None:
            for entry in written.entries:
                for notice in entry.notices:
                    if self.on_notice is not None:
                        self.on_notice(notice)
                if entry.crash is not None:
                    raise entry.crash
                if entry.failure is not None:
                    self.fail(entry.source, entry.failure)
                else:
                    self.summary.written += 1
            if written.crash is not None:
                raise written.crash
        if self.on_progress is not None:
            self.on_progress(len(chunk.items))


def predict_items(
    model: DepthModel,
    items: Sequence[InputItem],
    out_dir: Path,
    settings: PredictSettings,
    aligner: Aligner | None = None,
    on_failure: Callable[[Failure], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_notice: NoticeSink | None = None,
) -> PredictSummary:
    """Run a loaded model over `items` and write every image's files.

    With `settings.pipeline` (the default) one thread decodes and prepares the next chunks and
    one writes the previous ones while the network runs in this thread, so a folder takes
    about as long as its forward passes. The files, and the order of failures, notices and
    progress, are those of the plain loop (`pipeline=False`): callbacks are only ever called
    from this thread. Ctrl-C stops both threads (a file being written is finished, never
    left half-written); an unexpected error in either ends the job here, as it would in the loop.
    """
    reporter = _Reporter(on_failure, on_progress, on_notice)
    job = _Job(model, out_dir, settings, aligner)
    chunks = list(_chunks(items, settings.batch_size))

    def prepared() -> Iterator[_Chunk]:
        for chunk_items in chunks:
            chunk = job.prepare(chunk_items)
            yield chunk
            if chunk.crash is not None:  # nothing after a crash is decoded
                return

    def forwarded(ready: Iterator[_Chunk]) -> Iterator[_Chunk]:
        for chunk in ready:
            job.forward(chunk)
            yield chunk
            if chunk.crash is not None:
                return

    def written(chunk: _Chunk) -> tuple[_Chunk, _WriteReport | None]:
        return chunk, (job.write(chunk) if chunk.runnable else None)

    stages = run_staged(
        prepared(), forwarded, written, ahead=PIPELINE_DEPTH, behind=PIPELINE_DEPTH,
        threaded=settings.pipeline and len(chunks) > 1, stop=job.stop, decoder_name="prepare",
    )  # fmt: skip
    try:
        for chunk, report in stages:
            reporter.report(chunk, report)
    finally:
        stages.close()
    return reporter.summary
