"""The apps' declared detector interface: the real detector and a detect-only stand-in both satisfy it."""

from __future__ import annotations

import numpy as np
import torch

from maskrcnn import Config, MaskRCNN
from maskrcnn.apps.detector_protocol import Detector, InspectableDetector
from maskrcnn.apps.splash import union_of_detections


class DetectOnly:
    config = Config()
    class_names = ["BG", "thing"]
    detect_union = union_of_detections

    def detect(self, images, verbose=0, batch_size=None):
        masks = np.zeros(images[0].shape[:2] + (2,), dtype=bool)
        masks[:2, :2, 0] = masks[-2:, -2:, 1] = True
        r = {"rois": np.array([[0, 0, 2, 2], [6, 6, 8, 8]]), "class_ids": np.array([1, 1]),
             "scores": np.array([0.9, 0.5], dtype=np.float32), "masks": masks}
        return [r for _ in images]


def test_the_detector_and_a_stand_in_are_detectors():
    torch.manual_seed(0)
    config = Config(NAME="proto", NUM_CLASSES=2, BACKBONE="resnet18", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=64,
                    TOP_DOWN_PYRAMID_SIZE=16, FPN_CLASSIF_FC_LAYERS_SIZE=32, MASK_HEAD_CONV_CHANNELS=8,
                    MASK_HEAD_NUM_CONVS=1)
    model = MaskRCNN(config, class_names=["BG", "thing"], device="cpu")
    assert isinstance(model, InspectableDetector) and isinstance(model, Detector)
    stand_in = DetectOnly()
    assert isinstance(stand_in, Detector) and not isinstance(stand_in, InspectableDetector)
    image = np.zeros((8, 8, 3), np.uint8)
    (union,) = stand_in.detect_union([image], min_confidence=0.6)
    assert union.sum() == 4 and union[:2, :2].all()
    (union,) = stand_in.detect_union([image], class_ids=[1])
    assert union.sum() == 8
