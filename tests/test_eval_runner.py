"""The evaluation runner's contract: decisions before the first image, typed errors, one loop."""

from __future__ import annotations

import numpy as np
import pytest

from sharpdepth.errors import DatasetError, OptionError
from sharpdepth.eval.datasets import Sample, open_dataset
from sharpdepth.eval.predictor import LoadedModel, PredictorError, as_predictor
from sharpdepth.eval.protocols import get_protocol
from sharpdepth.eval.runner import Evaluator
from sharpdepth.eval.settings import EvalSettings
from sharpdepth.result import DepthResult, OutputKind

from conftest import data_dir

MIDDLEBURY = data_dir() / "rgbd" / "middlebury2014_quarter"


class Counting:
    """Declares `declared`, predicts a constant map of kind `actual`, counts its calls."""

    def __init__(self, declared, actual=None):
        self.name = self.fingerprint = "counting"
        self.output_kind = declared
        self.actual = actual or declared
        self.calls = 0

    def predict(self, image, focal_px=None):
        self.calls += 1
        ramp = np.linspace(1.0, 2.0, image.shape[1], dtype=np.float32)
        return DepthResult(np.broadcast_to(ramp, image.shape[:2]).copy(), self.actual)


@pytest.fixture(scope="module")
def dataset():
    return open_dataset("middlebury", MIDDLEBURY)


def test_alignment_is_decided_before_any_prediction(dataset):
    model = Counting(OutputKind.RELATIVE_DISPARITY)
    with pytest.raises(OptionError, match="cannot be scored with --align none"):
        Evaluator(dataset, get_protocol("middlebury"), EvalSettings(align="none", limit=1)).run(model)
    assert model.calls == 0
    with pytest.raises(OptionError, match="disparity space"):
        Evaluator(dataset, get_protocol("middlebury"), EvalSettings(align_space="depth", limit=1)).run(model)
    assert model.calls == 0


def test_a_prediction_of_another_kind_than_declared_is_refused(dataset):
    model = Counting(OutputKind.METRIC_DEPTH, actual=OutputKind.RELATIVE_DISPARITY)
    with pytest.raises(PredictorError, match="declared metric"):
        Evaluator(dataset, get_protocol("middlebury"), EvalSettings(limit=1, boundary=False)).run(model)


def test_loaded_models_are_wrapped_with_their_declared_kind_and_fingerprint():
    class FakeModel:  # the attributes `sharpdepth.load(...)` models have
        name = "fake"
        output_kind = OutputKind.METRIC_DEPTH
        weights_sha256 = "abc123"
        dtype = "torch.float32"

        def predict(self, image, focal_px=None):
            return DepthResult(np.ones(image.shape[:2], np.float32), OutputKind.METRIC_DEPTH)

    wrapped = as_predictor(FakeModel())
    assert isinstance(wrapped, LoadedModel) and wrapped.output_kind is OutputKind.METRIC_DEPTH
    assert "abc123" in wrapped.fingerprint and "torch.float32" in wrapped.fingerprint
    with pytest.raises(TypeError, match="predictor needs"):
        as_predictor(object())


def test_sequence_scope_predicts_each_frame_once_without_a_cache(dataset):
    model = Counting(OutputKind.RELATIVE_DISPARITY)
    settings = EvalSettings(limit=2, boundary=False, align_scope="sequence")  # no cache_dir: a temporary one
    report = Evaluator(dataset, get_protocol("middlebury"), settings).run(model)
    assert model.calls == 2 and report.summary["n_images"] == 2
    assert report.alignment == {"method": "lstsq", "space": "disparity", "scope": "sequence"}


def test_dataset_problems_are_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="HxWx3 uint8"):
        Sample("s", np.zeros((4, 4), np.uint8), np.ones((4, 4)))
    seq = tmp_path / "rgbd_dataset_freiburg1_x"
    seq.mkdir()
    (seq / "rgb.txt").write_text("not-a-time rgb/a.png\n")
    (seq / "depth.txt").write_text("1.0 depth/a.png\n")
    with pytest.raises(DatasetError, match="cannot index"):
        open_dataset("tum", seq).index()
