"""matterport's box geometry: normalized ``(y1, x1, y2, x2)`` boxes, anchors, deltas, resizing.

matterport's network sees boxes in **normalized** coordinates of the molded image of ``h × w``
pixels (``utils.norm_boxes``): ``(y1/(h-1), x1/(w-1), (y2-1)/(h-1), (x2-1)/(w-1))`` for pixel
boxes whose ``(y2, x2)`` lie outside the box. Deltas are ``(dy, dx, log dh, log dw)`` of box
centres and sizes in those units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def norm_boxes(boxes: Tensor, shape: Sequence[int]) -> Tensor:
    """Pixel ``(y1, x1, y2, x2)`` ``[..., 4]`` → normalized (matterport's ``norm_boxes``), float32."""
    h, w = float(shape[0]), float(shape[1])
    scale = torch.tensor([h - 1, w - 1, h - 1, w - 1], dtype=torch.float64, device=boxes.device)
    shift = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64, device=boxes.device)
    return ((boxes.double() - shift) / scale).float()


def denorm_boxes(boxes: Tensor, shape: Sequence[int]) -> Tensor:
    """Normalized ``[..., 4]`` → integer pixel ``(y1, x1, y2, x2)`` (``np.around``: half to even), int64."""
    h, w = float(shape[0]), float(shape[1])
    scale = torch.tensor([h - 1, w - 1, h - 1, w - 1], dtype=torch.float64, device=boxes.device)
    shift = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64, device=boxes.device)
    return torch.round(boxes.double() * scale + shift).long()


def apply_box_deltas(boxes: Tensor, deltas: Tensor) -> Tensor:
    """``apply_box_deltas_graph``: ``boxes [N,4]`` y1x1y2x2 refined by ``deltas [N,4]`` (dy, dx, log dh, log dw)."""
    height = boxes[:, 2] - boxes[:, 0]
    width = boxes[:, 3] - boxes[:, 1]
    center_y = boxes[:, 0] + 0.5 * height
    center_x = boxes[:, 1] + 0.5 * width
    center_y = center_y + deltas[:, 0] * height
    center_x = center_x + deltas[:, 1] * width
    height = height * torch.exp(deltas[:, 2])
    width = width * torch.exp(deltas[:, 3])
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return torch.stack([y1, x1, y1 + height, x1 + width], dim=1)


def box_refinement(boxes: Tensor, gt_boxes: Tensor) -> Tensor:
    """``box_refinement_graph``: the deltas ``[N,4]`` that take ``boxes`` to ``gt_boxes`` (both y1x1y2x2)."""
    height = boxes[:, 2] - boxes[:, 0]
    width = boxes[:, 3] - boxes[:, 1]
    center_y = boxes[:, 0] + 0.5 * height
    center_x = boxes[:, 1] + 0.5 * width
    gt_height = gt_boxes[:, 2] - gt_boxes[:, 0]
    gt_width = gt_boxes[:, 3] - gt_boxes[:, 1]
    gt_center_y = gt_boxes[:, 0] + 0.5 * gt_height
    gt_center_x = gt_boxes[:, 1] + 0.5 * gt_width
    return torch.stack([(gt_center_y - center_y) / height, (gt_center_x - center_x) / width,
                        torch.log(gt_height / height), torch.log(gt_width / width)], dim=1)


def clip_boxes(boxes: Tensor, window: Tensor) -> Tensor:
    """``clip_boxes_graph``: clip y1x1y2x2 ``boxes [N,4]`` into ``window [4]`` (same units)."""
    wy1, wx1, wy2, wx2 = window.unbind(0)
    y1 = torch.maximum(torch.minimum(boxes[:, 0], wy2), wy1)
    x1 = torch.maximum(torch.minimum(boxes[:, 1], wx2), wx1)
    y2 = torch.maximum(torch.minimum(boxes[:, 2], wy2), wy1)
    x2 = torch.maximum(torch.minimum(boxes[:, 3], wx2), wx1)
    return torch.stack([y1, x1, y2, x2], dim=1)


def backbone_shapes(image_shape: Sequence[int], strides: Sequence[int]) -> list[tuple[int, int]]:
    """``compute_backbone_shapes``: ``(ceil(h/s), ceil(w/s))`` per level."""
    return [(math.ceil(image_shape[0] / s), math.ceil(image_shape[1] / s)) for s in strides]


def pyramid_anchors(*, scales: Sequence[float], ratios: Sequence[float], image_shape: Sequence[int],
                    strides: Sequence[int], anchor_stride: int, device: torch.device | str | None = None) -> Tensor:
    """``generate_pyramid_anchors`` then ``norm_boxes``: ``[A, 4]`` normalized y1x1y2x2, float32.

    Per level (one scale each), anchors sit at ``(i * stride, j * stride)`` pixels (every
    ``anchor_stride``-th cell), order row, column, ratio; ``height = scale / sqrt(ratio)``,
    ``width = scale * sqrt(ratio)`` (ratio = width / height), not rounded. Computed in float64 as numpy does.
    """
    levels = []
    for (fh, fw), scale, stride in zip(backbone_shapes(image_shape, strides), scales, strides):
        ratio = torch.tensor([float(r) for r in ratios], dtype=torch.float64)
        heights = float(scale) / torch.sqrt(ratio)
        widths = float(scale) * torch.sqrt(ratio)
        ys = torch.arange(0, fh, anchor_stride, dtype=torch.float64) * stride
        xs = torch.arange(0, fw, anchor_stride, dtype=torch.float64) * stride
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")
        cy, cx = cy.reshape(-1, 1), cx.reshape(-1, 1)
        boxes = torch.stack([cy - 0.5 * heights, cx - 0.5 * widths, cy + 0.5 * heights, cx + 0.5 * widths], dim=2)
        levels.append(boxes.reshape(-1, 4))
    anchors = torch.cat(levels)
    h, w = float(image_shape[0]), float(image_shape[1])
    normalized = (anchors - torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64)) / torch.tensor(
        [h - 1, w - 1, h - 1, w - 1], dtype=torch.float64)
    return normalized.float().to(device)


def _axis(n_in: int, n_out: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Linear interpolation along one axis as ``scipy.ndimage.zoom(grid_mode=True, mode="grid-constant")``:
    indices into the axis **padded with one zero on each side**, and the weight of the second one."""
    x = (torch.arange(n_out, dtype=torch.float64, device=device) + 0.5) * (n_in / n_out) - 0.5
    x = x + 1.0  # position in the padded axis
    i0 = torch.floor(x).long().clamp(0, n_in + 1)
    i1 = (i0 + 1).clamp(max=n_in + 1)
    return i0, i1, x - i0


def resize_linear(x: Tensor, size: Sequence[int], *, clip: bool = True) -> Tensor:
    """matterport's ``utils.resize`` (skimage ``resize``, ``order=1, mode="constant", cval=0, clip=True,
    anti_aliasing=False``) on the last two axes of ``x [..., H, W]`` → ``[..., h, w]``, float64.

    Output pixel centres map to ``(i + 0.5) * H / h - 0.5``; linear interpolation in which the pixels
    beyond the border are 0 (scipy's ``"grid-constant"``, so border values are pulled toward 0); then
    clipped to ``[x.min(), x.max()]``, except exact zeros when 0 lies outside that range (skimage's clip).
    """
    h, w = int(size[0]), int(size[1])
    x = x.double()
    lo, hi = x.min(), x.max()
    padded = F.pad(x, (1, 1, 1, 1))
    i0, i1, wy = _axis(x.shape[-2], h, x.device)
    j0, j1, wx = _axis(x.shape[-1], w, x.device)
    wy0, wy1, wx0, wx1 = (1 - wy)[:, None], wy[:, None], 1 - wx, wx
    rows0, rows1 = padded[..., i0, :], padded[..., i1, :]
    # scipy's order-1 sum, term by term in its order ((value * w_y) * w_x, then accumulated), so that
    # values that truncate to uint8 afterwards (28.999999999999996 vs 29.0) come out bit for bit the same.
    out = rows0[..., j0] * wy0 * wx0
    out = out + rows0[..., j1] * wy0 * wx1
    out = out + rows1[..., j0] * wy1 * wx0
    out = out + rows1[..., j1] * wy1 * wx1
    if clip:
        keep_zero = (out == 0) & ~((lo <= 0) & (0 <= hi))
        out = torch.where(keep_zero, out, out.clamp(lo, hi))
    return out
