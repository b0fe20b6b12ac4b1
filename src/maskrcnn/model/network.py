"""The assembled Mask R-CNN: preprocess → backbone+FPN → RPN → ROI heads → postprocess.

``MaskRCNN(config, class_names=None, device=None)`` is built from a
:class:`~maskrcnn.config.Config` (via :func:`.build.build_model_parts`). With
:class:`~maskrcnn.config.TorchvisionConfig` and torchvision's state dict it computes what
torchvision's ``maskrcnn_resnet50_fpn`` computes (see ``tests/model/test_parity.py``).

* ``model(images, targets)`` in training mode → the five losses (matterport's names),
  each multiplied by ``LOSS_WEIGHTS``;
* ``model(images)`` in eval mode → per image ``boxes [N,4]`` xyxy original pixels,
  ``labels`` int64, ``scores``, ``masks [N,H,W]`` float probabilities at original size;
* :meth:`detect` — matterport's API on numpy images; :meth:`detect_union` — the union of the
  detected masks per image (what a color splash needs), computed on the model's device;
* :meth:`run_graph` — named intermediates of one inference forward;
* :meth:`save` / :meth:`from_checkpoint` / :meth:`load_weights` — checkpoints.

``images`` are ``[3,H,W]`` RGB tensors, uint8 or float in 0-255.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..config import Config
from ..errors import ImageError, WeightsError
from .amp import autocast_context, check_amp
from .build import build_model_parts
from .postprocess import paste_masks
from .preprocess import ImageBatch, resize_boxes
from .probe import Probed, recording

CHECKPOINT_FORMAT = "maskrcnn"
CHECKPOINT_VERSION = 1


class MaskRCNN(nn.Module, Probed):
    """Mask R-CNN with matterport's API.

    Args:
        config: the configuration (validated here).
        class_names: names by class id, ``class_names[0]`` the background (default ``BG, class1, ...``).
        device: where the model lives; default CUDA when available, else CPU.
    """

    def __init__(
        self,
        config: Config,
        *,
        class_names: Sequence[str] | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        super().__init__()
        config.validate()
        self.config = config
        parts = build_model_parts(config)
        self.preprocessor = parts["preprocessor"]
        self.backbone = parts["backbone"]
        self.anchor_generator = parts["anchor_generator"]
        self.rpn = parts["rpn"]
        self.roi_heads = parts["roi_heads"]
        if class_names is None:
            class_names = ["BG"] + [f"class{i}" for i in range(1, config.NUM_CLASSES)]
        class_names = [str(n) for n in class_names]
        if len(class_names) != config.NUM_CLASSES:
            raise ValueError(f"class_names has {len(class_names)} names but NUM_CLASSES={config.NUM_CLASSES} "
                             f"(the background counts: class_names[0] is it)")
        self.class_names = class_names
        self.checkpoint_info: dict[str, Any] = {}
        self._inference_amp: str | None = None
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.to(torch.device(device))

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

    # ------------------------------------------------------------------ forward
    def forward(
        self, images: Sequence[Tensor], targets: list[dict[str, Tensor]] | None = None
    ) -> dict[str, Tensor] | list[dict[str, Tensor]]:
        """Training (with ``targets``): the weighted loss dict. Inference: per-image detections (see module doc)."""
        if self.training and targets is None:
            raise ValueError("MaskRCNN in training mode needs targets (call model.eval() for inference)")
        device = self.device
        images = [img.to(device) for img in images]
        if targets is not None:
            targets = [{k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in t.items()} for t in targets]
        batch, targets = self.preprocessor(images, targets if self.training else None, training=self.training)
        self.probe("input.images", batch)
        if self.training:
            features = self.backbone(batch.tensor)
            proposals, rpn_losses = self.rpn(batch.tensor.shape[-2:], batch.image_sizes, features, targets)
            _, roi_losses = self.roi_heads(features, proposals, batch.image_sizes, targets)
            weights = self.config.LOSS_WEIGHTS or {}
            losses = {**rpn_losses, **roi_losses}
            return {name: value * float(weights.get(name, 1.0)) for name, value in losses.items()}
        with autocast_context(self._inference_amp, device):
            features = self.backbone(batch.tensor)
            proposals, _ = self.rpn(batch.tensor.shape[-2:], batch.image_sizes, features)
            detections, _ = self.roi_heads(features, proposals, batch.image_sizes)
        if self._inference_amp is not None:
            detections = [{k: v.float() if v.is_floating_point() else v for k, v in d.items()} for d in detections]
        return self.postprocess(detections, batch)

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

    # ------------------------------------------------------------------ matterport API
    def detect(self, images: Sequence[np.ndarray], verbose: int = 0, batch_size: int | None = None) -> list[dict]:
        """Detect instances in ``H×W×3`` uint8 RGB images (grayscale and RGBA are converted).

        Returns one dict per image: ``rois`` ``[N, (y1, x1, y2, x2)]`` int32 original pixels,
        ``class_ids`` int32, ``scores`` float32, ``masks`` ``H×W×N`` bool (probability ≥ MASK_THRESHOLD).
        Any number of images of any sizes, processed ``batch_size`` (default BATCH_SIZE) at a time.
        """
        if isinstance(images, np.ndarray) and images.ndim in (2, 3) and images.dtype == np.uint8:
            raise ImageError("images: detect() takes a list of images; wrap a single image as [image]")
        tensors = [_image_tensor(image, i) for i, image in enumerate(images)]
        if verbose:
            print(f"Processing {len(tensors)} images")
            for t in tensors:
                print(f"image                    shape: {tuple(t.shape[1:]) + (3,)}  dtype: uint8")
        return [self._to_matterport(out) for out in self._inference_outputs(tensors, batch_size)]

    def detect_union(
        self,
        images: Sequence[np.ndarray],
        *,
        class_ids: Iterable[int] | None = None,
        min_confidence: float | None = None,
        batch_size: int | None = None,
    ) -> list[np.ndarray]:
        """Per image the ``H×W`` bool union of the masks :meth:`detect` returns — only of
        ``class_ids`` (``None``: all) and of scores ≥ ``min_confidence`` when given.

        What a color splash needs, computed where the model runs: only ``H×W`` bools reach the
        host, instead of ``N`` full-size masks transposed to matterport's ``H×W×N``.
        """
        tensors = [_image_tensor(image, i) for i, image in enumerate(images)]
        wanted = None if class_ids is None else sorted({int(c) for c in class_ids})
        unions = []
        for out in self._inference_outputs(tensors, batch_size):
            keep = _nonempty_rois(out["boxes"])
            if wanted is not None:
                keep &= torch.isin(out["labels"], torch.tensor(wanted, device=keep.device))
            if min_confidence is not None:
                keep &= out["scores"].float() >= float(min_confidence)
            probs = out["masks"] if bool(keep.all()) else out["masks"][keep]
            if probs.shape[0] == 0:
                unions.append(np.zeros(tuple(probs.shape[1:]), dtype=bool))
                continue
            # any(p_i >= t) == max_i(p_i) >= t: one pass, no N×H×W bool intermediate
            unions.append((probs.amax(dim=0) >= self.config.MASK_THRESHOLD).cpu().numpy())
        return unions

    def _inference_outputs(self, tensors: list[Tensor], batch_size: int | None) -> Iterator[dict[str, Tensor]]:
        """The eval-mode outputs of :meth:`forward`, ``batch_size`` (default BATCH_SIZE) images a call."""
        step = int(batch_size or self.config.BATCH_SIZE or 1)
        was_training = self.training
        self.eval()
        try:
            for start in range(0, len(tensors), step):
                with torch.inference_mode():
                    outputs = self(tensors[start:start + step])
                yield from outputs
        finally:
            self.train(was_training)

    def _to_matterport(self, out: dict[str, Tensor]) -> dict[str, np.ndarray]:
        boxes = out["boxes"].float().cpu().numpy()
        rois = np.around(boxes[:, [1, 0, 3, 2]]).astype(np.int32).reshape(-1, 4)
        keep = _nonempty_rois(out["boxes"]).cpu().numpy()  # matterport drops empty boxes
        masks = (out["masks"] >= self.config.MASK_THRESHOLD).cpu().numpy()[keep]
        return {
            "rois": rois[keep],
            "class_ids": out["labels"].cpu().numpy().astype(np.int32)[keep],
            "scores": out["scores"].float().cpu().numpy().astype(np.float32)[keep],
            "masks": np.ascontiguousarray(np.transpose(masks, (1, 2, 0))),
        }

    def run_graph(self, images: Sequence[np.ndarray | Tensor], names: Iterable[str] | None = None) -> dict[str, Any]:
        """Named intermediates of one inference forward (see :mod:`.probe` for the names).

        ``images``: ``H×W×3`` uint8 arrays (as :meth:`detect`) or ``[3,H,W]`` tensors in 0-255.
        ``names``: the intermediates wanted (default all). The final outputs (``"output"``, per-image
        dicts as :meth:`forward` returns) are always included. Unknown names raise ``KeyError``.
        """
        tensors = [img if isinstance(img, Tensor) else _image_tensor(img, i) for i, img in enumerate(images)]
        wanted = None if names is None else list(names)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode(), recording(None if wanted is None else wanted + ["output"]) as rec:
                self(tensors)
        finally:
            self.train(was_training)
        if wanted is not None:
            unknown = [n for n in wanted if n not in rec and n not in rec.seen]
            if unknown:
                raise KeyError(f"run_graph: unknown names {unknown}; known: {', '.join(dict.fromkeys(rec.seen))}")
        return dict(rec)

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | os.PathLike, *, epoch: int | None = None, extra: dict[str, Any] | None = None) -> Path:
        """Write weights, config and class names to ``path`` atomically (temp file + ``os.replace``)."""
        if getattr(self, "_maskrcnn_bn_fused", 0):
            raise WeightsError(f"{path}: this model's BatchNorm layers were folded into its convolutions for "
                               f"inference (prepare_for_inference / fuse_frozen_bn); save the original model")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "model": {k: v.detach().cpu() for k, v in self.state_dict().items()},
            "config": self.config.to_dict(),
            "config_class": type(self.config).__name__,
            "class_names": list(self.class_names),
            "epoch": None if epoch is None else int(epoch),
            **(extra or {}),
        }
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            torch.save(payload, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> MaskRCNN:
        """Rebuild the model (config, class names, weights) from a file written by :meth:`save`."""
        from ..weights import read_checkpoint

        data = read_checkpoint(path)
        if data.get("format") != CHECKPOINT_FORMAT or not isinstance(data.get("config"), dict):
            raise WeightsError(f"{path}: not a maskrcnn checkpoint (written by MaskRCNN.save); to load other "
                               f"weights build a model from a Config and call model.load_weights(path)")
        config = _config_class(data.get("config_class")).from_dict(data["config"], source=str(path))
        model = cls(config, class_names=data.get("class_names"), device="cpu")
        state = data.get("model")
        if not isinstance(state, dict):
            raise WeightsError(f"{path}: checkpoint has no 'model' state_dict")
        result = model.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise WeightsError(f"{path}: weights do not match the checkpoint's own config: missing "
                               f"{list(result.missing_keys)[:5]}, unexpected {list(result.unexpected_keys)[:5]}")
        model.checkpoint_info = {k: v for k, v in data.items() if k not in ("model", "config")}
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return model.to(torch.device(device))

    def load_weights(self, path_or_name: str | os.PathLike, exclude: str | Iterable[str] | None = None,
                     strict: bool = True):
        """Load a checkpoint, torchvision COCO/ImageNet file or ``"coco"``/``"imagenet"``; see :mod:`maskrcnn.weights`.

        Returns the :class:`~maskrcnn.weights.LoadReport`.
        """
        from ..weights import load_weights

        report = load_weights(self, path_or_name, exclude=exclude, strict=strict)
        self.to(self.device)
        return report

    def train(self, mode: Any = True, val_dataset: Any = None, **kwargs: Any):
        """matterport's ``model.train(dataset_train, dataset_val, learning_rate=…, epochs=…, layers="heads")``.

        With a bool (or nothing) this is ``nn.Module.train(mode)``, so PyTorch code keeps working;
        with a dataset it trains through :func:`maskrcnn.training.api.train` and returns its result.
        """
        if isinstance(mode, bool):
            return super().train(mode)
        from ..training.api import train

        return train(self, mode, val_dataset, **kwargs)


def _config_class(name: str | None) -> type[Config]:
    from .. import config as config_module

    klass = getattr(config_module, str(name), None) if name else None
    if isinstance(klass, type) and issubclass(klass, Config):
        return klass
    return Config


def _nonempty_rois(boxes: Tensor) -> Tensor:
    """``[N]`` bool: the ``xyxy`` boxes whose matterport ``rois`` (rounded to whole pixels, as
    :meth:`MaskRCNN.detect` rounds them) have a nonzero area; on the boxes' device."""
    rounded = torch.round(boxes.float())  # half to even, as np.around
    return (rounded[:, 2] - rounded[:, 0]) * (rounded[:, 3] - rounded[:, 1]) > 0


def _image_tensor(image: Any, index: int) -> Tensor:
    """One public-API image (``H×W×3`` uint8 RGB; ``H×W``, ``H×W×1`` gray or ``H×W×4`` RGBA) → ``[3,H,W]`` uint8."""
    if isinstance(image, Tensor):
        raise ImageError(f"images[{index}]: got a torch tensor; detect() takes H×W×3 uint8 numpy arrays "
                         f"(call the model directly with [3,H,W] tensors)")
    if not isinstance(image, np.ndarray):
        raise ImageError(f"images[{index}]: expected an H×W×3 uint8 numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        hint = " (scale 0-1 floats by 255 and convert with .astype(np.uint8))" if image.dtype.kind == "f" else ""
        raise ImageError(f"images[{index}]: dtype {image.dtype}; expected uint8 RGB values 0-255{hint}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise ImageError(f"images[{index}]: shape {image.shape}; expected H×W×3 (or H×W grayscale)")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"images[{index}]: empty image of shape {image.shape}")
    channels = image.shape[2]
    if channels == 1:
        image = np.repeat(image, 3, axis=2)
    elif channels == 4:
        image = image[:, :, :3]
    elif channels != 3:
        raise ImageError(f"images[{index}]: {channels} channels; expected 3 (RGB), 1 (gray) or 4 (RGBA)")
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
