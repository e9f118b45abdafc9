"""Depth Anything 3, ours against ByteDance Seed's official code, side by side in one run on this CPU.

    python benchmarks/da3_vs_official.py [--official DIR] [--workdir DIR] [--cases mono-large,small-1,...]
                                         [--runs N] [--process-res 504] [--threads 2]
                                         [--variant LABEL[,head=N][,KEY=VALUE...]]

Cases (the issue's: mono-large at process_res 504, the any-view small model at 504 with 1, 4
and 16 views; `mono-vits` is an extra, quick one for trying the script):

- `mono-large`: DA3MONO-LARGE on the mono_large fixture's 480x640 picture;
- `small-1`, `small-4`, `small-16`: DA3-SMALL on 1, 4 and 16 frames of the TUM fr2_desk
  sequence (640x480, evenly spaced) seen together as one scene;
- `mono-vits`: the mono_vits fixture's ViT-S mono network, built by the official builder
  from a yaml written beside its weights.

Both implementations load the same checkpoint, in a fresh process each, the way a user would:
the parity fixture's stand-in weights (`fixture_weights.py`, the official key layout with the
hub's `model.` prefix) written once as `model.safetensors` + `config.json` under `--workdir`.
The official side is `DepthAnything3.from_pretrained(folder).inference(paths, process_res=...)`;
ours is `sharpdepth.load(NAME, weights=..., input_size=...)` then `predict` (mono) or
`predict_views` (any-view) at `output_size="network"`, DA3's own output grid. The official
`DepthAnything3.forward` forces fp16 autocast on a CPU; it is replaced by the same body without
the autocast (as the parity fixtures were made), so both sides compute in float32. Reported per
process (medians over `--runs`, official and ours interleaved):

- CPU-seconds of the whole process (user + system, all threads: import, build, load,
  pre-processing, forward, post-processing) and of the network forward alone (a forward
  pre-hook and hook on the network module);
- peak RSS of the whole process (`VmHWM`) and of the forward alone (`VmHWM` reset through
  `/proc/self/clear_refs` in the pre-hook: weights resident plus activations);
- how far our outputs (depth, confidence, intrinsics, world-to-camera, sky) are from the
  official ones (max |ours - official| / max |official|; sky: differing pixels).

`--variant` measures ours once more per case with one switch changed, for a per-change table:
`head=N` decodes N views together in the any-view head (`HEAD_VIEWS_AT_ONCE`), `KEY=VALUE` sets
the environment (`SHARPDEPTH_MALLOC=default` keeps glibc's own malloc policy).

The official code (`--official`: a checkout of ByteDance-Seed/Depth-Anything-3; default: that
repository at the fixtures' commit, fetched with git into `--workdir`) runs in a throwaway venv
under `--workdir` that borrows this interpreter's packages (the same torch build) through a
`.pth` file. Its pure-Python needs (einops, addict, omegaconf, imageio) are installed there from
the package index; `torchvision` is a stand-in with the transforms its input processor uses
(the real wheel drags a CUDA torch in), and the export-only imports (moviepy, pycolmap, evo,
matplotlib) are stand-ins that refuse use. Not part of the test run: minutes of CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

from depth_pro_vs_official import TORCHVISION_SHIM, _run, cpu_flags, shared_root

WANTED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OFFICIAL_REPO = "https://github.com/ByteDance-Seed/Depth-Anything-3"
OFFICIAL_COMMIT = "2c21ea849ceec7b469a3e62ea0c0e270afc3281a"
OFFICIAL_NEEDS = ("einops", "addict", "omegaconf", "antlr4-python3-runtime==4.9.3", "imageio")
"""What the official network, pre-processing and API import and this venv does not already hold."""
EXPORT_ONLY = ("moviepy", "pycolmap", "evo", "matplotlib")
"""Imported by the official API module for file exports and pose alignment only."""
TARGETS = {"cpu_s": 1.0, "peak_mib": 0.7}  # issue 19: ours / official, whole process
DEFAULT_CASES = ("mono-large", "small-1", "small-4", "small-16")


@dataclass(frozen=True)
class Case:
    """One measurement: a model on some pictures at one process_res."""

    name: str
    preset: str
    """Our model name."""
    official_name: str
    """The official config name (`MODEL_REGISTRY` key, the `model_name` in config.json)."""
    fixture: str
    """The fixture folder under depth_anything_3/ whose stand-in weights both sides load."""
    views: int
    """0: one picture through the mono model (`predict`); else that many views as one scene."""

    @property
    def any_view(self) -> bool:
        return self.views > 0


CASES = {
    c.name: c
    for c in (
        Case("mono-large", "depth-anything-3-mono-large", "da3mono-large", "mono_large", 0),
        Case("small-1", "depth-anything-3-small", "da3-small", "anyview_small", 1),
        Case("small-4", "depth-anything-3-small", "da3-small", "anyview_small", 4),
        Case("small-16", "depth-anything-3-small", "da3-small", "anyview_small", 16),
        Case("mono-vits", "depth-anything-3-mono-vits", "da3mono-vits", "mono_vits", 0),
    )
}

STANDIN = '''"""Stand-in for {name}: the official DA3 code imports it for file exports only, which the
benchmark does not run. Written by sharpdepth's benchmarks/da3_vs_official.py; every name
imports as a placeholder that refuses to be used."""
import importlib.abc
import importlib.machinery
import sys
import types


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

CENTER_CROP = '''

class CenterCrop:
    """torchvision's CenterCrop on a (..., H, W) tensor: offsets round((H - h) / 2), round((W - w) / 2)."""

    def __init__(self, size):
        self.size = (size, size) if isinstance(size, int) else tuple(size)

    def __call__(self, x):
        h, w = self.size
        top, left = int(round((x.shape[-2] - h) / 2.0)), int(round((x.shape[-1] - w) / 2.0))
        return x[..., top : top + h, left : left + w]


transforms.CenterCrop = CenterCrop
'''

CHILD = r"""
import json, resource, sys, time
wall0 = time.perf_counter()

def status():
    out = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) / 1024
    return out

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

def system_cpu():
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime

impl, case_json, out_npz, threads = sys.argv[1:5]
case = json.loads(case_json)
import numpy as np
import torch
torch.set_num_threads(int(threads))
probe = {"calls": 0}

def before_forward(module, args):
    probe["calls"] += 1
    probe["peak_before_forward"] = status()["VmHWM"]  # import, build, load, pre-processing
    open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS: the next peak is the forward's
    probe["rss_before"] = status()["VmRSS"]
    probe["cpu0"], probe["sys0"], probe["wall0"] = cpu(), system_cpu(), time.perf_counter()

def after_forward(module, args, output):
    probe["forward_cpu_s"] = cpu() - probe["cpu0"]
    probe["forward_system_cpu_s"] = system_cpu() - probe["sys0"]
    probe["forward_wall_s"] = time.perf_counter() - probe["wall0"]
    probe["peak_forward_mib"] = status()["VmHWM"]

arrays = {}
if impl == "official":
    from depth_anything_3.registry import MODEL_REGISTRY
    if case["yaml"]:
        MODEL_REGISTRY[case["official_name"]] = case["yaml"]
    from depth_anything_3.api import DepthAnything3

    def forward_without_autocast(self, image, extrinsics=None, intrinsics=None, export_feat_layers=None,
                                 infer_gs=False, use_ray_pose=False, ref_view_strategy="saddle_balanced"):
        # DepthAnything3.forward's body without its torch.autocast (fp16 on a CPU)
        with torch.inference_mode(), torch.no_grad():
            return self.model(image, extrinsics, intrinsics, export_feat_layers, infer_gs, use_ray_pose,
                              ref_view_strategy)

    DepthAnything3.forward = forward_without_autocast
    cpu_import = cpu()
    api = DepthAnything3.from_pretrained(case["weights_dir"])
    api.eval()
    net = api.model
    cpu_loaded, peak_load = cpu(), status()["VmHWM"]
    net.register_forward_pre_hook(before_forward)
    net.register_forward_hook(after_forward)
    torch.manual_seed(0)  # the mono sky fill samples torch's global generator above 100k pixels
    pred = api.inference(case["images"], process_res=case["process_res"])
    arrays["depth"] = pred.depth
    if case["any_view"]:
        arrays.update(confidence=pred.conf, intrinsics=pred.intrinsics, world_to_cam=pred.extrinsics)
    else:
        arrays["sky"] = pred.sky
else:
    import sharpdepth
    if case["head_views"]:  # a --variant: another chunk size of our head, for comparison
        from sharpdepth.models.depth_anything_3 import network as da3_network
        da3_network.HEAD_VIEWS_AT_ONCE = case["head_views"]
    cpu_import = cpu()
    model = sharpdepth.load(case["preset"], weights=case["weights"], input_size=case["process_res"])
    net = model.net
    cpu_loaded, peak_load = cpu(), status()["VmHWM"]
    net.register_forward_pre_hook(before_forward)
    net.register_forward_hook(after_forward)
    if case["any_view"]:
        scene = model.predict_views(case["images"], output_size="network")
        arrays["depth"] = np.stack([v.prediction for v in scene.views])
        arrays["confidence"] = np.stack([v.confidence for v in scene.views])
        arrays["intrinsics"] = np.asarray(scene.intrinsics)
        arrays["world_to_cam"] = np.linalg.inv(np.asarray(scene.cam_to_world, dtype=np.float64))[:, :3]
    else:
        result = model.predict(case["images"][0], output_size="network")
        arrays["depth"], arrays["sky"] = result.prediction[None], result.sky[None]
assert probe["calls"] == 1, f"the network ran {probe['calls']} times"
np.savez(out_npz, **{k: np.asarray(v) for k, v in arrays.items()})
peak = max(probe["peak_before_forward"], status()["VmHWM"])  # the reset split the process's peak in two
print(json.dumps({
    "impl": impl, "case": case["name"], "threads": torch.get_num_threads(), "torch": torch.__version__,
    "input": list(arrays["depth"].shape), "cpu_s": cpu(), "system_cpu_s": system_cpu(), "cpu_import_s": cpu_import,
    "cpu_load_s": cpu_loaded - cpu_import, "forward_cpu_s": probe["forward_cpu_s"],
    "forward_system_cpu_s": probe["forward_system_cpu_s"],
    "forward_wall_s": probe["forward_wall_s"], "wall_s": time.perf_counter() - wall0,
    "peak_load_mib": peak_load, "rss_before_forward_mib": probe["rss_before"],
    "peak_forward_mib": probe["peak_forward_mib"], "peak_mib": peak,
}))
"""


def cpu_line() -> str:
    """The CPU model with the flags that decide fp32/bf16 speed, present and absent."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return cpu_flags()
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    absent = [f for f in WANTED_FLAGS if f not in flags]
    return cpu_flags() + (f" (no {', '.join(absent)})" if absent else "")


def official_source(given: Path | None, workdir: Path) -> Path:
    """A checkout of the official repository: `given`, else the fixtures' commit fetched with git."""
    root = given if given is not None else workdir / "official-src"
    if given is None and not (root / "src" / "depth_anything_3" / "api.py").is_file():
        root.mkdir(parents=True, exist_ok=True)
        _run(["git", "-C", str(root), "init", "-q"])
        _run(["git", "-C", str(root), "fetch", "-q", "--depth", "1", OFFICIAL_REPO, OFFICIAL_COMMIT])
        _run(["git", "-C", str(root), "checkout", "-q", "FETCH_HEAD", "--", "src"])
    if not (root / "src" / "depth_anything_3" / "api.py").is_file():
        raise SystemExit(f"{root}: not a Depth-Anything-3 checkout (no src/depth_anything_3/api.py)")
    return root.resolve()


def official_venv(workdir: Path, official: Path) -> Path:
    """A throwaway venv that runs the official code, borrowing this interpreter's torch."""
    root = workdir / "official-venv"
    python = root / "bin" / "python"
    marker = root / "sharpdepth-ready.json"
    wanted = {"official": str(official), "needs": list(OFFICIAL_NEEDS), "stand-ins": list(EXPORT_ONLY)}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return python
    venv.create(root, clear=True, with_pip=True)
    site = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    import sysconfig

    (site / "da3_official_src.pth").write_text(str(official / "src") + "\n")  # namespace packages: no install
    (site / "zz_sharpdepth_borrow.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for name in ("torchvision", *EXPORT_ONLY):
        (site / name).mkdir()
    (site / "torchvision" / "__init__.py").write_text(TORCHVISION_SHIM + CENTER_CROP)
    for name in EXPORT_ONLY:
        (site / name / "__init__.py").write_text(STANDIN.format(name=name))
    # --no-deps: everything else they need is borrowed (numpy, torch, PIL, PyYAML)
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", *OFFICIAL_NEEDS])
    _run([str(python), "-c", "import depth_anything_3.api as a; print('official', a.__file__)"])
    marker.write_text(json.dumps(wanted))
    return python


def fixture_dir(case: Case) -> Path:
    return shared_root() / "fixtures" / "depth_anything_3" / case.fixture


def write_weights(case: Case, workdir: Path) -> Path:
    """The fixture's stand-in weights as the hub ships them (`model.safetensors`, keys prefixed
    `model.`, and `config.json` naming the official config), once per fixture."""
    folder = workdir / "weights" / case.official_name
    dest = folder / "model.safetensors"
    if dest.is_file():
        return folder
    import numpy as np
    from safetensors.numpy import save_file

    if str(shared_root() / "fixtures") not in sys.path:
        sys.path.insert(0, str(shared_root() / "fixtures"))
    from fixture_weights import fixture_state_dict

    folder.mkdir(parents=True, exist_ok=True)
    state = {"model." + k: np.ascontiguousarray(v) for k, v in fixture_state_dict(fixture_dir(case)).items()}
    (folder / "config.json").write_text(json.dumps({"model_name": case.official_name}))
    if case.name == "mono-vits":
        (folder / "config.yaml").write_text(MONO_VITS_YAML)
    part = dest.with_suffix(".part")
    save_file(state, str(part), {"format": "pt"})
    part.replace(dest)
    return folder


MONO_VITS_YAML = """\
__object__: {path: depth_anything_3.model.da3, name: DepthAnything3Net, args: as_params}
net:
  __object__: {path: depth_anything_3.model.dinov2.dinov2, name: DinoV2, args: as_params}
  name: vits
  out_layers: [1, 5, 8, 11]
  alt_start: -1
  qknorm_start: -1
  rope_start: -1
  cat_token: false
head:
  __object__: {path: depth_anything_3.model.dpt, name: DPT, args: as_params}
  dim_in: 384
  output_dim: 1
  features: 64
  out_channels: [48, 96, 192, 384]
"""
"""The mono_vits fixture's network (da3mono-large.yaml on ViT-S; fixtures' README)."""


def pictures(case: Case) -> list[str]:
    """Mono: the fixture's picture; any-view: `views` TUM fr2_desk frames, evenly spaced."""
    if not case.any_view:
        return [str(fixture_dir(case) / "image.png")]
    frames = sorted((shared_root() / "data" / "rgbd" / "sequences" / "tum_fr2_desk" / "rgb").glob("*.png"))
    if len(frames) < case.views:
        raise SystemExit(f"{case.name}: {len(frames)} TUM frames, fewer than {case.views} views")
    step = len(frames) // case.views
    return [str(frames[i * step]) for i in range(case.views)]


def measure(
    python: str,
    impl: str,
    case: Case,
    weights: Path,
    process_res: int,
    workdir: Path,
    threads: int,
    variant: Variant | None = None,
) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1")
    if impl == "ours":
        env["PYTHONPATH"] = str(REPO / "src")
        env.update(variant.env if variant is not None else {})
    else:
        env.pop("PYTHONPATH", None)
    yaml = weights / "config.yaml"
    spec = {
        "name": case.name,
        "preset": case.preset,
        "official_name": case.official_name,
        "any_view": case.any_view,
        "images": pictures(case),
        "process_res": process_res,
        "weights_dir": str(weights),
        "weights": str(weights / "model.safetensors"),
        "yaml": str(yaml) if yaml.is_file() else None,
        "head_views": variant.head_views if variant is not None else None,
    }
    tag = impl if variant is None else variant.tag
    out = workdir / f"out_{case.name}_{tag}.npz"
    cmd = [python, "-c", CHILD, impl, json.dumps(spec), str(out), str(threads)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{impl} {case.name} failed:\n{proc.stderr[-3000:]}")
    record: dict = json.loads(proc.stdout.strip().splitlines()[-1])
    print(tag, json.dumps(record), flush=True)
    return record


@dataclass(frozen=True)
class Variant:
    """Ours measured once more with one switch changed: the head's chunk size or the environment."""

    label: str
    head_views: int | None
    env: dict[str, str]

    @property
    def tag(self) -> str:
        return f"variant-{self.label}"

    @classmethod
    def parse(cls, text: str) -> Variant:
        """LABEL[,head=N][,KEY=VALUE...], e.g. `head8,head=8` or `glibc-malloc,SHARPDEPTH_MALLOC=default`."""
        label, *pairs = text.split(",")
        if not label or "=" in label or any("=" not in p for p in pairs):
            raise argparse.ArgumentTypeError(f"--variant wants LABEL[,head=N][,KEY=VALUE...], got {text!r}")
        env = dict(p.split("=", 1) for p in pairs)
        head = env.pop("head", None)
        if head is not None and not head.isdigit():
            raise argparse.ArgumentTypeError(f"--variant {text!r}: head wants a whole number of views")
        return cls(label, int(head) if head else None, env)


def agreement(workdir: Path, case: Case, ours_tag: str = "ours") -> str:
    """Our outputs against the official ones: max |ours - official| / max |official| per field."""
    import numpy as np

    ours = np.load(workdir / f"out_{case.name}_{ours_tag}.npz")
    official = np.load(workdir / f"out_{case.name}_official.npz")
    parts = []
    for key in official.files:
        a, b = ours[key], official[key]
        if a.shape != b.shape:
            parts.append(f"{key}: shapes {a.shape} vs {b.shape}")
        elif b.dtype == bool:
            parts.append(f"{key} {int((a != b).sum())} px differ")
        else:
            a, b = a.astype(np.float64), b.astype(np.float64)
            parts.append(f"{key} {np.abs(a - b).max() / max(np.abs(b).max(), 1e-30):.1e}")
    return ", ".join(parts)


def median_record(records: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in records) for k, v in records[0].items() if isinstance(v, float)}


def _target(what: str, ratio: float) -> str:
    bound = TARGETS[what]
    return f" (target ≤ {bound}: {'met' if ratio <= bound else 'NOT met'})"


def table(results: dict[tuple[str, str], dict], cases: list[Case], workdir: Path) -> str:
    rows = [
        "| case | impl | CPU-s (process) | CPU-s (forward) | peak RSS MiB (process) | peak RSS MiB (forward) "
        "| ours vs official |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for case in cases:
        o, s = results[(case.name, "official")], results[(case.name, "ours")]
        label = f"{case.name} ({f'{case.views} view(s)' if case.any_view else 'mono'})"
        for impl, r in (("official", o), ("ours", s)):
            rows.append(
                f"| {label} | {impl} | {r['cpu_s']:.1f} | {r['forward_cpu_s']:.1f} | {r['peak_mib']:.0f} "
                f"| {r['peak_forward_mib']:.0f} | |"
            )
        cpu, peak = s["cpu_s"] / o["cpu_s"], s["peak_mib"] / o["peak_mib"]
        forward_cpu, forward_peak = (
            s["forward_cpu_s"] / o["forward_cpu_s"],
            s["peak_forward_mib"] / o["peak_forward_mib"],
        )
        rows.append(
            f"| {label} | **ours / official** | **{cpu:.2f}×**{_target('cpu_s', cpu)} | {forward_cpu:.2f}× "
            f"| **{peak:.2f}×**{_target('peak_mib', peak)} | {forward_peak:.2f}× | {agreement(workdir, case)} |"
        )
    return "\n".join(rows)


def variant_table(
    results: dict[tuple[str, str], dict], cases: list[Case], variants: list[Variant], workdir: Path
) -> str:
    """Ours with one switch changed (`--variant`) beside this checkout, against the official process."""
    rows = [
        "| case | ours | CPU-s (process) | CPU-s (forward) | system CPU-s (forward) | peak RSS MiB (process) "
        "| CPU-s / official | peak / official | ours vs official |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for case in cases:
        o = results[(case.name, "official")]
        for label, tag in [("this checkout", "ours")] + [(v.label, v.tag) for v in variants]:
            if (case.name, tag) not in results:
                continue
            r = results[(case.name, tag)]
            rows.append(
                f"| {case.name} | {label} | {r['cpu_s']:.1f} | {r['forward_cpu_s']:.1f} "
                f"| {r['forward_system_cpu_s']:.1f} | {r['peak_mib']:.0f} "
                f"| {r['cpu_s'] / o['cpu_s']:.2f}× | {r['peak_mib'] / o['peak_mib']:.2f}× "
                f"| {agreement(workdir, case, tag)} |"
            )
    return "\n".join(rows)


def runs_table(runs: dict[tuple[str, str], list[dict]]) -> str:
    """Every run's whole-process and forward CPU-s and peak (the spread behind the medians)."""
    rows = ["| case | impl | CPU-s per run | forward CPU-s per run | peak MiB per run |", "|---|---|---|---|---|"]
    for (case, impl), records in runs.items():
        cells = [", ".join(f"{r[key]:{fmt}}" for r in records) for key, fmt in
                 (("cpu_s", ".1f"), ("forward_cpu_s", ".1f"), ("peak_mib", ".0f"))]  # fmt: skip
        rows.append(f"| {case} | {impl} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=Path, help="checkout of ByteDance-Seed/Depth-Anything-3 (default: fetch)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sharpdepth-da3-vs-official"))
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES), help=f"comma list of {', '.join(CASES)}")
    parser.add_argument("--runs", type=int, default=1, help="measure official and ours this many times, interleaved")
    parser.add_argument("--process-res", type=int, default=504, help="DA3's process_res (our input_size)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--variant",
        type=Variant.parse,
        action="append",
        default=[],
        help="also measure ours with one switch changed: LABEL[,head=N][,KEY=VALUE...] (repeatable); head=N "
        "decodes N views together (HEAD_VIEWS_AT_ONCE), KEY=VALUE sets the environment "
        "(e.g. SHARPDEPTH_MALLOC=default)",
    )
    args = parser.parse_args(argv)
    unknown = [c for c in args.cases.split(",") if c not in CASES]
    if unknown or args.runs < 1:
        parser.error(f"unknown case(s) {unknown}; known: {', '.join(CASES)}" if unknown else "--runs must be >= 1")
    cases = [CASES[c] for c in args.cases.split(",")]
    args.workdir.mkdir(parents=True, exist_ok=True)
    flags = f"CPU: {cpu_line()}; {os.cpu_count()} cores; threads {args.threads}; process_res {args.process_res}"
    print(flags, flush=True)
    official = official_source(args.official, args.workdir)
    python = str(official_venv(args.workdir, official))
    weights = {case.name: write_weights(case, args.workdir) for case in cases}
    from sharpdepth.weights.checkpoint import sha256_file_cached

    for folder in set(weights.values()):  # ours verifies a checkpoint once, cached; not part of the timing
        sha256_file_cached(folder / "model.safetensors")
    runs: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.runs):
        for case in cases:
            for impl in ("official", "ours"):
                exe = python if impl == "official" else sys.executable
                record = measure(exe, impl, case, weights[case.name], args.process_res, args.workdir, args.threads)
                runs.setdefault((case.name, impl), []).append(record)
            for variant in args.variant:
                if variant.head_views is not None and not case.any_view:
                    continue  # one view: nothing to chunk
                record = measure(
                    sys.executable, "ours", case, weights[case.name], args.process_res, args.workdir, args.threads,
                    variant,
                )  # fmt: skip
                runs.setdefault((case.name, variant.tag), []).append(record)
    results = {key: median_record(records) for key, records in runs.items()}
    saved = {"/".join(k): {"runs": runs[k], "median": results[k]} for k in runs}
    (args.workdir / "results.json").write_text(json.dumps(saved, indent=1))
    print(f"\n{flags}; official commit {OFFICIAL_COMMIT[:7]}; medians of {args.runs} run(s)")
    print(table(results, cases, args.workdir))
    if args.variant:
        print()
        print(variant_table(results, cases, args.variant, args.workdir))
    if args.runs > 1:
        print()
        print(runs_table(runs))


if __name__ == "__main__":
    main()
