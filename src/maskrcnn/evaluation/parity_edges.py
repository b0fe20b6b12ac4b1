"""Boxes on the far image edge: where matterport's ROI pooling flips on a last-bit difference.

matterport pools ROIs with TensorFlow's ``crop_and_resize``: ``n`` sample points from edge to edge
of the normalized box, ``x_i = x1 (W-1) + i (x2-x1)(W-1)/(n-1)`` in float32, and a point with
``x_i > W-1`` makes its whole column ``extrapolation_value`` (0). A proposal clipped to the image
edge has ``x2 == 1.0``, so its last point is ``W-1`` give or take one float32 ulp: whether that
column is features or zeros depends on the last bits of ``x1``. Two correct implementations whose
proposals differ by 1e-7 (different convolution summation order) then get different class scores
for that ROI (seen: 0.968 vs 0.544) and may keep or drop a detection.

:func:`edge_sensitive` finds such ROIs; :func:`detection_rois` maps matterport's detections back
to the ROI each came from (class-specific refinement, clipped to the window), so that a final
detection found on one side only can be traced to such a flip. Boxes: normalized ``(y1, x1, y2, x2)``.
"""

from __future__ import annotations

import numpy as np

BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2], np.float32)   # matterport Config.BBOX_STD_DEV


def roi_levels(boxes: np.ndarray, molded_shape) -> np.ndarray:
    """matterport's PyramidROIAlign level (2..5) of each box [R, 4] in a molded image ``(h, w)``."""
    boxes = np.asarray(boxes, np.float32)
    h, w = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    area = np.float32(molded_shape[0]) * np.float32(molded_shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.log2(np.sqrt(h * w) / (np.float32(224.0) / np.sqrt(area)))
    return np.clip(4 + np.round(np.nan_to_num(level, nan=-10.0, neginf=-10.0)), 2, 5).astype(np.int64)


def edge_sensitive(boxes: np.ndarray, molded_shape, *, crop: int = 7, tol: float = 1e-4) -> np.ndarray:
    """[R] bool: a sample point of ``crop_and_resize(crop × crop)`` at the box's pyramid level lies
    within ``tol`` pixels of the feature map's last row/column (the extrapolation boundary)."""
    boxes = np.asarray(boxes, np.float32)
    out = np.zeros(len(boxes), bool)
    if not len(boxes):
        return out
    levels = roi_levels(boxes, molded_shape)
    for axis, (lo, hi) in enumerate(((0, 2), (1, 3))):
        extent = np.ceil(np.asarray(molded_shape[axis], np.float64) / 2.0 ** levels).astype(np.float32)
        scale = (boxes[:, hi] - boxes[:, lo]) * (extent - 1) / np.float32(crop - 1)
        points = boxes[:, lo, None] * (extent - 1)[:, None] + np.arange(crop, dtype=np.float32)[None] * scale[:, None]
        out |= (np.abs(points - (extent - 1)[:, None]) <= tol).any(axis=1)
    return out


def window_normalized(image_meta: np.ndarray) -> np.ndarray:
    """The window of ``image_meta`` [1, 12 + C] as matterport's ``norm_boxes`` (molded image)."""
    meta = np.asarray(image_meta, np.float32).reshape(-1)
    h, w = meta[4], meta[5]
    y1, x1, y2, x2 = meta[7:11]
    return np.array([y1 / (h - 1), x1 / (w - 1), (y2 - 1) / (h - 1), (x2 - 1) / (w - 1)], np.float32)


def detection_rois(detections: np.ndarray, proposals: np.ndarray, mrcnn_bbox: np.ndarray, image_meta: np.ndarray,
                   *, tol: float = 1e-4) -> np.ndarray:
    """[N] index of the proposal each detection came from (-1: none within ``tol``).

    ``detections`` [1, D, 6], ``proposals`` [1, R, 4], ``mrcnn_bbox`` [1, R, C, 4] (before
    BBOX_STD_DEV), ``image_meta`` [1, 12 + C]: matterport's refinement (deltas of the detection's
    class, then clipped to the window) of every proposal, nearest to each detection's box.
    """
    det = np.asarray(detections, np.float32)[0]
    det = det[det[:, 4] > 0]
    rois = np.asarray(proposals, np.float32)[0]
    deltas = np.asarray(mrcnn_bbox, np.float32)[0]
    window = window_normalized(image_meta)
    h, w = rois[:, 2] - rois[:, 0], rois[:, 3] - rois[:, 1]
    cy, cx = rois[:, 0] + 0.5 * h, rois[:, 1] + 0.5 * w
    out = np.full(len(det), -1, np.int64)
    for i, (y1, x1, y2, x2, cls, _) in enumerate(det):
        d = deltas[:, int(cls)] * BBOX_STD_DEV
        hh, ww = h * np.exp(d[:, 2]), w * np.exp(d[:, 3])
        yy, xx = cy + d[:, 0] * h, cx + d[:, 1] * w
        refined = np.stack([yy - 0.5 * hh, xx - 0.5 * ww, yy + 0.5 * hh, xx + 0.5 * ww], axis=1)
        refined = np.clip(refined, window[[0, 1, 0, 1]], window[[2, 3, 2, 3]])
        dist = np.abs(refined - np.array([y1, x1, y2, x2], np.float32)).max(axis=1)
        j = int(np.argmin(dist))
        out[i] = j if dist[j] <= tol else -1
    return out
