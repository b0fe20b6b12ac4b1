"""matterport's ROI stage: classifier and box heads, detection layer, mask head (+ training targets).

``MatterportRoIHeads(...)(features, proposals, image_shape, windows)`` at inference returns per image
``detections [D, 6]`` (normalized y1x1y2x2, class id, score; zero-padded, matterport's
``mrcnn_detection``) and ``mask_probs [D, C, 28, 28]`` (sigmoid); in training (with matterport targets,
see :mod:`.targets`) the three ``mrcnn_*`` losses. Probes: ``matterport.mrcnn_class`` ``[B, R, C]``,
``matterport.mrcnn_bbox`` ``[B, R, C, 4]``, ``matterport.detections`` ``[B, D, 6]``,
``matterport.mrcnn_mask`` ``[B, D, 28, 28, C]`` (matterport's layouts) and, while recording, the generic
``roi.class_logits``, ``roi.box_deltas``, ``roi.refined_boxes``, ``roi.detections``, ``mask.logits``,
``mask.probs`` in the generic conventions (:mod:`.generic`: xyxy pixels of the molded image, rows of the
proposals before matterport's zero padding, detections up to the first of class 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..probe import Probed, is_recording
from ..roi_heads import DetectionSettings
from .detection import refine_detections
from .generic import MatterportBoxCoder, record_masks, record_roi
from .heads import MatterportBoxHead, MatterportBoxPredictor, MatterportMaskHead, MatterportMaskPredictor
from .roi_align import MatterportPyramidRoIAlign
from .targets import detection_targets, mrcnn_losses


class MatterportRoIHeads(nn.Module, Probed):
    """Args: the pooling modules and heads, ``bbox_std_dev`` (BBOX_STD_DEV), ``rois_per_image``
    (TRAIN_ROIS_PER_IMAGE), ``positive_ratio`` (ROI_POSITIVE_RATIO), ``mask_shape`` (MASK_SHAPE)."""

    def __init__(self, *, box_roi_pool: MatterportPyramidRoIAlign, box_head: MatterportBoxHead,
                 box_predictor: MatterportBoxPredictor, mask_roi_pool: MatterportPyramidRoIAlign,
                 mask_head: MatterportMaskHead, mask_predictor: MatterportMaskPredictor,
                 bbox_std_dev: Sequence[float], rois_per_image: int = 200, positive_ratio: float = 0.33,
                 mask_shape: Sequence[int] = (28, 28)) -> None:
        super().__init__()
        self.box_roi_pool, self.box_head, self.box_predictor = box_roi_pool, box_head, box_predictor
        self.mask_roi_pool, self.mask_head, self.mask_predictor = mask_roi_pool, mask_head, mask_predictor
        self.register_buffer("bbox_std_dev", torch.tensor([float(v) for v in bbox_std_dev]), persistent=False)
        self.rois_per_image, self.positive_ratio = int(rois_per_image), float(positive_ratio)
        self.mask_shape = tuple(int(v) for v in mask_shape)
        self.box_coder = MatterportBoxCoder(std_dev=bbox_std_dev)  # the generic heads' handle: pixel deltas

    def classify(self, features: Sequence[Tensor], rois: Tensor, image_shape: Sequence[int]) -> tuple[Tensor, Tensor]:
        """``rois [B, R, 4]`` → ``logits [B, R, C]``, ``deltas [B, R, C, 4]``."""
        b, r = rois.shape[:2]
        logits, deltas = self.box_predictor(self.box_head(self.box_roi_pool(features[:4], rois, image_shape)))
        return logits.reshape(b, r, -1), deltas.reshape(b, r, -1, 4)

    def masks(self, features: Sequence[Tensor], rois: Tensor, image_shape: Sequence[int]) -> Tensor:
        """``rois [B, R, 4]`` → mask logits ``[B*R, C, 28, 28]``."""
        return self.mask_predictor(self.mask_head(self.mask_roi_pool(features[:4], rois, image_shape)))

    def forward(self, features: Sequence[Tensor], proposals: Tensor, image_shape: Sequence[int], windows: Tensor,
                targets: list[dict[str, Tensor]] | None = None, *, detection: DetectionSettings | None = None
                ) -> tuple[list[dict[str, Tensor]], dict[str, Tensor]]:
        """``proposals [B, R, 4]`` normalized; ``windows [B, 4]`` normalized image windows."""
        if self.training and targets is not None:
            return [], self._losses(features, proposals, image_shape, targets)
        assert detection is not None, "inference needs the detection settings"
        logits, deltas = self.classify(features, proposals, image_shape)
        probs = torch.softmax(logits, dim=-1)
        self.probe("matterport.mrcnn_class", probs)
        self.probe("matterport.mrcnn_bbox", deltas)
        detections = torch.stack([
            refine_detections(proposals[i], probs[i], deltas[i], windows[i], std_dev=self.bbox_std_dev.tolist(),
                              min_confidence=detection.min_confidence, nms_threshold=detection.nms_threshold,
                              max_instances=detection.max_instances)
            for i in range(proposals.shape[0])])
        self.probe("matterport.detections", detections)
        recording = is_recording()
        if recording:
            kept = record_roi(proposals, logits, deltas, detections, windows, image_shape, self.bbox_std_dev)
        b, d = detections.shape[:2]
        # matterport runs the mask head on all D rows; the zero-padded rows after the last detection are
        # never unmolded, so outside a recording (where run_graph shows all D) only the filled rows run.
        rows = d if recording else int((detections[..., 4] > 0).sum(dim=1).max())
        mask_logits = self.masks(features, detections[:, :rows, :4], image_shape)
        mask_logits = mask_logits.reshape(b, rows, *mask_logits.shape[1:])
        if rows < d:
            mask_logits = F.pad(mask_logits, (0, 0, 0, 0, 0, 0, 0, d - rows))
        if recording:
            record_masks(mask_logits, detections, kept)
        mask_probs = torch.sigmoid(mask_logits)
        self.probe("matterport.mrcnn_mask", mask_probs.permute(0, 1, 3, 4, 2))
        return [{"detections": detections[i], "mask_probs": mask_probs[i]} for i in range(b)], {}

    def _losses(self, features: Sequence[Tensor], proposals: Tensor, image_shape: Sequence[int],
                targets: list[dict[str, Tensor]]) -> dict[str, Tensor]:
        rois, class_ids, deltas, masks = [], [], [], []
        for p, t in zip(proposals, targets):
            r, c, d, m = detection_targets(p, t, image_shape, rois_per_image=self.rois_per_image,
                                           positive_ratio=self.positive_ratio, std_dev=self.bbox_std_dev,
                                           mask_shape=self.mask_shape)
            rois.append(r)
            class_ids.append(c)
            deltas.append(d)
            masks.append(m)
        rois_t = torch.stack(rois)
        logits, pred_deltas = self.classify(features, rois_t, image_shape)
        # The mask head runs on the positive ROIs only (BatchNorm in inference mode: each ROI on its own).
        positives = [r[: m.shape[0]] for r, m in zip(rois, masks)]
        counts = [p.shape[0] for p in positives]
        longest = max(counts)
        if longest:
            padded = torch.stack([torch.nn.functional.pad(p, (0, 0, 0, longest - p.shape[0])) for p in positives])
            mask_logits = self.masks(features, padded, image_shape).reshape(len(rois), longest, -1, *self.mask_shape)
            mask_logits = torch.cat([mask_logits[i, :n] for i, n in enumerate(counts)])
        else:
            mask_logits = logits.new_zeros((0, logits.shape[-1], *self.mask_shape)) + logits.sum() * 0.0
        losses = mrcnn_losses(logits.reshape(-1, logits.shape[-1]), pred_deltas.reshape(-1, *pred_deltas.shape[2:]),
                              mask_logits, torch.cat(class_ids), torch.cat(deltas), torch.cat(masks))
        return losses
