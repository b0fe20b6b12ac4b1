"""Targets: Matcher, sampler, RPN / ROI targets, crowd rule, mask targets (full and mini)."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.models.detection import _utils as tv_utils
from torchvision.models.detection.roi_heads import RoIHeads, project_masks_on_boxes
from torchvision.models.detection.rpn import RegionProposalNetwork

from maskrcnn.model.boxes import BoxCoder
from maskrcnn.model.targets import (
    Matcher,
    mask_targets,
    roi_targets,
    rpn_matches,
    rpn_targets,
    sample_labels,
)

NEG, MID = Matcher.BELOW_LOW_THRESHOLD, Matcher.BETWEEN_THRESHOLDS


# ---------------------------------------------------------------------------- Matcher
def test_matcher_thresholds():
    iou = torch.tensor([[0.9, 0.5, 0.2, 0.0, 0.69], [0.1, 0.6, 0.29, 0.3, 0.7]])
    matcher = Matcher(high=0.7, low=0.3, allow_low_quality_matches=False)
    # best: 0.9 (gt0) pos, 0.6 between, 0.29 below, 0.3 between (>= low), 0.7 pos (>= high, gt1)
    assert matcher(iou).tolist() == [0, MID, NEG, MID, 1]


def test_matcher_low_quality_matches_with_ties():
    iou = torch.tensor([[0.4, 0.1, 0.4, 0.0], [0.2, 0.5, 0.1, 0.5]])
    assert Matcher(high=0.7, low=0.3, allow_low_quality_matches=False)(iou).tolist() == [MID, MID, MID, MID]
    # gt0's best (0.4) is tied at predictions 0 and 2, gt1's (0.5) at 1 and 3: all four are matched.
    assert Matcher(high=0.7, low=0.3, allow_low_quality_matches=True)(iou).tolist() == [0, 1, 0, 1]


def test_matcher_low_quality_match_goes_to_the_predictions_own_best_gt():
    # gt1's best prediction is 0, but prediction 0 overlaps gt0 more: it is matched to gt0 (torchvision).
    iou = torch.tensor([[0.6, 0.2], [0.5, 0.1]])
    assert Matcher(high=0.7, low=0.3, allow_low_quality_matches=True)(iou).tolist() == [0, NEG]


def test_matcher_empty_inputs():
    matcher = Matcher(high=0.7, low=0.3, allow_low_quality_matches=True)
    assert matcher(torch.zeros(0, 3)).tolist() == [NEG, NEG, NEG]
    assert matcher(torch.zeros(2, 0)).shape == (0,)
    with pytest.raises(ValueError, match="low"):
        Matcher(high=0.3, low=0.7, allow_low_quality_matches=False)


@pytest.mark.parametrize("low_quality", [False, True])
def test_matcher_equals_torchvision_on_quantized_random_iou(low_quality):
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        iou = torch.randint(0, 11, (4, 30), generator=gen).float() / 10  # many ties
        ours = Matcher(high=0.7, low=0.3, allow_low_quality_matches=low_quality)(iou.clone())
        theirs = tv_utils.Matcher(0.7, 0.3, allow_low_quality_matches=low_quality)(iou.clone())
        assert torch.equal(ours, theirs)


# ---------------------------------------------------------------------------- sampler
def _labels(num_pos: int, num_neg: int, num_ignore: int) -> torch.Tensor:
    labels = torch.cat((torch.ones(num_pos), torch.zeros(num_neg), -torch.ones(num_ignore)))
    return labels[torch.randperm(labels.numel())]


def test_sampler_counts():
    labels = _labels(10, 100, 5)
    pos, neg = sample_labels(labels, num_samples=16, positive_fraction=0.5)
    assert (pos.numel(), neg.numel()) == (8, 8)  # at most half positive, total = num_samples
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all()
    assert torch.equal(pos, pos.sort().values) and pos.unique().numel() == 8 and neg.unique().numel() == 8

    pos, neg = sample_labels(_labels(3, 100, 5), num_samples=16, positive_fraction=0.5)
    assert (pos.numel(), neg.numel()) == (3, 13)  # negatives fill up
    pos, neg = sample_labels(_labels(3, 5, 5), num_samples=16, positive_fraction=0.5)
    assert (pos.numel(), neg.numel()) == (3, 5)  # not enough of either
    pos, neg = sample_labels(_labels(20, 20, 0), num_samples=10, positive_fraction=0.25)
    assert (pos.numel(), neg.numel()) == (2, 8)  # int(2.5) positives
    class_ids = torch.tensor([0, 3, 0, 2, -1, 1])  # ROI labels: class ids >= 1 are positives
    pos, neg = sample_labels(class_ids, num_samples=100, positive_fraction=0.5)
    assert pos.tolist() == [1, 3, 5] and neg.tolist() == [0, 2]


def test_sampler_draws_what_torchvision_draws():
    labels = [_labels(30, 300, 20), _labels(2, 50, 3)]
    torch.manual_seed(7)
    tv_pos, tv_neg = tv_utils.BalancedPositiveNegativeSampler(64, 0.25)(labels)
    torch.manual_seed(7)
    for lab, tp, tn in zip(labels, tv_pos, tv_neg):
        pos, neg = sample_labels(lab, num_samples=64, positive_fraction=0.25)
        assert torch.equal(pos, torch.where(tp)[0]) and torch.equal(neg, torch.where(tn)[0])


# ---------------------------------------------------------------------------- RPN targets
def _grid_anchors() -> torch.Tensor:
    """49 anchors 10×10 at stride 5 over a 40×40 image, row-major by (y0, x0)."""
    starts = torch.arange(0, 35, 5, dtype=torch.float32)
    y0, x0 = torch.meshgrid(starts, starts, indexing="ij")
    x0, y0 = x0.reshape(-1), y0.reshape(-1)
    return torch.stack((x0, y0, x0 + 10, y0 + 10), dim=1)


def _anchor_index(x0: int, y0: int) -> int:
    return (y0 // 5) * 7 + x0 // 5


GT_A = [0.0, 0.0, 10.0, 10.0]  # equals anchor (0,0); IoU 1/3 with (5,0) and (0,5)
GT_B = [22.0, 22.0, 34.0, 34.0]  # best anchor (25,25) IoU 81/163; (20,20) 64/180, (20,25)/(25,20) 72/172


def _rpn(gt, iscrowd=None):
    return rpn_targets(_grid_anchors(), torch.tensor(gt), iscrowd, positive_iou=0.7, negative_iou=0.3,
                       box_coder=BoxCoder())


def test_rpn_targets_counts_on_a_hand_made_grid():
    labels, targets = _rpn([GT_A, GT_B])
    positives = torch.where(labels == 1)[0].tolist()
    ignored = torch.where(labels == -1)[0].tolist()
    assert positives == [_anchor_index(0, 0), _anchor_index(25, 25)]  # 25,25 only by the best-anchor rule
    assert ignored == sorted(_anchor_index(x, y) for x, y in [(5, 0), (0, 5), (20, 20), (25, 20), (20, 25)])
    assert int((labels == 0).sum()) == 49 - 2 - 5
    # targets: zero for the exact anchor, hand-computed for (25,25) -> GT_B (centers 30 -> 28, sides 10 -> 12)
    assert targets[_anchor_index(0, 0)].tolist() == [0.0, 0.0, 0.0, 0.0]
    expected = torch.tensor([-0.2, -0.2, math.log(1.2), math.log(1.2)])
    torch.testing.assert_close(targets[_anchor_index(25, 25)], expected)
    assert (targets[labels != 1] == 0).all()


def test_rpn_targets_equal_torchvision_assign_targets_to_anchors():
    gen = torch.Generator().manual_seed(3)
    anchors = _grid_anchors()
    xy = torch.rand(5, 2, generator=gen) * 30
    gt = torch.cat((xy, xy + 3 + torch.rand(5, 2, generator=gen) * 15), dim=1)
    rpn = RegionProposalNetwork(None, None, 0.7, 0.3, 256, 0.5, {"training": 10, "testing": 10},
                                {"training": 10, "testing": 10}, 0.7)
    (tv_labels,), (tv_matched_boxes,) = rpn.assign_targets_to_anchors([anchors], [{"boxes": gt}])
    labels, targets = rpn_targets(anchors, gt, None, positive_iou=0.7, negative_iou=0.3, box_coder=BoxCoder())
    assert torch.equal(labels, tv_labels)
    pos = labels == 1
    tv_targets = rpn.box_coder.encode_single(tv_matched_boxes, anchors)
    torch.testing.assert_close(targets[pos], tv_targets[pos], rtol=0, atol=1e-6)


def test_rpn_targets_regression_round_trip():
    coder = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    gt = torch.tensor([GT_A, GT_B, [3.0, 14.0, 17.0, 33.0]])
    labels, targets = rpn_targets(_grid_anchors(), gt, None, positive_iou=0.5, negative_iou=0.3, box_coder=coder)
    pos = torch.where(labels == 1)[0]
    assert pos.numel() >= 3
    decoded = coder.decode(targets[pos], _grid_anchors()[pos])[:, 0]
    # every decoded box is exactly one of the GT boxes
    dist = (decoded[:, None, :] - gt[None]).abs().amax(dim=2).min(dim=1).values
    assert (dist < 1e-4).all()


def test_rpn_targets_without_gt_are_all_negative():
    for empty in (torch.zeros(0, 4), torch.zeros(0)):  # [0] as well as [0, 4]
        labels, targets = rpn_targets(_grid_anchors(), empty, torch.zeros(0, dtype=torch.bool), positive_iou=0.7,
                                      negative_iou=0.3, box_coder=BoxCoder())
        assert labels.shape == (49,) and (labels == 0).all() and (targets == 0).all()


def test_rpn_targets_crowd_rule():
    labels, _ = _rpn([GT_A, GT_B], torch.tensor([False, True]))
    # the crowd box is never matched, and the 4×4 anchors touching it (x0, y0 in 15..30) are ignored
    touching = {_anchor_index(x, y) for x in (15, 20, 25, 30) for y in (15, 20, 25, 30)}
    assert torch.where(labels == 1)[0].tolist() == [0]
    assert set(torch.where(labels == -1)[0].tolist()) == touching | {_anchor_index(5, 0), _anchor_index(0, 5)}
    assert int((labels == 0).sum()) == 49 - 1 - 18

    labels, _ = _rpn([GT_B], torch.tensor([True]))  # only a crowd box
    assert int((labels == 1).sum()) == 0 and int((labels == -1).sum()) == 16 and int((labels == 0).sum()) == 33

    # a positive that touches a crowd box stays positive
    labels, _ = _rpn([GT_A, [5.0, 5.0, 15.0, 15.0]], torch.tensor([False, True]))
    assert labels[0] == 1 and labels[_anchor_index(20, 20)] == 0 and labels[_anchor_index(10, 10)] == -1


def test_rpn_matches_name_the_object_of_each_positive_anchor():
    anchors = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 11], [20, 20, 30, 30], [50, 50, 60, 60.0],
                            [100, 100, 110, 110]])
    gt = torch.tensor([[100, 100, 110, 110], [0, 0, 10, 10], [21, 21, 29, 33.0]])
    kw = {"positive_iou": 0.7, "negative_iou": 0.3}
    # IoU 1 and 10/11 with gt1; anchor 2 below 0.7 but gt2's best; anchor 3 nothing; anchor 4 = gt0
    assert rpn_matches(anchors, gt, None, **kw).tolist() == [1, 1, 2, NEG, 0]
    # gt0 is crowd: never matched, the index of the others is still their place in gt_boxes
    crowd = torch.tensor([True, False, False])
    assert rpn_matches(anchors, gt, crowd, **kw).tolist() == [1, 1, 2, NEG, MID]
    # and rpn_targets labels exactly these
    labels, _ = rpn_targets(anchors, gt, crowd, box_coder=BoxCoder(), **kw)
    assert labels.tolist() == [1, 1, 1, 0, -1]


# ---------------------------------------------------------------------------- ROI targets
GT_BOXES = torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 70.0], [20.0, 20.0, 30.0, 40.0]])
GT_LABELS = torch.tensor([3, 2, 1])
PROPOSALS = torch.tensor([
    [0.0, 0.0, 10.0, 10.0],  # = gt0 -> class 3
    [0.0, 0.0, 10.0, 20.0],  # IoU 0.5 with gt0 -> class 3
    [50.0, 50.0, 60.0, 60.0],  # IoU 0.5 with gt1 (class 2, or crowd)
    [20.0, 20.0, 30.0, 30.0],  # IoU 0.5 with gt2 -> class 1
    [80.0, 80.0, 90.0, 90.0],  # background
])
HEAD_CODER = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))


def _roi(iscrowd=None, add_gt_boxes=True, num_samples=100, positive_fraction=0.25):
    return roi_targets(PROPOSALS, GT_BOXES, GT_LABELS, iscrowd, num_samples=num_samples,
                       positive_fraction=positive_fraction, positive_iou=0.5, negative_iou=0.5,
                       box_coder=HEAD_CODER, add_gt_boxes=add_gt_boxes)


def test_roi_targets_with_and_without_gt_boxes():
    out = _roi()
    assert out.rois.shape == (8, 4)  # 5 proposals + 3 GT boxes
    assert torch.equal(out.rois, torch.cat((PROPOSALS, GT_BOXES)))
    assert out.labels.tolist() == [3, 3, 2, 1, 0, 3, 2, 1]
    assert out.matched_gt.tolist() == [0, 0, 1, 2, -1, 0, 1, 2]
    pos = out.labels > 0
    decoded = HEAD_CODER.decode(out.regression_targets[pos], out.rois[pos])[:, 0]
    torch.testing.assert_close(decoded, GT_BOXES[out.matched_gt[pos]], rtol=0, atol=1e-5)
    assert (out.regression_targets[~pos] == 0).all()

    out = _roi(add_gt_boxes=False)
    assert torch.equal(out.rois, PROPOSALS) and out.labels.tolist() == [3, 3, 2, 1, 0]


def test_roi_targets_crowd_rule():
    out = _roi(iscrowd=torch.tensor([False, True, False]))
    # the crowd gt1 is not appended, not matched, and proposal 2 (IoU 0.5 with it) is ignored, not a negative
    assert torch.equal(out.rois, torch.cat((PROPOSALS[[0, 1, 3, 4]], GT_BOXES[[0, 2]])))
    assert out.labels.tolist() == [3, 3, 1, 0, 3, 1]
    assert out.matched_gt.tolist() == [0, 0, 2, -1, 0, 2]  # indices in the given GT numbering


def test_roi_targets_sampling_limits():
    out = _roi(num_samples=4, positive_fraction=0.5)
    assert int((out.labels > 0).sum()) == 2 and int((out.labels == 0).sum()) == 1  # 2 of 7 positives, 1 negative


def test_roi_targets_without_gt_are_background():
    out = roi_targets(PROPOSALS, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), None, num_samples=3,
                      positive_fraction=0.25, positive_iou=0.5, negative_iou=0.5, box_coder=HEAD_CODER)
    assert out.labels.tolist() == [0, 0, 0] and out.matched_gt.tolist() == [-1, -1, -1]
    assert (out.regression_targets == 0).all()


def test_roi_targets_equal_torchvision_select_training_samples():
    gen = torch.Generator().manual_seed(5)
    xy = torch.rand(300, 2, generator=gen) * 100
    proposals = torch.cat((xy, xy + 5 + torch.rand(300, 2, generator=gen) * 40), dim=1)
    gt = torch.tensor([[10.0, 10.0, 50.0, 60.0], [40.0, 30.0, 90.0, 80.0], [70.0, 5.0, 120.0, 40.0]])
    labels = torch.tensor([1, 4, 2])
    heads = RoIHeads(None, None, None, 0.5, 0.5, 64, 0.25, (10.0, 10.0, 5.0, 5.0), 0.05, 0.5, 100)
    torch.manual_seed(11)
    (tv_rois,), (tv_matched,), (tv_labels,), (tv_targets,) = heads.select_training_samples(
        [proposals.clone()], [{"boxes": gt, "labels": labels}])
    torch.manual_seed(11)
    out = roi_targets(proposals, gt, labels, None, num_samples=64, positive_fraction=0.25, positive_iou=0.5,
                      negative_iou=0.5, box_coder=HEAD_CODER)
    assert torch.equal(out.rois, tv_rois) and torch.equal(out.labels, tv_labels)
    pos = out.labels > 0
    assert 0 < int(pos.sum()) <= 16
    assert torch.equal(out.matched_gt[pos], tv_matched[pos])
    torch.testing.assert_close(out.regression_targets[pos], tv_targets[pos], rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------- mask targets
def _random_masks(gen: torch.Generator, count: int, size: int = 48):
    """Blob masks and their tight boxes (x2, y2 exclusive, matterport's extract_bboxes)."""
    masks = torch.zeros(count, size, size, dtype=torch.bool)
    boxes = []
    for i in range(count):
        x1, y1 = (int(v) for v in torch.randint(0, size // 2, (2,), generator=gen))
        w, h = (int(v) for v in torch.randint(4, size // 2, (2,), generator=gen))
        blob = torch.rand(h, w, generator=gen) > 0.3
        blob[0, :] = blob[-1, :] = blob[:, 0] = blob[:, -1] = True  # keep the box tight
        masks[i, y1:y1 + h, x1:x1 + w] = blob
        boxes.append([x1, y1, x1 + w, y1 + h])
    return masks, torch.tensor(boxes, dtype=torch.float32)


def test_full_mask_targets_equal_torchvision_project_masks_on_boxes():
    gen = torch.Generator().manual_seed(2)
    masks, boxes = _random_masks(gen, 4)
    rois = boxes[[0, 2, 2, 3, 1]] + torch.randn(5, 4, generator=gen) * 3
    matched = torch.tensor([0, 2, 2, 3, 1])
    ours = mask_targets(rois, matched, masks=masks, mask_size=14)
    torch.testing.assert_close(ours, project_masks_on_boxes(masks, rois, matched, 14), rtol=0, atol=0)


def test_mask_targets_hand_values():
    masks = torch.zeros(1, 20, 20, dtype=torch.uint8)
    masks[0, :, :10] = 1  # left half
    out = mask_targets(torch.tensor([[2.0, 2.0, 8.0, 8.0], [12.0, 2.0, 18.0, 8.0]]), torch.tensor([0, 0]),
                       masks=masks, mask_size=4)
    assert out.shape == (2, 4, 4) and (out[0] == 1).all() and (out[1] == 0).all()
    assert mask_targets(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), masks=masks, mask_size=4).shape == (
        0, 4, 4)


def test_mini_mask_exact_crop_equals_full_mask_path():
    gen = torch.Generator().manual_seed(4)
    masks, boxes = _random_masks(gen, 5)
    mini = []
    for m, b in zip(masks, boxes.long()):
        mini.append(m[b[1]:b[3], b[0]:b[2]])
    matched = torch.tensor([0, 1, 2, 3, 4, 4, 1])
    rois = boxes[matched] + torch.randn(7, 4, generator=gen) * 4  # reaching outside the GT box too
    rois[:, 2:] = torch.maximum(rois[:, 2:], rois[:, :2] + 2)
    full = mask_targets(rois, matched, masks=masks, mask_size=28)
    for i, m in enumerate(mini):  # mini size = box size, one GT at a time (sizes differ)
        sel = torch.where(matched == i)[0]
        got = mask_targets(rois[sel], torch.zeros(sel.numel(), dtype=torch.int64), mini_masks=m[None],
                           gt_boxes=boxes[i:i + 1], mask_size=28)
        torch.testing.assert_close(got, full[sel], rtol=0, atol=1e-5)


def test_resized_mini_mask_is_close_to_full_mask_path():
    masks = torch.zeros(1, 96, 96, dtype=torch.bool)
    yy, xx = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    masks[0] = (yy - 50) ** 2 + (xx - 40) ** 2 < 30 ** 2  # a disc
    box = torch.tensor([[10.0, 20.0, 70.0, 80.0]])  # tight: x 10..69, y 20..79
    crop = masks[0, 20:80, 10:70].float()
    mini = torch.nn.functional.interpolate(crop[None, None], size=(28, 28), mode="area")[0] >= 0.5
    rois = torch.tensor([[10.0, 20.0, 70.0, 80.0], [0.0, 30.0, 50.0, 90.0]])
    full = mask_targets(rois, torch.tensor([0, 0]), masks=masks, mask_size=28)
    got = mask_targets(rois, torch.tensor([0, 0]), mini_masks=mini, gt_boxes=box, mask_size=28)
    # Interpolation error only: 0.018 / 98.3 %. Without the pixel-center terms (x' = (x - gx1) * mw / gw)
    # the half-pixel shift makes it 0.027 / 97.3 %.
    assert (got - full).abs().mean() < 0.022
    assert ((got > 0.5) == (full > 0.5)).float().mean() > 0.98


def test_mask_targets_argument_errors():
    rois, matched = torch.zeros(1, 4), torch.zeros(1, dtype=torch.int64)
    with pytest.raises(ValueError, match="exactly one"):
        mask_targets(rois, matched, mask_size=4)
    with pytest.raises(ValueError, match="gt_boxes"):
        mask_targets(rois, matched, mini_masks=torch.ones(1, 3, 3), mask_size=4)
