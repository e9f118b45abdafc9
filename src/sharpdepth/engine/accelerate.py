"""Fast paths around a loaded network: a reduced-precision guard, `torch.compile` and CUDA graphs.

Processors call the network as `net(batch)` inside one inference scope. `NetworkRunner`
is an `nn.Module` that holds the real network (so `next(runner.parameters())` still
names its device and dtype) and decides, per call, how to run it:

* eager (the default; on CPU with fp32 it is exactly `net(batch)`);
* `torch.compile(net, dynamic=False)`, made on first use; dynamo compiles once per input
  shape (Depth Pro has one, Depth Anything one per aspect ratio). A compilation that
  fails is reported in one warning and the model runs eager from then on;
* CUDA graphs (CUDA only, opt-in): the forward is captured once per (batch, shape, dtype)
  on a static input buffer and replayed, which removes the per-kernel launch cost that
  dominates small models at small batches. Graphs of one model share one memory pool;
  this is safe because replays are sequential and every output is copied out of the
  graph's static buffers before the next replay.

The guard. fp16 has a largest value of 65504: the residual stream of ViT-L (Depth Pro's
encoders, Depth Anything V2 Large, DINOv2 generally) carries activations beyond it, so a
cast-to-fp16 network can overflow to inf in a block and turn into NaN in the next
LayerNorm or attention softmax; the result is a black or NaN map. bf16 keeps fp32's
exponent range and rarely does this, but underflow or a bad checkpoint can still give
a constant map. After every reduced-precision forward the runner makes one cheap check
on the raw output, on the device: every floating value finite, and no map (a tensor
with >= 3 dims, one per image) constant over the whole image (a network's real output
never is; an all-zero or all-equal map is what an overflowed network returns). That
is a few reductions and one host sync per batch. If it fails, the batch is run again
once in fp32 (the weights upcast for that call only, via `torch.func.functional_call`,
so the cast network and any compiled code or captured graph stay as they are) and a
one-line warning names the model and precision. If fp32 gives a constant map too, the
map was never a precision problem: the constant-map check is switched off for that
model and the fp32 result kept.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import OptionError, first_line
from ..family import NetworkOutput, Processor
from .runtime import is_reduced_precision

if TYPE_CHECKING:
    from torch.cuda import _POOL_HANDLE as GraphPool  # what torch.cuda.graph_pool_handle() returns

log = logging.getLogger("sharpdepth")

NetOutput = torch.Tensor | tuple[torch.Tensor | None, ...] | list[torch.Tensor]
"""What our networks return: one tensor, or a tuple/list of tensors (Depth Pro: map and FOV or None)."""
Forward = Callable[[torch.Tensor], NetOutput]

MAX_CUDA_GRAPHS = 8
"""Captured graphs kept per model (one per batch size and input shape); later shapes run without."""
GRAPH_WARMUP_RUNS = 3
"""Eager runs on a side stream before a capture (cuDNN/cuBLAS autotuning, lazy inits, compilation)."""
_compile_backend = "inductor"
"""torch.compile backend; a private hook so that tests can use "eager" (no C++ toolchain, seconds)."""


@dataclass(frozen=True, kw_only=True)
class Acceleration:
    """How a model's forward pass runs (see the module docstring); validated and resolved by `plan`."""

    compile: bool = False
    cuda_graphs: bool = False
    precision_guard: bool = True


def plan(
    device: torch.device,
    *,
    compile: bool = False,
    cuda_graphs: bool = False,
    precision_guard: bool = True,
    device_was_auto: bool = False,
) -> Acceleration:
    """The acceleration a model on `device` actually gets.

    CUDA graphs exist only on CUDA: asked for with an explicitly non-CUDA device they
    are refused (the user would otherwise believe they were measuring them); with
    `device="auto"` resolving to CPU/MPS they are dropped with a one-line warning, so
    that one script runs on machines with and without a GPU.
    """
    if cuda_graphs and device.type != "cuda":
        if not device_was_auto:
            raise OptionError(f"CUDA graphs need a CUDA device (got {device.type}); drop --cuda-graphs")
        log.warning("warning: --cuda-graphs ignored: device 'auto' resolved to %s, not CUDA", device.type)
        cuda_graphs = False
    return Acceleration(compile=compile, cuda_graphs=cuda_graphs, precision_guard=precision_guard)


def graph_key(x: torch.Tensor) -> tuple[int | str, ...]:
    """One captured graph per (device, dtype, batch, shape): a graph replays exactly one shape."""
    return (str(x.device), str(x.dtype), *x.shape)


# --------------------------------------------------------------------------- output checks


def output_tensors(out: object) -> Iterator[torch.Tensor]:
    """The tensors of a network output (a tensor, or nested tuples/lists/dicts of them; None skipped)."""
    if isinstance(out, torch.Tensor):
        yield out
    elif isinstance(out, tuple | list):
        for item in out:
            yield from output_tensors(item)
    elif isinstance(out, dict):
        for item in out.values():
            yield from output_tensors(item)


def output_flags(out: object, check_constant: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(any non-finite value, any constant map) as two bool scalars on the output's device; no sync.

    A "map" is a floating tensor with >= 3 dims whose first dim is the batch: (N, h, w) or
    (N, 1, h, w). Scalars per image (Depth Pro's FOV) are only checked for finiteness.
    """
    nonfinite: list[torch.Tensor] = []
    constant: list[torch.Tensor] = []
    for t in output_tensors(out):
        if not t.is_floating_point() or t.numel() == 0:
            continue
        nonfinite.append(~torch.isfinite(t).all())
        if check_constant and t.ndim >= 3 and t[0].numel() > 1:
            low, high = torch.aminmax(t.flatten(1), dim=1)
            constant.append((low == high).any())
    if not nonfinite:
        false = torch.zeros((), dtype=torch.bool)
        return false, false
    device = nonfinite[0].device
    none = torch.zeros((), dtype=torch.bool, device=device)
    return torch.stack(nonfinite).any(), torch.stack(constant).any() if constant else none


def _clone_output(out: NetOutput) -> NetOutput:
    """A copy of a graph's static output (the next replay overwrites it)."""
    if isinstance(out, torch.Tensor):
        return out.clone()
    if isinstance(out, tuple):
        return tuple(None if t is None else t.clone() for t in out)
    return [t.clone() for t in out]


# --------------------------------------------------------------------------- the runner


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    static_input: torch.Tensor
    static_output: NetOutput


@dataclass
class RunnerStats:
    """What the runner did (tests and benchmarks read it; nothing depends on it)."""

    forwards: int = 0
    fp32_reruns: int = 0
    compiled_shapes: set[tuple[int, ...]] = field(default_factory=set)
    graph_captures: int = 0
    graph_replays: int = 0


class NetworkRunner(nn.Module):
    """The network as processors call it, with the fast paths and the guard of the module docstring.

    Not thread-safe (neither is `DepthModel`). `net` stays the very module that was loaded.
    """

    def __init__(self, net: nn.Module, *, name: str, options: Acceleration | None = None) -> None:
        super().__init__()
        self.net = net
        self.model_name = name
        self.options = options or Acceleration()
        self.stats = RunnerStats()
        self._compiled: Forward | None = None
        self._compile_failed = False
        self._graphs: dict[tuple[int | str, ...], _Graph] = {}
        self._graphs_failed = False
        self._graph_pool: GraphPool | None = None
        self._check_constant = True
        self._warned_rerun = False
        self._source: torch.Tensor | None = None

    # ---- what the engine calls
    def run_batch(self, processor: Processor, tensors: list[torch.Tensor]) -> list[NetworkOutput]:
        """Stack same-size processor inputs, move them to the device and run the processor's forward.

        The float32 batch is kept for the call so that the guard's fp32 re-run starts from
        it rather than from the processor's reduced-precision cast of it.
        """
        batch = stage_batch(tensors, next(self.net.parameters()).device)
        self._source = batch
        try:
            return processor.forward(self, batch)
        finally:
            self._source = None

    # ---- what processors call
    def forward(self, x: torch.Tensor) -> NetOutput:
        self.stats.forwards += 1
        out = self._fast_forward(x)
        if not (self.options.precision_guard and is_reduced_precision(x.dtype)):
            return out
        nonfinite, constant = output_flags(out, self._check_constant)
        if not bool(nonfinite | constant):  # the one host sync per batch
            return out
        del out  # free the failed output before the fp32 pass
        return self._rerun_fp32(x, bool(nonfinite))

    # ---- eager / compiled / graphs
    def uses_cuda_graphs(self, x: torch.Tensor) -> bool:
        """Graphs only for CUDA inputs, when asked for, until a capture has failed."""
        return self.options.cuda_graphs and x.device.type == "cuda" and not self._graphs_failed

    def _fast_forward(self, x: torch.Tensor) -> NetOutput:
        if self.uses_cuda_graphs(x):
            graph = self._graph_for(self._callable(x), x)
            if graph is not None:
                return self._replay(graph, x)
        return self._call(self._callable(x), x)

    def _replay(self, graph: _Graph, x: torch.Tensor) -> NetOutput:
        """Copy in, replay, copy out (the static output is overwritten by the next replay)."""
        self.stats.graph_replays += 1
        graph.static_input.copy_(x)
        graph.graph.replay()
        return _clone_output(graph.static_output)

    def _callable(self, x: torch.Tensor) -> Forward:
        if not self.options.compile or self._compile_failed:
            return self.net
        if self._compiled is None:
            self._compiled = torch.compile(self.net, dynamic=False, backend=_compile_backend)
        self.stats.compiled_shapes.add(tuple(x.shape))
        return self._compiled

    def _call(self, fn: Forward, x: torch.Tensor) -> NetOutput:
        if fn is self.net:
            return self.net(x)
        try:
            return fn(x)
        except Exception as exc:
            out = self.net(x)  # a real error (bad input, out of memory) raises again here, compile stays on
            self._compile_failed = True
            log.warning(
                "warning: torch.compile failed for %s (%s: %s); running it eager",
                self.model_name, type(exc).__name__, first_line(exc, 200),
            )  # fmt: skip
            return out

    def _graph_for(self, fn: Forward, x: torch.Tensor) -> _Graph | None:
        key = graph_key(x)
        graph = self._graphs.get(key)
        if graph is not None:
            return graph
        if len(self._graphs) >= MAX_CUDA_GRAPHS:
            return None
        if fn is not self.net:  # compile this shape first, so that a compiler failure is not taken
            self._call(fn, x)  # for a capture failure (`_call` falls back to eager and says so)
            fn = self._callable(x)
        try:
            graph = capture_graph(fn, x, self._pool())
        except Exception as exc:
            self._graphs_failed = True
            self._graphs.clear()
            log.warning(
                "warning: CUDA graph capture failed for %s (%s: %s); running without CUDA graphs",
                self.model_name, type(exc).__name__, str(exc).strip()[:200],
            )  # fmt: skip
            return None
        self.stats.graph_captures += 1
        self._graphs[key] = graph
        return graph

    def _pool(self) -> GraphPool:
        if self._graph_pool is None:
            self._graph_pool = torch.cuda.graph_pool_handle()
        return self._graph_pool

    def release_graphs(self) -> None:
        """Drop the captured graphs and their memory pool (they are made again when needed)."""
        self._graphs.clear()
        self._graph_pool = None

    # ---- the guard's fallback
    def _fp32_input(self, x: torch.Tensor) -> torch.Tensor:
        """The float32 batch `x` was cast from, when the processor only cast (and reshaped) it."""
        src = self._source
        if src is not None and src.numel() == x.numel() and src.device == x.device:
            src = src.reshape(x.shape)
            if torch.equal(src.to(x.dtype), x):
                return src.float()
        return x.float()

    def _rerun_fp32(self, x: torch.Tensor, nonfinite: bool) -> NetOutput:
        self.stats.fp32_reruns += 1
        state = {
            name: t.float() if t.is_floating_point() else t
            for name, t in itertools.chain(self.net.named_parameters(), self.net.named_buffers())
        }
        out = torch.func.functional_call(self.net, state, (self._fp32_input(x),))
        del state
        what = "non-finite values" if nonfinite else "a constant (blank) map"
        precision = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(x.dtype, str(x.dtype))
        if not nonfinite:
            _, still_constant = output_flags(out)
            if bool(still_constant):  # fp32 agrees: this network's map is constant, not a precision fault
                self._check_constant = False
                log.warning(
                    "warning: %s gives a constant map in fp32 too (random or broken weights?); "
                    "the %s guard no longer checks for constant maps",
                    self.model_name, precision,
                )  # fmt: skip
                return out
        if not self._warned_rerun:
            self._warned_rerun = True
            hint = " (fp16 overflows in ViT-L; bf16 keeps fp32's range)" if x.dtype == torch.float16 else ""
            log.warning(
                "warning: %s in %s gave %s for a batch of %d; re-ran it in fp32%s",
                self.model_name, precision, what, x.shape[0], hint,
            )  # fmt: skip
        return out


def capture_graph(fn: Forward, x: torch.Tensor, pool: GraphPool | None = None) -> _Graph:
    """Capture `fn` on a static copy of `x` (the public torch.cuda.graph recipe).

    Warm-up runs go to a side stream (as the CUDA-graphs documentation requires: lazy
    initialisation, autotuning and compilation must not happen during capture), the
    current stream waits for them, then one call is captured. Replaying reads
    `static_input` and writes `static_output` in place.
    """
    device = x.device
    static_input = torch.empty_like(x)
    static_input.copy_(x)
    side = torch.cuda.Stream(device=device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(GRAPH_WARMUP_RUNS):
            fn(static_input)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool):
        static_output = fn(static_input)
    return _Graph(graph=graph, static_input=static_input, static_output=static_output)


# --------------------------------------------------------------------------- host -> device


def stage_batch(tensors: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """Stack same-shape inputs into one batch; on CUDA into pinned memory, copied without blocking.

    Pinned (page-locked) host memory lets the copy run by DMA while Python goes on to
    queue the forward pass; torch's caching host allocator keeps the buffer alive until
    the copy is done. Elsewhere this is exactly `torch.stack` (CPU results unchanged).
    """
    if device.type != "cuda":
        return torch.stack(tensors)
    first = tensors[0]
    host = torch.empty((len(tensors), *first.shape), dtype=first.dtype, pin_memory=True)
    torch.stack(tensors, out=host)
    return host.to(device, non_blocking=True)
