"""matterport's matching and VOC-style AP utilities (``mrcnn.utils``), vectorized numpy.

Same names, signatures and semantics as matterport, so tutorial code such as::

    AP, precisions, recalls, overlaps = compute_ap(gt_bbox, gt_class_id, gt_mask,
                                                   r["rois"], r["class_ids"], r["scores"], r["masks"])

runs unchanged. Conventions (matterport's public edge):

- boxes are ``[N, (y1, x1, y2, x2)]`` in pixels, ``(y2, x2)`` just outside the box;
- masks are ``[H, W, N]`` (bool, or float thresholded at 0.5);
- ``overlaps`` matrices are ``[pred, gt]`` (rows = first argument of ``compute_overlaps*``).

Differences from matterport, all on purpose:

- ``compute_matches`` treats a ground truth as taken when ``gt_match[j] > -1`` (matterport's
  ``> 0`` let the ground truth matched by the best prediction be matched a second time);
- ``compute_matches``/``compute_ap``/``compute_ap_range`` accept ``gt_masks=None`` or
  ``pred_masks=None`` and then match on box IoU (box AP), which matterport cannot do;
- without ground truth, ``compute_ap`` returns NaN without a division warning (matterport
  returned NaN with a warning, or 0.0 when there were no predictions either).
"""

from __future__ import annotations

import numpy as np

from ..data.transforms import extract_bboxes  # matterport's utils.extract_bboxes, re-exported here

__all__ = [
    "extract_bboxes",
    "compute_iou",
    "compute_overlaps",
    "compute_overlaps_masks",
    "trim_zeros",
    "compute_matches",
    "compute_ap",
    "compute_ap_range",
    "compute_recall",
]


def compute_iou(box, boxes, box_area, boxes_area) -> np.ndarray:
    """IoU of one box with each of ``boxes``.

    box: ``[(y1, x1, y2, x2)]``; boxes: ``[K, (y1, x1, y2, x2)]``; box_area: float;
    boxes_area: ``[K]``. Areas are passed in so callers compute them once. Returns ``[K]``.
    """
    boxes = np.asarray(boxes)
    y1 = np.maximum(box[0], boxes[:, 0])
    y2 = np.minimum(box[2], boxes[:, 2])
    x1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[3], boxes[:, 3])
    intersection = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = box_area + np.asarray(boxes_area) - intersection
    return intersection / union


def compute_overlaps(boxes1, boxes2) -> np.ndarray:
    """IoU matrix of two sets of boxes.

    boxes1: ``[N, (y1, x1, y2, x2)]``, boxes2: ``[M, (y1, x1, y2, x2)]``.
    Returns float64 ``[N, M]``; two degenerate boxes (union 0) give NaN, as in matterport.
    """
    b1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    b2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    area1 = (b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1])
    area2 = (b2[:, 2] - b2[:, 0]) * (b2[:, 3] - b2[:, 1])
    y1 = np.maximum(b1[:, None, 0], b2[None, :, 0])
    x1 = np.maximum(b1[:, None, 1], b2[None, :, 1])
    y2 = np.minimum(b1[:, None, 2], b2[None, :, 2])
    x2 = np.minimum(b1[:, None, 3], b2[None, :, 3])
    intersection = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = area1[:, None] + area2[None, :] - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return intersection / union


def compute_overlaps_masks(masks1, masks2) -> np.ndarray:
    """IoU matrix of two sets of masks.

    masks1: ``[H, W, N]``, masks2: ``[H, W, M]`` (bool, or float thresholded at 0.5).
    Returns float ``[N, M]``; zeros ``[N, M]`` when either set is empty. Two empty masks
    (union 0) give NaN, as in matterport.
    """
    masks1 = np.asarray(masks1)
    masks2 = np.asarray(masks2)
    n, m = masks1.shape[-1], masks2.shape[-1]
    if n == 0 or m == 0:
        return np.zeros((n, m))
    if masks1.shape[:-1] != masks2.shape[:-1]:
        raise ValueError(
            f"compute_overlaps_masks: masks1 is {masks1.shape[:-1]} and masks2 is "
            f"{masks2.shape[:-1]}; both must be [H, W, N] of the same image size"
        )
    f1 = np.reshape(masks1 > 0.5, (-1, n)).astype(np.float32)
    f2 = np.reshape(masks2 > 0.5, (-1, m)).astype(np.float32)
    area1 = f1.sum(axis=0)
    area2 = f2.sum(axis=0)
    intersections = f1.T @ f2
    union = area1[:, None] + area2[None, :] - intersections
    with np.errstate(divide="ignore", invalid="ignore"):
        return intersections / union


def trim_zeros(x) -> np.ndarray:
    """Drop the rows of a ``[rows, columns]`` array that are all zeros (zero padding)."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"trim_zeros: expected a 2-D array, got shape {x.shape}")
    return x[~np.all(x == 0, axis=1)]


def _greedy_match(overlaps, gt_class_ids, pred_class_ids, iou_threshold, score_threshold):
    """matterport's greedy matching on a ``[pred, gt]`` IoU matrix, predictions best first.

    Each prediction takes the unmatched ground truth of highest IoU (>= ``iou_threshold``,
    same class); a ground truth is matched at most once. The loop runs over predictions
    (inherently sequential), each step is vectorized over ground truths.
    """
    n_pred, n_gt = overlaps.shape
    pred_match = -1 * np.ones([n_pred])
    gt_match = -1 * np.ones([n_gt])
    if n_pred == 0 or n_gt == 0:
        return gt_match, pred_match
    ov = np.nan_to_num(overlaps, nan=0.0)
    same_class = np.asarray(pred_class_ids)[:, None] == np.asarray(gt_class_ids)[None, :]
    for i in range(n_pred):
        # matterport: ground truths sorted by IoU, cut below score_threshold, skip taken
        # ones, stop at the first IoU < iou_threshold, take the first of the same class.
        order = np.argsort(ov[i], kind="stable")[::-1]
        row = ov[i, order]
        keep = np.ones(n_gt, dtype=bool)
        low = np.nonzero(row < score_threshold)[0]
        if low.size:
            keep[low[0]:] = False
        free = gt_match[order] == -1
        candidates = keep & free
        below = candidates & (row < iou_threshold)
        stop = np.nonzero(below)[0]
        if stop.size:
            candidates[stop[0]:] = False
        hits = np.nonzero(candidates & same_class[i, order])[0]
        if hits.size:
            j = order[hits[0]]
            gt_match[j] = i
            pred_match[i] = j
    return gt_match, pred_match


def compute_matches(gt_boxes, gt_class_ids, gt_masks,
                    pred_boxes, pred_class_ids, pred_scores, pred_masks,
                    iou_threshold=0.5, score_threshold=0.0):
    """Match predictions to ground truth, matterport's ``utils.compute_matches``.

    gt_boxes: ``[G, (y1, x1, y2, x2)]`` (all-zero rows = padding, trimmed);
    gt_class_ids: ``[G]``; gt_masks: ``[H, W, G]`` or None (then box IoU is used);
    pred_boxes: ``[P, (y1, x1, y2, x2)]``; pred_class_ids, pred_scores: ``[P]``;
    pred_masks: ``[H, W, P]`` or None. score_threshold is matterport's: overlaps below it
    are never candidates (it is an IoU floor, not a score filter).

    Returns ``(gt_match [G], pred_match [P], overlaps [P, G])``. Predictions are sorted by
    score, highest first; ``pred_match[i]`` is the ground-truth index matched by the
    i-th prediction in that order (or -1), ``gt_match[j]`` the sorted prediction index
    (or -1); ``overlaps`` rows follow the sorted order too.
    """
    gt_boxes = trim_zeros(np.asarray(gt_boxes).reshape(-1, 4))
    n_gt = gt_boxes.shape[0]
    gt_class_ids = np.asarray(gt_class_ids)[:n_gt]
    pred_boxes = trim_zeros(np.asarray(pred_boxes).reshape(-1, 4))
    n_pred = pred_boxes.shape[0]
    pred_scores = np.asarray(pred_scores)[:n_pred]
    pred_class_ids = np.asarray(pred_class_ids)[:n_pred]
    indices = np.argsort(pred_scores, kind="stable")[::-1]
    pred_boxes = pred_boxes[indices]
    pred_class_ids = pred_class_ids[indices]

    if gt_masks is None or pred_masks is None:
        overlaps = compute_overlaps(pred_boxes, gt_boxes)
    else:
        gt_masks = np.asarray(gt_masks)[..., :n_gt]
        pred_masks = np.asarray(pred_masks)[..., :n_pred][..., indices]
        overlaps = compute_overlaps_masks(pred_masks, gt_masks)

    gt_match, pred_match = _greedy_match(
        overlaps, gt_class_ids, pred_class_ids, iou_threshold, score_threshold
    )
    return gt_match, pred_match, overlaps


def _voc_ap(pred_match, n_gt):
    """Precision/recall steps and the VOC (all-points) AP of matched predictions."""
    tp = np.cumsum(pred_match > -1)
    precisions = tp / (np.arange(len(pred_match)) + 1)
    if n_gt == 0:
        recalls = np.full(len(pred_match), np.nan, dtype=np.float32)
    else:
        recalls = tp.astype(np.float32) / n_gt
    precisions = np.concatenate([[0], precisions, [0]])
    recalls = np.concatenate([[0], recalls, [1]])
    # Precision at each recall = the best precision at any higher recall (VOC envelope).
    precisions = np.maximum.accumulate(precisions[::-1])[::-1]
    if n_gt == 0:
        return float("nan"), precisions, recalls
    indices = np.where(recalls[:-1] != recalls[1:])[0] + 1
    ap = np.sum((recalls[indices] - recalls[indices - 1]) * precisions[indices])
    return float(ap), precisions, recalls


def compute_ap(gt_boxes, gt_class_ids, gt_masks,
               pred_boxes, pred_class_ids, pred_scores, pred_masks,
               iou_threshold=0.5):
    """Average precision at one IoU threshold, matterport's ``utils.compute_ap``.

    Arguments as :func:`compute_matches` (masks None: box IoU). Returns
    ``(mAP, precisions [P+2], recalls [P+2], overlaps [P, G])``: precisions and recalls
    are padded with ``0`` and ``(0, 1)`` at the ends, precisions made non-increasing; the
    AP is the area under that curve (VOC 2010+ all-points). NaN without ground truth.
    """
    gt_match, pred_match, overlaps = compute_matches(
        gt_boxes, gt_class_ids, gt_masks,
        pred_boxes, pred_class_ids, pred_scores, pred_masks,
        iou_threshold,
    )
    ap, precisions, recalls = _voc_ap(pred_match, len(gt_match))
    return ap, precisions, recalls, overlaps


def compute_ap_range(gt_box, gt_class_id, gt_mask,
                     pred_box, pred_class_id, pred_score, pred_mask,
                     iou_thresholds=None, verbose=1):
    """Mean of :func:`compute_ap` over IoU thresholds (default 0.5, 0.55, ..., 0.95).

    Prints each AP and the mean when ``verbose``, as matterport does. Returns a float.
    """
    if iou_thresholds is None:
        iou_thresholds = np.arange(0.5, 1.0, 0.05)
    iou_thresholds = list(np.atleast_1d(iou_thresholds))
    aps = []
    for iou_threshold in iou_thresholds:
        ap, _, _, _ = compute_ap(
            gt_box, gt_class_id, gt_mask,
            pred_box, pred_class_id, pred_score, pred_mask,
            iou_threshold=iou_threshold,
        )
        if verbose:
            print(f"AP @{iou_threshold:.2f}:\t {ap:.3f}")
        aps.append(ap)
    mean_ap = float(np.array(aps).mean())
    if verbose:
        print(f"AP @{iou_thresholds[0]:.2f}-{iou_thresholds[-1]:.2f}:\t {mean_ap:.3f}")
    return mean_ap


def compute_recall(pred_boxes, gt_boxes, iou):
    """Fraction of ground-truth boxes that some prediction overlaps with IoU >= ``iou``.

    pred_boxes: ``[P, (y1, x1, y2, x2)]``, gt_boxes: ``[G, (y1, x1, y2, x2)]``.
    Returns ``(recall, positive_ids)``: positive_ids are the predictions whose best IoU
    reaches ``iou`` (matterport's ``utils.compute_recall``; used to rate RPN proposals).
    """
    gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)
    overlaps = np.nan_to_num(compute_overlaps(pred_boxes, gt_boxes), nan=0.0)
    if overlaps.shape[0] == 0 or overlaps.shape[1] == 0:
        return 0.0, np.zeros(0, dtype=np.int64)
    iou_max = np.max(overlaps, axis=1)
    iou_argmax = np.argmax(overlaps, axis=1)
    positive_ids = np.where(iou_max >= iou)[0]
    matched_gt_boxes = iou_argmax[positive_ids]
    recall = len(set(matched_gt_boxes.tolist())) / gt_boxes.shape[0]
    return recall, positive_ids
