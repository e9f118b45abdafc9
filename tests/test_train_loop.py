"""The trainer: exact resume, DDP == one process, official-layout checkpoints, every family.

All runs use test-only tiny networks from random weights on a small synthetic folder
dataset (a few seconds each).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import sharpdepth
from sharpdepth.errors import OptionError
from sharpdepth.train.loop import run_finetune
from sharpdepth.train.settings import TrainSettings
from sharpdepth.weights.checkpoint import load_state_dict_file

FOCAL = (("focal_px", "40"),)
EXACT: dict[str, object] = {"model": "depth-anything-v2-metric-tiny", "loss": "silog", "freeze": ("encoder",)}
"""Set-up of the equality tests. Parameters whose true gradient is exactly zero must not
train there: attention key biases (softmax ignores a common shift of the logits) and, under
shift-invariant losses, the last bias. Adam divides their rounding noise, which depends on
summation order, by its own magnitude and turns it into +-lr steps. The metric model with
SILog and a frozen encoder has no such parameter."""


def make_rgbd(root: Path, scenes: int = 2, per_scene: int = 3, size: tuple[int, int] = (36, 44)) -> Path:
    """Folder-layout RGB-D pairs (flat `<name>_rgb.png` + `<name>_depth.npy`), one folder per scene.

    Depth is a tilted plane plus a box, the image a shading of it, so a network can learn something.
    """
    rng = np.random.default_rng(0)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for s in range(scenes):
        folder = root / f"scene{s}"
        folder.mkdir(parents=True)
        for i in range(per_scene):
            depth = 1.0 + 0.05 * yy + 0.02 * (i + 1) * xx
            top, left = rng.integers(0, h // 2), rng.integers(0, w // 2)
            depth[top : top + h // 3, left : left + w // 3] *= 0.6
            shade = np.clip(255 * (1.5 / depth), 0, 255)
            depth[0, :3] = 0  # unknown pixels
            rgb = np.stack([shade, shade * 0.8, 255 - shade], -1).astype(np.uint8)
            Image.fromarray(rgb).save(folder / f"f{i}_rgb.png")
            np.save(folder / f"f{i}_depth.npy", depth.astype(np.float32))
    return root


@pytest.fixture(scope="module")
def rgbd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_rgbd(tmp_path_factory.mktemp("rgbd"))


def settings(root: Path, out: Path, **kw: Any) -> TrainSettings:
    """A tiny, quiet CPU run; `kw` overrides any field (validated again by `replace`)."""
    base = TrainSettings(
        model="depth-anything-v2-tiny",
        random_weights=True,
        input_size=28,
        device="cpu",
        dataset="folder",
        root=root,
        dataset_options=FOCAL,
        val_fraction=0.0,
        steps=4,
        batch_size=1,
        lr=1e-3,
        output=out,
        quiet=True,
    )
    return replace(base, **kw)


def start_weights(model: str) -> dict[str, torch.Tensor]:
    """The random initial weights a run with seed 0 starts from (the trainer seeds torch, then builds)."""
    torch.manual_seed(0)
    return sharpdepth.load(model, random_weights=True).net.state_dict()


def weights_of(path: Path) -> dict[str, torch.Tensor]:
    return load_state_dict_file(path)


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], atol: float) -> None:
    assert a.keys() == b.keys()
    worst = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())
    assert worst <= atol, worst


def test_training_changes_the_weights_and_checkpoints_load_strictly(rgbd: Path, tmp_path: Path) -> None:
    summary = run_finetune(settings(rgbd, tmp_path / "run", val_fraction=0.5))
    assert summary.final == tmp_path / "run" / "final.safetensors" and summary.final.is_file()
    assert summary.val_before and summary.val_after and summary.best is not None
    start = start_weights("depth-anything-v2-tiny")
    trained = weights_of(summary.final)
    assert set(trained) == set(start)  # official key layout, nothing added or missing
    moved = sum(not torch.equal(trained[k], start[k]) for k in start if start[k].is_floating_point())
    assert moved > 0
    model = sharpdepth.load("depth-anything-v2-tiny", weights=summary.final, input_size=28)  # strict load
    loaded = model.net.state_dict()
    assert all(torch.equal(loaded[k], trained[k]) for k in trained)
    result = model.predict(np.zeros((30, 40, 3), np.uint8))
    assert result.prediction.shape == (30, 40)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert sum('"event": "train"' in line for line in lines) == 4


def test_resume_equals_an_uninterrupted_run(rgbd: Path, tmp_path: Path) -> None:
    common = dict(steps=4, accumulate=2, save_every=0, warmup_steps=1, **EXACT)
    full = run_finetune(settings(rgbd, tmp_path / "full", **common))
    part = run_finetune(settings(rgbd, tmp_path / "part", stop_after=2, **common))
    assert part.final is None and part.steps == 2
    halfway = weights_of(tmp_path / "part" / "last" / "model.safetensors")
    resumed = run_finetune(settings(rgbd, tmp_path / "part", resume=tmp_path / "part", **common))
    assert resumed.steps == 4 and full.final is not None and resumed.final is not None
    assert_same_weights(weights_of(resumed.final), weights_of(full.final), atol=1e-6)
    # ...and resuming really continued: the interrupted weights differ from the final ones.
    with pytest.raises(AssertionError):
        assert_same_weights(halfway, weights_of(full.final), atol=1e-6)


def test_lora_run_resumes_exactly(rgbd: Path, tmp_path: Path) -> None:
    # LoRA adapts the encoder (adapters only, no biases) while decoder and head train in full.
    common = dict(steps=3, model=EXACT["model"], loss="silog", lora_rank=2, train="decoder")
    full = run_finetune(settings(rgbd, tmp_path / "full", **common))
    run_finetune(settings(rgbd, tmp_path / "part", stop_after=1, **common))
    resumed = run_finetune(settings(rgbd, tmp_path / "part", resume=tmp_path / "part" / "last", **common))
    assert full.final is not None and resumed.final is not None
    assert_same_weights(weights_of(resumed.final), weights_of(full.final), atol=1e-6)


def test_resume_refuses_a_different_global_batch(rgbd: Path, tmp_path: Path) -> None:
    run_finetune(settings(rgbd, tmp_path / "a", stop_after=1))
    with pytest.raises(OptionError, match="global batch"):
        run_finetune(settings(rgbd, tmp_path / "a", batch_size=2, resume=tmp_path / "a"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ddp_worker(rank: int, world: int, port: int, s: TrainSettings) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank)
    )
    import torch.distributed as dist

    try:
        run_finetune(s)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_ddp_two_processes_equal_one_process_with_the_same_global_batch(rgbd: Path, tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    common = dict(steps=3, clip_grad=0.5, **EXACT)
    one = run_finetune(settings(rgbd, tmp_path / "one", batch_size=2, **common))
    ddp = settings(rgbd, tmp_path / "ddp", batch_size=1, **common)
    mp.spawn(_ddp_worker, args=(2, _free_port(), ddp), nprocs=2, join=True)
    assert one.final is not None
    assert_same_weights(weights_of(tmp_path / "ddp" / "final.safetensors"), weights_of(one.final), atol=1e-5)


def test_lora_checkpoint_is_merged_into_the_official_layout(rgbd: Path, tmp_path: Path) -> None:
    s = settings(rgbd, tmp_path / "lora", lora_rank=2, train="head", steps=2, lr=1e-2)
    summary = run_finetune(s)
    assert summary.final is not None
    trained = weights_of(summary.final)
    start = start_weights("depth-anything-v2-tiny")
    assert set(trained) == set(start)
    changed = {k for k in start if start[k].is_floating_point() and not torch.equal(trained[k], start[k])}
    assert any(".attn.qkv.weight" in k for k in changed)  # the adapters, folded in
    assert not any(k.endswith("mlp.fc1.weight") for k in changed)  # non-attention encoder weights stay
    assert any("output_conv" in k for k in changed)  # --train head
    assert not any(k.startswith("depth_head.projects") for k in changed)  # decoder stays


def test_freeze_encoder_keeps_it_bit_identical(rgbd: Path, tmp_path: Path) -> None:
    summary = run_finetune(settings(rgbd, tmp_path / "frozen", freeze=("encoder",), steps=2))
    assert summary.final is not None
    trained = weights_of(summary.final)
    start = start_weights("depth-anything-v2-tiny")
    assert all(torch.equal(trained[k], start[k]) for k in start if k.startswith("pretrained."))
    assert any(not torch.equal(trained[k], start[k]) for k in start if k.startswith("depth_head."))


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("depth-anything-v2-metric-tiny", {"precision": "bf16"}),  # silog
        ("midas-v21-small-256", {"input_size": 64}),  # ssi + gradient matching
    ],
)
def test_other_families_train_one_step(rgbd: Path, tmp_path: Path, model: str, extra: dict[str, object]) -> None:
    kw: dict[str, object] = {"model": model, "steps": 1, **extra}
    summary = run_finetune(settings(rgbd, tmp_path / "run", **kw))
    assert summary.final is not None
    sharpdepth.load(model, weights=summary.final)  # strict


def test_depth_pro_trains_depth_and_fov_head_alone(rgbd: Path, tmp_path: Path) -> None:
    s = settings(rgbd, tmp_path / "fov", model="depth-pro-tiny", input_size=None, steps=1, train="fov", lr=1e-2)
    summary = run_finetune(s)
    assert summary.final is not None
    trained = weights_of(summary.final)
    start = start_weights("depth-pro-tiny")
    changed = {k for k in start if start[k].is_floating_point() and not torch.equal(trained[k], start[k])}
    assert changed and all(k.startswith("fov.") for k in changed)


def test_bad_settings_fail_with_one_clear_error(rgbd: Path, tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="--loss"):
        settings(rgbd, tmp_path, loss="nope")
    with pytest.raises(OptionError, match="--train"):
        settings(rgbd, tmp_path, train="everything")
    with pytest.raises(OptionError, match="silog needs a metric model"):
        run_finetune(settings(rgbd, tmp_path / "x", loss="silog"))
    with pytest.raises(OptionError, match="FOV"):
        run_finetune(settings(rgbd, tmp_path / "y", train="fov"))
    with pytest.raises(OptionError):
        replace(settings(rgbd, tmp_path), batch_size=0)


def test_a_nan_loss_stops_the_run_without_a_checkpoint(rgbd: Path, tmp_path: Path, monkeypatch) -> None:
    from sharpdepth.train import loop
    from sharpdepth.train.objective import Outputs

    real = loop.split_outputs
    calls = []

    def nan_from_step_two(raw: Any, size: tuple[int, int]) -> Outputs:
        out = real(raw, size)
        calls.append(1)
        return Outputs(out.map * float("nan"), out.fov_deg) if len(calls) >= 2 else out

    monkeypatch.setattr(loop, "split_outputs", nan_from_step_two)
    out = tmp_path / "run"
    with pytest.raises(loop.NonFiniteLoss, match="the loss is nan at step 2"):
        run_finetune(settings(rgbd, out, steps=3))
    assert not (out / "final.safetensors").exists() and not (out / "last").exists()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["event"] == "train"] == [1]
