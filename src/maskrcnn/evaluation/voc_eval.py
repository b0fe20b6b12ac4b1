"""The tutorial's "mAP": mean over images of matterport's VOC-style AP at one IoU.

matterport's notebooks compute, per validation image, ``utils.compute_ap`` of the
detections against the ground truth (matching on mask IoU) and average over images.
:func:`evaluate_voc` does that for masks and for boxes (box IoU, boxes from the masks).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .matching import compute_ap, extract_bboxes
from .runner import iter_detections, select_image_ids

__all__ = ["evaluate_voc"]


def _ground_truth(dataset, image_id: int):
    """Non-crowd, non-empty ground truth of one image: boxes, class ids, masks [H, W, G]."""
    masks, class_ids = dataset.load_mask(image_id)
    masks = np.asarray(masks)
    class_ids = np.asarray(class_ids).reshape(-1).astype(np.int32)
    if class_ids.size == 0 or masks.ndim != 3:
        return np.zeros((0, 4), np.int32), np.zeros(0, np.int32), None
    keep = (class_ids > 0) & (masks > 0).any(axis=(0, 1))
    masks = masks[..., keep] > 0
    class_ids = class_ids[keep]
    return extract_bboxes(masks), class_ids, masks


def evaluate_voc(
    model,
    dataset,
    image_ids: Sequence[int] | None = None,
    iou: float = 0.5,
    *,
    limit: int | None = None,
    batch_size: int = 1,
    progress: bool = False,
) -> dict:
    """Mean per-image VOC AP at ``iou`` of mask matches and of box matches.

    Crowd instances (negative class ids) and empty masks are left out of the ground truth;
    images without ground truth are skipped (their AP is undefined) and counted.
    Returns ``{"mAP_box", "mAP_mask", "iou", "images", "skipped"}``; the mAPs are None
    when no image has ground truth.
    """
    ids = select_image_ids(dataset, image_ids, limit)
    aps_box: list[float] = []
    aps_mask: list[float] = []
    skipped = 0
    for image_id, image, r in iter_detections(
        model, dataset, ids, batch_size=batch_size, progress=progress, desc="evaluate (VOC)"
    ):
        gt_boxes, gt_class_ids, gt_masks = _ground_truth(dataset, image_id)
        if gt_class_ids.size == 0:
            skipped += 1
            continue
        rois = np.asarray(r["rois"]).reshape(-1, 4)
        class_ids = np.asarray(r["class_ids"]).reshape(-1)
        scores = np.asarray(r["scores"]).reshape(-1)
        masks = r.get("masks")
        if masks is None or np.asarray(masks).ndim != 3:
            masks = np.zeros(image.shape[:2] + (len(class_ids),), dtype=bool)
        ap_mask, _, _, _ = compute_ap(gt_boxes, gt_class_ids, gt_masks, rois, class_ids, scores,
                                      np.asarray(masks), iou_threshold=iou)
        ap_box, _, _, _ = compute_ap(gt_boxes, gt_class_ids, None, rois, class_ids, scores, None,
                                     iou_threshold=iou)
        aps_mask.append(ap_mask)
        aps_box.append(ap_box)
    return {
        "mAP_box": float(np.mean(aps_box)) if aps_box else None,
        "mAP_mask": float(np.mean(aps_mask)) if aps_mask else None,
        "iou": float(iou),
        "images": len(aps_box),
        "skipped": skipped,
    }
