"""The predict job, shared by every front end: inputs in, files out, failures reported.

The CLI, the Ray job and the video command all call these pieces instead of
writing their own loops: `plan_predict` decides what is left to do (resuming
with `skip_existing`), `predict_items` runs the network on a list of inputs and
writes each image's files with the one set of writers (atomic, sidecar last).
A bad file never stops the batch: it becomes a `Failure` with a one-line
reason, reported through `on_failure` as it happens and returned at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OptionError, SharpDepthError
from ..io.images import LoadedImage, load_image
from ..io.inputs import InputItem, expand_inputs
from ..io.outputs import sidecar_path, write_outputs
from ..result import DepthResult, OutputKind
from .model import DepthModel
from .settings import PredictSettings

Aligner = Callable[[DepthResult], DepthResult]


@dataclass(frozen=True)
class Failure:
    """One input that could not be processed, with a one-line reason."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


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


def plan_predict(inputs: Sequence[str], out_dir: Path, settings: PredictSettings) -> PredictPlan:
    """Expand the input arguments; with `skip_existing`, drop images whose sidecar already exists."""
    items, problems = expand_inputs(list(inputs))
    failures = [Failure(arg, reason) for arg, reason in problems]
    skipped = 0
    if settings.skip_existing:
        todo = [it for it in items if not sidecar_path(out_dir, it.stem).is_file()]
        skipped = len(items) - len(todo)
        items = todo
    return PredictPlan(items, skipped, failures)


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


def _chunks(items: Sequence[InputItem], size: int) -> Iterator[Sequence[InputItem]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def predict_items(
    model: DepthModel,
    items: Sequence[InputItem],
    out_dir: Path,
    settings: PredictSettings,
    aligner: Aligner | None = None,
    on_failure: Callable[[Failure], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> PredictSummary:
    """Run a loaded model over `items` and write every image's files."""
    summary = PredictSummary()

    def fail(source: object, reason: str) -> None:
        failure = Failure(str(source), reason)
        summary.failures.append(failure)
        if on_failure is not None:
            on_failure(failure)

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
        for item, result in zip(ok_items, results, strict=False):
            try:
                if aligner is not None:
                    result = aligner(result)
                write_outputs(result, out_dir, item.stem, settings.output)
                summary.written += 1
            except SharpDepthError as exc:
                fail(item.path, str(exc))
            except OSError as exc:
                fail(item.path, f"could not write outputs: {exc}")
        if on_progress is not None:
            on_progress(len(chunk))
    return summary
