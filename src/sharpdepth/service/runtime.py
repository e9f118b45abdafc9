"""The running service's state: the model (loaded in the background), its queue and worker, metrics.

The process answers /healthz as soon as it listens, while the model loads in
a thread; /readyz and every /v1 route say 503 until it is loaded. A model
that fails to load is reported (one line) and, through `on_load_error`, stops
the server: a service that can never answer should not pretend to be up.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import anyio

from ..engine.memory import trim_heap
from ..engine.model import DepthModel
from ..engine.settings import FocalSettings, ModelSettings
from ..errors import SharpDepthError
from ..io.images import LoadedImage
from ..result import DepthResult
from .batching import BatchQueue, Job, ModelWorker, QueueFull
from .errors import ApiError
from .metrics import Metrics
from .settings import ServeSettings

log = logging.getLogger("sharpdepth.service")

ModelLoader = Callable[[], DepthModel]
TRIM_AFTER_PIXELS = 16_000_000
"""Give freed memory back to the system once the service is idle after at least this many pixels."""


@dataclass
class LoadState:
    model: DepthModel | None = None
    error: str | None = None


class Service:
    """One service instance: what the routes share."""

    def __init__(
        self,
        settings: ServeSettings,
        model_settings: ModelSettings,
        loader: ModelLoader | None = None,
        on_load_error: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.model_settings = model_settings
        self._loader = loader or model_settings.load
        self._on_load_error = on_load_error
        self.state = LoadState()
        self.queue = BatchQueue(settings.max_queue)
        self.worker: ModelWorker | None = None
        self.pixels_in_flight = 0
        """Pixels of the photos admitted and not yet answered (changed on the event loop's thread only)."""
        self._pixels_since_trim = 0
        self.metrics = Metrics(
            queue_depth=lambda: len(self.queue), ready=lambda: 1.0 if self.ready else 0.0,
            pixels_in_flight=lambda: float(self.pixels_in_flight),
        )  # fmt: skip
        self.limiter = anyio.CapacityLimiter(settings.workers)
        """Threads for decoding, encoding and effects: bounded, so a burst cannot start 40 decoders."""
        self._new_work = 0
        """Requests decoding (or reading a sent-back result): running plus waiting for a thread."""

    # ------------------------------------------------------------ lifecycle
    @property
    def ready(self) -> bool:
        return self.state.model is not None and self.worker is not None

    def start(self) -> None:
        threading.Thread(target=self._load, name="sharpdepth-load", daemon=True).start()

    def _load(self) -> None:
        try:
            model = self._loader()
        except SharpDepthError as exc:
            self._failed(str(exc))
            return
        except Exception as exc:  # e.g. out of memory: still one line, the log has the rest
            log.exception("model failed to load")
            self._failed(f"{type(exc).__name__}: {exc}")
            return
        worker = ModelWorker(
            model, self.queue, self.settings.max_batch, self.settings.max_wait_s, self.metrics.observe_batch
        )
        worker.start()
        self.state.model = model
        self.worker = worker
        log.info("model %s ready on %s", model.name, model.device)

    def _failed(self, message: str) -> None:
        self.state.error = message
        log.error("model failed to load: %s", message)
        if self._on_load_error is not None:
            self._on_load_error(message)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        else:
            self.queue.close()

    def require_model(self) -> DepthModel:
        model = self.state.model
        if model is None or self.worker is None:
            why = f"model failed to load: {self.state.error}" if self.state.error else "the model is still loading"
            raise ApiError(503, why, {"Retry-After": "5"})
        return model

    # ------------------------------------------------------------ work
    async def in_thread(self, fn: Callable[..., object], *args: object) -> object:
        """Run CPU work (decode, encode, effects) off the event loop and off the model thread."""
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def new_work(self, fn: Callable[..., object], *args: object) -> object:
        """`in_thread` for a request's first piece of work: refused with 429 when --max-queue are waiting.

        Work that finishes an admitted request (encoding a model result) uses `in_thread` and is never refused.
        """
        if self._new_work >= self.settings.workers + self.settings.max_queue:
            self.metrics.rejected.labels(reason="busy").inc()
            raise ApiError(429, "the service is busy; retry later", {"Retry-After": self.retry_after()})
        self._new_work += 1  # counted on the event loop's thread: no race between check and increment
        try:
            return await self.in_thread(fn, *args)
        finally:
            self._new_work -= 1

    def retry_after(self) -> str:
        """Seconds until the queue has likely drained enough to admit one more request."""
        per_batch = self.worker.batch_seconds if self.worker is not None else 1.0
        batches = len(self.queue) / self.settings.max_batch + 1
        return str(max(1, math.ceil(per_batch * batches)))

    def refuse_if_full(self) -> None:
        """Cheap early check, before the upload is decoded: overload is answered at once."""
        if self.queue.full():
            self.metrics.rejected.labels(reason="queue_full").inc()
            raise ApiError(429, "the service is busy (queue full); retry later", {"Retry-After": self.retry_after()})

    # ------------------------------------------------------------ memory
    def admit_pixels(self, pixels: int) -> None:
        """Charge a photo to the in-flight pixel budget, or refuse it at once (429; 413 if it can never fit).

        Called on the event loop's thread, so check and charge cannot interleave with another request's.
        """
        budget = self.settings.max_inflight_pixels
        if pixels > budget:
            raise ApiError(
                413, f"the photo has {pixels / 1e6:.1f} Mpx, over the {budget / 1e6:g} Mpx the service works on "
                "at once (--max-inflight-mpx)",
            )  # fmt: skip
        if self.pixels_in_flight + pixels > budget:
            self.metrics.rejected.labels(reason="pixels").inc()
            raise ApiError(
                429, f"the service is busy with {self.pixels_in_flight / 1e6:.1f} Mpx of photos; retry later",
                {"Retry-After": self.retry_after()},
            )  # fmt: skip
        self.pixels_in_flight += pixels
        self._pixels_since_trim += pixels

    async def release_pixels(self, pixels: int) -> None:
        """Give a finished request's pixels back; once idle after a burst, give its memory back to the system."""
        self.pixels_in_flight -= pixels
        if self.pixels_in_flight == 0 and self._pixels_since_trim >= TRIM_AFTER_PIXELS:
            self._pixels_since_trim = 0
            await anyio.to_thread.run_sync(trim_heap)

    @staticmethod
    def shape_key(model: DepthModel, height: int, width: int) -> Hashable:
        """The network input shape for an image size: images that share it batch together. Asked of
        the processor's size rule (each image is pre-processed once, on the model thread)."""
        return (3, *model.processor.network_size(height, width))

    async def predict(self, image: LoadedImage, focal: FocalSettings, arrived: float) -> DepthResult:
        """Queue one image for the model thread and wait for its result (429 full, 504 late)."""
        model = self.require_model()
        key = self.shape_key(model, image.height, image.width)
        job = Job(image=image, key=(key, focal.fov_deg), focal_px=focal.focal_px, fov_deg=focal.fov_deg)
        try:
            self.queue.put(job)
        except QueueFull:
            self.metrics.rejected.labels(reason="queue_full").inc()
            raise ApiError(
                429, "the service is busy (queue full); retry later", {"Retry-After": self.retry_after()}
            ) from None
        remaining = self.settings.timeout_s - (time.monotonic() - arrived)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(job.future), timeout=max(remaining, 0.001))
        except TimeoutError:
            job.future.cancel()
            self.metrics.rejected.labels(reason="timeout").inc()
            raise ApiError(504, f"no answer within {self.settings.timeout_s:g} s (--timeout)") from None
