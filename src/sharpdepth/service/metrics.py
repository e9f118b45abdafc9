"""Prometheus metrics of one service instance (its own registry, so several apps can coexist in tests)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Metrics:
    """Requests by route and status, latency, queue depth, batch sizes, rejections, pixels in flight, disconnects."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(
        self,
        queue_depth: Callable[[], float],
        ready: Callable[[], float],
        pixels_in_flight: Callable[[], float] = lambda: 0.0,
    ) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sharpdepth_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "sharpdepth_request_duration_seconds", "Time from arrival to answer", ["route"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.batch_size = Histogram(
            "sharpdepth_batch_size", "Images per forward pass", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.batch_seconds = Histogram(
            "sharpdepth_batch_duration_seconds", "Forward pass time per batch", buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )  # fmt: skip
        self.rejected = Counter(
            "sharpdepth_rejected", "Requests refused without running (queue full, timeout)", ["reason"],
            registry=self.registry,
        )  # fmt: skip
        self.client_disconnects = Counter(
            "sharpdepth_client_disconnects", "Clients that hung up before their upload was complete", ["route"],
            registry=self.registry,
        )  # fmt: skip
        pixels = Gauge(
            "sharpdepth_pixels_in_flight", "Pixels of the photos admitted and not yet answered", registry=self.registry
        )
        pixels.set_function(pixels_in_flight)
        depth = Gauge("sharpdepth_queue_depth", "Images waiting for the model", registry=self.registry)
        depth.set_function(queue_depth)
        loaded = Gauge("sharpdepth_model_ready", "1 once the model is loaded", registry=self.registry)
        loaded.set_function(ready)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
