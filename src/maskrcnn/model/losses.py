"""The five Mask R-CNN losses, torchvision's math under matterport's names.

* ``rpn_class_loss``: binary cross-entropy with logits of the objectness over the sampled
  anchors (positives and negatives), mean.
* ``rpn_bbox_loss``: smooth-L1 (``beta = 1/9``) of the positive anchors' deltas, summed and
  divided by the number of sampled anchors.
* ``mrcnn_class_loss``: cross-entropy over the sampled ROIs, mean.
* ``mrcnn_bbox_loss``: smooth-L1 (``beta = 1/9``) of the GT class's deltas of the positive
  ROIs, summed and divided by the number of sampled ROIs.
* ``mrcnn_mask_loss``: binary cross-entropy with logits of the GT class's mask channel of the
  positive ROIs against the mask targets, mean over pixels.

Where a loss has nothing to average (no positives, no samples) it is a zero that is still
connected to the predictions, so ``backward()`` works on an image without objects.
The ``LOSS_WEIGHTS`` multiply these in the model, not here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["SMOOTH_L1_BETA", "mrcnn_losses", "rpn_losses"]

SMOOTH_L1_BETA = 1.0 / 9.0


def _zero(*tensors: Tensor) -> Tensor:
    """A scalar 0 connected to the graph of every given tensor."""
    return sum(t.sum() * 0.0 for t in tensors)  # type: ignore[return-value]


def rpn_losses(
    objectness: Tensor,
    pred_deltas: Tensor,
    labels: Tensor,
    regression_targets: Tensor,
    pos_idx: Tensor,
    neg_idx: Tensor,
) -> dict[str, Tensor]:
    """RPN losses over all images of the batch, concatenated (torchvision's ``compute_loss``).

    Args:
        objectness: ``[A_total]`` logits (any shape with ``A_total`` elements is flattened).
        pred_deltas: ``[A_total, 4]`` predicted deltas.
        labels: ``[A_total]`` 1 / 0 / -1 (from :func:`~maskrcnn.model.targets.rpn_targets`).
        regression_targets: ``[A_total, 4]``.
        pos_idx, neg_idx: int64 indices into ``A_total`` of the sampled positives and negatives
            (per image :func:`~maskrcnn.model.targets.sample_labels`, offset by the anchors of
            the images before it).

    Returns:
        ``{"rpn_class_loss", "rpn_bbox_loss"}`` scalars.
    """
    objectness = objectness.flatten()
    pred_deltas = pred_deltas.reshape(-1, 4)
    sampled = torch.cat((pos_idx, neg_idx)).to(torch.int64)
    if sampled.numel() == 0:
        zero = _zero(objectness, pred_deltas)
        return {"rpn_class_loss": zero, "rpn_bbox_loss": zero.clone()}
    box_loss = F.smooth_l1_loss(
        pred_deltas[pos_idx], regression_targets[pos_idx].to(pred_deltas.dtype), beta=SMOOTH_L1_BETA, reduction="sum"
    ) / sampled.numel()
    class_loss = F.binary_cross_entropy_with_logits(objectness[sampled], labels[sampled].to(objectness.dtype))
    return {"rpn_class_loss": class_loss, "rpn_bbox_loss": box_loss}


def mrcnn_losses(
    class_logits: Tensor,
    box_deltas: Tensor,
    mask_logits: Tensor | None,
    labels: Tensor,
    regression_targets: Tensor,
    mask_targets: Tensor | None,
) -> dict[str, Tensor]:
    """Head losses over the sampled ROIs of all images, concatenated.

    Args:
        class_logits: ``[R, C]``.
        box_deltas: ``[R, 4C]`` (per-class deltas, class-major).
        mask_logits: ``[P, C, M, M]`` for the positive ROIs (``labels > 0``) in order, or None.
        labels: int64 ``[R]``, 0 = background.
        regression_targets: ``[R, 4]``.
        mask_targets: ``[P, M, M]`` float in [0, 1] (from :func:`~maskrcnn.model.targets.mask_targets`).

    Returns:
        ``{"mrcnn_class_loss", "mrcnn_bbox_loss", "mrcnn_mask_loss"}`` scalars; the bbox and mask
        losses are graph-connected zeros when there are no positives (the mask loss also when
        ``mask_logits`` is None).
    """
    labels = labels.to(torch.int64)
    num_rois = labels.numel()
    if num_rois == 0:
        class_loss = _zero(class_logits)
        box_loss = _zero(box_deltas)
    else:
        class_loss = F.cross_entropy(class_logits, labels)
        positive = torch.where(labels > 0)[0]
        deltas = box_deltas.reshape(num_rois, box_deltas.shape[-1] // 4, 4)
        box_loss = F.smooth_l1_loss(
            deltas[positive, labels[positive]],
            regression_targets[positive].to(deltas.dtype),
            beta=SMOOTH_L1_BETA,
            reduction="sum",
        ) / num_rois

    if mask_logits is None:
        mask_loss = _zero(class_logits)
    elif mask_targets is None or mask_targets.numel() == 0 or mask_logits.shape[0] == 0:
        mask_loss = _zero(mask_logits)
    else:
        pos_labels = labels[labels > 0]
        if pos_labels.numel() != mask_logits.shape[0] or mask_targets.shape[0] != mask_logits.shape[0]:
            raise ValueError(
                f"mrcnn_losses: {pos_labels.numel()} positive labels, {mask_logits.shape[0]} mask_logits and "
                f"{mask_targets.shape[0]} mask_targets must agree"
            )
        chosen = mask_logits[torch.arange(pos_labels.numel(), device=pos_labels.device), pos_labels]
        mask_loss = F.binary_cross_entropy_with_logits(chosen, mask_targets.to(chosen.dtype))
    return {"mrcnn_class_loss": class_loss, "mrcnn_bbox_loss": box_loss, "mrcnn_mask_loss": mask_loss}
