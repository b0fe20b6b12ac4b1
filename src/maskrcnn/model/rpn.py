"""Region proposal network: the head, the proposal layer and the RPN losses.

``RPN.forward(batch_size_hw, image_sizes, features, targets)`` returns ``(proposals, losses)``:
``proposals`` is a list (one per image) of ``[K_i, 4]`` xyxy boxes in resized-image
pixels, detached (as torchvision: no gradient flows from the ROI heads into the RPN's
box regression); ``losses`` is ``{"rpn_class_loss", "rpn_bbox_loss"}`` in training, else
``{}``.

Proposal layer, ``per_level_nms=True`` (torchvision): on each level keep the top
``pre_nms_top_n`` anchors by objectness logit, decode their deltas, sigmoid, clip to
the image, drop boxes smaller than ``min_size``, drop scores below ``score_thresh``,
NMS per level (``batched_nms`` with the level as the group), keep the first
``post_nms_top_n``. ``per_level_nms=False`` (matterport): one top-k over all levels
together, then the same steps with one NMS over all levels.

Training on the CPU computes the losses from the **sampled anchors only** (``sampled_head_grad``;
by default on the CPU, where it was measured to pay): the dense head runs without an autograd graph (its outputs feed the proposal
layer, which is detached anyway), and the head is evaluated again, with gradients, at the
``batch_size_per_image`` sampled anchors of each image (:meth:`RPNHead.predict_at`: the 3x3
conv as a matrix product on the gathered patches). The losses and every gradient are those of
the dense head (the loss ignores the other anchors, so their gradient is exactly zero); the
dense 3x3 conv's backward over every pyramid position, about a fifth of a ResNet-50-FPN training
step's arithmetic, is skipped, and its activations are not kept. On CUDA that backward takes a few
milliseconds while the gather's host synchronizations and scattered gradient cost more (RPN
forward 1.42× and step 1.28× torchvision's on an H200, against 0.96× and 1.09× dense), so there
the dense head is the default.

Recorded intermediates: ``rpn.anchors`` ([A,4], levels concatenated), ``rpn.objectness``
(logits [B,A]), ``rpn.deltas`` ([B,A,4]), ``rpn.pre_nms_boxes`` (per image, the boxes that
enter NMS), ``rpn.proposals`` (per image).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, nms

from .anchors import AnchorGenerator
from .boxes import BoxCoder, clip_boxes, remove_small_boxes
from .probe import Probed


class RPNHead(nn.Module):
    """3x3 conv + ReLU shared over levels, then 1x1 ``cls_logits`` (A) and 1x1 ``bbox_pred`` (4A).

    ``forward(features: list[[B,C,H,W]]) -> (logits: list[[B,A,H',W']], deltas: list[[B,4A,H',W']])``
    where ``H' = ceil(H / anchor_stride)``. Weights ~ N(0, 0.01), biases 0 (torchvision).
    """

    def __init__(self, *, in_channels: int, num_anchors: int, anchor_stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, kernel_size=3, stride=anchor_stride, padding=1)
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, kernel_size=1)
        self.bbox_pred = nn.Conv2d(in_channels, num_anchors * 4, kernel_size=1)
        for layer in (self.conv, self.cls_logits, self.bbox_pred):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.constant_(layer.bias, 0)

    def forward(self, features: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        logits, deltas = [], []
        for feature in features:
            t = torch.relu(self.conv(feature))
            logits.append(self.cls_logits(t))
            deltas.append(self.bbox_pred(t))
        return logits, deltas

    def predict_at(self, features: Sequence[Tensor], where: AnchorIndex) -> tuple[Tensor, Tensor]:
        """The head's outputs at ``K`` chosen anchors: ``(logits [K], deltas [K,4])``, differentiable.

        The same numbers as ``forward`` at those anchors (up to float summation order): the 3x3
        conv's input patch of each anchor's position is gathered from its level (zeros outside
        the map, as the conv's padding) and multiplied by the conv weight as a ``[K, C*9]`` matrix.
        The gradient reaches ``features`` and the weights through these ``K`` positions only.
        """
        conv = self.conv
        out_channels = conv.out_channels
        kh, kw = conv.kernel_size
        (sh, sw), (ph, pw) = conv.stride, conv.padding
        weight = conv.weight.reshape(out_channels, -1)  # [C_out, C_in*kh*kw], (c, ky, kx) order
        num_anchors = self.cls_logits.out_channels
        cls_w = self.cls_logits.weight.reshape(num_anchors, out_channels)
        box_w = self.bbox_pred.weight.reshape(num_anchors, 4, out_channels)
        box_b = self.bbox_pred.bias.reshape(num_anchors, 4)
        logits, deltas, order = [], [], []
        for level, feature in enumerate(features):
            sel = torch.where(where.level == level)[0]
            if sel.numel() == 0:
                continue
            b, y, x, a = where.image[sel], where.y[sel], where.x[sel], where.anchor[sel]
            h, w = feature.shape[-2:]
            rows = y[:, None] * sh - ph + torch.arange(kh, device=y.device)  # [k, kh]
            cols = x[:, None] * sw - pw + torch.arange(kw, device=x.device)  # [k, kw]
            inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
            # advanced indices around a slice: the result is [k, kh, kw, C]
            patch = feature[b[:, None, None], :, rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]]
            patch = patch * inside[..., None].to(patch.dtype)
            patch = patch.permute(0, 3, 1, 2).reshape(sel.numel(), -1)
            hidden = torch.relu(F.linear(patch, weight, conv.bias))  # [k, C_out]
            logits.append((hidden * cls_w[a]).sum(1) + self.cls_logits.bias[a])
            deltas.append(torch.einsum("kc,kjc->kj", hidden, box_w[a].to(hidden.dtype)) + box_b[a])
            order.append(sel)
        if not order:
            empty = features[0].new_zeros((0,))
            return empty, empty.reshape(0, 4)
        inverse = torch.empty_like(where.level)
        inverse[torch.cat(order)] = torch.arange(where.level.numel(), device=where.level.device)
        return torch.cat(logits)[inverse], torch.cat(deltas)[inverse]


class AnchorIndex(NamedTuple):
    """Where anchors are in the head's output: per anchor its image, level, row, column and anchor
    index at that position (int64 ``[K]`` each)."""

    image: Tensor
    level: Tensor
    y: Tensor
    x: Tensor
    anchor: Tensor

    @classmethod
    def from_flat(cls, flat: Tensor, shapes: Sequence[tuple[int, int]], num_anchors: int) -> AnchorIndex:
        """Decode indices into the ``[B * A_total]`` flattening of :func:`flatten_predictions`.

        ``shapes``: ``(H', W')`` of each level's head output; ``num_anchors``: anchors per position.
        """
        per_level = [h * w * num_anchors for h, w in shapes]
        counts = torch.tensor(per_level, device=flat.device)
        ends = counts.cumsum(0)
        total = sum(per_level)  # a Python int: no device round trip
        image, within = flat // total, flat % total
        level = torch.bucketize(within, ends, right=True)
        within = within - (ends - counts)[level]
        widths = torch.tensor([w for _h, w in shapes], device=flat.device)[level]
        position, anchor = within // num_anchors, within % num_anchors
        return cls(image, level, position // widths, position % widths, anchor)


def flatten_predictions(logits: Sequence[Tensor], deltas: Sequence[Tensor]) -> tuple[Tensor, Tensor, list[int]]:
    """Per-level head outputs → ``objectness [B, A_total]``, ``deltas [B, A_total, 4]``, anchors per level.

    Order within a level is (y, x, anchor), matching :class:`AnchorGenerator`.
    """
    flat_logits, flat_deltas, counts = [], [], []
    for logit, delta in zip(logits, deltas):
        b, a, h, w = logit.shape
        flat_logits.append(logit.permute(0, 2, 3, 1).reshape(b, -1))
        flat_deltas.append(delta.view(b, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(b, -1, 4))
        counts.append(a * h * w)
    return torch.cat(flat_logits, dim=1), torch.cat(flat_deltas, dim=1), counts


class RPN(nn.Module, Probed):
    """Region proposal network (head + anchors + proposal layer + training targets/losses).

    Args:
        head: an :class:`RPNHead`.
        anchor_generator: an :class:`AnchorGenerator` with as many anchors per location as the head.
        box_coder_weights: ``(wx, wy, ww, wh)``; torchvision (1, 1, 1, 1), matterport 1/RPN_BBOX_STD_DEV.
        pre_nms_top_n_train, pre_nms_top_n_test: anchors kept before NMS (per level if ``per_level_nms``).
        post_nms_top_n_train, post_nms_top_n_test: proposals kept after NMS, per image.
        nms_thresh: IoU threshold of the NMS.
        per_level_nms: torchvision's per-level top-k + NMS (True) or matterport's global one (False).
        min_size: proposals with a side below this (pixels) are dropped.
        score_thresh: proposals with an objectness probability below this are dropped.
        sampled_head_grad: in training with gradients, compute the losses from the head evaluated at the
            sampled anchors only (same losses and gradients, the dense head's backward skipped); ``None``
            (default): when the features are on the CPU.
        fg_iou, bg_iou: anchor IoU for positives / below which negatives (training).
        batch_size_per_image: anchors sampled per image for the losses.
        positive_fraction: at most this fraction of the sampled anchors are positive.
    """

    def __init__(
        self,
        *,
        head: RPNHead,
        anchor_generator: AnchorGenerator,
        box_coder_weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
        pre_nms_top_n_train: int = 2000,
        pre_nms_top_n_test: int = 1000,
        post_nms_top_n_train: int = 2000,
        post_nms_top_n_test: int = 1000,
        nms_thresh: float = 0.7,
        per_level_nms: bool = True,
        min_size: float = 1e-3,
        score_thresh: float = 0.0,
        sampled_head_grad: bool | None = None,
        fg_iou: float = 0.7,
        bg_iou: float = 0.3,
        batch_size_per_image: int = 256,
        positive_fraction: float = 0.5,
    ) -> None:
        super().__init__()
        self.head = head
        self.anchor_generator = anchor_generator
        self.box_coder = BoxCoder(weights=box_coder_weights)
        self.pre_nms_top_n_train, self.pre_nms_top_n_test = int(pre_nms_top_n_train), int(pre_nms_top_n_test)
        self.post_nms_top_n_train, self.post_nms_top_n_test = int(post_nms_top_n_train), int(post_nms_top_n_test)
        self.nms_thresh = float(nms_thresh)
        self.per_level_nms = bool(per_level_nms)
        self.min_size = float(min_size)
        self.score_thresh = float(score_thresh)
        self.sampled_head_grad = None if sampled_head_grad is None else bool(sampled_head_grad)
        self.fg_iou, self.bg_iou = float(fg_iou), float(bg_iou)
        self.batch_size_per_image = int(batch_size_per_image)
        self.positive_fraction = float(positive_fraction)

    @property
    def pre_nms_top_n(self) -> int:
        return self.pre_nms_top_n_train if self.training else self.pre_nms_top_n_test

    @property
    def post_nms_top_n(self) -> int:
        return self.post_nms_top_n_train if self.training else self.post_nms_top_n_test

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        batch_shape: Sequence[int],
        image_sizes: Sequence[tuple[int, int]],
        features: dict[str, Tensor] | Sequence[Tensor],
        targets: list[dict[str, Tensor]] | None = None,
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        """Proposals per image (``[K_i,4]`` xyxy, detached) and, with ``targets``, the two RPN losses.

        Args:
            batch_shape: ``(H, W)`` of the padded batch tensor (anchor strides derive from it).
            image_sizes: ``(h, w)`` of each resized image inside the batch (proposals are clipped to it).
            features: the pyramid levels (dict values in order, or a list), each ``[B,C,Hf,Wf]``.
            targets: per image ``boxes [N,4]`` xyxy (resized pixels), optional ``iscrowd [N]``.
        """
        feats = list(features.values()) if isinstance(features, dict) else list(features)
        if self.training and targets is None:
            raise ValueError("RPN in training mode needs targets")
        sampled = self.sampled_head_grad if self.sampled_head_grad is not None else feats[0].device.type == "cpu"
        sampled = sampled and self.training and torch.is_grad_enabled()
        with torch.no_grad() if sampled else contextlib.nullcontext():
            logits, deltas = self.head(feats)
        anchors_per_level = self.anchor_generator(
            [f.shape[-2:] for f in feats], batch_shape, device=feats[0].device, dtype=feats[0].dtype
        )
        objectness, pred_deltas, counts = flatten_predictions(logits, deltas)
        anchors = torch.cat(anchors_per_level, dim=0)
        self.probe("rpn.anchors", anchors)
        self.probe("rpn.objectness", objectness)
        self.probe("rpn.deltas", pred_deltas)

        num_images = objectness.shape[0]
        boxes = self.box_coder.decode(pred_deltas.detach().reshape(-1, 4), anchors.repeat(num_images, 1))
        boxes = boxes.view(num_images, -1, 4)
        proposals = self.filter_proposals(boxes, objectness.detach(), image_sizes, counts)
        self.probe("rpn.proposals", proposals)

        losses: dict[str, Tensor] = {}
        if self.training:
            head_input = (feats, [tuple(t.shape[-2:]) for t in logits]) if sampled else None
            losses = self.compute_losses(anchors, objectness, pred_deltas, targets, head_input)
        return proposals, losses

    # ------------------------------------------------------------------ proposal layer
    def filter_proposals(
        self, boxes: Tensor, objectness: Tensor, image_sizes: Sequence[tuple[int, int]], counts: list[int]
    ) -> list[Tensor]:
        """``boxes [B,A,4]`` decoded, ``objectness [B,A]`` logits → kept proposals per image."""
        device = boxes.device
        levels = torch.cat([torch.full((n,), i, dtype=torch.int64, device=device) for i, n in enumerate(counts)])
        if self.per_level_nms:
            top_idx = []
            offset = 0
            for ob in objectness.split(counts, dim=1):
                k = min(self.pre_nms_top_n, ob.shape[1])
                top_idx.append(ob.topk(k, dim=1).indices + offset)
                offset += ob.shape[1]
            idx = torch.cat(top_idx, dim=1)
        else:
            k = min(self.pre_nms_top_n, objectness.shape[1])
            idx = objectness.topk(k, dim=1).indices
        batch_idx = torch.arange(boxes.shape[0], device=device)[:, None]
        scores = torch.sigmoid(objectness[batch_idx, idx])
        boxes = boxes[batch_idx, idx]
        lvls = levels[idx]

        proposals, pre_nms = [], []
        for img_boxes, img_scores, img_lvls, size in zip(boxes, scores, lvls, image_sizes):
            img_boxes = clip_boxes(img_boxes, (int(size[0]), int(size[1])))
            keep = remove_small_boxes(img_boxes, self.min_size)
            img_boxes, img_scores, img_lvls = img_boxes[keep], img_scores[keep], img_lvls[keep]
            keep = torch.where(img_scores >= self.score_thresh)[0]
            img_boxes, img_scores, img_lvls = img_boxes[keep], img_scores[keep], img_lvls[keep]
            pre_nms.append(img_boxes)
            if self.per_level_nms:
                keep = batched_nms(img_boxes, img_scores, img_lvls, self.nms_thresh)
            else:
                keep = nms(img_boxes, img_scores, self.nms_thresh)
            proposals.append(img_boxes[keep[: self.post_nms_top_n]])
        self.probe("rpn.pre_nms_boxes", pre_nms)
        return proposals

    # ------------------------------------------------------------------ training
    def compute_losses(
        self,
        anchors: Tensor,
        objectness: Tensor,
        pred_deltas: Tensor,
        targets: list[dict[str, Tensor]],
        head_input: tuple[list[Tensor], list[tuple[int, int]]] | None = None,
    ) -> dict[str, Tensor]:
        """Per image ``rpn_targets`` + ``sample_labels``, then ``rpn_losses`` on the concatenation.

        With ``head_input = (features, output shapes per level)`` the predictions of the sampled anchors
        are recomputed with gradients by :meth:`RPNHead.predict_at` (``objectness``/``pred_deltas`` are
        then the detached dense outputs and only give the shapes); otherwise they are indexed from
        the dense ``objectness [B, A_total]`` and ``pred_deltas [B, A_total, 4]``.
        """
        from .losses import rpn_losses
        from .targets import rpn_targets, sample_labels

        labels, regression, pos, neg = [], [], [], []
        num_anchors = anchors.shape[0]
        for i, target in enumerate(targets):
            gt_boxes = target["boxes"].to(anchors.dtype)
            lab, reg = rpn_targets(anchors, gt_boxes, target.get("iscrowd"), positive_iou=self.fg_iou,
                                   negative_iou=self.bg_iou, box_coder=self.box_coder)
            p, n = sample_labels(lab, num_samples=self.batch_size_per_image, positive_fraction=self.positive_fraction)
            labels.append(lab)
            regression.append(reg)
            pos.append(p + i * num_anchors)
            neg.append(n + i * num_anchors)
        labels, regression, pos, neg = torch.cat(labels), torch.cat(regression), torch.cat(pos), torch.cat(neg)
        if head_input is None:
            return rpn_losses(objectness.reshape(-1), pred_deltas.reshape(-1, 4), labels, regression, pos, neg)
        sampled = torch.cat((pos, neg))
        feats, shapes = head_input
        where = AnchorIndex.from_flat(sampled, shapes, self.head.cls_logits.out_channels)
        sampled_logits, sampled_deltas = self.head.predict_at(feats, where)
        order = torch.arange(sampled.numel(), device=sampled.device)
        return rpn_losses(sampled_logits, sampled_deltas, labels[sampled], regression[sampled],
                          order[: pos.numel()], order[pos.numel():])
