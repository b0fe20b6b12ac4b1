"""Helpers shared by the format loaders: JSON reading, safe image paths, shape checks, names."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import DatasetError, ImageError
from ..geometry import Shape, shape_area, shape_bounds
from ..image_io import image_size
from ..problems import Problems

# Folder names that say which split or role a folder has, not what the dataset is about.
GENERIC_FOLDER_NAMES = {
    "train", "val", "valid", "validation", "test", "testing", "training", "trainval", "dev", "eval",
    "data", "dataset", "datasets", "annotations", "annotation", "images", "imgs", "json", "labels",
    "stage1_train", "stage1_test", "stage2_test", "train2014", "val2014", "train2017", "val2017",
}

OUTSIDE_SLACK = 0.5  # pixels a point may lie outside the image before it is worth a warning


def read_json(path: Path) -> Any:
    """Parse a JSON file; a missing or malformed file is a :class:`DatasetError` naming it."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise DatasetError(f"{path}: annotation file not found") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a folder, expected an annotation file") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc})") from None
    if not raw.strip():
        raise DatasetError(f"{path}: annotation file is empty")
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text ({exc})") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None


def safe_join(root: Path, name: Any, *, where: str) -> Path:
    """``root / name`` for a relative ``name`` that stays inside ``root``.

    Raises:
        DatasetError: ``name`` is not a non-empty string, is absolute, or escapes ``root`` with ``..``.
    """
    if not isinstance(name, str) or not name.strip():
        raise DatasetError(f"{where}: image file name {name!r} is not a non-empty string")
    norm = name.replace("\\", "/")
    if norm.startswith("/") or os.path.isabs(name) or (len(norm) > 1 and norm[1] == ":"):
        raise DatasetError(f"{where}: image path {name!r} is absolute; refused (paths must be relative to {root})")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DatasetError(f"{where}: image path {name!r} leaves the dataset folder {root}; refused")
    return root.joinpath(*parts)


def oriented_size(path: Path, *, where: str, problems: Problems) -> tuple[int, int] | None:
    """``(height, width)`` from the image header, or None after reporting an error."""
    try:
        return image_size(path)
    except ImageError as exc:
        problems.error(f"{where}: {exc}")
        return None


def key_error(where: str, key: str, container: str = "entry") -> str:
    return f"{where}: missing key {key!r} in {container}"


def check_shape(shape: Shape, *, where: str, height: int, width: int, problems: Problems) -> bool:
    """Check a geometric shape against its image; report problems; True when it is usable.

    Errors: non-finite coordinates, zero area, lying entirely outside the image.
    Warnings: points more than ``OUTSIDE_SLACK`` (half a pixel) outside the image (the raster
    is clipped anyway; the slack spares annotators who clicked on a border pixel's far edge).
    """
    if shape["type"] == "polygon":
        pts = shape["points"]
        if not np.isfinite(pts).all():
            problems.error(f"{where}: polygon has non-finite coordinates")
            return False
    elif shape["type"] == "ellipse":
        if not all(math.isfinite(shape[k]) for k in ("cx", "cy", "rx", "ry", "theta")):
            problems.error(f"{where}: {shape['type']} has non-finite parameters")
            return False
    area = shape_area(shape)
    if area is not None and area <= 0:
        problems.error(f"{where}: {shape['type']} has zero area")
        return False
    bounds = shape_bounds(shape)
    if bounds is not None:
        x1, y1, x2, y2 = bounds
        if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
            problems.error(f"{where}: {shape['type']} lies entirely outside the image ({width}x{height})")
            return False
        slack = OUTSIDE_SLACK
        if x1 < -slack or y1 < -slack or x2 > width + slack or y2 > height + slack:
            problems.warning(f"{where}: points outside the image ({width}x{height}): x in [{x1:g}, {x2:g}], "
                             f"y in [{y1:g}, {y2:g}]; clipped")
    return True


def default_class_name(folder: Path) -> str:
    """The implicit class name of a single-class dataset: the dataset folder's name.

    Walks up from ``folder`` past generic names (train, val, dataset, annotations...), so
    ``balloon/train/via_region_data.json`` gives ``"balloon"``; falls back to ``"object"``.
    """
    for part in [folder, *folder.parents]:
        name = part.name
        if name and name.lower() not in GENERIC_FOLDER_NAMES:
            return name
    return "object"


def class_list(values: list[str] | tuple[str, ...] | None, *, where: str) -> list[str] | None:
    """Validate a user-given class list: unique non-empty strings, no background."""
    if values is None:
        return None
    out = [str(v) for v in values]
    if any(not v for v in out):
        raise DatasetError(f"{where}: classes must be non-empty names, got {values!r}")
    if len(set(out)) != len(out):
        raise DatasetError(f"{where}: classes {values!r} contain duplicates")
    if "BG" in out:
        raise DatasetError(f"{where}: do not list the background 'BG' in classes; it is always class 0")
    return out
