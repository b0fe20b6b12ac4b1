"""Stand-ins with the Dataset and model APIs (duck typing), so the evaluation tests do not
depend on ``maskrcnn.data`` or ``maskrcnn.model``."""

from __future__ import annotations

import contextlib
import io

import numpy as np

from maskrcnn.evaluation.matching import extract_bboxes


class StandInDataset:
    """matterport's Dataset API over in-memory images and masks.

    items: list of (image H×W×3 uint8, masks H×W×N bool, class_ids [N] int32).
    """

    def __init__(self, items, class_names, *, source="shapes", source_ids=None, source_class_ids=None):
        self._items = items
        self.class_names = list(class_names)
        self.num_classes = len(self.class_names)
        self.image_ids = np.arange(len(items))
        self.source_class_ids = source_class_ids or {k: k for k in range(self.num_classes)}
        self.image_info = []
        for i, (image, _, _) in enumerate(items):
            self.image_info.append({
                "id": source_ids[i] if source_ids is not None else f"img{i}.png",
                "source": source,
                "path": f"/nowhere/img{i}.png",
                "height": image.shape[0],
                "width": image.shape[1],
            })

    def load_image(self, image_id):
        return self._items[image_id][0].copy()

    def load_mask(self, image_id):
        _, masks, class_ids = self._items[image_id]
        return masks.copy(), np.asarray(class_ids, dtype=np.int32).copy()

    def image_reference(self, image_id):
        return self.image_info[image_id]["path"]

    def get_source_class_id(self, class_id, source):
        assert source == self.image_info[0]["source"]
        return self.source_class_ids[class_id]


def rect_masks(shape, rects):
    masks = np.zeros(tuple(shape) + (len(rects),), dtype=bool)
    for i, (y1, x1, y2, x2) in enumerate(rects):
        masks[y1:y2, x1:x2, i] = True
    return masks


def shapes_dataset() -> StandInDataset:
    """3 images of 40×50. Image k has pixel [0, 0, 0] == k (how the fake model knows it).

    image 0: circle [5:15, 5:20] (area 150), square [20:35, 25:45] (300), an empty circle mask
    image 1: circle [0:10, 0:10], crowd square [15:40, 0:50], square [30:38, 30:48]
    image 2: no instances (matterport's empty load_mask: shape (0, 0, 0))
    classes: BG, circle, square, triangle (triangle has no instance)
    """
    h, w = 40, 50
    items = []
    for k in range(3):
        image = np.full((h, w, 3), 60 + 40 * k, np.uint8)
        image[0, 0, 0] = k
        items.append(image)
    m0 = rect_masks((h, w), [(5, 5, 15, 20), (20, 25, 35, 45), (0, 0, 0, 0)])
    m1 = rect_masks((h, w), [(0, 0, 10, 10), (15, 0, 40, 50), (30, 30, 38, 48)])
    return StandInDataset(
        [(items[0], m0, [1, 2, 1]), (items[1], m1, [1, -2, 2]), (items[2], np.zeros((0, 0, 0), bool), [])],
        ["BG", "circle", "square", "triangle"],
    )


def ground_truth_detections(dataset, image_id, *, keep=None):
    """Detections equal to the non-crowd, non-empty ground truth of one image."""
    masks, class_ids = dataset.load_mask(image_id)
    h, w = dataset.image_info[image_id]["height"], dataset.image_info[image_id]["width"]
    if class_ids.size == 0:
        return {"rois": np.zeros((0, 4), np.int32), "class_ids": np.zeros(0, np.int32),
                "scores": np.zeros(0, np.float32), "masks": np.zeros((h, w, 0), bool)}
    sel = (class_ids > 0) & masks.any(axis=(0, 1))
    if keep is not None:
        sel &= np.isin(np.arange(len(class_ids)), keep)
    masks, class_ids = masks[..., sel], class_ids[sel]
    scores = np.linspace(0.95, 0.5, len(class_ids)).astype(np.float32)
    return {"rois": extract_bboxes(masks), "class_ids": class_ids.astype(np.int32), "scores": scores,
            "masks": masks}


class FakeModel:
    """``detect`` returns, for each image, what ``answer(image_index)`` gives; records batch sizes."""

    def __init__(self, answer):
        self.answer = answer
        self.batches = []

    def detect(self, images, verbose=0):
        self.batches.append(len(images))
        return [self.answer(int(image[0, 0, 0])) for image in images]


class CocoStandIn(StandInDataset):
    """The real COCO annotations of coco_val2017_4img as a Dataset: internal class k in 1..80 is
    the k-th category; image_info ids are COCO image ids, source "coco". Images are black
    (pixel [0, 0, 0] = index) — only the annotations matter here."""

    def __init__(self, ann_path):
        from pycocotools.coco import COCO

        with contextlib.redirect_stdout(io.StringIO()):
            self.coco = COCO(str(ann_path))
        cat_ids = sorted(self.coco.getCatIds())
        self.cat_ids = cat_ids
        class_of = {c: k + 1 for k, c in enumerate(cat_ids)}
        items, ids = [], []
        for idx, img_id in enumerate(sorted(self.coco.getImgIds())):
            info = self.coco.imgs[img_id]
            h, w = info["height"], info["width"]
            anns = self.coco.loadAnns(self.coco.getAnnIds(imgIds=[img_id], iscrowd=None))
            masks = np.stack([self.coco.annToMask(a).astype(bool) for a in anns], axis=-1)
            class_ids = [class_of[a["category_id"]] * (-1 if a["iscrowd"] else 1) for a in anns]
            image = np.zeros((h, w, 3), np.uint8)
            image[0, 0, 0] = idx
            items.append((image, masks, class_ids))
            ids.append(img_id)
        names = ["BG"] + [self.coco.cats[c]["name"] for c in cat_ids]
        super().__init__(items, names, source="coco", source_ids=ids,
                         source_class_ids={k + 1: c for k, c in enumerate(cat_ids)})
