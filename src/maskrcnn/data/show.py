"""Draw dataset samples: masks, boxes, class names, and the anchors that match each object.

Used by ``maskrcnn show-dataset``. The anchors are those the RPN would be trained with as
positives: the image is resized as the Config says (``IMAGE_RESIZE_MODE``, ``IMAGE_MIN_DIM``,
``IMAGE_MAX_DIM``, ``IMAGE_MIN_SCALE``), the anchors are the model's own
(:class:`maskrcnn.model.anchors.AnchorGenerator`: ``RPN_ANCHOR_SCALES`` per level,
``RPN_ANCHOR_RATIOS`` as width/height, centers at ``cell * stride``, sides rounded like
torchvision), and an anchor matches an object when their IoU is at least ``RPN_POSITIVE_IOU`` or
it is the object's best anchor. Matches are drawn back on the original image as thin outlines in
the object's color.
"""

from __future__ import annotations

import colorsys
import math
import os
import random
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torchvision.ops import box_iou

from ..config import Config
from .dataset import Dataset
from .transforms import extract_bboxes, resize_image


@dataclass
class ShownSample:
    """One written picture: where, which image, and how many anchors matched each object."""

    path: Path
    image_id: int
    class_names: list[str] = field(default_factory=list)
    anchors_per_object: list[int] = field(default_factory=list)


def pyramid_anchors(image_shape: Sequence[int], *, scales: Sequence[float], ratios: Sequence[float],
                    strides: Sequence[int], anchor_stride: int = 1) -> np.ndarray:
    """All anchors ``[A, 4]`` xyxy float64 for an input of ``image_shape`` (h, w), as the RPN has them.

    :class:`~maskrcnn.model.anchors.AnchorGenerator` on feature maps of ``ceil(h / stride) x
    ceil(w / stride)`` per level: at each cell (row-major) one anchor per ratio, side ``scales[i]``
    reshaped by the width/height ratio and rounded to whole pixels, centered at
    ``(x * stride, y * stride)``.
    """
    from ..model.anchors import AnchorGenerator

    height, width = int(image_shape[0]), int(image_shape[1])
    generator = AnchorGenerator(scales=scales, ratios=ratios, strides=strides, anchor_stride=anchor_stride)
    shapes = [(math.ceil(height / s), math.ceil(width / s)) for s in strides]
    return torch.cat(generator(shapes, (height, width)), dim=0).double().numpy()


def match_anchors(gt_boxes: torch.Tensor, anchors: torch.Tensor, *, iou_threshold: float = 0.7,
                  chunk: int = 64) -> list[torch.Tensor]:
    """For each box ``[N, 4]`` xyxy, the indices of the anchors ``[A, 4]`` with IoU >= threshold or best."""
    matched = []
    for start in range(0, len(gt_boxes), chunk):
        iou = box_iou(gt_boxes[start:start + chunk], anchors)  # [n, A]
        best = iou.argmax(dim=1)
        for k in range(iou.shape[0]):
            idx = torch.nonzero(iou[k] >= iou_threshold).flatten()
            if iou[k, best[k]] > 0 and not bool((idx == best[k]).any()):
                idx = torch.cat([idx, best[k:k + 1]])
            matched.append(idx)
    return matched


def _colors(n: int) -> np.ndarray:
    """``n`` distinct bright colors ``[n, 3]`` uint8 (fixed order, like matterport's random_colors without shuffle)."""
    hues = [(i * 0.618033988749895) % 1.0 for i in range(n)]
    return np.array([[int(255 * c) for c in colorsys.hsv_to_rgb(h, 0.9, 1.0)] for h in hues], dtype=np.uint8)


def draw_sample(image: np.ndarray, masks: np.ndarray, class_ids: np.ndarray, class_names: Sequence[str], *,
                anchors: Sequence[np.ndarray] | None = None, alpha: float = 0.45) -> np.ndarray:
    """An ``H x W x 3`` uint8 picture: masks tinted, boxes, class names, matched anchors (xyxy, per object)."""
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
    boxes = extract_bboxes(masks) if n else np.zeros((0, 4), np.int32)
    for k in range(n):
        color = tuple(int(c) for c in colors[k])
        if anchors is not None and k < len(anchors):
            for a in np.asarray(anchors[k]).reshape(-1, 4):
                draw.rectangle([float(a[0]), float(a[1]), float(a[2]) - 1, float(a[3]) - 1], outline=color, width=1)
        y1, x1, y2, x2 = (int(v) for v in boxes[k])
        if y2 > y1 and x2 > x1:
            draw.rectangle([x1, y1, x2 - 1, y2 - 1], outline=color, width=2)
        cid = int(class_ids[k])
        label = class_names[abs(cid)] + (" (crowd)" if cid < 0 else "")
        tx, ty = x1 + 2, max(0, y1 - 12)
        draw.rectangle(draw.textbbox((tx, ty), label, font=font), fill=(0, 0, 0))
        draw.text((tx, ty), label, fill=color, font=font)
    return np.asarray(pic)


def _molded_geometry(image: np.ndarray, config: Config, rng: random.Random) -> tuple[tuple[int, int], float,
                                                                                      tuple[float, float]]:
    """``(molded (h, w), scale, (dx, dy))``: original xyxy * scale + (dx, dy) gives molded coordinates."""
    molded, window, scale, padding, crop = resize_image(
        image, min_dim=config.IMAGE_MIN_DIM, max_dim=config.IMAGE_MAX_DIM, min_scale=config.IMAGE_MIN_SCALE,
        mode=config.IMAGE_RESIZE_MODE, rng=rng)
    h, w = molded.shape[:2]
    if config.IMAGE_RESIZE_MODE in ("none", "shortest_edge"):
        div = int(config.IMAGE_PAD_DIVISOR)
        h, w = -(-h // div) * div, -(-w // div) * div
    dx, dy = float(padding[1][0]), float(padding[0][0])
    if crop is not None:
        dx, dy = -float(crop[1]), -float(crop[0])
    return (h, w), float(scale), (dx, dy)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[-80:].strip("_") or "image"


def _write_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    fd, tmp = tempfile.mkstemp(suffix=".png.tmp", dir=path.parent)
    os.close(fd)
    try:
        Image.fromarray(array).save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def show_dataset(dataset: Dataset, out_dir: str | Path, *, limit: int = 8, config: Config | None = None,
                 image_ids: Sequence[int] | None = None, anchors: bool = True, seed: int = 0) -> list[ShownSample]:
    """Write ``limit`` PNGs of samples of a prepared ``dataset`` into ``out_dir``; returns what was written."""
    config = config or Config()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = list(dataset.image_ids if image_ids is None else image_ids)[:max(0, int(limit))]
    rng = random.Random(seed)
    shown = []
    for image_id in ids:
        image = dataset.load_image(image_id)
        masks, class_ids = dataset.load_mask(image_id)
        masks = np.asarray(masks, dtype=bool)
        if masks.size == 0:
            masks = np.zeros(image.shape[:2] + (0,), dtype=bool)
        per_object: list[np.ndarray] | None = None
        counts: list[int] = []
        if anchors and masks.shape[-1]:
            shape, scale, (dx, dy) = _molded_geometry(image, config, rng)
            all_anchors = torch.from_numpy(pyramid_anchors(
                shape, scales=config.RPN_ANCHOR_SCALES, ratios=config.RPN_ANCHOR_RATIOS,
                strides=config.BACKBONE_STRIDES, anchor_stride=config.RPN_ANCHOR_STRIDE))
            yx = extract_bboxes(masks).astype(np.float64)
            gt = torch.from_numpy(yx[:, [1, 0, 3, 2]] * scale + np.array([dx, dy, dx, dy]))
            matches = match_anchors(gt, all_anchors, iou_threshold=config.RPN_POSITIVE_IOU)
            offset = np.array([dx, dy, dx, dy])
            per_object = [(all_anchors[m].numpy() - offset) / scale for m in matches]
            counts = [len(m) for m in matches]
        picture = draw_sample(image, masks, class_ids, dataset.class_names, anchors=per_object)
        name = f"{len(shown):03d}_{_safe_name(os.path.basename(str(dataset.image_reference(image_id))))}.png"
        path = out / name
        _write_png(picture, path)
        shown.append(ShownSample(path=path, image_id=int(image_id),
                                 class_names=[dataset.class_names[abs(int(c))] for c in class_ids],
                                 anchors_per_object=counts))
    return shown
