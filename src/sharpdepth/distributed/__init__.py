"""Scale-out of the predict job on Ray Data (optional extra: `pip install "sharpdepth[ray]"`).

`predict_dataset(paths, out_dir, settings, actors=8)` takes the same settings objects
as the CLI and writes exactly the files a local `sharpdepth predict` writes.
"""

from .ray_predict import predict_dataset, predict_items_on_ray
from .settings import RaySettings

__all__ = ["RaySettings", "predict_dataset", "predict_items_on_ray"]
