"""Option declarations shared by commands, so every command spells them, and checks them, the same way.

Declarations only (no torch): `sharpdepth --help` imports every command module.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ..io.images import DEFAULT_MAX_PIXELS

ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads",
        min=1,
        help="CPU threads for the network (default: one per core; fewer is faster on a busy machine).",
    ),
]
MaxPixelsOpt = Annotated[
    int,
    typer.Option("--max-pixels", min=1, help="Refuse images larger than this many pixels (decompression-bomb guard)."),
]
DEFAULT_MAX_PIXELS_OPT = DEFAULT_MAX_PIXELS


def apply_threads(threads: int | None) -> None:
    """Set torch's CPU thread count for this process (imports torch only when a count is given)."""
    from ..engine.settings import set_threads

    set_threads(threads)
