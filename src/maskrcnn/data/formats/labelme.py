"""labelme JSON: a folder of ``<image>.json`` files (or one file), one per image.

- Shapes: ``polygon``, ``rectangle`` (two corners), ``circle`` (center and a point on the
  circle), ``mask`` (labelme >= 5.3: a base64 PNG patch at the first point). ``point``,
  ``points``, ``line`` and ``linestrip`` are ignored with a warning; other types are errors.
- ``group_id`` joins shapes of the same label into one instance (labelme's own rule:
  shapes with the same ``(label, group_id)``; ``group_id: null`` means a shape of its own).
- Labels ``__ignore__`` and ``_background_`` are skipped (labelme's conventions).
- ``imagePath`` is relative to the JSON file and must stay inside its folder.
- **Classes**: ``classes=`` if given; else a ``labels.txt`` (``labels_file=``, or found in the
  folder or its parent, one label per line as labelme's examples use it); else the sorted
  labels found. A label outside the list is an error.
"""

from __future__ import annotations

import base64
import io
import math
from numbers import Real
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...errors import DatasetError
from ..dataset import Dataset
from ..geometry import ellipse, polygon, rectangle
from ..problems import Problems, sink
from .common import check_shape, class_list, oriented_size, read_json, safe_join

SKIPPED_LABELS = {"__ignore__", "_background_", "__background__"}
IGNORED_TYPES = {"point", "points", "line", "linestrip"}


def is_labelme(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("shapes"), list) and "imagePath" in data


def read_labels_file(path: Path) -> list[str]:
    """Labels of a labelme ``labels.txt`` without ``__ignore__`` / ``_background_``."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read labels file ({exc})") from None
    return [ln.strip() for ln in lines if ln.strip() and ln.strip() not in SKIPPED_LABELS]


def _points(value: Any) -> np.ndarray | None:
    if not isinstance(value, list) or not all(
            isinstance(p, (list, tuple)) and len(p) == 2
            and all(isinstance(v, Real) and not isinstance(v, bool) for v in p) for p in value):
        return None
    return np.asarray(value, dtype=np.float64).reshape(-1, 2)


def _decode_mask(b64: Any, *, where: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(base64.b64decode(b64))) as img:
            return np.asarray(img.convert("L")) > 0
    except Exception as exc:
        raise DatasetError(f"{where}: cannot decode the 'mask' PNG ({exc})") from None


def _shape(sh: dict, *, where: str, problems: Problems) -> dict | None:
    stype = sh.get("shape_type") or "polygon"
    if stype in IGNORED_TYPES:
        problems.warning(f"{where}: {stype} shape ignored (it has no area)")
        return None
    pts = _points(sh.get("points"))
    if pts is None:
        problems.error(f"{where}: 'points' must be a list of [x, y] number pairs")
        return None
    if stype == "polygon":
        if len(pts) < 3:
            problems.error(f"{where}: polygon with {len(pts)} points (needs >= 3)")
            return None
        return polygon(pts)
    if stype in ("rectangle", "circle", "mask"):
        if len(pts) != 2:
            problems.error(f"{where}: {stype} needs 2 points, got {len(pts)}")
            return None
        (x1, y1), (x2, y2) = pts
        if stype == "rectangle":
            return rectangle(x1, y1, x2, y2)
        if stype == "circle":
            return ellipse(x1, y1, math.hypot(x2 - x1, y2 - y1), math.hypot(x2 - x1, y2 - y1))
        if not sh.get("mask"):
            problems.error(f"{where}: mask shape without 'mask' data")
            return None
        try:
            mask = _decode_mask(sh["mask"], where=where)
        except DatasetError as exc:
            problems.error(str(exc))
            return None
        return {"type": "bitmap", "x": int(min(x1, x2)), "y": int(min(y1, y2)), "mask": mask}
    problems.error(f"{where}: unknown shape type {stype!r} (known: polygon, rectangle, circle, mask)")
    return None


def _labelme_files(path: Path, problems: Problems) -> list[tuple[Path, Any]]:
    if path.is_file():
        data = read_json(path)
        if not is_labelme(data):
            missing = [k for k in ("shapes", "imagePath") if not isinstance(data, dict) or k not in data]
            what = ", ".join(repr(m) for m in missing) or "'shapes' as a list"
            raise DatasetError(f"{path}: not a labelme file (missing key {what})")
        return [(path, data)]
    files = []
    for f in sorted(path.glob("*.json")):
        try:
            data = read_json(f)
        except DatasetError as exc:
            problems.error(str(exc))
            continue
        if is_labelme(data):
            files.append((f, data))
        elif isinstance(data, dict) and "shapes" in data:
            problems.error(f"{f}: labelme file without 'imagePath'")
        else:
            problems.warning(f"{f}: not a labelme file; skipped")
    if not files and not problems.errors:
        raise DatasetError(f"{path}: no labelme JSON files found")
    return files


def add_labelme(
    dataset: Dataset,
    path: str | Path,
    *,
    classes: Sequence[str] | None = None,
    labels_file: str | Path | None = None,
    keep_negatives: bool = True,
    source: str = "labelme",
    problems: Problems | None = None,
) -> int:
    """Add the labelme files of folder (or file) ``path`` to ``dataset``; returns the image count."""
    problems = sink(problems)
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: not found")
    folder = path if path.is_dir() else path.parent
    files = _labelme_files(path, problems)

    names = class_list(classes, where=str(path))
    if names is None:
        candidates = [Path(labels_file)] if labels_file else [folder / "labels.txt", folder.parent / "labels.txt"]
        found = next((c for c in candidates if c.is_file()), None)
        if labels_file and found is None:
            raise DatasetError(f"{labels_file}: labels file not found")
        if found is not None:
            names = read_labels_file(found)
        else:
            names = sorted({str(sh.get("label")) for _, d in files for sh in d["shapes"]
                            if isinstance(sh, dict) and sh.get("label") and sh.get("label") not in SKIPPED_LABELS})
    index = {name: i + 1 for i, name in enumerate(names)}
    for name, cid in index.items():
        dataset.add_class(source, cid, name)

    added = 0
    for jpath, data in files:
        try:
            image_path = safe_join(jpath.parent, data["imagePath"], where=str(jpath))
        except DatasetError as exc:
            problems.error(str(exc))
            continue
        h, w = data.get("imageHeight"), data.get("imageWidth")
        if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
            height, width = h, w
        else:
            size = oriented_size(image_path, where=str(jpath), problems=problems)
            if size is None:
                continue
            height, width = size
        groups: dict[tuple, dict] = {}
        for k, sh in enumerate(data["shapes"]):
            if not isinstance(sh, dict) or "label" not in sh:
                problems.error(f"{jpath}: shape {k}: missing key 'label'")
                continue
            label = str(sh["label"])
            where = f"{jpath}: shape {k} ({label})"
            if label in SKIPPED_LABELS:
                continue
            shape = _shape(sh, where=where, problems=problems)
            if shape is None:
                continue
            if shape["type"] != "bitmap" and not check_shape(shape, where=where, height=height, width=width,
                                                              problems=problems):
                continue
            if label not in index:
                problems.error(f"{where}: unknown class {label!r} (known: {', '.join(names)})")
                continue
            gid = sh.get("group_id")
            key = (label, gid) if gid is not None else ("", k)
            if key not in groups:
                groups[key] = {"class_id": index[label], "shapes": [], "iscrowd": False, "region": where}
            groups[key]["shapes"].append(shape)
        instances = list(groups.values())
        if not instances and not keep_negatives:
            continue
        dataset.add_image(source, image_id=jpath.stem, path=str(image_path), width=width, height=height,
                          instances=instances, annotation=str(jpath))
        added += 1
    return added
