"""Which detections, masks and proposals count as **boundary cases** in a parity comparison with matterport.

A boundary case is one that float rounding decides on either side of matterport's computation, so two
correct ports (or matterport on two CPUs) may differ there: detections from edge-sensitive ROIs
(:mod:`.parity_edges`), detections and proposals wholly in the padding (near-tied scores over constant
features), and detections that overlap an excused one of the other side (an NMS cascade: same class,
box IoU above matterport's DETECTION_NMS_THRESHOLD 0.3). :mod:`.parity` uses these in its stage checks
and its final check alike. ``side`` dicts have reference.py's ``.npz`` layouts.
"""

from __future__ import annotations

import numpy as np

from .matching import compute_overlaps
from .parity_edges import detection_rois, edge_sensitive, window_normalized

MASK_POOL_SIZE = 14   # matterport Config.MASK_POOL_SIZE: the mask head's crop_and_resize size


def edge_sensitive_rois(side: dict, meta_from: dict | None = None) -> np.ndarray | None:
    """[R] bool: which of ``side``'s proposals are edge-sensitive (None without proposals/image_meta)."""
    meta = (meta_from or side).get("image_meta")
    if "proposals" not in side or meta is None:
        return None
    shape = np.asarray(meta).reshape(-1)[4:6]
    return edge_sensitive(np.asarray(side["proposals"])[0], shape)


def mask_edge_detections(ref: dict) -> set[int]:
    """Indices of ``ref``'s detections whose 14×14 mask crop is edge-sensitive."""
    if "detections" not in ref or "image_meta" not in ref:
        return set()
    det = np.asarray(ref["detections"])[0]
    det = det[det[:, 4] > 0]
    shape = np.asarray(ref["image_meta"]).reshape(-1)[4:6]
    return set(np.nonzero(edge_sensitive(det[:, :4], shape, crop=MASK_POOL_SIZE))[0].tolist())


def overlapping(side: dict, other: dict, excused: set[int], threshold: float = 0.3) -> set[int]:
    """Detections of ``side`` with the class of, and box IoU > ``threshold`` with, an ``excused``
    detection of ``other`` (final results: ``rois``, ``class_ids``)."""
    if not excused or not len(side["scores"]):
        return set()
    idx = sorted(excused)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = compute_overlaps(np.asarray(side["rois"], np.float64), np.asarray(other["rois"], np.float64)[idx])
    same = np.asarray(side["class_ids"])[:, None] == np.asarray(other["class_ids"])[idx][None, :]
    return set(np.nonzero(((iou > threshold) & same).any(axis=1))[0].tolist())


def detection_rows(detections: np.ndarray) -> dict:
    """The filled rows of ``detections [1, D, 6]`` as final results (``rois`` normalized y1x1y2x2: IoU does
    not change with the per-axis scale) for :func:`overlapping`."""
    det = np.asarray(detections, np.float64)[0]
    det = det[det[:, 4] > 0]
    return {"rois": det[:, :4], "class_ids": det[:, 4].astype(np.int64), "scores": det[:, 5]}


def in_padding(ref: dict) -> np.ndarray | None:
    """[R] bool: proposals of ``ref`` wholly outside the window (in the padding, where near-tied
    RPN scores over constant features decide which anchors survive)."""
    if ref.get("image_meta") is None:
        return None
    b = np.asarray(ref["proposals"], np.float64)[0]
    w = window_normalized(ref["image_meta"]).astype(np.float64)
    eps = 1e-6
    return (b[:, 2] <= w[0] + eps) | (b[:, 0] >= w[2] - eps) | (b[:, 3] <= w[1] + eps) | (b[:, 1] >= w[3] - eps)


def boundary_detections(side: dict, meta_from: dict, edge_rois: np.ndarray | None) -> set[int] | None:
    """Detections of ``side`` that may differ between correct ports for boundary reasons: those from
    edge-sensitive ROIs, those whose box lies wholly in the padding (clipped to a line on the
    window's edge: zero height or width) and those refined from a proposal wholly in the padding:
    they come from near-tied scores over constant padding features, so which of them make it
    through top-k/NMS is decided by float noise."""
    edge = edge_detections(side, meta_from, edge_rois)
    if "detections" not in side:
        return edge
    det = np.asarray(side["detections"])[0]
    det = det[det[:, 4] > 0]
    flat = set(np.nonzero((det[:, 2] <= det[:, 0]) | (det[:, 3] <= det[:, 1]))[0].tolist())
    padding = in_padding({**side, "image_meta": meta_from.get("image_meta")}) if "proposals" in side else None
    if padding is not None:   # detections refined from a proposal wholly in the padding
        flat |= edge_detections(side, meta_from, padding) or set()
    return flat if edge is None else edge | flat


def edge_detections(side: dict, meta_from: dict, edge_rois: np.ndarray | None) -> set[int] | None:
    """Indices of ``side``'s detections that come from edge-sensitive ROIs (None when unknown)."""
    if edge_rois is None or "detections" not in side:
        return None
    if "detection_rois" in side:
        rois = np.asarray(side["detection_rois"])
    elif "mrcnn_bbox" in side and "image_meta" in meta_from:
        rois = detection_rois(side["detections"], side["proposals"], side["mrcnn_bbox"], meta_from["image_meta"])
    else:
        return None
    return {i for i, j in enumerate(rois.tolist()) if 0 <= j < len(edge_rois) and edge_rois[j]}
