"""Box utilities: the box coder, clipping, small-box removal, convention converters.

Boxes are ``xyxy`` float tensors in pixels (``x1, y1, x2, y2``), what
``torchvision.ops`` expects. matterport's ``(y1, x1, y2, x2)`` only appears at the
public API edge and is converted with :func:`xyxy_to_yxyx` / :func:`yxyx_to_xyxy`.

Deltas follow the standard R-CNN parametrization (torchvision's ``BoxCoder``):
``dx = wx * (gx - px) / pw``, ``dy = wy * (gy - py) / ph``, ``dw = ww * log(gw / pw)``,
``dh = wh * log(gh / ph)`` with centers ``px = x1 + 0.5 * pw``. The weights
``(wx, wy, ww, wh)`` are the inverse of matterport's ``BBOX_STD_DEV`` given in
``(dy, dx, dh, dw)`` order: see :func:`weights_from_std_dev`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.ops import box_iou  # noqa: F401  (re-exported: IoU of xyxy boxes, [N,M])

BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def weights_from_std_dev(std_dev: Sequence[float]) -> tuple[float, float, float, float]:
    """matterport ``(dy, dx, dh, dw)`` standard deviations → coder weights ``(wx, wy, ww, wh)``.

    >>> weights_from_std_dev([0.1, 0.1, 0.2, 0.2])
    (10.0, 10.0, 5.0, 5.0)
    """
    sy, sx, sh, sw = (float(s) for s in std_dev)
    return (1.0 / sx, 1.0 / sy, 1.0 / sw, 1.0 / sh)


class BoxCoder:
    """Encode boxes as deltas against reference boxes, and decode deltas back.

    Args:
        weights: ``(wx, wy, ww, wh)`` multipliers of the deltas.
        clip: upper bound of ``dw, dh`` (after division by the weights) before ``exp``.
    """

    def __init__(self, *, weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0), clip: float = BBOX_XFORM_CLIP) -> None:
        self.weights = tuple(float(w) for w in weights)
        self.clip = clip

    def encode(self, reference: Tensor, boxes: Tensor) -> Tensor:
        """Deltas ``[N,4]`` (dx, dy, dw, dh) that turn ``reference [N,4]`` into ``boxes [N,4]``."""
        wx, wy, ww, wh = self.weights
        pw = reference[:, 2] - reference[:, 0]
        ph = reference[:, 3] - reference[:, 1]
        px = reference[:, 0] + 0.5 * pw
        py = reference[:, 1] + 0.5 * ph
        gw = boxes[:, 2] - boxes[:, 0]
        gh = boxes[:, 3] - boxes[:, 1]
        gx = boxes[:, 0] + 0.5 * gw
        gy = boxes[:, 1] + 0.5 * gh
        return torch.stack(
            (wx * (gx - px) / pw, wy * (gy - py) / ph, ww * torch.log(gw / pw), wh * torch.log(gh / ph)), dim=1
        )

    def decode(self, deltas: Tensor, reference: Tensor) -> Tensor:
        """Boxes from ``deltas [N, 4*K]`` applied to ``reference [N,4]`` → ``[N, K, 4]`` (K=1 → ``[N,1,4]``)."""
        reference = reference.to(deltas.dtype)
        wx, wy, ww, wh = self.weights
        widths = reference[:, 2] - reference[:, 0]
        heights = reference[:, 3] - reference[:, 1]
        ctr_x = reference[:, 0] + 0.5 * widths
        ctr_y = reference[:, 1] + 0.5 * heights
        # K from the column count and -1 for the rows: with 0 rows (no proposal) neither PyTorch nor an
        # exported ONNX Reshape can infer K from -1, while 0 rows from -1 with K and 4 known is fine in both.
        deltas = deltas.reshape(-1, deltas.shape[-1] // 4, 4)
        dx = deltas[..., 0] / wx
        dy = deltas[..., 1] / wy
        dw = torch.clamp(deltas[..., 2] / ww, max=self.clip)
        dh = torch.clamp(deltas[..., 3] / wh, max=self.clip)
        pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
        pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
        pred_w = torch.exp(dw) * widths[:, None]
        pred_h = torch.exp(dh) * heights[:, None]
        # Written as ctr - 0.5 * w like torchvision, so decoded boxes agree bit for bit.
        half_w = torch.tensor(0.5, dtype=pred_ctr_x.dtype, device=pred_w.device) * pred_w
        half_h = torch.tensor(0.5, dtype=pred_ctr_y.dtype, device=pred_h.device) * pred_h
        return torch.stack(
            (pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h), dim=2
        )


def clip_boxes(boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """Clip ``xyxy`` boxes ``[..., 4]`` to an image of ``size = (height, width)``."""
    height, width = size
    x = boxes[..., 0::2].clamp(min=0, max=width)
    y = boxes[..., 1::2].clamp(min=0, max=height)
    return torch.stack((x, y), dim=-1).reshape(boxes.shape)


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices of boxes ``[N,4]`` whose width and height are both at least ``min_size``."""
    ws = boxes[:, 2] - boxes[:, 0]
    hs = boxes[:, 3] - boxes[:, 1]
    return torch.where((ws >= min_size) & (hs >= min_size))[0]


def xyxy_to_yxyx(boxes):
    """``(x1, y1, x2, y2)`` → matterport's ``(y1, x1, y2, x2)`` (tensor or numpy, last dim 4)."""
    return boxes[..., [1, 0, 3, 2]]


def yxyx_to_xyxy(boxes):
    """matterport's ``(y1, x1, y2, x2)`` → ``(x1, y1, x2, y2)`` (tensor or numpy, last dim 4)."""
    return boxes[..., [1, 0, 3, 2]]
