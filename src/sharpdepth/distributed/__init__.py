"""Scale-out of the predict and video jobs on Ray Data (optional extra: `pip install "sharpdepth[ray]"`).

`predict_dataset(paths, out_dir, settings, actors=8)` takes the same settings objects
as the CLI and writes exactly the files a local `sharpdepth predict` writes.
The job functions are imported on first use, so `distributed.settings` stays cheap
for the command line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .settings import RaySettings

if TYPE_CHECKING:
    from .ray_predict import predict_dataset, predict_items_on_ray
    from .ray_video import run_videos_on_ray

__all__ = ["RaySettings", "predict_dataset", "predict_items_on_ray", "run_videos_on_ray"]


def __getattr__(name: str) -> object:
    if name in ("predict_dataset", "predict_items_on_ray"):
        from . import ray_predict

        return getattr(ray_predict, name)
    if name == "run_videos_on_ray":
        from . import ray_video

        return ray_video.run_videos_on_ray
    raise AttributeError(f"module 'sharpdepth.distributed' has no attribute {name!r}")
