"""Bad input to detect() and to the model: one clear ImageError / ConfigError naming the image or field."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskrcnn.config import Config
from maskrcnn.errors import ConfigError, ImageError
from maskrcnn.detector import MaskRCNN

TINY = {"NUM_CLASSES": 2, "BACKBONE": "resnet18", "IMAGE_MIN_DIM": 64, "IMAGE_MAX_DIM": 64, "TOP_DOWN_PYRAMID_SIZE": 8,
            "FPN_CLASSIF_FC_LAYERS_SIZE": 16, "MASK_HEAD_CONV_CHANNELS": 8, "MASK_HEAD_NUM_CONVS": 1}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MaskRCNN(Config(**TINY), device="cpu")


GOOD = np.zeros((20, 30, 3), dtype=np.uint8)


@pytest.mark.parametrize("bad, pattern", [
    (np.zeros((20, 30, 3), dtype=np.float32), r"images\[1\]: dtype float32.*uint8.*255"),
    (np.zeros((0, 30, 3), dtype=np.uint8), r"images\[1\]: empty image"),
    (np.zeros((2, 20, 30, 3), dtype=np.uint8), r"images\[1\]: shape \(2, 20, 30, 3\)"),
    (np.zeros((20, 30, 2), dtype=np.uint8), r"images\[1\]: 2 channels"),
    (np.zeros((20, 30, 3), dtype=bool), r"images\[1\]: dtype bool"),
    ([[1, 2], [3, 4]], r"images\[1\]: expected an H×W×3 uint8 numpy array, got list"),
    (torch.zeros(3, 20, 30, dtype=torch.uint8), r"images\[1\]: got a torch tensor"),
])
def test_detect_refuses_bad_images(model, bad, pattern):
    with pytest.raises(ImageError, match=pattern):
        model.detect([GOOD, bad])


def test_single_array_instead_of_list(model):
    with pytest.raises(ImageError, match="wrap a single image"):
        model.detect(GOOD)


def test_empty_list_and_invalid_config(model):
    assert model.detect([]) == []
    with pytest.raises(ConfigError, match="NUM_CLASSES"):
        MaskRCNN(Config(**{**TINY, "NUM_CLASSES": 1}), device="cpu")
