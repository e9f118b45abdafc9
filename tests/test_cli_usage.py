"""Every usage error of every command: the usage line, one `error:` line, exit status 2, no traceback.

The commands are read from the app itself, so a command added later (video,
serve, finetune, export) is covered without touching this file.
"""

from __future__ import annotations

import pytest

from sharpdepth.cli.main import _command, main


def _leaf_commands() -> list[tuple[tuple[str, ...], object]]:
    root = _command()
    found: list[tuple[tuple[str, ...], object]] = []

    def visit(cmd: object, path: tuple[str, ...]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                visit(sub, (*path, name))
        elif path:
            found.append((path, cmd))

    visit(root, ())
    return found


LEAVES = _leaf_commands()
IDS = [" ".join(path) for path, _ in LEAVES]


def _arguments(cmd: object) -> list[object]:
    return [p for p in getattr(cmd, "params", ()) if getattr(p, "param_type_name", "") == "argument"]


def _filled(cmd: object) -> list[str]:
    """Placeholder values for the required arguments (so parsing reaches the options)."""
    return ["placeholder.jpg" for p in _arguments(cmd) if getattr(p, "required", False)]


def _numeric_option(cmd: object) -> str | None:
    for p in getattr(cmd, "params", ()):
        if getattr(p, "param_type_name", "") != "option" or getattr(p, "is_flag", False):
            continue
        bare = getattr(p, "bare_type", None)  # typer's own parameters; plain click ones have .type
        type_name = bare() if callable(bare) else type(getattr(p, "type", None)).__name__.lower()
        if any(word in type_name for word in ("int", "float")) and p.opts:
            return max(p.opts, key=len)
    return None


def _flag(cmd: object) -> str | None:
    for p in getattr(cmd, "params", ()):
        if getattr(p, "is_flag", False) and p.opts:
            return max(p.opts, key=len)
    return None


def _assert_usage_error(capsys, args: list[str], mentions: str | None = None) -> None:
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, f"{args}: exit {code}\n{err}"
    assert "Traceback" not in err
    assert err.startswith("Usage: sharpdepth"), err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    if mentions is not None:
        assert mentions in errors[0], err


def test_the_app_has_the_known_commands():
    names = set(IDS)
    assert {"predict", "info", "weights convert", "dof", "measure"} <= names


@pytest.mark.parametrize("path,cmd", LEAVES, ids=IDS)
def test_unknown_option(capsys, path, cmd):
    _assert_usage_error(capsys, [*path, *_filled(cmd), "--bogus-flag-xyz"], "--bogus-flag-xyz")


@pytest.mark.parametrize("path,cmd", LEAVES, ids=IDS)
def test_missing_argument(capsys, path, cmd):
    required = [p for p in _arguments(cmd) if getattr(p, "required", False)]
    if not required:
        pytest.skip("no required argument")
    _assert_usage_error(capsys, list(path), "Missing argument")


@pytest.mark.parametrize("path,cmd", LEAVES, ids=IDS)
def test_bad_value_type(capsys, path, cmd):
    option = _numeric_option(cmd)
    if option is None:
        pytest.skip("no numeric option")
    _assert_usage_error(capsys, [*path, *_filled(cmd), option, "abc"], option)


@pytest.mark.parametrize("path,cmd", LEAVES, ids=IDS)
def test_file_name_starting_with_dash(capsys, tmp_path, monkeypatch, path, cmd):
    if not _arguments(cmd):
        pytest.skip("takes no file argument")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-photo.jpg").write_bytes(b"")
    _assert_usage_error(capsys, [*path, "-photo.jpg"], "'--'")


@pytest.mark.parametrize("path,cmd", LEAVES, ids=IDS)
def test_flag_given_a_value(capsys, path, cmd):
    flag = _flag(cmd)
    if flag is None:
        pytest.skip("no flag")
    _assert_usage_error(capsys, [*path, *_filled(cmd), flag, "true"], f"{flag} is a flag")


def test_unknown_commands(capsys):
    _assert_usage_error(capsys, ["nosuchcommand"], "nosuchcommand")
    _assert_usage_error(capsys, ["weights", "nosuchcommand"], "nosuchcommand")


def test_help_shows_no_bool_beside_flags(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["predict", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--no-view" in out and "<bool>" not in out


def test_errors_and_interrupts_from_commands(capsys, monkeypatch):
    import sharpdepth.cli.predict as predict_cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(predict_cli, "load_image", interrupted)
    assert main(["info", "x.jpg"]) == 130
    assert capsys.readouterr().err.strip().endswith("interrupted")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device", "/out/x.png")

    monkeypatch.setattr(predict_cli, "load_image", disk_full)
    assert main(["info", "x.jpg"]) == 1
    assert capsys.readouterr().err == "error: /out/x.png: No space left on device\n"


@pytest.mark.timeout(120)
def test_sigint_exits_130_and_says_interrupted(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    fifo = tmp_path / "never.jpg"
    os.mkfifo(fifo)  # opening it blocks: the command is busy when the signal comes
    code = (
        "import sys; from sharpdepth.cli.main import main; print('ready', flush=True); "
        f"sys.exit(main(['info', {str(fifo)!r}]))"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err
