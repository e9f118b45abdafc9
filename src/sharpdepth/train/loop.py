"""The fine-tuning loop: `run_finetune(settings) -> FinetuneSummary`.

One code path for one process and for `torchrun` data parallelism (PyTorch DDP; gloo on
CPU, NCCL on GPUs). What makes runs reproducible and comparable:

* the sample of global step s, micro-step m, rank r, slot b is draw
  k = ((s * accumulate + m) * world + r) * batch + b of the seeded `SampleStream`, so a
  resumed run sees exactly the samples the uninterrupted one would, and 2 processes with
  batch 1 see the samples 1 process with batch 2 sees;
* losses are per-image means averaged over the batch, and DDP averages gradients over
  processes, so both set-ups compute the same gradient (up to float summation order);
* the schedule (linear warm-up, cosine decay) depends only on the step number, and the
  optimizer, scheduler and RNG states travel in the checkpoint.

Rank 0 validates (eval metrics on the held-out scenes, the eval harness's protocol and
alignment), logs (`metrics.jsonl`, TensorBoard if installed, a tqdm bar) and writes the
checkpoints; the other ranks wait at a barrier.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ..engine.model import DepthModel, load, strict_load
from ..errors import OptionError, SharpDepthError
from ..eval.datasets import DepthDataset, Entry, open_dataset
from ..eval.metrics import mean_metrics
from ..eval.protocols import Protocol as EvalProtocol
from ..eval.protocols import default_protocol
from ..eval.scoring import Frame, Scorer, resolve_alignment
from ..eval.settings import EvalSettings
from ..family import Processor
from ..io.atomic import atomic_path
from ..registry import ModelSpec
from ..result import OutputKind
from . import checkpoint as ckpt
from .data import Augment, SampleStream, require_usable, split_entries, steps_for, survey
from .objective import Objective, split_outputs
from .parts import add_lora, freeze_batchnorm, lora_modules, official_state_dict, part_of, trainable_parts
from .settings import TrainSettings

VAL_METRIC = "abs_rel"


# ------------------------------------------------------------------ distributed
class NonFiniteLoss(SharpDepthError):
    """The training loss became NaN or infinite: the run stops instead of saving such weights."""


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def dist_from_env() -> DistContext:
    """torchrun's RANK / WORLD_SIZE / LOCAL_RANK; the process group is initialised once."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    ctx = DistContext(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = (
            "nccl" if torch.cuda.is_available() and os.environ.get("SHARPDEPTH_DIST_BACKEND") != "gloo" else "gloo"
        )
        dist.init_process_group(backend=backend)
    return ctx


def _device(settings: TrainSettings, ctx: DistContext) -> str:
    """The device of this process: under torchrun each rank takes GPU `LOCAL_RANK`."""
    name = settings.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and ctx.active:
        return f"cuda:{ctx.local_rank}"
    return name


# ------------------------------------------------------------------ schedule
def lr_factor(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Linear warm-up from 1/(warmup+1) to 1 over `warmup` steps, then cosine decay to `min_ratio`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / (warmup + 1)
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def param_groups(net: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices and kernels, none on biases, norms and tokens."""
    decay: list[nn.Parameter] = []
    plain: list[nn.Parameter] = []
    for _, param in net.named_parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else plain).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


# ------------------------------------------------------------------ summary / logging
@dataclass
class FinetuneSummary:
    steps: int
    output: Path
    final: Path | None
    best: Path | None
    val_before: dict[str, float] = field(default_factory=dict)
    val_after: dict[str, float] = field(default_factory=dict)
    train_samples: int = 0
    val_samples: int = 0
    seconds: float = 0.0
    is_main: bool = True
    """False on the non-zero ranks of a distributed run (they write and report nothing)."""


class MetricsLog:
    """JSON lines (one object per event), plus TensorBoard scalars if it is installed."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.enabled = enabled
        self._fh = open(path, "a", encoding="utf-8") if enabled else None  # noqa: SIM115 - closed in close()
        self._tb: Any = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(path.parent / "tensorboard"))
            except ImportError:
                self._tb = None

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            return
        self._fh.write(json.dumps(record, sort_keys=True) + "\n")
        self._fh.flush()
        if self._tb is not None:
            step = int(record.get("step", 0))
            for key, value in record.items():
                if isinstance(value, int | float) and key != "step":
                    self._tb.add_scalar(f"{record.get('event', 'train')}/{key}", value, step)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
        if self._tb is not None:
            self._tb.close()


# ------------------------------------------------------------------ validation
def validate(
    model: DepthModel, dataset: DepthDataset, entries: list[Entry], protocol: EvalProtocol
) -> dict[str, float]:
    """Eval metrics on held-out entries, exactly as `sharpdepth eval` scores them (the
    dataset's protocol, the model's own focal length, default alignment, no boundary F1)."""
    if not entries:
        return {}
    net = model.net
    was_training = net.training
    net.eval()
    settings = EvalSettings(boundary=False)
    protocol = settings.protocol_for(protocol)
    policy = resolve_alignment(model.spec.output_kind, protocol, settings, settings.scope(protocol), model.name)
    scorer = Scorer(protocol, policy, boundary=False)
    rows: list[Mapping[str, Any]] = []
    try:
        for entry in entries:
            sample = dataset.load(entry)
            result = model.predict(sample.image, keep_image=False)
            prediction = protocol.resize(result.prediction, sample.depth.shape)
            frame = Frame(sample, prediction, OutputKind(result.kind), result.focal_px, 0.0, False)
            rows.append(scorer.score(frame).metrics)
    finally:
        net.train(was_training)
        freeze_batchnorm(net)
    return mean_metrics(rows, ("abs_rel", "rmse", "delta1", "silog"))


# ------------------------------------------------------------------ the trainer
class Trainer:
    def __init__(self, settings: TrainSettings, ctx: DistContext | None = None) -> None:
        self.s = settings
        self.ctx = ctx or dist_from_env()
        torch.manual_seed(settings.seed)
        np.random.seed(settings.seed % 2**32)
        device = _device(settings, self.ctx)
        base = load(
            settings.model,
            weights=settings.weights,
            device=device,
            precision="fp32",
            input_size=settings.input_size,
            random_weights=settings.random_weights,
        )
        self.spec: ModelSpec = base.spec
        self.adapter: Processor = base.processor
        self.device = base.device
        self.net: nn.Module = base.net
        self.family = self.spec.family
        self.metric = self.spec.output_kind is OutputKind.METRIC_DEPTH
        self.resume_from = ckpt.resolve_resume(settings.resume) if settings.resume else None
        resume_state: dict[str, Any] = {}
        if self.resume_from is not None:
            weights, resume_state = ckpt.load_last(self.resume_from)
            strict_load(self.net, weights, str(self.resume_from / "model.safetensors"))
        if settings.lora_rank:
            add_lora(self.net, settings.lora_rank, settings.lora_alpha)
            if resume_state.get("lora"):
                self._load_lora(resume_state["lora"])
        self.parts = trainable_parts(self.family, settings.train, settings.freeze)
        self.n_trainable = self._set_trainable()
        self.net.train()
        freeze_batchnorm(self.net)
        self.loss_name = settings.loss_for(self.family, self.metric)
        self.objective = Objective(self.loss_name, self.family, self.metric, settings, "fov" in self.parts)
        self._data()
        self.global_batch = settings.batch_size * settings.accumulate * self.ctx.world
        if settings.steps:
            self.total_steps = settings.steps
        else:
            self.total_steps = steps_for(settings.epochs or 1.0, len(self.stream), self.global_batch)
        self.warmup = (
            settings.warmup_steps if settings.warmup_steps is not None else int(round(0.05 * self.total_steps))
        )
        self.params = [p for p in self.net.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(param_groups(self.net, settings.weight_decay), lr=settings.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, self.total_steps, self.warmup, settings.min_lr_ratio)
        )
        self.step = 0
        self.best: float | None = None
        if resume_state:
            self._restore(resume_state)
        self.model: nn.Module = self.net
        if self.ctx.active:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.net, device_ids=ids, find_unused_parameters=True)
        self.eval_model = DepthModel(self.spec, self.adapter, self.net, self.device, torch.float32, None, None)

    # ---- set-up helpers
    def _set_trainable(self) -> int:
        lora = bool(self.s.lora_rank)
        parts = set(self.parts)
        if lora and "encoder" not in self.s.freeze:
            parts.add("encoder")  # the encoder is adapted through its LoRA adapters
        adapted = set(lora_modules(self.net))
        count = 0
        for key, param in self.net.named_parameters():
            part = part_of(self.family, key)
            module = key.rsplit(".", 1)[0]
            if key.endswith((".lora_A", ".lora_B")):
                train = part in parts
            elif lora and (module.removesuffix(".base") in adapted or part == "encoder"):
                train = False
            else:
                train = part in self.parts
            param.requires_grad_(train)
            count += param.numel() if train else 0
        if count == 0:
            raise OptionError(f"nothing to train: --train {self.s.train} --freeze {','.join(self.s.freeze) or '-'}")
        return count

    def _data(self) -> None:
        s = self.s
        options = dict(s.dataset_options)
        self.dataset = open_dataset(s.dataset, s.root, **options)
        found = survey(self.dataset, self.dataset.index())
        entries = require_usable(found, self.dataset.root)
        self.data_notes = found.notes("training data")
        if s.val_root is not None:
            self.val_dataset = open_dataset(s.dataset, s.val_root, **options)
            val_found = survey(self.val_dataset, self.val_dataset.index())
            self.data_notes += val_found.notes("validation data")
            train, val = entries, val_found.usable
        else:
            self.val_dataset = self.dataset
            train, val = split_entries(entries, self.dataset.root, s.val_fraction, s.val_scenes, s.seed)
        self.val_entries = val[: s.max_val_images] if s.max_val_images else []
        augment = Augment(s.flip, s.crop_min, s.color_jitter)
        self.stream = SampleStream(self.dataset, train, self.adapter, augment, s.seed)
        self.protocol = default_protocol(self.dataset.name)

    def _load_lora(self, state: dict[str, torch.Tensor]) -> None:
        modules = lora_modules(self.net)
        for key, value in state.items():
            name, _, attr = key.rpartition(".")
            if attr in ("lora_A", "lora_B"):
                getattr(modules[name], attr).data.copy_(value)
            else:  # base.weight / base.bias
                mod_name = name.removesuffix(".base")
                getattr(modules[mod_name].base, attr).data.copy_(value)

    def _restore(self, state: dict[str, Any]) -> None:
        if state.get("model") != self.spec.name:
            raise OptionError(f"--resume: checkpoint is of {state.get('model')!r}, not {self.spec.name!r}")
        if int(state.get("global_batch", self.global_batch)) != self.global_batch:
            raise OptionError(
                f"--resume: the run used a global batch of {state['global_batch']}, this one {self.global_batch}"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        self.best = state.get("best")
        ckpt.set_rng_state(state["rng"])

    # ---- one optimizer step
    def _draws(self, step: int, micro: int) -> list[int]:
        s, ctx = self.s, self.ctx
        first = ((step * s.accumulate + micro) * ctx.world + ctx.rank) * s.batch_size
        return list(range(first, first + s.batch_size))

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.s.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(self) -> dict[str, float]:
        s = self.s
        started = time.perf_counter()
        totals: dict[str, float] = {}
        loss_sum = 0.0
        for micro in range(s.accumulate):
            batch = self.stream.batch(self._draws(self.step, micro)).to(self.device)
            sync_off = self.ctx.active and micro < s.accumulate - 1
            no_sync = getattr(self.model, "no_sync", None)
            ctx = no_sync() if sync_off and no_sync is not None else contextlib.nullcontext()
            with ctx:
                with self._autocast():
                    raw = self.model(batch.image)
                out = split_outputs(raw, (int(batch.depth.shape[-2]), int(batch.depth.shape[-1])))
                loss, parts = self.objective(out, batch)
                (loss / s.accumulate).backward()
            loss_sum += float(loss.detach()) / s.accumulate
            for key, value in parts.items():
                totals[key] = totals.get(key, 0.0) + value / s.accumulate
        mean_loss = self._mean_over_ranks(loss_sum)
        if not math.isfinite(mean_loss):
            raise NonFiniteLoss(
                f"the loss is {mean_loss} at step {self.step + 1}; stopped before updating the weights "
                "(lower --lr, use --precision fp32, or check the depth maps); no new checkpoint written"
            )
        grad_norm = self._clip()
        lr = float(self.optimizer.param_groups[0]["lr"])
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        record: dict[str, float] = {"step": self.step, "loss": mean_loss}
        record.update({k: self._mean_over_ranks(v) for k, v in totals.items()})
        record.update({"lr": lr, "grad_norm": grad_norm})
        record["seconds"] = time.perf_counter() - started
        return record

    def _clip(self) -> float:
        if self.s.clip_grad > 0:
            return float(torch.nn.utils.clip_grad_norm_(self.params, self.s.clip_grad))
        grads = [p.grad.detach().norm() for p in self.params if p.grad is not None]
        return float(torch.stack(grads).norm()) if grads else 0.0

    def _mean_over_ranks(self, value: float) -> float:
        if not self.ctx.active:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t)
        return float(t.item()) / self.ctx.world

    # ---- checkpoints
    def _metadata(self) -> dict[str, str]:
        return {"model": self.spec.name, "step": str(self.step), "written_by": "sharpdepth finetune"}

    def trainer_state(self) -> dict[str, Any]:
        lora = {}
        if self.s.lora_rank:
            from .parts import lora_state

            lora = lora_state(self.net)
        return {
            "model": self.spec.name,
            "step": self.step,
            "total_steps": self.total_steps,
            "global_batch": self.global_batch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": ckpt.rng_state(),
            "best": self.best,
            "lora": lora,
        }

    def save_last(self) -> Path:
        return ckpt.save_last(self.s.output, official_state_dict(self.net), self.trainer_state(), self._metadata())

    def save_weights(self, name: str) -> Path:
        dest = self.s.output / name
        ckpt.save_weights(official_state_dict(self.net), dest, self._metadata())
        return dest

    def barrier(self) -> None:
        if self.ctx.active:
            dist.barrier()


def _progress(total: int, start: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=start, desc="finetune", unit="step", dynamic_ncols=True)


def _steps(trainer: Trainer, stop_after: int | None) -> Iterator[int]:
    end = trainer.total_steps if stop_after is None else min(trainer.total_steps, stop_after)
    while trainer.step < end:
        yield trainer.step


def run_finetune(settings: TrainSettings, echo: Callable[[str], None] | None = None) -> FinetuneSummary:
    """Fine-tune as `settings` says; writes final.safetensors, best.safetensors (when it
    validates), last/ (resumable) and metrics.jsonl under `settings.output`.

    `settings.stop_after` ends the run early with a resumable `last/` (time-boxed jobs; the
    schedule still spans all steps) and no final.safetensors.
    """
    started = time.perf_counter()
    trainer = Trainer(settings)
    main = trainer.ctx.is_main
    out = settings.output
    if main:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "settings.json") as tmp:
            tmp.write_text(settings.to_json() + "\n")
    log = MetricsLog(out / "metrics.jsonl", enabled=main)
    summary = FinetuneSummary(
        0, out, None, None, train_samples=len(trainer.stream), val_samples=len(trainer.val_entries), is_main=main
    )
    say = echo if (echo is not None and main and not settings.quiet) else (lambda _msg: None)
    for note in trainer.data_notes:
        log.write({"event": "data", "note": note})
        if echo is not None and main:
            echo(f"warning: {note}")
    say(
        f"{settings.model}: {trainer.n_trainable:,} trainable parameters ({', '.join(sorted(trainer.parts))}), "
        f"loss {trainer.loss_name}, {len(trainer.stream)} training / {len(trainer.val_entries)} validation images, "
        f"{trainer.total_steps} steps of {trainer.global_batch} images"
    )

    def run_validation(tag: str) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if main and trainer.val_entries:
            metrics = validate(trainer.eval_model, trainer.val_dataset, trainer.val_entries, trainer.protocol)
            log.write({"event": "val", "step": trainer.step, "tag": tag, **metrics})
            score = metrics.get(VAL_METRIC)
            if tag != "before" and score is not None and np.isfinite(score):
                if trainer.best is None or score < trainer.best:
                    trainer.best = float(score)
                    summary.best = trainer.save_weights("best.safetensors")
        trainer.barrier()
        return metrics

    if trainer.step == 0:
        summary.val_before = run_validation("before")
    bar = _progress(trainer.total_steps, trainer.step, main and not settings.quiet)
    try:
        for _ in _steps(trainer, settings.stop_after):
            record = trainer.train_step()
            log.write({"event": "train", **record})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.4g}", lr=f"{record['lr']:.2e}")
            step = trainer.step
            if settings.val_every and step % settings.val_every == 0 and step < trainer.total_steps:
                run_validation("periodic")
            if settings.save_every and step % settings.save_every == 0 and step < trainer.total_steps:
                if main:
                    trainer.save_last()
                trainer.barrier()
    finally:
        if bar is not None:
            bar.close()
    finished = trainer.step >= trainer.total_steps
    if finished:
        summary.val_after = run_validation("final")
    if main:
        trainer.save_last()
        if finished:
            summary.final = trainer.save_weights("final.safetensors")
        if trainer.best is not None and (out / "best.safetensors").exists():
            summary.best = out / "best.safetensors"
    trainer.barrier()
    summary.steps = trainer.step
    summary.seconds = time.perf_counter() - started
    log.write({"event": "done", "step": trainer.step, "seconds": summary.seconds})
    log.close()
    return summary
