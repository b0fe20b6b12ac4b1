"""Ground truth and detections in COCO's JSON form (RLE masks), for any dataset.

- :func:`dataset_to_coco` turns a matterport-style ``Dataset`` (``load_mask`` → bool
  ``[H, W, N]`` + class ids, negative = crowd) into a pycocotools ``COCO`` ground truth.
  Image ids are the dataset's internal ids (``dataset.image_ids``); categories are
  ``dataset.class_names[1:]`` with contiguous ids ``1..C-1``.
- :func:`detections_to_coco_results` turns ``model.detect`` results into COCO result
  dicts (``bbox`` as ``[x, y, w, h]`` from the ``(y1, x1, y2, x2)`` rois, RLE
  ``segmentation``, ``score``, ``category_id``), either in those internal ids (to score
  against :func:`dataset_to_coco`) or mapped back to the source's image and category
  ids (to score against the source's own annotation file, e.g. real COCO).

Only numpy and pycocotools; the dataset and the model are duck-typed.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from ..errors import DatasetError, MaskRCNNError

__all__ = [
    "encode_masks",
    "make_coco",
    "dataset_to_coco",
    "detections_to_coco_results",
]


def encode_masks(masks: np.ndarray) -> list[dict]:
    """COCO compressed RLEs of ``[H, W, N]`` masks (bool or 0/1), one per instance.

    ``counts`` is a ``str`` (JSON-serializable). Returns ``[]`` for ``N == 0``.
    """
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[-1] == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray((masks > 0).astype(np.uint8)))
    for rle in rles:
        if isinstance(rle["counts"], bytes):
            rle["counts"] = rle["counts"].decode("ascii")
    return rles


def make_coco(dataset: dict) -> COCO:
    """A pycocotools ``COCO`` over an in-memory ``{"images", "annotations", "categories"}``
    dict, without pycocotools' console chatter."""
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _image_size(dataset, image_id: int, masks: np.ndarray) -> tuple[int, int]:
    """(height, width) of an image: from its masks, else image_info, else the pixels."""
    info = dataset.image_info[image_id]
    if masks.ndim == 3 and masks.shape[-1] > 0:
        h, w = int(masks.shape[0]), int(masks.shape[1])
        ih, iw = info.get("height"), info.get("width")
        if ih is not None and iw is not None and (int(ih), int(iw)) != (h, w):
            raise DatasetError(
                f"image {image_id} ({_reference(dataset, image_id)}): load_mask gives masks of "
                f"{h}x{w} but image_info says height={ih}, width={iw}"
            )
        return h, w
    if info.get("height") is not None and info.get("width") is not None:
        return int(info["height"]), int(info["width"])
    image = np.asarray(dataset.load_image(image_id))
    return int(image.shape[0]), int(image.shape[1])


def _reference(dataset, image_id: int) -> str:
    info = dataset.image_info[image_id]
    ref = None
    if hasattr(dataset, "image_reference"):
        with contextlib.suppress(Exception):
            ref = dataset.image_reference(image_id)
    return str(ref or info.get("path") or info.get("id"))


def dataset_to_coco(dataset, image_ids: Sequence[int] | None = None) -> COCO:
    """Ground truth of ``dataset`` as a pycocotools ``COCO`` object, built from ``load_mask``.

    dataset: matterport API (``image_ids``, ``class_names``, ``image_info``, ``load_mask``).
    image_ids: internal ids to include (default: all).

    Each instance becomes an annotation with an RLE ``segmentation``, ``area`` = mask
    pixels, ``bbox`` = ``[x, y, w, h]`` of the mask, ``iscrowd`` = 1 for a negative class
    id (category ``-class_id``), else 0. Instances with an empty mask are left out (no
    pixel can match them). COCO image ids are the internal ids; each image entry also
    keeps ``source``/``source_id``/``file_name`` of ``image_info``. Categories:
    ``[{"id": k, "name": class_names[k]} for k in 1..C-1]``.
    """
    class_names = list(dataset.class_names)
    num_classes = len(class_names)
    if image_ids is None:
        image_ids = list(dataset.image_ids)
    images, annotations = [], []
    for image_id in image_ids:
        image_id = int(image_id)
        masks, class_ids = dataset.load_mask(image_id)
        masks = np.asarray(masks)
        class_ids = np.asarray(class_ids).reshape(-1).astype(np.int64)
        n = class_ids.shape[0]
        if n and (masks.ndim != 3 or masks.shape[-1] != n):
            raise DatasetError(
                f"image {image_id} ({_reference(dataset, image_id)}): load_mask returned masks of "
                f"shape {masks.shape} for {n} class ids; expected [H, W, {n}]"
            )
        bad = class_ids[(class_ids == 0) | (np.abs(class_ids) >= num_classes)]
        if bad.size:
            raise DatasetError(
                f"image {image_id} ({_reference(dataset, image_id)}): class id {int(bad[0])} is not "
                f"an object class of this dataset (1..{num_classes - 1}, negative for crowd)"
            )
        height, width = _image_size(dataset, image_id, masks)
        info = dataset.image_info[image_id]
        path = info.get("path")
        images.append({
            "id": image_id,
            "height": height,
            "width": width,
            "file_name": os.path.basename(str(path)) if path else str(info.get("id", image_id)),
            "source": info.get("source"),
            "source_id": info.get("id"),
        })
        if n == 0:
            continue
        rles = encode_masks(masks)
        areas = mask_utils.area(rles)
        bboxes = mask_utils.toBbox(rles)
        for k in range(n):
            if areas[k] == 0:
                continue
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": int(abs(class_ids[k])),
                "segmentation": rles[k],
                "area": float(areas[k]),
                "bbox": [float(v) for v in bboxes[k]],
                "iscrowd": int(class_ids[k] < 0),
            })
    categories = [{"id": k, "name": str(class_names[k]), "supercategory": ""} for k in range(1, num_classes)]
    return make_coco({"images": images, "annotations": annotations, "categories": categories})


def _category_mapper(dataset, category_map) -> Callable[[int, int], Any]:
    """(internal class id, internal image id) → result category id."""
    if category_map is not None:
        if callable(category_map):
            return lambda cid, _img: category_map(cid)
        if isinstance(category_map, Mapping):
            def from_map(cid, _img):
                if cid not in category_map:
                    raise MaskRCNNError(f"category_map has no entry for class id {cid}")
                return category_map[cid]
            return from_map
        raise MaskRCNNError(
            f"category_map must be a dict or a function of the class id, not {type(category_map).__name__}"
        )
    if dataset is not None:
        def from_source(cid, img):
            source = dataset.image_info[img].get("source")
            try:
                return dataset.get_source_class_id(cid, source)
            except Exception as exc:  # matterport asserts the class belongs to the source
                raise DatasetError(
                    f"image {img}: class id {cid} has no category id in source {source!r} ({exc})"
                ) from None
        return from_source
    return lambda cid, _img: cid


def _source_image_id(dataset, image_id: int):
    source_id = dataset.image_info[image_id].get("id")
    if isinstance(source_id, (bool, np.bool_)) or not isinstance(source_id, (int, np.integer)):
        raise DatasetError(
            f"image {image_id}: image_info id {source_id!r} is not a COCO (integer) image id; "
            "pass dataset=None to keep internal image ids (as dataset_to_coco uses)"
        )
    return int(source_id)


def _check_result(result: Mapping, image_id: int) -> int:
    for key in ("rois", "class_ids", "scores"):
        if key not in result:
            raise MaskRCNNError(f"detections of image {image_id}: missing key {key!r}")
    n = len(np.asarray(result["class_ids"]).reshape(-1))
    rois = np.asarray(result["rois"]).reshape(-1, 4) if n else np.zeros((0, 4))
    if rois.shape[0] != n or len(np.asarray(result["scores"]).reshape(-1)) != n:
        raise MaskRCNNError(
            f"detections of image {image_id}: rois {np.asarray(result['rois']).shape}, class_ids "
            f"{np.asarray(result['class_ids']).shape} and scores {np.asarray(result['scores']).shape} "
            "disagree on the number of instances"
        )
    masks = result.get("masks")
    if masks is not None and n:
        masks = np.asarray(masks)
        if masks.ndim != 3 or masks.shape[-1] != n:
            raise MaskRCNNError(
                f"detections of image {image_id}: masks of shape {masks.shape}; expected [H, W, {n}]"
            )
    return n


def detections_to_coco_results(
    results: Sequence[Mapping],
    image_ids: Sequence[int],
    dataset=None,
    category_map: Mapping[int, int] | Callable[[int], int] | None = None,
) -> list[dict]:
    """COCO result dicts of ``model.detect`` outputs.

    results: one dict per image with ``rois`` ``[N, (y1, x1, y2, x2)]`` in original image
        pixels, ``class_ids`` ``[N]``, ``scores`` ``[N]`` and optionally ``masks``
        bool ``[H, W, N]`` (without masks only ``bbox`` is written).
    image_ids: the internal image id of each result.
    dataset: None → ``image_id`` and ``category_id`` stay the internal ids (what
        :func:`dataset_to_coco` uses). Given → matterport's ``build_coco_results``:
        ``image_id = image_info[i]["id"]`` (must be an int) and
        ``category_id = dataset.get_source_class_id(class_id, image_info[i]["source"])``,
        to score against the source's own annotation file (e.g. real COCO).
    category_map: overrides the category mapping: a dict or a function from the
        contiguous class id to the category id to write.

    Returns dicts ``{"image_id", "category_id", "bbox": [x, y, w, h], "score",
    "segmentation": RLE}`` (JSON-serializable).
    """
    results = list(results)
    image_ids = [int(i) for i in image_ids]
    if len(results) != len(image_ids):
        raise MaskRCNNError(
            f"detections_to_coco_results: {len(results)} results for {len(image_ids)} image ids"
        )
    to_category = _category_mapper(dataset, category_map)
    out: list[dict] = []
    for result, image_id in zip(results, image_ids):
        n = _check_result(result, image_id)
        if n == 0:
            continue
        out_image_id = _source_image_id(dataset, image_id) if dataset is not None else image_id
        rois = np.asarray(result["rois"], dtype=np.float64).reshape(-1, 4)
        class_ids = np.asarray(result["class_ids"]).reshape(-1).astype(np.int64)
        scores = np.asarray(result["scores"], dtype=np.float64).reshape(-1)
        masks = result.get("masks")
        rles = encode_masks(masks) if masks is not None else [None] * n
        for k in range(n):
            y1, x1, y2, x2 = rois[k]
            det = {
                "image_id": out_image_id,
                "category_id": int(to_category(int(class_ids[k]), image_id)),
                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                "score": float(scores[k]),
            }
            if rles[k] is not None:
                det["segmentation"] = rles[k]
            out.append(det)
    return out
