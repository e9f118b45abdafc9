"""Video protocols of `sharpdepth eval` on the shared real TUM RGB-D clip (freiburg2_desk).

Predictions are made from the ground truth with known perturbations, so what each protocol
must report is known: a per-frame scale jitter is invisible to per-frame alignment and
visible to one alignment per sequence; exact ground truth has a TAE at the level of the
sensor's own frame-to-frame inconsistency; flicker is scored on static clips only.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from sharpdepth.errors import DatasetError
from sharpdepth.eval.datasets import open_dataset
from sharpdepth.eval.protocols import get_protocol
from sharpdepth.eval.runner import Evaluator
from sharpdepth.eval.settings import EvalSettings
from sharpdepth.result import DepthResult, OutputKind

from conftest import data_dir

SEQ = data_dir() / "rgbd" / "sequences" / "tum_fr2_desk"
N = 4
JITTER = (1.0, 1.3, 0.8, 1.2)


def _key(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


class FromTruth:
    """Returns `transform(frame index, GT depth)`; NaN where the sensor saw nothing."""

    def __init__(self, name, samples, transform, kind=OutputKind.METRIC_DEPTH):
        self.name = self.fingerprint = name
        self.output_kind = kind
        self.transform = transform
        self.truth = {_key(s.image): (i, s.depth) for i, s in enumerate(samples)}

    def predict(self, image, focal_px=None):
        i, depth = self.truth[_key(image)]
        return DepthResult(self.transform(i, depth.astype(np.float64)).astype(np.float32), self.output_kind)


@pytest.fixture(scope="module")
def clip():
    ds = open_dataset("tum", SEQ)
    return ds, [ds.sample(e) for e in ds.index()[:N]]


def _run(ds, model, **settings):
    options = EvalSettings(limit=N, boundary=False, **settings)
    return Evaluator(ds, get_protocol("video-tum"), options).run(model)


def test_sequence_folder_loader_reads_the_clip_as_its_readme_describes(clip):
    ds, samples = clip
    assert len(ds) == 50
    s = samples[0]
    assert s.image.shape == (480, 640, 3) and s.depth.shape == (480, 640) and s.sequence == "tum_fr2_desk"
    assert np.nanmedian(s.depth) == pytest.approx(1.51, abs=0.01)  # README: first frame's median 1.51 m
    assert 0.63 < s.valid.mean() < 0.72  # README: nonzero fraction 0.633-0.717
    np.testing.assert_allclose(s.K, [[520.9, 0, 325.1], [0, 521.0, 249.7], [0, 0, 1]])
    assert s.pose_c2w[:3, 3] == pytest.approx([-0.154598, -1.444499, 1.477300])  # first line of poses.txt
    steps = [np.linalg.norm(b.pose_c2w[:3, 3] - a.pose_c2w[:3, 3]) for a, b in zip(samples, samples[1:], strict=False)]
    assert all(0.0028 <= x <= 0.0127 for x in steps)  # README: 2.8-12.7 mm per frame


def test_one_alignment_per_sequence_sees_per_frame_scale_jitter(clip):
    ds, samples = clip
    model = FromTruth("jitter", samples, lambda i, d: JITTER[i] / d, OutputKind.RELATIVE_DISPARITY)
    per_frame = _run(ds, model, align_scope="image", temporal=False)
    per_seq = _run(ds, model, temporal=False)  # video-tum: one fit per sequence
    assert per_seq.alignment == {"method": "lstsq", "space": "disparity", "scope": "sequence"}
    assert per_frame.summary["abs_rel"] < 1e-5 and per_frame.summary["delta1"] == 1.0
    assert per_seq.summary["abs_rel"] > 0.1 and per_seq.summary["delta1"] < 0.9
    assert len({r["scale"] for r in per_seq.rows}) == 1
    # the jitter is a pure scale per frame: per-frame fits recover it, up to one common factor
    scales = np.array([r["scale"] for r in per_frame.rows])
    np.testing.assert_allclose(scales * np.array(JITTER), scales[0] * JITTER[0], rtol=1e-5)


def test_tae_with_ground_truth_poses(clip):
    ds, samples = clip
    exact = _run(ds, FromTruth("exact", samples, lambda i, d: d))
    jittered = _run(ds, FromTruth("jitter", samples, lambda i, d: JITTER[i] * d))
    # exact GT: what remains is the Kinect's own inconsistency between frames (README: ~0.3-0.5 % median)
    assert exact.summary["tae"] < 2.0
    assert exact.summary["temporal_change_error"] == pytest.approx(0.0, abs=1e-6)
    # a metric model is not aligned: the jitter shows in TAE, about 100 * mean |1 - s_t / s_t+1| both ways
    ratios = [JITTER[t] / JITTER[t + 1] for t in range(N - 1)]
    expected = 100 * np.mean([(abs(1 - r) + abs(1 - 1 / r)) / 2 for r in ratios])
    assert jittered.summary["tae"] == pytest.approx(expected, rel=0.1)
    assert jittered.summary["tae"] > 10 * exact.summary["tae"]
    assert exact.sequences["tum_fr2_desk"]["static"] is False  # the camera moves: no flicker in the summary
    assert "flicker" not in exact.summary and "flicker" in exact.sequences["tum_fr2_desk"]


def _static_clip(tmp_path, n=N):
    """Frame 0 of the shared clip shown n times with the same pose: a static camera."""
    seq = tmp_path / "static_desk"
    (seq / "rgb").mkdir(parents=True)
    (seq / "depth").mkdir()
    for i in range(n):
        shutil.copy(SEQ / "rgb" / "000000.png", seq / "rgb" / f"{i:06d}.png")
        shutil.copy(SEQ / "depth" / "000000.png", seq / "depth" / f"{i:06d}.png")
    pose = (SEQ / "poses.txt").read_text().splitlines()[3].split()[1:]  # first data line
    (seq / "poses.txt").write_text("".join(f"{100 + i / 30:.6f} {' '.join(pose)}\n" for i in range(n)))
    shutil.copy(SEQ / "intrinsics.json", seq / "intrinsics.json")
    return seq


def test_flicker_on_a_static_clip(tmp_path):
    ds = open_dataset("tum", _static_clip(tmp_path))
    samples = [ds.sample(e) for e in ds.index()]
    # identical images: key the jitter on the call order instead
    calls = []

    class Ordered(FromTruth):
        def predict(self, image, focal_px=None):
            calls.append(1)
            i = (len(calls) - 1) % N
            return DepthResult((self.transform(i, samples[i].depth)).astype(np.float32), self.output_kind)

    steady = _run(ds, Ordered("steady", samples, lambda i, d: d))
    small = (1.0, 1.05, 0.97, 1.02)
    flick = _run(ds, Ordered("flicker", samples, lambda i, d: small[i] * d))
    assert steady.sequences["static_desk"]["static"] is True
    assert steady.summary["flicker"] == pytest.approx(0.0, abs=1e-7)
    expected = np.mean([abs(b - a) / ((a + b) / 2) for a, b in zip(small, small[1:], strict=False)])
    assert flick.summary["flicker"] == pytest.approx(expected, rel=0.02)  # pixels clipped at 10 m differ


def test_frame_folder_errors_are_one_line(tmp_path):
    seq = _static_clip(tmp_path)
    (seq / "poses.txt").write_text("100.0 0 0 0 0 0 0 1\n")
    with pytest.raises(DatasetError, match="1 poses for 4 frames"):
        open_dataset("tum", seq).index()
    (seq / "depth" / "000002.png").unlink()
    with pytest.raises(DatasetError, match="lacks 000002.png"):
        open_dataset("tum", seq).index()


def test_cli_video_protocol(monkeypatch, tmp_path, clip):
    import sharpdepth
    from sharpdepth.cli.main import main

    _, samples = clip
    monkeypatch.setattr(sharpdepth, "load", lambda name, **kw: FromTruth(name, samples, lambda i, d: JITTER[i] * d))
    code = main(["eval", "-m", "jit", "-d", "tum", "--root", str(SEQ), "--protocol", "video-tum", "--limit", str(N),
                 "--no-boundary", "-o", str(tmp_path), "-q"])  # fmt: skip
    assert code == 0
    doc = json.loads((tmp_path / "tum_video-tum.json").read_text())
    model = doc["models"]["jit"]
    assert doc["options"]["temporal"] is True and model["alignment"]["scope"] == "sequence"
    assert model["summary"]["tae"] > 10 and model["sequences"]["tum_fr2_desk"]["n_frames"] == N
