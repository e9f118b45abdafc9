"""Issue 13, evaluation: where the protocols must follow the reference evaluation code.

Each expectation is written from the reference itself (ZoeDepth `compute_metrics` and its
config, Marigold `eval.py`, Depth Anything V2 `metric_depth/util/metric.py`), not from our
implementation.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sharpdepth.errors import DatasetError, OptionError
from sharpdepth.eval.datasets import Sample, open_dataset
from sharpdepth.eval.metrics import SILOG_PRESETS, depth_metrics
from sharpdepth.eval.protocols import get_protocol
from sharpdepth.eval.runner import Evaluator
from sharpdepth.eval.scoring import AlignmentPolicy, Frame, Scorer
from sharpdepth.eval.settings import EvalJob, EvalSettings
from sharpdepth.result import DepthResult, OutputKind

from conftest import data_dir

DOCS = Path(__file__).resolve().parents[1] / "docs" / "evaluation.md"


def _score(protocol, gt, prediction, method, space, kind=OutputKind.METRIC_DEPTH) -> dict:
    sample = Sample("s", np.zeros((*gt.shape, 3), np.uint8), gt)
    frame = Frame(sample, prediction.astype(np.float32), kind, None, 0.0, False)
    scorer = Scorer(get_protocol(protocol), AlignmentPolicy(method, space, "image"), boundary=False)
    return scorer.score(frame).metrics


# ------------------------------------------------------------------ clipping after alignment
def test_depth_space_fit_below_zero_is_clipped_to_the_minimum_not_the_maximum():
    """One pixel whose depth-space least-squares fit lands below 0 (eth3d: min 1e-5, no max).

    Marigold `eval.py`: `np.clip(depth_pred, min_depth, max_depth)` after the fit, so that
    pixel counts as min_depth (AbsRel ~1 at one pixel of 10 000). Turning it into +inf and
    then the 1e4 m fallback maximum made AbsRel ~ 1e4 / (2 * 1e4) = 0.5 from one pixel.
    """
    rng = np.random.default_rng(0)
    gt = rng.uniform(1.0, 3.0, (100, 100))
    pred = gt.copy()
    pred[0, 0] = -0.5
    m = _score("eth3d", gt, pred, "lstsq", "depth")
    n = gt.size
    # reference: fit, clip to [1e-5, inf); every other pixel is ~exact after the (barely moved) fit
    x, y = pred.ravel(), gt.ravel()
    s, t = np.polyfit(x, y, 1)
    ref = np.clip(s * pred + t, 1e-5, None)
    assert ref[0, 0] == 1e-5
    expected = float(np.mean(np.abs(ref - gt) / gt))
    assert m["abs_rel"] == pytest.approx(expected, rel=1e-4)
    assert m["abs_rel"] < 2.0 / n + 1e-3  # was ~0.5: +inf, then the 1e4 m fallback maximum


def test_metric_zero_prediction_counts_as_the_minimum_on_nyu():
    """ZoeDepth `compute_metrics`: pred[pred < min_depth_eval] = min_depth_eval (1e-3 on NYU)."""
    gt = np.full((480, 640), 2.0)
    pred = np.full((480, 640), 2.0)
    pred[100:200, 100:200] = 0.0  # inside the Eigen crop
    m = _score("nyu-eigen", gt, pred, "none", "depth")
    inside = np.zeros((480, 640), bool)
    inside[45:471, 41:601] = True
    ref = np.where(pred < 1e-3, 1e-3, pred)
    expected = float(np.mean((np.abs(ref - gt) / gt)[inside]))
    assert m["abs_rel"] == pytest.approx(expected, rel=1e-5)  # 0 m was scored as 10 m: AbsRel 4 there


def test_disparity_beyond_infinity_still_counts_as_the_maximum():
    """Marigold: aligned disparity clipped at 1e-3 (1000 m), then depth clipped to max_depth."""
    gt = np.full((480, 640), 5.0)
    disparity = np.full((480, 640), 0.2)
    disparity[50:60, 50:60] = -1.0
    m = _score("nyu-eigen", gt, disparity, "none", "disparity", OutputKind.RELATIVE_DISPARITY)
    ref = np.clip(1.0 / np.clip(disparity, 1e-3, None), 1e-3, 10.0)
    expected = float(np.mean((np.abs(ref - gt) / gt)[45:471, 41:601]))
    assert m["abs_rel"] == pytest.approx(expected, rel=1e-5)


# ------------------------------------------------------------------ ZoeDepth crops
def _zoe_mask(shape: tuple[int, int], crop: str) -> np.ndarray:
    """ZoeDepth `compute_metrics`: the crop region, written as its code indexes it."""
    h, w = shape
    m = np.zeros(shape, bool)
    if crop == "garg":
        m[int(0.40810811 * h) : int(0.99189189 * h), int(0.03594771 * w) : int(0.96405229 * w)] = True
    else:  # eigen_crop, dataset != kitti: absolute indices
        m[45:471, 41:601] = True
    return m


@pytest.mark.parametrize(
    ("protocol", "native", "crop"),
    [("ibims", (480, 640), "eigen"), ("diode-indoor", (768, 1024), "eigen"), ("diode-outdoor", (768, 1024), "garg")],
)
def test_zero_shot_presets_use_zoedepths_crop_at_native_resolution(protocol, native, crop):
    p = get_protocol(protocol)
    gt = np.full(native, 5.0)  # inside every cap: only the crop decides
    np.testing.assert_array_equal(p.eval_mask(gt), _zoe_mask(native, crop))


# ------------------------------------------------------------------ SILog presets
def test_silog_presets_reproduce_each_papers_code():
    rng = np.random.default_rng(1)
    g = rng.uniform(1, 10, 1000)
    p = g * np.exp(rng.normal(0.1, 0.2, 1000))
    d = np.log(p) - np.log(g)
    zoe = np.sqrt(np.mean(d**2) - np.mean(d) ** 2) * 100  # ZoeDepth compute_errors
    da2 = np.sqrt(np.mean(d**2) - 0.5 * np.mean(d) ** 2)  # Depth Anything V2 eval_depth
    for name, expected in (("zoedepth", zoe), ("depth-anything-v1", zoe), ("depth-anything-v2", da2)):
        c = SILOG_PRESETS[name]
        assert depth_metrics(p, g, silog_lambda=c.lam, silog_scale=c.scale)["silog"] == pytest.approx(expected)
    assert get_protocol("nyu-eigen").with_silog("depth-anything-v2").silog_lambda == 0.5


def test_silog_preset_through_the_evaluator():
    ds = open_dataset("middlebury", data_dir() / "rgbd" / "middlebury2014_quarter")
    sample = ds.sample(ds.index()[0])
    noise = np.exp(np.random.default_rng(2).normal(0.05, 0.1, sample.depth.shape))

    class Noisy:
        name = fingerprint = "noisy"
        output_kind = OutputKind.METRIC_DEPTH

        def predict(self, image, focal_px=None):
            filled = np.where(np.isfinite(sample.depth), sample.depth, 1.0)
            return DepthResult((filled * noise).astype(np.float32), OutputKind.METRIC_DEPTH)

    settings = EvalSettings(limit=1, boundary=False, silog="depth-anything-v2")
    report = Evaluator(ds, get_protocol("middlebury"), settings).run(Noisy())
    d = np.log(noise[sample.valid])
    assert report.summary["silog"] == pytest.approx(np.sqrt(np.mean(d**2) - 0.5 * np.mean(d) ** 2), rel=1e-4)
    with pytest.raises(OptionError, match="SILog preset"):
        EvalSettings(silog="bts-loss")


# ------------------------------------------------------------------ ETH3D undistorted images
def _eth3d_scene(root: Path, image_dir: str) -> None:
    scene = root / "courtyard"
    (scene / "images" / image_dir).mkdir(parents=True)
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(scene / "images" / image_dir / "DSC_0001.JPG", format="PNG")
    (scene / "ground_truth_depth" / "dslr_images").mkdir(parents=True)
    np.full((6, 8), 2.0, "<f4").tofile(scene / "ground_truth_depth" / "dslr_images" / "DSC_0001.JPG")


def test_eth3d_refuses_distorted_images(tmp_path):
    _eth3d_scene(tmp_path, "dslr_images")
    with pytest.raises(DatasetError, match="dslr_images_undistorted/ is missing.*misaligned"):
        open_dataset("eth3d", tmp_path).index()


# ------------------------------------------------------------------ settings validated up front
def test_job_options_fail_before_any_model_is_loaded(tmp_path):
    with pytest.raises(OptionError, match="unknown alignment scope"):
        EvalSettings(align_scope="video")
    with pytest.raises(OptionError, match="--limit"):
        EvalSettings(limit=0)
    with pytest.raises(OptionError, match="unknown dataset"):
        EvalJob(dataset="nope", root=tmp_path)
    with pytest.raises(OptionError, match="unknown protocol"):
        EvalJob(dataset="tum", root=tmp_path, protocol="kitty")
    with pytest.raises(DatasetError, match="does not exist"):
        EvalJob(dataset="eth3d", root=tmp_path / "missing")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OptionError, match="is a file"):
        EvalJob(dataset="tum", root=tmp_path, output=tmp_path / "afile" / "out")


def test_cli_refuses_unwritable_output_without_a_traceback(tmp_path, capsys):
    from sharpdepth.cli.main import main

    (tmp_path / "afile").write_text("x")
    root = str(data_dir() / "rgbd" / "middlebury2014_quarter")
    code = main(["eval", "-m", "depth-pro", "-d", "middlebury", "--root", root, "-o", str(tmp_path / "afile" / "r")])
    assert code == 2 and "is a file" in capsys.readouterr().err


# ------------------------------------------------------------------ docs
def test_evaluation_docs_name_no_machine_paths():
    text = DOCS.read_text()
    assert not re.search(r"(?<![\w.~])/(work|home|tmp|Users|mnt|data)/", text), "use paths relative to the project"
