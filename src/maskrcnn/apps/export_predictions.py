"""Predictions as files other tools open: COCO results, VIA 2 and labelme polygons.

All functions take matterport ``detect`` results — one dict per image with ``rois``
``[N, (y1, x1, y2, x2)]`` in original pixels, ``class_ids`` ``[N]``, ``scores`` ``[N]``,
``masks`` bool ``[H, W, N]`` — and describe each image with an :class:`ImageRecord`.

- :func:`coco_images_document`: a minimal COCO ground-truth file (``images`` and
  ``categories``, no annotations) so that ``COCO(images.json).loadRes(predictions.json)``
  works; image ids are ``1..n`` in input order, category ids are the model's class ids.
- :func:`coco_results`: COCO result dicts (RLE ``segmentation``, ``bbox`` ``[x, y, w, h]``).
- :func:`via_export`: a VIA 2.x *export* (``{filename+size: {filename, size, regions: [...],
  file_attributes}}``) with ``region_attributes`` ``{"name": class, "score": "0.973"}``, the
  format of the car-damage tutorial; VIA matches it to images by file name and byte size.
- :func:`labelme_document`: one labelme JSON per image (``imageData`` null, ``imagePath``
  relative to the JSON file), parts of one instance sharing a ``group_id``, the score in
  each shape's ``description``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..fileio import write_text
from .polygons import Parts, mask_to_polygons

LABELME_VERSION = "5.0.1"


@dataclass(frozen=True)
class ImageRecord:
    """One input image of a detection run.

    Attributes:
        path: the image file.
        image_id: its COCO image id (``1..n``).
        height, width: pixels.
        name: a unique stem for the files written about it (``pictures/<name>.png``).
    """

    path: Path
    image_id: int
    height: int
    width: int
    name: str


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = None) -> Path:
    """Write ``obj`` as JSON atomically (:func:`maskrcnn.fileio.write_text`)."""
    return write_text(path, json.dumps(obj, indent=indent))


def coco_images_document(records: Sequence[ImageRecord], class_names: Sequence[str]) -> dict:
    """COCO ``{"info", "images", "annotations": [], "categories"}`` for ``loadRes`` to attach to.

    Categories are ``{"id": k, "name": class_names[k]}`` for ``k = 1..C-1`` (0 is the background).
    """
    return {
        "info": {"description": "images of a maskrcnn detect run (no ground truth)"},
        "images": [
            {"id": r.image_id, "file_name": r.path.name, "path": str(r.path), "height": r.height, "width": r.width}
            for r in records
        ],
        "annotations": [],
        "categories": [
            {"id": k, "name": str(class_names[k]), "supercategory": ""} for k in range(1, len(class_names))
        ],
    }


def coco_results(records: Sequence[ImageRecord], results: Sequence[Mapping]) -> list[dict]:
    """COCO result dicts (``image_id``, ``category_id``, ``bbox``, ``score``, RLE ``segmentation``)."""
    from ..evaluation.coco_format import detections_to_coco_results

    return detections_to_coco_results(list(results), [r.image_id for r in records])


def _instances(result: Mapping, class_names: Sequence[str], *, tolerance: float, parts: Parts):
    """Yield ``(index, class name, score, polygons)`` per detected instance with a non-empty outline."""
    class_ids = np.asarray(result["class_ids"]).reshape(-1)
    scores = np.asarray(result["scores"], dtype=np.float64).reshape(-1)
    masks = np.asarray(result["masks"])
    for k in range(len(class_ids)):
        polygons = mask_to_polygons(masks[:, :, k], tolerance=tolerance, parts=parts)
        if not polygons:
            continue
        cid = int(class_ids[k])
        name = str(class_names[cid]) if 0 <= cid < len(class_names) else str(cid)
        yield k, name, float(scores[k]), polygons


def _round(values: np.ndarray) -> list[float]:
    return [round(float(v), 2) for v in values]


def via_entry(
    record: ImageRecord,
    result: Mapping,
    class_names: Sequence[str],
    *,
    tolerance: float = 1.0,
    parts: Parts = "all",
) -> tuple[str, dict]:
    """One image of a VIA 2.x export: ``(filename + byte size, {filename, size, regions, file_attributes})``.

    One region per polygon part, ``region_attributes`` ``{"name": class name, "score": "0.973"}``.
    """
    size = record.path.stat().st_size if record.path.exists() else -1
    regions = []
    for _k, name, score, polygons in _instances(result, class_names, tolerance=tolerance, parts=parts):
        for poly in polygons:
            regions.append({
                "shape_attributes": {
                    "name": "polygon",
                    "all_points_x": _round(poly[:, 0]),
                    "all_points_y": _round(poly[:, 1]),
                },
                "region_attributes": {"name": name, "score": f"{score:.3f}"},
            })
    entry = {"filename": record.path.name, "size": size, "regions": regions, "file_attributes": {}}
    return f"{record.path.name}{size}", entry


def via_export(
    records: Sequence[ImageRecord],
    results: Sequence[Mapping],
    class_names: Sequence[str],
    *,
    tolerance: float = 1.0,
    parts: Parts = "all",
) -> dict:
    """A VIA 2.x export of the predicted polygons of several images (see :func:`via_entry`)."""
    return dict(
        via_entry(record, result, class_names, tolerance=tolerance, parts=parts)
        for record, result in zip(records, results)
    )


def labelme_document(
    record: ImageRecord,
    result: Mapping,
    class_names: Sequence[str],
    *,
    image_path: str,
    tolerance: float = 1.0,
    parts: Parts = "all",
) -> dict:
    """A labelme JSON for one image; ``image_path`` is its ``imagePath``: the image's path relative
    to the JSON file (labelme keeps them side by side: the file name).

    Each polygon is a shape ``{"label", "points", "group_id", "shape_type": "polygon", "flags",
    "description": "score=0.973"}``; the parts of one instance share ``group_id`` (the
    instance's index), a single-part instance has ``group_id`` null.
    """
    shapes = []
    for k, name, score, polygons in _instances(result, class_names, tolerance=tolerance, parts=parts):
        group = k if len(polygons) > 1 else None
        for poly in polygons:
            shapes.append({
                "label": name,
                "points": [[round(float(x), 2), round(float(y), 2)] for x, y in poly],
                "group_id": group,
                "description": f"score={score:.3f}",
                "shape_type": "polygon",
                "flags": {},
            })
    return {
        "version": LABELME_VERSION,
        "flags": {},
        "shapes": shapes,
        "imagePath": str(image_path).replace(os.sep, "/"),
        "imageData": None,
        "imageHeight": int(record.height),
        "imageWidth": int(record.width),
    }
