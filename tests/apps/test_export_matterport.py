"""ONNX export of a matterport-architecture model: onnxruntime gives what ``MaskRCNN.detect`` gives.

The graph takes the molded image and its window; molding and unmolding run outside it (see
:mod:`maskrcnn.apps.export_onnx_matterport`). Checked with 0, 1 and many detections, the same graph on
images of other sizes (``"square"`` mode), the size error of ``"pad64"`` mode, and the CLI.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from maskrcnn import MaskRCNN, MatterportConfig  # noqa: E402
from maskrcnn.apps.export_onnx import OnnxDetector, export_onnx  # noqa: E402
from maskrcnn.cli import main  # noqa: E402
from maskrcnn.errors import ImageError, MaskRCNNError  # noqa: E402


class Tiny(MatterportConfig):
    """matterport's ResNet-50 at 128 px with small heads (random weights detect at threshold 0)."""

    NAME = "mp_export"
    BACKBONE = "resnet50"
    NUM_CLASSES = 3
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    TOP_DOWN_PYRAMID_SIZE = 16
    FPN_CLASSIF_FC_LAYERS_SIZE = 32
    POOL_SIZE = 5
    MASK_HEAD_CONV_CHANNELS = 8
    MASK_HEAD_NUM_CONVS = 1
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    POST_NMS_ROIS_INFERENCE = 100
    DETECTION_MIN_CONFIDENCE = 0.0
    DETECTION_MAX_INSTANCES = 12


NOISE = np.random.default_rng(0).integers(0, 255, (100, 120, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = MaskRCNN(mode="inference", config=Tiny(), model_dir=str(tmp_path_factory.mktemp("mp")))
    state = model.network.state_dict()
    # random mask logits lie near 0 (probabilities near the 0.5 threshold): spread them so masks are decisive
    state["roi_heads.mask_predictor.mrcnn_mask.weight"] *= 50
    return state


def _model(weights, folder, **settings) -> MaskRCNN:
    config = Tiny()
    for key, value in settings.items():
        setattr(config, key, value)
    model = MaskRCNN(mode="inference", config=config, model_dir=str(folder))
    model.network.load_state_dict(weights)
    return model


def _same(got: dict, want: dict, n: int) -> None:
    """Same detections: count, class ids, rois, scores within 1e-4, masks of IoU ≈ 1."""
    assert len(want["rois"]) == n and len(got["rois"]) == n
    assert got["rois"].dtype == np.int32 and got["class_ids"].dtype == np.int32 and got["scores"].dtype == np.float32
    assert got["masks"].dtype == bool and got["masks"].shape == want["masks"].shape
    assert np.array_equal(got["class_ids"], want["class_ids"])
    assert np.array_equal(got["rois"], want["rois"])
    assert np.abs(got["scores"] - want["scores"]).max(initial=0) <= 1e-4
    inter = (got["masks"] & want["masks"]).sum((0, 1))
    union = (got["masks"] | want["masks"]).sum((0, 1))
    # float rounding may flip a pixel whose probability is at the threshold: at most 1 pixel or 1 % per mask
    assert (union - inter <= np.maximum(1, 0.01 * union)).all()
    assert (union - inter).sum() <= max(2, 0.01 * union.sum())
    assert (inter > 0).sum() >= n // 2  # and the masks are not all empty


def test_many_detections_and_any_image_size_in_square_mode(weights, tmp_path):
    # 4000 proposal rows: NMS keeps fewer (3883, 3277, 3850 on these images), the rest are matterport's zero rows
    model = _model(weights, tmp_path, POST_NMS_ROIS_INFERENCE=4000)
    path = export_onnx(model, tmp_path / "many.onnx")
    detector = OnnxDetector(path)
    assert detector.architecture == "matterport" and detector.class_names == ["BG", "class1", "class2"]
    for image in (NOISE, np.ascontiguousarray(NOISE[:70, :110]), np.full((90, 40, 3), 200, np.uint8)):
        want = model.detect([image])[0]
        _same(detector.detect([image])[0], want, 12)
        assert want["masks"].any()
    raw = detector.run(NOISE)
    assert raw["detections"].shape == (12, 6) and raw["mask_probs"].shape == (12, 28, 28)
    assert (raw["detections"][:, 4] > 0).all() and 0.0 <= raw["mask_probs"].min() <= raw["mask_probs"].max() <= 1


def test_one_detection_and_counts_that_vary_per_image(weights, tmp_path):
    scores = _model(weights, tmp_path).detect([NOISE])[0]["scores"]
    model = _model(weights, tmp_path, DETECTION_MAX_INSTANCES=1)
    detector = OnnxDetector(export_onnx(model, tmp_path / "one.onnx"))
    _same(detector.detect([NOISE])[0], model.detect([NOISE])[0], 1)
    # one graph, a threshold between the 3rd and 4th score: 3 detections here, 0 and 12 on other images
    model = _model(weights, tmp_path, DETECTION_MIN_CONFIDENCE=float(scores[2] + scores[3]) / 2)
    detector = OnnxDetector(export_onnx(model, tmp_path / "three.onnx"))
    _same(detector.detect([NOISE])[0], model.detect([NOISE])[0], 3)
    black = np.zeros((100, 120, 3), np.uint8)
    _same(detector.detect([black])[0], model.detect([black])[0], 0)
    grey = np.full((90, 40, 3), 200, np.uint8)
    _same(detector.detect([grey])[0], model.detect([grey])[0], 12)


def test_zero_detections_give_empty_results(weights, tmp_path):
    model = _model(weights, tmp_path, DETECTION_MIN_CONFIDENCE=0.99)
    detector = OnnxDetector(export_onnx(model, tmp_path / "zero.onnx"))
    for image in (NOISE, np.zeros((64, 64, 3), np.uint8)):
        got = detector.detect([image])[0]
        _same(got, model.detect([image])[0], 0)
        assert got["rois"].shape == (0, 4) and got["masks"].shape == image.shape[:2] + (0,)
    raw = detector.run(NOISE)
    assert raw["detections"].shape == (0, 6) and raw["mask_probs"].shape == (0, 28, 28)


def test_pad64_mode_takes_images_of_the_export_molded_size(weights, tmp_path):
    model = _model(weights, tmp_path, IMAGE_RESIZE_MODE="pad64")
    path = export_onnx(model, tmp_path / "pad64.onnx", size=(100, 120))  # molds to 128x154, padded to 128x192
    detector = OnnxDetector(path)
    for image in (NOISE, np.ascontiguousarray(np.flipud(NOISE[:, :118]))):  # 100x118 molds to 128x192 too
        want = model.detect([image])[0]
        _same(detector.detect([image])[0], want, 12)
    with pytest.raises(ImageError, match=r"images\[0\]: size 100x200 molds to 128x256 .*exported for molded size "
                                         r"128x192; re-export with --size 100 200"):
        detector.detect([np.zeros((100, 200, 3), np.uint8)])
    with pytest.raises(MaskRCNNError, match="letterbox=True is for graphs of the project's network"):
        OnnxDetector(path, letterbox=True)


def test_cli_exports_a_matterport_checkpoint(weights, tmp_path, capsys):
    model = _model(weights, tmp_path)
    checkpoint = model.save(tmp_path / "mp.pt")
    out = tmp_path / "cli.onnx"
    assert main(["export", "--weights", str(checkpoint), "--out", str(out)]) == 0
    assert "'molded' float32 [1, 3, 128, 128]" in capsys.readouterr().out
    _same(OnnxDetector(out).detect([NOISE])[0], model.detect([NOISE])[0], 12)
