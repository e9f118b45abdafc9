"""Gaussian-splat rendering on CPU: frames per second, compile time and peak memory.

usage: python benchmarks/splat_render.py [--frames N] [--threads 2] [--scene PLY] [--no-torch]

The scene is the README's stand-in scene: sharp-tiny with the fixture's stand-in weights
(`$SHARPDEPTH_SHARED/fixtures`) on the fixture picture (640x480) at f = 600 px, 1.18 M
Gaussians (or a PLY given with --scene). Each measurement runs in a fresh process, so its peak
resident memory (ru_maxrss) is its own:

* the compiled tile renderer (what CPU rendering uses) at 640x480 and 1280x720, N frames along
  the rotate_forward path after one warm-up frame; figures are the median frame;
* numba's compile time, taken apart from frame time: the first frame in a process with an
  empty numba cache (compile) and then with the cache filled (load from disk);
* the PyTorch rasteriser (the CUDA path, formerly the CPU one) on the first frame at 640x480.

CPU-seconds are given beside wall time: other jobs may share the cores.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

SIZES = ((640, 480), (1280, 720))
SOURCE_FOCAL_PX = 600.0


def build_scene(dest: Path) -> Path:
    """sharp-tiny with the stand-in weights on the fixture picture, saved as a PLY."""
    import sharpdepth

    fixtures = Path(os.environ.get("SHARPDEPTH_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "fixtures"
    spec = importlib.util.spec_from_file_location("fixture_weights", fixtures / "fixture_weights.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"no fixture_weights.py under {fixtures}; set SHARPDEPTH_SHARED")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    weights = dest / "sharp_tiny.pt"
    state = module.fixture_state_dict(fixtures / "sharp" / "tiny")
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, weights)
    model = sharpdepth.load("sharp-tiny", weights=str(weights))
    g = model.predict_gaussians(
        str(fixtures / "sharp" / "tiny" / "image.png"), focal_px=SOURCE_FOCAL_PX, focal_model=None
    )
    return g.save_ply(dest / "scene.ply")


def views(scene_ply: Path, width: int, height: int, frames: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """rotate_forward at width x height (the focal length scaled with the width)."""
    from sharpdepth.geometry.gaussians import load_ply
    from sharpdepth.geometry.trajectory import trajectory

    g = load_ply(scene_ply)
    path = trajectory(g.means[:, 2], SOURCE_FOCAL_PX * width / 640, width, height, "rotate_forward", frames)
    return [(v.world_to_camera, v.K) for v in path]


def child(mode: str, scene_ply: Path, width: int, height: int, frames: int, threads: int) -> dict[str, object]:
    """One measurement (run in its own process)."""
    from sharpdepth.geometry import splat_render
    from sharpdepth.geometry.gaussians import load_ply

    torch.set_num_threads(threads)
    scene = splat_render.prepared_scene(load_ply(scene_ply), "cpu")
    cams = views(scene_ply, width, height, max(frames, 2))
    rss_scene = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    record: dict[str, object] = {"mode": mode, "size": f"{width}x{height}", "gaussians": int(scene.means.shape[0])}

    def timed(view: np.ndarray, k: np.ndarray) -> tuple[float, float]:
        cpu, wall = time.process_time(), time.perf_counter()
        if mode == "torch":
            with torch.inference_mode():
                p = splat_render.project(
                    scene, torch.from_numpy(view).float(), torch.from_numpy(k).float(), width, height
                )
                splat_render.composite(p, width, height)
        else:
            splat_render.render_scene(scene, view, k, width, height)
        return time.perf_counter() - wall, time.process_time() - cpu

    if mode == "torch":
        wall, cpu = timed(*cams[1])
        record.update(frames=1, wall_s=round(wall, 2), cpu_s=round(cpu, 2), fps=round(1 / wall, 4))
    elif mode == "first":
        wall, cpu = timed(*cams[1])
        record.update(first_frame_wall_s=round(wall, 2), first_frame_cpu_s=round(cpu, 2))
    else:
        timed(*cams[0])  # warm-up: compile or cache load, first-touch of the buffers
        walls, cpus = zip(*(timed(*cam) for cam in cams[:frames]), strict=True)
        wall = statistics.median(walls)
        record.update(
            frames=frames,
            median_wall_s=round(wall, 3),
            median_cpu_s=round(statistics.median(cpus), 3),
            fps=round(1 / wall, 2),
            min_wall_s=round(min(walls), 3),
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    record.update(peak_rss_mib=round(peak), rss_scene_loaded_mib=round(rss_scene), threads=threads)
    return record


def run_child(args: list[str], env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run([sys.executable, __file__, "--child", *args], env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"benchmark child {args} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scene", type=Path, help="a 3DGS PLY (default: build the stand-in scene)")
    parser.add_argument("--no-torch", action="store_true", help="skip the (slow) PyTorch rasteriser frame")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, ply, w, h, n = args.child
        print(json.dumps(child(mode, Path(ply), int(w), int(h), int(n), args.threads)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        ply = args.scene or build_scene(work)
        print(f"scene: {ply} ({time.perf_counter() - t0:.0f} s to build/locate)", flush=True)
        env = dict(os.environ, NUMBA_CACHE_DIR=str(work / "numba_cache"))
        size = ["640", "480", "2"]
        rows = [
            {**run_child(["first", str(ply), *size], env), "numba_cache": "empty (compile)"},
            {**run_child(["first", str(ply), *size], env), "numba_cache": "filled (load)"},
        ]
        for w, h in SIZES:
            rows.append(run_child(["tiles", str(ply), str(w), str(h), str(args.frames)], env))
        if not args.no_torch:
            rows.append(run_child(["torch", str(ply), *size], env))
        for row in rows:
            print(json.dumps(row), flush=True)
    print("load:", os.getloadavg())


if __name__ == "__main__":
    main()
