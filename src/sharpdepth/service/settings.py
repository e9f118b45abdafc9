"""Settings of the HTTP service: the one place where its defaults live.

`ServeSettings` holds what is specific to serving (where to listen, how much
to batch and queue, limits, auth, CORS); what to run is the predict job's own
`ModelSettings`, built by the CLI exactly as `sharpdepth predict` builds it.
Like every settings object in sharpdepth it is frozen, keyword-only and
validated on construction, so a bad flag fails before the model is loaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..errors import OptionError
from ..maps import Range

API_KEY_ENV = "SHARPDEPTH_API_KEY"

# Documented ranges, checked on construction (`Range.check`).
PORT = Range(0, 65535, integer=True)
MAX_BATCH = Range(1, 256, integer=True)
MAX_QUEUE = Range(1, 10_000, integer=True)
MAX_WAIT_MS = Range(0.0, 60_000.0, "ms")
MAX_UPLOAD_MB = Range(0.0, 4096.0, "MB", low_open=True)
TIMEOUT_S = Range(0.0, 86_400.0, "s", low_open=True)
WORKERS = Range(1, 256, integer=True)
INFLIGHT_MPX = Range(0.0, 10_000.0, "Mpx", low_open=True)
RESPONSE_MB = Range(0.0, 16_384.0, "MB", low_open=True)


@dataclass(frozen=True, kw_only=True)
class ServeSettings:
    """How the service listens, batches, queues and limits requests."""

    host: str = "127.0.0.1"
    """Loopback by default: exposing the service is an explicit choice (--host 0.0.0.0)."""
    port: int = 8000
    max_batch: int = 4
    """Images per forward pass (only images whose network inputs share a size are batched)."""
    max_queue: int = 16
    """Requests waiting for the model; one more is answered 429 at once instead of queueing without bound."""
    max_wait_ms: float = 10.0
    """How long the worker waits for a batch to fill once it has one image."""
    max_upload_mb: float = 20.0
    """Largest request body (all uploaded files together); larger ones get 413 before being read."""
    timeout_s: float = 300.0
    """From arrival to answer; a request still waiting then gets 504 (CPU Depth Pro takes minutes)."""
    api_key: str | None = field(default=None, repr=False)
    """When set, /v1/* needs `Authorization: Bearer KEY` or `X-API-Key: KEY`."""
    cors_origins: tuple[str, ...] = ()
    """Origins allowed to call the API from a browser; empty = CORS off."""
    workers: int = 2
    """Threads for decoding, encoding and effects (the model has its own single thread)."""
    max_inflight_mpx: float = 100.0
    """Memory bound by design: megapixels of photos being worked on at once, all requests together.

    A request is charged its photo's width x height (read from the header, before decoding) from
    admission to answer; one that does not fit in what is left gets 429 at once. The service's
    memory then grows with pixels, not with the number of requests: one photo at the pixel limit,
    or dozens of phone photos, never three giants at once. At least the model's --max-pixels."""
    max_response_mb: float = 256.0
    """Largest answer body; a bigger one (e.g. a point cloud of every pixel of a huge photo) gets 422
    with a hint (--stride, another format) instead of hundreds of megabytes."""

    def __post_init__(self) -> None:
        if not self.host:
            raise OptionError("--host must not be empty")
        PORT.check(self.port, "--port")
        MAX_BATCH.check(self.max_batch, "--max-batch")
        MAX_QUEUE.check(self.max_queue, "--max-queue")
        MAX_WAIT_MS.check(self.max_wait_ms, "--max-wait-ms")
        MAX_UPLOAD_MB.check(self.max_upload_mb, "--max-upload-mb")
        TIMEOUT_S.check(self.timeout_s, "--timeout")
        if self.api_key is not None and not self.api_key.strip():
            raise OptionError("the API key is empty")
        for origin in self.cors_origins:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise OptionError(f"--cors-origin must be '*' or an http(s):// origin, got {origin!r}")
        WORKERS.check(self.workers, "workers")
        INFLIGHT_MPX.check(self.max_inflight_mpx, "--max-inflight-mpx")
        RESPONSE_MB.check(self.max_response_mb, "--max-response-mb")

    @property
    def max_inflight_pixels(self) -> int:
        return int(self.max_inflight_mpx * 1e6)

    @property
    def max_response_bytes(self) -> int:
        return int(self.max_response_mb * 2**20)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    @property
    def max_wait_s(self) -> float:
        return self.max_wait_ms / 1000.0


def api_key_from_env(name: str | None, environ: dict[str, str] | None = None) -> str | None:
    """The key named by --api-key-env (which must be set), else $SHARPDEPTH_API_KEY, else None."""
    env = os.environ if environ is None else environ
    if name is not None:
        value = env.get(name, "")
        if not value.strip():
            raise OptionError(f"--api-key-env {name}: that environment variable is not set or empty")
        return value.strip()
    value = env.get(API_KEY_ENV, "").strip()
    return value or None
