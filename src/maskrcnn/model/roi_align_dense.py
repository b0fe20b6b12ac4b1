"""RoIAlign as two batched matrix products: the training path for small feature maps on the CPU.

torchvision's CPU ``roi_align`` backward is a scalar loop (one bilinear scatter per sample, per
channel, on one core): on the demo's 64-pixel shapes it took a fifth of a training step. RoIAlign
is separable, so on a small map it is cheaper as dense algebra that autograd differentiates with
matrix products. For a box ``r`` of image ``b`` pooled to ``P × Q`` bins from ``F[b]`` ``[C, H, W]``::

    out[r, c, p, q] = sum_{y, x} Ay[r, p, y] * F[b, c, y, x] * Ax[r, q, x]

where ``Ay[r, p, y]`` is the mean over the bin's ``sampling_ratio`` sample rows of their bilinear
weight on feature row ``y`` — torchvision's sampling points, edge clamping and out-of-map rule
(a sample beyond ``[-1, size]`` counts zero) exactly, axis by axis (torchvision's weight of a sample
is the product of its row and column weights and the bin's mean is over the product grid). The
result equals ``torchvision.ops.roi_align`` up to float rounding (the sums run in another order).

Per image it multiplies the row weights of all the image's boxes by the map ``[H, C*W]`` at once (one
GEMM; the map is not copied per box), then each box's columns (a batched product). Its intermediate
holds ``R × P × C × W`` values, so :func:`dense_is_cheap` limits it to small maps; a fixed
``sampling_ratio`` (> 0) is required (the adaptive grid varies per box).
Boxes are ``[R, 5]`` rows ``(image_index, x1, y1, x2, y2)`` in image pixels, as torchvision's.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: The largest map (H × W) and the largest intermediate (R × C × H × W values, an upper bound of R × P × C × W)
#: the dense path takes.
MAX_MAP_CELLS = 32 * 32
MAX_GATHERED = 1 << 24


def dense_is_cheap(feature: Tensor, rois: Tensor, sampling_ratio: int) -> bool:
    """Whether :func:`roi_align_dense` suits pooling ``rois`` ``[R, 5]`` from ``feature`` ``[B, C, H, W]``."""
    cells = feature.shape[-2] * feature.shape[-1]
    return (sampling_ratio > 0 and cells <= MAX_MAP_CELLS
            and rois.shape[0] * feature.shape[1] * cells <= MAX_GATHERED)


def axis_weights(start: Tensor, length: Tensor, bins: int, grid: int, size: int) -> Tensor:
    """Bilinear weights of each bin on each feature cell along one axis: ``[R, bins, size]``.

    ``start`` / ``length``: ``[R]`` the box's start and extent in feature cells (torchvision's
    ``roi_start`` and ``roi_width`` after the 1-cell minimum); ``grid`` samples per bin.
    """
    bin_size = length / bins
    p = torch.arange(bins, dtype=start.dtype, device=start.device).view(1, -1, 1)
    g = torch.arange(grid, dtype=start.dtype, device=start.device).view(1, 1, -1)
    step = bin_size.view(-1, 1, 1)
    pos = start.view(-1, 1, 1) + p * step + (g + 0.5) * step / grid  # [R, bins, grid]
    valid = ((pos >= -1.0) & (pos <= size)).to(start.dtype)
    pos = pos.clamp(min=0.0)
    low = pos.floor()
    edge = low >= size - 1
    low = torch.where(edge, torch.full_like(low, size - 1), low)
    high = torch.where(edge, low, low + 1)
    pos = torch.where(edge, low, pos)
    frac = pos - low
    cells = torch.arange(size, dtype=start.dtype, device=start.device)
    weights = ((cells == low.unsqueeze(-1)) * ((1.0 - frac) * valid).unsqueeze(-1)
               + (cells == high.unsqueeze(-1)) * (frac * valid).unsqueeze(-1))  # [R, bins, grid, size]
    return weights.sum(dim=2) / grid


def roi_align_dense(feature: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float,
                    sampling_ratio: int, aligned: bool) -> Tensor:
    """``torchvision.ops.roi_align(feature, rois, output_size, spatial_scale, sampling_ratio, aligned)``
    as matrix products (differentiable in ``feature``): ``[R, C, P, Q]``. See the module docstring."""
    if sampling_ratio <= 0:
        raise ValueError("roi_align_dense: needs a fixed sampling_ratio > 0")
    out_h, out_w = int(output_size[0]), int(output_size[1])
    count = rois.shape[0]
    channels, height, width = feature.shape[1:]
    rois = rois.detach().to(feature.dtype)
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (rois[:, k] * spatial_scale - offset for k in range(1, 5))
    roi_w, roi_h = x2 - x1, y2 - y1
    if not aligned:  # torchvision forces malformed boxes to 1x1
        roi_w, roi_h = roi_w.clamp(min=1.0), roi_h.clamp(min=1.0)
    wy = axis_weights(y1, roi_h, out_h, sampling_ratio, height)  # [R, P, H]
    wx = axis_weights(x1, roi_w, out_w, sampling_ratio, width)  # [R, Q, W]
    batch = rois[:, 0].long()
    ordered = bool((batch[1:] >= batch[:-1]).all())  # boxes come image by image: no reordering needed
    order = torch.arange(count, device=batch.device) if ordered else torch.argsort(batch, stable=True)
    counts = torch.bincount(batch, minlength=feature.shape[0]).tolist()
    pieces = []
    # Per image, one matrix product over the rows of all its boxes ([Rb*P, H] @ [H, C*W]), then one
    # batched product over each box's columns: the map is read once per image, not gathered once per box.
    for image, index in zip(feature.unbind(0), torch.split(order, counts)):
        boxes = index.numel()
        if boxes == 0:
            continue
        rows = wy[index].reshape(boxes * out_h, height) @ image.transpose(0, 1).reshape(height, channels * width)
        pieces.append(torch.bmm(rows.view(boxes, out_h * channels, width), wx[index].transpose(1, 2)))  # [Rb, P*C, Q]
    if not pieces:
        return feature.new_zeros((count, channels, out_h, out_w))
    out = torch.cat(pieces)
    if not ordered:
        out = out.index_select(0, torch.argsort(order))
    return out.view(count, out_h, channels, out_w).transpose(1, 2).contiguous()
