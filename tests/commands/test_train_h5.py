"""``maskrcnn train --weights FILE.h5 [--exclude-class-layers]``: fine-tuning matterport's weights."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch

if not hasattr(pytest.importorskip("maskrcnn.config"), "MatterportConfig"):
    pytest.skip("needs MatterportConfig (maskrcnn.config) and the matterport network", allow_module_level=True)

from maskrcnn.cli import main
from maskrcnn.config import MatterportConfig
from maskrcnn.detector import MaskRCNN
from maskrcnn.matterport_h5_write import write_h5
from maskrcnn.weights import read_checkpoint

SETS = ["IMAGE_MIN_DIM=64", "IMAGE_MAX_DIM=64", "RPN_ANCHOR_SCALES=[8, 16, 32, 64, 128]", "STEPS_PER_EPOCH=1",
        "VALIDATION_STEPS=1", "EVAL_EVERY=0", "IMAGES_PER_GPU=2", "TRAIN_ROIS_PER_IMAGE=16", "POST_NMS_ROIS_TRAINING=32"]


def _run(argv: list[str]) -> tuple[int, str]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        rc = main(argv)
    return rc, buffer.getvalue()


@pytest.fixture(scope="module")
def h5_file(tmp_path_factory):
    torch.manual_seed(0)
    model = MaskRCNN(MatterportConfig(BACKBONE="resnet50", NUM_CLASSES=81, TOP_DOWN_PYRAMID_SIZE=16,
                                      FPN_CLASSIF_FC_LAYERS_SIZE=32), device="cpu")
    return write_h5(model.network, tmp_path_factory.mktemp("h5") / "coco81.h5")


def test_train_from_h5_needs_the_class_layers_excluded(h5_file, tmp_path):
    rc, out = _run(["train", "--dataset", "shapes:4:64", "--weights", str(h5_file), "--set", *SETS, "--epochs", "1",
                    "--device", "cpu", "--progress", "none", "--logs", str(tmp_path)])
    assert rc == 1
    error = out.strip().splitlines()[-1]
    assert error.startswith(f"maskrcnn train: error: --weights: {h5_file}: layer mrcnn_class_logits: ")
    assert "NUM_CLASSES=81, the config says 4" in error and "--exclude-class-layers" in error


def test_train_from_h5_with_exclude_class_layers(h5_file, tmp_path):
    rc, out = _run(["train", "--dataset", "shapes:4:64", "--weights", str(h5_file), "--exclude-class-layers",
                    "--set", *SETS, "--epochs", "1", "--layers", "heads", "--device", "cpu", "--progress", "none",
                    "--logs", str(tmp_path)])
    assert rc == 0, out
    assert f"{h5_file}: matterport_h5 checkpoint, loaded" in out and "(class-specific layers excluded)" in out
    (checkpoint,) = tmp_path.glob("shapes*/mask_rcnn_shapes_0001.pth")
    saved = read_checkpoint(checkpoint)
    assert saved["config_class"] == "MatterportConfig" and saved["config"]["ARCHITECTURE"] == "matterport"
    assert saved["config"]["NUM_CLASSES"] == 4 and saved["config"]["TOP_DOWN_PYRAMID_SIZE"] == 16
