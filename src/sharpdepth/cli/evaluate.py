"""`sharpdepth eval`: score one or more models on a local copy of a benchmark dataset.

Prints one comparison table (metrics x models) and writes JSON + CSV to `-o`. Predictions
are cached per image under `<output>/cache/` so an interrupted run resumes, and a second
protocol or alignment on the same predictions costs no inference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..errors import OptionError

if TYPE_CHECKING:
    from ..eval.predictor import ModelLike, Predictor
    from ..eval.report import ModelReport
    from ..eval.settings import EvalJob

console = Console(stderr=True)


def parse_options(pairs: list[str] | None) -> dict[str, str]:
    """KEY=VALUE strings -> dict (dataset loader options)."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise OptionError(f"--option expects KEY=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


Loader = Callable[..., "Predictor | ModelLike"]


def load_models(
    names: list[str],
    weights: Sequence[Path | str] | None,
    device: str,
    precision: str,
    random_weights: bool = False,
    loader: Loader | None = None,
) -> list[Predictor | ModelLike]:
    """`sharpdepth.load` for each name; `--weights` pairs with `--model` in order."""
    weights = list(weights or [])
    if len(weights) > len(names):
        raise OptionError(f"{len(weights)} --weights for {len(names)} --model; give at most one per model, in order")
    if loader is None:
        import sharpdepth

        load: Loader = sharpdepth.load
    else:
        load = loader
    models = []
    for i, name in enumerate(names):
        kwargs: dict[str, object] = {
            "weights": weights[i] if i < len(weights) else None,
            "device": device,
            "precision": precision,
        }
        if random_weights:
            kwargs["random_weights"] = True
        models.append(load(name, **kwargs))
    return models


def run_eval(
    models: Sequence[Predictor | ModelLike],
    job: EvalJob,
    show_progress: bool = True,
    out_console: Console | None = None,
) -> tuple[list[ModelReport], dict[str, Path]]:
    """Evaluate loaded models under `job` with a progress bar, print the table; (reports, written paths)."""
    from ..eval.report import comparison_table
    from ..eval.runner import run_job

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=not show_progress, transient=True) as progress:

        def start(name: str, total: int) -> Callable[[], None]:
            task = progress.add_task(f"{name} · {job.dataset}", total=total)
            return lambda: progress.advance(task)

        outcome = run_job(models, job, progress=start)
    (out_console or Console()).print(comparison_table(outcome.dataset, outcome.protocol, outcome.reports))
    return outcome.reports, outcome.paths


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def evaluate(
        model: Annotated[list[str], typer.Option("--model", "-m", help="Model name; repeat to compare models.")],
        dataset: Annotated[
            str,
            typer.Option(
                "--dataset",
                "-d",
                help="middlebury, nyuv2, kitti, eth3d, sintel, ibims, diode, tum, sun-rgbd or folder.",
            ),
        ],
        root: Annotated[Path, typer.Option(help="Local copy of the dataset (layouts: docs/evaluation.md).")],
        weights: Annotated[list[Path] | None, typer.Option(help="Checkpoint per --model, in order.")] = None,
        protocol: Annotated[str | None, typer.Option(help="Protocol preset (default: the dataset's).")] = None,
        align: Annotated[
            str | None,
            typer.Option(
                help="none, median, lstsq or lstsq-robust (default: none "
                "for metric models, the protocol's for relative ones)."
            ),
        ] = None,
        align_space: Annotated[str | None, typer.Option(help="disparity or depth.")] = None,
        align_scope: Annotated[str | None, typer.Option(help="image or sequence.")] = None,
        limit: Annotated[int | None, typer.Option(help="Evaluate the first N samples only.")] = None,
        output: Annotated[Path, typer.Option("-o", "--output", help="Results folder.")] = Path("results"),
        option: Annotated[
            list[str] | None, typer.Option("--option", help="Dataset option KEY=VALUE (e.g. split=all, match=TUM_*).")
        ] = None,
        device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N, mps or auto.")] = "cpu",
        precision: Annotated[str, typer.Option(help="fp32, bf16 or fp16.")] = "fp32",
        give_focal: Annotated[
            bool, typer.Option("--give-focal", help="Pass the dataset's focal length to the model.")
        ] = False,
        temporal: Annotated[
            bool | None,
            typer.Option(
                "--temporal/--no-temporal",
                help="Temporal metrics per sequence: TAE, temporal change, flicker (default: on for video protocols).",
            ),
        ] = None,
        silog: Annotated[
            str | None,
            typer.Option(help="SILog convention: zoedepth (= depth-anything-v1) or depth-anything-v2."),
        ] = None,
        no_boundary: Annotated[bool, typer.Option("--no-boundary", help="Skip boundary F1.")] = False,
        no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not cache predictions.")] = False,
        random_weights: Annotated[
            bool,
            typer.Option("--random-weights", help="Plumbing check with untrained weights (numbers are meaningless)."),
        ] = False,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    ) -> None:
        """Evaluate models on a dataset: every metric, the protocol recorded next to the numbers."""
        from ..eval.settings import EvalJob, EvalSettings

        job = EvalJob(  # every option checked here, before a model is loaded
            dataset=dataset,
            root=root,
            output=output,
            protocol=protocol,
            dataset_options=parse_options(option),
            cache=not no_cache,
            scoring=EvalSettings(
                align=align,
                align_space=align_space,
                align_scope=align_scope,
                silog=silog,
                limit=limit,
                give_focal=give_focal,
                boundary=not no_boundary,
                temporal=temporal,
            ),
        )
        models = load_models(model, weights, device, precision, random_weights)
        _, paths = run_eval(models, job, show_progress=not quiet)
        console.print("wrote " + ", ".join(str(p) for p in paths.values()))
