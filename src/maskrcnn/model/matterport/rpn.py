"""matterport's RPN: the shared 2-way softmax head and the proposal layer (``ProposalLayer``).

``MatterportRPN(...)(features, image_shape)`` → ``(proposals [B, R, 4], losses)``: normalized
y1x1y2x2 proposals, zero-padded to ``R`` (POST_NMS_ROIS_TRAINING / _INFERENCE), as matterport's
``ROI`` layer outputs them:

* head (``build_rpn_model``, one module for every level): ``rpn_conv_shared`` 3×3 → 512 + ReLU,
  ``rpn_class_raw`` 1×1 → ``2A`` logits (bg, fg per anchor ratio), ``rpn_bbox_pred`` 1×1 → ``4A``
  deltas ``(dy, dx, log dh, log dw)``; flattened level by level in row, column, ratio order;
* proposals: foreground softmax scores, deltas × RPN_BBOX_STD_DEV, the ``min(PRE_NMS_LIMIT, A)``
  best anchors over **all** levels (stable order on ties, as ``tf.nn.top_k``), deltas applied,
  clipped to ``[0, 1]``, NMS at RPN_NMS_THRESHOLD, the first ``R`` kept.

Training targets and losses are matterport's (``build_rpn_targets``, ``rpn_class_loss_graph``,
``rpn_bbox_loss_graph``): see :mod:`.targets`.

Probes: ``matterport.anchors``, ``matterport.rpn_class``, ``matterport.rpn_bbox``, ``matterport.proposals``
(matterport's layouts) and, while recording, the generic ``rpn.anchors``, ``rpn.objectness``, ``rpn.deltas``,
``rpn.pre_nms_boxes``, ``rpn.proposals`` in the generic conventions (:mod:`.generic`: xyxy pixels of the
molded image). Like the generic RPN it offers ``anchor_generator``, ``box_coder`` and ``nms_thresh``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import nms

from ..probe import Probed, is_recording, probe
from .detection import top_indices
from .generic import MatterportAnchorGenerator, MatterportBoxCoder, pixel_boxes, record_proposals, record_rpn
from .geometry import apply_box_deltas, pyramid_anchors
from .layers import same_padding
from .targets import rpn_losses, rpn_targets


class MatterportRPNHead(nn.Module):
    """``rpn_model``: ``[P2..P6]`` → ``(logits [B, A, 2], deltas [B, A, 4])`` over all levels.

    Args:
        in_channels: TOP_DOWN_PYRAMID_SIZE; anchors_per_location: len(RPN_ANCHOR_RATIOS);
        anchor_stride: RPN_ANCHOR_STRIDE (the shared conv's stride, TF "same" padding).
    """

    def __init__(self, *, in_channels: int = 256, anchors_per_location: int = 3, anchor_stride: int = 1) -> None:
        super().__init__()
        self.anchor_stride = int(anchor_stride)
        self.rpn_conv_shared = nn.Conv2d(in_channels, 512, 3, stride=self.anchor_stride)
        self.rpn_class_raw = nn.Conv2d(512, 2 * anchors_per_location, 1)
        self.rpn_bbox_pred = nn.Conv2d(512, 4 * anchors_per_location, 1)

    def forward(self, features: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        logits, deltas = [], []
        for x in features:
            top, bottom = same_padding(x.shape[-2], 3, self.anchor_stride)
            left, right = same_padding(x.shape[-1], 3, self.anchor_stride)
            shared = F.relu(self.rpn_conv_shared(F.pad(x, (left, right, top, bottom))))
            b = x.shape[0]
            logits.append(self.rpn_class_raw(shared).permute(0, 2, 3, 1).reshape(b, -1, 2))
            deltas.append(self.rpn_bbox_pred(shared).permute(0, 2, 3, 1).reshape(b, -1, 4))
        return torch.cat(logits, dim=1), torch.cat(deltas, dim=1)


class MatterportRPN(nn.Module, Probed):
    """Head + anchors + proposal layer (+ targets and losses in training).

    Args:
        head: the :class:`MatterportRPNHead`.
        scales, ratios, strides, anchor_stride: RPN_ANCHOR_SCALES, RPN_ANCHOR_RATIOS, BACKBONE_STRIDES,
            RPN_ANCHOR_STRIDE.
        bbox_std_dev: RPN_BBOX_STD_DEV; pre_nms_limit: PRE_NMS_LIMIT (and at inference
            ``pre_nms_limit_inference``); post_nms_rois_training / _inference; nms_threshold: RPN_NMS_THRESHOLD.
        positive_iou, negative_iou, anchors_per_image: RPN_POSITIVE_IOU, RPN_NEGATIVE_IOU,
            RPN_TRAIN_ANCHORS_PER_IMAGE (training targets).
    """

    def __init__(self, *, head: MatterportRPNHead, scales: Sequence[float], ratios: Sequence[float],
                 strides: Sequence[int], anchor_stride: int, bbox_std_dev: Sequence[float], pre_nms_limit: int,
                 pre_nms_limit_inference: int, post_nms_rois_training: int, post_nms_rois_inference: int,
                 nms_threshold: float, positive_iou: float = 0.7, negative_iou: float = 0.3,
                 anchors_per_image: int = 256) -> None:
        super().__init__()
        self.head = head
        self.scales, self.ratios, self.strides = list(scales), list(ratios), list(strides)
        self.anchor_stride = int(anchor_stride)
        self.register_buffer("bbox_std_dev", torch.tensor([float(v) for v in bbox_std_dev]), persistent=False)
        self.pre_nms_limit, self.pre_nms_limit_inference = int(pre_nms_limit), int(pre_nms_limit_inference)
        self.post_nms_rois_training, self.post_nms_rois_inference = int(post_nms_rois_training), int(
            post_nms_rois_inference)
        self.nms_threshold = float(nms_threshold)
        self.positive_iou, self.negative_iou, self.anchors_per_image = positive_iou, negative_iou, anchors_per_image
        self._anchors: dict[tuple, Tensor] = {}
        # The generic RPN's handles (inspect report, show-dataset): pixel anchors and pixel box deltas.
        self.anchor_generator = MatterportAnchorGenerator(scales=scales, ratios=ratios, strides=strides,
                                                          anchor_stride=anchor_stride)
        self.box_coder = MatterportBoxCoder(std_dev=bbox_std_dev)

    @property
    def nms_thresh(self) -> float:
        """RPN_NMS_THRESHOLD (the generic RPN's name)."""
        return self.nms_threshold

    def anchors(self, image_shape: Sequence[int], device: torch.device) -> Tensor:
        """Normalized anchors ``[A, 4]`` y1x1y2x2 of a molded batch of ``image_shape (h, w)`` (cached)."""
        key = (int(image_shape[0]), int(image_shape[1]), str(device))
        if key not in self._anchors:
            if len(self._anchors) > 8:
                self._anchors.clear()
            self._anchors[key] = pyramid_anchors(scales=self.scales, ratios=self.ratios, image_shape=key[:2],
                                                 strides=self.strides, anchor_stride=self.anchor_stride, device=device)
        return self._anchors[key]

    def forward(self, features: Sequence[Tensor], image_shape: Sequence[int],
                targets: list[dict[str, Tensor]] | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """``features``: P2..P6; ``image_shape``: ``(h, w)`` of the molded batch; ``targets`` (training):
        per image ``boxes`` (y1x1y2x2 pixels of the molded image) and ``class_ids`` (negative: crowd)."""
        logits, deltas = self.head(features)
        anchors = self.anchors(image_shape, logits.device)
        probs = torch.softmax(logits, dim=-1)
        self.probe("matterport.anchors", anchors[None])
        self.probe("matterport.rpn_class", probs)
        self.probe("matterport.rpn_bbox", deltas)
        if is_recording():
            record_rpn(anchors, logits, deltas, image_shape)
        training = self.training and targets is not None
        count = self.post_nms_rois_training if training else self.post_nms_rois_inference
        limit = self.pre_nms_limit if training else self.pre_nms_limit_inference
        with torch.no_grad():
            proposals = self.proposals(probs[..., 1].detach(), deltas.detach(), anchors, limit=limit, count=count,
                                       image_shape=image_shape)
        self.probe("matterport.proposals", proposals)
        if is_recording():
            record_proposals(proposals, image_shape)
        losses: dict[str, Tensor] = {}
        if training:
            match, bbox = rpn_targets(anchors, image_shape, targets, positive_iou=self.positive_iou,
                                      negative_iou=self.negative_iou, anchors_per_image=self.anchors_per_image,
                                      std_dev=self.bbox_std_dev)
            losses = rpn_losses(logits, deltas, match, bbox)
        return proposals, losses

    def proposals(self, scores: Tensor, deltas: Tensor, anchors: Tensor, *, limit: int, count: int,
                  image_shape: Sequence[int] | None = None) -> Tensor:
        """``ProposalLayer``: ``scores [B, A]``, ``deltas [B, A, 4]`` → ``[B, count, 4]`` normalized, 0-padded.

        ``image_shape`` (the molded batch's ``(h, w)``): while recording, the boxes entering NMS are
        recorded as ``rpn.pre_nms_boxes`` (per image, xyxy pixels)."""
        out, pre_nms = [], []
        record = image_shape is not None and is_recording()
        limit = min(limit, anchors.shape[0])
        for s, d in zip(scores, deltas):
            order = top_indices(s, limit)
            boxes = apply_box_deltas(anchors[order], d[order] * self.bbox_std_dev)
            boxes = boxes.clamp(0.0, 1.0)
            if record:
                pre_nms.append(pixel_boxes(boxes, image_shape))
            keep = nms(boxes[:, [1, 0, 3, 2]], s[order], self.nms_threshold)[:count]
            kept = boxes[keep]
            out.append(F.pad(kept, (0, 0, 0, count - kept.shape[0])))  # traced with the kept count as data
        if record:
            probe("rpn.pre_nms_boxes", pre_nms)
        return torch.stack(out)
