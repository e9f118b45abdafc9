"""Images per second: a local `predict` vs the same job on Ray with 1 and 2 actors, on this machine.

    python benchmarks/distributed.py [--model depth-anything-v2-small] [--images 24] [--size 480x640]

Stand-in (random) weights are saved once to a temporary file, so the network does real work; every
configuration writes the same files (npy) into its own folder. Ray's overhead per image is the
difference between Ray with 1 actor and the local run, per image. On one 2-core machine Ray cannot
be faster than the local run (the actors share the same cores); on a cluster each actor is a
machine (or a GPU), so throughput grows with the actors until the shared storage saturates.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

import sharpdepth
from sharpdepth.distributed import RaySettings, predict_dataset
from sharpdepth.engine.jobs import plan_predict, predict_items
from sharpdepth.engine.settings import ModelSettings, PredictSettings
from sharpdepth.io.outputs import OutputOptions


def _cpu_flags() -> str:
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0]
    except (OSError, IndexError):
        return platform.processor()
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    return ",".join(f for f in wanted if f" {f}" in flags) or "none of avx2/avx512/amx"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="depth-anything-v2-small")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--size", default="480x640")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="sharpdepth-bench-ray-"))
    rng = np.random.default_rng(0)
    photos = work / "photos"
    photos.mkdir()
    for i in range(args.images):
        Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(photos / f"{i:03d}.png")
    model = sharpdepth.load(args.model, random_weights=True)
    weights = work / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in model.net.state_dict().items()}, str(weights))
    settings = PredictSettings(
        model=ModelSettings(name=args.model, weights=weights), output=OutputOptions(formats=("npy",), color_view=False)
    )
    rows = []
    start = time.perf_counter()
    local_model = settings.model.load()
    plan = plan_predict([str(photos)], work / "local", settings)
    predict_items(local_model, plan.items, work / "local", settings)
    rows.append(("local", time.perf_counter() - start))
    del local_model
    for actors in (1, 2):
        start = time.perf_counter()
        summary = predict_dataset([photos], work / f"ray{actors}", settings, ray_settings=RaySettings(actors=actors))
        assert summary.written == args.images, summary.failures
        rows.append((f"ray, {actors} actor{'s' if actors > 1 else ''}", time.perf_counter() - start))
    print(f"{args.model}, {args.images} images {height}x{width}, {os.cpu_count()} CPUs ({_cpu_flags()}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; wall time includes model loading and "
          "(for Ray) starting a local instance")  # fmt: skip
    print(f"{'run':<18}{'wall s':>10}{'images/s':>10}{'s/image':>10}")
    for name, seconds in rows:
        print(f"{name:<18}{seconds:>10.1f}{args.images / seconds:>10.2f}{seconds / args.images:>10.2f}")
    overhead = (rows[1][1] - rows[0][1]) / args.images
    print(f"Ray overhead (1 actor vs local): {overhead:+.2f} s per image")


if __name__ == "__main__":
    main()
