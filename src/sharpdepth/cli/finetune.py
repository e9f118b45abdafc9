"""`sharpdepth finetune`: fine-tune a model on a local dataset (one process or torchrun DDP).

Flags build one `sharpdepth.train.settings.TrainSettings` (which holds every default and
check); torch and the trainer are imported only when the command runs, so `sharpdepth
--help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import OptionError


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


def register(app: typer.Typer) -> None:
    @app.command("finetune")
    def finetune(
        model: Annotated[str, typer.Option("--model", "-m", help="Model name (sharpdepth weights list).")],
        root: Annotated[Path, typer.Option(help="Local copy of the training data (layouts: docs/evaluation.md).")],
        output: Annotated[Path, typer.Option("-o", "--output", help="Run folder (checkpoints, metrics.jsonl).")],
        dataset: Annotated[
            str, typer.Option("--dataset", "-d", help="folder, middlebury, nyuv2, kitti, eth3d, ... (as eval).")
        ] = "folder",
        weights: Annotated[Path | None, typer.Option(help="Starting checkpoint (default: cache / hub).")] = None,
        loss: Annotated[
            str | None,
            typer.Option(help="depth-pro, silog, ssi, affine or fov (default: the family's own)."),
        ] = None,
        epochs: Annotated[float | None, typer.Option(help="Passes over the training split.")] = None,
        steps: Annotated[int | None, typer.Option(help="Optimizer steps (overrides --epochs).")] = None,
        batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per process per step.")] = 1,
        accumulate: Annotated[int, typer.Option(help="Gradient accumulation micro-steps.")] = 1,
        lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = 1e-5,
        weight_decay: Annotated[float, typer.Option(help="AdamW weight decay.")] = 0.01,
        warmup_steps: Annotated[int | None, typer.Option(help="Linear warm-up steps (default 5 %).")] = None,
        clip_grad: Annotated[float, typer.Option(help="Max gradient norm (0: off).")] = 1.0,
        freeze: Annotated[
            list[str] | None, typer.Option(help="Part to keep fixed: encoder, decoder, head, fov.")
        ] = None,
        train: Annotated[str, typer.Option(help="head, decoder, fov or all.")] = "all",
        lora_rank: Annotated[int, typer.Option(help="LoRA rank on attention projections (0: off).")] = 0,
        lora_alpha: Annotated[float | None, typer.Option(help="LoRA alpha (default: the rank).")] = None,
        precision: Annotated[str, typer.Option(help="fp32 or bf16 (autocast).")] = "fp32",
        device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N, mps or auto.")] = "auto",
        input_size: Annotated[int | None, typer.Option(help="Network input size (families that allow it).")] = None,
        option: Annotated[list[str] | None, typer.Option("--option", help="Dataset option KEY=VALUE.")] = None,
        val_root: Annotated[Path | None, typer.Option(help="Separate validation data (same --dataset).")] = None,
        val_fraction: Annotated[float, typer.Option(help="Share of scenes held out from --root.")] = 0.1,
        val_scenes: Annotated[list[str] | None, typer.Option(help="Scene to hold out (repeatable).")] = None,
        val_every: Annotated[int, typer.Option(help="Validate every N steps (0: at the end).")] = 0,
        save_every: Annotated[int, typer.Option(help="Resumable checkpoint every N steps (0: at the end).")] = 0,
        resume: Annotated[Path | None, typer.Option(help="Run folder or last/ checkpoint to resume.")] = None,
        stop_after: Annotated[int | None, typer.Option(help="Stop after this step (resumable).")] = None,
        silog_lambda: Annotated[float, typer.Option(help="SILog lambda.")] = 0.5,
        no_flip: Annotated[bool, typer.Option("--no-flip", help="No horizontal flips.")] = False,
        crop_min: Annotated[float, typer.Option(help="Random crops keep at least this share per side.")] = 0.8,
        color_jitter: Annotated[float, typer.Option(help="Colour jitter strength (0: off).")] = 0.2,
        seed: Annotated[int, typer.Option(help="Seed of data order, augmentation and LoRA init.")] = 0,
        random_weights: Annotated[
            bool, typer.Option("--random-weights", help="Start from random weights (plumbing only).")
        ] = False,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    ) -> None:
        """Fine-tune a model with its paper's loss; checkpoints load in predict and eval (--weights)."""
        from ..train.settings import TrainSettings

        settings = TrainSettings(
            model=model,
            weights=weights,
            random_weights=random_weights,
            input_size=input_size,
            device=device,
            precision=precision,
            dataset=dataset,
            root=root,
            dataset_options=_pairs(option),
            val_root=val_root,
            val_fraction=val_fraction,
            val_scenes=tuple(val_scenes or ()),
            flip=not no_flip,
            crop_min=crop_min,
            color_jitter=color_jitter,
            loss=loss,
            silog_lambda=silog_lambda,
            epochs=epochs,
            steps=steps,
            batch_size=batch_size,
            accumulate=accumulate,
            lr=lr,
            weight_decay=weight_decay,
            warmup_steps=warmup_steps,
            clip_grad=clip_grad,
            freeze=_parts(freeze),
            train=train,
            lora_rank=lora_rank,
            lora_alpha=lora_alpha,
            seed=seed,
            output=output,
            val_every=val_every,
            save_every=save_every,
            resume=resume,
            stop_after=stop_after,
            quiet=quiet,
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
