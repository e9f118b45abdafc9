"""Where and how wide a Ray job runs (the predict settings themselves are the local run's)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import OptionError

DEFAULT_ACTORS = 2
INSTALL_HINT = 'Ray is not installed: pip install "sharpdepth[ray]"'


@dataclass(frozen=True, kw_only=True)
class RaySettings:
    """Where and how wide the job runs; the predict settings themselves are the local run's."""

    address: str | None = None
    """None: start a local Ray instance on this machine (127.0.0.1); "auto" or "ray://head:10001": join a cluster."""
    actors: int = DEFAULT_ACTORS
    cpus_per_actor: float | None = None
    """None: leave a core for decoding and writing on this machine (at most 1 CPU per actor)."""
    gpus_per_actor: float = 0.0
    threads: int | None = None
    """torch threads per actor; None: what a local run on this machine uses (identical arrays)."""

    def __post_init__(self) -> None:
        if self.actors < 1:
            raise OptionError(f"--ray-actors must be at least 1, got {self.actors}")
        if self.cpus_per_actor is not None and not self.cpus_per_actor > 0:
            raise OptionError(f"--ray-cpus-per-actor must be positive, got {self.cpus_per_actor}")
        if self.threads is not None and self.threads < 1:
            raise OptionError(f"threads per actor must be at least 1, got {self.threads}")
        if self.gpus_per_actor < 0:
            raise OptionError(f"--ray-gpus-per-actor must not be negative, got {self.gpus_per_actor}")

    def actor_cpus(self, cluster_cpus: float) -> float:
        if self.cpus_per_actor is not None:
            return self.cpus_per_actor
        spare = max(cluster_cpus - 1.0, 0.5)
        return min(1.0, spare / self.actors)
