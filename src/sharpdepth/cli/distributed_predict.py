"""`sharpdepth predict --ray`: the predict job on Ray Data, with the local run's progress bar and report."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..engine.settings import PredictSettings

console = Console(stderr=True)


def run_predict_ray(
    inputs: list[str],
    out_dir: Path,
    settings: PredictSettings,
    address: str | None,
    actors: int,
    cpus_per_actor: float | None,
    gpus_per_actor: float,
    show_progress: bool = True,
) -> tuple[int, list[tuple[str, str]]]:
    """Same contract as `run_predict`: (number written, [(input, error)])."""
    from ..distributed import RaySettings, predict_dataset

    ray_settings = RaySettings(
        address=address, actors=actors, cpus_per_actor=cpus_per_actor, gpus_per_actor=gpus_per_actor
    )
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=not show_progress, transient=True) as progress:
        task = progress.add_task(f"{settings.model.name} on Ray", total=None)
        summary = predict_dataset(
            inputs,
            out_dir,
            settings,
            ray_settings=ray_settings,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    return summary.written, [(f.source, f.reason) for f in summary.failures]
