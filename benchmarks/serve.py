"""Back-pressure of `sharpdepth serve`: drive it at ~4x its capacity and see what admitted requests get.

    python benchmarks/serve.py                                   # tiny Depth Pro, 120 requests
    python benchmarks/serve.py --model depth-pro --weights depth_pro.pt --requests 40 --overload 4
    python benchmarks/serve.py --large-mpx 81 --large-requests 3 --requests 0   # memory under giant photos
    python benchmarks/serve.py --large-mpx 81 --large-requests 3 --requests 0 --max-inflight-mpx 10000  # no budget

1. Starts `sharpdepth serve` on a free loopback port (127.0.0.1 only) with the given
   --max-batch / --max-queue; weights are random for `--model` without `--weights`
   (speed and memory do not depend on their values).
2. Capacity: a closed loop of 2 x `max-batch` concurrent clients (full batches); capacity = completed / s.
3. Overload: an open loop sending `--requests` requests at `--overload` x capacity.
4. Prints throughput, p50/p99 latency of admitted requests, the share refused with 429,
   and the server's peak resident memory (VmHWM) after the capacity phase and after
   the overload. A bounded queue shows as a flat peak and a bounded p99.
0. First, with `--large-requests N`: N concurrent `--large-mpx` PNGs (under the pixel limit) asking
   for npz. Memory is bounded by pixels in flight (`--max-inflight-mpx`), not by request count:
   prints their statuses, the largest answer, the peak resident memory of that burst and the
   resident memory once idle afterwards (freed memory goes back to the system).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc (Linux only)")


def peak_rss_mib(pid: int) -> float:
    """Peak resident set size of a process so far (Linux VmHWM), in MiB."""
    return _status_mib(pid, "VmHWM")


def rss_mib(pid: int) -> float:
    """Resident set size of a process now (Linux VmRSS), in MiB."""
    return _status_mib(pid, "VmRSS")


def large_png(megapixels: float) -> bytes:
    """A 3:2 PNG of about `megapixels` (smooth gradients: quick to encode, still a real decode)."""
    import io

    from PIL import Image

    w = int((megapixels * 1e6 * 1.5) ** 0.5)
    h = int(megapixels * 1e6 / w)
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None]
    rgb = np.stack([np.broadcast_to(x, (h, w)), np.broadcast_to(y, (h, w)), (x + y) / 2], axis=-1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


async def large_burst(url: str, png: bytes, count: int) -> list[tuple[int, int, float]]:
    """`count` concurrent uploads of one large PNG asking for npz: (status, answer bytes, seconds) each."""
    async with httpx.AsyncClient(timeout=1800) as client:

        async def send() -> tuple[int, int, float]:
            start = time.perf_counter()
            r = await client.post(url, files={"image": ("big.png", png, "image/png")}, params={"format": "npz"})
            return r.status_code, len(r.content), time.perf_counter() - start

        return list(await asyncio.gather(*(send() for _ in range(count))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def random_weights(model: str, folder: Path) -> Path:
    import torch

    import sharpdepth

    path = folder / f"{model}-random.pt"
    torch.save(sharpdepth.load(model, random_weights=True).net.state_dict(), path)
    return path


async def one(client: httpx.AsyncClient, url: str, image: bytes) -> tuple[int, float]:
    start = time.perf_counter()
    r = await client.post(url, files={"image": ("photo.jpg", image, "image/jpeg")}, params={"format": "npz"})
    return r.status_code, time.perf_counter() - start


async def closed_loop(url: str, image: bytes, clients: int, total: int) -> float:
    """Requests completed per second with `clients` always waiting (no request refused)."""
    done = 0
    async with httpx.AsyncClient(timeout=600) as client:

        async def worker() -> None:
            nonlocal done
            while done < total:
                done += 1
                status, _ = await one(client, url, image)
                if status != 200:
                    raise RuntimeError(f"capacity run got HTTP {status}")

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return total / (time.perf_counter() - start)


async def open_loop(url: str, image: bytes, rate: float, total: int) -> tuple[list[tuple[int, float]], float]:
    """`total` requests started at `rate` per second regardless of answers; (status, seconds) each."""
    limits = httpx.Limits(max_connections=total, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        start = time.perf_counter()

        async def later(i: int) -> tuple[int, float]:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            return await one(client, url, image)

        results = await asyncio.gather(*(later(i) for i in range(total)))
        return list(results), time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="depth-pro-tiny")
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--image", type=Path, default=REPO / "examples" / "room.jpg")
    parser.add_argument("--max-batch", type=int, default=2)
    parser.add_argument("--max-queue", type=int, default=4)
    parser.add_argument("--requests", type=int, default=120, help="overload requests (bounded)")
    parser.add_argument("--capacity-requests", type=int, default=12)
    parser.add_argument("--overload", type=float, default=4.0, help="offered load / capacity")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--large-mpx", type=float, default=40.0, help="size of the large photos (Mpx)")
    parser.add_argument("--large-requests", type=int, default=0, help="concurrent large photos (0: skip)")
    parser.add_argument("--max-inflight-mpx", type=float, default=None, help="the server's pixel budget")
    args = parser.parse_args(argv)
    image = args.image.read_bytes()
    with tempfile.TemporaryDirectory(prefix="sharpdepth-bench-") as tmp:
        weights = args.weights or random_weights(args.model, Path(tmp))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "sharpdepth", "serve", "--model", args.model, "--weights", str(weights),
               "--host", "127.0.0.1", "--port", str(port), "--max-batch", str(args.max_batch),
               "--max-queue", str(args.max_queue), "--device", args.device, "--log-level", "warning"]  # fmt: skip
        if args.max_inflight_mpx is not None:
            cmd += ["--max-inflight-mpx", str(args.max_inflight_mpx)]
        env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 600
            while True:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not start")
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.3)
            url = f"{base}/v1/depth"
            idle = peak_rss_mib(server.pid)
            large: list[tuple[int, int, float]] = []
            if args.large_requests:
                png = large_png(args.large_mpx)
                large = asyncio.run(large_burst(url, png, args.large_requests))
                large_peak = peak_rss_mib(server.pid)
                time.sleep(2.0)
                large_idle = rss_mib(server.pid)
            capacity = asyncio.run(closed_loop(url, image, 2 * args.max_batch, args.capacity_requests))
            before = peak_rss_mib(server.pid)
            results: list[tuple[int, float]] = []
            seconds = 1.0
            if args.requests:
                results, seconds = asyncio.run(open_loop(url, image, args.overload * capacity, args.requests))
            after = peak_rss_mib(server.pid)
            alive = httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        finally:
            server.terminate()
            server.wait(30)
    ok = np.array([t for s, t in results if s == 200])
    refused = sum(1 for s, _ in results if s == 429)
    other = sorted({s for s, _ in results if s not in (200, 429)})
    print(f"model {args.model}, --max-batch {args.max_batch} --max-queue {args.max_queue}, image {args.image.name}")
    print("| measure | value |")
    print("|---|---|")
    if large:
        budget = "default" if args.max_inflight_mpx is None else f"{args.max_inflight_mpx:g} Mpx"
        statuses = sorted(s for s, _, _ in large)
        biggest, slowest = max(n for _, n, _ in large) / 2**20, max(t for _, _, t in large)
        print(f"| {len(large)} concurrent {args.large_mpx:g} Mpx PNGs (npz), pixel budget {budget} | "
              f"statuses {statuses}, largest answer {biggest:.0f} MiB, slowest {slowest:.1f} s |")  # fmt: skip
        print(f"| server RSS: idle before / peak of the burst / 2 s after | {idle:.0f} / {large_peak:.0f} / "
              f"{large_idle:.0f} MiB |")  # fmt: skip
    print(f"| capacity (closed loop, {2 * args.max_batch} clients) | {capacity:.2f} req/s |")
    if not results:
        print(f"| server healthy afterwards | {'yes' if alive else 'NO'} |")
        return
    print(f"| offered load | {args.overload * capacity:.2f} req/s ({args.overload:g}x), {args.requests} requests |")
    print(f"| throughput of admitted | {len(ok) / seconds:.2f} req/s |")
    if len(ok):
        print(f"| latency of admitted p50 / p99 | {np.percentile(ok, 50):.2f} s / {np.percentile(ok, 99):.2f} s |")
    print(f"| refused with 429 | {refused / len(results):.0%} ({refused} of {len(results)}) |")
    print(f"| other statuses | {other or 'none'} |")
    print(
        f"| server peak RSS: idle / after capacity run / after overload | {idle:.0f} / {before:.0f} / {after:.0f} MiB |"
    )
    print(f"| server healthy afterwards | {'yes' if alive else 'NO'} |")


if __name__ == "__main__":
    main()
