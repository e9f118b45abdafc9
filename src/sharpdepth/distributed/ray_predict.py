"""`predict` on a Ray cluster with Ray Data: the same job, the same files, more machines.

Pipeline (Ray Data schedules and back-pressures it):

1. the inputs are listed exactly as a local run lists them (`plan_predict`: folders,
   globs, `.txt` lists, `skip_existing`);
2. an actor stage (`map_batches` with `ActorPoolStrategy`) loads the model once per
   actor and runs the local job, `engine.jobs.predict_items`, on each batch of rows:
   the staged runner decodes ahead and writes behind the forward passes inside the
   actor, with the local run's reader, network call, failure rules and writer (atomic
   files, sidecar last) — so the files are the same bit for bit, an interrupted job
   resumes with `skip_existing`, and nothing is ever half written or duplicated;
3. each row comes back with its one-line failure reason (or none) and its notices.

The driver only counts finished images for the progress bar and collects failures.
On a small machine the actors get fractional CPUs, so that several fit beside the driver.
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

from ..engine.jobs import Failure, PredictSummary, make_aligner, make_failure, plan_predict, predict_items
from ..engine.settings import PredictSettings
from ..errors import OptionError, first_line
from ..io.depth_files import Notice, NoticeSink
from ..io.inputs import InputItem
from ..registry import get_spec
from .settings import INSTALL_HINT, RaySettings

if TYPE_CHECKING:
    import ray.data

Row = dict[str, object]
Batch = dict[str, np.ndarray]
CHUNKS_PER_CALL = 4
"""Chunks (of `batch_size` images) an actor is handed at once."""


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


# ----------------------------------------------------------------- the actor stage (runs in Ray workers)
class _Predictor:
    """Actor: one model, and the local job (`predict_items`) on each batch of rows it is given.

    The very runner a local run uses, inside the actor: decoding ahead and writing behind the
    forward passes in the actor's threads, the same failure rules, the same files (atomic,
    sidecar last). Each row comes back with its one-line failure reason (or "") and its notices.
    """

    def __init__(self, settings: PredictSettings, out_dir: str, threads: int) -> None:
        import torch

        # Ray caps OMP_NUM_THREADS at the actor's CPU share; the local run uses torch's default.
        # Matrix kernels sum in a thread-count-dependent order, so match it: same bits as a local run.
        torch.set_num_threads(threads)
        self.settings = settings
        self.out_dir = Path(out_dir)
        self.model = settings.model.load()
        self.aligner = make_aligner(settings, self.model.output_kind, self.model.name)

    def __call__(self, batch: Batch) -> Batch:
        paths = [str(p) for p in batch["path"]]
        items = [InputItem(Path(p), PurePath(str(stem))) for p, stem in zip(paths, batch["stem"], strict=True)]
        errors: dict[str, str] = {}
        notices: dict[str, list[Notice]] = {p: [] for p in paths}

        def failed(failure: Failure) -> None:
            errors.setdefault(failure.source, failure.reason)

        def heard(notice: Notice) -> None:
            notices.setdefault(str(notice.source), []).append(notice)

        predict_items(self.model, items, self.out_dir, self.settings, self.aligner, on_failure=failed, on_notice=heard)
        return {
            "index": batch["index"],
            "path": batch["path"],
            "error": np.array([errors.get(p, "") for p in paths], dtype=object),
            "notices": np.array([pickle.dumps(notices[p]) for p in paths], dtype=object),
        }


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
    rows = [{"index": i, "path": path, "stem": stem} for i, (path, stem) in enumerate(items)]
    blocks = max(1, min(len(rows), 4 * ray_settings.actors))
    return ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
        _Predictor,
        fn_constructor_kwargs={
            "settings": settings,
            "out_dir": str(out_dir),
            "threads": ray_settings.threads or _local_threads(),
        },
        compute=ActorPoolStrategy(size=ray_settings.actors),
        # Several chunks per call, so the actor's runner decodes and writes beside the forward passes.
        batch_size=settings.batch_size * CHUNKS_PER_CALL,
        num_cpus=ray_settings.actor_cpus(cluster_cpus),
        num_gpus=ray_settings.gpus_per_actor or None,
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
