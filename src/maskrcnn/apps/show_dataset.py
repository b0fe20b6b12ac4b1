"""``maskrcnn show-dataset``: dataset samples as the model trains on them, with the anchors its RPN learns from.

Every picture is built from the model's own pieces, so what it shows is what training does:

* the sample is :class:`~maskrcnn.data.loader.TrainingSamples`' (boxes from the masks, crowd flags,
  at most ``MAX_GT_INSTANCES``), without augmentation;
* it is resized and padded by the model's preprocessor (:mod:`maskrcnn.model.preprocess`, the one
  geometry: ``IMAGE_RESIZE_MODE``, padding at the bottom/right, in ``crop`` mode a random crop drawn
  from torch's RNG, seeded here; with ``ARCHITECTURE = "matterport"`` matterport's molding, padded
  **centred**, :mod:`maskrcnn.model.matterport.preprocess`) and drawn at the size the network sees it,
  padding included, de-normalized;
* the anchors are the RPN's (the config's anchor generator on the backbone's feature-map sizes of
  that input; matterport's anchors for a matterport config), and an anchor is outlined in an object's
  colour exactly when the RPN's target assignment (:func:`~maskrcnn.model.targets.rpn_matches`, what
  ``rpn_targets`` labels positive, and what matterport's ``build_rpn_targets`` labels positive before
  its random subsampling) trains it towards that object: IoU at least ``RPN_POSITIVE_IOU``, or the
  object's best anchor. Crowd objects get none.

The geometry is that of a batch holding this one image; where the batch pads to a fixed size
(``square``, ``crop``) it is the same in any batch.
"""

from __future__ import annotations

import colorsys
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from ..config import Config
from ..data.dataset import Dataset
from ..data.loader import TrainingSamples
from ..fileio import atomic_path
from ..model.anchors import AnchorGenerator
from ..model.backbone import feature_shapes
from ..model.build import build_anchor_generator, build_preprocessor
from ..model.preprocess import ImagePreprocessor
from ..model.targets import rpn_matches

__all__ = ["ShownSample", "TrainingView", "draw_sample", "show_dataset", "training_view"]


@dataclass
class TrainingView:
    """One training sample in the network input's pixels.

    image: ``Hp×Wp×3`` uint8, the padded network input de-normalized. image_size: ``(h, w)`` of
    the resized image inside it, at ``offset`` ``(top, left)`` (``(0, 0)``, or matterport's centred
    window). masks: ``Hp×Wp×N`` bool. boxes: ``[N, 4]`` xyxy float,
    the boxes the RPN is matched against. class_ids: ``[N]``, negative for crowd objects.
    anchors: ``[A, 4]`` xyxy, every anchor of the input. matches: ``[A]`` int64, the RPN's
    assignment (:func:`~maskrcnn.model.targets.rpn_matches`: the object of a positive anchor,
    -1 negative, -2 ignored).
    """

    image: np.ndarray
    image_size: tuple[int, int]
    masks: np.ndarray
    boxes: np.ndarray
    class_ids: np.ndarray
    anchors: Tensor
    matches: Tensor
    offset: tuple[int, int] = (0, 0)

    def positive_anchors(self) -> list[np.ndarray]:
        """Per object, its positive anchors ``[K, 4]`` xyxy."""
        return [self.anchors[self.matches == k].numpy() for k in range(len(self.class_ids))]


@dataclass
class ShownSample:
    """One written picture: where, which image, and how many anchors are positive for each object."""

    path: Path
    image_id: int
    class_names: list[str] = field(default_factory=list)
    anchors_per_object: list[int] = field(default_factory=list)


def training_view(image: Tensor, target: dict[str, Any], config: Config, *,
                  preprocessor: ImagePreprocessor | None = None,
                  anchor_generator: AnchorGenerator | None = None) -> TrainingView:
    """A :class:`TrainingSamples` item ``(image, target)`` as the model trains on it (see the module docstring).

    Needs ``target["masks"]`` (``use_mini_mask=False``). In ``crop`` mode the crop is drawn from torch's
    global RNG, as in training. ``preprocessor`` / ``anchor_generator``: the config's, built once by the caller.
    """
    preprocessor = preprocessor or build_preprocessor(config)
    anchor_generator = anchor_generator or build_anchor_generator(config)
    batch, (resized,) = preprocessor([image], [target], training=True)
    padded = tuple(int(v) for v in batch.tensor.shape[-2:])
    pixels = preprocessor.denormalize(batch.tensor[0]).clamp(0, 255).round().to(torch.uint8)
    anchors = torch.cat(anchor_generator(feature_shapes(*padded), padded), dim=0)
    boxes = resized["boxes"]
    matches = rpn_matches(anchors, boxes, resized["iscrowd"], positive_iou=config.RPN_POSITIVE_IOU,
                          negative_iou=config.RPN_NEGATIVE_IOU)
    h, w = batch.image_sizes[0]
    windows = getattr(batch, "windows", None)  # matterport's molding: the image's window, padding centred
    offset = (int(windows[0][0]), int(windows[0][1])) if windows else (0, 0)
    masks = np.zeros(padded + (len(boxes),), dtype=bool)
    # the resized masks: [h, w] at the top-left, or (matterport) already padded with the image
    mh, mw = resized["masks"].shape[-2:]
    masks[:mh, :mw] = resized["masks"].permute(1, 2, 0).numpy()
    sign = 1 - 2 * resized["iscrowd"].to(torch.int64)
    return TrainingView(image=pixels.permute(1, 2, 0).numpy(), image_size=(h, w), masks=masks,
                        boxes=boxes.numpy(), class_ids=(resized["labels"] * sign).numpy(), anchors=anchors,
                        matches=matches, offset=offset)


def _colors(n: int) -> np.ndarray:
    """``n`` distinct bright colors ``[n, 3]`` uint8 (fixed order, like matterport's random_colors without shuffle)."""
    hues = [(i * 0.618033988749895) % 1.0 for i in range(n)]
    return np.array([[int(255 * c) for c in colorsys.hsv_to_rgb(h, 0.9, 1.0)] for h in hues], dtype=np.uint8)


def draw_sample(image: np.ndarray, masks: np.ndarray, boxes: np.ndarray, class_ids: np.ndarray,
                class_names: Sequence[str], *, anchors: Sequence[np.ndarray] | None = None,
                alpha: float = 0.45) -> np.ndarray:
    """An ``H×W×3`` uint8 picture: ``H×W×N`` masks tinted, ``[N, 4]`` xyxy boxes, class names (crowd
    for negative ids) and, per object, its anchors (``[K, 4]`` xyxy) outlined thinly in its color."""
    from PIL import Image, ImageDraw, ImageFont

    n = masks.shape[-1]
    colors = _colors(max(n, 1))
    out = image.astype(np.float32)
    if n:
        owner = np.where(masks.any(axis=-1), masks.shape[-1] - 1 - np.argmax(masks[..., ::-1], axis=-1), -1)
        tinted = owner >= 0
        out[tinted] = (1 - alpha) * out[tinted] + alpha * colors[owner[tinted]].astype(np.float32)
    pic = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pic)
    font = ImageFont.load_default()
    for k in range(n):
        color = tuple(int(c) for c in colors[k])
        if anchors is not None and k < len(anchors):
            for a in np.asarray(anchors[k]).reshape(-1, 4):
                draw.rectangle([float(a[0]), float(a[1]), float(a[2]) - 1, float(a[3]) - 1], outline=color, width=1)
        x1, y1, x2, y2 = (float(v) for v in boxes[k])
        if x2 > x1 and y2 > y1:
            draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=color, width=2)
        cid = int(class_ids[k])
        label = class_names[abs(cid)] + (" (crowd)" if cid < 0 else "")
        tx, ty = x1 + 2, max(0.0, y1 - 12)
        draw.rectangle(draw.textbbox((tx, ty), label, font=font), fill=(0, 0, 0))
        draw.text((tx, ty), label, fill=color, font=font)
    return np.asarray(pic)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[-80:].strip("_") or "image"


def _write_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def show_dataset(dataset: Dataset, out_dir: str | Path, *, limit: int = 8, config: Config | None = None,
                 image_ids: Sequence[int] | None = None, anchors: bool = True, seed: int = 0) -> list[ShownSample]:
    """Write ``limit`` PNGs of samples of a prepared ``dataset`` into ``out_dir``; returns what was written.

    ``seed`` seeds the random crops of ``IMAGE_RESIZE_MODE="crop"`` (torch's RNG, restored afterwards):
    the k-th picture has the crop that training would draw after ``torch.manual_seed(seed)`` and k crops.
    """
    config = config or Config()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = list(dataset.image_ids if image_ids is None else image_ids)[:max(0, int(limit))]
    samples = TrainingSamples(dataset, use_mini_mask=False, max_gt_instances=config.MAX_GT_INSTANCES, image_ids=ids)
    preprocessor, anchor_generator = build_preprocessor(config), build_anchor_generator(config)
    shown = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for index, image_id in enumerate(ids):
            view = training_view(*samples[index], config, preprocessor=preprocessor,
                                 anchor_generator=anchor_generator)
            positives = view.positive_anchors() if anchors else None
            picture = draw_sample(view.image, view.masks, view.boxes, view.class_ids, dataset.class_names,
                                  anchors=positives)
            name = f"{index:03d}_{_safe_name(os.path.basename(str(dataset.image_reference(image_id))))}.png"
            _write_png(picture, out / name)
            shown.append(ShownSample(path=out / name, image_id=int(image_id),
                                     class_names=[dataset.class_names[abs(int(c))] for c in view.class_ids],
                                     anchors_per_object=[len(a) for a in positives] if positives else []))
    return shown
