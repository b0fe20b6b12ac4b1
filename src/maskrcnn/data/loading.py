"""``load_dataset``: one entry point from a path to a prepared :class:`Dataset`.

``PATH`` may be:

- an annotation file: a VIA export or project file, a COCO instances JSON, a labelme JSON;
- a folder holding one: ``via_region_data.json`` (matterport's name) or ``annotations.json``
  win when several candidates are present; otherwise a folder with more than one VIA/COCO
  file is ambiguous (name the file in PATH, or pass ``annotations="{subset}_multiclass.json"``);
  a folder of labelme JSON files; a folder of ``<id>/images`` + ``<id>/masks`` samples (DSB 2018);
- a dataset folder whose sub-folders hold the above (``balloon/`` with ``train/`` and ``val/``):
  ``subset="train"`` picks one (any sub-folder name works, e.g. ``stage1_train``);
- ``shapes[:COUNT[:SIZE[:SEED]]]`` (``SIZE`` is ``128`` or ``96x128``, H x W): synthetic
  shapes, by default 200 images of 128x128 with seed 0; ``subset="val"`` / ``"test"`` shift
  the seed by 1 / 2 so the splits differ.

``format="auto"`` detects the format from the file contents (VIA: entries with
``filename`` and ``regions`` or ``_via_img_metadata``; COCO: ``images`` + ``annotations`` +
``categories``; labelme: ``shapes`` + ``imagePath``); name it to skip detection.

By default the first problem raises :class:`~maskrcnn.errors.DatasetError` (naming file,
image and region); ``maskrcnn check-dataset PATH`` lists them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import DatasetError
from .dataset import Dataset
from .formats import FORMATS
from .formats.coco import add_coco, is_coco
from .formats.common import read_json
from .formats.labelme import add_labelme, is_labelme
from .formats.masks import add_mask_folder, is_mask_dataset
from .formats.shapes import ShapesDataset
from .formats.via import add_via, describe_json, not_via_message, via_kind
from .problems import Problems, sink

FORMAT_CHOICES = ("auto",) + FORMATS
PREFERRED_FILES = ("via_region_data.json", "annotations.json")
SHAPES_SUBSET_SEEDS = {None: 0, "train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class Resolved:
    """What a PATH designates: ``format`` and the annotation file or folder (``path``)."""

    format: str
    path: Path | None
    spec: str | None = None  # shapes only
    data: Any = field(default=None, compare=False, repr=False)  # parsed JSON, when already read


def json_kind(data: Any) -> str | None:
    """``"via"``, ``"via-attributes"``, ``"coco"``, ``"labelme"`` or None for a parsed JSON."""
    if not isinstance(data, dict):
        return None
    # loose sniffing: a file with a key missing is still recognised, so the loader can name that key
    if is_coco(data) or len({"images", "annotations", "categories"} & set(data)) >= 2:
        return "coco"
    if is_labelme(data) or len({"shapes", "imagePath", "imageData", "imageHeight", "imageWidth"} & set(data)) >= 2:
        return "labelme"
    kind = via_kind(data)
    if kind == "attributes":
        return "via-attributes"
    return "via" if kind else None


def _resolve_file(path: Path, fmt: str) -> Resolved:
    data = read_json(path)
    kind = json_kind(data)
    if kind == "via-attributes":
        raise DatasetError(f"{path}: is a VIA attribute definition file, not annotations")
    if kind is None:
        _refuse_unknown(path, data, fmt)
        raise DatasetError(f"{path}: not a known annotation format (VIA: entries with 'filename' and 'regions', "
                           f"or '_via_img_metadata'; COCO: 'images', 'annotations', 'categories'; labelme: "
                           f"'shapes' and 'imagePath')")
    if fmt != "auto" and fmt != kind:
        raise DatasetError(f"{path}: is a {kind} file, not {fmt} (use --format auto or {kind})")
    return Resolved(kind, path, data=data)


def _refuse_unknown(path: Path, data: Any, fmt: str) -> None:
    """Raise the named format's own message for a JSON ``path`` that is not of that format."""
    if fmt == "via":
        raise DatasetError(not_via_message(path, data))


def find_annotations(folder: Path, *, format: str = "auto", annotations: str | None = None,
                     subset: str | None = None) -> Resolved | None:
    """The dataset that ``folder`` itself holds, or None.

    Raises:
        DatasetError: several candidate annotation files and none of the preferred names,
            or the only candidates are malformed.
    """
    folder = Path(folder)
    if annotations:
        target = folder / annotations.format(subset=subset or folder.name)
        if not target.is_file():
            raise DatasetError(f"{target}: annotation file not found")
        return _resolve_file(target, format)
    if format == "masks":
        return Resolved("masks", folder) if is_mask_dataset(folder) else None
    jsons = sorted(folder.glob("*.json"))
    if not jsons and (folder / "annotations").is_dir():
        jsons = sorted((folder / "annotations").glob("*.json"))
    kinds: dict[Path, tuple[str | None, Any]] = {}
    broken: dict[Path, DatasetError] = {}
    for f in jsons:
        try:
            data = read_json(f)
        except DatasetError as exc:
            broken[f] = exc
            continue
        kind = json_kind(data)
        kinds[f] = (kind, data if kind in ("via", "coco", None) else None)
    for f, exc in broken.items():
        if f.name in PREFERRED_FILES:
            raise exc
    labelme = [f for f, (k, _) in kinds.items() if k == "labelme"]
    single = [f for f, (k, _) in kinds.items() if k in ("via", "coco") and format in ("auto", k)]
    if labelme and format in ("auto", "labelme") and not single:
        return Resolved("labelme", folder)
    if format == "labelme":
        return None
    preferred = [f for name in PREFERRED_FILES for f in single if f.name == name]
    if len(single) == 1 or (single and preferred):
        chosen = preferred[0] if preferred else single[0]
        if labelme and not preferred:
            raise DatasetError(f"{folder}: holds both labelme files and {chosen.name}; name the file in PATH")
        kind, data = kinds[chosen]
        return Resolved(kind, chosen, data=data)
    if len(single) > 1:
        names = ", ".join(f.name for f in single)
        raise DatasetError(f"{folder}: several annotation files ({names}); name one in PATH "
                           f"or pass annotations=NAME (CLI: --annotations NAME; '{{subset}}' is replaced "
                           f"by the subset name)")
    if broken and not kinds:
        raise next(iter(broken.values()))
    # A JSON that parses but is no known format, under an annotation file's name (or the only JSON when
    # the format is named): say what it holds instead of "no annotations found".
    unknown = [f for f, (k, _) in kinds.items() if k is None]
    named = [f for f in unknown if f.name in PREFERRED_FILES] or (unknown if format != "auto" and
                                                                   len(unknown) == 1 else [])
    if named and not labelme:
        _refuse_unknown(named[0], kinds[named[0]][1], format)
        raise DatasetError(f"{named[0]}: is {describe_json(kinds[named[0]][1])}, not a known annotation format "
                           f"(expected VIA, COCO or labelme JSON)")
    if format == "auto" and is_mask_dataset(folder):
        return Resolved("masks", folder)
    return None


def find_subsets(folder: Path, *, format: str = "auto", annotations: str | None = None) -> dict[str, Path]:
    """Sub-folders of ``folder`` that hold a dataset (e.g. ``{"train": ..., "val": ...}``)."""
    subsets = {}
    folder = Path(folder)
    if not folder.is_dir():
        return subsets
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            found = find_annotations(sub, format=format, annotations=annotations, subset=sub.name)
        except DatasetError:
            found = Resolved(format, sub)  # a broken or ambiguous dataset is still a subset: load it to see why
        if found is not None:
            subsets[sub.name] = sub
    return subsets


def is_shapes_spec(path: str | Path, format: str = "auto") -> bool:
    """Whether ``path`` read as ``format`` names synthetic shapes: ``format="shapes"``, or ``"auto"``
    and ``shapes[:COUNT[:SIZE[:SEED]]]`` that is not an existing file or folder."""
    text = str(path)
    spec = text == "shapes" or text.startswith("shapes:")
    return format == "shapes" or (format == "auto" and spec and not Path(text).exists())


def resolve_dataset(path: str | Path, *, format: str = "auto", subset: str | None = None,
                    annotations: str | None = None) -> Resolved:
    """Work out which format and file or folder ``path`` (and ``subset``) designate."""
    if format not in FORMAT_CHOICES:
        raise DatasetError(f"format={format!r}: choose one of {', '.join(FORMAT_CHOICES)}")
    if is_shapes_spec(path, format):
        return Resolved("shapes", None, spec=str(path))
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: not found")
    if subset:
        if p.is_dir() and (p / subset).is_dir():
            p = p / subset
        elif p.is_file():
            raise DatasetError(f"{p}: is a file; subset={subset!r} needs a dataset folder with sub-folders")
        else:
            found = ", ".join(find_subsets(p)) or "none"
            raise DatasetError(f"{p}: no subset folder {subset!r} (subsets found: {found})")
    if p.is_file():
        return _resolve_file(p, format)
    found = find_annotations(p, format=format, annotations=annotations, subset=subset)
    if found is not None:
        return found
    subsets = find_subsets(p, format=format, annotations=annotations)
    if subsets:
        raise DatasetError(f"{p}: holds several subsets ({', '.join(subsets)}); choose one with subset=NAME "
                           f"(CLI: --subset NAME)")
    what = "VIA, COCO or labelme JSON files, or <id>/images + <id>/masks folders" if format == "auto" else format
    raise DatasetError(f"{p}: no annotations found (looked for {what})")


def parse_shapes_spec(spec: str, subset: str | None = None) -> tuple[int, int, int, int]:
    """``(count, height, width, seed)`` of ``shapes[:COUNT[:SIZE[:SEED]]]``."""
    parts = spec.split(":")
    if parts[0] == "shapes":
        parts = parts[1:]
    try:
        count = int(parts[0]) if len(parts) > 0 and parts[0] else 200
        size = parts[1] if len(parts) > 1 and parts[1] else "128"
        height, width = (int(v) for v in size.lower().split("x")) if "x" in size.lower() else (int(size),) * 2
        seed = int(parts[2]) if len(parts) > 2 and parts[2] else 0
        if len(parts) > 3:
            raise ValueError("too many fields")
    except ValueError:
        raise DatasetError(f"{spec!r}: expected shapes[:COUNT[:SIZE[:SEED]]], e.g. shapes:500:128:0") from None
    if subset not in SHAPES_SUBSET_SEEDS:
        raise DatasetError(f"{spec}: subset {subset!r} for synthetic shapes must be train, val or test")
    return count, height, width, seed + SHAPES_SUBSET_SEEDS[subset]


def load_dataset(
    path: str | Path,
    *,
    format: str = "auto",
    subset: str | None = None,
    class_attribute: str | None = None,
    class_name: str | None = None,
    classes: Sequence[str] | None = None,
    annotations: str | None = None,
    image_dir: str | Path | None = None,
    keep_negatives: bool = True,
    problems: Problems | None = None,
) -> Dataset:
    """Load the dataset at ``path`` and return it prepared (see the module docstring for PATH).

    Args:
        format: ``auto`` | ``via`` | ``coco`` | ``labelme`` | ``masks`` | ``shapes``.
        subset: sub-folder to load from a dataset folder (``train``, ``val``, ...).
        class_attribute: VIA region attribute holding the class (None: one implicit class).
        class_name: name of the implicit class of VIA and mask folders (default: the dataset folder's name).
        classes: class names in order (ids 1..n). VIA/labelme: other names are errors; COCO: keep only
            these categories; single-class VIA (no class_attribute) and mask folders: one name, the
            class's. Pass the training set's ``class_names[1:]`` when loading its validation set so
            both get the same ids.
        annotations: annotation file name inside the folder; ``{subset}`` is replaced by the subset.
        image_dir: folder of the images when it is not the annotation file's (VIA, COCO).
        keep_negatives: keep images without instances.
        problems: a :class:`Problems` collector; default: raise on the first error.

    Returns:
        The prepared dataset; ``dataset.format`` and ``dataset.annotation_path`` say what was read.
    """
    resolved = resolve_dataset(path, format=format, subset=subset, annotations=annotations)
    fmt = resolved.format
    for name, value, allowed in (("class_attribute", class_attribute, ("via",)),
                                 ("class_name", class_name, ("via", "masks")),
                                 ("image_dir", image_dir, ("via", "coco"))):
        if value is not None and fmt not in allowed:
            raise DatasetError(f"{name}={value!r} applies to {' and '.join(allowed)} datasets; "
                               f"{resolved.path or resolved.spec} is {fmt}")
    strict = problems is None or problems.strict
    problems = sink(problems)
    try:
        if fmt == "shapes":
            count, height, width, seed = parse_shapes_spec(resolved.spec or "shapes", subset)
            dataset: Dataset = ShapesDataset(count, height, width, seed)
        else:
            dataset = Dataset()
            if fmt == "via":
                add_via(dataset, resolved.path, class_attribute=class_attribute, class_name=class_name,
                        classes=classes, keep_negatives=keep_negatives, image_dir=image_dir, problems=problems,
                        data=resolved.data)
            elif fmt == "coco":
                add_coco(dataset, resolved.path, image_dir=image_dir, classes=classes,
                         keep_negatives=keep_negatives, problems=problems, data=resolved.data)
            elif fmt == "labelme":
                add_labelme(dataset, resolved.path, classes=classes, keep_negatives=keep_negatives,
                            problems=problems)
            else:
                if classes is not None:
                    if len(classes) != 1 or (class_name and class_name != classes[0]):
                        raise DatasetError(f"{resolved.path}: a mask folder has one class; classes={list(classes)}")
                    class_name = classes[0]
                add_mask_folder(dataset, resolved.path, class_name=class_name, keep_negatives=keep_negatives,
                                problems=problems)
            dataset.prepare()
    except DatasetError as exc:
        if strict and fmt != "shapes":
            raise DatasetError(f"{exc}\n(run `maskrcnn check-dataset {path}` to list every problem)") from None
        raise
    dataset.format = fmt
    dataset.annotation_path = str(resolved.path) if resolved.path is not None else resolved.spec
    return dataset
