"""``check_dataset``: load a dataset leniently and name every problem (``maskrcnn check-dataset``).

The report is a plain dict (what ``--json`` prints)::

    {"path": str, "format": str, "images": int, "instances": int, "classes": {name: count},
     "negatives": int, "image_sizes": {"min": [h, w], "max": [h, w], "mean": [h, w], "distinct": int},
     "errors": [str, ...], "warnings": [str, ...]}

For a dataset folder with subsets (``train/``, ``val/``...) each subset's report is under
``"subsets": {name: report}`` and the top level holds the totals (errors and warnings
concatenated, class counts summed).

Errors (exit code 1): missing or unreadable images (truncated, corrupt, empty), image sizes
that contradict the annotation, image paths that leave the dataset folder (refused),
malformed files and entries (missing keys, bad JSON), polygons with fewer than 3 points,
zero-area or unknown region shapes, unknown classes, mask files of the wrong size.
Warnings: points outside the image (clipped), byte-identical duplicate images, regions
whose mask is empty, ignored shapes (points, lines), empty instance masks.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Sequence

from ..errors import DatasetError, ImageError
from .geometry import pixel_count, read_mask_file
from .image_io import verify_image
from .loading import find_annotations, find_subsets, load_dataset, resolve_dataset
from .problems import Problems


def _empty_report(path: str, fmt: str | None) -> dict[str, Any]:
    return {"path": path, "format": fmt, "images": 0, "instances": 0, "classes": {}, "negatives": 0,
            "image_sizes": None, "errors": [], "warnings": []}


def _sha1(path: str) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_one(path: str | Path, *, subset: str | None, options: dict[str, Any]) -> dict[str, Any]:
    problems = Problems(strict=False)
    try:
        dataset = load_dataset(path, subset=subset, problems=problems, **options)
    except DatasetError as exc:
        report = _empty_report(str(path), options.get("format"))
        report["errors"] = problems.errors + [str(exc)]
        report["warnings"] = list(problems.warnings)
        return report
    report = _empty_report(str(dataset.annotation_path), dataset.format)
    errors, warnings = list(problems.errors), list(problems.warnings)
    counts: Counter = Counter({name: 0 for name in dataset.class_names[1:]})
    sizes: list[tuple[int, int]] = []
    hashes: dict[str, list[str]] = defaultdict(list)
    instances = negatives = 0
    for image_id in dataset.image_ids:
        info = dataset.image_info[image_id]
        ref = dataset.image_reference(image_id)
        items = info.get("instances")
        if items is None:  # a dataset with its own load_mask (synthetic shapes)
            _, class_ids = dataset.load_mask(image_id)
            items = [{"class_id": None, "internal": abs(int(c))} for c in class_ids]
        if not items:
            negatives += 1
        instances += len(items)
        for inst in items:
            internal = inst.get("internal")
            if internal is None:
                internal = dataset.map_source_class_id(f"{inst.get('source', info['source'])}.{inst['class_id']}")
            counts[dataset.class_names[internal]] += 1
        height, width = int(info.get("height") or 0), int(info.get("width") or 0)
        path_ = info.get("path")
        if path_:
            try:
                actual = verify_image(path_)
            except ImageError as exc:
                errors.append(f"{info.get('annotation', ref)}: {exc}")
                continue
            if height and width and actual != (height, width):
                errors.append(f"{info.get('annotation', ref)}: {path_} is {actual[1]}x{actual[0]} (WxH) but the "
                              f"annotation says {width}x{height}")
                continue
            hashes[_sha1(path_)].append(path_)
        sizes.append((height, width))
        for k, inst in enumerate(info.get("instances") or []):
            where = inst.get("region") or f"{ref} instance {k}"
            try:
                if inst["shapes"] and inst["shapes"][0]["type"] == "mask_file":
                    mask = read_mask_file(inst["shapes"][0]["path"], where=where)
                    if mask.shape != (height, width):
                        errors.append(f"{where}: mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                                      f"{width}x{height} (WxH)")
                        continue
                    area = int(mask.sum())
                else:
                    area = pixel_count(inst["shapes"], height, width, where=where)
            except DatasetError as exc:
                errors.append(str(exc))
                continue
            if area == 0:
                warnings.append(f"{where}: the instance's mask is empty (it covers no pixel center)")
    for paths in hashes.values():
        if len(paths) > 1:
            warnings.append(f"byte-identical duplicate images: {', '.join(sorted(paths))}")
    report.update(images=int(dataset.num_images), instances=instances, classes=dict(counts), negatives=negatives,
                  errors=errors, warnings=warnings, image_sizes=_size_stats(sizes))
    return report


def _size_stats(sizes: Sequence[tuple[int, int]]) -> dict[str, Any] | None:
    if not sizes:
        return None
    hs, ws = [s[0] for s in sizes], [s[1] for s in sizes]
    return {"min": [min(hs), min(ws)], "max": [max(hs), max(ws)],
            "mean": [round(sum(hs) / len(hs), 1), round(sum(ws) / len(ws), 1)], "distinct": len(set(sizes))}


def check_dataset(
    path: str | Path,
    *,
    format: str = "auto",
    subset: str | None = None,
    class_attribute: str | None = None,
    class_name: str | None = None,
    classes: Sequence[str] | None = None,
    annotations: str | None = None,
    image_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Check the dataset at ``path`` (same PATH rules as :func:`~maskrcnn.data.loading.load_dataset`).

    Never raises for problems of the dataset: they are in the report's ``errors`` and ``warnings``.
    """
    options = dict(format=format, class_attribute=class_attribute, class_name=class_name, classes=classes,
                   annotations=annotations, image_dir=image_dir)
    p = Path(path)
    if subset is None and p.is_dir():
        try:
            direct = find_annotations(p, format=format, annotations=annotations)
        except DatasetError:
            direct = True  # the folder holds something broken: let _check_one report it
        subsets = {} if direct else find_subsets(p, format=format, annotations=annotations)
        if subsets:
            reports = {name: _check_one(p, subset=name, options=options) for name in subsets}
            total = _empty_report(str(p), None)
            formats = {r["format"] for r in reports.values()}
            total["format"] = formats.pop() if len(formats) == 1 else "mixed"
            classes_total: Counter = Counter()
            sizes = []
            for r in reports.values():
                for key in ("images", "instances", "negatives"):
                    total[key] += r[key]
                total["errors"] += r["errors"]
                total["warnings"] += r["warnings"]
                classes_total.update(r["classes"])
                if r["image_sizes"]:
                    sizes.append(r["image_sizes"])
            total["classes"] = {name: classes_total[name] for name in sorted(classes_total)}
            if sizes:
                total["image_sizes"] = {
                    "min": [min(s["min"][0] for s in sizes), min(s["min"][1] for s in sizes)],
                    "max": [max(s["max"][0] for s in sizes), max(s["max"][1] for s in sizes)],
                }
            total["subsets"] = reports
            return total
    try:
        resolve_dataset(path, format=format, subset=subset, annotations=annotations)
    except DatasetError as exc:
        report = _empty_report(str(path), None if format == "auto" else format)
        report["errors"].append(str(exc))
        return report
    return _check_one(path, subset=subset, options=options)


def format_report(report: dict[str, Any], *, indent: str = "") -> str:
    """A human-readable summary of a :func:`check_dataset` report."""
    lines = []
    if "subsets" in report:
        for name, sub in report["subsets"].items():
            lines.append(f"{indent}[{name}]")
            lines.append(format_report({k: v for k, v in sub.items() if k not in ("errors", "warnings")},
                                       indent=indent + "  "))
        lines.append(f"{indent}total: {report['images']} images ({report['negatives']} without instances), "
                     f"{report['instances']} instances")
    else:
        lines.append(f"{indent}{report['path']} ({report['format']}): {report['images']} images "
                     f"({report['negatives']} without instances), {report['instances']} instances")
        present = {name: count for name, count in report["classes"].items() if count}
        if report["classes"]:
            unused = len(report["classes"]) - len(present)
            lines.append(f"{indent}classes: {len(report['classes'])}"
                         + (f" ({unused} without instances, not listed)" if unused else ""))
            width = max([len(n) for n in present] or [0])
            for name, count in present.items():
                lines.append(f"{indent}  {name:<{width}}  {count}")
        sizes = report.get("image_sizes")
        if sizes:
            lines.append(f"{indent}image sizes (HxW): min {sizes['min'][0]}x{sizes['min'][1]}, "
                         f"max {sizes['max'][0]}x{sizes['max'][1]}, mean {sizes['mean'][0]:g}x{sizes['mean'][1]:g}, "
                         f"{sizes['distinct']} distinct")
    for key in ("errors", "warnings"):
        items = report.get(key)
        if items:
            lines.append(f"{indent}{key} ({len(items)}):")
            lines.extend(f"{indent}  - {msg}" for msg in items)
    return "\n".join(lines)
