"""`sharpdepth finetune`: fine-tune a model on a local dataset (one process or torchrun DDP).

Flags build one `sharpdepth.train.settings.TrainSettings`, which holds every default and
check: a flag not given is not passed, and help texts read their defaults from it. torch
and the trainer are imported only when the command runs (the settings module is plain
Python), so `sharpdepth --help` stays fast.
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import OptionError
from ..train.settings import TrainSettings

TRAIN_FIELDS = {f.name: f for f in fields(TrainSettings)}


def _parts(values: list[str] | None) -> tuple[str, ...]:
    """--freeze encoder --freeze head, or --freeze encoder,head."""
    out: list[str] = []
    for value in values or []:
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return tuple(out)


def _pairs(values: list[str] | None) -> tuple[tuple[str, str], ...]:
    out = []
    for pair in values or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise OptionError(f"--option expects KEY=VALUE, got {pair!r}")
        out.append((key.strip(), value.strip()))
    return tuple(out)


def _h(text: str, name: str) -> str:
    """Help text with the default taken from `TrainSettings` (the one place defaults live)."""
    default = TRAIN_FIELDS[name].default
    return f"{text} (default {default})" if default not in (None, (), MISSING) else text


def register(app: typer.Typer) -> None:
    @app.command("finetune")
    def finetune(
        model: Annotated[str, typer.Option("--model", "-m", help="Model name (sharpdepth weights list).")],
        root: Annotated[Path, typer.Option(help="Local copy of the training data (layouts: docs/evaluation.md).")],
        output: Annotated[Path, typer.Option("-o", "--output", help="Run folder (checkpoints, metrics.jsonl).")],
        dataset: Annotated[
            str | None,
            typer.Option(
                "--dataset", "-d", help=_h("folder, middlebury, nyuv2, kitti, eth3d, ... (as eval).", "dataset")
            ),
        ] = None,
        weights: Annotated[Path | None, typer.Option(help="Starting checkpoint (default: cache / hub).")] = None,
        loss: Annotated[
            str | None, typer.Option(help="depth-pro, silog, ssi, affine or fov (default: the family's own).")
        ] = None,
        epochs: Annotated[float | None, typer.Option(help="Passes over the training split (default 1).")] = None,
        steps: Annotated[int | None, typer.Option(help="Optimizer steps (overrides --epochs).")] = None,
        batch_size: Annotated[
            int | None, typer.Option("--batch-size", "-b", help=_h("Images per process per step.", "batch_size"))
        ] = None,
        accumulate: Annotated[
            int | None, typer.Option(help=_h("Gradient accumulation micro-steps.", "accumulate"))
        ] = None,
        lr: Annotated[float | None, typer.Option(help=_h("Peak learning rate (AdamW).", "lr"))] = None,
        weight_decay: Annotated[float | None, typer.Option(help=_h("AdamW weight decay.", "weight_decay"))] = None,
        warmup_steps: Annotated[int | None, typer.Option(help="Linear warm-up steps (default 5 %).")] = None,
        clip_grad: Annotated[float | None, typer.Option(help=_h("Max gradient norm (0: off).", "clip_grad"))] = None,
        freeze: Annotated[
            list[str] | None, typer.Option(help="Part to keep fixed: encoder, decoder, head, fov.")
        ] = None,
        train: Annotated[str | None, typer.Option(help=_h("head, decoder, fov or all.", "train"))] = None,
        lora_rank: Annotated[
            int | None, typer.Option(help="LoRA rank on attention projections (default: off).")
        ] = None,
        lora_alpha: Annotated[float | None, typer.Option(help="LoRA alpha (default: the rank).")] = None,
        precision: Annotated[str | None, typer.Option(help=_h("fp32 or bf16 (autocast).", "precision"))] = None,
        device: Annotated[str | None, typer.Option(help=_h("cpu, cuda, cuda:N, mps or auto.", "device"))] = None,
        input_size: Annotated[int | None, typer.Option(help="Network input size (families that allow it).")] = None,
        option: Annotated[list[str] | None, typer.Option("--option", help="Dataset option KEY=VALUE.")] = None,
        val_root: Annotated[Path | None, typer.Option(help="Separate validation data (same --dataset).")] = None,
        val_fraction: Annotated[
            float | None, typer.Option(help=_h("Share of scenes held out from --root.", "val_fraction"))
        ] = None,
        val_scenes: Annotated[list[str] | None, typer.Option(help="Scene to hold out (repeatable).")] = None,
        val_every: Annotated[int | None, typer.Option(help="Validate every N steps (default: at the end).")] = None,
        save_every: Annotated[
            int | None, typer.Option(help="Resumable checkpoint every N steps (default: at the end).")
        ] = None,
        resume: Annotated[Path | None, typer.Option(help="Run folder or last/ checkpoint to resume.")] = None,
        stop_after: Annotated[int | None, typer.Option(help="Stop after this step (resumable).")] = None,
        silog_lambda: Annotated[float | None, typer.Option(help=_h("SILog lambda.", "silog_lambda"))] = None,
        no_flip: Annotated[bool, typer.Option("--no-flip", help="No horizontal flips.")] = False,
        crop_min: Annotated[
            float | None, typer.Option(help=_h("Random crops keep at least this share per side.", "crop_min"))
        ] = None,
        color_jitter: Annotated[
            float | None, typer.Option(help=_h("Colour jitter strength (0: off).", "color_jitter"))
        ] = None,
        seed: Annotated[int | None, typer.Option(help="Seed of data order, augmentation and LoRA init.")] = None,
        random_weights: Annotated[
            bool, typer.Option("--random-weights", help="Start from random weights (plumbing only).")
        ] = False,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    ) -> None:
        """Fine-tune a model with its paper's loss; checkpoints load in predict and eval (--weights)."""
        given: dict[str, Any] = {
            "weights": weights, "input_size": input_size, "device": device, "precision": precision,
            "dataset": dataset, "val_root": val_root, "val_fraction": val_fraction, "crop_min": crop_min,
            "color_jitter": color_jitter, "loss": loss, "silog_lambda": silog_lambda, "epochs": epochs,
            "steps": steps, "batch_size": batch_size, "accumulate": accumulate, "lr": lr,
            "weight_decay": weight_decay, "warmup_steps": warmup_steps, "clip_grad": clip_grad, "train": train,
            "lora_rank": lora_rank, "lora_alpha": lora_alpha, "seed": seed, "val_every": val_every,
            "save_every": save_every, "resume": resume, "stop_after": stop_after,
            "dataset_options": _pairs(option) or None, "val_scenes": tuple(val_scenes or ()) or None,
            "freeze": _parts(freeze) or None, "flip": False if no_flip else None,
            "random_weights": random_weights or None, "quiet": quiet or None,
        }  # fmt: skip
        settings = TrainSettings(
            model=model, root=root, output=output, **{k: v for k, v in given.items() if v is not None}
        )
        from ..train.loop import run_finetune

        summary = run_finetune(settings, echo=lambda msg: typer.echo(msg, err=True))
        if summary.is_main and not quiet:
            for tag, metrics in (("before", summary.val_before), ("after", summary.val_after)):
                if metrics:
                    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
                    typer.echo(f"validation {tag}: {shown}", err=True)
            written = [p for p in (summary.final, summary.best, output / "last") if p is not None]
            typer.echo(
                f"{summary.steps} steps in {summary.seconds:.0f} s; wrote " + ", ".join(map(str, written)), err=True
            )
