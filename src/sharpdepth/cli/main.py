"""`sharpdepth` command line: one Typer app; each command group lives in its own module.

Every user-caused failure is a `SharpDepthError`; `main()` prints its one-line
message and exits with status 2 instead of showing a traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer

from ..errors import SharpDepthError

app = typer.Typer(
    name="sharpdepth",
    help="Sharp monocular depth: metric depth, focal length and what you do with them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module defines `register(app)`. Listed explicitly so the command set is visible here.
COMMAND_MODULES = (
    "sharpdepth.cli.predict",
    "sharpdepth.cli.weights",
    "sharpdepth.cli.geometry",
    "sharpdepth.cli.effects",
    "sharpdepth.cli.evaluate",
    "sharpdepth.cli.export",
    "sharpdepth.cli.finetune",
)


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # command group not part of this build
                continue
            raise
        module.register(app)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    try:
        code = app(args=argv, standalone_mode=False)
    except SharpDepthError as exc:
        # Plain write: a rich console would wrap the one-line message at 80 columns.
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            return 1
        raise
    return code if isinstance(code, int) else 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
