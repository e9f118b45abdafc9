"""`sharpdepth video --ray`: one Ray task per clip, each clip processed by the local video job.

Clips are listed as the local batch lists them (`expand_video_inputs`), then each goes to
a pool of actors that load the model once (`map_batches(batch_size=1,
compute=ActorPoolStrategy(...))`) and run `run_video` on it — the very job a local run
runs, so each clip's folder holds the same files. A clip that fails is reported with its
one-line reason and the others go on; `skip_existing` resumes clips and frames as locally.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import Failure, make_failure
from ..video.job import BatchSummary, VideoSummary, clip_failure, plan_videos, run_video
from ..video.settings import VideoSettings
from .ray_predict import _connect, _import_ray, _local_threads
from .settings import RaySettings

Batch = dict[str, np.ndarray]


class _ClipWorker:
    """Actor: one model, one clip per call."""

    def __init__(self, settings: VideoSettings, out_dir: str, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)  # the local run's count (Ray caps OMP threads at the actor's share)
        self.settings = settings
        self.out_dir = Path(out_dir)
        self.model = settings.model.load()

    def _one(self, source: str, stem: str) -> tuple[int, int, str, str]:
        """(frames, frames reused, output folder, error) of one clip."""
        try:
            done = run_video(source, self.out_dir, self.settings, model=self.model, stem=stem)
        except Exception as exc:
            reason = clip_failure(exc, self.model.name)
            if reason is None:
                raise
            return 0, 0, "", reason
        return done.frames, done.reused, str(done.folder), ""

    def __call__(self, batch: Batch) -> Batch:
        outcomes = [self._one(str(src), str(stem)) for src, stem in zip(batch["source"], batch["stem"], strict=True)]
        frames, reused, folders, errors = zip(*outcomes, strict=True)
        return {
            "index": batch["index"],
            "source": batch["source"],
            "frames": np.array(frames, dtype=np.int64),
            "reused": np.array(reused, dtype=np.int64),
            "folder": np.array(folders, dtype=object),
            "error": np.array(errors, dtype=object),
        }


def run_videos_on_ray(
    arguments: Sequence[str],
    out_dir: Path,
    settings: VideoSettings,
    ray_settings: RaySettings,
    on_done: Callable[[VideoSummary], None] | None = None,
    on_failure: Callable[[Failure], None] | None = None,
) -> BatchSummary:
    """`video.job.run_videos` on Ray: one clip per task, same folders and files as a local batch."""
    clips, batch = plan_videos(arguments, on_failure)
    if not clips:
        return batch
    started = _connect(ray_settings)
    try:
        ray = _import_ray()
        from ray.data import ActorPoolStrategy

        cluster_cpus = float(ray.cluster_resources().get("CPU", 1.0))
        rows = [{"index": i, "source": clip.source, "stem": clip.stem} for i, clip in enumerate(clips)]
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            _ClipWorker,
            fn_constructor_kwargs={
                "settings": settings,
                "out_dir": str(out_dir),
                "threads": ray_settings.threads or _local_threads(),
            },
            compute=ActorPoolStrategy(size=min(ray_settings.actors, len(rows))),
            batch_size=1,
            num_cpus=ray_settings.actor_cpus(cluster_cpus),
            num_gpus=ray_settings.gpus_per_actor or None,
        )
        failed: list[tuple[int, Failure]] = []
        for row in dataset.iter_rows():
            if row["error"]:
                failure = make_failure(row["source"], str(row["error"]))
                failed.append((int(row["index"]), failure))
                if on_failure is not None:
                    on_failure(failure)
                continue
            summary = VideoSummary(
                source=str(row["source"]),
                folder=Path(str(row["folder"])),
                frames=int(row["frames"]),
                reused=int(row["reused"]),
                computed=int(row["frames"]) - int(row["reused"]),
            )
            batch.videos.append(summary)
            if on_done is not None:
                on_done(summary)
    finally:
        if started:
            _import_ray().shutdown()
    batch.failures.extend(failure for _, failure in sorted(failed, key=lambda pair: pair[0]))
    return batch
