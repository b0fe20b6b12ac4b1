"""Losses: hand values, parity with torchvision's own loss functions, empty cases keep the graph."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.models.detection.roi_heads import fastrcnn_loss, maskrcnn_loss
from torchvision.models.detection.rpn import RegionProposalNetwork

from maskrcnn.model.losses import mrcnn_losses, rpn_losses
from maskrcnn.model.targets import mask_targets, sample_labels

EXACT = {"rtol": 0.0, "atol": 1e-6}


def test_rpn_losses_hand_values():
    objectness = torch.zeros(3, requires_grad=True)  # logit 0: BCE = log 2 either way
    deltas = torch.zeros(3, 4, requires_grad=True)
    labels = torch.tensor([1.0, 0.0, -1.0])
    targets = torch.tensor([[1.0, 0.0, 0.0, 0.05], [9.0, 9.0, 9.0, 9.0], [9.0, 9.0, 9.0, 9.0]])
    out = rpn_losses(objectness, deltas, labels, targets, torch.tensor([0]), torch.tensor([1]))
    assert set(out) == {"rpn_class_loss", "rpn_bbox_loss"}
    torch.testing.assert_close(out["rpn_class_loss"], torch.tensor(math.log(2.0)))
    # smooth-L1, beta 1/9: |1| -> 1 - 1/18; |0.05| -> 0.5 * 0.05² * 9; divided by the 2 sampled anchors
    expected = (1 - 1 / 18 + 0.5 * 0.05 ** 2 * 9) / 2
    torch.testing.assert_close(out["rpn_bbox_loss"], torch.tensor(expected))
    sum(out.values()).backward()
    assert deltas.grad[1:].abs().sum() == 0 and objectness.grad[2] == 0  # negatives/ignored: no box gradient


def test_rpn_losses_equal_torchvision_compute_loss():
    gen = torch.Generator().manual_seed(0)
    sizes = [300, 200]
    labels = [torch.randint(-1, 2, (n,), generator=gen).float() for n in sizes]
    labels[1][:190] = 0.0  # few positives in image 2
    targets = [torch.randn(n, 4, generator=gen) for n in sizes]
    objectness = torch.randn(sum(sizes), 1, generator=gen)
    deltas = torch.randn(sum(sizes), 4, generator=gen)
    rpn = RegionProposalNetwork(None, None, 0.7, 0.3, 64, 0.5, {"training": 1, "testing": 1},
                                {"training": 1, "testing": 1}, 0.7)
    torch.manual_seed(3)
    tv_obj, tv_box = rpn.compute_loss(objectness, deltas, labels, targets)

    torch.manual_seed(3)
    pos, neg, offset = [], [], 0
    for lab in labels:
        p, n = sample_labels(lab, num_samples=64, positive_fraction=0.5)
        pos.append(p + offset)
        neg.append(n + offset)
        offset += lab.numel()
    out = rpn_losses(objectness, deltas, torch.cat(labels), torch.cat(targets), torch.cat(pos), torch.cat(neg))
    torch.testing.assert_close(out["rpn_class_loss"], tv_obj, **EXACT)
    torch.testing.assert_close(out["rpn_bbox_loss"], tv_box, **EXACT)
    assert tv_box > 0


def test_rpn_losses_with_no_positives_or_no_samples():
    objectness = torch.randn(10, requires_grad=True)
    deltas = torch.randn(10, 4, requires_grad=True)
    labels, targets = torch.zeros(10), torch.zeros(10, 4)
    out = rpn_losses(objectness, deltas, labels, targets, torch.zeros(0, dtype=torch.int64), torch.arange(5))
    assert out["rpn_bbox_loss"] == 0 and torch.isfinite(out["rpn_class_loss"]) and out["rpn_class_loss"] > 0
    sum(out.values()).backward()
    assert deltas.grad is not None and deltas.grad.abs().sum() == 0

    empty = torch.zeros(0, dtype=torch.int64)
    out = rpn_losses(objectness, deltas, labels, targets, empty, empty)
    assert out["rpn_class_loss"] == 0 and out["rpn_bbox_loss"] == 0
    sum(out.values()).backward()


def _head_inputs(gen, num_rois=40, num_classes=5):
    labels = torch.randint(0, num_classes, (num_rois,), generator=gen)
    labels[torch.rand(num_rois, generator=gen) < 0.6] = 0
    class_logits = torch.randn(num_rois, num_classes, generator=gen)
    box_deltas = torch.randn(num_rois, 4 * num_classes, generator=gen)
    targets = torch.randn(num_rois, 4, generator=gen)
    return class_logits, box_deltas, labels, targets


def test_mrcnn_class_and_box_losses_equal_torchvision_fastrcnn_loss():
    gen = torch.Generator().manual_seed(1)
    class_logits, box_deltas, labels, targets = _head_inputs(gen)
    assert 0 < int((labels > 0).sum()) < labels.numel()
    tv_cls, tv_box = fastrcnn_loss(class_logits, box_deltas, [labels[:25], labels[25:]], [targets[:25], targets[25:]])
    out = mrcnn_losses(class_logits, box_deltas, None, labels, targets, None)
    torch.testing.assert_close(out["mrcnn_class_loss"], tv_cls, **EXACT)
    torch.testing.assert_close(out["mrcnn_bbox_loss"], tv_box, **EXACT)
    assert out["mrcnn_mask_loss"] == 0


def test_mrcnn_mask_loss_equals_torchvision_maskrcnn_loss():
    gen = torch.Generator().manual_seed(2)
    num_classes, size = 4, 28
    gt_masks = [torch.rand(3, 40, 50, generator=gen) > 0.5, torch.rand(2, 30, 30, generator=gen) > 0.5]
    gt_labels = [torch.tensor([1, 3, 2]), torch.tensor([2, 1])]
    matched = [torch.tensor([0, 2, 2, 1, 0]), torch.tensor([1, 0, 1])]
    proposals = []
    for m, idx in zip(gt_masks, matched):
        xy = torch.rand(idx.numel(), 2, generator=gen) * 15
        proposals.append(torch.cat((xy, xy + 4 + torch.rand(idx.numel(), 2, generator=gen) * 12), dim=1))
    mask_logits = torch.randn(8, num_classes, size, size, generator=gen)
    tv_loss = maskrcnn_loss(mask_logits, proposals, gt_masks, gt_labels, matched)

    targets = torch.cat([mask_targets(p, i, masks=m, mask_size=size) for p, i, m in zip(proposals, matched, gt_masks)])
    labels = torch.cat([lab[i] for lab, i in zip(gt_labels, matched)])  # all positive
    class_logits, box_deltas = torch.zeros(8, num_classes), torch.zeros(8, 4 * num_classes)
    out = mrcnn_losses(class_logits, box_deltas, mask_logits, labels, torch.zeros(8, 4), targets)
    torch.testing.assert_close(out["mrcnn_mask_loss"], tv_loss, **EXACT)


def test_mrcnn_mask_loss_picks_positive_rois_gt_class_channel():
    labels = torch.tensor([0, 2, 0, 1])  # positives: rois 1 (class 2) and 3 (class 1)
    mask_logits = torch.zeros(2, 3, 2, 2)
    mask_logits[0, 2] = 5.0  # the right channel of the first positive, target 1
    mask_logits[1, 1] = -5.0  # the right channel of the second positive, target 0
    mask_logits[0, 1] = mask_logits[1, 2] = 50.0  # wrong channels: would be costly if picked
    targets = torch.stack((torch.ones(2, 2), torch.zeros(2, 2)))
    out = mrcnn_losses(torch.zeros(4, 3), torch.zeros(4, 12), mask_logits, labels, torch.zeros(4, 4), targets)
    torch.testing.assert_close(out["mrcnn_mask_loss"], torch.tensor(math.log1p(math.exp(-5.0))))
    with pytest.raises(ValueError, match="positive labels"):
        mrcnn_losses(torch.zeros(4, 3), torch.zeros(4, 12), mask_logits[:1], labels, torch.zeros(4, 4), targets[:1])


def test_mrcnn_losses_without_positives_are_graph_connected_zeros():
    class_logits = torch.randn(6, 3, requires_grad=True)
    box_deltas = torch.randn(6, 12, requires_grad=True)
    mask_logits = torch.randn(0, 3, 28, 28, requires_grad=True)
    labels = torch.zeros(6, dtype=torch.int64)
    out = mrcnn_losses(class_logits, box_deltas, mask_logits, labels, torch.zeros(6, 4), torch.zeros(0, 28, 28))
    assert torch.isfinite(out["mrcnn_class_loss"]) and out["mrcnn_class_loss"] > 0
    assert out["mrcnn_bbox_loss"] == 0 and out["mrcnn_mask_loss"] == 0
    assert all(v.requires_grad for v in out.values())
    sum(out.values()).backward()
    assert box_deltas.grad.abs().sum() == 0 and mask_logits.grad is not None

    # no ROIs at all: zeros, not NaN
    out = mrcnn_losses(class_logits[:0], box_deltas[:0], None, labels[:0], torch.zeros(0, 4), None)
    assert all(float(v.detach()) == 0 for v in out.values())
    sum(out.values()).backward()
