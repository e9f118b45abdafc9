"""Smoke test of the installed wheel, run from outside the source tree (see .ci/run)."""

import subprocess
import sys
from importlib import resources
from pathlib import Path

import sharpdepth

here = Path(sharpdepth.__file__).resolve()
if "site-packages" not in here.parts:
    sys.exit(f"sharpdepth imported from {here}, not from the installed wheel")
package = resources.files("sharpdepth")
for name in (
    "py.typed",
    "assets/colormaps.npz",
    "service/static/index.html",
    "service/static/vendor/three.module.min.js",
    "service/static/vendor/gaussian-splats-3d/gaussian-splats-3d.module.js",
    "service/static/vendor/gaussian-splats-3d/LICENSE",
):
    if not package.joinpath(name).is_file():
        sys.exit(f"{name} is missing from the wheel")
model = sharpdepth.load("depth-pro-tiny", random_weights=True)
result = model.predict(sys.argv[1], focal_px=500.0)
if result.depth.shape != (result.height, result.width):
    sys.exit("prediction has the wrong shape")
cli = Path(sys.executable).with_name("sharpdepth")
subprocess.run([str(cli), "--help"], check=True, capture_output=True)
subprocess.run([str(cli), "info", sys.argv[1]], check=True, capture_output=True)
print(f"wheel smoke ok: {here.parent}, depth {result.height}x{result.width}")
