"""RoIHeads: the detection layer by hand, equality with torchvision's RoIHeads (inference and losses)."""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.roi_heads import RoIHeads as TorchvisionRoIHeads
from torchvision.ops import MultiScaleRoIAlign

from maskrcnn.model.box_head import BoxHead, BoxPredictor
from maskrcnn.model.boxes import BoxCoder
from maskrcnn.model.mask_head import MaskHead, MaskPredictor
from maskrcnn.model.probe import recording
from maskrcnn.model.roi_align import PyramidRoIAlign
from maskrcnn.model.roi_heads import RoIHeads, postprocess_detections

CHANNELS, CLASSES, FC = 8, 4, 32
IMAGE_SIZES = [(120, 160), (128, 150)]


def _ours(**kwargs) -> RoIHeads:
    return RoIHeads(
        box_roi_pool=PyramidRoIAlign(output_size=7, sampling_ratio=2, aligned=False),
        box_head=BoxHead(in_channels=CHANNELS, pool_size=7, fc_size=FC),
        box_predictor=BoxPredictor(in_features=FC, num_classes=CLASSES),
        mask_roi_pool=PyramidRoIAlign(output_size=14, sampling_ratio=2, aligned=False),
        mask_head=MaskHead(in_channels=CHANNELS, conv_channels=8, num_convs=2),
        mask_predictor=MaskPredictor(in_channels=8, num_classes=CLASSES),
        **kwargs,
    )


def _torchvision(**kwargs) -> TorchvisionRoIHeads:
    names = ["p2", "p3", "p4", "p5"]
    return TorchvisionRoIHeads(
        MultiScaleRoIAlign(names, 7, 2), TwoMLPHead(CHANNELS * 49, FC), FastRCNNPredictor(FC, CLASSES),
        kwargs.get("fg_iou", 0.5), kwargs.get("bg_iou", 0.5), kwargs.get("batch_size_per_image", 512),
        kwargs.get("positive_fraction", 0.25), (10.0, 10.0, 5.0, 5.0), kwargs.get("score_thresh", 0.05),
        kwargs.get("nms_thresh", 0.5), kwargs.get("detections_per_img", 100),
        mask_roi_pool=MultiScaleRoIAlign(names, 14, 2), mask_head=MaskRCNNHeads(CHANNELS, [8, 8], 1),
        mask_predictor=MaskRCNNPredictor(8, 8, CLASSES),
    )


def _pair(**kwargs) -> tuple[RoIHeads, TorchvisionRoIHeads]:
    theirs = _torchvision(**kwargs)
    ours = _ours(**kwargs)
    result = ours.load_state_dict(theirs.state_dict())  # torchvision's own keys, ".0." included
    assert not result.missing_keys and not result.unexpected_keys
    return ours, theirs


def _features() -> OrderedDict:
    return OrderedDict((f"p{k}", torch.randn(2, CHANNELS, 128 // 2**k, 160 // 2**k)) for k in range(2, 7))


def _proposals(count: int) -> list[torch.Tensor]:
    result = []
    for height, width in IMAGE_SIZES:
        x1y1 = torch.rand(count, 2) * torch.tensor([width, height])
        x2y2 = torch.minimum(x1y1 + torch.rand(count, 2) * 90 + 2, torch.tensor([float(width), float(height)]))
        result.append(torch.cat([x1y1, x2y2], dim=1))
    return result


def _targets() -> list[dict]:
    targets = []
    for (height, width), boxes, labels in zip(
        IMAGE_SIZES,
        (torch.tensor([[10.0, 20, 60, 90], [70, 30, 150, 110], [5, 5, 30, 25]]), torch.tensor([[40.0, 40, 120, 100]])),
        (torch.tensor([1, 3, 2]), torch.tensor([2])),
    ):
        masks = torch.zeros(len(boxes), height, width, dtype=torch.uint8)
        for i, (x1, y1, x2, y2) in enumerate(boxes.long().tolist()):
            masks[i, y1:y2, x1 + (x2 - x1) // 4:x2] = 1  # not box-shaped
        targets.append({"boxes": boxes, "labels": labels, "masks": masks})
    return targets


# ---------------------------------------------------------------------- the detection layer by hand
def _hand_made():
    probs = torch.tensor([
        [0.10, 0.60, 0.30, 0.00],  # A [10,10,50,50]
        [0.25, 0.50, 0.25, 0.00],  # B [12,12,52,52]: IoU(A, B) = 0.82
        [0.50, 0.04, 0.46, 0.00],  # C [60,60,90,90]: class 1 below the threshold
        [0.01, 0.98, 0.01, 0.00],  # D 0.005 px wide: removed as too small
        [0.20, 0.10, 0.70, 0.00],  # E [80,80,120,130]: clipped to [80,80,100,100]
    ]) + 1e-12
    proposals = torch.tensor([
        [10.0, 10, 50, 50], [12, 12, 52, 52], [60, 60, 90, 90], [70, 10, 70.005, 40], [80, 80, 120, 130]])
    second_image = torch.tensor([[0.0, 0, 10, 10]])
    second_probs = torch.tensor([[0.88, 0.04, 0.04, 0.04]])  # all below 0.05: nothing
    logits = torch.log(torch.cat([probs, second_probs]))
    return logits, [proposals, second_image]


@pytest.mark.parametrize("max_detections, expected", [
    (100, [("E", 2, 0.70), ("A", 1, 0.60), ("C", 2, 0.46), ("A", 2, 0.30), ("E", 1, 0.10)]),
    (3, [("E", 2, 0.70), ("A", 1, 0.60), ("C", 2, 0.46)]),
])
def test_detection_layer_by_hand(max_detections, expected):
    logits, proposals = _hand_made()
    deltas = torch.zeros(logits.shape[0], 4 * 4)
    boxes_by_name = {"A": [10, 10, 50, 50], "C": [60, 60, 90, 90], "E": [80, 80, 100, 100]}
    first, second = postprocess_detections(
        logits, deltas, proposals, [(100, 100), (50, 60)], box_coder=BoxCoder(weights=(10, 10, 5, 5)),
        score_thresh=0.05, nms_thresh=0.5, detections_per_img=max_detections, min_size=0.01,
    )
    assert first["boxes"].tolist() == [boxes_by_name[name] for name, _, _ in expected]
    assert first["labels"].tolist() == [label for _, label, _ in expected]
    assert first["labels"].dtype == torch.int64
    assert torch.allclose(first["scores"], torch.tensor([s for _, _, s in expected]), atol=1e-6)
    assert second["boxes"].shape == (0, 4) and second["scores"].shape == (0,)


def test_detection_layer_uses_class_specific_deltas():
    logits = torch.log(torch.tensor([[0.2, 0.5, 0.3]]))
    deltas = torch.zeros(1, 12)
    deltas[0, 4] = 1.0  # class 1: dx = 1/10 of the width -> shift right by 4 px
    deltas[0, 10] = 5 * math.log(2.0)  # class 2: dw = log 2 -> twice as wide, then clipped at x=0
    (result,) = postprocess_detections(
        logits, deltas, [torch.tensor([[10.0, 10, 50, 50]])], [(100, 100)], box_coder=BoxCoder(weights=(10, 10, 5, 5)),
        score_thresh=0.05, nms_thresh=0.5, detections_per_img=10, min_size=0.01,
    )
    assert result["labels"].tolist() == [1, 2]
    assert torch.allclose(result["boxes"], torch.tensor([[14.0, 10, 54, 50], [0, 10, 70, 50]]), atol=1e-4)


# ---------------------------------------------------------------------- equality with torchvision
def test_inference_equals_torchvision():
    ours, theirs = _pair()
    ours.eval()
    theirs.eval()
    features, proposals = _features(), _proposals(150)
    with torch.no_grad():
        result, losses = ours(features, proposals, IMAGE_SIZES)
        expected, _ = theirs(features, proposals, IMAGE_SIZES)
    assert losses == {}
    assert [len(r["boxes"]) for r in result] == [100, 100]  # random heads: many candidates, capped
    for mine, ref in zip(result, expected):
        assert torch.equal(mine["boxes"], ref["boxes"])
        assert torch.equal(mine["labels"], ref["labels"])
        assert torch.equal(mine["scores"], ref["scores"])
        assert mine["mask_probs"].shape == (100, 28, 28)
        assert torch.equal(mine["mask_probs"], ref["masks"][:, 0])


def test_training_losses_equal_torchvision():
    # 16 ROIs per image: which ones are sampled changes every loss by > 1% (seeded: identical draws).
    ours, theirs = _pair(batch_size_per_image=16)
    features, proposals, targets = _features(), _proposals(80), _targets()
    torch.manual_seed(3)
    detections, losses = ours.train()(features, proposals, IMAGE_SIZES, targets)
    torch.manual_seed(3)
    _, expected = theirs.train()(features, proposals, IMAGE_SIZES, targets)
    assert detections == []
    assert set(losses) == {"mrcnn_class_loss", "mrcnn_bbox_loss", "mrcnn_mask_loss"}
    assert torch.allclose(losses["mrcnn_class_loss"], expected["loss_classifier"], rtol=1e-6, atol=0)
    assert torch.allclose(losses["mrcnn_bbox_loss"], expected["loss_box_reg"], rtol=1e-6, atol=0)
    assert torch.allclose(losses["mrcnn_mask_loss"], expected["loss_mask"], rtol=1e-6, atol=0)
    sum(losses.values()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in ours.parameters())


# ---------------------------------------------------------------------- training shapes and edge cases
def test_training_with_mini_masks_crowd_and_an_empty_image():
    heads = _ours(batch_size_per_image=32).train()
    features, proposals = _features(), _proposals(40)
    targets = [
        {"boxes": torch.tensor([[10.0, 20, 60, 90], [70, 30, 150, 110]]), "labels": torch.tensor([1, 3]),
         "iscrowd": torch.tensor([False, True]), "mini_masks": torch.ones(2, 56, 56, dtype=torch.bool)},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
         "mini_masks": torch.zeros(0, 56, 56, dtype=torch.bool)},
    ]
    _, losses = heads(features, proposals, IMAGE_SIZES, targets)
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    assert losses["mrcnn_mask_loss"] > 0
    sum(losses.values()).backward()

    _, losses = heads(features, proposals, IMAGE_SIZES, [targets[1], targets[1]])  # no objects at all
    assert losses["mrcnn_bbox_loss"].item() == 0 and losses["mrcnn_mask_loss"].item() == 0
    sum(losses.values()).backward()  # still connected to the graph


def test_training_target_errors():
    heads = _ours().train()
    features, proposals = _features(), _proposals(10)
    good = _targets()
    with pytest.raises(ValueError, match="targets are required"):
        heads(features, proposals, IMAGE_SIZES)
    bad = [dict(good[0], labels=good[0]["labels"].float()), good[1]]
    with pytest.raises(ValueError, match=r"targets\[0\]\['labels'\]"):
        heads(features, proposals, IMAGE_SIZES, bad)
    bad = [good[0], {"boxes": good[1]["boxes"], "labels": good[1]["labels"]}]
    with pytest.raises(ValueError, match=r"targets\[1\].*masks"):
        heads(features, proposals, IMAGE_SIZES, bad)
    with pytest.raises(ValueError, match="mask_size"):
        _ours(mask_size=14).train()(features, proposals, IMAGE_SIZES, good)
    with pytest.raises(ValueError, match="all of mask_roi_pool"):
        RoIHeads(box_roi_pool=heads.box_roi_pool, box_head=heads.box_head, box_predictor=heads.box_predictor,
                 mask_head=heads.mask_head)


# ---------------------------------------------------------------------- inference edge cases and probes
def test_no_detections_and_box_only_heads():
    heads = _ours(score_thresh=0.999).eval()
    features, proposals = _features(), _proposals(20)
    with torch.no_grad():
        result, _ = heads(features, proposals, IMAGE_SIZES)
    assert [r["mask_probs"].shape for r in result] == [(0, 28, 28), (0, 28, 28)]
    box_only = RoIHeads(box_roi_pool=heads.box_roi_pool, box_head=heads.box_head,
                        box_predictor=heads.box_predictor).eval()
    with torch.no_grad():
        result, _ = box_only(features, proposals, IMAGE_SIZES)
    assert set(result[0]) == {"boxes", "labels", "scores"}


def test_probes_record_named_intermediates():
    heads = _ours(detections_per_img=7).eval()
    features, proposals = _features(), _proposals(30)
    with torch.no_grad(), recording() as record:
        result, _ = heads(features, proposals, IMAGE_SIZES)
    assert record["roi.class_logits"].shape == (60, CLASSES)
    assert record["roi.box_deltas"].shape == (60, 4 * CLASSES)
    assert record["roi.refined_boxes"].shape == (60, CLASSES, 4)
    assert [len(d["boxes"]) for d in record["roi.detections"]] == [7, 7]
    assert record["mask.logits"].shape == (14, CLASSES, 28, 28)
    assert torch.equal(record["mask.probs"], torch.cat([r["mask_probs"] for r in result]))
    # Refined boxes are clipped to each image.
    refined = record["roi.refined_boxes"]
    assert refined[:30, :, 2].max() <= IMAGE_SIZES[0][1] and refined[30:, :, 3].max() <= IMAGE_SIZES[1][0]
