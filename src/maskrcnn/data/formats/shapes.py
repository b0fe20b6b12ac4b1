"""Synthetic shapes (matterport's ``shapes`` sample): squares, circles and triangles.

Generated in memory, deterministic by seed: image ``i`` of ``ShapesDataset(count, height,
width, seed)`` depends only on ``(seed, i, height, width)`` (so a smaller count gives a
prefix of a larger one). Each image has a random background color and 1-4 shapes of
random colors; heavily overlapping shapes are removed (box NMS at IoU 0.3, like
matterport), later shapes occlude earlier ones and the masks say so. Classes (source
``"shapes"``): 1 square, 2 circle, 3 triangle.

    dataset = ShapesDataset(500, 128, 128, seed=0)   # loaded and prepared
    # or matterport's way:
    dataset = ShapesDataset(); dataset.load_shapes(500, 128, 128); dataset.prepare()
"""

from __future__ import annotations

import math

import numpy as np

from ...errors import DatasetError
from ..dataset import Dataset

SHAPE_CLASSES = ("square", "circle", "triangle")


def _nms(boxes: np.ndarray, threshold: float) -> list[int]:
    """Greedy NMS in list order (earlier boxes win), boxes ``[N, 4]`` (y1, x1, y2, x2)."""
    keep: list[int] = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in range(len(boxes)):
        ok = True
        for j in keep:
            yy1, xx1 = max(boxes[i, 0], boxes[j, 0]), max(boxes[i, 1], boxes[j, 1])
            yy2, xx2 = min(boxes[i, 2], boxes[j, 2]), min(boxes[i, 3], boxes[j, 3])
            inter = max(0, yy2 - yy1) * max(0, xx2 - xx1)
            if inter / (area[i] + area[j] - inter) > threshold:
                ok = False
                break
        if ok:
            keep.append(i)
    return keep


def random_image_spec(rng: np.random.Generator, height: int, width: int) -> tuple[tuple[int, ...], list]:
    """A background color and a list of ``(shape, color, (x, y, s))`` (matterport's random_image)."""
    side = min(height, width)
    buffer = min(20, max(2, side // 8))
    bg = tuple(int(v) for v in rng.integers(0, 256, 3))
    shapes, boxes = [], []
    for _ in range(int(rng.integers(1, 5))):
        shape = SHAPE_CLASSES[int(rng.integers(0, 3))]
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        y = int(rng.integers(buffer, max(buffer + 1, height - buffer)))
        x = int(rng.integers(buffer, max(buffer + 1, width - buffer)))
        s = int(rng.integers(buffer, max(buffer + 1, side // 4 + 1)))
        shapes.append((shape, color, (x, y, s)))
        boxes.append([y - s, x - s, y + s, x + s])
    keep = _nms(np.asarray(boxes, dtype=np.float64), 0.3)
    return bg, [shapes[i] for i in keep]


def _draw(draw, shape: str, dims: tuple[int, int, int], fill) -> None:
    x, y, s = dims
    if shape == "square":
        draw.rectangle([x - s, y - s, x + s, y + s], fill=fill)
    elif shape == "circle":
        draw.ellipse([x - s, y - s, x + s, y + s], fill=fill)
    else:
        half = s / math.sin(math.radians(60))
        draw.polygon([(x, y - s), (x - half, y + s), (x + half, y + s)], fill=fill)


class ShapesDataset(Dataset):
    """Synthetic shapes; see the module docstring.

    Args:
        count: number of images; when > 0 they are generated and the dataset is prepared.
        height, width: image size in pixels.
        seed: the generator seed.
    """

    def __init__(self, count: int = 0, height: int = 128, width: int = 128, seed: int = 0,
                 class_map: dict | None = None) -> None:
        super().__init__(class_map=class_map)
        if count:
            self.load_shapes(count, height, width, seed=seed)
            self.prepare()

    def load_shapes(self, count: int, height: int, width: int, seed: int = 0) -> None:
        """Add ``count`` synthetic images of ``height x width`` (matterport's load_shapes, plus a seed)."""
        if count < 0 or height < 8 or width < 8:
            raise DatasetError(f"ShapesDataset: need count >= 0 and images of at least 8x8, "
                               f"got count={count}, {height}x{width}")
        for cid, name in enumerate(SHAPE_CLASSES, start=1):
            self.add_class("shapes", cid, name)
        start = sum(1 for info in self.image_info if info["source"] == "shapes")
        for i in range(start, start + count):
            rng = np.random.default_rng([int(seed), i, int(height), int(width)])
            bg, shapes = random_image_spec(rng, height, width)
            self.add_image("shapes", image_id=i, path=None, width=width, height=height,
                           bg_color=np.array(bg), shapes=shapes)

    def load_image(self, image_id: int) -> np.ndarray:
        info = self.image_info[image_id]
        if info["source"] != "shapes":
            return super().load_image(image_id)
        from PIL import Image, ImageDraw

        img = Image.new("RGB", (info["width"], info["height"]), tuple(int(v) for v in info["bg_color"]))
        draw = ImageDraw.Draw(img)
        for shape, color, dims in info["shapes"]:
            _draw(draw, shape, dims, tuple(color))
        return np.asarray(img, dtype=np.uint8).copy()

    def load_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Masks ``[H, W, N]`` with occlusions applied; fully hidden shapes are dropped."""
        info = self.image_info[image_id]
        if info["source"] != "shapes":
            return super().load_mask(image_id)
        from PIL import Image, ImageDraw

        self._require_prepared()
        h, w = info["height"], info["width"]
        masks = np.zeros((len(info["shapes"]), h, w), dtype=bool)
        for k, (shape, _, dims) in enumerate(info["shapes"]):
            img = Image.new("L", (w, h), 0)
            _draw(ImageDraw.Draw(img), shape, dims, 1)
            masks[k] = np.asarray(img, dtype=bool)
        visible = np.ones((h, w), dtype=bool)
        for k in range(len(masks) - 1, -1, -1):  # later shapes are drawn on top
            masks[k] &= visible
            visible &= ~masks[k]
        keep = masks.reshape(len(masks), -1).any(axis=1)
        class_ids = np.array([self.map_source_class_id(f"shapes.{SHAPE_CLASSES.index(s) + 1}")
                              for s, _, _ in info["shapes"]], dtype=np.int32)
        return np.moveaxis(masks[keep], 0, -1), class_ids[keep]

    def image_reference(self, image_id: int) -> str:
        info = self.image_info[image_id]
        if info["source"] == "shapes":
            return f"shapes.{info['id']}"
        return super().image_reference(image_id)
