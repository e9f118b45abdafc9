"""Depth Pro, ours against Apple's official code, side by side in one run on this CPU.

    python benchmarks/depth_pro_vs_official.py [--official SRC] [--workdir DIR] [--precisions fp32,bf16]

Both implementations load the same checkpoint — the full parity fixture's stand-in weights
written once as an official `depth_pro.pt` (fp32, official keys) — in a fresh process each,
the way a user would, and run the network on the same 1536x1536 input (the fixture's
`image_net.png`, ToTensor + Normalize(0.5, 0.5)). Reported per process:

- CPU-seconds of the whole process (user + system, all threads: import, build, load, forward)
  and of the forward pass alone;
- peak RSS of the whole process (`VmHWM`) and of the forward pass alone (`VmHWM` reset through
  `/proc/self/clear_refs` just before it: weights resident plus activations);
- how far the outputs are from each other and from the official reference stored in the fixture.

The official package (`apple/ml-depth-pro`, the fixture's reference commit by default; `--official`
takes a local checkout or any pip URL) is installed with timm into a throwaway venv under
`--workdir`. That venv borrows this interpreter's packages (the same torch build) through a `.pth`
file, and gets a stand-in `torchvision` that provides only what the network path needs
(`Compose`, `ToTensor`, `Normalize`, `ConvertImageDtype`, `Lambda`; everything else importable but
refusing use), because the real torchvision wheel drags a CUDA torch in.

Official bf16 has no public path (`create_model_and_transforms` only casts for fp16), so the
official process does what its fp16 branch does: build, cast, then load the checkpoint into the
cast network — the lower-memory order. Not part of the test run: each fp32 process needs ~8 GB
and minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import venv
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OFFICIAL_COMMIT = "9efe5c1def37a26c5367a71df664b18e1306c708"
OFFICIAL_DEFAULT = f"git+https://github.com/apple/ml-depth-pro@{OFFICIAL_COMMIT}"
TARGETS = {  # ours / official, whole process (issue 22: fp32 CPU-s on every CPU; peaks as before)
    ("fp32", "cpu_s"): 1.05,
    ("fp32", "peak_mib"): 0.6,
    ("bf16", "peak_mib"): 0.5,
}

TORCHVISION_SHIM = '''
"""Stand-in for torchvision: what apple/ml-depth-pro's network path needs, nothing else.

Written by sharpdepth's benchmarks/depth_pro_vs_official.py. timm imports torchvision modules at
import time; any name not defined here imports as a placeholder that refuses to be used.
"""
import enum
import importlib.abc
import importlib.machinery
import sys
import types

import numpy as np
import torch

__version__ = "0.0-sharpdepth-shim"


class _Refused:
    def __init__(self, *args, **kwargs):
        raise RuntimeError(f"{type(self).__name__} is not available in the torchvision stand-in")


def _placeholder_module(name):
    module = types.ModuleType(name)
    module.__path__ = []

    def __getattr__(attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return type(attr, (_Refused,), {})

    module.__getattr__ = __getattr__
    return module


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname.startswith("torchvision.") and fullname not in sys.modules:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        return _placeholder_module(spec.name)

    def exec_module(self, module):
        pass


sys.meta_path.append(_Finder())

transforms = _placeholder_module("torchvision.transforms")
sys.modules["torchvision.transforms"] = transforms


class Compose:
    def __init__(self, steps):
        self.steps = list(steps)

    def __call__(self, x):
        for step in self.steps:
            x = step(x)
        return x


class ToTensor:
    """HWC uint8 (PIL or numpy) -> CHW float in [0, 1], as torchvision does."""

    def __call__(self, picture):
        array = np.asarray(picture)
        if array.ndim == 2:
            array = array[:, :, None]
        tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
        return tensor.float().div(255) if tensor.dtype == torch.uint8 else tensor.float()


class Normalize:
    def __init__(self, mean, std):
        self.mean, self.std = mean, std

    def __call__(self, x):
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device)[:, None, None]
        std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device)[:, None, None]
        return (x - mean) / std


class ConvertImageDtype:
    def __init__(self, dtype):
        self.dtype = dtype

    def __call__(self, x):
        return x.to(self.dtype)


class Lambda:
    def __init__(self, fn):
        self.fn = fn

    def __call__(self, x):
        return self.fn(x)


class InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


functional = _placeholder_module("torchvision.transforms.functional")
functional.InterpolationMode = InterpolationMode
sys.modules["torchvision.transforms.functional"] = functional
transforms.functional = functional
for _name in ("Compose", "ToTensor", "Normalize", "ConvertImageDtype", "Lambda", "InterpolationMode"):
    setattr(transforms, _name, globals()[_name])
'''

CHILD = r"""
import json, resource, sys, time
import numpy as np

def status():
    out = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) / 1024
    return out

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

def system_cpu():
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime

impl, precision, checkpoint, image, out_npy, threads = sys.argv[1:7]
wall0 = time.perf_counter()
import torch
from PIL import Image
torch.set_num_threads(int(threads))
dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[precision]
rgb = np.asarray(Image.open(image).convert("RGB"))
if impl == "official":
    import dataclasses
    import depth_pro
    from depth_pro.depth_pro import DEFAULT_MONODEPTH_CONFIG_DICT
    cpu_import = cpu()
    config = dataclasses.replace(DEFAULT_MONODEPTH_CONFIG_DICT, checkpoint_uri=checkpoint)
    if dtype == torch.float32:
        net, transform = depth_pro.create_model_and_transforms(config=config, precision=dtype)
    else:  # the official fp16 order (cast, then load), for bf16
        bare = dataclasses.replace(config, checkpoint_uri=None)
        net, transform = depth_pro.create_model_and_transforms(config=bare, precision=dtype)
        net = net.to(dtype)
        state = torch.load(checkpoint, map_location="cpu")
        net.load_state_dict(state_dict=state, strict=True)
        del state
    net.eval()
    x = transform(rgb)[None]
    def forward():
        return net(x)
else:
    import sharpdepth
    cpu_import = cpu()
    model = sharpdepth.load("depth-pro", weights=checkpoint, precision=precision)
    x = model.processor.preprocess(rgb)[None].to(model.device, model.dtype)
    net = model.net
    def forward():
        return net(x)
cpu_loaded, load_status = cpu(), status()
open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS: the next peak is the forward pass's
before = status()
cpu0, fwd0 = cpu(), time.perf_counter()
with torch.inference_mode():
    canonical, fov = forward()
forward_wall, forward_cpu = time.perf_counter() - fwd0, cpu() - cpu0
after = status()
np.save(out_npy, canonical.float().numpy().reshape(canonical.shape[-2:]))
print(json.dumps({
    "impl": impl, "precision": precision, "threads": torch.get_num_threads(), "torch": torch.__version__,
    "cpu_s": cpu(), "system_cpu_s": system_cpu(), "cpu_import_s": cpu_import,
    "cpu_load_s": cpu_loaded - cpu_import, "forward_cpu_s": forward_cpu,
    "forward_wall_s": forward_wall, "wall_s": time.perf_counter() - wall0,
    "peak_load_mib": load_status["VmHWM"], "rss_before_forward_mib": before["VmRSS"],
    "file_backed_before_forward_mib": before["RssFile"], "peak_forward_mib": after["VmHWM"],
    "fov_deg": float(fov.float().reshape(-1)[0]),
}))
"""


def shared_root() -> Path:
    """The read-only shared folder (fixtures): $SHARPDEPTH_SHARED, else beside the checkout."""
    env = os.environ.get("SHARPDEPTH_SHARED")
    return Path(env) if env else REPO.parent / "shared"


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
    return f"{model}; " + (" ".join(f for f in wanted if f in flags) or "none of avx2/avx512/amx")


def _run(cmd: list[str], **kwargs: object) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


def official_venv(workdir: Path, official: str, timm: str) -> Path:
    """A throwaway venv with the official package and timm, borrowing this interpreter's torch."""
    root = workdir / "official-venv"
    python = root / "bin" / "python"
    marker = root / "sharpdepth-ready.json"
    wanted = {"official": official, "timm": timm}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return python
    venv.create(root, clear=True, with_pip=True)
    site = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    import sysconfig

    (site / "zz_sharpdepth_borrow.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    shim = site / "torchvision"
    shim.mkdir()
    (shim / "__init__.py").write_text(TORCHVISION_SHIM)
    # --no-deps: the official requirements name torchvision, and timm's pull it in as well
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", timm, official])
    _run([str(python), "-c", "import depth_pro, timm; print('official', depth_pro.__file__, 'timm', timm.__version__)"])
    marker.write_text(json.dumps(wanted))
    return python


def write_checkpoint(workdir: Path) -> Path:
    """The full fixture's stand-in weights as an official `depth_pro.pt` (fp32, official keys), once."""
    dest = workdir / "depth_pro_fixture.pt"
    if dest.is_file():
        return dest
    import numpy as np
    import torch

    sys.path.insert(0, str(shared_root() / "fixtures"))
    from fixture_weights import fixture_state_dict

    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in fixture_state_dict(fixture_dir()).items()}
    part = dest.with_suffix(".pt.part")
    torch.save(state, part)
    part.replace(dest)
    return dest


def fixture_dir() -> Path:
    return shared_root() / "fixtures" / "depth_pro" / "full"


def measure(
    python: str,
    impl: str,
    precision: str,
    checkpoint: Path,
    workdir: Path,
    threads: int,
    variant: Variant | None = None,
    run: int = 0,
) -> dict[str, float]:
    tag = impl if variant is None else f"variant-{variant.label}"
    out = workdir / f"out_{tag}_{precision}.npy"
    if run:
        out = workdir / f"out_{tag}_{precision}_run{run}.npy"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if impl == "ours":
        env["PYTHONPATH"] = str(REPO / "src" if variant is None else variant.src)
        env.update(variant.env if variant is not None else {})
    args = [python, "-c", CHILD, impl, precision, str(checkpoint), str(fixture_dir() / "image_net.png"), str(out)]
    proc = subprocess.run([*args, str(threads)], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{tag} {precision} failed:\n{proc.stderr[-3000:]}")
    record: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(tag, f"run {run}", json.dumps(record), flush=True)
    return record


def median_record(records: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the runs (runs interleave the two sides, so drift hits both)."""
    import statistics

    return {key: statistics.median(r[key] for r in records) for key in records[0]}


@dataclass(frozen=True)
class Variant:
    """Another build of ours (an older checkout's `src`, or an environment switch), for a per-change table."""

    label: str
    src: Path
    env: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> Variant:
        """LABEL=SRC[,KEY=VALUE...], e.g. `before=/work/wt/prev/src` or `glibc-malloc=src,SHARPDEPTH_MALLOC=default`."""
        label, _, rest = text.partition("=")
        src, *pairs = rest.split(",")
        if not label or not src or any("=" not in p for p in pairs):
            raise argparse.ArgumentTypeError(f"--variant wants LABEL=SRC[,KEY=VALUE...], got {text!r}")
        return cls(label, Path(src).resolve(), dict(p.split("=", 1) for p in pairs))


def variant_table(
    variants: list[Variant],
    found: dict[tuple[str, str], dict[str, float]],
    results: dict[tuple[str, str], dict[str, float]],
    workdir: Path,
    precisions: list[str],
) -> str:
    rows = [
        "| build | precision | CPU-s (process) | CPU-s (forward) | system CPU-s | peak RSS MiB "
        "| CPU-s / official | peak / official |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for precision in precisions:
        o = results[("official", precision)]
        official_peak = max(o["peak_load_mib"], o["peak_forward_mib"])
        labelled = [(v.label, found[(v.label, precision)]) for v in variants] + [
            ("this checkout", results[("ours", precision)])
        ]
        for label, r in labelled:
            peak = max(r["peak_load_mib"], r["peak_forward_mib"])
            rows.append(
                f"| {label} | {precision} | {r['cpu_s']:.1f} | {r['forward_cpu_s']:.1f} "
                f"| {r.get('system_cpu_s', float('nan')):.1f} "
                f"| {peak:.0f} | {r['cpu_s'] / o['cpu_s']:.2f}× | {peak / official_peak:.2f}× |"
            )
    return "\n".join(rows)


def relative_difference(a: Path, b: Path) -> float:
    import numpy as np

    x, y = np.load(a).astype(np.float64), np.load(b).astype(np.float64)
    return float(np.abs(x - y).max() / np.abs(y).max())


def table(results: dict[tuple[str, str], dict[str, float]], workdir: Path, precisions: list[str]) -> str:
    reference = fixture_dir() / "net_output_canonical_inverse_depth.npy"
    rows = [
        "| precision | impl | CPU-s (process) | CPU-s (forward) | peak RSS MiB (process) | peak RSS MiB (forward) "
        "| output vs official fixture |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    import numpy as np

    ref_path = workdir / "reference.npy"
    np.save(ref_path, np.load(reference).reshape(np.load(reference).shape[-2:]))
    for precision in precisions:
        for impl in ("official", "ours"):
            r = results[(impl, precision)]
            diff = relative_difference(workdir / f"out_{impl}_{precision}.npy", ref_path)
            peak = max(r["peak_load_mib"], r["peak_forward_mib"])
            rows.append(
                f"| {precision} | {impl} | {r['cpu_s']:.1f} | {r['forward_cpu_s']:.1f} | {peak:.0f} "
                f"| {r['peak_forward_mib']:.0f} | {diff:.1e} |"
            )
        o, s = results[("official", precision)], results[("ours", precision)]
        cpu_ratio = s["cpu_s"] / o["cpu_s"]
        peak_ratio = max(s["peak_load_mib"], s["peak_forward_mib"]) / max(o["peak_load_mib"], o["peak_forward_mib"])
        fwd_ratio = s["forward_cpu_s"] / o["forward_cpu_s"]
        fpk_ratio = s["peak_forward_mib"] / o["peak_forward_mib"]
        between = relative_difference(workdir / f"out_ours_{precision}.npy", workdir / f"out_official_{precision}.npy")
        rows.append(
            f"| {precision} | **ours / official** | **{cpu_ratio:.2f}×**{_target(precision, 'cpu_s', cpu_ratio)} "
            f"| {fwd_ratio:.2f}× | **{peak_ratio:.2f}×**{_target(precision, 'peak_mib', peak_ratio)} "
            f"| {fpk_ratio:.2f}× | ours vs official {between:.1e} |"
        )
    return "\n".join(rows)


def runs_table(runs: dict[tuple[str, str], list[dict[str, float]]], workdir: Path) -> str:
    """Every run's whole-process CPU-s and peak, and whether its output equals run 0's of the other side."""
    rows = [
        "| precision | impl | CPU-s per run | peak MiB per run | every run's output = official run 0 |",
        "|---|---|---|---|---|",
    ]
    for (impl, precision), records in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        cpu = ", ".join(f"{r['cpu_s']:.1f}" for r in records)
        peak = ", ".join(f"{max(r['peak_load_mib'], r['peak_forward_mib']):.0f}" for r in records)
        base = workdir / f"out_official_{precision}.npy"
        files = [workdir / f"out_{impl}_{precision}{'' if i == 0 else f'_run{i}'}.npy" for i in range(len(records))]
        same = all(relative_difference(f, base) == 0.0 for f in files)
        rows.append(f"| {precision} | {impl} | {cpu} | {peak} | {'yes (bit-identical)' if same else 'NO'} |")
    return "\n".join(rows)


def _target(precision: str, what: str, ratio: float) -> str:
    bound = TARGETS.get((precision, what))
    if bound is None:
        return ""
    return f" (target ≤ {bound}: {'met' if ratio <= bound else 'NOT met'})"


FLOOR = r"""
import json, time
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from sharpdepth.models.depth_pro import DEPTH_PRO, DepthPro

with torch.device("meta"):
    net, x = DepthPro(DEPTH_PRO), torch.empty(1, 3, 1536, 1536)
counter = FlopCounterMode(display=False)
with counter, torch.no_grad():
    net(x)
flops = {str(op).split(".")[-1]: n for op, n in counter.get_flop_counts()["Global"].items()}

def cpu_seconds(fn, repeat=3):
    fn()
    start = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - start) / repeat

g = torch.Generator().manual_seed(0)
tokens, weight = torch.randn(12 * 577, 1024, generator=g), torch.randn(4096, 1024, generator=g)
band = torch.randn(1, 256, 204, 768, generator=g).to(memory_format=torch.channels_last)
kernel = torch.randn(256, 256, 3, 3, generator=g).to(memory_format=torch.channels_last)
q = torch.randn(12, 16, 577, 64, generator=g)
with torch.inference_mode():
    rates = {  # FLOP per CPU-second at the network's own shapes
        "addmm": 2 * tokens.shape[0] * 1024 * 4096 / cpu_seconds(lambda: F.linear(tokens, weight)),
        "convolution": 2 * 9 * 256 * 256 * 204 * 768 / cpu_seconds(lambda: F.conv2d(band, kernel, padding=1)),
        "bmm": 4 * 12 * 16 * 577 * 577 * 64 / cpu_seconds(lambda: F.scaled_dot_product_attention(q, q, q)),
    }
floor = {op: flops.get(op, 0) / rates[op] for op in rates}
print(json.dumps({
    "tflop": {k: v / 1e12 for k, v in flops.items()},
    "gflop_per_cpu_s": {k: v / 1e9 for k, v in rates.items()},
    "floor_cpu_s": floor,
    "total_floor_cpu_s": sum(floor.values()),
}))
"""


def fp32_floor(threads: int) -> dict[str, object]:
    """CPU-seconds the fp32 forward needs at least: its FLOPs (counted on the meta device) at the
    throughput this CPU reaches on the network's own GEMM, convolution and attention shapes."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(REPO / "src"))
    code = f"import torch; torch.set_num_threads({threads})\n" + FLOOR
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    floor: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return floor


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", default=OFFICIAL_DEFAULT, help="pip spec or local checkout of apple/ml-depth-pro")
    parser.add_argument("--timm", default="timm", help="pip spec for timm (installed without dependencies)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sharpdepth-vs-official"))
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1, help="interleaved runs per side; the table shows medians")
    parser.add_argument(
        "--only", choices=("ours", "official"), help="re-measure one side, reuse the other's last result"
    )
    parser.add_argument(
        "--variant",
        type=Variant.parse,
        action="append",
        default=[],
        help="also measure another build of ours: LABEL=SRC[,KEY=VALUE...] (repeatable), for a per-change table",
    )
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    precisions = args.precisions.split(",")
    print(f"CPU: {cpu_flags()}; {os.cpu_count()} cores; threads {args.threads}", flush=True)
    checkpoint = write_checkpoint(args.workdir)
    print(f"checkpoint {checkpoint} ({checkpoint.stat().st_size / 2**30:.2f} GiB, fp32 official layout)", flush=True)
    from sharpdepth.weights.checkpoint import sha256_file_cached

    sha256_file_cached(checkpoint)  # a downloaded checkpoint was verified at download; not part of the timing
    python = str(official_venv(args.workdir, args.official, args.timm))
    saved = args.workdir / "results.json"
    results: dict[tuple[str, str], dict[str, float]] = {}
    if args.only and saved.is_file():
        results = {tuple(k.split("/")): v for k, v in json.loads(saved.read_text()).items()}  # type: ignore[misc]
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for run in range(args.runs):
        for precision in precisions:
            order = ("official", "ours") if run % 2 == 0 else ("ours", "official")  # interleaved, alternating
            for impl in order:
                if args.only and args.only != impl and (impl, precision) in results:
                    continue
                python_of_impl = python if impl == "official" else sys.executable
                record = measure(python_of_impl, impl, precision, checkpoint, args.workdir, args.threads, run=run)
                runs.setdefault((impl, precision), []).append(record)
    for key, records in runs.items():
        results[key] = median_record(records)
    found: dict[tuple[str, str], dict[str, float]] = {}
    for variant in args.variant:
        for precision in precisions:
            found[(variant.label, precision)] = measure(
                sys.executable, "ours", precision, checkpoint, args.workdir, args.threads, variant
            )
    saved.write_text(json.dumps({f"{k[0]}/{k[1]}": v for k, v in results.items()}, indent=1))
    print()
    print(textwrap.dedent(f"CPU: {cpu_flags()}; threads {args.threads}; 1536x1536 input; checkpoint {checkpoint.name}"))
    print(table(results, args.workdir, precisions))
    if args.runs > 1:
        print()
        print(runs_table(runs, args.workdir))
    if args.variant:
        print()
        print(variant_table(args.variant, found, results, args.workdir, precisions))
    if "fp32" in precisions:
        floor = fp32_floor(args.threads)
        official = results[("official", "fp32")]["cpu_s"]
        rates = ", ".join(f"{k} {v:.0f}" for k, v in floor["gflop_per_cpu_s"].items())  # type: ignore[attr-defined]
        tflop = ", ".join(f"{k} {v:.2f}" for k, v in floor["tflop"].items())  # type: ignore[attr-defined]
        print(
            f"\nfp32 floor: {tflop} TFLOP at this CPU's {rates} GFLOP per CPU-s = "
            f"{floor['total_floor_cpu_s']:.0f} CPU-s for the forward alone; "
            f"0.5x the official process is {0.5 * official:.0f} CPU-s"
        )


if __name__ == "__main__":
    main()
