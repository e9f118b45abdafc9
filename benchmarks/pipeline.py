"""Batch throughput of `predict` over a folder: the pipelined job against its forward passes alone.

    python benchmarks/pipeline.py                              # DA V2 Small and MiDaS v2.1 Small
    python benchmarks/pipeline.py --model depth-pro --images 8 --format npz,png16

The shared photos (`$SHARPDEPTH_SHARED/data/photos`) are resized into a temporary
folder of `--images` JPEGs of 12, 7, 3 and 1 megapixels in turn, so decoding,
pre-processing and writing are real work. For each model (random weights: speed does
not depend on the values) one table row gives:

- forward s: the sum, over the same chunks `predict_items` makes, of the network forward
  pass alone (`DepthModel.forward_batch`) on inputs prepared beforehand: the floor;
- plain s: `predict_items` with `pipeline=False` (decode, prepare, forward, write in turn);
- pipelined s: `predict_items` as `sharpdepth predict` runs it;
- each over forward s (the issue's target: pipelined <= 1.10), and the process CPU-seconds
  of each run: overlap can hide decoding and writing behind the forward pass only where
  cores are free for them, so on a machine with few cores the CPU-seconds set the floor.

torch's thread count is left as it is (`--threads` sets it, as the CLI option does). CPU
flags, threads and the load average are printed with the table: figures from a loaded
machine compare only within one run. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from PIL import Image

import sharpdepth
from sharpdepth.engine.jobs import predict_items
from sharpdepth.engine.model import BatchOptions, DepthModel
from sharpdepth.engine.settings import ModelSettings, PredictSettings, set_threads
from sharpdepth.io.images import load_image
from sharpdepth.io.inputs import InputItem, expand_inputs
from sharpdepth.io.outputs import OutputOptions, parse_formats

DEFAULT_MODELS = ("depth-anything-v2-small", "midas-v21-small-256")
MEGAPIXELS = (12.0, 7.0, 3.0, 1.0)
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


@dataclass
class Row:
    model: str
    images: int
    forward_s: float
    plain_s: float
    plain_cpu_s: float
    pipelined_s: float
    pipelined_cpu_s: float
    failures: int


def make_folder(folder: Path, count: int, photos: Path) -> list[Path]:
    """`count` JPEGs resized from the shared photos, cycling through `MEGAPIXELS` sizes."""
    sources = sorted(photos.glob("*.jpg"))
    if not sources:
        raise SystemExit(f"no photos under {photos}; set SHARPDEPTH_SHARED")
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(count):
        with Image.open(sources[i % len(sources)]) as img:
            rgb = img.convert("RGB")
        scale = (MEGAPIXELS[i % len(MEGAPIXELS)] * 1e6 / (rgb.width * rgb.height)) ** 0.5
        size = (round(rgb.width * scale), round(rgb.height * scale))
        path = folder / f"img{i:03d}.jpg"
        rgb.resize(size, Image.Resampling.BICUBIC).save(path, quality=92)
        made.append(path)
    return made


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return " ".join(f"{flag}={'yes' if flag in flags else 'no'}" for flag in CPU_FLAGS)


def chunks(items: list[InputItem], size: int) -> Iterator[list[InputItem]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def pure_forward_s(model: DepthModel, items: list[InputItem], settings: PredictSettings) -> float:
    """Sum of the forward passes alone over predict_items' chunks, inputs prepared beforehand."""
    prepared = []
    for chunk in chunks(items, settings.batch_size):
        loaded = [load_image(it.path, settings.model.max_pixels) for it in chunk]
        prepared.append(model.prepare_batch(loaded, BatchOptions(batch_size=settings.batch_size)))
    total = 0.0
    for batch in prepared:
        start = time.perf_counter()
        model.forward_batch(batch)
        total += time.perf_counter() - start
    return total


def timed(run: Callable[[], int]) -> tuple[float, float, int]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    failures = run()
    return time.perf_counter() - wall0, time.process_time() - cpu0, failures


def measure(name: str, items: list[InputItem], work: Path, output: OutputOptions, batch_size: int) -> Row:
    torch.manual_seed(0)
    model = sharpdepth.load(name, random_weights=True)
    settings = PredictSettings(model=ModelSettings(name=name), output=output, batch_size=batch_size)
    warm = model.prepare_batch([load_image(items[0].path)])
    model.forward_batch(warm)  # one warm-up pass: allocator and kernel choice, not counted
    forward = pure_forward_s(model, items, settings)

    def job(pipeline: bool) -> int:
        out = work / f"out-{name}-{pipeline}"
        shutil.rmtree(out, ignore_errors=True)
        summary = predict_items(model, items, out, replace(settings, pipeline=pipeline))
        shutil.rmtree(out, ignore_errors=True)
        return len(summary.failures)

    plain_s, plain_cpu, failed_plain = timed(lambda: job(False))
    piped_s, piped_cpu, failed_piped = timed(lambda: job(True))
    return Row(name, len(items), forward, plain_s, plain_cpu, piped_s, piped_cpu, failed_plain + failed_piped)


def print_table(rows: list[Row], batch_size: int, output: OutputOptions) -> None:
    load1, load5, _ = os.getloadavg()
    print(f"CPU: {os.cpu_count()} cores, {cpu_flags()}; torch threads {torch.get_num_threads()}; "
          f"load average {load1:.1f} (1 min) {load5:.1f} (5 min)")  # fmt: skip
    views = " + colour view" if output.color_view else ""
    print(f"batch size {batch_size}; outputs {','.join(output.formats)}{views}; images of {MEGAPIXELS} MP in turn")
    header = (
        f"{'model':<26} {'images':>6} {'forward s':>10} {'plain s':>8} {'plain/fwd':>9} {'pipelined s':>11} "
        f"{'piped/fwd':>9} {'plain CPU-s':>11} {'piped CPU-s':>11}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.model:<26} {r.images:>6} {r.forward_s:>10.1f} {r.plain_s:>8.1f} {r.plain_s / r.forward_s:>9.2f} "
            f"{r.pipelined_s:>11.1f} {r.pipelined_s / r.forward_s:>9.2f} {r.plain_cpu_s:>11.1f} "
            f"{r.pipelined_cpu_s:>11.1f}" + (f"  ({r.failures} failures!)" if r.failures else "")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help=f"registered model (repeatable; default {DEFAULT_MODELS})")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--format", default="npz", help="data formats, as predict --format")
    parser.add_argument("--no-view", action="store_true", help="skip the colour view, as predict --no-view")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args()
    set_threads(args.threads)
    shared = Path(os.environ.get("SHARPDEPTH_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    output = OutputOptions(formats=parse_formats(args.format), color_view=not args.no_view)
    with tempfile.TemporaryDirectory(prefix="sharpdepth-pipeline-") as tmp:
        work = Path(tmp)
        make_folder(work / "in", args.images, shared / "data" / "photos")
        items, problems = expand_inputs([str(work / "in")])
        assert not problems, problems
        rows = []
        for name in args.model or DEFAULT_MODELS:
            rows.append(measure(name, items, work, output, args.batch_size))
            print(f"measured {name}", flush=True)  # progress on a slow machine; the table comes last
    print_table(rows, args.batch_size, output)


if __name__ == "__main__":
    main()
