"""Transfer learning: a model trained briefly on shapes (3 classes), fine-tuned with `--weights FILE
--exclude-class-layers` on a 1-class dataset, starts with a lower loss than the same run from scratch."""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

from maskrcnn.cli import main
from maskrcnn.data.formats.shapes import ShapesDataset

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = [
    "BACKBONE=resnet18", "BACKBONE_NORM=gn", "IMAGE_MIN_DIM=64", "IMAGE_MAX_DIM=64",
    "RPN_ANCHOR_SCALES=[8, 16, 32, 64, 128]", "TOP_DOWN_PYRAMID_SIZE=32", "MASK_HEAD_CONV_CHANNELS=32",
    "MASK_HEAD_NUM_CONVS=1", "FPN_CLASSIF_FC_LAYERS_SIZE=64", "TRAIN_ROIS_PER_IMAGE=32", "PRE_NMS_LIMIT=300",
    "POST_NMS_ROIS_TRAINING=64", "POST_NMS_ROIS_INFERENCE=16", "MINI_MASK_SHAPE=[14, 14]", "EVAL_EVERY=0",
    "VALIDATION_STEPS=1", "LEARNING_RATE=0.02", "LR_WARMUP_STEPS=5",
]


def _run(argv: list[str]) -> tuple[int, str]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        rc = main(argv)
    return rc, buffer.getvalue()


def _write_mask_dataset(root, count: int) -> None:
    """Shapes images in the DSB mask-folder layout: one class (named after the folder)."""
    shapes = ShapesDataset(count, 64, 64, seed=11)
    for i in shapes.image_ids:
        sample = root / f"s{i:03d}"
        (sample / "images").mkdir(parents=True)
        (sample / "masks").mkdir()
        Image.fromarray(shapes.load_image(i)).save(sample / "images" / f"s{i:03d}.png")
        masks, _ = shapes.load_mask(i)
        for k in range(masks.shape[-1]):
            Image.fromarray((masks[..., k] > 0).astype(np.uint8) * 255).save(sample / "masks" / f"m{k}.png")


def _first_step_loss(output: str) -> float:
    match = re.search(r"^epoch 1/1 step 1/\d+ .* loss=([0-9.]+)", output, re.MULTILINE)
    assert match, output
    return float(match.group(1))


def test_fine_tuning_from_shapes_starts_lower_than_scratch(tmp_path):
    rc, out = _run(["train", "--dataset", "shapes:48:64", "--set", *TINY, "STEPS_PER_EPOCH=12", "IMAGES_PER_GPU=4",
                    "--epochs", "3", "--layers", "all", "--logs", str(tmp_path / "pre"), "--name", "pre",
                    "--progress", "none", "--seed", "1", "--device", "cpu"])
    assert rc == 0, out
    (pretrained,) = (tmp_path / "pre").glob("pre*/mask_rcnn_pre_0003.pth")
    blobs = tmp_path / "blobs"
    _write_mask_dataset(blobs, 8)

    def fine_tune(*weights: str) -> tuple[int, str]:
        return _run(["train", "--dataset", str(blobs), "--val-fraction", "0.25", "--set", *TINY,
                     "STEPS_PER_EPOCH=1", "IMAGES_PER_GPU=4", "--epochs", "1", "--layers", "all",
                     "--logs", str(tmp_path / "ft"), "--progress", "plain", "--seed", "2", "--device", "cpu",
                     *weights])

    rc, refused = fine_tune("--weights", str(pretrained))  # 4 classes into a 2-class model
    assert rc == 1 and "NUM_CLASSES=4" in refused and "--exclude-class-layers" in refused
    rc, transfer = fine_tune("--weights", str(pretrained), "--exclude-class-layers")
    assert rc == 0, transfer
    assert "class-specific layers excluded" in transfer and "classes ['blobs']" in transfer
    rc, scratch = fine_tune("--weights", "none")
    assert rc == 0, scratch
    assert _first_step_loss(transfer) < 0.8 * _first_step_loss(scratch), (transfer, scratch)
    assert torch.get_num_threads() == 1
