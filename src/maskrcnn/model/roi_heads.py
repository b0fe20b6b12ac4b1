"""The ROI heads: box classification/regression, the detection layer and the mask branch.

Inference is torchvision's ``RoIHeads`` step for step (and gives identical outputs with
identical weights): pool each proposal (7×7), box head, per-class softmax scores and
class-specific box decoding, then :func:`postprocess_detections`; the mask branch runs
on the kept detections only and returns the sigmoid of the detected class's channel.

Training samples ROIs per image with :func:`~maskrcnn.model.targets.roi_targets`
(torchvision's matching and sampling plus matterport's crowd rule), runs the mask branch
on the positive ROIs, builds mask targets from full-size ``masks`` or ``mini_masks``
and returns :func:`~maskrcnn.model.losses.mrcnn_losses` (unweighted; the model applies
``LOSS_WEIGHTS``).

Boxes are ``xyxy`` float in pixels of the resized image throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms

from .box_head import BoxHead, BoxPredictor
from .boxes import BoxCoder, clip_boxes, remove_small_boxes
from .losses import mrcnn_losses
from .mask_head import MaskHead, MaskPredictor
from .probe import Probed, probe
from .roi_align import PyramidRoIAlign
from .targets import mask_targets, roi_targets

__all__ = ["DetectionSettings", "RoIHeads", "postprocess_detections"]


@dataclass(frozen=True)
class DetectionSettings:
    """The detection layer's thresholds: what a user may change on a built model.

    ``min_confidence`` (DETECTION_MIN_CONFIDENCE): keep (proposal, class) pairs scoring above it;
    ``nms_threshold`` (DETECTION_NMS_THRESHOLD): IoU of the per-class NMS; ``max_instances``
    (DETECTION_MAX_INSTANCES): detections kept per image; ``min_size`` (DETECTION_MIN_SIZE): the
    smallest box side in pixels. :class:`RoIHeads` holds the values it was built with and takes
    these per call (the network passes its config's current values at every forward).
    """

    min_confidence: float
    nms_threshold: float
    max_instances: int
    min_size: float


def postprocess_detections(
    class_logits: Tensor,
    box_deltas: Tensor,
    proposals: Sequence[Tensor],
    image_sizes: Sequence[tuple[int, int]],
    *,
    box_coder: BoxCoder,
    score_thresh: float,
    nms_thresh: float,
    detections_per_img: int,
    min_size: float,
) -> list[dict[str, Tensor]]:
    """The detection layer, exactly torchvision's ``RoIHeads.postprocess_detections``.

    For every proposal and every non-background class: softmax score, class-specific box
    (decoded, clipped to the image); keep pairs with score ``> score_thresh`` and both sides
    ``>= min_size``; NMS per class at ``nms_thresh``; the ``detections_per_img`` best by score.
    One proposal may thus yield detections of several classes.

    Args:
        class_logits: ``[sumK, C]``; box_deltas: ``[sumK, 4C]``.
        proposals: per image ``[K_i, 4]`` xyxy (resized-image pixels).
        image_sizes: per image ``(h, w)`` to clip to.

    Returns:
        per image ``{"boxes": [N,4] xyxy, "labels": int64 [N] (1..C-1), "scores": [N]}``,
        sorted by decreasing score. Records ``roi.refined_boxes`` (``[sumK, C, 4]`` clipped).
    """
    num_classes = class_logits.shape[-1]
    counts = [p.shape[0] for p in proposals]
    reference = torch.cat(list(proposals), dim=0)
    pred_boxes = box_coder.decode(box_deltas, reference)  # [sumK, C, 4]
    pred_scores = F.softmax(class_logits, -1)
    clipped = [clip_boxes(b, size) for b, size in zip(pred_boxes.split(counts, 0), image_sizes)]
    probe("roi.refined_boxes", torch.cat(clipped, dim=0) if clipped else pred_boxes)

    results = []
    for boxes, scores in zip(clipped, pred_scores.split(counts, 0)):
        labels = torch.arange(num_classes, device=class_logits.device).view(1, -1).expand_as(scores)
        # Drop the background column; every (proposal, class) pair becomes a candidate.
        boxes = boxes[:, 1:].reshape(-1, 4)
        scores = scores[:, 1:].reshape(-1)
        labels = labels[:, 1:].reshape(-1)
        keep = torch.where(scores > score_thresh)[0]
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = remove_small_boxes(boxes, min_size)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        keep = batched_nms(boxes, scores, labels, nms_thresh)[:detections_per_img]
        results.append({"boxes": boxes[keep], "labels": labels[keep], "scores": scores[keep]})
    return results


class RoIHeads(Probed, nn.Module):
    """Box and mask heads on top of the feature pyramid.

    Args:
        box_roi_pool: pools ``[R, C, 7, 7]`` for the box head.
        box_head, box_predictor: see :mod:`~maskrcnn.model.box_head`.
        mask_roi_pool, mask_head, mask_predictor: the mask branch (all three or none; none gives
            a Faster R-CNN).
        box_coder_weights: ``(wx, wy, ww, wh)`` of the class-specific deltas (torchvision
            ``(10, 10, 5, 5)`` = ``weights_from_std_dev(BBOX_STD_DEV)``).
        score_thresh: ``DETECTION_MIN_CONFIDENCE``; nms_thresh: ``DETECTION_NMS_THRESHOLD``;
        detections_per_img: ``DETECTION_MAX_INSTANCES``; min_size: ``DETECTION_MIN_SIZE`` (pixels):
            the defaults of the detection layer; a call may pass other :class:`DetectionSettings`.
        batch_size_per_image: ``TRAIN_ROIS_PER_IMAGE``; positive_fraction: ``ROI_POSITIVE_RATIO``;
        fg_iou / bg_iou: ``ROI_POSITIVE_IOU`` / ``ROI_NEGATIVE_IOU``; mask_size: side of the mask
            targets (``MASK_SHAPE[0]``, must equal the predictor's output side).
    """

    def __init__(
        self,
        *,
        box_roi_pool: PyramidRoIAlign,
        box_head: BoxHead,
        box_predictor: BoxPredictor,
        mask_roi_pool: PyramidRoIAlign | None = None,
        mask_head: MaskHead | None = None,
        mask_predictor: MaskPredictor | None = None,
        box_coder_weights: Sequence[float] = (10.0, 10.0, 5.0, 5.0),
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_img: int = 100,
        min_size: float = 1e-2,
        batch_size_per_image: int = 512,
        positive_fraction: float = 0.25,
        fg_iou: float = 0.5,
        bg_iou: float = 0.5,
        mask_size: int = 28,
    ) -> None:
        super().__init__()
        parts = (mask_roi_pool, mask_head, mask_predictor)
        if any(p is None for p in parts) and not all(p is None for p in parts):
            raise ValueError("RoIHeads: give all of mask_roi_pool, mask_head and mask_predictor, or none")
        self.box_roi_pool = box_roi_pool
        self.box_head = box_head
        self.box_predictor = box_predictor
        self.mask_roi_pool = mask_roi_pool
        self.mask_head = mask_head
        self.mask_predictor = mask_predictor
        self.box_coder = BoxCoder(weights=box_coder_weights)
        self.score_thresh = float(score_thresh)
        self.nms_thresh = float(nms_thresh)
        self.detections_per_img = int(detections_per_img)
        self.min_size = float(min_size)
        self.batch_size_per_image = int(batch_size_per_image)
        self.positive_fraction = float(positive_fraction)
        self.fg_iou = float(fg_iou)
        self.bg_iou = float(bg_iou)
        self.mask_size = int(mask_size)

    @property
    def has_mask(self) -> bool:
        return self.mask_predictor is not None

    def forward(
        self,
        features: Mapping[str, Tensor],
        proposals: Sequence[Tensor],
        image_sizes: Sequence[tuple[int, int]],
        targets: Sequence[Mapping[str, Tensor]] | None = None,
        *,
        detection: DetectionSettings | None = None,
    ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """Detections (inference) or losses (training).

        Args:
            features: ``"p2".."p5"`` (more are ignored) → ``[B, C, H_l, W_l]``.
            proposals: per image ``[K_i, 4]`` xyxy, resized-image pixels.
            image_sizes: per image ``(h, w)`` after resizing.
            targets: training only, per image ``boxes [G,4]`` float xyxy, ``labels`` int64 ``[G]``,
                optional ``iscrowd`` bool ``[G]``, and ``masks [G,H,W]`` or ``mini_masks [G,mh,mw]``.
            detection: inference thresholds for this call (default: the values given at construction).

        Returns:
            ``(detections, losses)``. Inference: per image ``boxes [N,4]``, ``labels`` int64 ``[N]``,
            ``scores [N]``, ``mask_probs [N,M,M]`` (with a mask branch), and ``{}``. Training:
            ``[]`` and ``{"mrcnn_class_loss", "mrcnn_bbox_loss", "mrcnn_mask_loss"}``.
        """
        if len(proposals) != len(image_sizes):
            raise ValueError(f"RoIHeads: {len(proposals)} proposal lists for {len(image_sizes)} image_sizes")
        # roi_align reads NCHW: channels-last maps (see fuse.prepare_for_inference) are converted once
        # here instead of inside every roi_align call (box and mask pooling).
        features = {name: f.contiguous() for name, f in features.items()}
        if self.training:
            if targets is None:
                raise ValueError("RoIHeads: targets are required in training mode")
            return [], self._losses(features, proposals, image_sizes, targets)
        return self._detect(features, proposals, image_sizes, detection or self.detection_settings), {}

    @property
    def detection_settings(self) -> DetectionSettings:
        """The thresholds given at construction (used when a call passes none)."""
        return DetectionSettings(min_confidence=self.score_thresh, nms_threshold=self.nms_thresh,
                                 max_instances=self.detections_per_img, min_size=self.min_size)

    # ------------------------------------------------------------------ inference
    def _detect(
        self, features: Mapping[str, Tensor], proposals: Sequence[Tensor], image_sizes: Sequence[tuple[int, int]],
        detection: DetectionSettings,
    ) -> list[dict[str, Tensor]]:
        class_logits, box_deltas = self._box_branch(features, proposals, image_sizes)
        self.probe("roi.class_logits", class_logits)
        self.probe("roi.box_deltas", box_deltas)
        detections = postprocess_detections(
            class_logits, box_deltas, proposals, image_sizes, box_coder=self.box_coder,
            score_thresh=float(detection.min_confidence), nms_thresh=float(detection.nms_threshold),
            detections_per_img=int(detection.max_instances), min_size=float(detection.min_size),
        )
        self.probe("roi.detections", detections)
        if not self.has_mask:
            return detections

        mask_logits = self._mask_branch(features, [d["boxes"] for d in detections], image_sizes)
        self.probe("mask.logits", mask_logits)
        labels = torch.cat([d["labels"] for d in detections])
        # sigmoid(logits)[i, label_i]: only the detected class's channel is kept.
        mask_probs = mask_logits[torch.arange(labels.shape[0], device=labels.device), labels].sigmoid()
        self.probe("mask.probs", mask_probs)
        if len(detections) == 1:  # no split: keeps N dynamic in a traced (ONNX) graph
            detections[0]["mask_probs"] = mask_probs
            return detections
        for detection, probs in zip(detections, mask_probs.split([len(d["labels"]) for d in detections])):
            detection["mask_probs"] = probs
        return detections

    def _box_branch(self, features, rois, image_sizes) -> tuple[Tensor, Tensor]:
        pooled = self.box_roi_pool(features, rois, image_sizes)
        return self.box_predictor(self.box_head(pooled))

    def _mask_branch(self, features, rois, image_sizes) -> Tensor:
        pooled = self.mask_roi_pool(features, rois, image_sizes)
        return self.mask_predictor(self.mask_head(pooled))

    # ------------------------------------------------------------------ training
    def _losses(
        self,
        features: Mapping[str, Tensor],
        proposals: Sequence[Tensor],
        image_sizes: Sequence[tuple[int, int]],
        targets: Sequence[Mapping[str, Tensor]],
    ) -> dict[str, Tensor]:
        if len(targets) != len(proposals):
            raise ValueError(f"RoIHeads: {len(targets)} targets for {len(proposals)} images")
        for index, target in enumerate(targets):
            _check_target(target, index, need_masks=self.has_mask)

        sampled = [
            roi_targets(
                props, target["boxes"], target["labels"], target.get("iscrowd"),
                num_samples=self.batch_size_per_image, positive_fraction=self.positive_fraction,
                positive_iou=self.fg_iou, negative_iou=self.bg_iou, box_coder=self.box_coder, add_gt_boxes=True,
            )
            for props, target in zip(proposals, targets)
        ]
        class_logits, box_deltas = self._box_branch(features, [s.rois for s in sampled], image_sizes)
        labels = torch.cat([s.labels for s in sampled])
        regression_targets = torch.cat([s.regression_targets for s in sampled])

        mask_logits = None
        targets_m = None
        if self.has_mask:
            positive = [torch.where(s.labels > 0)[0] for s in sampled]
            pos_rois = [s.rois[p] for s, p in zip(sampled, positive)]
            mask_logits = self._mask_branch(features, pos_rois, image_sizes)
            if mask_logits.shape[-1] != self.mask_size:
                raise ValueError(
                    f"RoIHeads: mask_size={self.mask_size} but the mask predictor outputs "
                    f"{mask_logits.shape[-1]}x{mask_logits.shape[-2]} (MASK_SHAPE must be 2 x MASK_POOL_SIZE)")
            targets_m = torch.cat([
                mask_targets(
                    rois, s.matched_gt[p], masks=target.get("masks"), mini_masks=target.get("mini_masks"),
                    gt_boxes=target["boxes"], mask_size=self.mask_size,
                ).to(mask_logits.dtype)
                for rois, s, p, target in zip(pos_rois, sampled, positive, targets)
            ])
        return mrcnn_losses(class_logits, box_deltas, mask_logits, labels, regression_targets, targets_m)


def _check_target(target: Mapping[str, Tensor], index: int, *, need_masks: bool) -> None:
    """Shapes and dtypes of one image's training target; ``ValueError`` naming the field."""
    boxes = target.get("boxes")
    labels = target.get("labels")
    if boxes is None or labels is None:
        raise ValueError(f"targets[{index}]: 'boxes' and 'labels' are required")
    if not boxes.is_floating_point() or boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"targets[{index}]['boxes']: expected float [N, 4] xyxy, got {boxes.dtype} "
                         f"{list(boxes.shape)}")
    if labels.dtype != torch.int64 or labels.shape != boxes.shape[:1]:
        raise ValueError(f"targets[{index}]['labels']: expected int64 [{boxes.shape[0]}], got {labels.dtype} "
                         f"{list(labels.shape)}")
    if need_masks:
        masks = target.get("masks", target.get("mini_masks"))
        if masks is None or ("masks" in target and "mini_masks" in target):
            raise ValueError(f"targets[{index}]: give exactly one of 'masks' (full size) or 'mini_masks'")
        if masks.dim() != 3 or masks.shape[0] != boxes.shape[0]:
            raise ValueError(f"targets[{index}]: masks must be [{boxes.shape[0]}, H, W], got {list(masks.shape)}")
