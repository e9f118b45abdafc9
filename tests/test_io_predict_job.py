"""Issue 13 on `predict`: resuming, failures as they happen, the output check before the model, notices.

The network is replaced by a small stand-in (`ModelSettings.load` patched): these
tests are about the job around it, and must stay fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from sharpdepth.cli.main import main
from sharpdepth.engine import settings as settings_module
from sharpdepth.io.images import LoadedImage
from sharpdepth.result import DepthResult, FocalSource, OutputKind


class StandIn:
    """Duck-typed DepthModel: depth = 1 + column / width metres (or a clamped sky)."""

    def __init__(self, name: str, kind: OutputKind, sky: bool = False) -> None:
        self.name, self.kind, self.sky = name, kind, sky
        self.device, self.dtype = "cpu", "torch.float32"
        self.processor = SimpleNamespace(input_size=None)
        self.calls = 0

    def predict_batch(self, loaded: list[LoadedImage], focal_px=None, fov_deg=None, batch_size=1):
        self.calls += len(loaded)
        out = []
        for img in loaded:
            depth = 1.0 + np.tile(np.arange(img.width, dtype=np.float32) / img.width, (img.height, 1))
            if self.sky:
                depth[: img.height * 3 // 4] = 1e4
            out.append(DepthResult(depth, self.kind, 50.0, FocalSource.MODEL, self.name, image=img.rgb,
                                   source=img.path))  # fmt: skip
        return out


@pytest.fixture
def stand_in(monkeypatch):
    models: list[StandIn] = []
    options = {"sky": False}

    def load(self):
        if self.threads is not None:
            settings_module.set_threads(self.threads)
        kind = OutputKind.RELATIVE_DISPARITY if self.name.startswith("midas") else OutputKind.METRIC_DEPTH
        models.append(StandIn(self.name, kind, options["sky"]))
        return models[-1]

    monkeypatch.setattr(settings_module.ModelSettings, "load", load)
    return SimpleNamespace(models=models, options=options)


def _photos(folder: Path, names=("a.jpg", "b.jpg")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(np.full((12, 16, 3), 40 * i, np.uint8)).save(folder / name)
    return folder


def _predict(*args) -> int:
    return main(["predict", *map(str, args), "--model", "depth-pro-tiny", "-q"])


def test_skip_existing_skips_only_what_is_really_done(tmp_path, stand_in, capsys):
    src, out = _photos(tmp_path / "in"), tmp_path / "out"
    assert _predict(src, "-o", out, "--format", "npz") == 0
    capsys.readouterr()
    assert _predict(src, "-o", out, "--format", "npz", "--skip-existing") == 0
    err = capsys.readouterr().err
    assert "skipped 2 image(s) already done" in err and "wrote 0 result(s)" in err
    assert _predict(src, "-o", out, "--format", "npz,pfm", "--skip-existing") == 0  # more outputs asked for
    assert (out / "a_depth.pfm").is_file() and "wrote 2 result(s)" in capsys.readouterr().err
    (out / "b_depth.pfm").unlink()  # a file of a finished image went missing
    assert _predict(src, "-o", out, "--format", "npz,pfm", "--skip-existing") == 0
    assert "wrote 1 result(s)" in capsys.readouterr().err
    side = json.loads((out / "a.json").read_text())
    assert side["job"]["model"] == "depth-pro-tiny" and "a_depth.pfm" in side["files"]
    for key in ("sharpdepth_version", "device", "precision", "input_size"):
        assert key in side
    assert side["precision"] == "fp32" and side["device"] == "cpu"


def test_skip_existing_redoes_images_of_another_model(tmp_path, stand_in, capsys):
    src, out = _photos(tmp_path / "in", ("a.jpg",)), tmp_path / "out"
    assert _predict(src, "-o", out) == 0
    assert main(["predict", str(src), "-o", str(out), "--model", "depth-pro", "-q", "--skip-existing"]) == 0
    assert "wrote 1 result(s)" in capsys.readouterr().err


def test_unwritable_output_fails_before_the_model_is_loaded(tmp_path, stand_in, capsys):
    src = _photos(tmp_path / "in", ("a.jpg",))
    (tmp_path / "afile").write_text("x")
    assert _predict(src, "-o", tmp_path / "afile" / "out") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "cannot write outputs there" in err and len(err.splitlines()) == 1
    assert stand_in.models == []


def test_failures_are_printed_when_they_happen_and_listed_once(tmp_path, stand_in, capsys):
    src = _photos(tmp_path / "in", ("a.jpg",))
    (src / "bomb.png").write_text("not an image")
    assert _predict(src, "-o", tmp_path / "out") == 1
    err = capsys.readouterr().err
    bomb = str(src / "bomb.png")
    live = [line for line in err.splitlines() if line.startswith("failed: ")]
    assert live == [f"failed: {bomb}: not a readable image (unknown or corrupt format)"]
    assert f"  {bomb}: not a readable image (unknown or corrupt format)" in err.splitlines()
    assert f"{bomb}: {bomb}" not in err and "bomb.png: bomb.png" not in err
    assert err.index("failed: ") < err.index("wrote 1 result(s)")


def test_notices_are_said_once_on_the_command_line(tmp_path, stand_in, capsys):
    stand_in.options["sky"] = True
    src, out = _photos(tmp_path / "in"), tmp_path / "out"
    assert _predict(src, "-o", out, "--format", "png16", "--no-view") == 0
    err = capsys.readouterr().err
    saturated = [line for line in err.splitlines() if "16-bit PNG" in line]
    assert len(saturated) == 1 and "75.0%" in saturated[0] and "2 images" in saturated[0]
    assert len([line for line in err.splitlines() if "sits at its maximum" in line]) == 1
    side = json.loads((out / "a.json").read_text())
    assert side["png16_saturated_share"] == pytest.approx(0.75) and side["clamped_share"] == pytest.approx(0.75)


def test_normals_skipped_for_a_relative_model_is_said(tmp_path, stand_in, capsys):
    src = _photos(tmp_path / "in", ("a.jpg",))
    assert main(["predict", str(src), "-o", str(tmp_path / "out"), "--model", "midas-v21-small-256", "-q",
                 "--normals"]) == 0  # fmt: skip
    assert "normal view skipped" in capsys.readouterr().err


def test_odd_exif_is_noted_and_the_picture_kept(tmp_path, stand_in, capsys):
    src = tmp_path / "in"
    src.mkdir()
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x920A] = "fifty"
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(src / "odd.jpg", exif=exif.tobytes())
    out = tmp_path / "out"
    assert _predict(src, "-o", out) == 0
    assert "FocalLength 'fifty' is not a number" in capsys.readouterr().err
    assert any("fifty" in n for n in json.loads((out / "odd.json").read_text())["input_notes"])


def test_same_stem_collision_gets_distinct_names_and_is_said(tmp_path, stand_in, capsys):
    src = _photos(tmp_path / "in", ("IMG_0001.jpg", "IMG_0001.png"))
    out = tmp_path / "out"
    assert _predict(src, "-o", out) == 0
    assert (out / "IMG_0001.jpg.npz").is_file() and (out / "IMG_0001.png.npz").is_file()
    assert capsys.readouterr().err.count("another input has the same name") == 2


def test_stale_parts_are_cleaned_on_start(tmp_path, stand_in, capsys):
    src, out = _photos(tmp_path / "in", ("a.jpg",)), tmp_path / "out"
    out.mkdir()
    pid = 4_100_000
    while True:
        try:
            os.kill(pid, 0)
            pid += 1
        except ProcessLookupError:
            break
        except PermissionError:
            pid += 1
    stale = out / f".a.{pid}.x1y2z3ab.part.npz"
    stale.write_bytes(b"half")
    assert _predict(src, "-o", out) == 0
    assert not stale.exists() and "removed 1 stale temporary file" in capsys.readouterr().err


def test_threads_option_sets_torch_threads(tmp_path, stand_in, monkeypatch):
    import torch

    seen = []
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    assert _predict(_photos(tmp_path / "in", ("a.jpg",)), "-o", tmp_path / "out", "--threads", "1") == 0
    assert seen == [1]
    assert _predict(tmp_path / "in", "-o", tmp_path / "out", "--threads", "0") == 2


def test_empty_format_is_an_error(tmp_path, stand_in, capsys):
    assert _predict(_photos(tmp_path / "in", ("a.jpg",)), "-o", tmp_path / "out", "--format", "") == 2
    assert "--format needs at least one" in capsys.readouterr().err and stand_in.models == []


def test_settings_refuse_bad_values_without_loading_torch_models():
    from sharpdepth.engine.settings import FocalSettings, ModelSettings
    from sharpdepth.errors import OptionError

    for bad in ({"focal_px": 0.0}, {"fov_deg": 180.0}, {"focal_px": 10.0, "fov_deg": 50.0}):
        with pytest.raises(OptionError):
            FocalSettings(**bad)
    for bad in ({"threads": 0}, {"precision": "fp8"}, {"input_size": -1}, {"name": ""}):
        with pytest.raises(OptionError):
            ModelSettings(**bad)


def test_weights_convert_onto_an_unwritable_output_is_one_line(tmp_path, capsys):
    import torch

    torch.save({"w": torch.zeros(2)}, tmp_path / "c.pt")
    (tmp_path / "afile").write_text("x")
    assert main(["weights", "convert", str(tmp_path / "c.pt"), str(tmp_path / "afile" / "c.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in err
    assert main(["weights", "convert", str(tmp_path / "c.pt"), str(tmp_path / "c.safetensors")]) == 0


def test_weights_path_of_a_model_without_published_weights(capsys):
    assert main(["weights", "path", "depth-pro-tiny"]) == 2
    err = capsys.readouterr().err
    assert "no published weights" in err and "download" not in err


def test_an_image_too_large_for_memory_does_not_end_the_batch(tmp_path, stand_in, monkeypatch, capsys):
    src = _photos(tmp_path / "in", ("a.jpg", "b.jpg"))
    original = StandIn.predict_batch

    def predict_batch(self, loaded, **kwargs):
        if loaded and loaded[0].path.endswith("a.jpg"):
            raise MemoryError("Unable to allocate 24.0 GiB for an array")
        return original(self, loaded, **kwargs)

    monkeypatch.setattr(StandIn, "predict_batch", predict_batch)
    assert _predict(src, "-o", tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "not enough memory" in err and "wrote 1 result(s)" in err and "Traceback" not in err


def test_threads_is_also_a_global_option(tmp_path, monkeypatch):
    import torch

    seen = []
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    Image.new("RGB", (8, 6)).save(tmp_path / "p.jpg")
    assert main(["--threads", "2", "info", str(tmp_path / "p.jpg")]) == 0
    assert seen == [2]
