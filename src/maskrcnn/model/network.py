"""The Mask R-CNN network: preprocess → backbone+FPN → RPN → ROI heads → postprocess, on tensors.

``MaskRCNNNetwork(config)`` is an ``nn.Module`` built from a :class:`~maskrcnn.config.Config`
(via :func:`.build.build_model_parts`). With :class:`~maskrcnn.config.TorchvisionConfig` and
torchvision's state dict it computes what torchvision's ``maskrcnn_resnet50_fpn`` computes
(see ``tests/model/test_parity.py``).

* ``network(images, targets)`` in training mode → the five losses (matterport's names),
  each multiplied by ``LOSS_WEIGHTS``;
* ``network(images)`` in eval mode → per image ``boxes [N,4]`` xyxy original pixels,
  ``labels`` int64, ``scores``, ``masks [N,H,W]`` float probabilities at original size.

``images`` are ``[3,H,W]`` RGB tensors, uint8 or float in 0-255. The network knows tensors only:
no files, no numpy, no training loop. matterport's user API (``detect``, ``load_weights``,
``train``, ``save``) is :class:`maskrcnn.detector.MaskRCNN`, which holds a network as
``.network`` (as matterport's class holds its ``keras_model``).

The config is kept (``.config``) and read at every call for the values a user may change on a
built model (:data:`.build.CALL_ATTRIBUTES`: the detection thresholds, ``LOSS_WEIGHTS``). The
values the stages were built from (:data:`.build.NETWORK_ATTRIBUTES`) cannot change any more:
a call after such a change raises :class:`~maskrcnn.errors.ConfigError` naming the attribute
(:meth:`MaskRCNNNetwork.check_config`) instead of silently running the old network.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.ops import FrozenBatchNorm2d

from ..config import Config
from ..errors import ConfigError
from .amp import autocast_context, check_amp
from .backbone import set_frozen_bn_eps
from .build import NETWORK_ATTRIBUTES, build_model_parts, detection_settings
from .matterport.geometry import norm_boxes
from .matterport.unmold import unmold_detections
from .postprocess import paste_masks
from .preprocess import ImageBatch, resize_boxes
from .probe import Probed
from .roi_heads import DetectionSettings

__all__ = ["MaskRCNNNetwork"]


class MaskRCNNNetwork(nn.Module, Probed):
    """The Mask R-CNN ``nn.Module``: losses in training mode, detections in eval mode.

    Args:
        config: the configuration (validated here). Submodules: ``preprocessor``, ``backbone``,
            ``anchor_generator``, ``rpn``, ``roi_heads`` (their state-dict keys are the checkpoint keys).
    """

    def __init__(self, config: Config) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self._built_with = _network_values(config)
        parts = build_model_parts(config)
        self.preprocessor = parts["preprocessor"]
        self.backbone = parts["backbone"]
        self.anchor_generator = parts["anchor_generator"]
        self.rpn = parts["rpn"]
        self.roi_heads = parts["roi_heads"]
        self._inference_amp: str | None = None

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def inference_amp(self) -> str | None:
        """Mixed precision of inference on CUDA: ``None`` (float32, the default), ``"fp16"`` or ``"bf16"``.

        Backbone, RPN and ROI heads then run under ``torch.autocast``; boxes, scores and mask
        probabilities are returned in float32 and the masks are pasted in float32. Ignored on the CPU
        (see :mod:`.amp`). Training's precision is the trainer's ``AMP`` setting, not this.
        """
        return self._inference_amp

    @inference_amp.setter
    def inference_amp(self, value: str | None) -> None:
        self._inference_amp = check_amp(value, what="inference_amp")

    # ------------------------------------------------------------------ small public handles
    @property
    def backbone_depth(self) -> int:
        """The ResNet depth (18, 34, 50, 101) of the backbone."""
        return int(self.backbone.depth)

    @property
    def frozen_bn_eps(self) -> float | None:
        """``eps`` of the backbone's FrozenBatchNorm layers (None without any); torchvision's COCO v1
        weights were trained with 0.0, the default is 1e-5. Not part of the state dict: checkpoints
        store it beside it."""
        for m in self.modules():
            if isinstance(m, FrozenBatchNorm2d):
                return float(m.eps)
        return None

    @frozen_bn_eps.setter
    def frozen_bn_eps(self, eps: float) -> None:
        set_frozen_bn_eps(self, float(eps))

    def check_config(self) -> None:
        """Raise :class:`ConfigError` when a value the network was built from changed on its config."""
        now = _network_values(self.config)
        if now == self._built_with:
            return
        key = next(k for k in NETWORK_ATTRIBUTES if now[k] != self._built_with[k])
        raise ConfigError(
            f"config.{key} changed from {self._built_with[key]!r} to {now[key]!r} after the model was built; "
            f"the network is built from it, so the change would be ignored. Build a new model with the new "
            f"config (and load the weights into it), or set it back")

    def detection_settings(self) -> DetectionSettings:
        """The detection thresholds from the config's current values (read at every inference call)."""
        return detection_settings(self.config)

    # ------------------------------------------------------------------ forward
    def forward(
        self, images: Sequence[Tensor], targets: list[dict[str, Tensor]] | None = None, *,
        detection: DetectionSettings | None = None,
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Training (with ``targets``): the weighted loss dict. Inference: per-image detections (see module doc).

        ``detection``: the detection thresholds of this call (default: :meth:`detection_settings`).
        """
        if self.training and targets is None:
            raise ValueError("the network in training mode needs targets (call network.eval() for inference)")
        self.check_config()
        device = self.device
        images = [img.to(device) for img in images]
        if targets is not None:
            targets = [{k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in t.items()} for t in targets]
        if self.architecture == "matterport":
            return self._forward_matterport(images, targets, detection)
        batch, targets = self.preprocessor(images, targets if self.training else None, training=self.training)
        self.probe("input.images", batch)
        if self.training:
            features = self.backbone(batch.tensor)
            proposals, rpn_losses = self.rpn(batch.tensor.shape[-2:], batch.image_sizes, features, targets)
            _, roi_losses = self.roi_heads(features, proposals, batch.image_sizes, targets)
            return self._weighted({**rpn_losses, **roi_losses})
        detection = detection or self.detection_settings()
        with autocast_context(self._inference_amp, device):
            features = self.backbone(batch.tensor)
            proposals, _ = self.rpn(batch.tensor.shape[-2:], batch.image_sizes, features)
            detections, _ = self.roi_heads(features, proposals, batch.image_sizes, detection=detection)
        if self._inference_amp is not None:
            detections = [{k: v.float() if v.is_floating_point() else v for k, v in d.items()} for d in detections]
        return self.postprocess(detections, batch)

    def _weighted(self, losses: dict[str, Tensor]) -> dict[str, Tensor]:
        """Each loss times its ``LOSS_WEIGHTS`` entry (1 when absent), read at every call."""
        weights = self.config.LOSS_WEIGHTS or {}
        return {name: value * float(weights.get(name, 1.0)) for name, value in losses.items()}

    @property
    def architecture(self) -> str:
        """``"torchvision"`` (this project's network) or ``"matterport"`` (:mod:`.matterport`)."""
        return str(getattr(self.config, "ARCHITECTURE", "torchvision"))

    def _forward_matterport(self, images: list[Tensor], targets: list[dict[str, Tensor]] | None,
                            detection: DetectionSettings | None) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """matterport's computation (:mod:`.matterport`): molded batch, normalized boxes, unmolded results."""
        batch, targets = self.preprocessor(images, targets if self.training else None, training=self.training)
        self.probe("input.images", batch)
        self.probe("matterport.molded_image", batch.tensor.permute(0, 2, 3, 1))
        shape = tuple(batch.tensor.shape[-2:])
        windows = norm_boxes(torch.tensor(batch.windows, dtype=torch.float32, device=batch.tensor.device), shape)
        features = list(self.backbone(batch.tensor).values())
        if self.training:
            mp_targets = [matterport_target(t) for t in targets]
            proposals, rpn_losses = self.rpn(features, shape, mp_targets)
            _, roi_losses = self.roi_heads(features, proposals, shape, windows, mp_targets)
            return self._weighted({**rpn_losses, **roi_losses})
        detection = detection or self.detection_settings()
        proposals, _ = self.rpn(features, shape)
        outputs, _ = self.roi_heads(features, proposals, shape, windows, detection=detection)
        results = []
        for out, original, window in zip(outputs, batch.original_sizes, batch.windows):
            r = unmold_detections(out["detections"], out["mask_probs"], original_shape=original, image_shape=shape,
                                  window=window)
            results.append({"boxes": r["rois"][:, [1, 0, 3, 2]].float(), "labels": r["class_ids"],
                            "scores": r["scores"], "masks": r["masks"].float()})
        self.probe("output.masks", [r["masks"] for r in results])
        self.probe("output", results)
        return results

    def postprocess(self, detections: list[dict[str, Tensor]], batch: ImageBatch) -> list[dict[str, Tensor]]:
        """Boxes back to original pixels (torchvision's ``resize_boxes``), masks pasted at original size."""
        results = []
        for det, size, original in zip(detections, batch.image_sizes, batch.original_sizes):
            boxes = resize_boxes(det["boxes"], size, original)
            masks = paste_masks(det["mask_probs"], boxes, original)
            results.append({"boxes": boxes, "labels": det["labels"], "scores": det["scores"], "masks": masks})
        self.probe("output.masks", [r["masks"] for r in results])
        self.probe("output", results)
        return results


def matterport_target(target: dict[str, Tensor]) -> dict[str, Tensor]:
    """A training target (``boxes`` xyxy, ``labels``, ``iscrowd``, ``masks``/``mini_masks``) in matterport's
    terms: ``boxes`` y1x1y2x2, ``class_ids`` (crowds negative), the masks as they are."""
    labels = target["labels"].long()
    crowd = target.get("iscrowd")
    class_ids = torch.where(crowd.bool(), -labels, labels) if crowd is not None else labels
    out = {"boxes": target["boxes"].float()[:, [1, 0, 3, 2]], "class_ids": class_ids}
    for key in ("masks", "mini_masks"):
        if target.get(key) is not None:
            out[key] = target[key]
    return out


def _network_values(config: Config) -> dict[str, Any]:
    """The :data:`~.build.NETWORK_ATTRIBUTES` of ``config`` as plain comparable values."""
    values = {}
    for key in NETWORK_ATTRIBUTES:
        value = getattr(config, key, None)
        if hasattr(value, "tolist"):  # numpy arrays and scalars
            value = value.tolist()
        if isinstance(value, (tuple, list)):
            value = [float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in value]
        values[key] = value
    return values
