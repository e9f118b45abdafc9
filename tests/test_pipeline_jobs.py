"""The pipelined batch path of `predict_items` (issue 14): same files and reports as the plain loop.

A tiny Depth Anything (random weights, 70 px input) keeps these fast; where the timing of
the stages matters, a duck-typed model whose forward pass waits on an event stands in.
"""

from __future__ import annotations

import threading
import time
import zipfile
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import sharpdepth
from sharpdepth.engine import jobs
from sharpdepth.engine.jobs import PIPELINE_DEPTH, Failure, plan_predict, predict_items
from sharpdepth.engine.settings import FocalSettings, ModelSettings, PredictSettings
from sharpdepth.io.depth_files import Notice, read_depth_result
from sharpdepth.io.images import LoadedImage, load_image
from sharpdepth.io.inputs import expand_inputs
from sharpdepth.io.outputs import OutputOptions
from sharpdepth.result import DepthResult, FocalSource, OutputKind

MODEL = "depth-anything-v2-metric-tiny"


@pytest.fixture(scope="module")
def model():
    return sharpdepth.load(MODEL, random_weights=True, input_size=70)


@pytest.fixture
def fixed_zip_clock(monkeypatch):
    """npz files are zip archives that stamp each member with the wall clock (2 s steps); pin it."""
    clock = SimpleNamespace(time=time.time, localtime=lambda *_: time.struct_time((2024, 1, 2, 3, 4, 6, 1, 2, 0)))
    monkeypatch.setattr(zipfile, "time", clock)


def _picture(path: Path, width: int, height: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def _settings(**kw) -> PredictSettings:
    output = kw.pop("output", OutputOptions(formats=("npz",)))
    return PredictSettings(model=ModelSettings(name=MODEL, input_size=70), output=output, **kw)


def _items(folder: Path):
    items, problems = expand_inputs([str(folder)])
    assert problems == []
    return items


class Log:
    """Every callback of a job, in the order it came, and the thread it came from."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.threads: set[str] = set()

    def _seen(self) -> None:
        self.threads.add(threading.current_thread().name)

    def failure(self, failure: Failure) -> None:
        self._seen()
        self.events.append(("failed", Path(failure.source).name, failure.reason))

    def notice(self, notice: Notice) -> None:
        self._seen()
        self.events.append(("notice", Path(notice.source or "").name, notice.kind, notice.message))

    def progress(self, n: int) -> None:
        self._seen()
        self.events.append(("progress", n))


def _run(model, folder: Path, out: Path, settings: PredictSettings) -> tuple[jobs.PredictSummary, Log]:
    log = Log()
    summary = predict_items(
        model, _items(folder), out, settings, on_failure=log.failure, on_progress=log.progress, on_notice=log.notice
    )
    return summary, log


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _job_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("sharpdepth-")]


def _wait_for(condition, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_pipelined_and_plain_runs_write_byte_identical_files(tmp_path, model, monkeypatch, fixed_zip_clock):
    src = tmp_path / "in"
    for i, (w, h) in enumerate([(80, 60), (80, 60), (64, 64), (90, 50), (80, 60), (40, 70)]):
        _picture(src / ("sub" if i % 3 == 2 else "") / f"p{i}.png", w, h, seed=i)
    (src / "p3b.jpg").write_bytes(b"not an image at all")
    # 0.1 mm per unit: the ~9.5 m of the random network do not fit a 16-bit PNG, which is said once per image.
    output = OutputOptions(formats=("npz", "png16", "pfm"), side_by_side=True, normals=True, png16_scale_m=1e-4)
    settings = _settings(output=output, batch_size=2, focal=FocalSettings(focal_px=60.0))
    decoders: list[str] = []
    real_load = jobs.load_image

    def load_and_note(path, max_pixels):
        decoders.append(threading.current_thread().name)
        return real_load(path, max_pixels)

    monkeypatch.setattr(jobs, "load_image", load_and_note)

    plain, plain_log = _run(model, src, tmp_path / "plain", replace(settings, pipeline=False))
    assert set(decoders) == {threading.current_thread().name}
    decoders.clear()
    piped, piped_log = _run(model, src, tmp_path / "piped", settings)
    assert set(decoders) == {"sharpdepth-prepare"}  # it really was decoded in the worker thread

    plain_files, piped_files = _tree(tmp_path / "plain"), _tree(tmp_path / "piped")
    assert sorted(piped_files) == sorted(plain_files)
    assert [n for n in plain_files if piped_files[n] != plain_files[n]] == []
    assert not any(".part" in name for name in piped_files)
    assert len([n for n in piped_files if n.endswith(".json")]) == 6
    assert piped_log.events == plain_log.events
    assert piped_log.threads == plain_log.threads == {threading.current_thread().name}
    assert plain.written == piped.written == 6 and plain.failures == piped.failures
    assert [(Path(f.source).name, f.reason) for f in piped.failures] == [
        ("p3b.jpg", "not a readable image (unknown or corrupt format)")
    ]
    assert [e for e in piped_log.events if e[0] == "progress"] == [("progress", 2)] * 3 + [("progress", 1)]
    said = [e[1] for e in piped_log.events if e[0] == "notice" and e[2] == "png16_saturated"]
    assert said == [it.path.name for it in _items(src) if it.path.suffix == ".png"]  # in input order
    assert sorted(said) == [f"p{i}.png" for i in range(6)]
    # The numbers are the model's own: the same as predict_batch on that picture.
    expected = model.predict_batch([load_image(src / "sub" / "p2.png")], focal_px=60.0)[0]
    written = read_depth_result(tmp_path / "piped" / "sub" / "p2.npz")
    assert np.array_equal(written.prediction, expected.prediction)


@pytest.mark.parametrize("pipeline", [False, True])
def test_failures_are_reported_in_input_order_with_the_plain_loop_rules(tmp_path, model, monkeypatch, pipeline):
    src = tmp_path / "in"
    _picture(src / "a.png", 40, 30, 1)
    (src / "b.png").write_text("not an image")
    _picture(src / "c.png", 40, 30, 2)
    _picture(src / "d.png", 4, 400, 3)  # too elongated for the network: its whole chunk fails
    _picture(src / "e.png", 40, 30, 4)  # its write fails
    _picture(src / "f.png", 40, 30, 5)
    _picture(src / "g.png", 41, 30, 6)  # "runs out of memory" in the forward pass
    _picture(src / "h.png", 40, 30, 7)
    (src / "i.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    _picture(src / "j.png", 40, 30, 8)
    real_write, real_forward = jobs.write_item, model.forward_batch

    def write_or_fail(result, notes, out_dir, stem, output, on_notice=None):
        if stem.name == "e":
            raise OSError(28, "No space left on device")
        return real_write(result, notes, out_dir, stem, output, on_notice=on_notice)

    def forward_or_oom(prepared):
        if any(Path(img.path).name == "g.png" for img in prepared.images):
            raise MemoryError("cannot allocate 12 GiB")
        return real_forward(prepared)

    monkeypatch.setattr(jobs, "write_item", write_or_fail)
    monkeypatch.setattr(model, "forward_batch", forward_or_oom)
    summary, log = _run(model, src, tmp_path / "out", _settings(batch_size=2, pipeline=pipeline))
    elongated = f"a 4x400 image is too elongated for {MODEL}: its network input would be 70x7000"
    oom = f"not enough memory to run {MODEL} on it (cannot allocate 12 GiB)"
    assert [e if e[0] == "progress" else e[:2] for e in log.events] == [
        ("failed", "b.png"),
        ("progress", 2),
        ("failed", "c.png"),  # the chunk of the refused picture fails as one, as predict_batch does
        ("failed", "d.png"),
        ("progress", 2),
        ("failed", "e.png"),
        ("progress", 2),
        ("failed", "g.png"),
        ("failed", "h.png"),
        ("progress", 2),
        ("failed", "i.png"),
        ("progress", 2),
    ]
    reasons = [e[2] for e in log.events if e[0] == "failed"]
    assert reasons[0] == "not a readable image (unknown or corrupt format)"
    assert reasons[1] == reasons[2] and reasons[1].startswith(elongated)
    assert reasons[3:6] == ["could not write outputs: No space left on device", oom, oom]
    assert reasons[6].startswith("corrupt or truncated image")
    assert [f.reason for f in summary.failures] == reasons
    assert summary.written == 3
    assert sorted(p.name for p in (tmp_path / "out").glob("*.json")) == ["a.json", "f.json", "j.json"]
    assert _job_threads() == []


class Gated:
    """Duck-typed model: each forward pass waits for `go`; counts forward passes."""

    name = "gated"
    device, dtype = "cpu", "torch.float32"
    processor = SimpleNamespace(input_size=None)

    def __init__(self) -> None:
        self.go = threading.Event()
        self.forwards = 0
        self.fail_on: int | None = None

    def predict_batch(self, loaded: list[LoadedImage], focal_px=None, fov_deg=None, batch_size=1):
        self.forwards += 1
        if self.fail_on == self.forwards:
            raise KeyboardInterrupt
        assert self.go.wait(30), "the test never let the forward pass go"
        return [
            DepthResult(np.full((img.height, img.width), 2.0, np.float32), OutputKind.METRIC_DEPTH, 50.0,
                        FocalSource.USER, self.name, image=img.rgb, source=img.path)
            for img in loaded
        ]  # fmt: skip


def _counting_loads(monkeypatch) -> list[str]:
    decoded: list[str] = []
    real_load = jobs.load_image

    def load(path, max_pixels):
        decoded.append(Path(path).name)
        return real_load(path, max_pixels)

    monkeypatch.setattr(jobs, "load_image", load)
    return decoded


def _folder(path: Path, n: int) -> Path:
    for i in range(n):
        _picture(path / f"i{i:02d}.png", 24, 16, i)
    return path


def test_decoding_runs_a_bounded_number_of_chunks_ahead(tmp_path, monkeypatch):
    src, batch = _folder(tmp_path / "in", 20), 2
    decoded = _counting_loads(monkeypatch)
    gated = Gated()
    result: list[jobs.PredictSummary] = []
    settings = PredictSettings(batch_size=batch, output=OutputOptions(formats=("pfm",), color_view=False))
    worker = threading.Thread(target=lambda: result.append(predict_items(gated, _items(src), tmp_path / "o", settings)))
    worker.start()
    try:
        # While the first forward pass waits, the decoder fills its slots and then stops.
        ahead = (1 + PIPELINE_DEPTH) * batch
        assert _wait_for(lambda: gated.forwards == 1 and len(decoded) >= ahead)
        time.sleep(0.5)
        assert gated.forwards == 1 and len(decoded) == ahead
    finally:
        gated.go.set()
        worker.join(60)
    assert not worker.is_alive() and result[0].written == 20 and result[0].failures == []
    assert sorted(decoded) == sorted(f"i{i:02d}.png" for i in range(20))


def test_forward_passes_wait_for_a_slow_writer(tmp_path, monkeypatch):
    src = _folder(tmp_path / "in", 12)
    decoded = _counting_loads(monkeypatch)
    gated, release = Gated(), threading.Event()
    gated.go.set()
    real_write = jobs.write_item
    writes: list[str] = []

    def slow_write(*args, **kwargs):
        assert release.wait(30)
        writes.append(args[3].name)
        return real_write(*args, **kwargs)

    monkeypatch.setattr(jobs, "write_item", slow_write)
    settings = PredictSettings(output=OutputOptions(formats=("pfm",), color_view=False))
    worker = threading.Thread(target=lambda: predict_items(gated, _items(src), tmp_path / "o", settings))
    worker.start()
    try:
        # One image being written, PIPELINE_DEPTH more waiting for the writer, then the forward stops...
        assert _wait_for(lambda: gated.forwards == 1 + PIPELINE_DEPTH and len(decoded) == 1 + 2 * PIPELINE_DEPTH)
        time.sleep(0.5)
        assert gated.forwards == 1 + PIPELINE_DEPTH and writes == []
        # ...and the decoder PIPELINE_DEPTH images further ahead.
        assert len(decoded) == 1 + 2 * PIPELINE_DEPTH
    finally:
        release.set()
        worker.join(60)
    assert writes == [f"i{i:02d}" for i in range(12)] and gated.forwards == 12


@pytest.mark.parametrize("where", ["writer", "decoder"])
def test_an_error_in_a_worker_thread_ends_the_job_in_the_callers_thread(tmp_path, monkeypatch, where):
    src = _folder(tmp_path / "in", 8)
    gated = Gated()
    gated.go.set()
    target, real = ("write_item", jobs.write_item) if where == "writer" else ("load_image", jobs.load_image)

    def broken(*args, **kwargs):
        name = Path(args[0]).name if where == "decoder" else args[3].name + ".png"
        if name == "i03.png":
            raise RuntimeError(f"gremlin in the {where}")
        return real(*args, **kwargs)

    monkeypatch.setattr(jobs, target, broken)
    log = Log()
    settings = PredictSettings(output=OutputOptions(formats=("pfm",), color_view=False))
    with pytest.raises(RuntimeError, match=f"gremlin in the {where}"):
        predict_items(gated, _items(src), tmp_path / "o", settings, on_progress=log.progress)
    assert log.events == [("progress", 1)] * 3  # the images before it were reported, as in the plain loop
    assert sorted(p.stem for p in (tmp_path / "o").glob("*.json")) == ["i00", "i01", "i02"]
    assert _job_threads() == []


def test_ctrl_c_stops_both_threads_and_leaves_only_complete_files(tmp_path, monkeypatch):
    src = _folder(tmp_path / "in", 30)
    gated = Gated()
    gated.go.set()
    gated.fail_on = 4  # Ctrl-C arrives in the caller's thread during the fourth forward pass
    settings = PredictSettings(output=OutputOptions(formats=("npz", "pfm")))
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        predict_items(gated, _items(src), tmp_path / "o", settings)
    assert time.monotonic() - start < 15
    assert _job_threads() == []
    out = tmp_path / "o"
    assert [p for p in out.rglob("*") if ".part" in p.name] == []
    done = sorted(p.stem for p in out.glob("*.json"))
    assert done == [f"i{i:02d}" for i in range(len(done))] and len(done) <= 3
    for stem in done:  # what was written is complete: every file its sidecar lists
        for suffix in (".npz", "_depth.pfm", "_inferno.png"):
            assert (out / f"{stem}{suffix}").is_file()
    assert len(list(out.glob("*.npz"))) == len(done)


def test_a_folder_done_by_either_path_is_done_for_the_other(tmp_path, monkeypatch):
    src = _folder(tmp_path / "in", 3)
    gated = Gated()
    gated.go.set()
    settings = PredictSettings(output=OutputOptions(formats=("pfm",)), pipeline=False)
    assert predict_items(gated, _items(src), tmp_path / "o", settings).written == 3
    resumed = plan_predict([str(src)], tmp_path / "o", PredictSettings(output=settings.output, skip_existing=True))
    assert PredictSettings().pipeline is True and resumed.items == [] and resumed.skipped == 3
