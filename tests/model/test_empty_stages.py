"""Every inference stage accepts zero inputs and returns zero outputs of the right shapes.

A freshly initialised (or undertrained) model can leave no proposal after the RPN's size filter
(``MaskRCNN(Config(NUM_CLASSES=2))`` seeded 0 on a balloon image did: ``RuntimeError: cannot
reshape tensor of 0 elements``); a trained one finds nothing on an empty frame. Neither may crash.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskrcnn.config import Config
from maskrcnn.model.box_head import BoxHead, BoxPredictor
from maskrcnn.model.boxes import BoxCoder
from maskrcnn.model.mask_head import MaskHead, MaskPredictor
from maskrcnn.model.postprocess import paste_masks
from maskrcnn.model.roi_align import PyramidRoIAlign
from maskrcnn.model.roi_heads import RoIHeads, postprocess_detections

CHANNELS, CLASSES = 8, 3
SIZES = [(64, 80), (60, 72)]


def _features(batch: int = 2) -> dict[str, torch.Tensor]:
    return {f"p{i + 2}": torch.randn(batch, CHANNELS, 64 // 2 ** (i + 2), 80 // 2 ** (i + 2))
            for i in range(4)}


def _heads(**kwargs) -> RoIHeads:
    return RoIHeads(
        box_roi_pool=PyramidRoIAlign(output_size=7, sampling_ratio=2, aligned=False),
        box_head=BoxHead(in_channels=CHANNELS, pool_size=7, fc_size=16),
        box_predictor=BoxPredictor(in_features=16, num_classes=CLASSES),
        mask_roi_pool=PyramidRoIAlign(output_size=14, sampling_ratio=2, aligned=False),
        mask_head=MaskHead(in_channels=CHANNELS, conv_channels=8, num_convs=1),
        mask_predictor=MaskPredictor(in_channels=8, num_classes=CLASSES),
        **kwargs,
    ).eval()


def test_box_coder_decodes_zero_deltas():
    coder = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    assert coder.decode(torch.zeros(0, 4 * CLASSES), torch.zeros(0, 4)).shape == (0, CLASSES, 4)
    assert coder.decode(torch.zeros(0, 4), torch.zeros(0, 4)).shape == (0, 1, 4)


@pytest.mark.parametrize("counts", [(0, 0), (0, 3), (2, 0)])
def test_postprocess_detections_with_zero_proposals(counts):
    proposals = [torch.tensor([[1.0, 2.0, 30.0, 40.0]]).repeat(n, 1) for n in counts]
    total = sum(counts)
    detections = postprocess_detections(
        torch.randn(total, CLASSES), torch.randn(total, 4 * CLASSES), proposals, SIZES,
        box_coder=BoxCoder(weights=(10.0, 10.0, 5.0, 5.0)), score_thresh=0.0, nms_thresh=0.5,
        detections_per_img=10, min_size=0.01)
    for n, det in zip(counts, detections):
        assert det["boxes"].shape[1:] == (4,) and det["labels"].dtype == torch.int64
        assert det["boxes"].shape[0] == det["scores"].shape[0] == det["labels"].shape[0]
        assert (det["boxes"].shape[0] == 0) == (n == 0)


@pytest.mark.parametrize("counts", [(0, 0), (0, 3)])
def test_roi_heads_with_zero_proposals(counts):
    proposals = [torch.tensor([[1.0, 2.0, 30.0, 40.0]]).repeat(n, 1) for n in counts]
    with torch.no_grad():
        detections, losses = _heads(score_thresh=0.0)(_features(), proposals, SIZES)
    assert losses == {}
    assert detections[0]["boxes"].shape == (0, 4) and detections[0]["mask_probs"].shape == (0, 28, 28)
    for det in detections:
        n = det["boxes"].shape[0]
        assert det["scores"].shape == det["labels"].shape == (n,) and det["mask_probs"].shape == (n, 28, 28)


def test_roi_heads_with_no_detection_above_the_threshold():
    proposals = [torch.tensor([[1.0, 2.0, 30.0, 40.0], [5.0, 5.0, 50.0, 50.0]])] * 2
    with torch.no_grad():
        detections, _ = _heads(score_thresh=0.999999)(_features(), proposals, SIZES)
    for det in detections:
        assert det["boxes"].shape == (0, 4) and det["mask_probs"].shape == (0, 28, 28)


def test_paste_masks_with_zero_masks():
    assert paste_masks(torch.zeros(0, 28, 28), torch.zeros(0, 4), (20, 30)).shape == (0, 20, 30)
    assert paste_masks(torch.zeros(0, 28, 28), torch.zeros(0, 4), (20, 30), threshold=0.5).dtype == torch.bool


def test_rpn_that_keeps_no_proposal_gives_empty_detections():
    """The whole model when the RPN keeps nothing (every proposal below RPN_MIN_SIZE)."""
    from maskrcnn import MaskRCNN

    torch.manual_seed(0)
    config = Config(NAME="empty", NUM_CLASSES=2, BACKBONE="resnet18", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=128,
                    TOP_DOWN_PYRAMID_SIZE=16, FPN_CLASSIF_FC_LAYERS_SIZE=32, MASK_HEAD_CONV_CHANNELS=16,
                    MASK_HEAD_NUM_CONVS=1, RPN_MIN_SIZE=1e6, DETECTION_MIN_CONFIDENCE=0.0)
    model = MaskRCNN(config, device="cpu")
    image = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    (result,) = model.detect([image])
    assert result["rois"].shape == (0, 4) and result["class_ids"].shape == (0,) and result["scores"].shape == (0,)
    assert result["masks"].shape == (90, 120, 0) and result["masks"].dtype == bool


@pytest.mark.slow
def test_fresh_default_model_on_a_balloon_image(shared_data):
    """The reported case: ``MaskRCNN(Config(NUM_CLASSES=2))`` seeded 0, ``detect`` on a balloon val image."""
    from PIL import Image

    from maskrcnn import MaskRCNN

    torch.manual_seed(0)
    model = MaskRCNN(Config(NUM_CLASSES=2), device="cpu")
    path = shared_data / "balloon" / "val" / "14898532020_ba6199dd22_k.jpg"
    image = np.asarray(Image.open(path).convert("RGB"))
    (result,) = model.detect([image])
    n = result["rois"].shape[0]
    assert result["masks"].shape == (*image.shape[:2], n) and result["scores"].shape == (n,)
