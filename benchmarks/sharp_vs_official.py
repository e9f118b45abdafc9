"""SHARP prediction, ours against Apple's official `sharp predict` path, side by side in one run on this CPU.

    python benchmarks/sharp_vs_official.py --official /tmp/ml-sharp [--config tiny|full] [--runs N]
        [--precisions fp32,bf16] [--workdir DIR]

Both sides load the same checkpoint — the parity fixture's stand-in weights (`--config full`: the
released configuration, 702 M parameters; `tiny`: the fixture's tiny one, seconds) written once as
an official `.pt` (fp32, every official key, which we load strictly) — in a fresh process each, the
way a user would, and predict the Gaussians of the fixture's `image.png` at f_px = 600:

- official: `torch.load(weights_only=True)`, `create_predictor(PredictorParams())`,
  `load_state_dict`, `eval()`, then `sharp.cli.predict.predict_image` (resize, network,
  unprojection with float64 SVD) — what `sharp predict` runs, minus the PLY;
- ours: `sharpdepth.load(NAME, weights=PATH, precision=P)` then `predict_gaussians(image, 600)`.

Reported per process: CPU-seconds (user + system, all threads) of the whole process (import,
build, load, predict) and of the prediction alone; peak RSS (`VmHWM`) of the whole process and of
the prediction alone (reset through `/proc/self/clear_refs` just before it). Outputs: every
Gaussian of every field, ours against the official run's (max |a-b| / max |b| per field; rotations
compared as covariances), and the official run against the stored fixture (its subsample grid),
which shows the official side ran the fixture's configuration. Runs interleave the two sides
(`--runs N`, alternating order); the table shows medians and every run.

Official bf16 has no path (`sharp predict` runs float32), so ours in bf16 is compared with the
official float32 — where the CPU has native bf16 (avx512_bf16 or amx_bf16; the table prints the
flags). The official code runs in a throwaway venv under `--workdir` that borrows this interpreter's
packages (torch, scipy, plyfile, click) through a `.pth` file, with timm installed without its
dependencies, a stand-in `torchvision` (timm only imports it) and refusing stand-ins for the
rendering and I/O packages the official modules import (`gsplat`, `imageio`, `pillow_heif`,
`matplotlib`; none is used by prediction). Not part of the test run: the full configuration takes
many minutes and ~9 GB per official process on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import venv
from pathlib import Path

from depth_pro_vs_official import TORCHVISION_SHIM, _run, cpu_flags, shared_root

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OFFICIAL_COMMIT = "1eaa046834b81852261262b41b0919f5c1efdd2e"
OFFICIAL_DEFAULT = f"git+https://github.com/apple/ml-sharp@{OFFICIAL_COMMIT}"
TIMM_DEFAULT = "timm==1.0.20"
FOCAL_PX = 600.0
PRESETS = {"tiny": "sharp-tiny", "full": "sharp"}
TARGETS = {"cpu_s": 1.0, "peak_mib": 0.6}  # ours / official, whole process (issue 20)
FIELDS = ("means", "scales", "colors", "opacities")
FIXTURE_FIELDS = {
    "means": "mean_vectors",
    "scales": "singular_values",
    "colors": "colors",
    "opacities": "opacities",
}

STANDIN = '''
"""Refusing stand-in for {name}: the official SHARP modules import it, prediction never uses it.

Written by sharpdepth's benchmarks/sharp_vs_official.py.
"""
import importlib.abc
import importlib.machinery
import sys
import types

__version__ = "0.0-sharpdepth-standin"


class _Refused:
    def __init__(self, *args, **kwargs):
        raise RuntimeError(f"{{type(self).__name__}} is not available in the {name} stand-in")


def __getattr__(attr):
    if attr.startswith("__"):
        raise AttributeError(attr)
    return type(attr, (_Refused,), {{}})


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname.startswith("{name}.") and fullname not in sys.modules:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = __getattr__
        return module

    def exec_module(self, module):
        pass


sys.meta_path.append(_Finder())
'''

TINY_OFFICIAL = """
from sharp.models.presets.vit import VIT_CONFIG_DICT, ViTConfig
from sharp.models.presets.monodepth import MONODEPTH_ENCODER_DIMS_MAP, MONODEPTH_HOOK_IDS_MAP
VIT_CONFIG_DICT["tiny"] = ViTConfig(in_chans=3, embed_dim=64, depth=4, num_heads=4, init_values=1e-5, global_pool="")
MONODEPTH_ENCODER_DIMS_MAP["tiny"] = [16, 32, 64, 64]
MONODEPTH_HOOK_IDS_MAP["tiny"] = [1, 2, 3, 3]
params = PredictorParams()
for part in (params.monodepth, params.gaussian_decoder):
    part.patch_encoder_preset = part.image_encoder_preset = "tiny"
    part.dims_decoder = (32,) * 5
"""

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

impl, precision, config, checkpoint, image, out_npz, threads, focal = sys.argv[1:9]
focal = float(focal)
wall0 = time.perf_counter()
import torch
from PIL import Image
torch.set_num_threads(int(threads))
rgb = np.asarray(Image.open(image).convert("RGB"))
if impl == "official":
    from sharp.cli.predict import predict_image
    from sharp.models import PredictorParams, create_predictor
    cpu_import = cpu()
    params = PredictorParams()
    if config == "tiny":
        exec(TINY_OFFICIAL)
    state_dict = torch.load(checkpoint, weights_only=True)  # as `sharp predict`
    predictor = create_predictor(params)
    predictor.load_state_dict(state_dict)
    predictor.eval()
    predictor.to("cpu")
    def predict():
        g = predict_image(predictor, rgb, focal, torch.device("cpu"))
        return {
            "means": g.mean_vectors[0], "scales": g.singular_values[0], "quaternions": g.quaternions[0],
            "colors": g.colors[0], "opacities": g.opacities[0],
        }
else:
    import sharpdepth
    cpu_import = cpu()
    model = sharpdepth.load(PRESET, weights=checkpoint, precision=precision)
    def predict():
        g = model.predict_gaussians(rgb, focal_px=focal, focal_model=None)
        return {"means": g.means, "scales": g.scales, "quaternions": g.quaternions, "colors": g.colors,
                "opacities": g.opacities}
cpu_loaded, load_status = cpu(), status()
open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS: the next peak is the prediction's
before = status()
cpu0, t0 = cpu(), time.perf_counter()
gaussians = predict()
predict_wall, predict_cpu = time.perf_counter() - t0, cpu() - cpu0
after = status()
np.savez(out_npz, **{k: np.asarray(torch.as_tensor(v).float().numpy()) for k, v in gaussians.items()})
print(json.dumps({
    "impl": impl, "precision": precision, "threads": torch.get_num_threads(), "torch": torch.__version__,
    "cpu_s": cpu(), "cpu_import_s": cpu_import, "cpu_load_s": cpu_loaded - cpu_import,
    "predict_cpu_s": predict_cpu, "predict_wall_s": predict_wall, "wall_s": time.perf_counter() - wall0,
    "peak_load_mib": load_status["VmHWM"], "rss_before_predict_mib": before["VmRSS"],
    "peak_predict_mib": after["VmHWM"], "gaussians": int(len(gaussians["means"])),
}))
"""


def fixture_dir(config: str) -> Path:
    return shared_root() / "fixtures" / "sharp" / config


def native_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic (AVX-512 BF16 or AMX): where ours in bf16 is meant to run."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def official_venv(workdir: Path, official: str, timm: str) -> Path:
    """A throwaway venv with the official code and timm, borrowing this interpreter's torch.

    `official` is a local checkout (its `src` goes on the path through a `.pth` file: no build
    step, no network) or a pip spec (installed without dependencies)."""
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
    for name in ("gsplat", "imageio", "pillow_heif", "matplotlib"):
        (site / name).mkdir()
        (site / name / "__init__.py").write_text(STANDIN.format(name=name))
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", timm])
    local = Path(official)
    if local.is_dir():
        (site / "sharp_official_src.pth").write_text(str((local / "src").resolve()) + "\n")
    else:
        _run([str(python), "-m", "pip", "install", "-q", "--no-deps", official])
    _run(
        [
            str(python),
            "-c",
            "import sharp.cli.predict, timm; print('official', sharp.__file__, 'timm', timm.__version__)",
        ]
    )
    marker.write_text(json.dumps(wanted))
    return python


def write_checkpoint(workdir: Path, config: str) -> Path:
    """The fixture's stand-in weights as an official `sharp_*.pt` (fp32, every official key), once."""
    dest = workdir / f"sharp_{config}_fixture.pt"
    if dest.is_file():
        return dest
    import numpy as np
    import torch

    if str(shared_root() / "fixtures") not in sys.path:
        sys.path.insert(0, str(shared_root() / "fixtures"))
    from fixture_weights import fixture_state_dict

    state = {}
    for key, value in fixture_state_dict(fixture_dir(config)).items():
        state[key] = torch.from_numpy(np.ascontiguousarray(value))
    part = dest.with_suffix(".pt.part")
    torch.save(state, part)
    del state
    part.replace(dest)
    return dest


def measure(
    python: str, impl: str, precision: str, config: str, checkpoint: Path, args: argparse.Namespace, run: int
) -> dict[str, float]:
    out = output_path(args.workdir, impl, precision, run)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    if impl == "ours":
        env["PYTHONPATH"] = str(REPO / "src")
    code = f"TINY_OFFICIAL = {TINY_OFFICIAL!r}\nPRESET = {PRESETS[config]!r}\n" + CHILD
    image = fixture_dir(config) / "image.png"
    cmd = [
        python,
        "-c",
        code,
        impl,
        precision,
        config,
        str(checkpoint),
        str(image),
        str(out),
        str(args.threads),
        str(FOCAL_PX),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{impl} {precision} failed:\n{proc.stderr[-3000:]}")
    record: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(impl, precision, f"run {run}", json.dumps(record), flush=True)
    return record


def output_path(workdir: Path, impl: str, precision: str, run: int) -> Path:
    return workdir / f"out_{impl}_{precision}_run{run}.npz"


def median_record(records: list[dict[str, float]]) -> dict[str, float]:
    """Each numeric figure's median over the runs (the runs interleave the sides, so drift hits both)."""
    return {
        key: statistics.median(float(r[key]) for r in records)
        for key, value in records[0].items()
        if isinstance(value, int | float)
    }


def _rel(a: object, b: object) -> float:
    import numpy as np

    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(x - y).max() / np.abs(y).max())


def covariance_of(quaternions: object, scales: object) -> object:
    import torch

    from sharpdepth.models.sharp.compose import covariances

    q = torch.as_tensor(quaternions).double()
    return covariances(q / q.norm(dim=-1, keepdim=True), torch.as_tensor(scales).double()).numpy()


def compare(ours: Path, official: Path) -> dict[str, float]:
    """Max relative error per field over every Gaussian (rotations as covariances)."""
    import numpy as np

    a, b = np.load(ours), np.load(official)
    errors = {f: _rel(a[f], b[f]) for f in FIELDS}
    errors["covariances"] = _rel(
        covariance_of(a["quaternions"], a["scales"]), covariance_of(b["quaternions"], b["scales"])
    )
    return errors


def against_fixture(official: Path, config: str) -> float:
    """The official run against the stored fixture (f_px 600) on the fixture's subsample grid: max over fields."""
    import numpy as np

    folder = fixture_dir(config)
    grid = np.asarray(json.loads((folder / "expected.json").read_text())["subsample"]["gaussian_grid"])
    side = 768
    idx = np.arange(2)[:, None, None] * side * side + grid[None, :, None] * side + grid[None, None, :]
    got = np.load(official)
    worst = 0.0
    for field, name in FIXTURE_FIELDS.items():
        ref = np.load(folder / f"pipeline_fpx600_{name}.npy")
        worst = max(worst, _rel(got[field][idx].reshape(ref.shape), ref))
    return worst


def _target(what: str, ratio: float) -> str:
    bound = TARGETS[what]
    return f" (target ≤ {bound}: {'met' if ratio <= bound else 'NOT met'})"


def _peak(r: dict[str, float]) -> float:
    return max(r["peak_load_mib"], r["peak_predict_mib"])


def table(results: dict[tuple[str, str], dict[str, float]], workdir: Path, config: str, precisions: list[str]) -> str:
    official = results[("official", "fp32")]
    official_out = output_path(workdir, "official", "fp32", 0)
    rows = [
        "| impl | precision | CPU-s (process) | CPU-s (predict) | peak RSS MiB (process) | peak RSS MiB (predict) "
        "| CPU-s / official fp32 | peak / official fp32 | Gaussians vs official fp32 (max rel. error) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
        f"| official | fp32 | {official['cpu_s']:.1f} | {official['predict_cpu_s']:.1f} | {_peak(official):.0f} "
        f"| {official['peak_predict_mib']:.0f} | 1 | 1 "
        f"| vs stored fixture {against_fixture(official_out, config):.1e} |",
    ]
    for precision in precisions:
        r = results[("ours", precision)]
        errors = compare(output_path(workdir, "ours", precision, 0), official_out)
        worst = max(errors, key=lambda k: errors[k])
        detail = ", ".join(f"{k} {v:.1e}" for k, v in errors.items())
        cpu_ratio, peak_ratio = r["cpu_s"] / official["cpu_s"], _peak(r) / _peak(official)
        rows.append(
            f"| ours | {precision} | {r['cpu_s']:.1f} | {r['predict_cpu_s']:.1f} | {_peak(r):.0f} "
            f"| {r['peak_predict_mib']:.0f} | **{cpu_ratio:.2f}×**{_target('cpu_s', cpu_ratio)} "
            f"| **{peak_ratio:.2f}×**{_target('peak_mib', peak_ratio)} | max {errors[worst]:.1e} ({detail}) |"
        )
    return "\n".join(rows)


def runs_table(runs: dict[tuple[str, str], list[dict[str, float]]], workdir: Path) -> str:
    """Every run's whole-process CPU-s and peak, and how far its Gaussians are from official run 0's."""
    rows = [
        "| impl | precision | CPU-s per run | peak MiB per run | means vs official run 0 per run |",
        "|---|---|---|---|---|",
    ]
    base = output_path(workdir, "official", "fp32", 0)
    import numpy as np

    reference = np.load(base)["means"]
    for (impl, precision), records in sorted(runs.items()):
        cpu = ", ".join(f"{r['cpu_s']:.1f}" for r in records)
        peak = ", ".join(f"{_peak(r):.0f}" for r in records)
        diffs = ", ".join(
            f"{_rel(np.load(output_path(workdir, impl, precision, i))['means'], reference):.1e}"
            for i in range(len(records))
        )
        rows.append(f"| {impl} | {precision} | {cpu} | {peak} | {diffs} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", default=OFFICIAL_DEFAULT, help="local apple/ml-sharp checkout or pip spec")
    parser.add_argument("--timm", default=TIMM_DEFAULT, help="pip spec for timm (installed without dependencies)")
    parser.add_argument("--config", choices=tuple(PRESETS), default="full", help="the fixture configuration")
    parser.add_argument("--workdir", type=Path, default=None, help="default /tmp/sharpdepth-sharp-vs-official-CONFIG")
    parser.add_argument("--precisions", default=None, help="ours; default fp32,bf16 on native-bf16 CPUs, else fp32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1, help="interleaved runs per side; the table shows medians")
    parser.add_argument(
        "--only", choices=("ours", "official"), help="re-measure one side, reuse the other's last result"
    )
    args = parser.parse_args(argv)
    args.workdir = args.workdir or Path(f"/tmp/sharpdepth-sharp-vs-official-{args.config}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    precisions = (args.precisions or ("fp32,bf16" if native_bf16() else "fp32")).split(",")
    if "bf16" in precisions and not native_bf16():
        print("warning: this CPU has no native bf16 (avx512_bf16/amx_bf16): bf16 is emulated here", flush=True)
    print(f"CPU: {cpu_flags()}; {os.cpu_count()} cores; threads {args.threads}; load {os.getloadavg()}", flush=True)
    checkpoint = write_checkpoint(args.workdir, args.config)
    print(f"checkpoint {checkpoint} ({checkpoint.stat().st_size / 2**30:.2f} GiB, fp32 official layout)", flush=True)
    from sharpdepth.weights.checkpoint import sha256_file_cached

    sha256_file_cached(checkpoint)  # a downloaded checkpoint was verified at download; not part of the timing
    python = str(official_venv(args.workdir, args.official, args.timm))
    saved = args.workdir / "results.json"
    results: dict[tuple[str, str], dict[str, float]] = {}
    if args.only and saved.is_file():
        results = {tuple(k.split("/")): v for k, v in json.loads(saved.read_text()).items()}  # type: ignore[misc]
    sides = [("official", "fp32")] + [("ours", p) for p in precisions]
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for run in range(args.runs):
        for impl, precision in sides if run % 2 == 0 else sides[::-1]:  # interleaved, alternating order
            if args.only and args.only != impl and (impl, precision) in results:
                continue
            python_of_impl = python if impl == "official" else sys.executable
            record = measure(python_of_impl, impl, precision, args.config, checkpoint, args, run)
            runs.setdefault((impl, precision), []).append(record)
    for key, records in runs.items():
        results[key] = median_record(records)
    saved.write_text(json.dumps({f"{k[0]}/{k[1]}": v for k, v in results.items()}, indent=1))
    load = os.getloadavg()
    print()
    print(
        f"CPU: {cpu_flags()}; threads {args.threads}; load average after the run {load[0]:.2f}, {load[1]:.2f}, "
        f"{load[2]:.2f}; config {args.config} ({PRESETS[args.config]}), fixture image.png at f_px {FOCAL_PX:.0f}; "
        f"checkpoint {checkpoint.name}; medians of {args.runs} run(s)"
    )
    print(table(results, args.workdir, args.config, precisions))
    if args.runs > 1 and runs:
        print()
        print(runs_table(runs, args.workdir))


if __name__ == "__main__":
    main()
