"""matterport's ``DetectionLayer`` (``refine_detections_graph``) for one image.

Per ROI the **argmax** class (background included) and its score; its class-specific deltas
× BBOX_STD_DEV refine the ROI, clipped to the image window; ROIs of class 0 or scoring below
``min_confidence`` are dropped; per-class NMS at ``nms_threshold``; the ``max_instances`` best
remain, sorted by score (ties: lower ROI index first, as ``tf.nn.top_k``).

``pad=False`` (the ONNX graph) returns only the ``N`` detections, without matterport's zero rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import batched_nms

from .geometry import apply_box_deltas, clip_boxes


def refine_detections(rois: Tensor, probs: Tensor, deltas: Tensor, window: Tensor, *, std_dev: Sequence[float],
                      min_confidence: float, nms_threshold: float, max_instances: int, pad: bool = True) -> Tensor:
    """``rois [R, 4]`` normalized, ``probs [R, C]``, ``deltas [R, C, 4]``, ``window [4]`` normalized →
    ``[max_instances, 6]``: (y1, x1, y2, x2, class id, score), zero-padded (matterport's layout);
    ``pad=False``: ``[N, 6]``, the ``N <= max_instances`` detections only."""
    index = torch.arange(probs.shape[0], device=probs.device)
    class_ids = torch.argmax(probs, dim=1)
    scores = probs[index, class_ids]
    std = torch.tensor([float(v) for v in std_dev], dtype=deltas.dtype, device=deltas.device)
    refined = clip_boxes(apply_box_deltas(rois, deltas[index, class_ids] * std), window)
    keep = class_ids > 0
    if min_confidence:
        keep = keep & (scores >= min_confidence)
    idx = torch.nonzero(keep).flatten()
    # Per-class NMS (each class capped at max_instances, which cannot change the final top max_instances).
    kept = batched_nms(refined[idx][:, [1, 0, 3, 2]], scores[idx], class_ids[idx], nms_threshold)
    idx = torch.sort(idx[kept]).values
    order = top_indices(scores[idx], max_instances)
    idx = idx[order]
    detections = torch.cat([refined[idx], class_ids[idx, None].to(refined.dtype), scores[idx, None]], dim=1)
    if not pad:
        return detections
    return F.pad(detections, (0, 0, 0, max_instances - detections.shape[0]))


def top_indices(values: Tensor, k: int) -> Tensor:
    """Indices of the ``min(k, R)`` largest of ``values [R]``, best first, ties in index order (``tf.nn.top_k``).

    While tracing (ONNX export): ONNX ``TopK``, which breaks ties by index, with ``k`` computed in the
    graph (``R`` depends on the data; a stable ``torch.sort`` does not export)."""
    if not torch.jit.is_tracing():
        return torch.sort(values, descending=True, stable=True).indices[:k]
    count = torch._shape_as_tensor(values)[0]
    return torch.topk(values, torch.minimum(count, torch.tensor(k, dtype=count.dtype))).indices
