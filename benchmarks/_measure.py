"""Measure one forward pass of a registered model in a fresh process.

Run as `python benchmarks/_measure.py NAME PRECISION DEVICE [SIZE]`; prints one JSON
line. A fresh process per measurement makes the peak resident memory (ru_maxrss)
belong to that model and precision alone. CPU-seconds (user + system) are reported
beside wall time because other jobs may share the cores: CPU-seconds compare
across runs, wall time only within one.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np
import torch


def main() -> None:
    name, precision, device = sys.argv[1], sys.argv[2], sys.argv[3]
    size = int(sys.argv[4]) if len(sys.argv) > 4 else None
    import sharpdepth
    from sharpdepth.engine.model import load

    torch.manual_seed(0)
    model = load(name, device=device, precision=precision, random_weights=True, input_size=size)
    rgb = (np.random.default_rng(0).random((768, 1024, 3)) * 255).astype(np.uint8)
    batch = model.processor.preprocess(rgb)[None].to(model.device, model.dtype)
    if device.startswith("cuda"):
        with torch.inference_mode():
            model.processor.forward(model.net, batch)  # warm-up (kernels, allocator)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with torch.inference_mode():
        model.processor.forward(model.net, batch)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    record = {
        "model": name,
        "precision": precision,
        "device": device,
        "input": list(batch.shape[-2:]),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 1),
        "peak_rss_gib": round(peak_gib, 2),
        "rss_before_forward_gib": round(rss_before / 2**20, 2),
        "threads": torch.get_num_threads(),
        "sharpdepth": sharpdepth.__version__,
    }
    if device.startswith("cuda"):
        record["peak_cuda_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(record))


if __name__ == "__main__":
    main()
