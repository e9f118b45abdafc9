"""The evaluation harness end to end on the real shared RGB-D data, with predictors made from
the ground truth by a known perturbation, so every number the harness prints is predictable."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from sharpdepth.cli.evaluate import load_models, parse_options, run_eval
from sharpdepth.errors import OptionError
from sharpdepth.eval.datasets import open_dataset
from sharpdepth.eval.harness import EvalOptions, Evaluator, model_fingerprint
from sharpdepth.eval.protocols import get_protocol
from sharpdepth.eval.settings import EvalJob, EvalSettings
from sharpdepth.eval.temporal import flicker, reproject_depth, temporal_alignment_error, temporal_change_error
from sharpdepth.result import DepthResult, OutputKind

from conftest import data_dir

RGBD = data_dir() / "rgbd"
MIDDLEBURY = RGBD / "middlebury2014_quarter"
FRAMES = RGBD / "single_frames"
QUIET = Console(file=io.StringIO())  # the table is checked through the files


def _key(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


class GroundTruthPredictor:
    """Looks the image up among known samples and returns a perturbed copy of its depth.

    `transform(depth, rng)` returns the prediction; unknown GT pixels are filled with the
    median depth first (a real model predicts everywhere). Relative models get disparity.
    """

    def __init__(self, name, samples, transform, kind=OutputKind.METRIC_DEPTH, focal_scale=None):
        self.name = name
        self.fingerprint = name
        self.output_kind = kind
        self.transform = transform
        self.focal_scale = focal_scale
        self.truth = {_key(s.image): (s.depth, s.focal_px) for s in samples}
        self.calls = 0

    def predict(self, image, focal_px=None):
        self.calls += 1
        depth, focal = self.truth[_key(image)]
        filled = np.where(np.isfinite(depth), depth, np.nanmedian(depth)).astype(np.float64)
        rng = np.random.default_rng(int(_key(image)[:8], 16))
        pred = self.transform(filled, rng)
        f = None if self.focal_scale is None or focal is None else focal * self.focal_scale
        return DepthResult(pred.astype(np.float32), self.output_kind, focal_px=f, model_name=self.name)


@pytest.fixture(scope="module")
def middlebury():
    ds = open_dataset("middlebury", MIDDLEBURY)
    subset = [ds.index()[i] for i in (0, 3, 13)]  # Adirondack, Motorcycle, Teddy
    return ds, [ds.load(e) for e in subset], [e.name for e in subset]


def _evaluate(ds, predictor, names, protocol="middlebury", **options):
    ds_sub = open_dataset("middlebury", MIDDLEBURY, match="|".join(names))
    ds_sub._entries = [e for e in ds.index() if e.name in names]
    return Evaluator(ds_sub, get_protocol(protocol), EvalOptions(**options)).run(predictor)


# ------------------------------------------------------------------ perturbations with known answers
@pytest.mark.parametrize("s", [0.9, 1.1, 1.3, 1.6])
def test_pure_scale_on_metric_model_without_alignment(middlebury, s):
    ds, samples, names = middlebury
    report = _evaluate(ds, GroundTruthPredictor(f"x{s}", samples, lambda d, r: s * d), names)
    m = report.summary
    assert report.alignment == {"method": "none", "space": "depth", "scope": "image"}
    assert m["n_images"] == 3
    assert m["abs_rel"] == pytest.approx(abs(s - 1), rel=1e-5)
    assert m["rmse_log"] == pytest.approx(abs(math.log(s)), rel=1e-4)
    assert m["silog"] == pytest.approx(0.0, abs=1e-3)  # a global scale is invisible to SILog
    assert m["delta1"] == (1.0 if max(s, 1 / s) < 1.25 else 0.0)
    assert m["delta2"] == (1.0 if max(s, 1 / s) < 1.25**2 else 0.0)
    assert m["boundary_f1"] == pytest.approx(
        _evaluate(ds, GroundTruthPredictor("x1", samples, lambda d, r: d), names).summary["boundary_f1"], abs=1e-4
    )  # fmt: skip  (float32 rounding)
    # RMSE = |s - 1| * RMS of the valid ground truth, image by image
    expected_rmse = np.mean([abs(s - 1) * np.sqrt(np.mean(x.depth[x.valid].astype(np.float64) ** 2)) for x in samples])
    assert m["rmse"] == pytest.approx(expected_rmse, rel=1e-4)


def test_alignment_recovers_known_disparity_scale_and_shift(middlebury):
    ds, samples, names = middlebury
    a, b = 0.8, 0.05  # relative disparity = (1/depth - b) / a
    model = GroundTruthPredictor("rel", samples, lambda d, r: (1.0 / d - b) / a, OutputKind.RELATIVE_DISPARITY)
    report = _evaluate(ds, model, names)
    assert report.alignment["method"] == "lstsq" and report.alignment["space"] == "disparity"
    for row in report.rows:
        assert row["scale"] == pytest.approx(a, rel=1e-6) and row["shift"] == pytest.approx(b, abs=1e-7)
    assert report.summary["abs_rel"] < 1e-5 and report.summary["delta1"] == 1.0
    robust = _evaluate(ds, model, names, align="lstsq-robust")
    assert robust.rows[0]["scale"] == pytest.approx(a, rel=1e-6)
    with pytest.raises(OptionError, match="relative disparity"):
        _evaluate(ds, model, names, align="none")


def test_median_alignment_removes_scale_of_metric_model(middlebury):
    ds, samples, names = middlebury
    report = _evaluate(ds, GroundTruthPredictor("x2", samples, lambda d, r: 2.0 * d), names, align="median")
    assert report.alignment["space"] == "depth"
    assert report.summary["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert [r["scale"] for r in report.rows] == pytest.approx([0.5] * 3)


def test_log_normal_noise_gives_its_sigma(middlebury):
    ds, samples, names = middlebury
    sigma = 0.05
    noisy = GroundTruthPredictor("noise", samples, lambda d, r: d * np.exp(r.normal(0, sigma, d.shape)))
    m = _evaluate(ds, noisy, names).summary
    assert m["rmse_log"] == pytest.approx(sigma, rel=0.02)
    assert m["silog"] == pytest.approx(100 * sigma, rel=0.02)
    assert m["abs_rel"] == pytest.approx(sigma * math.sqrt(2 / math.pi), rel=0.03)  # E|e^x - 1| ~ E|x|
    assert m["delta1"] == pytest.approx(1.0, abs=1e-4)  # ln 1.25 = 4.5 sigma
    assert m["boundary_f1"] < 0.9  # noise creates and breaks contours


def test_focal_error_is_reported_when_model_estimates_it(middlebury):
    ds, samples, names = middlebury
    model = GroundTruthPredictor("f", samples, lambda d, r: d, focal_scale=1.3)
    m = _evaluate(ds, model, names).summary
    assert m["focal_abs_rel"] == pytest.approx(0.3) and m["focal_delta25"] == 0.0 and m["focal_delta50"] == 1.0
    given = _evaluate(ds, model, names, give_focal=True).summary  # the model was told: no estimate to score
    assert "focal_abs_rel" not in given


# ------------------------------------------------------------------ end to end: files, cache, CLI
def test_end_to_end_writes_table_json_csv_and_resumes(middlebury, tmp_path):
    ds, samples, names = middlebury
    all_samples = list(ds)
    metric = GroundTruthPredictor("metric-x1.1", all_samples, lambda d, r: 1.1 * d)
    relative = GroundTruthPredictor("relative", all_samples, lambda d, r: 3.0 / d + 0.2, OutputKind.RELATIVE_DISPARITY)
    buf = Console(record=True, width=160, file=io.StringIO())
    job = EvalJob(dataset="middlebury", root=MIDDLEBURY, output=tmp_path, scoring=EvalSettings(limit=4))
    reports, paths = run_eval([metric, relative], job, show_progress=False, out_console=buf)
    text = buf.export_text()
    assert "middlebury · protocol middlebury · 4 images" in text and "AbsRel" in text and "δ1" in text
    assert "metric-x1.1" in text and "relative" in text
    doc = json.loads(paths["json"].read_text())
    assert doc["protocol"]["name"] == "middlebury" and doc["averaging"].startswith("per-image")
    mod = doc["models"]["metric-x1.1"]
    assert mod["summary"]["n_images"] == 4 and mod["summary"]["abs_rel"] == pytest.approx(0.1, rel=1e-5)
    assert len(mod["per_image"]) == 4 and mod["per_image"][0]["name"] == "Adirondack"
    assert doc["models"]["relative"]["alignment"]["method"] == "lstsq"
    rows = list(csv.DictReader(paths["csv"].open()))
    assert [r["model"] for r in rows] == ["metric-x1.1", "relative"]
    assert float(rows[0]["abs_rel"]) == pytest.approx(0.1, rel=1e-5) and rows[0]["n_images"] == "4"
    per_image = list(csv.DictReader(paths["per_image_csv"].open()))
    assert len(per_image) == 8
    cached = list((tmp_path / "cache" / "metric-x1.1").glob("*.npz"))
    assert len(cached) == 4
    # second run: every prediction comes from the cache, numbers unchanged
    calls = metric.calls
    reports2, _ = run_eval([metric], job, show_progress=False, out_console=QUIET)
    assert metric.calls == calls and reports2[0].cache_hits == 4
    assert reports2[0].summary["abs_rel"] == reports[0].summary["abs_rel"]


def test_harness_on_real_tum_and_sun_frames(tmp_path):
    for name, match in (("tum", "TUM_*"), ("sun-rgbd", "SUN_*")):
        ds = open_dataset(name, FRAMES, match=match)
        model = GroundTruthPredictor(f"{name}-x0.9", list(ds), lambda d, r: 0.9 * d)
        job = EvalJob(dataset=name, root=FRAMES, output=tmp_path, dataset_options={"match": match})
        reports, paths = run_eval([model], job, show_progress=False, out_console=QUIET)
        s = reports[0].summary
        assert s["n_images"] == 1 and s["abs_rel"] == pytest.approx(0.1, rel=1e-4) and s["delta1"] == 1.0
        assert json.loads(paths["json"].read_text())["protocol"]["max_depth"] == 10.0


def test_cli_eval_command(monkeypatch, tmp_path):
    from sharpdepth.cli.main import main

    samples = list(open_dataset("middlebury", MIDDLEBURY))
    made = []

    def fake_load(name, weights=None, device=None, precision=None, **kw):
        model = GroundTruthPredictor(name, samples, lambda d, r: 1.2 * d)
        made.append((name, weights, device, precision))
        return model

    import sharpdepth

    monkeypatch.setattr(sharpdepth, "load", fake_load)
    code = main(["eval", "--model", "a", "--model", "b", "--weights", str(tmp_path / "w.pt"), "--dataset",
                 "middlebury", "--root", str(MIDDLEBURY), "--limit", "2", "-o", str(tmp_path), "-q"])  # fmt: skip
    assert code == 0
    assert made == [("a", tmp_path / "w.pt", "cpu", "fp32"), ("b", None, "cpu", "fp32")]
    doc = json.loads((tmp_path / "middlebury_middlebury.json").read_text())
    assert set(doc["models"]) == {"a", "b"} and doc["models"]["b"]["summary"]["abs_rel"] == pytest.approx(0.2)
    assert main(["eval", "-m", "a", "-d", "nope", "--root", str(MIDDLEBURY), "-o", str(tmp_path)]) == 2
    assert main(["eval", "-m", "a", "-d", "middlebury", "--root", str(MIDDLEBURY), "--align", "bogus",
                 "-o", str(tmp_path), "-q"]) == 2  # fmt: skip


def test_option_parsing_and_weights_pairing():
    assert parse_options(["split=all", "match=TUM_*"]) == {"split": "all", "match": "TUM_*"}
    with pytest.raises(OptionError):
        parse_options(["novalue"])
    with pytest.raises(OptionError, match="at most one per model"):
        load_models(["a"], ["x", "y"], "cpu", "fp32", loader=lambda *a, **k: None)


def test_fingerprint_refuses_to_cache_unreproducible_models():
    class Random:
        name = "r"
        weights_sha256 = None

    class Loaded:
        name = "m"
        weights_sha256 = "abc"
        dtype = "torch.float32"

    assert model_fingerprint(Random()) is None
    assert "abc" in model_fingerprint(Loaded())


# ------------------------------------------------------------------ temporal metrics
def _plane_sequence(n=3, z=2.0, h=40, w=50, step=2.0 / 60.0):  # one pixel per frame
    K = np.array([[60.0, 0, w / 2], [0, 60.0, h / 2], [0, 0, 1]])
    poses = []
    for i in range(n):
        pose = np.eye(4)
        pose[0, 3] = step * i  # camera slides sideways in front of a wall at z
        poses.append(pose)
    return K, poses, [np.full((h, w), z) for _ in range(n)]


def test_reprojection_of_a_wall_keeps_its_depth():
    K, poses, depths = _plane_sequence()
    T = np.linalg.inv(poses[1]) @ poses[0]
    projected = reproject_depth(depths[0], K, T)
    seen = projected > 0
    assert seen.mean() > 0.9 and np.allclose(projected[seen], 2.0)
    assert not seen[:, -1].any()  # the wall slid left: the last column has nothing behind it


def test_tae_hand_computed():
    K, poses, depths = _plane_sequence(2)
    assert temporal_alignment_error(depths, poses, K) == pytest.approx(0.0)
    flickering = [depths[0], 1.2 * depths[1]]
    # forward: |2.4 - 2| / 2.4, backward: |2 - 2.4| / 2; averaged, x100
    assert temporal_alignment_error(flickering, poses, K) == pytest.approx(100 * (1 / 6 + 0.2) / 2)


def test_pose_free_measures():
    g = [np.full((4, 4), 2.0), np.full((4, 4), 2.5)]
    assert temporal_change_error([3 * g[0], 3 * g[1]], g) == pytest.approx(0.0)  # scale-invariant
    assert temporal_change_error([g[0], g[0]], g) == pytest.approx(math.log(2.5 / 2.0))
    assert flicker([g[0], g[1]]) == pytest.approx(0.5 / 2.25)


def _synthetic_tum(tmp_path, n=4):
    """A TUM-format sequence of a sloped plane Z = 2 + 0.5 Y seen from a camera sliding along x.

    Depth then varies by row only and is the same in every frame, so reprojection lands on
    the same row and the expected temporal errors are exact (fx = fy = 50, cx = 32, cy = 24)."""
    seq = tmp_path / "rgbd_dataset_freiburg3_wall"
    (seq / "rgb").mkdir(parents=True)
    (seq / "depth").mkdir()
    rgb_lines, depth_lines, gt_lines = [], [], []
    for i in range(n):
        t = 10.0 + i / 30
        Image.fromarray(np.full((48, 64, 3), 40 * i, np.uint8)).save(seq / "rgb" / f"{t:.6f}.png")
        rows = (np.arange(48) - 24.0) / 50.0
        z = np.repeat((2.0 / (1.0 - 0.5 * rows))[:, None], 64, axis=1)
        Image.fromarray(np.rint(z * 5000).astype(np.uint16)).save(seq / "depth" / f"{t:.6f}.png")
        rgb_lines.append(f"{t:.6f} rgb/{t:.6f}.png")
        depth_lines.append(f"{t:.6f} depth/{t:.6f}.png")
        gt_lines.append(f"{t:.4f} {0.02 * i} 0 0 0 0 0 1")
    (seq / "rgb.txt").write_text("\n".join(rgb_lines))
    (seq / "depth.txt").write_text("\n".join(depth_lines))
    (seq / "groundtruth.txt").write_text("\n".join(gt_lines))
    return seq


def test_temporal_metrics_through_the_harness(tmp_path):
    _synthetic_tum(tmp_path)
    ds = open_dataset("tum", tmp_path, fx=50, fy=50, cx=32, cy=24)
    samples = list(ds)
    assert all(s.pose_c2w is not None for s in samples)
    assert samples[0].depth[24, 0] == pytest.approx(2.0) and samples[0].depth[0, 0] < samples[0].depth[-1, 0]
    steady = GroundTruthPredictor("steady", samples, lambda d, r: 1.1 * d)
    # every other frame 20 % farther: flicker that per-image alignment would hide
    flick_scale = {_key(s.image): (1.2 if i % 2 else 1.0) for i, s in enumerate(samples)}

    class Flicker(GroundTruthPredictor):
        def predict(self, image, focal_px=None):
            res = super().predict(image, focal_px)
            return DepthResult(res.prediction * flick_scale[_key(image)], res.kind, model_name=self.name)

    flickering = Flicker("flicker", samples, lambda d, r: d)
    protocol = get_protocol("tum")
    ev = Evaluator(ds, protocol, EvalOptions(temporal=True))
    a, b = ev.run(steady), ev.run(flickering)
    assert a.summary["tae"] == pytest.approx(0.0, abs=1e-9)
    assert a.summary["temporal_change_error"] == pytest.approx(0.0, abs=1e-6)
    assert b.summary["tae"] == pytest.approx(100 * (1 / 6 + 0.2) / 2, rel=1e-4)
    assert b.summary["temporal_change_error"] == pytest.approx(math.log(1.2), rel=1e-4)
    # relative flicker: per-image alignment hides it, per-sequence alignment does not
    rel = Flicker("rel-flicker", samples, lambda d, r: 1.0 / d, OutputKind.RELATIVE_DISPARITY)
    per_image = Evaluator(ds, protocol, EvalOptions(align_scope="image")).run(rel)
    per_seq = Evaluator(ds, protocol, EvalOptions(align_scope="sequence")).run(rel)
    assert per_image.summary["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert per_seq.summary["abs_rel"] > 0.05
    assert per_seq.alignment["scope"] == "sequence" and len({r["scale"] for r in per_seq.rows}) == 1
