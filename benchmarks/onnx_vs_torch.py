"""PyTorch vs onnxruntime on the CPU, in one run (interleaved), to decide and document `--backend onnxruntime`.

    python benchmarks/onnx_vs_torch.py [--mode predict|forward] [--threads 2] [--runs 5]

`--mode predict` (default): end-to-end `model.predict(photo)` per image — decode-free
pre-processing, forward pass, post-processing, the same `DepthResult` — with
`sharpdepth.load(..., backend="torch")` and `backend="onnxruntime"` on the same
checkpoint (random weights saved to a temporary file, so the onnxruntime backend
exports into its cache exactly as on a user's first run), for Depth Anything V2
Small at 518 (a 640x480 photo: network input 518x686) and MiDaS v2.1 small at 256.
For Depth Anything it also runs a static graph of that one network input
(`weights=FILE.onnx`), which is how the dynamic-vs-static choice was made.

`--mode forward`: forward passes only, on one network input (`--model`, `--input-size`).

Both modes print medians of wall and CPU seconds, the ratio and the CPU flags that
decide these numbers (AVX2 / AVX-512 / BF16 / AMX). On a shared machine other jobs
inflate both columns; the runs interleave so that both see the same load.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import sharpdepth
from sharpdepth.engine.model import DepthModel
from sharpdepth.engine.onnx_graph import example_input, export_graph

PREDICT_CASES = (("depth-anything-v2-small", 518), ("midas-v21-small-256", 256))
PHOTO_HW = (480, 640)


def _cpu_flags() -> str:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0].split())
    except (OSError, IndexError):
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    return ",".join(f for f in wanted if f in flags) or "none of avx2/avx512/amx"


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _interleaved(fns: dict[str, Callable[[], object]], runs: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds per function, run alternately after one warm-up each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            times[name].append(_timed(fn))
    return {
        name: (statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows))
        for name, rows in times.items()
    }


def _random_checkpoint(name: str, folder: Path) -> Path:
    """Random weights (std 0.02, so activations stay finite) as a checkpoint file, like a user's."""
    torch.manual_seed(0)
    net = sharpdepth.load(name, random_weights=True).net
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0.0, 0.02)
    path = folder / f"{name}.pt"
    torch.save(net.state_dict(), path)
    return path


def _photo() -> np.ndarray:
    yy, xx = np.mgrid[0 : PHOTO_HW[0], 0 : PHOTO_HW[1]]
    rgb = np.stack([(xx * 3 + yy) % 256, (yy * 2) % 256, ((xx ^ yy) * 5) % 256], axis=-1)
    return rgb.astype(np.uint8)


def predict_mode(runs: int) -> None:
    import onnxruntime as ort

    rgb = _photo()
    folder = Path(tempfile.mkdtemp(prefix="sharpdepth-ort-bench-"))
    rows: list[tuple[str, str, float, float, float, float | None]] = []
    for name, size in PREDICT_CASES:
        weights = _random_checkpoint(name, folder)
        models: dict[str, DepthModel] = {"torch": sharpdepth.load(name, weights=weights, input_size=size)}
        hw = models["torch"].processor.network_size(*PHOTO_HW)
        start = time.perf_counter()
        models["onnxruntime"] = sharpdepth.load(name, weights=weights, input_size=size, backend="onnxruntime")
        models["onnxruntime"].predict(rgb)  # static-graph families export this shape on first use
        setup = time.perf_counter() - start
        if name.startswith("depth-anything"):  # a static graph of this photo's network input, for comparison
            static = folder / f"{name}-{hw[0]}x{hw[1]}.onnx"
            export_graph(models["torch"], static, input_hw=hw)
            models["onnxruntime, static graph"] = sharpdepth.load(
                name, weights=static, input_size=size, backend="onnxruntime"
            )
        medians = _interleaved({k: (lambda m=m: m.predict(rgb, keep_image=False)) for k, m in models.items()}, runs)
        ref = medians["torch"][0]
        for backend, (wall, cpu) in medians.items():
            first = setup if backend == "onnxruntime" else None
            rows.append((f"{name} [{backend}]", f"{hw[0]}x{hw[1]}", wall, cpu, wall / ref, first))
    print(
        f"end-to-end predict of a {PHOTO_HW[1]}x{PHOTO_HW[0]} photo, {torch.get_num_threads()} threads, "
        f"CPU flags {_cpu_flags()}, torch {torch.__version__}, onnxruntime {ort.__version__}, median of {runs}"
    )
    print(f"{'model [backend]':<52}{'net input':>11}{'wall s':>9}{'CPU s':>9}{'vs torch':>10}{'setup s':>9}")
    for label, net_in, wall, cpu, ratio, setup in rows:
        setup_text = f"{setup:9.1f}" if setup is not None else f"{'':>9}"
        print(f"{label:<52}{net_in:>11}{wall:>9.3f}{cpu:>9.3f}{ratio:>10.2f}{setup_text}")
    print("setup s: first load + first predict with the onnxruntime backend (export + parity check into the cache)")


def forward_mode(model_name: str, input_size: int, runs: int) -> None:
    import onnxruntime as ort

    torch.manual_seed(0)
    model = sharpdepth.load(model_name, random_weights=True, input_size=input_size)
    with torch.no_grad():
        for p in model.net.parameters():
            p.normal_(0.0, 0.02)
    path = Path(tempfile.mkdtemp(prefix="sharpdepth-onnx-")) / "model.onnx"
    report = export_graph(model, path, input_size=input_size)
    x = example_input(model, input_size, input_size)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x.numpy()}
    net = model.net.eval()

    def run_torch() -> None:
        with torch.inference_mode():
            net(x)

    medians = _interleaved({"pytorch": run_torch, "onnxruntime": lambda: session.run(None, feed)}, runs)
    print(f"{model_name} forward at {tuple(x.shape[-2:])}, {torch.get_num_threads()} threads, CPU flags "
          f"{_cpu_flags()}, torch {torch.__version__}, onnxruntime {ort.__version__}; export check max rel. err "
          f"{max(err for _, err in report.checks):.1e}")  # fmt: skip
    print(f"{'runtime':<14}{'wall s':>10}{'CPU s':>10}")
    for name, (wall, cpu) in medians.items():
        print(f"{name:<14}{wall:>10.3f}{cpu:>10.3f}")
    print(f"onnxruntime / pytorch wall time: {medians['onnxruntime'][0] / medians['pytorch'][0]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mode", choices=("predict", "forward"), default="predict")
    parser.add_argument("--model", default="depth-anything-v2-small", help="--mode forward only")
    parser.add_argument("--input-size", type=int, default=518, help="--mode forward only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.mode == "predict":
        predict_mode(args.runs)
    else:
        forward_mode(args.model, args.input_size, args.runs)


if __name__ == "__main__":
    main()
