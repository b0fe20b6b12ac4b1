"""Exported ONNX graphs with 0, 1 and many detections give what the PyTorch model gives.

Before: a graph traced when the example image had no detection (a high threshold, an empty frame)
dropped the ROI index column (``Gather .../mask_roi_pool/Gather_2 ... idx=3 must be within [-3,2]``),
and 0 proposals failed a Reshape of the box deltas. ``letterbox`` is an ``OnnxDetector`` argument.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from maskrcnn import MaskRCNN  # noqa: E402
from maskrcnn.apps.export_onnx import OnnxDetector, export_onnx  # noqa: E402
from maskrcnn.config import Config  # noqa: E402
from maskrcnn.errors import ImageError  # noqa: E402

SIZE = (128, 160)
TINY = dict(NAME="export0", NUM_CLASSES=3, BACKBONE="resnet18", IMAGE_RESIZE_MODE="square", IMAGE_MIN_DIM=128,
            IMAGE_MAX_DIM=128, TOP_DOWN_PYRAMID_SIZE=16, MASK_HEAD_CONV_CHANNELS=16, MASK_HEAD_NUM_CONVS=1,
            FPN_CLASSIF_FC_LAYERS_SIZE=32, DETECTION_MAX_INSTANCES=30, POST_NMS_ROIS_INFERENCE=100,
            PRE_NMS_LIMIT=500, IMAGES_PER_GPU=1)
NAMES = ["BG", "a", "b"]


def _images() -> list[np.ndarray]:
    noise = np.random.default_rng(0).integers(0, 255, SIZE + (3,), dtype=np.uint8)
    return [noise, np.zeros(SIZE + (3,), np.uint8)]


@pytest.fixture(scope="module")
def weights():
    torch.manual_seed(0)
    model = MaskRCNN(Config(**TINY, DETECTION_MIN_CONFIDENCE=0.0), class_names=NAMES, device="cpu")
    scores = model.detect(_images()[:1])[0]["scores"]
    return model.network.state_dict(), [float(s) for s in scores]


def _export(weights, tmp_path, name: str, **settings):
    model = MaskRCNN(Config(**TINY, **settings), class_names=NAMES, device="cpu")
    model.network.load_state_dict(weights[0])
    return model, export_onnx(model, tmp_path / f"{name}.onnx", size=SIZE)


def _same(got: dict, want: dict, n: int) -> None:
    assert len(got["rois"]) == len(want["rois"]) == n
    assert got["rois"].shape == (n, 4) and got["masks"].shape == SIZE + (n,) and got["masks"].dtype == bool
    assert np.array_equal(got["class_ids"], want["class_ids"])
    assert np.abs(got["scores"] - want["scores"]).max(initial=0) <= 1e-4
    assert np.abs(got["rois"].astype(int) - want["rois"]).max(initial=0) <= 1


def test_zero_detections_by_threshold(weights, tmp_path):
    model, path = _export(weights, tmp_path, "zero", DETECTION_MIN_CONFIDENCE=0.99)
    detector = OnnxDetector(path)
    for image in _images():
        _same(detector.detect([image])[0], model.detect([image])[0], 0)
    raw = detector.run(_images()[1])
    assert raw["boxes"].shape == (0, 4) and raw["mask_probs"].shape == (0, 28, 28)


def test_zero_proposals(weights, tmp_path):
    model, path = _export(weights, tmp_path, "noproposal", DETECTION_MIN_CONFIDENCE=0.0, RPN_MIN_SIZE=1e6)
    for image in _images():
        _same(OnnxDetector(path).detect([image])[0], model.detect([image])[0], 0)


def test_one_detection(weights, tmp_path):
    best, second = weights[1][:2]
    assert best - second > 1e-3  # a threshold between the best two scores keeps exactly one
    model, path = _export(weights, tmp_path, "one", DETECTION_MIN_CONFIDENCE=(best + second) / 2)
    image = _images()[0]
    _same(OnnxDetector(path).detect([image])[0], model.detect([image])[0], 1)


def test_many_detections_and_letterbox_in_the_constructor(weights, tmp_path):
    model, path = _export(weights, tmp_path, "many", DETECTION_MIN_CONFIDENCE=0.0)
    image = _images()[0]
    _same(OnnxDetector(path).detect([image])[0], model.detect([image])[0], 30)
    small = np.ascontiguousarray(image[:100, :120])
    with pytest.raises(ImageError, match=r"use OnnxDetector\(path, letterbox=True\)"):
        OnnxDetector(path).detect([small])
    (boxed,) = OnnxDetector(path, letterbox=True).detect([small])
    assert boxed["masks"].shape[:2] == (100, 120) and len(boxed["rois"]) > 0
    with pytest.warns(DeprecationWarning, match=r"OnnxDetector\(path, letterbox=True\)"):
        (old,) = OnnxDetector(path).detect([small], letterbox=True)
    assert np.array_equal(old["rois"], boxed["rois"])
