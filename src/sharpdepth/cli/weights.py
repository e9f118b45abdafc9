"""`sharpdepth weights list | download NAME | path NAME | convert IN OUT | random NAME OUT`.

Test presets (`depth-pro-tiny`, `depth-anything-v2-tiny`, ...) are the families' code paths
at tiny widths, without published weights: `weights list` names them, and `weights random`
writes a checkpoint of their random initialisation, so every command can be tried offline.

The weights and engine modules (torch) are imported inside the commands, so
`sharpdepth --help` does not pay for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..errors import OptionError, WeightsError
from ..registry import get_spec, list_specs

weights_app = typer.Typer(help="List, download, locate and convert model weights.", no_args_is_help=True)


TEST_PRESET_SOURCE = "test preset: `weights random`"
"""What `weights list --all` shows as the source of a test preset (no weights are published)."""


@weights_app.command("list")
def list_weights(
    all_models: Annotated[
        bool, typer.Option("--all", help="Include the test presets (tiny, no published weights; try commands offline).")
    ] = False,
) -> None:
    """Every registered model: output kind, size, licence, source and whether it is cached."""
    from ..weights.hub import cached_path

    table = Table("model", "output", "params", "input", "licence", "source", "cached")
    for spec in list_specs(include_test_only=all_models):
        source = spec.sources[0] if spec.sources else None
        cached = "yes" if any(cached_path(s) for s in spec.sources) else "no"
        params = f"{spec.params_millions:.0f}M" if spec.params_millions else "-"
        where = f"{source.repo_id}/{source.filename}" if source else "(none published)"
        if spec.test_only:
            where, cached = TEST_PRESET_SOURCE, "-"
        table.add_row(spec.name, str(spec.output_kind), params, spec.native_resolution, spec.license, where, cached)
    console = Console()
    if not console.is_terminal:  # pipes and files get the whole table, not an 80-column cut
        console = Console(width=240)
    console.print(table)
    if not all_models:
        tests = ", ".join(s.name for s in list_specs(include_test_only=True) if s.test_only)
        console.print(
            f"Test presets (tiny random networks, to try every command offline; `weights list --all`, "
            f"`sharpdepth weights random NAME OUT.safetensors`): {tests}",
            soft_wrap=True,
        )


@weights_app.command("download")
def download(name: Annotated[str, typer.Argument(help="Model name.")]) -> None:
    """Download a model's weights into the Hugging Face cache (verified) and print the path."""
    from ..weights.hub import resolve_weights

    resolved = resolve_weights(get_spec(name))
    typer.echo(str(resolved.path))


@weights_app.command("path")
def path(name: Annotated[str, typer.Argument(help="Model name.")]) -> None:
    """Print the cached weights file of a model (never downloads)."""
    from ..weights.hub import cached_path

    spec = get_spec(name)
    if not spec.sources:
        raise WeightsError(f"{name} has no published weights; pass a checkpoint with --weights")
    for source in spec.sources:
        found = cached_path(source)
        if found:
            typer.echo(str(found))
            return
    raise WeightsError(f"weights for {name} are not cached; run `sharpdepth weights download {name}`")


@weights_app.command("convert")
def convert(
    src: Annotated[Path, typer.Argument(help="Input checkpoint (.pt/.pth/.bin/.safetensors).")],
    dest: Annotated[Path, typer.Argument(help="Output .safetensors file.")],
    model: Annotated[
        str | None, typer.Option(help="Model name: check keys strictly and convert a transformers-layout file.")
    ] = None,
) -> None:
    """Convert a pickled checkpoint to safetensors once (loaded with weights_only=True)."""
    from ..engine.model import load_network
    from ..io.atomic import ensure_writable_dir
    from ..weights.checkpoint import load_state_dict_file, save_safetensors
    from ..weights.hub import ResolvedWeights

    if dest.suffix != ".safetensors":
        raise WeightsError(f"{dest}: output must end in .safetensors")
    if dest.is_dir():
        raise OptionError(f"{dest}: is a directory; give the output file name")
    ensure_writable_dir(dest.parent)  # before reading a large checkpoint
    if model is None:
        state = load_state_dict_file(src)
    else:
        net = load_network(get_spec(model), ResolvedWeights(src, "auto", "user"))  # strict keys and shapes, fp32
        state = net.state_dict()
    try:
        save_safetensors(state, dest, {"format": "pt", "converted_by": "sharpdepth"})
    except OSError as exc:
        raise OptionError(f"{dest}: cannot write ({exc.strerror or type(exc).__name__})") from None
    typer.echo(f"wrote {dest} ({len(state)} tensors)")


@weights_app.command("random")
def random_weights(
    name: Annotated[str, typer.Argument(help="Model name, usually a test preset (sharpdepth weights list --all).")],
    dest: Annotated[Path, typer.Argument(help="Output .safetensors file.")],
    seed: Annotated[int, typer.Option(help="Seed of the random initialisation.")] = 0,
) -> None:
    """Write a model's random initialisation as a checkpoint: try any command offline with --weights.

    The numbers it predicts are meaningless; the files, options and errors are those of a real run.
    """
    import torch

    from ..io.atomic import ensure_writable_dir
    from ..weights.checkpoint import save_safetensors

    spec = get_spec(name)
    if dest.suffix != ".safetensors":
        raise OptionError(f"{dest}: output must end in .safetensors")
    ensure_writable_dir(dest.parent)
    torch.manual_seed(seed)
    state = {k: v.contiguous() for k, v in spec.build().state_dict().items()}
    try:
        save_safetensors(state, dest, {"format": "pt", "random_init_of": spec.name, "seed": str(seed)})
    except OSError as exc:
        raise OptionError(f"{dest}: cannot write ({exc.strerror or type(exc).__name__})") from None
    typer.echo(f"wrote {dest} ({len(state)} tensors, random weights of {spec.name}: predictions are meaningless)")


def register(app: typer.Typer) -> None:
    app.add_typer(weights_app, name="weights")
