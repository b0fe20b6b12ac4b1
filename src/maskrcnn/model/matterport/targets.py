"""matterport's training targets and losses, in its conventions.

* :func:`rpn_targets` = ``build_rpn_targets`` (pixel anchors and boxes): an anchor is positive at
  IoU ≥ RPN_POSITIVE_IOU and so is every anchor tied at the best IoU of a ground-truth box; negative
  below RPN_NEGATIVE_IOU unless it touches a crowd box (IoU ≥ 0.001); at most half of
  RPN_TRAIN_ANCHORS_PER_IMAGE positives, negatives fill the rest (random subsets, torch RNG);
  the positives' deltas ``(dy, dx, log dh, log dw) / RPN_BBOX_STD_DEV`` in the positives' order;
* :func:`rpn_losses` = ``rpn_class_loss_graph`` (softmax cross-entropy over non-neutral anchors)
  and ``rpn_bbox_loss_graph`` (smooth L1, mean over the positives' coordinates);
* :func:`detection_targets` = ``DetectionTargetLayer``: ROIs with IoU ≥ 0.5 positive (at most
  ``TRAIN_ROIS_PER_IMAGE × ROI_POSITIVE_RATIO``), negatives below 0.5 and away from crowds, so that
  positives are ROI_POSITIVE_RATIO of the ROIs; zero-padded to TRAIN_ROIS_PER_IMAGE; box deltas / BBOX_STD_DEV;
  mask targets cropped from the (mini-)mask with ``crop_and_resize`` and rounded;
* :func:`mrcnn_losses` = ``mrcnn_class_loss_graph``, ``mrcnn_bbox_loss_graph``, ``mrcnn_mask_loss_graph``.

Target dicts here are matterport's: ``boxes [G, 4]`` y1x1y2x2 pixels of the molded image, ``class_ids [G]``
(negative: crowd), and ``masks [G, H, W]`` full size or ``mini_masks [G, m, m]`` relative to the box.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .geometry import box_refinement, norm_boxes
from .roi_align import crop_and_resize


def overlaps(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU ``[N, M]`` of y1x1y2x2 boxes (``compute_overlaps``: areas without +1)."""
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    y1 = torch.maximum(boxes1[:, None, 0], boxes2[None, :, 0])
    x1 = torch.maximum(boxes1[:, None, 1], boxes2[None, :, 1])
    y2 = torch.minimum(boxes1[:, None, 2], boxes2[None, :, 2])
    x2 = torch.minimum(boxes1[:, None, 3], boxes2[None, :, 3])
    inter = (y2 - y1).clamp(min=0) * (x2 - x1).clamp(min=0)
    union = area1[:, None] + area2[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def _random_subset(indices: Tensor, count: int) -> Tensor:
    return indices[torch.randperm(indices.numel(), device=indices.device)[:max(count, 0)]]


def rpn_targets(anchors: Tensor, image_shape: Sequence[int], targets: list[dict[str, Tensor]], *,
                positive_iou: float, negative_iou: float, anchors_per_image: int, std_dev: Tensor
                ) -> tuple[Tensor, Tensor]:
    """``anchors [A, 4]`` normalized → ``match [B, A]`` (1, -1, 0) and ``bbox [B, anchors_per_image, 4]``."""
    h, w = float(image_shape[0]), float(image_shape[1])
    scale = torch.tensor([h - 1, w - 1, h - 1, w - 1], dtype=torch.float64, device=anchors.device)
    shift = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64, device=anchors.device)
    pixel_anchors = (anchors.double() * scale + shift).float()
    matches, bboxes = [], []
    for target in targets:
        boxes, class_ids = target["boxes"].float(), target["class_ids"]
        match = torch.zeros(anchors.shape[0], dtype=torch.long, device=anchors.device)
        bbox = torch.zeros((anchors_per_image, 4), device=anchors.device)
        crowd = class_ids < 0
        no_crowd = torch.ones_like(match, dtype=torch.bool)
        if crowd.any():
            no_crowd = overlaps(pixel_anchors, boxes[crowd]).max(dim=1).values < 0.001
        gt = boxes[~crowd]
        if gt.shape[0]:
            iou = overlaps(pixel_anchors, gt)
            best, argmax = iou.max(dim=1)
            match[(best < negative_iou) & no_crowd] = -1
            tied = (iou == iou.max(dim=0, keepdim=True).values).any(dim=1)
            match[tied] = 1
            match[best >= positive_iou] = 1
        else:
            match[no_crowd] = -1
            argmax = torch.zeros_like(match)
        positive = torch.nonzero(match == 1).flatten()
        extra = positive.numel() - anchors_per_image // 2
        if extra > 0:
            match[_random_subset(positive, extra)] = 0
        negative = torch.nonzero(match == -1).flatten()
        extra = negative.numel() - (anchors_per_image - int((match == 1).sum()))
        if extra > 0:
            match[_random_subset(negative, extra)] = 0
        positive = torch.nonzero(match == 1).flatten()
        if positive.numel():
            deltas = box_refinement(pixel_anchors[positive], gt[argmax[positive]]) / std_dev
            bbox[: positive.numel()] = deltas[:anchors_per_image]
        matches.append(match)
        bboxes.append(bbox)
    return torch.stack(matches), torch.stack(bboxes)


def smooth_l1(target: Tensor, pred: Tensor) -> Tensor:
    """matterport's ``smooth_l1_loss`` (sigma 1), elementwise."""
    diff = (target - pred).abs()
    return torch.where(diff < 1.0, 0.5 * diff ** 2, diff - 0.5)


def _mean_or_zero(x: Tensor) -> Tensor:
    return x.mean() if x.numel() else x.sum() * 0.0


def rpn_losses(logits: Tensor, deltas: Tensor, match: Tensor, bbox: Tensor) -> dict[str, Tensor]:
    """``logits [B, A, 2]``, ``deltas [B, A, 4]``, targets from :func:`rpn_targets` → rpn_class_loss, rpn_bbox_loss."""
    active = match != 0
    class_loss = _mean_or_zero(F.cross_entropy(logits[active], (match[active] == 1).long(), reduction="none"))
    per_image = []
    for b in range(match.shape[0]):
        positive = torch.nonzero(match[b] == 1).flatten()
        per_image.append(smooth_l1(bbox[b, : positive.numel()], deltas[b, positive]))
    bbox_loss = _mean_or_zero(torch.cat(per_image))
    return {"rpn_class_loss": class_loss, "rpn_bbox_loss": bbox_loss}


def detection_targets(proposals: Tensor, target: dict[str, Tensor], image_shape: Sequence[int], *,
                      rois_per_image: int, positive_ratio: float, std_dev: Tensor, mask_shape: Sequence[int]
                      ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One image: ``proposals [R, 4]`` normalized (0-padded) → ``rois [T, 4]``, ``class_ids [T]``,
    ``deltas [T, 4]``, ``masks [P, h, w]`` (positives only; rows ``:P`` of ``rois`` are the positives)."""
    proposals = proposals[proposals.abs().sum(dim=1) > 0]
    boxes = norm_boxes(target["boxes"].float(), image_shape).to(proposals.device)
    class_ids = target["class_ids"]
    crowd = class_ids < 0
    no_crowd = torch.ones(proposals.shape[0], dtype=torch.bool, device=proposals.device)
    if crowd.any():
        no_crowd = overlaps(proposals, boxes[crowd]).max(dim=1).values < 0.001
    keep = class_ids > 0
    gt_boxes, gt_ids = boxes[keep], class_ids[keep]
    if gt_boxes.shape[0]:
        iou = overlaps(proposals, gt_boxes)
        best, assignment = iou.max(dim=1)
    else:
        best = torch.zeros(proposals.shape[0], device=proposals.device)
        assignment = torch.zeros(proposals.shape[0], dtype=torch.long, device=proposals.device)
    positive = _random_subset(torch.nonzero(best >= 0.5).flatten(), int(rois_per_image * positive_ratio))
    negative_count = int(1.0 / positive_ratio * positive.numel()) - positive.numel()
    negative = _random_subset(torch.nonzero((best < 0.5) & no_crowd).flatten(), negative_count)
    positive_rois = proposals[positive]
    roi_boxes = gt_boxes[assignment[positive]]
    roi_ids = gt_ids[assignment[positive]]
    deltas = box_refinement(positive_rois, roi_boxes) / std_dev
    if target.get("mini_masks") is not None:
        source = target["mini_masks"][keep]
        gh, gw = (roi_boxes[:, 2] - roi_boxes[:, 0]), (roi_boxes[:, 3] - roi_boxes[:, 1])
        crop = torch.stack([(positive_rois[:, 0] - roi_boxes[:, 0]) / gh, (positive_rois[:, 1] - roi_boxes[:, 1]) / gw,
                            (positive_rois[:, 2] - roi_boxes[:, 0]) / gh, (positive_rois[:, 3] - roi_boxes[:, 1]) / gw],
                           dim=1)
    else:
        source = target["masks"][keep]
        crop = positive_rois
    masks = crop_and_resize(source[:, None].float(), crop, assignment[positive], mask_shape)[:, 0].round()
    rois = torch.cat([positive_rois, proposals[negative]])
    pad = max(rois_per_image - rois.shape[0], 0)
    rois = F.pad(rois, (0, 0, 0, pad))
    ids = F.pad(roi_ids.long(), (0, negative.numel() + pad))
    deltas = F.pad(deltas, (0, 0, 0, negative.numel() + pad))
    return rois, ids, deltas, masks


def mrcnn_losses(logits: Tensor, deltas: Tensor, mask_logits: Tensor, class_ids: Tensor, target_deltas: Tensor,
                 target_masks: Tensor) -> dict[str, Tensor]:
    """``logits [T, C]``, ``deltas [T, C, 4]``, ``mask_logits [P, C, h, w]`` (positive ROIs, in order),
    targets ``class_ids [T]``, ``target_deltas [T, 4]``, ``target_masks [P, h, w]``.

    Class loss: cross-entropy averaged over all ROIs (padding included, as matterport with every class
    active). Box loss: smooth L1 of the positives' own-class deltas. Mask loss: binary cross-entropy of
    the positives' own-class masks.
    """
    class_loss = F.cross_entropy(logits, class_ids)
    positive = torch.nonzero(class_ids > 0).flatten()
    own = deltas[positive, class_ids[positive]]
    bbox_loss = _mean_or_zero(smooth_l1(target_deltas[positive], own))
    if target_masks.shape[0]:
        pos_ids = class_ids[positive][: target_masks.shape[0]]
        pred = mask_logits[torch.arange(target_masks.shape[0], device=mask_logits.device), pos_ids]
        mask_loss = F.binary_cross_entropy_with_logits(pred, target_masks)
    else:
        mask_loss = mask_logits.sum() * 0.0
    return {"mrcnn_class_loss": class_loss, "mrcnn_bbox_loss": bbox_loss, "mrcnn_mask_loss": mask_loss}
