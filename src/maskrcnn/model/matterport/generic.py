"""matterport's stages seen in the generic conventions: the probes and handles the torchvision stages offer.

The inspect report and ``show-dataset`` read the generic probes (``rpn.*``, ``roi.*``, ``mask.*``, see
:mod:`..rpn` and :mod:`..roi_heads`) and the RPN's ``anchor_generator``, ``box_coder`` and ``nms_thresh``.
matterport's stages record the same names, converted here from matterport's normalized
``(y1, x1, y2, x2)`` (their own ``matterport.*`` probes keep matterport's layouts). The conversions run
only while a recording is active (:func:`..probe.is_recording`); the stages' computation is unchanged.

Generic conventions:

* boxes: ``xyxy`` float32 pixels of the **molded** image (the network's input tensor, centred padding
  included): :func:`pixel_boxes`, matterport's ``denorm_boxes`` without the rounding;
* ``rpn.objectness``: the foreground logit minus the background logit, so that its sigmoid is
  matterport's foreground softmax;
* deltas: ``(dx, dy, dw, dh)`` in the coder's units (matterport's ``(dy, dx, log dh, log dw)``
  reordered, before the multiplication by the std-devs), decoded by :class:`MatterportBoxCoder`;
* per image lists where the torchvision stages give lists; rows of the ROI stage per image are the
  proposals before matterport's zero padding (:func:`trimmed_count`, matterport's ``trim_zeros``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ..anchors import AnchorGenerator
from ..boxes import BoxCoder, weights_from_std_dev
from ..probe import probe
from .geometry import apply_box_deltas, backbone_shapes, clip_boxes, pyramid_anchors

__all__ = ["MatterportAnchorGenerator", "MatterportBoxCoder", "pixel_boxes", "trimmed_count"]


def pixel_boxes(boxes: Tensor, shape: Sequence[int]) -> Tensor:
    """Normalized ``(y1, x1, y2, x2)`` ``[..., 4]`` of an ``h × w`` molded image → ``xyxy`` float32 pixels
    (``y * (h - 1)``, ``y2 * (h - 1) + 1``: matterport's ``denorm_boxes`` in float64, not rounded)."""
    h, w = float(shape[0]), float(shape[1])
    scale = torch.tensor([h - 1, w - 1, h - 1, w - 1], dtype=torch.float64, device=boxes.device)
    shift = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64, device=boxes.device)
    return (boxes.double() * scale + shift).float()[..., [1, 0, 3, 2]]


def trimmed_count(boxes: Tensor) -> int:
    """Rows of ``boxes [R, 4]`` before the trailing all-zero rows (matterport's zero padding)."""
    nonzero = torch.nonzero((boxes != 0).any(dim=1)).flatten()
    return int(nonzero[-1]) + 1 if nonzero.numel() else 0


class MatterportBoxCoder(BoxCoder):
    """matterport's box deltas on ``xyxy`` pixel boxes, with the :class:`~..boxes.BoxCoder` interface.

    matterport applies ``(dy, dx, log dh, log dw)`` to normalized boxes whose ``y2`` is ``(y2 - 1) / (h - 1)``:
    in pixels a box is ``w = x2 - x1 - 1`` wide (the image size cancels). Deltas here are ``(dx, dy, dw, dh)``
    multiplied by ``weights = 1 / std-dev`` (:func:`~..boxes.weights_from_std_dev`); no clamp of ``dw, dh``
    (matterport has none).

    Args:
        std_dev: RPN_BBOX_STD_DEV or BBOX_STD_DEV, matterport's ``(dy, dx, dh, dw)`` order.
    """

    def __init__(self, *, std_dev: Sequence[float]) -> None:
        super().__init__(weights=weights_from_std_dev(std_dev), clip=math.inf)

    def encode(self, reference: Tensor, boxes: Tensor) -> Tensor:
        """Deltas ``[N, 4]`` (dx, dy, dw, dh) × weights that take ``reference [N, 4]`` to ``boxes [N, 4]``."""
        wx, wy, ww, wh = self.weights
        pw, ph = reference[:, 2] - reference[:, 0] - 1, reference[:, 3] - reference[:, 1] - 1
        px, py = reference[:, 0] + 0.5 * pw, reference[:, 1] + 0.5 * ph
        gw, gh = boxes[:, 2] - boxes[:, 0] - 1, boxes[:, 3] - boxes[:, 1] - 1
        gx, gy = boxes[:, 0] + 0.5 * gw, boxes[:, 1] + 0.5 * gh
        return torch.stack((wx * (gx - px) / pw, wy * (gy - py) / ph, ww * torch.log(gw / pw),
                            wh * torch.log(gh / ph)), dim=1)

    def decode(self, deltas: Tensor, reference: Tensor) -> Tensor:
        """Boxes ``[N, K, 4]`` xyxy from ``deltas [N, 4K]`` applied to ``reference [N, 4]`` (matterport's
        ``apply_box_deltas`` in pixels: ``y1 = cy - h / 2``, ``y2 = y1 + h + 1``)."""
        reference = reference.to(deltas.dtype)
        wx, wy, ww, wh = self.weights
        widths = (reference[:, 2] - reference[:, 0] - 1)[:, None]
        heights = (reference[:, 3] - reference[:, 1] - 1)[:, None]
        ctr_x = reference[:, 0, None] + 0.5 * widths
        ctr_y = reference[:, 1, None] + 0.5 * heights
        deltas = deltas.reshape(-1, deltas.shape[-1] // 4, 4)
        ctr_x = ctr_x + deltas[..., 0] / wx * widths
        ctr_y = ctr_y + deltas[..., 1] / wy * heights
        width = widths * torch.exp(deltas[..., 2] / ww)
        height = heights * torch.exp(deltas[..., 3] / wh)
        x1, y1 = ctr_x - 0.5 * width, ctr_y - 0.5 * height
        return torch.stack((x1, y1, x1 + width + 1, y1 + height + 1), dim=2)


class MatterportAnchorGenerator(AnchorGenerator):
    """matterport's anchors (``generate_pyramid_anchors``) with the :class:`~..anchors.AnchorGenerator` interface.

    ``generator(feature_shapes, image_size)`` → per level ``[A_l, 4]`` xyxy pixels of the molded image:
    :func:`pixel_boxes` of :func:`.geometry.pyramid_anchors` (the very anchors the RPN uses, denormalized).
    The levels' grids come from ``image_size`` (``ceil(size / stride)``, as matterport); ``feature_shapes``
    only give the level count. No parameters or buffers (nothing in the state dict).
    """

    def forward(self, feature_shapes: Sequence[Sequence[int]], image_size: Sequence[int],
                device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> list[Tensor]:
        if len(feature_shapes) != len(self.scales):
            raise ValueError(f"got {len(feature_shapes)} feature maps for {len(self.scales)} anchor scales")
        shape = (int(image_size[0]), int(image_size[1]))
        normalized = pyramid_anchors(scales=self.scales, ratios=self.ratios, image_shape=shape, strides=self.strides,
                                     anchor_stride=self.anchor_stride, device=device)
        counts = [math.prod(self.grid_size(s)) * self.num_anchors_per_location
                  for s in backbone_shapes(shape, self.strides)]
        return list(pixel_boxes(normalized, shape).to(dtype).split(counts))


# ---------------------------------------------------------------------------- the generic probes
def record_rpn(anchors: Tensor, logits: Tensor, deltas: Tensor, image_shape: Sequence[int]) -> None:
    """``rpn.anchors [A, 4]``, ``rpn.objectness [B, A]`` (fg - bg logit), ``rpn.deltas [B, A, 4]`` (dx, dy, dw, dh)."""
    probe("rpn.anchors", pixel_boxes(anchors, image_shape))
    probe("rpn.objectness", logits[..., 1] - logits[..., 0])
    probe("rpn.deltas", deltas[..., [1, 0, 3, 2]])


def record_proposals(proposals: Tensor, image_shape: Sequence[int]) -> None:
    """``rpn.proposals``: per image ``[K_i, 4]`` xyxy pixels, matterport's zero padding removed."""
    probe("rpn.proposals", [pixel_boxes(p[: trimmed_count(p)], image_shape) for p in proposals])


def record_roi(proposals: Tensor, logits: Tensor, deltas: Tensor, detections: Tensor, windows: Tensor,
               image_shape: Sequence[int], std_dev: Tensor) -> list[int]:
    """``roi.class_logits [sumK, C]``, ``roi.box_deltas [sumK, 4C]`` (dx, dy, dw, dh per class),
    ``roi.refined_boxes [sumK, C, 4]`` (every class's box, clipped to the window as the detection layer
    clips), ``roi.detections`` (per image ``boxes``, ``labels``, ``scores`` up to the first of class 0).

    Returns the detections kept per image (for :func:`record_masks`)."""
    counts = [trimmed_count(p) for p in proposals]
    num_classes = logits.shape[-1]
    probe("roi.class_logits", torch.cat([lg[:k] for lg, k in zip(logits, counts)]))
    probe("roi.box_deltas", torch.cat([d[:k, :, [1, 0, 3, 2]].reshape(k, -1) for d, k in zip(deltas, counts)]))
    refined = []
    for rois, d, window, k in zip(proposals, deltas, windows, counts):
        boxes = apply_box_deltas(rois[:k].repeat_interleave(num_classes, dim=0), d[:k].reshape(-1, 4) * std_dev)
        refined.append(pixel_boxes(clip_boxes(boxes, window), image_shape).reshape(k, num_classes, 4))
    probe("roi.refined_boxes", torch.cat(refined))
    kept, per_image = [], []
    for det in detections:
        zero = torch.nonzero(det[:, 4] == 0).flatten()
        n = int(zero[0]) if zero.numel() else det.shape[0]
        kept.append(n)
        per_image.append({"boxes": pixel_boxes(det[:n, :4], image_shape), "labels": det[:n, 4].long(),
                          "scores": det[:n, 5]})
    probe("roi.detections", per_image)
    return kept


def record_masks(mask_logits: Tensor, detections: Tensor, kept: Sequence[int]) -> None:
    """``mask.logits [sumN, C, M, M]`` and ``mask.probs [sumN, M, M]`` (sigmoid of the detected class's
    channel) of the detections :func:`record_roi` kept; ``mask_logits [B, D, C, M, M]``."""
    logits = torch.cat([m[:n] for m, n in zip(mask_logits, kept)])
    labels = torch.cat([d[:n, 4].long() for d, n in zip(detections, kept)])
    probe("mask.logits", logits)
    probe("mask.probs", logits[torch.arange(labels.shape[0], device=labels.device), labels].sigmoid())
