"""matterport's ``unmold_detections``: detections of the molded image → results of the original image.

For one image: the detections up to the first of class 0; their normalized boxes are moved
out of the padding window and scaled to the original image, then rounded to integer pixels
(``denorm_boxes``, half to even); boxes of zero area are dropped; each detection's 28×28 mask of
its class is resized to its box (skimage's linear resize) and thresholded at 0.5 (``unmold_mask``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .geometry import denorm_boxes, norm_boxes


def resize_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """``utils.resize(mask, size)`` (skimage: linear, zeros beyond the border, clipped to the mask's range)
    of a float ``[h, w]`` mask, in float32 with ``grid_sample`` (see :func:`.geometry.resize_linear`)."""
    h, w = size
    ys = (torch.arange(h, device=mask.device, dtype=torch.float32) * 2 + 1) / h - 1
    xs = (torch.arange(w, device=mask.device, dtype=torch.float32) * 2 + 1) / w - 1
    grid = torch.stack(torch.broadcast_tensors(xs[None, :], ys[:, None]), dim=-1)[None]
    out = F.grid_sample(mask[None, None].float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0, 0]
    lo, hi = mask.min(), mask.max()
    keep_zero = (out == 0) & ~((lo <= 0) & (0 <= hi))
    return torch.where(keep_zero, out, out.clamp(lo, hi))


def unmold_detections(detections: Tensor, mask_probs: Tensor, *, original_shape: Sequence[int],
                      image_shape: Sequence[int], window: Sequence[int], threshold: float = 0.5) -> dict[str, Tensor]:
    """One image.

    Args:
        detections: ``[D, 6]`` from :func:`.detection.refine_detections`.
        mask_probs: ``[D, C, 28, 28]`` sigmoid masks of every class, or ``[D, 28, 28]`` each detection's
            own class's mask (the ONNX graph's output).
        original_shape: ``(H, W)`` of the input image; image_shape: ``(h, w)`` of the molded batch;
        window: ``(y1, x1, y2, x2)`` pixels of the image in the molded batch.

    Returns:
        ``rois [N, 4]`` int64 y1x1y2x2 pixels of the original image (y2, x2 outside the box),
        ``class_ids [N]`` int64, ``scores [N]``, ``masks [N, H, W]`` bool.
    """
    zero = torch.nonzero(detections[:, 4] == 0).flatten()
    n = int(zero[0]) if zero.numel() else detections.shape[0]
    boxes, class_ids, scores = detections[:n, :4], detections[:n, 4].long(), detections[:n, 5]
    if mask_probs.dim() == 3:
        masks = mask_probs[:n]
    else:
        masks = mask_probs[torch.arange(n, device=mask_probs.device), class_ids]
    win = norm_boxes(torch.tensor([float(v) for v in window], device=detections.device), image_shape)
    shift = torch.stack([win[0], win[1], win[0], win[1]])
    scale = torch.stack([win[2] - win[0], win[3] - win[1]] * 2)
    rois = denorm_boxes((boxes.float() - shift) / scale, original_shape)
    keep = (rois[:, 2] - rois[:, 0]) * (rois[:, 3] - rois[:, 1]) > 0
    rois, class_ids, scores, masks = rois[keep], class_ids[keep], scores[keep], masks[keep]
    height, width = int(original_shape[0]), int(original_shape[1])
    full = torch.zeros((rois.shape[0], height, width), dtype=torch.bool, device=detections.device)
    for i, (y1, x1, y2, x2) in enumerate(rois.tolist()):
        resized = resize_mask(masks[i], (y2 - y1, x2 - x1)) >= threshold
        # a box reaching past the image (rounding) is cut there
        top, left, bottom, right = max(y1, 0), max(x1, 0), min(y2, height), min(x2, width)
        full[i, top:bottom, left:right] = resized[top - y1:bottom - y1, left - x1:right - x1]
    return {"rois": rois, "class_ids": class_ids, "scores": scores, "masks": full}
