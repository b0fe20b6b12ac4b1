"""matterport's ``PyramidROIAlign``: TensorFlow's ``crop_and_resize`` on the level of each ROI.

* :func:`crop_and_resize` samples ``size`` points spaced evenly **from edge to edge** of each
  normalized box (``y = y1 (H-1) + i (y2-y1)(H-1)/(h-1)``), bilinearly; points outside the map
  give 0 (``extrapolation_value``). This is not torchvision's ``roi_align`` (bin averages).
* level of a box of normalized size ``h × w`` in a molded image of area ``S``:
  ``min(5, max(2, 4 + round(log2(sqrt(h w) / (224 / sqrt(S))))))`` (round half to even, as ``tf.round``).

While tracing (ONNX export, one image) no control flow depends on the data: every ROI is pooled at
every level and each keeps its own level's crop (:func:`_exporting`); the values are the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..probe import Probed


def crop_and_resize(image: Tensor, boxes: Tensor, box_indices: Tensor, size: Sequence[int]) -> Tensor:
    """``tf.image.crop_and_resize(method="bilinear")`` on NCHW.

    Args:
        image: ``[N, C, H, W]``.
        boxes: ``[K, 4]`` normalized y1x1y2x2 (coordinates may lie outside ``[0, 1]``).
        box_indices: ``[K]`` int64, the image of each box.
        size: ``(h, w)`` of the crops.

    Returns:
        ``[K, C, h, w]``.
    """
    n, c, height, width = image.shape
    ch, cw = int(size[0]), int(size[1])
    k = boxes.shape[0]
    if k == 0 and not _exporting():
        return image.new_zeros((0, c, ch, cw))
    boxes = boxes.to(image.dtype)
    y1, x1, y2, x2 = boxes.unbind(1)
    ys = _points(y1, y2, height, ch)
    xs = _points(x1, x2, width, cw)
    valid = ((ys >= 0) & (ys <= height - 1))[:, :, None] & ((xs >= 0) & (xs <= width - 1))[:, None, :]
    # Bilinear sampling at exactly these points: grid_sample with align_corners=True maps -1..1 to
    # pixel 0..size-1; a point outside is set to 0 below, as TensorFlow's extrapolation_value.
    gy = ys * (2.0 / (height - 1)) - 1.0 if height > 1 else torch.zeros_like(ys)
    gx = xs * (2.0 / (width - 1)) - 1.0 if width > 1 else torch.zeros_like(xs)
    if _exporting():  # one image, every box on it: no loop over the data's image indices
        if n != 1:
            raise ValueError(f"crop_and_resize: a traced graph takes one image, got a batch of {n}")
        return _sample(image, gy, gx) * valid[:, None].to(image.dtype)
    out = image.new_empty((k, c, ch, cw))
    for n in torch.unique(box_indices).tolist():
        sel = torch.nonzero(box_indices == n).flatten()
        out[sel] = _sample(image[n:n + 1], gy[sel], gx[sel])
    return out * valid[:, None].to(out.dtype)


def _sample(image: Tensor, gy: Tensor, gx: Tensor) -> Tensor:
    """``image [1, C, H, W]`` sampled bilinearly at the points ``gy [K, h]`` × ``gx [K, w]`` → ``[K, C, h, w]``."""
    c, k, ch, cw = image.shape[1], gy.shape[0], gy.shape[1], gx.shape[1]
    grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
    sampled = F.grid_sample(image, grid.reshape(1, -1, cw, 2).to(image.dtype), mode="bilinear",
                            padding_mode="zeros", align_corners=True)
    return sampled.reshape(c, k, ch, cw).permute(1, 0, 2, 3)


def _exporting() -> bool:
    """Whether the computation is being traced (``torch.onnx.export``): data-dependent branches are off."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def _points(start: Tensor, end: Tensor, extent: int, count: int) -> Tensor:
    """Sample coordinates ``[K, count]`` along one axis (TensorFlow's arithmetic, in the boxes' dtype)."""
    if count > 1:
        scale = (end - start) * (extent - 1) / (count - 1)
        steps = torch.arange(count, dtype=start.dtype, device=start.device)
        return start[:, None] * (extent - 1) + steps[None, :] * scale[:, None]
    return (0.5 * (start + end) * (extent - 1))[:, None]


def roi_levels(boxes: Tensor, image_shape: Sequence[int]) -> Tensor:
    """The pyramid level (2..5) of each normalized box ``[..., 4]`` (see the module docstring), int64."""
    h = boxes[..., 2] - boxes[..., 0]
    w = boxes[..., 3] - boxes[..., 1]
    area = torch.tensor(float(image_shape[0] * image_shape[1]), dtype=torch.float32, device=boxes.device)
    x = torch.sqrt(h * w) / (224.0 / torch.sqrt(area))
    level = torch.log(x) / torch.log(torch.tensor(2.0, device=boxes.device))
    return (4 + torch.round(level)).clamp(2, 5).long()


class MatterportPyramidRoIAlign(torch.nn.Module, Probed):
    """``PyramidROIAlign(pool_shape)``: ``features`` P2..P5 (P6 unused), ``rois [B, R, 4]`` → ``[B*R, C, h, w]``.

    Args:
        output_size: ``(h, w)`` of the pooled maps (POOL_SIZE or MASK_POOL_SIZE).
    """

    def __init__(self, *, output_size: int | Sequence[int]) -> None:
        super().__init__()
        self.output_size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)

    def forward(self, features: Sequence[Tensor], rois: Tensor, image_shape: Sequence[int]) -> Tensor:
        b, r = rois.shape[:2]
        flat = rois.reshape(-1, 4)
        batch = torch.arange(b, device=rois.device).repeat_interleave(r)
        levels = roi_levels(flat, image_shape)
        c = features[0].shape[1]
        if _exporting():  # every ROI at every level, each keeps its own level's crop (one image)
            out = None
            for level in range(2, 6):
                pooled = crop_and_resize(features[level - 2], flat.detach(), batch, self.output_size)
                out = pooled if out is None else torch.where((levels == level)[:, None, None, None], pooled, out)
            return out
        out = flat.new_zeros((flat.shape[0], c, *self.output_size), dtype=features[0].dtype)
        for level in range(2, 6):
            idx = torch.nonzero(levels == level).flatten()
            if idx.numel():
                out[idx] = crop_and_resize(features[level - 2], flat[idx].detach(), batch[idx], self.output_size)
        return out
