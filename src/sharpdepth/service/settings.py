"""Settings of the HTTP service: the one place where its defaults live.

`ServeSettings` holds what is specific to serving (where to listen, how much
to batch and queue, limits, auth, CORS); what to run is the predict job's own
`ModelSettings`, built by the CLI exactly as `sharpdepth predict` builds it.
Like every settings object in sharpdepth it is frozen, keyword-only and
validated on construction, so a bad flag fails before the model is loaded.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from ..errors import OptionError

API_KEY_ENV = "SHARPDEPTH_API_KEY"


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

    def __post_init__(self) -> None:
        if not self.host:
            raise OptionError("--host must not be empty")
        if not 0 <= self.port <= 65535:
            raise OptionError(f"--port must be 0..65535, got {self.port}")
        for name, value in (("--max-batch", self.max_batch), ("--max-queue", self.max_queue)):
            if value < 1:
                raise OptionError(f"{name} must be at least 1, got {value}")
        if not (math.isfinite(self.max_wait_ms) and self.max_wait_ms >= 0):
            raise OptionError(f"--max-wait-ms must be >= 0, got {self.max_wait_ms}")
        if not (math.isfinite(self.max_upload_mb) and self.max_upload_mb > 0):
            raise OptionError(f"--max-upload-mb must be positive, got {self.max_upload_mb}")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise OptionError(f"--timeout must be a positive number of seconds, got {self.timeout_s}")
        if self.api_key is not None and not self.api_key.strip():
            raise OptionError("the API key is empty")
        for origin in self.cors_origins:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise OptionError(f"--cors-origin must be '*' or an http(s):// origin, got {origin!r}")
        if self.workers < 1:
            raise OptionError(f"workers must be at least 1, got {self.workers}")

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
