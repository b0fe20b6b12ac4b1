"""Anchor boxes for every pyramid level (torchvision's ``AnchorGenerator`` math).

For a level with feature map ``Hf x Wf`` inside a padded batch of ``H x W`` pixels, the
level's stride is ``(H // Hf, W // Wf)`` (as torchvision computes it, so a P6 map of a
batch whose side is not a multiple of 64 gets a stride slightly below 64). Anchors sit
at ``(x, y) = (j * stride_w, i * stride_h)`` for every ``anchor_stride``-th cell and
have the base shapes ``round([-w/2, -h/2, w/2, h/2])`` with ``w = scale * sqrt(ratio)``,
``h = scale / sqrt(ratio)`` — ``ratio`` is **width / height** (matterport's meaning;
torchvision's ``aspect_ratios`` are height / width, so torchvision's ``(0.5, 1, 2)`` is
our ``[2, 1, 0.5]``).

Order inside a level: row ``y`` major, then column ``x``, then the ratio index — the
order of the RPN head's flattened outputs ``[B, H, W, A]``. Boxes are ``xyxy`` pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def base_anchors(scale: float, ratios: Sequence[float], dtype: torch.dtype = torch.float32) -> Tensor:
    """Zero-centred anchors ``[len(ratios), 4]`` xyxy for one scale; ``ratios`` are width/height.

    Computed like torchvision (``h_ratio = sqrt(1/ratio)``, ``w_ratio = 1/h_ratio``, rounded) so that
    the values are bit-identical.
    """
    tv_ratios = 1.0 / torch.as_tensor([float(r) for r in ratios], dtype=torch.float64)  # height / width
    tv_ratios = tv_ratios.to(dtype)
    scales = torch.as_tensor([float(scale)], dtype=dtype)
    h_ratios = torch.sqrt(tv_ratios)
    w_ratios = 1 / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).view(-1)
    hs = (h_ratios[:, None] * scales[None, :]).view(-1)
    return (torch.stack([-ws, -hs, ws, hs], dim=1) / 2).round()


class AnchorGenerator(nn.Module):
    """Anchors per pyramid level; no parameters.

    Args:
        scales: one anchor side length (pixels) per level (RPN_ANCHOR_SCALES).
        ratios: width/height ratios, the same for every level (RPN_ANCHOR_RATIOS).
        strides: nominal stride per level (BACKBONE_STRIDES); the actual stride is computed from
            the feature and image sizes like torchvision, these are only used to check the level count.
        anchor_stride: place anchors at every ``anchor_stride``-th feature cell (RPN_ANCHOR_STRIDE);
            the RPN head's conv then has this stride too, so the grids agree.
    """

    def __init__(
        self,
        *,
        scales: Sequence[float],
        ratios: Sequence[float],
        strides: Sequence[int],
        anchor_stride: int = 1,
    ) -> None:
        super().__init__()
        if len(scales) != len(strides):
            raise ValueError(f"scales has {len(scales)} values but strides has {len(strides)}: give one per level")
        if anchor_stride < 1:
            raise ValueError(f"anchor_stride={anchor_stride!r}: must be a positive integer")
        self.scales = [float(s) for s in scales]
        self.ratios = [float(r) for r in ratios]
        self.strides = [int(s) for s in strides]
        self.anchor_stride = int(anchor_stride)
        self._cache: dict[tuple, list[Tensor]] = {}

    @property
    def num_anchors_per_location(self) -> int:
        return len(self.ratios)

    def grid_size(self, feature_shape: Sequence[int]) -> tuple[int, int]:
        """Number of anchor rows and columns on a feature map of ``(Hf, Wf)``."""
        s = self.anchor_stride
        return (-(-int(feature_shape[0]) // s), -(-int(feature_shape[1]) // s))

    def forward(
        self,
        feature_shapes: Sequence[Sequence[int]],
        image_size: Sequence[int],
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> list[Tensor]:
        """Anchors ``[A_l, 4]`` xyxy for each level.

        Args:
            feature_shapes: ``(Hf, Wf)`` of each level, P2 first.
            image_size: ``(H, W)`` of the padded batch tensor.
        """
        if len(feature_shapes) != len(self.scales):
            raise ValueError(f"got {len(feature_shapes)} feature maps for {len(self.scales)} anchor scales")
        device = torch.device(device) if device is not None else torch.device("cpu")
        key = (tuple(tuple(int(v) for v in s[-2:]) for s in feature_shapes), tuple(int(v) for v in image_size),
               device, dtype)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        height, width = int(image_size[0]), int(image_size[1])
        anchors = []
        for (fh, fw), scale in zip(key[0], self.scales):
            stride_h, stride_w = height // fh, width // fw
            step = self.anchor_stride
            shifts_x = torch.arange(0, fw, step, dtype=torch.int32, device=device) * stride_w
            shifts_y = torch.arange(0, fh, step, dtype=torch.int32, device=device) * stride_h
            shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
            shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
            shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
            base = base_anchors(scale, self.ratios, dtype).to(device)
            anchors.append((shifts.view(-1, 1, 4) + base.view(1, -1, 4)).reshape(-1, 4))
        if len(self._cache) > 16:
            self._cache.clear()
        self._cache[key] = anchors
        return anchors
