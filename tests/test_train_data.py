"""Training data: scene splits, depth-consistent augmentation, the deterministic stream, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sharpdepth.cli.main import main
from sharpdepth.eval.datasets import Entry, open_dataset
from sharpdepth.train.data import (
    Augment,
    SampleStream,
    View,
    augment_view,
    color_jitter,
    crop,
    hflip,
    scene_of,
    split_entries,
)
from sharpdepth.train.settings import TrainSettings, default_loss
from test_train_loop import make_rgbd


def _view(h: int = 20, w: int = 30) -> View:
    rng = np.random.default_rng(3)
    depth = rng.uniform(1, 5, (h, w)).astype(np.float32)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return View(image, depth, np.ones((h, w), bool), 25.0, (14.2, 9.7))


def _point(view: View, u: int, v: int) -> np.ndarray:
    """Back-projection of pixel (u, v) through the view's intrinsics."""
    assert view.principal is not None and view.focal_px is not None
    z = float(view.depth[v, u])
    cx, cy = view.principal
    return np.array([(u - cx) * z / view.focal_px, (v - cy) * z / view.focal_px, z])


def test_crop_keeps_every_pixel_on_the_same_3d_point() -> None:
    view = _view()
    cut = crop(view, top=3, left=5, height=10, width=20)
    assert cut.focal_px == view.focal_px and cut.depth.shape == (10, 20)
    for u, v in ((0, 0), (7, 4), (19, 9)):
        assert np.allclose(_point(cut, u, v), _point(view, u + 5, v + 3))


def test_flip_mirrors_the_scene_and_twice_is_identity() -> None:
    view = _view()
    flipped = hflip(view)
    w = view.depth.shape[1]
    for u, v in ((0, 0), (11, 5)):
        mirrored = _point(flipped, w - 1 - u, v)
        original = _point(view, u, v)
        assert np.allclose(mirrored, original * np.array([-1, 1, 1]))
    again = hflip(flipped)
    assert np.array_equal(again.image, view.image) and again.principal == pytest.approx(view.principal)


def test_colour_jitter_changes_only_the_image() -> None:
    view = _view()
    assert np.array_equal(color_jitter(view.image, 1.0, 1.0, 1.0), view.image)
    out = augment_view(view, Augment(flip=False, crop_min=1.0, color_jitter=0.5), np.random.default_rng(0))
    assert np.array_equal(out.depth, view.depth) and out.principal == view.principal
    assert not np.array_equal(out.image, view.image)


def test_split_is_by_scene_and_stable(tmp_path: Path) -> None:
    root = make_rgbd(tmp_path / "d", scenes=5, per_scene=2)
    entries = open_dataset("folder", root).index()
    assert {scene_of(e, root) for e in entries} == {f"scene{i}" for i in range(5)}
    train, val = split_entries(entries, root, 0.4, seed=0)
    assert len(val) == 4 and len(train) == 6
    assert not {scene_of(e, root) for e in train} & {scene_of(e, root) for e in val}
    assert split_entries(entries, root, 0.4, seed=0) == (train, val)
    train, val = split_entries(entries, root, 0.0, ("scene3",))
    assert {scene_of(e, root) for e in val} == {"scene3"}
    # One scene only: split by image.
    single = [Entry(f"im{i}", {"image": root / "x" / f"{i}.png"}) for i in range(10)]
    train, val = split_entries(single, root / "x", 0.2)
    assert len(val) == 2 and len(train) == 8


def test_stream_is_a_seeded_permutation_per_epoch(tmp_path: Path) -> None:
    import sharpdepth

    root = make_rgbd(tmp_path / "d", scenes=1, per_scene=4)
    dataset = open_dataset("folder", root, focal_px="40")
    adapter = sharpdepth.load("depth-anything-v2-tiny", random_weights=True, input_size=28).processor
    stream = SampleStream(dataset, dataset.index(), adapter, Augment(), seed=1)
    first_epoch = [stream.entry_index(k) for k in range(4)]
    assert sorted(first_epoch) == [0, 1, 2, 3]
    a, b = stream.item(5), stream.item(5)
    assert np.array_equal(a.image.numpy(), b.image.numpy()) and np.array_equal(a.depth.numpy(), b.depth.numpy())
    assert tuple(a.image.shape[-2:]) == stream.size == tuple(stream.item(2).image.shape[-2:])
    assert float(a.focal_px[0]) == 40.0


def test_default_loss_per_family() -> None:
    assert default_loss("depth_pro", True) == "depth-pro"
    assert default_loss("depth_anything", True) == "silog"
    assert default_loss("depth_anything", False) == "affine"
    assert default_loss("midas", False) == "ssi"
    s = TrainSettings(model="depth-pro", root=Path("."), output=Path("o"), train="fov")
    assert s.loss_for("depth_pro", True) == "fov"


def test_cli_trains_and_reports_bad_options_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_rgbd(tmp_path / "d", scenes=2, per_scene=2)
    out = tmp_path / "run"
    base = ["finetune", "--model", "depth-anything-v2-tiny", "--random-weights", "--input-size", "28"]
    base += ["--dataset", "folder", "--root", str(root), "-o", str(out), "--device", "cpu"]
    assert main([*base, "--steps", "2", "--lr", "1e-3", "--freeze", "encoder", "--train", "decoder", "-q"]) == 0
    assert (out / "final.safetensors").is_file() and (out / "last" / "state.pt").is_file()
    capsys.readouterr()
    assert main([*base, "--loss", "silog"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "metric" in err and "\n" not in err
    assert main([*base, "--freeze", "wheels"]) == 2
    assert "--freeze" in capsys.readouterr().err


def _blank_depths(root: Path) -> None:
    for path in root.rglob("*_depth.npy"):
        np.save(path, np.zeros_like(np.load(path)))


def test_cli_refuses_a_dataset_without_valid_depth_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_rgbd(tmp_path / "d", scenes=2, per_scene=2)
    _blank_depths(root)
    out = tmp_path / "run"
    args = ["finetune", "--model", "depth-anything-v2-tiny", "--random-weights", "--input-size", "28"]
    args += ["--dataset", "folder", "--root", str(root), "-o", str(out), "--device", "cpu", "--steps", "2", "-q"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "4 sample(s) whose depth map has no valid pixel" in err
    assert not out.exists()


def test_survey_drops_empty_depth_reports_resized_and_unpaired(tmp_path: Path) -> None:
    from sharpdepth.train.data import sample_view, survey

    root = make_rgbd(tmp_path / "d", scenes=1, per_scene=4, size=(36, 44))
    folder = root / "scene0"
    np.save(folder / "f1_depth.npy", np.zeros((36, 44), np.float32))  # no valid pixel
    half = np.load(folder / "f2_depth.npy")[::2, ::2]
    np.save(folder / "f2_depth.npy", half)  # 18x22 for a 36x44 image
    (folder / "f3_depth.npy").unlink()  # an image without depth
    dataset = open_dataset("folder", root)
    found = survey(dataset, dataset.index())
    assert [e.name for e in found.usable] == ["scene0__f0_rgb", "scene0__f2_rgb"]
    assert found.no_valid_depth == ["scene0__f1_rgb"]
    assert found.resized == [("scene0__f2_rgb", (18, 22), (36, 44))]
    assert found.unpaired == ["scene0/f3_rgb.png"]
    notes = "\n".join(found.notes("training data"))
    assert "skipped 1 image(s) without a depth file" in notes and "scene0/f3_rgb.png" in notes
    assert "dropped 1 sample(s)" in notes and "resized 1 depth map(s)" in notes and "22x18 -> 44x36" in notes
    # The resized map sits on the image grid, each pixel the nearest stored one.
    view = sample_view(dataset.load(found.usable[1]))
    assert view.depth.shape == (36, 44) and view.valid.shape == (36, 44)
    np.testing.assert_array_equal(view.depth[::2, ::2][view.valid[::2, ::2]], half[np.isfinite(half) & (half > 0)])
