"""`predict` on a Ray cluster with Ray Data: the same job, the same files, more machines.

Pipeline (each stage streams; Ray Data schedules and back-pressures it):

1. the inputs are listed exactly as a local run lists them (`plan_predict`: folders,
   globs, `.txt` lists, `skip_existing`);
2. a CPU stage decodes each picture, applies its EXIF orientation and reads its EXIF
   focal length (`load_image`, the local run's reader) — a bad file becomes a row
   with its one-line reason instead of an exception;
3. an actor stage (`map_batches` with `ActorPoolStrategy`) loads the model once per
   actor and runs `DepthModel.predict_batch` — the very call a local run makes, so the
   arrays are the same bit for bit;
4. a CPU stage writes each image's files with the local run's writer
   (`write_outputs`: atomic files, sidecar last), so an interrupted job resumes with
   `skip_existing` and nothing is ever half written or duplicated.

The driver only counts finished images for the progress bar and collects failures.
On a small machine the actors get fractional CPUs: if they reserved every core, the
decode and write tasks could never be scheduled and the job would hang.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

import numpy as np

from ..engine.jobs import Failure, PredictSummary, job_output, make_aligner, make_failure, plan_predict, write_item
from ..engine.settings import PredictSettings
from ..errors import OptionError, SharpDepthError, first_line
from ..io.depth_files import Notice, NoticeSink
from ..io.images import LoadedImage, load_image
from ..io.inputs import InputItem
from ..io.outputs import OutputOptions
from ..registry import get_spec
from ..result import DepthResult
from .settings import INSTALL_HINT, RaySettings

if TYPE_CHECKING:
    import ray.data

Row = dict[str, object]
Batch = dict[str, np.ndarray]


def _import_ray():  # -> the ray module
    try:
        import ray
    except ImportError:
        raise OptionError(INSTALL_HINT) from None
    return ray


def _connect(settings: RaySettings) -> bool:
    """Start or join Ray; True if this call started it (and so must shut it down)."""
    ray = _import_ray()
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")  # C++ core-worker chatter on the driver's stderr
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    kwargs: dict[str, object] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "error"}
    address = settings.address
    if address is None:
        # "local": always a new instance of our own, on loopback; never another job's cluster that
        # `ray.init()` would otherwise find and join (and that our exit would not clean up).
        address = "local"
        kwargs["_node_ip_address"] = "127.0.0.1"
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = settings.address or "a local instance"
        raise OptionError(f"cannot start or reach Ray at {where}: {first_line(exc, 200)}") from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the driver shows one bar of finished images, like the local run
    context.print_on_execution_start = False
    return True


# ----------------------------------------------------------------- stages (run in Ray workers)
def _decode(row: Row, max_pixels: int) -> Row:
    """CPU stage: decode + orient + EXIF focal, or the one-line reason it failed."""
    try:
        loaded = load_image(Path(str(row["path"])), max_pixels)
    except SharpDepthError as exc:
        return {**row, "loaded": b"", "error": str(exc)}
    return {**row, "loaded": pickle.dumps(loaded, protocol=pickle.HIGHEST_PROTOCOL), "error": ""}


class _Predictor:
    """Actor stage: one model per actor, batched forward passes through `predict_batch`."""

    def __init__(self, settings: PredictSettings, threads: int) -> None:
        import torch

        # Ray caps OMP_NUM_THREADS at the actor's CPU share; the local run uses torch's default.
        # Matrix kernels sum in a thread-count-dependent order, so match it: same bits as a local run.
        torch.set_num_threads(threads)
        self.settings = settings
        self.model = settings.model.load()
        self.aligner = make_aligner(settings, self.model.output_kind, self.model.name)
        self.output = pickle.dumps(job_output(self.model, settings))  # the run record, as a local run writes it

    def __call__(self, batch: Batch) -> Batch:
        n = len(batch["index"])
        results: list[bytes] = [b""] * n
        errors = [str(e) for e in batch["error"]]
        todo = [i for i in range(n) if not errors[i]]
        loaded: list[LoadedImage] = [pickle.loads(batch["loaded"][i]) for i in todo]
        focal = self.settings.focal
        try:
            predicted = self.model.predict_batch(
                loaded, focal_px=focal.focal_px, fov_deg=focal.fov_deg, batch_size=self.settings.batch_size
            )
        except SharpDepthError as exc:
            for i in todo:
                errors[i] = str(exc)
            predicted = []
        for i, image, result in zip(todo, loaded, predicted, strict=False):
            try:
                if self.aligner is not None:
                    result = self.aligner(result)
                results[i] = pickle.dumps((result, image.notes), protocol=pickle.HIGHEST_PROTOCOL)
            except SharpDepthError as exc:
                errors[i] = str(exc)
        return {
            "index": batch["index"],
            "path": batch["path"],
            "stem": batch["stem"],
            "result": np.array(results, dtype=object),
            "output": np.array([self.output] * n, dtype=object),
            "error": np.array(errors, dtype=object),
        }


def _write(row: Row, out_dir: str) -> Row:
    """CPU stage: the local run's per-image tail (`write_item`: notes, atomic files, sidecar last)."""
    base: Row = {"index": row["index"], "path": row["path"], "error": str(row["error"]), "notices": b""}
    if base["error"]:
        return base
    result, notes = _unpickle_result(row["result"])
    output: OutputOptions = pickle.loads(_as_bytes(row["output"]))
    notices: list[Notice] = []
    try:
        write_item(result, notes, Path(out_dir), PurePath(str(row["stem"])), output, on_notice=notices.append)
    except SharpDepthError as exc:
        base["error"] = str(exc)
    except OSError as exc:
        base["error"] = f"could not write outputs: {exc.strerror or exc}"
    base["notices"] = pickle.dumps(notices)
    return base


def _as_bytes(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"expected pickled bytes in a Ray row, got {type(value).__name__}")
    return value


def _unpickle_result(value: object) -> tuple[DepthResult, list[str]]:
    result, notes = pickle.loads(_as_bytes(value))
    return result, list(notes)


# ----------------------------------------------------------------- the driver
def _local_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _pipeline(
    items: Sequence[tuple[str, str]], out_dir: Path, settings: PredictSettings, ray_settings: RaySettings
) -> ray.data.Dataset:
    ray = _import_ray()
    from ray.data import ActorPoolStrategy

    cluster_cpus = float(ray.cluster_resources().get("CPU", 1.0))
    stage_cpus = min(0.5, max(cluster_cpus / 4, 0.1))
    rows = [{"index": i, "path": path, "stem": stem} for i, (path, stem) in enumerate(items)]
    blocks = max(1, min(len(rows), 4 * ray_settings.actors))
    return (
        ray.data.from_items(rows, override_num_blocks=blocks)
        .map(_decode, fn_kwargs={"max_pixels": settings.model.max_pixels}, num_cpus=stage_cpus)
        .map_batches(
            _Predictor,
            fn_constructor_kwargs={"settings": settings, "threads": ray_settings.threads or _local_threads()},
            compute=ActorPoolStrategy(size=ray_settings.actors),
            batch_size=settings.batch_size,
            num_cpus=ray_settings.actor_cpus(cluster_cpus),
            num_gpus=ray_settings.gpus_per_actor or None,
        )
        .map(_write, fn_kwargs={"out_dir": str(out_dir)}, num_cpus=stage_cpus)
    )


def _finished_rows(dataset: ray.data.Dataset) -> Iterator[Row]:
    yield from dataset.iter_rows()


def predict_items_on_ray(
    items: Sequence[InputItem],
    out_dir: Path,
    settings: PredictSettings,
    ray_settings: RaySettings,
    on_failure: Callable[[Failure], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_notice: NoticeSink | None = None,
) -> PredictSummary:
    """`engine.jobs.predict_items` on Ray: same files, failures (in input order) and notices."""
    summary = PredictSummary()
    if not items:
        return summary
    if settings.align_to is not None:  # option errors before any cluster work
        make_aligner(settings, get_spec(settings.model.name).output_kind, settings.model.name)
    started = _connect(ray_settings)
    try:
        rows = [(str(it.path), str(it.stem)) for it in items]
        failed: list[tuple[int, Failure]] = []
        for done, row in enumerate(_finished_rows(_pipeline(rows, out_dir, settings, ray_settings)), start=1):
            notices: list[Notice] = pickle.loads(row["notices"]) if row.get("notices") else []  # type: ignore[arg-type]
            for notice in notices:
                if on_notice is not None:
                    on_notice(replace(notice, source=str(row["path"])))
            if row["error"]:
                failure = make_failure(row["path"], str(row["error"]))
                failed.append((int(str(row["index"])), failure))
                if on_failure is not None:
                    on_failure(failure)
            else:
                summary.written += 1
            if on_progress is not None:
                on_progress(done, len(rows))
    finally:
        if started:
            _import_ray().shutdown()
    summary.failures.extend(failure for _, failure in sorted(failed, key=lambda pair: pair[0]))  # input order
    return summary


def predict_dataset(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    settings: PredictSettings,
    actors: int = 2,
    ray_settings: RaySettings | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_failure: Callable[[Failure], None] | None = None,
) -> PredictSummary:
    """The whole predict job on Ray (input listing, resuming, writing): what a local run writes.

    >>> summary = predict_dataset(["photos/"], "out/", PredictSettings(), actors=8)  # doctest: +SKIP
    """
    out = Path(out_dir)
    plan = plan_predict([str(p) for p in inputs], out, settings)
    for failure in plan.failures:
        if on_failure is not None:
            on_failure(failure)
    summary = predict_items_on_ray(
        plan.items, out, settings, ray_settings or RaySettings(actors=actors), on_failure, on_progress
    )
    summary.skipped = plan.skipped
    summary.failures[:0] = plan.failures
    return summary
