"""Training targets: match anchors / proposals to ground truth, sample them, build mask targets.

The math is torchvision's (``Matcher``, ``BalancedPositiveNegativeSampler``,
``RegionProposalNetwork.assign_targets_to_anchors``, ``RoIHeads.select_training_samples``,
``project_masks_on_boxes``), plus two matterport rules:

* **crowd boxes** (``iscrowd`` True) are never matched as positives, and an anchor or
  proposal whose IoU with any crowd box is at least :data:`CROWD_IOU` is never a
  negative (it is ignored instead; a positive stays positive);
* **mini masks**: a ground-truth mask may be given as ``[N, mh, mw]`` covering exactly
  its own box instead of a full-size ``[N, H, W]`` mask.

Boxes are ``xyxy`` float tensors in pixels of the (resized) image. Labels for the RPN are
``1`` positive, ``0`` negative, ``-1`` ignored; for the ROI heads the class id (``0`` is
background) or ``-1`` ignored.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torchvision.ops import box_iou, roi_align

from .boxes import BoxCoder

CROWD_IOU = 0.001  # matterport: IoU with a crowd box at or above this is never a negative

__all__ = [
    "CROWD_IOU",
    "Matcher",
    "RoiTargets",
    "mask_targets",
    "roi_targets",
    "rpn_matches",
    "rpn_targets",
    "sample_labels",
]


class Matcher:
    """Assign each prediction (anchor, proposal) the ground truth it overlaps most.

    ``matcher(iou)`` takes ``iou [G, P]`` (ground truth × predictions) and returns ``[P]``
    int64: the matched ground-truth index where the best IoU is ``>= high``,
    :attr:`BELOW_LOW_THRESHOLD` (-1) where it is ``< low``, :attr:`BETWEEN_THRESHOLDS` (-2)
    otherwise. With ``allow_low_quality_matches`` every prediction that ties for the best IoU
    of some ground truth (matterport's "best anchor per object", torchvision's rule, ties
    included, even at IoU 0) is matched to its own best ground truth whatever its IoU.

    Unlike torchvision, empty inputs are accepted: ``G == 0`` gives all
    ``BELOW_LOW_THRESHOLD``, ``P == 0`` an empty result.
    """

    BELOW_LOW_THRESHOLD = -1
    BETWEEN_THRESHOLDS = -2

    def __init__(self, *, high: float, low: float, allow_low_quality_matches: bool) -> None:
        if low > high:
            raise ValueError(f"Matcher: low={low} must not exceed high={high}")
        self.high = float(high)
        self.low = float(low)
        self.allow_low_quality_matches = bool(allow_low_quality_matches)

    def __call__(self, iou: Tensor) -> Tensor:
        if iou.dim() != 2:
            raise ValueError(f"Matcher: iou must be [G, P], got shape {tuple(iou.shape)}")
        num_gt, num_pred = iou.shape
        if num_pred == 0:
            return torch.empty((0,), dtype=torch.int64, device=iou.device)
        if num_gt == 0:
            return torch.full((num_pred,), self.BELOW_LOW_THRESHOLD, dtype=torch.int64, device=iou.device)
        best_iou, matches = iou.max(dim=0)
        best_gt = matches.clone() if self.allow_low_quality_matches else None
        matches[best_iou < self.low] = self.BELOW_LOW_THRESHOLD
        matches[(best_iou >= self.low) & (best_iou < self.high)] = self.BETWEEN_THRESHOLDS
        if best_gt is not None:
            # Every prediction achieving some GT's highest IoU (ties included) gets its best GT back.
            best_per_gt = iou.max(dim=1).values
            preds = torch.where(iou == best_per_gt[:, None])[1]
            matches[preds] = best_gt[preds]
        return matches


def sample_labels(labels: Tensor, *, num_samples: int, positive_fraction: float) -> tuple[Tensor, Tensor]:
    """Sample positives and negatives like torchvision's ``BalancedPositiveNegativeSampler``.

    Args:
        labels: ``[P]``; ``>= 1`` positive (1 for the RPN, the class id for the ROI heads),
            ``0`` negative, ``-1`` (or any other negative value) ignored.
        num_samples: total number to draw.
        positive_fraction: at most ``int(num_samples * positive_fraction)`` positives; the rest
            are negatives, as many as exist.

    Returns:
        ``(pos_idx, neg_idx)`` int64 indices into ``labels``, each sorted ascending. Draws with
        ``torch.randperm`` from the global RNG, positives first, so a seeded run picks the same
        elements as torchvision.
    """
    positive = torch.where(labels >= 1)[0]
    negative = torch.where(labels == 0)[0]
    num_pos = min(positive.numel(), int(num_samples * positive_fraction))
    num_neg = min(negative.numel(), num_samples - num_pos)
    perm_pos = torch.randperm(positive.numel(), device=positive.device)[:num_pos]
    perm_neg = torch.randperm(negative.numel(), device=negative.device)[:num_neg]
    pos_idx = positive[perm_pos].sort().values
    neg_idx = negative[perm_neg].sort().values
    return pos_idx, neg_idx


def _split_crowd(gt_boxes: Tensor, iscrowd: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """``(non_crowd_boxes [G',4], crowd_boxes [Gc,4], non_crowd_index [G'])``."""
    if gt_boxes.numel() == 0:
        gt_boxes = gt_boxes.reshape(0, 4)
    if gt_boxes.dim() != 2 or gt_boxes.shape[-1] != 4:
        raise ValueError(f"gt_boxes must be [G, 4] xyxy, got shape {tuple(gt_boxes.shape)}")
    if iscrowd is None:
        keep = torch.arange(gt_boxes.shape[0], device=gt_boxes.device)
        return gt_boxes, gt_boxes[:0], keep
    iscrowd = iscrowd.to(device=gt_boxes.device, dtype=torch.bool).reshape(-1)
    if iscrowd.numel() != gt_boxes.shape[0]:
        raise ValueError(f"iscrowd has {iscrowd.numel()} values for {gt_boxes.shape[0]} gt_boxes")
    keep = torch.where(~iscrowd)[0]
    return gt_boxes[keep], gt_boxes[iscrowd], keep


def _touches_crowd(boxes: Tensor, crowd_boxes: Tensor) -> Tensor:
    """``[P]`` bool: IoU with some crowd box ``>= CROWD_IOU``."""
    if crowd_boxes.shape[0] == 0 or boxes.shape[0] == 0:
        return torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    return box_iou(boxes, crowd_boxes).max(dim=1).values >= CROWD_IOU


def rpn_matches(
    anchors: Tensor,
    gt_boxes: Tensor,
    iscrowd: Tensor | None,
    *,
    positive_iou: float,
    negative_iou: float,
) -> Tensor:
    """Which ground truth each anchor of one image is trained towards: the RPN's assignment rule.

    Args:
        anchors: ``[A, 4]`` xyxy, resized-image pixels.
        gt_boxes: ``[G, 4]`` xyxy; ``G`` may be 0 (every anchor negative).
        iscrowd: ``[G]`` bool or None.
        positive_iou / negative_iou: IoU ``>= positive_iou`` positive, ``< negative_iou`` negative,
            between ignored; besides, each GT's best anchor(s) are positive (low-quality matches).

    Returns:
        int64 ``[A]``: for a positive anchor the index of its ground truth in ``gt_boxes`` (never a
        crowd box), :attr:`Matcher.BELOW_LOW_THRESHOLD` (-1) for a negative,
        :attr:`Matcher.BETWEEN_THRESHOLDS` (-2) for an ignored anchor (between the thresholds, or a
        would-be negative touching a crowd box).
    """
    gt_boxes = gt_boxes.to(device=anchors.device, dtype=anchors.dtype)
    gt, crowd, gt_index = _split_crowd(gt_boxes, iscrowd)
    num_anchors = anchors.shape[0]
    if gt.shape[0] == 0:
        matches = torch.full((num_anchors,), Matcher.BELOW_LOW_THRESHOLD, dtype=torch.int64, device=anchors.device)
    else:
        matcher = Matcher(high=positive_iou, low=negative_iou, allow_low_quality_matches=True)
        matched = matcher(box_iou(gt, anchors))
        matches = torch.where(matched >= 0, gt_index[matched.clamp(min=0)], matched)
    matches[(matches == Matcher.BELOW_LOW_THRESHOLD) & _touches_crowd(anchors, crowd)] = Matcher.BETWEEN_THRESHOLDS
    return matches


def rpn_targets(
    anchors: Tensor,
    gt_boxes: Tensor,
    iscrowd: Tensor | None,
    *,
    positive_iou: float,
    negative_iou: float,
    box_coder: BoxCoder,
) -> tuple[Tensor, Tensor]:
    """Label every anchor of one image (:func:`rpn_matches`) and give its regression target.

    Args: as :func:`rpn_matches`, and ``box_coder`` that encodes the matched GT against its anchor.

    Returns:
        ``labels [A]`` float (1 positive, 0 negative, -1 ignored) and ``regression_targets [A, 4]``
        (deltas of the matched GT for positives, zeros elsewhere), in the anchors' dtype.
    """
    gt_boxes = gt_boxes.to(device=anchors.device, dtype=anchors.dtype)
    matches = rpn_matches(anchors, gt_boxes, iscrowd, positive_iou=positive_iou, negative_iou=negative_iou)
    labels = (matches >= 0).to(anchors.dtype)
    labels[matches == Matcher.BETWEEN_THRESHOLDS] = -1.0
    targets = torch.zeros((anchors.shape[0], 4), dtype=anchors.dtype, device=anchors.device)
    positive = torch.where(matches >= 0)[0]
    if positive.numel():
        targets[positive] = box_coder.encode(anchors[positive], gt_boxes[matches[positive]]).to(anchors.dtype)
    return labels, targets


class RoiTargets(NamedTuple):
    """The sampled ROIs of one image and their targets (sorted like torchvision's ``torch.where``).

    rois: ``[R, 4]`` xyxy (detached). labels: int64 ``[R]``, 0 = background.
    regression_targets: ``[R, 4]`` deltas to the matched GT for positives, zeros elsewhere.
    matched_gt: int64 ``[R]``, index into the ``gt_boxes`` given (crowd boxes included in the
    numbering) for positives, -1 otherwise.
    """

    rois: Tensor
    labels: Tensor
    regression_targets: Tensor
    matched_gt: Tensor


def roi_targets(
    proposals: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    iscrowd: Tensor | None,
    *,
    num_samples: int,
    positive_fraction: float,
    positive_iou: float,
    negative_iou: float,
    box_coder: BoxCoder,
    add_gt_boxes: bool = True,
) -> RoiTargets:
    """Match one image's proposals to its GT and sample ``num_samples`` ROIs (torchvision's rule).

    Args:
        proposals: ``[K, 4]`` xyxy from the RPN.
        gt_boxes: ``[G, 4]`` xyxy, ``gt_labels``: int64 ``[G]`` (1..C-1), ``iscrowd``: ``[G]`` bool or None.
        num_samples, positive_fraction: see :func:`sample_labels`.
        positive_iou / negative_iou: IoU ``>= positive_iou`` foreground, ``< negative_iou`` background.
        add_gt_boxes: append the non-crowd GT boxes to the proposals first (torchvision's
            ``add_gt_proposals``), so every object has at least one positive ROI.
    """
    proposals = proposals.detach()
    gt_boxes = gt_boxes.to(device=proposals.device, dtype=proposals.dtype)
    gt_labels = gt_labels.to(device=proposals.device).reshape(-1)
    if gt_labels.numel() != gt_boxes.shape[0]:
        raise ValueError(f"gt_labels has {gt_labels.numel()} values for {gt_boxes.shape[0]} gt_boxes")
    gt, crowd, gt_index = _split_crowd(gt_boxes, iscrowd)
    if add_gt_boxes:
        proposals = torch.cat((proposals, gt), dim=0)

    num_props = proposals.shape[0]
    if gt.shape[0] == 0:
        matched = torch.full((num_props,), Matcher.BELOW_LOW_THRESHOLD, dtype=torch.int64, device=proposals.device)
        labels = torch.zeros(num_props, dtype=torch.int64, device=proposals.device)
    else:
        matcher = Matcher(high=positive_iou, low=negative_iou, allow_low_quality_matches=False)
        matched = matcher(box_iou(gt, proposals))
        labels = gt_labels[gt_index][matched.clamp(min=0)].to(torch.int64)
        labels[matched == Matcher.BELOW_LOW_THRESHOLD] = 0
        labels[matched == Matcher.BETWEEN_THRESHOLDS] = -1
    labels[(labels == 0) & _touches_crowd(proposals, crowd)] = -1

    pos_idx, neg_idx = sample_labels(labels, num_samples=num_samples, positive_fraction=positive_fraction)
    keep = torch.cat((pos_idx, neg_idx)).sort().values
    rois = proposals[keep]
    labels = labels[keep]
    matched = matched[keep]
    matched_gt = torch.full_like(labels, -1)
    targets = torch.zeros((rois.shape[0], 4), dtype=rois.dtype, device=rois.device)
    pos = torch.where(labels > 0)[0]
    if pos.numel():
        matched_gt[pos] = gt_index[matched[pos]]
        targets[pos] = box_coder.encode(rois[pos], gt[matched[pos]]).to(rois.dtype)
    return RoiTargets(rois=rois, labels=labels, regression_targets=targets, matched_gt=matched_gt)


def mask_targets(
    rois: Tensor,
    matched_gt: Tensor,
    *,
    masks: Tensor | None = None,
    mini_masks: Tensor | None = None,
    gt_boxes: Tensor | None = None,
    mask_size: int,
) -> Tensor:
    """Crop-and-resize each positive ROI's GT mask to ``mask_size²`` (float in [0, 1]).

    Args:
        rois: ``[P, 4]`` xyxy of the positive ROIs, ``matched_gt``: int64 ``[P]`` index of their GT.
        masks: full-size ``[G, H, W]`` bool/uint8/float GT masks; done exactly as torchvision's
            ``project_masks_on_boxes`` (``roi_align``, spatial scale 1, adaptive sampling,
            ``aligned=False``).
        mini_masks: ``[G, mh, mw]``, each the resized crop of its mask to its GT box
            (``gt_boxes [G, 4]`` required). Each ROI is mapped into its GT's mini-mask frame
            pixel-center to pixel-center, ``x' = (x - gx1 + 0.5) * mw / gw - 0.5`` (likewise y),
            which is the crop-and-resize inverse of :func:`~maskrcnn.data` mini-masking; the mini
            mask is zero-padded by one pixel so samples just outside the box read 0 as they would
            in the full mask. With ``mw == gw`` the result equals the full-mask path.
        mask_size: output side ``M``.

    Returns:
        ``[P, M, M]`` float targets (``rois``' dtype).
    """
    if (masks is None) == (mini_masks is None):
        raise ValueError("mask_targets: give exactly one of masks= (full size) or mini_masks=")
    dtype = rois.dtype if rois.is_floating_point() else torch.float32
    rois = rois.detach().to(dtype)
    num = rois.shape[0]
    if num == 0:
        return torch.zeros((0, mask_size, mask_size), dtype=dtype, device=rois.device)
    matched_gt = matched_gt.to(device=rois.device, dtype=torch.int64)
    # Convert only the GT masks in use; each ROI reads its own one through the batch index.
    used, batch_index = torch.unique(matched_gt, return_inverse=True)
    if masks is not None:
        source = masks[used.to(masks.device)].to(device=rois.device, dtype=dtype)[:, None]
        boxes = rois
    else:
        if gt_boxes is None:
            raise ValueError("mask_targets: mini_masks= needs gt_boxes= (the boxes the mini masks cover)")
        mini = mini_masks[used.to(mini_masks.device)].to(device=rois.device, dtype=dtype)
        mh, mw = mini.shape[-2:]
        source = torch.nn.functional.pad(mini, (1, 1, 1, 1))[:, None]
        gt = gt_boxes.to(device=rois.device, dtype=dtype)[matched_gt]
        gw = (gt[:, 2] - gt[:, 0]).clamp(min=1e-6)
        gh = (gt[:, 3] - gt[:, 1]).clamp(min=1e-6)
        sx = (mw / gw)[:, None]
        sy = (mh / gh)[:, None]
        # +0.5 / -0.5: pixel centers; +1: the zero border added above.
        xs = (rois[:, 0::2] - gt[:, 0:1] + 0.5) * sx - 0.5 + 1.0
        ys = (rois[:, 1::2] - gt[:, 1:2] + 0.5) * sy - 0.5 + 1.0
        boxes = torch.stack((xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]), dim=1)
    index = batch_index.to(dtype)[:, None]
    out = roi_align(source, torch.cat((index, boxes), dim=1), (mask_size, mask_size), 1.0)
    return out[:, 0]
