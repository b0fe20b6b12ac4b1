"""COCO instances JSON (``images``, ``annotations``, ``categories``).

- Segmentations: polygons (a list of flat ``[x1, y1, x2, y2, ...]`` parts, unioned), RLE
  compressed (``counts`` a string) and uncompressed (``counts`` a list), decoded with
  pycocotools. Polygons are rasterized exactly like pycocotools (see :mod:`..geometry`).
- **Category ids** may be non-contiguous (COCO's 1..90): classes are added in increasing
  category id order with source ``"coco"`` and their COCO id, so internal ids are
  contiguous 1..n and ``dataset.get_source_class_id(class_id, "coco")`` gives the COCO
  category id back (what a results file needs); ``dataset.map_source_class_id("coco.18")``
  goes the other way.
- A background category (id 0, or named ``_background_`` / ``__background__``, as
  labelme's exporter writes) is tolerated and skipped.
- ``iscrowd`` annotations are kept and flagged: ``load_mask`` returns their class id
  **negated** (matterport), and ``TrainingSamples`` turns that into ``iscrowd=True``.
- ``file_name`` may hold sub-folders (``JPEGImages/x.jpg``); it must stay inside the image
  folder. The image folder is ``image_dir``, else the first of: the JSON's folder, its
  ``images/`` sub-folder, the sibling ``images/`` or ``<split>`` folder of an
  ``annotations/instances_<split>.json`` file — whichever holds the first image.
- Images without annotations are negatives, kept unless ``keep_negatives=False``.

Each image's info holds the COCO image ``id``, ``width``, ``height``, the raw COCO
``annotations`` and ``instances``.
"""

from __future__ import annotations

from collections import defaultdict
from numbers import Real
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...errors import DatasetError
from ..dataset import Dataset
from ..geometry import polygon
from ..problems import Problems, sink
from .common import check_shape, class_list, read_json, safe_join

BACKGROUND_NAMES = {"_background_", "__background__"}


def is_coco(data: Any) -> bool:
    return isinstance(data, dict) and "images" in data and "annotations" in data and "categories" in data


def _image_root(path: Path, images: list, image_dir: str | Path | None) -> Path:
    if image_dir is not None:
        return Path(image_dir)
    folder = path.parent
    candidates = [folder, folder / "images"]
    if folder.name == "annotations":
        split = path.stem.split("_", 1)[-1]
        candidates += [folder.parent / "images", folder.parent / split, folder.parent / "images" / split]
    first = next((im.get("file_name") for im in images if isinstance(im, dict)), None)
    if isinstance(first, str):
        for cand in candidates:
            if (cand / first).exists():
                return cand
    return folder


def _segmentation_shapes(seg: Any, *, where: str, height: int, width: int, problems: Problems) -> list | None:
    if isinstance(seg, list):
        if not seg:
            problems.error(f"{where}: empty 'segmentation'")
            return None
        parts = seg if isinstance(seg[0], list) else [seg]
        shapes = []
        for k, part in enumerate(parts):
            pw = f"{where} polygon {k}" if len(parts) > 1 else where
            if not (isinstance(part, list) and all(isinstance(v, Real) and not isinstance(v, bool) for v in part)):
                problems.error(f"{pw}: polygon must be a flat list of numbers [x1, y1, x2, y2, ...]")
                return None
            if len(part) % 2:
                problems.error(f"{pw}: polygon has an odd number of coordinates ({len(part)})")
                return None
            if len(part) < 6:
                problems.error(f"{pw}: polygon with {len(part) // 2} points (needs >= 3)")
                return None
            shape = polygon(np.asarray(part, dtype=np.float64).reshape(-1, 2))
            if not check_shape(shape, where=pw, height=height, width=width, problems=problems):
                return None
            shapes.append(shape)
        return shapes
    if isinstance(seg, dict):
        if "counts" not in seg or "size" not in seg:
            problems.error(f"{where}: RLE segmentation needs 'counts' and 'size'")
            return None
        size = seg["size"]
        if not (isinstance(size, list) and len(size) == 2) or [int(v) for v in size] != [height, width]:
            problems.error(f"{where}: RLE size {size} does not match the image size [{height}, {width}] ([h, w])")
            return None
        if not isinstance(seg["counts"], (str, list)):
            problems.error(f"{where}: RLE 'counts' must be a string or a list of integers")
            return None
        return [{"type": "rle", "rle": {"counts": seg["counts"], "size": [height, width]}}]
    problems.error(f"{where}: 'segmentation' must be a list of polygons or an RLE object")
    return None


def add_coco(
    dataset: Dataset,
    path: str | Path,
    *,
    image_dir: str | Path | None = None,
    classes: Sequence[str] | None = None,
    keep_negatives: bool = True,
    source: str = "coco",
    problems: Problems | None = None,
    data: Any = None,
) -> int:
    """Add the categories and images of the COCO file ``path`` to ``dataset``; returns the image count.

    Args:
        image_dir: folder the ``file_name`` s are relative to (default: found, see the module docstring).
        classes: keep only these category names, in this order (their COCO ids are kept as source
            ids); annotations of other categories are dropped. Default: every category.
        keep_negatives: keep images without (kept) annotations.
        source: the dataset source name (``"coco"``).
        problems: where errors and warnings go (default: raise on the first error).
        data: the already parsed JSON.
    """
    problems = sink(problems)
    path = Path(path)
    if data is None:
        data = read_json(path)
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: a COCO file must hold a JSON object")
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise DatasetError(f"{path}: missing key {key!r} (not a COCO instances file?)")
        if not isinstance(data[key], list):
            raise DatasetError(f"{path}: {key!r} must be a list")

    categories: dict[int, str] = {}
    for k, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            problems.error(f"{path}: categories[{k}]: needs 'id' and 'name'")
            continue
        if cat["id"] == 0 or cat["name"] in BACKGROUND_NAMES:
            continue  # labelme's exporter writes a background category: not an object class
        categories[int(cat["id"])] = str(cat["name"])
    wanted = class_list(classes, where=str(path))
    if wanted is not None:
        by_name = {name: cid for cid, name in categories.items()}
        unknown = [n for n in wanted if n not in by_name]
        if unknown:
            raise DatasetError(f"{path}: classes {unknown} are not categories of this file "
                               f"(known: {', '.join(sorted(by_name))})")
        kept = [(by_name[n], n) for n in wanted]
    else:
        kept = sorted(categories.items())
    kept_ids = {cid for cid, _ in kept}
    for cid, name in kept:
        dataset.add_class(source, cid, name)

    images: dict[Any, dict] = {}
    for k, im in enumerate(data["images"]):
        where = f"{path}: images[{k}]"
        if not isinstance(im, dict):
            problems.error(f"{where}: must be an object")
            continue
        missing = [key for key in ("id", "file_name", "width", "height") if key not in im]
        if missing:
            problems.error(f"{where}: missing key {missing[0]!r}")
            continue
        if not all(isinstance(im[key], Real) and not isinstance(im[key], bool) and im[key] >= 1
                   for key in ("width", "height")):
            problems.error(f"{where} ({im['file_name']}): 'width' and 'height' must be positive numbers")
            continue
        if im["id"] in images:
            problems.error(f"{where}: duplicate image id {im['id']!r}")
            continue
        images[im["id"]] = im

    by_image: dict[Any, list] = defaultdict(list)
    for k, ann in enumerate(data["annotations"]):
        where = f"{path}: annotations[{k}]"
        if not isinstance(ann, dict):
            problems.error(f"{where}: must be an object")
            continue
        missing = [key for key in ("image_id", "category_id", "segmentation") if key not in ann]
        if missing:
            problems.error(f"{where} (id {ann.get('id')}): missing key {missing[0]!r}")
            continue
        if ann["image_id"] not in images:
            problems.error(f"{where} (id {ann.get('id')}): unknown image_id {ann['image_id']!r}")
            continue
        by_image[ann["image_id"]].append((k, ann))

    root = _image_root(path, list(images.values()), image_dir)
    added = 0
    for image_id, im in images.items():
        try:
            image_path = safe_join(root, im["file_name"], where=f"{path}: image {image_id}")
        except DatasetError as exc:
            problems.error(str(exc))
            continue
        height, width = int(im["height"]), int(im["width"])
        instances, raw = [], []
        for k, ann in by_image.get(image_id, []):
            where = f"{path}: {im['file_name']} annotation {ann.get('id', k)}"
            cid = ann["category_id"]
            if cid == 0 or (cid not in categories and cid in {c.get("id") for c in data["categories"]
                                                               if isinstance(c, dict)}):
                problems.warning(f"{where}: annotation of the background category {cid} ignored")
                continue
            if cid not in categories:
                problems.error(f"{where}: unknown class: category_id {cid!r} is not in 'categories'")
                continue
            if cid not in kept_ids:
                continue
            shapes = _segmentation_shapes(ann["segmentation"], where=where, height=height, width=width,
                                          problems=problems)
            if shapes is None:
                continue
            instances.append({"class_id": cid, "shapes": shapes, "iscrowd": bool(ann.get("iscrowd", 0)),
                              "region": where})
            raw.append(ann)
        if not instances and not keep_negatives:
            continue
        dataset.add_image(source, image_id=image_id, path=str(image_path), width=width, height=height,
                          annotations=raw, instances=instances, annotation=str(path))
        added += 1
    return added
