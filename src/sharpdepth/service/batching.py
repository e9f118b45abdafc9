"""Bounded queue and the single model thread that batches requests into forward passes.

Why this shape: a depth network on one device is fastest fed whole batches by
one thread (DepthModel is not thread-safe, and two threads fighting over the
same cores are slower than one). Requests wait in a queue of fixed capacity;
when it is full the next request is refused at once (HTTP 429) rather than
queued without bound, so memory stays flat and admitted requests keep a
bounded latency under overload.

The worker takes the oldest waiting job, then, for at most `max_wait_s`,
gathers up to `max_batch` jobs whose network inputs have the same shape (and
the same field-of-view request, which `predict_batch` takes once per batch),
and runs them through `DepthModel.predict_batch` in one forward pass. Jobs of
another shape keep their place for the next batch. A job whose client gave up
(timeout) is cancelled and skipped. Other work on the same network (a photo's 3-D
Gaussians, `Task`) waits in the same queue and runs alone, in its turn.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field

from ..engine.model import DepthModel
from ..errors import SharpDepthError
from ..io.images import LoadedImage
from ..result import DepthResult

log = logging.getLogger("sharpdepth.service")


class QueueFull(Exception):
    """The queue is at capacity: the request is refused, not queued."""


@dataclass(eq=False)
class Job:
    """One image waiting for the network."""

    image: LoadedImage
    key: Hashable
    """Jobs with equal keys can share a forward pass: (network input shape, fov_deg)."""
    focal_px: float | None = None
    fov_deg: float | None = None
    future: Future[DepthResult] = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class Task:
    """Other work for the model thread (e.g. a photo's Gaussians): `run(model)`, alone, in queue order."""

    run: Callable[[DepthModel], object]
    key: Hashable = field(default_factory=object)
    """Equal to no other key: a task is never batched."""
    future: Future[object] = field(default_factory=Future)
    enqueued: float = field(default_factory=time.monotonic)


Work = Job | Task


class BatchQueue:
    """FIFO of jobs with a hard capacity, from which same-key batches are taken."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._jobs: deque[Work] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def __len__(self) -> int:
        with self._cond:
            return len(self._jobs)

    def full(self) -> bool:
        with self._cond:
            return len(self._jobs) >= self.capacity

    def put(self, job: Work) -> None:
        """Admit a job or raise QueueFull (never blocks)."""
        with self._cond:
            if self._closed:
                raise QueueFull("the service is shutting down")
            if len(self._jobs) >= self.capacity:
                raise QueueFull(f"{len(self._jobs)} requests are already waiting")
            self._jobs.append(job)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def take(self, max_batch: int, max_wait_s: float) -> list[Work]:
        """Block for the oldest job, then gather same-key jobs until the batch is full or the wait is over.

        Returns [] once the queue is closed and empty.
        """
        with self._cond:
            while not self._jobs and not self._closed:
                self._cond.wait()
            if not self._jobs:
                return []
            first = self._jobs.popleft()
            batch: list[Work] = [first]
            if isinstance(first, Task):
                return batch  # nothing joins a task: no waiting for a batch to fill
            deadline = time.monotonic() + max_wait_s
            while len(batch) < max_batch:
                self._move_matching(first.key, batch, max_batch)
                remaining = deadline - time.monotonic()
                if len(batch) >= max_batch or remaining <= 0 or self._closed:
                    break
                self._cond.wait(remaining)
            return batch

    def _move_matching(self, key: Hashable, batch: list[Work], max_batch: int) -> None:
        keep: deque[Work] = deque()
        while self._jobs:
            job = self._jobs.popleft()
            if job.key == key and len(batch) < max_batch:
                batch.append(job)
            else:
                keep.append(job)
        self._jobs = keep


class ModelWorker:
    """The one thread that owns the model: takes batches from the queue and runs them."""

    def __init__(
        self,
        model: DepthModel,
        queue: BatchQueue,
        max_batch: int,
        max_wait_s: float,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self.model = model
        self.queue = queue
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.on_batch = on_batch
        self.batch_seconds = 0.0
        """Moving average of a forward pass, for Retry-After."""
        self._thread = threading.Thread(target=self._loop, name="sharpdepth-model", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.queue.close()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            batch = self.queue.take(self.max_batch, self.max_wait_s)
            if not batch:
                return
            live = [job for job in batch if job.future.set_running_or_notify_cancel()]
            tasks = [job for job in live if isinstance(job, Task)]
            jobs = [job for job in live if isinstance(job, Job)]
            for task in tasks:  # a task comes alone (`BatchQueue.take`)
                self._run_task(task)
            if jobs:
                self._run(jobs)

    def _run_task(self, task: Task) -> None:
        try:
            result = task.run(self.model)
        except SharpDepthError as exc:
            task.future.set_exception(exc)
        except Exception as exc:  # a bug or an out-of-memory: fail this request, keep serving
            log.exception("model task failed")
            task.future.set_exception(exc)
        else:
            task.future.set_result(result)

    def _run(self, jobs: list[Job]) -> None:
        start = time.perf_counter()
        try:
            results = self.model.predict_batch(
                [job.image for job in jobs],
                focal_px=[job.focal_px for job in jobs],
                fov_deg=jobs[0].fov_deg,
                batch_size=len(jobs),
            )
        except SharpDepthError as exc:
            for job in jobs:
                job.future.set_exception(exc)
            return
        except Exception as exc:  # a bug or an out-of-memory: fail these requests, keep serving
            log.exception("forward pass failed")
            for job in jobs:
                job.future.set_exception(exc)
            return
        seconds = time.perf_counter() - start
        self.batch_seconds = seconds if self.batch_seconds == 0 else 0.8 * self.batch_seconds + 0.2 * seconds
        for job, result in zip(jobs, results, strict=True):
            job.future.set_result(result)
        if self.on_batch is not None:
            self.on_batch(len(jobs), seconds)
