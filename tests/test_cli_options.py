"""The option bundles: every command that takes a depth source or a model spells those flags the same way."""

from __future__ import annotations

import pytest
import typer

from sharpdepth.cli.depth_source import DEPTH_SOURCE_OPTIONS
from sharpdepth.cli.main import _command, main
from sharpdepth.cli.options import MODEL_OPTIONS
from sharpdepth.engine.settings import DEFAULT_MODEL, ModelSettings

DEPTH_COMMANDS = ("dof", "portrait", "parallax", "stereo", "pointcloud", "measure")
MODEL_COMMANDS = ("predict", "video", "serve")


def _params(command: str) -> dict[str, object]:
    root = _command()
    return {p.name: p for p in root.commands[command].params}  # type: ignore[attr-defined]


def _flags(bundle) -> set[str]:
    return {p.name for p in bundle.options}


@pytest.mark.parametrize("command", DEPTH_COMMANDS)
def test_every_depth_command_takes_the_whole_depth_source_bundle(command):
    params = _params(command)
    assert _flags(DEPTH_SOURCE_OPTIONS) <= set(params)
    assert {"image", "depth", "model", "weights", "device", "focal_px", "max_pixels"} == _flags(DEPTH_SOURCE_OPTIONS)
    reference = _params("dof")
    for name in _flags(DEPTH_SOURCE_OPTIONS):  # same spelling, same default, same help everywhere
        mine, theirs = params[name], reference[name]
        assert (mine.opts, mine.default, mine.help) == (theirs.opts, theirs.default, theirs.help)  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_predict_video_and_serve_take_every_model_flag(command):
    params = _params(command)
    assert _flags(MODEL_OPTIONS) <= set(params)
    assert "backend" in params  # video and serve had no --backend before the bundle
    assert params["model"].default == DEFAULT_MODEL == ModelSettings().name  # type: ignore[attr-defined]


def test_video_backend_reaches_the_model_settings(tmp_path, capsys):
    # refused by ModelSettings itself (onnxruntime runs the fp32 graph): the flag is parsed and used
    code = main(["video", str(tmp_path / "clip.mp4"), "--backend", "onnxruntime", "--precision", "bf16"])
    err = capsys.readouterr().err
    assert code == 2 and "--backend onnxruntime runs the fp32 graph" in err and "No such option" not in err


def test_bundled_command_gets_the_built_object():
    from sharpdepth.cli.options import bundled

    got: list[ModelSettings] = []
    app = typer.Typer()

    @app.command()
    @bundled(model=MODEL_OPTIONS)
    def run(model: ModelSettings, quiet: bool = False) -> None:
        got.append(model)

    from typer.testing import CliRunner

    result = CliRunner().invoke(app, ["--model", "midas-v21-small-256", "--threads", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    assert got == [ModelSettings(name="midas-v21-small-256", threads=3)]


RAY_FLAGS = {"ray", "ray_address", "ray_actors", "ray_gpus_per_actor", "ray_cpus_per_actor"}


@pytest.mark.parametrize("command", ("predict", "video"))
def test_predict_and_video_spell_the_ray_flags_alike(command):
    from sharpdepth.cli.options import RAY_OPTIONS

    params, reference = _params(command), _params("predict")
    assert _flags(RAY_OPTIONS) == RAY_FLAGS <= set(params)
    for name in RAY_FLAGS:
        mine, theirs = params[name], reference[name]
        assert (mine.opts, mine.default, mine.help) == (theirs.opts, theirs.default, theirs.help)  # type: ignore[attr-defined]


def test_ray_flags_become_ray_settings_with_the_model_threads():
    from sharpdepth.cli.options import LOCAL_RUN, RayFlags
    from sharpdepth.distributed.settings import RaySettings

    assert LOCAL_RUN.settings(threads=4) is None  # no --ray flag: a local run
    assert RayFlags(address="auto").settings(3) == RaySettings(address="auto", threads=3)  # an address implies --ray
    wide = RayFlags(ray=True, actors=5, gpus=0.5, cpus=2.0).settings(None)
    assert wide == RaySettings(actors=5, gpus_per_actor=0.5, cpus_per_actor=2.0, threads=None)
