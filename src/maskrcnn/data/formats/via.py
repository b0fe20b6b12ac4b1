"""VGG Image Annotator (VIA) files: 1.x exports, 2.x exports and 2.x project files.

- **VIA 1.x export** (matterport's balloon): ``{"<filename><size>": {"filename", "regions": {"0": ...}}}``
- **VIA 2.x export**: the same with ``"regions"`` a list;
- **VIA 2.x project**: ``{"_via_settings", "_via_img_metadata": <an export>, "_via_attributes"}``.

Shapes: ``polygon`` and ``polyline`` (closed), ``rect``, ``circle``, ``ellipse`` (with
``theta``); ``point`` regions are ignored with a warning; any other shape is an error.

**Classes.** With ``class_attribute="name"`` each region's ``region_attributes["name"]``
is its class (a checkbox attribute must have exactly one option ticked). The class list
is, in order of preference: ``classes=`` (names in order; any other value is an error),
the options declared for that attribute in a project file's ``_via_attributes``, or the
sorted set of values found. Without ``class_attribute`` there is one implicit class named
``class_name``, by default the dataset folder's name (``balloon/train/...`` -> ``"balloon"``,
see :func:`~maskrcnn.data.formats.common.default_class_name`); ``classes=["balloon"]`` (one
name) names it too, so a validation set can be given the training set's class list.

Images without regions are negatives and are kept unless ``keep_negatives=False``.
Image sizes come from the image headers (EXIF orientation applied). Each image's info
has matterport's fields ``width``, ``height``, ``polygons`` (the regions'
``shape_attributes``) plus ``instances`` (see :mod:`maskrcnn.data.dataset`).
"""

from __future__ import annotations

from numbers import Real
from pathlib import Path
from typing import Any, Sequence

from ...errors import DatasetError
from ..dataset import Dataset
from ..geometry import Shape, ellipse, polygon, rectangle
from ..problems import Problems, sink
from .common import check_shape, class_list, default_class_name, oriented_size, read_json, safe_join


#: What a VIA annotation file holds, for messages about files that do not.
VIA_EXPECTED = ("a VIA export (an object keyed by '<filename><size>' whose entries have 'filename' and "
                "'regions') or a VIA project (an object with '_via_img_metadata')")


def describe_json(data: Any) -> str:
    """A few words on what a parsed JSON value is (``"a JSON list of 3 items"``, ``"an empty JSON object"``)."""
    if isinstance(data, dict):
        if not data:
            return "an empty JSON object"
        keys = ", ".join(repr(k) for k in list(data)[:3]) + (", ..." if len(data) > 3 else "")
        return f"a JSON object with keys {keys}"
    if isinstance(data, list):
        return f"a JSON list of {len(data)} item{'s' * (len(data) != 1)}"
    return f"a JSON {type(data).__name__} ({data!r:.40})"


def not_via_message(path: str | Path, data: Any) -> str:
    """``"<path>: is <what it is>, not VIA annotations (expected ...)"``."""
    return f"{path}: is {describe_json(data)}, not VIA annotations (expected {VIA_EXPECTED})"


def via_kind(data: Any) -> str | None:
    """``"project"``, ``"export"``, ``"attributes"`` (a VIA attribute definition file) or None."""
    if not isinstance(data, dict):
        return None
    if "_via_img_metadata" in data:
        return "project"
    if set(data) <= {"region", "file"} and data and all(isinstance(v, dict) for v in data.values()):
        return "attributes"
    values = list(data.values())
    if values and all(isinstance(v, dict) for v in values) and any("filename" in v for v in values) and all(
            {"filename", "regions", "size", "file_attributes"} & set(v) for v in values):
        return "export"
    return None


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, Real) and not isinstance(v, bool) for v in value)


def _number(sa: dict, key: str) -> float | None:
    v = sa.get(key)
    return float(v) if isinstance(v, Real) and not isinstance(v, bool) else None


def parse_region_shape(sa: Any, *, where: str, problems: Problems) -> Shape | None:
    """A VIA ``shape_attributes`` dict as a canonical shape; None (after reporting) if unusable."""
    if not isinstance(sa, dict):
        problems.error(f"{where}: 'shape_attributes' must be an object, got {type(sa).__name__}")
        return None
    name = sa.get("name")
    if name in ("polygon", "polyline"):
        xs, ys = sa.get("all_points_x"), sa.get("all_points_y")
        for key, val in (("all_points_x", xs), ("all_points_y", ys)):
            if val is None:
                problems.error(f"{where}: {name} is missing key {key!r}")
                return None
            if not _numbers(val):
                problems.error(f"{where}: {name} {key!r} must be a list of numbers")
                return None
        if len(xs) != len(ys):
            problems.error(f"{where}: {name} has {len(xs)} x but {len(ys)} y coordinates")
            return None
        if len(xs) < 3:
            problems.error(f"{where}: {name} with {len(xs)} points (needs >= 3)")
            return None
        return polygon(list(zip(xs, ys)))
    if name == "rect":
        vals = {k: _number(sa, k) for k in ("x", "y", "width", "height")}
        missing = [k for k, v in vals.items() if v is None]
        if missing:
            problems.error(f"{where}: rect is missing numeric {', '.join(repr(m) for m in missing)}")
            return None
        if vals["width"] <= 0 or vals["height"] <= 0:
            problems.error(f"{where}: rect has zero area (width {vals['width']:g}, height {vals['height']:g})")
            return None
        return rectangle(vals["x"], vals["y"], vals["x"] + vals["width"], vals["y"] + vals["height"])
    if name in ("circle", "ellipse"):
        keys = ("cx", "cy", "r") if name == "circle" else ("cx", "cy", "rx", "ry")
        vals = {k: _number(sa, k) for k in keys}
        missing = [k for k, v in vals.items() if v is None]
        if missing:
            problems.error(f"{where}: {name} is missing numeric {', '.join(repr(m) for m in missing)}")
            return None
        if name == "circle":
            return ellipse(vals["cx"], vals["cy"], vals["r"], vals["r"])
        return ellipse(vals["cx"], vals["cy"], vals["rx"], vals["ry"], _number(sa, "theta") or 0.0)
    if name == "point":
        problems.warning(f"{where}: point region ignored (a point has no area)")
        return None
    problems.error(f"{where}: unknown region shape {name!r} (known: polygon, polyline, rect, circle, "
                   f"ellipse; point is ignored)")
    return None


def _regions(entry: dict) -> list[tuple[str, Any]]:
    regions = entry.get("regions")
    if isinstance(regions, dict):  # VIA 1.x: {"0": {...}, "1": {...}}
        keys = sorted(regions, key=lambda k: (0, int(k)) if str(k).isdigit() else (1, str(k)))
        return [(str(k), regions[k]) for k in keys]
    if isinstance(regions, list):
        return [(str(i), r) for i, r in enumerate(regions)]
    return []


def _class_value(attrs: Any, attribute: str) -> tuple[str | None, str | None]:
    """(value, problem) of a region's class attribute."""
    if not isinstance(attrs, dict) or attribute not in attrs:
        return None, f"has no {attribute!r} attribute"
    value = attrs[attribute]
    if isinstance(value, dict):  # checkbox: {"option": true, ...}
        ticked = [k for k, on in value.items() if on]
        if len(ticked) != 1:
            return None, f"checkbox attribute {attribute!r} must have exactly one option ticked, got {ticked}"
        value = ticked[0]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        return None, f"has an empty {attribute!r} attribute"
    return value.strip(), None


def add_via(
    dataset: Dataset,
    path: str | Path,
    *,
    class_attribute: str | None = None,
    class_name: str | None = None,
    classes: Sequence[str] | None = None,
    keep_negatives: bool = True,
    image_dir: str | Path | None = None,
    source: str = "via",
    problems: Problems | None = None,
    data: Any = None,
) -> int:
    """Add the classes and images of the VIA file ``path`` to ``dataset``; returns the image count.

    Args:
        class_attribute: region attribute holding the class name (None: one implicit class).
        class_name: the implicit class's name (default: the dataset folder's name).
        classes: the class names, in order (class ids 1..n); other attribute values are errors.
        keep_negatives: keep images that have no regions.
        image_dir: folder of the images (default: the JSON file's folder).
        source: the dataset source name for the classes and images.
        problems: where errors and warnings go (default: raise on the first error).
        data: the already parsed JSON, to avoid reading ``path`` twice.
    """
    problems = sink(problems)
    path = Path(path)
    if data is None:
        data = read_json(path)
    kind = via_kind(data)
    if kind == "attributes":
        raise DatasetError(f"{path}: is a VIA attribute definition file, not annotations")
    if kind is None:
        raise DatasetError(not_via_message(path, data))
    metadata = data["_via_img_metadata"] if kind == "project" else data
    if not isinstance(metadata, dict):
        raise DatasetError(f"{path}: '_via_img_metadata' must be an object")
    root = Path(image_dir) if image_dir is not None else path.parent
    names = class_list(classes, where=str(path))

    if class_attribute:
        if names is None and kind == "project":
            declared = (data.get("_via_attributes") or {}).get("region", {}).get(class_attribute, {})
            options = declared.get("options") if isinstance(declared, dict) else None
            if isinstance(options, dict) and options:
                names = [str(k) for k in options]
        if names is None:
            found = set()
            for entry in metadata.values():
                if isinstance(entry, dict):
                    for _, region in _regions(entry):
                        value, _ = _class_value((region or {}).get("region_attributes")
                                                if isinstance(region, dict) else None, class_attribute)
                        if value is not None:
                            found.add(value)
            names = sorted(found)
    elif names is not None:  # one implicit class: a one-name class list names it
        if len(names) != 1 or (class_name and class_name != names[0]):
            raise DatasetError(f"{path}: classes={names} but without class_attribute there is one implicit class "
                               f"({class_name or default_class_name(path.parent)!r}); pass class_attribute= "
                               f"(CLI: --class-attribute) to read classes from a region attribute")
    else:
        names = [class_name or default_class_name(path.parent)]
    index = {name: i + 1 for i, name in enumerate(names)}
    for name, cid in index.items():
        dataset.add_class(source, cid, name)

    added = 0
    for key, entry in metadata.items():
        where = f"{path}: {key}"
        if not isinstance(entry, dict):
            problems.error(f"{where}: entry must be an object")
            continue
        if "filename" not in entry:
            problems.error(f"{where}: missing key 'filename'")
            continue
        if "regions" not in entry:
            problems.error(f"{path}: {entry['filename']}: missing key 'regions'")
            continue
        where = f"{path}: {entry['filename']}"
        try:
            image_path = safe_join(root, entry["filename"], where=str(path))
        except DatasetError as exc:
            problems.error(str(exc))
            continue
        size = oriented_size(image_path, where=str(path), problems=problems)
        if size is None:
            continue
        height, width = size
        instances, polygons = [], []
        for rkey, region in _regions(entry):
            rwhere = f"{where} region {rkey}"
            if not isinstance(region, dict) or "shape_attributes" not in region:
                problems.error(f"{rwhere}: missing key 'shape_attributes'")
                continue
            shape = parse_region_shape(region["shape_attributes"], where=rwhere, problems=problems)
            if shape is None or not check_shape(shape, where=rwhere, height=height, width=width, problems=problems):
                continue
            cid = 1
            if class_attribute:
                value, problem = _class_value(region.get("region_attributes"), class_attribute)
                if value is None:
                    problems.error(f"{rwhere}: {problem}")
                    continue
                if value not in index:
                    problems.error(f"{rwhere}: unknown class {value!r} (known: {', '.join(names)})")
                    continue
                cid = index[value]
            instances.append({"class_id": cid, "shapes": [shape], "iscrowd": False, "region": rwhere})
            polygons.append(region["shape_attributes"])
        if not instances and not keep_negatives:
            continue
        dataset.add_image(source, image_id=entry["filename"], path=str(image_path), width=width, height=height,
                          polygons=polygons, instances=instances, annotation=str(path))
        added += 1
    return added
