"""Paste the fixed-size mask predictions into full-size image masks, vectorized.

:func:`paste_masks` gives what torchvision's ``paste_masks_in_image`` gives (to float
rounding, ≤ 1e-6): each ``M×M`` mask is padded by one pixel of zeros, its box
grown by the same factor ``(M + 2) / M`` around its center and truncated to integers,
the padded mask bilinearly resized (``align_corners=False``) to the box's
``(y2 - y1 + 1) × (x2 - x1 + 1)`` pixels and placed at ``(x1, y1)``, clipped to the image.

Instead of a Python loop of one ``interpolate`` and one full-size canvas per mask, the
resize-and-place is separable: ``window[n] = Ry[n] @ mask[n] @ Rx[n].T`` where ``Ry [n,h,M+2]``
and ``Rx [n,w,M+2]`` hold PyTorch's bilinear weights (``upsample_bilinear2d``) of each row /
column of a window ``h × w`` that covers the visible part of the box (zero rows outside
the box). Masks sorted by size go through in chunks (two batched matrix products each)
and one ``index_copy_`` writes the chunk's windows into the zero-filled ``[N, H, W]`` result.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

#: At most this many masks per batched product.
DEFAULT_CHUNK = 32
#: At most this many window pixels per chunk (bounds the temporaries to ~12 bytes each).
WINDOW_PIXELS = 1 << 22


def expand_boxes(boxes: Tensor, scale: float) -> Tensor:
    """Grow ``xyxy`` boxes ``[N,4]`` by ``scale`` around their centers (torchvision's arithmetic)."""
    w_half = (boxes[:, 2] - boxes[:, 0]) * 0.5 * scale
    h_half = (boxes[:, 3] - boxes[:, 1]) * 0.5 * scale
    x_c = (boxes[:, 2] + boxes[:, 0]) * 0.5
    y_c = (boxes[:, 3] + boxes[:, 1]) * 0.5
    return torch.stack((x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half), dim=1)


def bilinear_weights(start: Tensor, length: Tensor, in_size: int, out_size: int) -> Tensor:
    """Interpolation matrix of a 1-D bilinear resize placed on an image axis.

    Each row ``n`` resizes an ``in_size`` signal to ``length[n]`` samples
    (``align_corners=False``, exactly PyTorch's ``upsample_bilinear2d`` weights:
    ``src = max(0, (dst + 0.5) * in / length - 0.5)``, ``i0 = floor(src)``,
    ``lambda = src - i0``, ``i1 = min(i0 + 1, in - 1)``) and puts sample ``dst`` at
    image coordinate ``start[n] + dst``; coordinates outside ``[0, out_size)`` are cut.

    Args:
        start: int64 ``[N]`` image coordinate of the first sample (may be negative).
        length: int64 ``[N]`` resized length (≥ 1).
        in_size: length of the input signal.
        out_size: length of the image axis.

    Returns:
        float32 ``[N, out_size, in_size]``; rows outside ``[start, start + length)`` are zero.
    """
    device = start.device
    coords = torch.arange(out_size, device=device)
    dst = coords[None, :] - start[:, None]  # [N, out] position inside the resized mask
    inside = (dst >= 0) & (dst < length[:, None])
    ratio = torch.full_like(length, in_size, dtype=torch.float32) / length.clamp(min=1).to(torch.float32)  # [N]
    src = ratio[:, None] * (dst.to(torch.float32) + 0.5) - 0.5
    src = src.clamp(min=0)
    i0 = src.floor().clamp(max=in_size - 1)
    lam1 = (src - i0).clamp(0, 1)
    lam0 = 1 - lam1
    i0 = i0.to(torch.int64)
    i1 = torch.where(i0 < in_size - 1, i0 + 1, i0)
    zero = torch.zeros((), dtype=torch.float32, device=device)
    lam0 = torch.where(inside, lam0, zero)[..., None]
    lam1 = torch.where(inside, lam1, zero)[..., None]
    taps = torch.arange(in_size, device=device)
    # One-hot rows built by comparison (faster than scatter on CPU); i0 == i1 at the last input sample.
    weights = (taps == i0[..., None]) * lam0 + (taps == i1[..., None]) * lam1
    return weights


def paste_masks(
    mask_probs: Tensor,
    boxes: Tensor,
    image_size: tuple[int, int],
    *,
    threshold: float | None = None,
    padding: int = 1,
    chunk: int = DEFAULT_CHUNK,
) -> Tensor:
    """Full-size masks from fixed-size mask predictions.

    Args:
        mask_probs: ``[N, M, M]`` float mask probabilities (or logits) of the detections.
        boxes: ``[N, 4]`` xyxy boxes in pixels of the target image (original pixels).
        image_size: ``(H, W)`` of the target image.
        threshold: if given, return ``pasted >= threshold`` as bool (matterport's ``unmold_mask``
            rule; 4× less memory than float).
        padding: zero pixels added around each mask before resizing (torchvision: 1).
        chunk: at most this many masks per batched product.

    Returns:
        ``[N, H, W]`` float (dtype of ``mask_probs``), zero outside each box; bool with ``threshold``.
    """
    if mask_probs.dim() != 3 or mask_probs.shape[-1] != mask_probs.shape[-2]:
        raise ValueError(f"paste_masks: mask_probs must be [N, M, M], got {list(mask_probs.shape)}")
    if boxes.dim() != 2 or boxes.shape[1] != 4 or boxes.shape[0] != mask_probs.shape[0]:
        raise ValueError(
            f"paste_masks: boxes must be [N, 4] with N = {mask_probs.shape[0]}, got {list(boxes.shape)}")
    height, width = int(image_size[0]), int(image_size[1])
    n, m = mask_probs.shape[0], mask_probs.shape[-1]
    out_dtype = torch.bool if threshold is not None else mask_probs.dtype
    out = torch.zeros((n, height, width), dtype=out_dtype, device=mask_probs.device)
    if n == 0 or height == 0 or width == 0:
        return out

    padded = F.pad(mask_probs, (padding,) * 4).to(torch.float32)  # [N, S, S], S = M + 2 * padding
    size = m + 2 * padding
    int_boxes = expand_boxes(boxes, float(size) / m).to(torch.int64)  # truncation toward zero, like torchvision
    x1, y1, x2, y2 = int_boxes.unbind(dim=1)
    # torchvision resizes to (y2 - y1 + 1) x (x2 - x1 + 1) and pastes the part inside the image:
    # rows max(y1, 0) <= y < min(y2 + 1, H), columns likewise (nothing when y2 < y1 or x2 < x1).
    box_h = (y2 - y1 + 1).clamp(min=1)
    box_w = (x2 - x1 + 1).clamp(min=1)
    top, bottom = y1.clamp(min=0, max=height), (y2 + 1).clamp(min=0, max=height)
    left, right = x1.clamp(min=0, max=width), (x2 + 1).clamp(min=0, max=width)
    visible_h = (bottom - top).clamp(min=0)
    visible_w = (right - left).clamp(min=0)
    visible_h = torch.where((x2 < x1) | (y2 < y1), torch.zeros_like(visible_h), visible_h)
    box_h = torch.where(visible_h > 0, box_h, torch.zeros_like(box_h))  # zero length: all-zero weights

    # Each mask is computed on a window of its chunk's largest visible size, placed inside the image
    # and covering the visible part of its box; similar sizes share a chunk (sorted by visible area),
    # a chunk holds at most `chunk` masks and WINDOW_PIXELS window pixels (at least one mask).
    order = torch.argsort(visible_h * visible_w, descending=True)
    image_index = torch.arange(n, device=out.device)
    begin = 0
    while begin < n:
        candidates = order[begin:begin + chunk]
        grown_h = torch.cummax(visible_h[candidates], 0).values
        grown_w = torch.cummax(visible_w[candidates], 0).values
        pixels = grown_h * grown_w * torch.arange(1, len(candidates) + 1, device=out.device)
        count = max(1, int((pixels <= WINDOW_PIXELS).sum()))  # pixels is nondecreasing
        idx = candidates[:count]
        begin += count
        win_h, win_w = int(grown_h[count - 1]), int(grown_w[count - 1])
        if win_h == 0 or win_w == 0:
            break  # sorted by area: this chunk and the rest paste nothing
        oy = torch.minimum(top[idx], torch.full_like(top[idx], height - win_h))
        ox = torch.minimum(left[idx], torch.full_like(left[idx], width - win_w))
        rows = bilinear_weights(y1[idx] - oy, box_h[idx], size, win_h)  # [n, win_h, S]
        cols = bilinear_weights(x1[idx] - ox, box_w[idx], size, win_w)  # [n, win_w, S]
        window = torch.bmm(torch.bmm(rows, padded[idx]), cols.transpose(1, 2))  # [n, win_h, win_w]
        # Flat positions in out of each window pixel; one index_copy_ writes the chunk.
        first = (image_index[idx] * height + oy) * width + ox  # [n]
        offsets = (torch.arange(win_h, device=out.device)[:, None] * width
                   + torch.arange(win_w, device=out.device)[None, :])  # [win_h, win_w]
        flat = (first[:, None, None] + offsets[None]).reshape(-1)
        values = window.reshape(-1)
        values = values >= threshold if threshold is not None else values.to(out.dtype)
        out.view(-1).index_copy_(0, flat, values)
    return out
