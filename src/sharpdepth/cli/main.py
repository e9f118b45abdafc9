"""`sharpdepth` command line: one Typer app; each command group lives in its own module.

Adding a command group is one line in `COMMAND_MODULES`: a module with
`register(app)` that keeps its heavy imports (torch, the models, the engine)
inside its command functions, so `sharpdepth --help` and `sharpdepth info`
answer without loading torch.

`main()` is the one place where failures become exit statuses, never tracebacks:
- usage errors (unknown command or option, missing argument, bad value, a
  value given to a flag): the usage line, one `error:` line, exit 2;
- `SharpDepthError` (bad input, option, weights): `error: <message>`, exit 2;
- `OSError` on outputs (read-only folder, disk full): `error: <one line>`, exit 1;
- Ctrl-C: `interrupted`, exit 130.
Typer vendors click as `typer._click`; handlers are written for both that and
plain click, so neither's exceptions escape.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

import typer

from ..errors import SharpDepthError
from .options import ThreadsOpt, apply_threads

# Each module defines `register(app)`. Listed explicitly so the command set is visible here.
COMMAND_MODULES: tuple[str, ...] = (
    "sharpdepth.cli.predict",
    "sharpdepth.cli.scene",
    "sharpdepth.cli.weights",
    "sharpdepth.cli.geometry",
    "sharpdepth.cli.effects",
    "sharpdepth.cli.stereo",
    "sharpdepth.cli.evaluate",
    "sharpdepth.cli.video",
    "sharpdepth.cli.export",
    "sharpdepth.cli.serve",
    "sharpdepth.cli.finetune",
    "sharpdepth.cli.splat",
)

PROG = "sharpdepth"
_BOOL_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "1", "0", "y", "n", "t", "f"})


def _click_modules() -> tuple[object, ...]:
    """click's exception modules: typer's vendored copy, and plain click where installed."""
    modules: list[object] = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            continue
    return tuple(modules)


def _classes(attr: str) -> tuple[type[BaseException], ...]:
    return tuple(getattr(m, attr) for m in _click_modules() if hasattr(m, attr))


def build_app() -> typer.Typer:
    """The Typer app with every command module registered (a missing module fails loudly)."""
    app = typer.Typer(
        name=PROG,
        help="Sharp monocular depth: metric depth, focal length and what you do with them.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _root(threads: ThreadsOpt = None) -> None:
        """Sharp monocular depth: metric depth, focal length and what you do with them."""
        apply_threads(threads)  # `sharpdepth --threads N <command>`: for every command that runs a network

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)
    return app


app = build_app()


def _command() -> object:
    """The click command tree of `app`, with flags shown without a `<bool>` value in help."""
    command = typer.main.get_command(app)
    for cmd in _walk(command):
        params = list(getattr(cmd, "params", ()))
        try:  # --help is made on demand (and cached): make it now to label it too
            params.append(cmd.get_help_option(cmd.context_class(cmd, info_name=PROG)))  # type: ignore[attr-defined]
        except Exception:  # a command without the usual help machinery keeps its labels
            pass
        for param in params:
            if getattr(param, "is_flag", False) and not getattr(param, "count", False):
                param.metavar = ""
    return command


def _walk(command: object) -> list[object]:
    found = [command]
    for sub in (getattr(command, "commands", None) or {}).values():
        found.extend(_walk(sub))
    return found


def _resolve(command: object, argv: Sequence[str]) -> tuple[list[object], list[str]]:
    """(command chain from the root, the arguments after the last command name) for usage messages."""
    chain, rest = [command], list(argv)
    while rest and getattr(chain[-1], "commands", None) and not rest[0].startswith("-"):
        sub = chain[-1].commands.get(rest[0])  # type: ignore[attr-defined]
        if sub is None:
            break
        chain.append(sub)
        rest = rest[1:]
    return chain, rest


def _usage(chain: list[object]) -> str:
    names = [PROG, *(str(getattr(c, "name", "")) for c in chain[1:])]
    cmd = chain[-1]
    line = " ".join(names)
    try:
        ctx = cmd.context_class(cmd, info_name=line)  # type: ignore[attr-defined]
        line = " ".join([line, *cmd.collect_usage_pieces(ctx)])  # type: ignore[attr-defined]
    except Exception:  # the usage line is a courtesy; never let it hide the error itself
        pass
    return f"Usage: {line}\nTry '{' '.join(names)} --help' for help."


def _flag_with_value(chain: list[object], rest: list[str]) -> str | None:
    """`--no-view true`: a flag takes no value, and `true` is not meant as an input file."""
    flags = {
        opt
        for param in getattr(chain[-1], "params", ())
        if getattr(param, "is_flag", False)
        for opt in (*getattr(param, "opts", ()), *getattr(param, "secondary_opts", ()))
    }
    for flag, value in zip(rest, rest[1:], strict=False):
        if flag == "--":
            return None
        if flag in flags and value.lower() in _BOOL_WORDS and not Path(value).exists():
            return f"{flag} is a flag and takes no value (drop {value!r}, or write --{flag.lstrip('-')} alone)"
    return None


def _dash_hint(rest: list[str]) -> str:
    for token in rest:
        if token.startswith("-") and token != "-" and Path(token).exists():
            return f" (a file name starting with '-' goes after '--': {PROG} ... -- {token})"
    return ""


def _usage_error(chain: list[object], message: str) -> int:
    sys.stderr.write(f"{_usage(chain)}\nerror: {message}\n")
    return 2


def main(argv: list[str] | None = None) -> int:
    """Run the command line on `argv` (default: sys.argv) and return the exit status; never raises."""
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:  # also while the command tree is being built or an error printed
        return _interrupted()


def _main(args: list[str]) -> int:
    command = _command()
    chain, rest = _resolve(command, args)
    problem = _flag_with_value(chain, rest)
    if problem is not None:
        return _usage_error(chain, problem)
    usage_errors, click_errors, aborts, exits = (
        _classes("UsageError"),
        _classes("ClickException"),
        _classes("Abort"),
        _classes("Exit"),
    )
    try:
        code = command.main(args=args, prog_name=PROG, standalone_mode=False)  # type: ignore[attr-defined]
    except SharpDepthError as exc:
        # Plain write: a rich console would wrap the one-line message at 80 columns.
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return _interrupted()
    except typer.Exit as exc:
        return int(exc.exit_code)
    except usage_errors as exc:
        ctx = getattr(exc, "ctx", None)
        chain = _chain_of(ctx) or chain
        return _usage_error(chain, exc.format_message() + _dash_hint(rest))  # type: ignore[attr-defined]
    except click_errors as exc:
        sys.stderr.write(f"error: {exc.format_message()}\n")  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 1))
    except aborts as exc:
        if isinstance(exc.__context__, KeyboardInterrupt) or isinstance(exc.__cause__, KeyboardInterrupt):
            return _interrupted()
        sys.stderr.write("aborted\n")
        return 1
    except exits as exc:
        return int(getattr(exc, "exit_code", 0))
    except OSError as exc:
        sys.stderr.write(f"error: {_os_error_line(exc)}\n")
        return 1
    if code == 130:  # typer turns Ctrl-C inside a command into a silent Exit(130)
        return _interrupted()
    return code if isinstance(code, int) else 0


def _chain_of(ctx: object) -> list[object]:
    chain: list[object] = []
    while ctx is not None:
        chain.insert(0, getattr(ctx, "command", None))
        ctx = getattr(ctx, "parent", None)
    return [c for c in chain if c is not None]


def _os_error_line(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or type(exc).__name__
    return f"{where}: {reason}" if where else reason


def _interrupted() -> int:
    sys.stderr.write("interrupted\n")
    return 130


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
