"""ONNX export (``maskrcnn export``) and onnxruntime detections equal to eager PyTorch on balloon images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from maskrcnn.apps.export_onnx import OnnxDetector, default_input_size  # noqa: E402
from maskrcnn.cli import main  # noqa: E402
from maskrcnn.config import Config, TorchvisionConfig  # noqa: E402
from maskrcnn.errors import ImageError, MaskRCNNError  # noqa: E402
from maskrcnn.detector import MaskRCNN  # noqa: E402

SIZE = (240, 320)
# Two balloon val images of the same size (1024 x 683), cropped to the export size.
NAMES = ("3825919971_93fb1ec581_b.jpg", "5555705118_3390d70abe_b.jpg")


def _config() -> Config:
    return Config(NAME="export", NUM_CLASSES=3, BACKBONE="resnet18", IMAGE_RESIZE_MODE="square", IMAGE_MIN_DIM=128,
                  IMAGE_MAX_DIM=128, TOP_DOWN_PYRAMID_SIZE=64, MASK_HEAD_CONV_CHANNELS=64,
                  FPN_CLASSIF_FC_LAYERS_SIZE=256, DETECTION_MIN_CONFIDENCE=0.3, DETECTION_MAX_INSTANCES=30,
                  POST_NMS_ROIS_INFERENCE=300, PRE_NMS_LIMIT=1000, IMAGES_PER_GPU=1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, shared_data):
    torch.set_num_threads(2)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("export")
    model = MaskRCNN(_config(), class_names=["BG", "balloon", "string"], device="cpu")
    checkpoint = model.save(folder / "model.pt")
    out = folder / "model.onnx"
    rc = main(["export", "--weights", str(checkpoint), "--format", "onnx", "--out", str(out),
               "--size", str(SIZE[0]), str(SIZE[1])])
    assert rc == 0 and out.is_file()
    images = []
    for name in NAMES:
        image = np.array(Image.open(shared_data / "balloon" / "val" / name).convert("RGB"))
        assert image.shape == (1024, 683, 3)
        images.append(np.ascontiguousarray(image[300:300 + SIZE[0], 100:100 + SIZE[1]]))
    return model, out, images


def test_onnxruntime_detections_match_eager(exported):
    model, path, images = exported
    detector = OnnxDetector(path)
    assert detector.input_size == SIZE and detector.class_names == ["BG", "balloon", "string"]
    assert detector.mask_threshold == 0.5
    ours, ref = detector.detect(images), model.detect(images)
    for got, want in zip(ours, ref):
        assert len(want["rois"]) >= 10  # enough detections for the comparison to mean something
        assert len(got["rois"]) == len(want["rois"])
        assert np.array_equal(got["class_ids"], want["class_ids"])
        assert np.abs(got["rois"].astype(int) - want["rois"]).max() <= 1
        assert np.abs(got["scores"] - want["scores"]).max() <= 1e-4
        assert got["masks"].shape == want["masks"].shape == SIZE + (len(want["rois"]),)
        inter = (got["masks"] & want["masks"]).sum((0, 1))
        union = (got["masks"] | want["masks"]).sum((0, 1))
        assert (inter / np.maximum(union, 1)).min() >= 0.99


def test_raw_outputs_and_other_sizes(exported):
    model, path, images = exported
    detector = OnnxDetector(path)
    raw = detector.run(images[0])
    n = raw["boxes"].shape[0]
    assert raw["boxes"].shape == (n, 4) and raw["labels"].dtype == np.int64
    assert raw["mask_probs"].shape == (n, 28, 28) and 0.0 <= raw["mask_probs"].min() <= raw["mask_probs"].max() <= 1
    assert (raw["boxes"][:, 2] <= SIZE[1]).all() and (raw["boxes"][:, 3] <= SIZE[0]).all()
    small = np.ascontiguousarray(images[1][:200, :300])
    with pytest.raises(ImageError, match=r"size 200x300.*exported for 240x320.*--size 200 300"):
        detector.detect([small])
    (boxed,) = OnnxDetector(path, letterbox=True).detect([small])
    assert boxed["masks"].shape[:2] == (200, 300)
    assert len(boxed["rois"]) == 0 or boxed["rois"][:, 2].max() <= 200 + 1
    with pytest.raises(ImageError, match="uint8"):
        detector.detect([small.astype(np.float32)])


def test_cli_refuses_bad_arguments(exported, tmp_path, capsys):
    _, path, _ = exported
    weights = path.parent / "model.pt"
    assert main(["export", "--weights", str(weights), "--format", "tflite", "--out", str(tmp_path / "m.onnx")]) == 1
    assert "--format 'tflite'" in capsys.readouterr().err
    assert main(["export", "--weights", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "m.onnx")]) == 1
    assert "file not found" in capsys.readouterr().err
    assert main(["export", "--weights", str(weights), "--out", str(tmp_path / "m.pb")]) == 1
    assert ".onnx" in capsys.readouterr().err
    with pytest.raises(MaskRCNNError, match="not written by maskrcnn export"):
        import onnx

        proto = onnx.load(str(path))
        del proto.metadata_props[:]
        onnx.save(proto, str(tmp_path / "plain.onnx"))
        OnnxDetector(tmp_path / "plain.onnx")


def test_default_input_size():
    assert default_input_size(TorchvisionConfig()) == (800, 1067)
    assert default_input_size(Config(IMAGE_RESIZE_MODE="square", IMAGE_MAX_DIM=1024)) == (1024, 1024)
