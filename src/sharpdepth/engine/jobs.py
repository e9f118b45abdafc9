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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch

from ..errors import OptionError, SharpDepthError
from ..geometry.camera import Camera
from ..geometry.normals import normals_to_rgb, surface_normals
from ..io.atomic import clean_stale_parts, ensure_writable_dir
from ..io.depth_files import Notice, NoticeSink
from ..io.images import LoadedImage, load_image
from ..io.inputs import InputItem, expand_inputs
from ..io.outputs import OutputOptions, planned_files, sidecar_path, write_outputs
from ..maps import share_at_maximum, valid_depth_mask
from ..result import DepthResult, OutputKind
from .model import DepthModel
from .settings import PredictSettings

Aligner = Callable[[DepthResult], DepthResult]
CLAMPED_WARNING_SHARE = 0.5
"""Warn when more than this share of a metric map sits at its maximum (the network's clamp)."""
_PRECISION_NAMES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}
_OUT_OF_MEMORY: tuple[type[BaseException], ...] = (MemoryError, torch.OutOfMemoryError)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__


@dataclass(frozen=True)
class Failure:
    """One input that could not be processed, with a one-line reason."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


def make_failure(source: object, reason: str) -> Failure:
    """A failure whose reason does not repeat the path (`bomb.png: bomb.png: ...`)."""
    text = str(source)
    for prefix in (f"{text}: ", f"{Path(text).name}: "):
        if reason.startswith(prefix):
            reason = reason[len(prefix) :]
            break
    return Failure(text, reason)


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


def _version() -> str:
    import sharpdepth  # the package root (always imported already): its version, no subpackage edge

    return str(getattr(sharpdepth, "__version__", "unknown"))


def write_result_files(
    result: DepthResult, out_dir: Path, stem: PurePath, output: OutputOptions, on_notice: NoticeSink | None = None
) -> list[Path]:
    """`io.outputs.write_outputs` with the engine's normal renderer: what every front end should call."""
    return write_outputs(result, out_dir, stem, output, normals_view=render_normals, on_notice=on_notice)


def run_record(model: DepthModel, settings: PredictSettings) -> dict[str, Any]:
    """Sidecar fields that say how a result was made: version, device, precision, input size, job."""
    dtype = str(model.dtype).removeprefix("torch.")
    adapter = model.adapter
    effective = next(
        (v for v in (getattr(adapter, "size", None), getattr(adapter, "net_size", None)) if isinstance(v, int)),
        getattr(adapter, "input_size", None),
    )
    return {
        "sharpdepth_version": _version(),
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
    """Run a loaded model over `items` and write every image's files."""
    summary = PredictSummary()
    output = job_output(model, settings)

    def fail(source: object, reason: str) -> None:
        failure = make_failure(source, reason)
        summary.failures.append(failure)
        if on_failure is not None:
            on_failure(failure)

    def tell(source: object) -> NoticeSink:
        def sink(notice: Notice) -> None:
            if on_notice is not None:
                on_notice(replace(notice, source=str(source)))

        return sink

    focal = settings.focal
    for chunk in _chunks(items, settings.batch_size):
        loaded: list[LoadedImage] = []
        ok_items: list[InputItem] = []
        for item in chunk:
            try:
                loaded.append(load_image(item.path, settings.model.max_pixels))
                ok_items.append(item)
            except SharpDepthError as exc:
                fail(item.path, str(exc))
        try:
            results = model.predict_batch(
                loaded, focal_px=focal.focal_px, fov_deg=focal.fov_deg, batch_size=settings.batch_size
            )
        except SharpDepthError as exc:
            for it in ok_items:
                fail(it.path, str(exc))
            results = []
        except _OUT_OF_MEMORY as exc:  # one image too large for this machine must not end the batch
            for it in ok_items:
                fail(it.path, f"not enough memory to run {model.name} on it ({_first_line(exc)})")
            results = []
        for item, image, result in zip(ok_items, loaded, results, strict=False):
            try:
                if aligner is not None:
                    result = aligner(result)
                write_item(result, image.notes, out_dir, item.stem, output, on_notice=tell(item.path))
                summary.written += 1
            except SharpDepthError as exc:
                fail(item.path, str(exc))
            except OSError as exc:
                fail(item.path, f"could not write outputs: {exc.strerror or exc}")
        if on_progress is not None:
            on_progress(len(chunk))
    return summary
