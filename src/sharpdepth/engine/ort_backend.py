"""The onnxruntime backend: the network's forward pass in an `onnxruntime.InferenceSession`.

Why: on CPUs onnxruntime runs the same fp32 graph faster than eager PyTorch
(Depth Anything V2 Small at 518, 2 threads: 0.62x the time; the README has the
end-to-end table). Everything around the forward pass stays the torch path's:
the same processor pre-processes and post-processes, the same `DepthModel`
makes the same `DepthResult`, and the same writers write the same files. The
graph stands in for the network as `OnnxNetwork`, an `nn.Module` whose forward
returns what the torch network returns, so no processor knows the difference.

Where the graph comes from:

* `weights=FILE.onnx`: that graph, as given (an export of `sharpdepth export onnx`);
* otherwise it is exported on first use with the engine's export core
  (`engine.onnx_graph.export_graph`, which checks onnxruntime against PyTorch
  before keeping the file) into a cache folder beside the checkpoint
  (`.sharpdepth-onnx/`; `$SHARPDEPTH_ONNX_CACHE` overrides it, and an unwritable
  checkpoint folder falls back to `~/.cache/sharpdepth/onnx`). An entry is keyed
  by model name, checkpoint SHA-256, network input (`dyn` or HxW), opset and
  sharpdepth version, is written as a temporary folder renamed into place, and
  records the size and SHA-256 of its files: a damaged entry is exported again.

Graph shape: Depth Anything, Depth Anything 3 mono/metric (and MiDaS DPT with a ViT
backbone) get one dynamic graph — the position-embedding interpolation is traceable, and measured at
518x686 on this CPU a dynamic graph ran as fast as a static one (0.93 vs 1.00 s
median), so one export serves every aspect ratio. Networks whose graph cannot
follow the size (Depth Pro: fixed 1536x1536; MiDaS small, BEiT, Swin-V2) get one
static graph per network-input shape, exported when a shape is first needed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from torch import nn

from ..errors import OptionError, WeightsError, first_line
from ..io.atomic import clean_stale_parts
from ..registry import AnySpec
from ..version import __version__
from ..weights.checkpoint import DIGEST_SUFFIX, sha256_file_cached
from ..weights.hub import ResolvedWeights, resolve_weights
from .onnx_graph import ExportableModel, ExportError, export_graph, graph_outputs, onnx_support, static_only_reason
from .options import is_onnx_file

if TYPE_CHECKING:
    from ..family import Processor

OPSET = 17
CACHE_ENV = "SHARPDEPTH_ONNX_CACHE"
CACHE_FOLDER = ".sharpdepth-onnx"
GRAPH_FILE = "model.onnx"
MANIFEST_FILE = "manifest.json"

log = logging.getLogger("sharpdepth")


class NodeArg(Protocol):
    """An input or output of a graph, as onnxruntime describes it (dims: int, or a name where free)."""

    @property
    def name(self) -> str: ...

    @property
    def shape(self) -> Sequence[int | str | None]: ...


class Session(Protocol):
    """The part of `onnxruntime.InferenceSession` the backend uses."""

    def get_inputs(self) -> Sequence[NodeArg]: ...

    def get_outputs(self) -> Sequence[NodeArg]: ...

    def run(self, output_names: list[str] | None, input_feed: dict[str, np.ndarray]) -> list[np.ndarray]: ...


def import_onnxruntime() -> ModuleType:
    try:
        import onnxruntime
    except ImportError:
        raise OptionError('--backend onnxruntime needs onnxruntime: pip install "sharpdepth[onnx]"') from None
    return onnxruntime


def check_model(spec: AnySpec, dtype: torch.dtype) -> None:
    """Refuse, before any work, what the backend cannot run: other families, other precisions."""
    try:
        onnx_support(spec)
    except ExportError as exc:
        raise OptionError(f"{spec.name} cannot run on onnxruntime ({str(exc).removeprefix(spec.name + ': ')}); "
                          "use --backend torch") from None  # fmt: skip
    if dtype != torch.float32:
        raise OptionError("--backend onnxruntime runs the fp32 graph; use --precision fp32 (bf16, fp16: torch)")


def providers_for(device: torch.device, ort: ModuleType) -> list[str | tuple[str, dict[str, int]]]:
    """Execution providers for the device: CPU, or CUDA where onnxruntime has it (never silently CPU)."""
    if device.type == "cpu":
        return ["CPUExecutionProvider"]
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise OptionError(
                "--device cuda with --backend onnxruntime needs onnxruntime-gpu (this onnxruntime runs on the CPU "
                "only); use --device cpu or --backend torch"
            )
        return [("CUDAExecutionProvider", {"device_id": device.index or 0}), "CPUExecutionProvider"]
    raise OptionError(f"--backend onnxruntime runs on cpu or cuda, not {device.type}")


@dataclass(frozen=True)
class SessionFactory:
    """Opens graphs with the chosen providers and thread count."""

    ort: ModuleType
    providers: list[str | tuple[str, dict[str, int]]]
    threads: int

    def open(self, path: Path) -> Session:
        """An InferenceSession, or ExportError (one line) for a file onnxruntime cannot load."""
        options = self.ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        try:
            session: Session = self.ort.InferenceSession(str(path), options, providers=self.providers)
            return session
        except Exception as exc:  # onnxruntime's own error types (InvalidProtobuf, NoSuchFile, ...)
            first = first_line(exc)
            raise ExportError(f"{path}: onnxruntime cannot load this graph ({first})") from None


def _input_hw(session: Session) -> tuple[int, int] | None:
    """The (h, w) a graph takes, or None where both are free (a dynamic graph)."""
    shape = session.get_inputs()[0].shape
    h, w = shape[-2], shape[-1]
    return (h, w) if isinstance(h, int) and isinstance(w, int) else None


def _batch_free(session: Session) -> bool:
    return not isinstance(session.get_inputs()[0].shape[0], int)


class GraphSource:
    """Gives the session that runs a network input of a given (h, w)."""

    def session_for(self, hw: tuple[int, int]) -> Session:
        raise NotImplementedError


class FileGraph(GraphSource):
    """A user's .onnx file: one session, which must accept the image's network input."""

    def __init__(self, path: Path, session: Session) -> None:
        self.path = path
        self.session = session
        self.hw = _input_hw(session)

    def session_for(self, hw: tuple[int, int]) -> Session:
        if self.hw is not None and self.hw != hw:
            raise OptionError(
                f"{self.path.name} takes {self.hw[0]}x{self.hw[1]} network inputs but this image needs "
                f"{hw[0]}x{hw[1]}; export it with --dynamic (or omit the .onnx file and let sharpdepth export)"
            )
        return self.session


@dataclass(frozen=True)
class GraphKey:
    """What decides a cached graph's numbers; its folder name says all of it."""

    model: str
    checkpoint_sha256: str
    input_hw: tuple[int, int] | None
    """None: a dynamic graph."""
    opset: int
    version: str

    @property
    def name(self) -> str:
        size = "dyn" if self.input_hw is None else f"{self.input_hw[0]}x{self.input_hw[1]}"
        return f"{self.model}-{self.checkpoint_sha256[:16]}-{size}-opset{self.opset}-v{self.version}"

    def record(self) -> dict[str, object]:
        return {
            "model": self.model,
            "checkpoint_sha256": self.checkpoint_sha256,
            "input_hw": None if self.input_hw is None else list(self.input_hw),
            "opset": self.opset,
            "sharpdepth_version": self.version,
        }


def cache_dir(checkpoint: Path) -> Path:
    """Where graphs of this checkpoint are cached: $SHARPDEPTH_ONNX_CACHE, beside it, or the user cache."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    beside = checkpoint.resolve().parent / CACHE_FOLDER
    try:
        beside.mkdir(exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=beside, prefix=".probe.")
        probe.close()
        return beside
    except OSError:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        return base / "sharpdepth" / "onnx"


def _entry_files(folder: Path) -> list[Path]:
    skip = (MANIFEST_FILE,)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name not in skip and DIGEST_SUFFIX not in p.name)


def damage(folder: Path, key: GraphKey) -> str | None:
    """Why a cache entry cannot be trusted (missing, other key, a file changed), or None if it is intact."""
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "no readable manifest"
    if not isinstance(manifest, dict) or manifest.get("key") != key.record():
        return "its manifest is for another graph"
    files = manifest.get("files")
    if not isinstance(files, dict) or GRAPH_FILE not in files:
        return "its manifest lists no graph"
    present = {p.name for p in _entry_files(folder)}
    if present != set(files):
        return f"files differ from its manifest ({', '.join(sorted(present ^ set(files)))})"
    for name, want in files.items():
        path = folder / name
        if not isinstance(want, dict) or path.stat().st_size != want.get("size"):
            return f"{name} has the wrong size"
        if sha256_file_cached(path) != want.get("sha256"):
            return f"{name} has the wrong SHA-256"
    return None


def _write_manifest(folder: Path, key: GraphKey, checks: list[tuple[tuple[int, ...], float]]) -> None:
    files = {p.name: {"size": p.stat().st_size, "sha256": sha256_file_cached(p)} for p in _entry_files(folder)}
    record = {"key": key.record(), "files": files, "checks": [[list(s), e] for s, e in checks]}
    (folder / MANIFEST_FILE).write_text(json.dumps(record, indent=1), encoding="utf-8")


Exporter = Callable[[Path, tuple[int, int] | None], list[tuple[tuple[int, ...], float]]]
"""(graph file to write, static (h, w) or None for dynamic) -> the export's parity checks."""


class CachedGraphs(GraphSource):
    """Graphs exported on first use into the cache and loaded from it afterwards, one per key."""

    def __init__(
        self, root: Path, key: Callable[[tuple[int, int] | None], GraphKey], export: Exporter, factory: SessionFactory
    ) -> None:
        self.root = root
        self.key = key
        self.export = export
        self.factory = factory
        self.sessions: dict[tuple[int, int] | None, Session] = {}
        self.dynamic = False

    def open(self, hw: tuple[int, int] | None) -> Session:
        """The session for one key: from an intact cache entry, else exported (again) now."""
        if hw in self.sessions:
            return self.sessions[hw]
        key = self.key(hw)
        folder = self.root / key.name
        reason = damage(folder, key) if folder.exists() else "not cached"
        session = None
        if reason is None:
            try:
                session = self.factory.open(folder / GRAPH_FILE)
            except ExportError as exc:
                reason = str(exc)
        if session is None:
            if reason != "not cached":
                log.warning("cached ONNX graph %s is damaged (%s); exporting it again", folder, reason)
            self._export(folder, key, hw)
            session = self.factory.open(folder / GRAPH_FILE)
        self.sessions[hw] = session
        return session

    def _export(self, folder: Path, key: GraphKey, hw: tuple[int, int] | None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        clean_stale_parts(self.root)  # entry folders of killed exports
        tmp = Path(tempfile.mkdtemp(prefix=f".{key.name}.{os.getpid()}.", suffix=".part", dir=self.root))
        try:
            checks = self.export(tmp / GRAPH_FILE, hw)
            _write_manifest(tmp, key, checks)
            if folder.exists() and damage(folder, key) is not None:  # an intact one is another process's export
                shutil.rmtree(folder)
            try:
                os.replace(tmp, folder)
            except OSError:  # another process renamed its (equal) export into place first
                if damage(folder, key) is not None:
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def session_for(self, hw: tuple[int, int]) -> Session:
        return self.open(None if self.dynamic else hw)


class OnnxNetwork(nn.Module):
    """The exported graph behind the torch network's forward signature.

    It returns the graph's outputs in order on the model's device: (the (N, h, w) map, and the
    (N,) FOV where the graph has one), which the processors read through the one decoder
    (`family.decode_output`) exactly as they read the torch network's output, so forward and
    post-processing run unchanged; a family whose network answers otherwise declares
    `OnnxExport.as_network`, which wraps this module (`network_for`). Its one (empty)
    parameter is CPU fp32: processors move the batch to their network's first
    parameter, which puts it where onnxruntime reads it.
    """

    def __init__(self, graphs: GraphSource, device: torch.device) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.empty(0), requires_grad=False)
        self.graphs = graphs
        self.out_device = device

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        hw = (int(x.shape[-2]), int(x.shape[-1]))
        session = self.graphs.session_for(hw)
        batch = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        parts = [batch] if _batch_free(session) else [batch[i : i + 1] for i in range(len(batch))]
        name = session.get_inputs()[0].name
        runs = [session.run(None, {name: part}) for part in parts]
        return tuple(torch.from_numpy(np.concatenate([run[i] for run in runs])).to(self.out_device)
                     for i in range(len(runs[0])))  # fmt: skip


def network_for(spec: AnySpec, graph: OnnxNetwork) -> nn.Module:
    """The running graph as the processor calls the network: the family's `as_network` wrapper, if any."""
    wrap = onnx_support(spec).as_network
    return wrap(graph) if wrap is not None else graph


def check_file_graph(path: Path, session: Session, spec: AnySpec) -> None:
    """A user's graph must look like this model's export: one NCHW input, as many outputs as the network has."""
    want = len(graph_outputs(spec))
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or len(outputs) != want:
        raise OptionError(
            f"{path.name} does not look like an export of {spec.name} ({len(inputs)} input(s) of rank "
            f"{len(inputs[0].shape) if inputs else 0}, {len(outputs)} output(s); expected 1 NCHW input, {want} "
            "output(s)); make it with `sharpdepth export onnx`"
        )


@dataclass(frozen=True)
class OnnxGraph:
    """What `load` needs to make the onnxruntime-backed model: the graph as a network, and its origin."""

    net: nn.Module
    """The graph as the network (`network_for`)."""
    resolved: ResolvedWeights | None
    """The checkpoint the graph is exported from (None: the user's .onnx file)."""
    sha256: str
    """SHA-256 of the checkpoint, or of the user's graph file."""


def load_onnxruntime(
    spec: AnySpec,
    processor: Processor,
    weights: str | Path | None,
    device: torch.device,
    dtype: torch.dtype,
    torch_model: Callable[[Path], ExportableModel],
    download: bool = True,
) -> OnnxGraph:
    """The graph behind `sharpdepth.load(..., backend="onnxruntime")`, once device, precision and size are checked.

    `torch_model(checkpoint)` loads the same model on torch (fp32, CPU); it is called only when
    a graph has to be exported, and is given by the caller (the loader), so this backend never
    imports the loader back.
    """
    check_model(spec, dtype)
    ort = import_onnxruntime()
    factory = SessionFactory(ort, providers_for(device, ort), torch.get_num_threads())
    if is_onnx_file(weights):
        assert weights is not None
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"--weights {path}: no such file")
        session = factory.open(path)
        check_file_graph(path, session, spec)
        return OnnxGraph(
            network_for(spec, OnnxNetwork(FileGraph(path, session), device)), None, sha256_file_cached(path)
        )
    resolved = resolve_weights(spec, weights, download_ok=download)
    digest = sha256_file_cached(resolved.path)

    def key(hw: tuple[int, int] | None) -> GraphKey:
        return GraphKey(spec.name, digest, hw, OPSET, __version__)

    def export(path: Path, hw: tuple[int, int] | None) -> list[tuple[tuple[int, ...], float]]:
        # A fixed-size network is checked on a real picture through its own pre-processing (at that size anyway).
        exact = None if spec.data.input_size_fixed else hw
        report = export_graph(torch_model(resolved.path), path, input_hw=exact, input_size=processor.input_size,
                              dynamic=hw is None, opset=OPSET)  # fmt: skip
        return report.checks

    cached = CachedGraphs(cache_dir(resolved.path), key, export, factory)
    if static_only_reason(spec) is None:
        cached.dynamic = True
        cached.open(None)  # at load: export errors surface before the first image, not inside the batch
    elif spec.data.input_size_fixed:
        cached.open((processor.input_size, processor.input_size))
    return OnnxGraph(network_for(spec, OnnxNetwork(cached, device)), resolved, digest)
