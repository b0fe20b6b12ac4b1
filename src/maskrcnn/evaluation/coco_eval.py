"""COCO-style bbox and segm AP through pycocotools, for any dataset.

    coco_gt = dataset_to_coco(dataset)                      # ground truth from load_mask
    results = detections_to_coco_results(model.detect(images), ids)
    metrics = coco_evaluate(coco_gt, results)               # {"bbox": {...}, "segm": {...}, "per_class": ...}

or all at once ``evaluate_model(model, dataset)``. Numbers are exactly pycocotools'
``COCOeval`` ``stats`` (``-1.0`` where no ground truth falls in a range, e.g. ``APs``
without small objects). For ``segm`` the results' ``bbox`` is dropped before
``loadRes`` so detection areas (for the small/medium/large ranges) are mask areas, as
detectron2 does (pycocotools would otherwise take the box area).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from ..errors import DatasetError, MaskRCNNError
from .coco_format import dataset_to_coco, detections_to_coco_results, make_coco
from .runner import iter_detections, select_image_ids
from .voc_eval import evaluate_voc

__all__ = [
    "METRIC_NAMES",
    "IOU_TYPES",
    "dataset_to_coco",
    "detections_to_coco_results",
    "run_cocoeval",
    "summarize_cocoeval",
    "per_class_ap",
    "coco_evaluate",
    "evaluate_model",
    "evaluate_voc",
    "load_metrics",
]

#: Names of COCOeval's 12 ``stats`` (bbox/segm), in order.
METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
IOU_TYPES = ("bbox", "segm")


def _load_json(path, what: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DatasetError(f"{what} file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{what} file {path} is not readable JSON: {exc}") from None


def _as_coco(coco_gt) -> COCO:
    if isinstance(coco_gt, COCO):
        return coco_gt
    if isinstance(coco_gt, (str, os.PathLike)):
        data = _load_json(coco_gt, "COCO ground-truth")
        if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
            raise DatasetError(f"COCO ground-truth file {coco_gt} has no 'images'/'annotations'")
        data.setdefault("categories", [])
        return make_coco(data)
    raise MaskRCNNError(f"coco_gt must be a pycocotools COCO or a JSON path, not {type(coco_gt).__name__}")


def _as_results(results) -> list[dict]:
    if isinstance(results, (str, os.PathLike)):
        data = _load_json(results, "COCO results")
        if not isinstance(data, list):
            raise DatasetError(f"COCO results file {results} must hold a list of detections")
        return data
    return list(results)


def _check_results(coco_gt: COCO, results: list[dict], iou_type: str) -> None:
    """Name the first detection pycocotools would choke on (unknown image, wrong mask size)."""
    for k, det in enumerate(results):
        image_id = det.get("image_id")
        if image_id not in coco_gt.imgs:
            raise DatasetError(
                f"detection {k}: image_id {image_id!r} is not an image of the ground truth "
                f"(did you mix internal ids and source ids? see detections_to_coco_results)"
            )
        if iou_type == "segm":
            size = det["segmentation"].get("size") if isinstance(det["segmentation"], dict) else None
            img = coco_gt.imgs[image_id]
            if size is not None and "height" in img and list(size) != [img["height"], img["width"]]:
                raise DatasetError(
                    f"detection {k} of image {image_id}: mask size {list(size)} but the image is "
                    f"{img['height']}x{img['width']}"
                )


def _results_for(iou_type: str, results: list[dict]) -> list[dict]:
    if iou_type == "bbox":
        dets = [copy.deepcopy(d) for d in results if d.get("bbox") is not None and len(d["bbox"]) == 4]
        for d in dets:
            d.pop("segmentation", None)  # loadRes keeps it otherwise; irrelevant for bbox IoU
        return dets
    dets = []
    for d in results:
        if d.get("segmentation") is None:
            continue
        d = copy.deepcopy(d)
        d.pop("bbox", None)  # area and box from the mask, not the box
        dets.append(d)
    return dets


def _load_results(coco_gt: COCO, dets: list[dict]) -> COCO:
    if not dets:
        ds = coco_gt.dataset
        return make_coco({"images": list(ds.get("images", [])), "categories": copy.deepcopy(ds.get("categories", [])),
                          "annotations": []})
    with contextlib.redirect_stdout(io.StringIO()):
        return coco_gt.loadRes(dets)


def run_cocoeval(coco_gt, results, iou_type: str = "segm", *, verbose: bool = False) -> COCOeval:
    """Evaluate, accumulate and summarize one ``COCOeval``; returns it (``.stats``,
    ``.eval["precision"]`` ``[T, R, K, A, M]`` for plots).

    coco_gt: pycocotools ``COCO`` or the path of a COCO JSON. results: COCO result dicts
    or the path of a results JSON; no result at all scores 0 where there is ground truth.
    verbose: let pycocotools print its table.
    """
    if iou_type not in IOU_TYPES:
        raise MaskRCNNError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
    coco_gt = _as_coco(coco_gt)
    dets = _results_for(iou_type, _as_results(results))
    _check_results(coco_gt, dets, iou_type)
    coco_dt = _load_results(coco_gt, dets)
    evaluator = COCOeval(coco_gt, coco_dt, iou_type)
    sink = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with sink:
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def summarize_cocoeval(evaluator: COCOeval) -> dict[str, float]:
    """``{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"}``
    from a summarized ``COCOeval`` (its ``stats``, as floats)."""
    return {name: float(v) for name, v in zip(METRIC_NAMES, evaluator.stats)}


def per_class_ap(evaluator: COCOeval) -> dict[str, float | None]:
    """AP@[.5:.95] of each category (area "all", 100 detections) from ``eval["precision"]``.

    ``None`` for categories without ground truth. Keys are category names (a repeated
    name gets `` (id)`` appended).
    """
    precision = evaluator.eval["precision"]  # [T, R, K, A, M]
    cats = evaluator.cocoGt.cats
    names: dict[str, float | None] = {}
    for k, cat_id in enumerate(evaluator.params.catIds):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        name = str(cats.get(cat_id, {}).get("name", cat_id))
        if name in names:
            name = f"{name} ({cat_id})"
        names[name] = float(np.mean(p)) if p.size else None
    return names


def coco_evaluate(
    coco_gt,
    results,
    iou_types: Sequence[str] = IOU_TYPES,
    *,
    verbose: bool = False,
    return_evals: bool = False,
):
    """COCO metrics of ``results`` against ``coco_gt`` for each IoU type.

    Returns ``{"bbox": {METRIC_NAMES...}, "segm": {...}, "per_class": {"bbox": {name: AP},
    "segm": {...}}}`` (only the requested types), or ``(metrics, {iou_type: COCOeval})``
    when ``return_evals``. Empty results give AP 0 (no crash).
    """
    if isinstance(iou_types, str):
        iou_types = (iou_types,)
    bad = [t for t in iou_types if t not in IOU_TYPES]
    if bad or not iou_types:
        raise MaskRCNNError(f"iou_types must be among {IOU_TYPES}, got {tuple(iou_types)!r}")
    coco_gt = _as_coco(coco_gt)
    results = _as_results(results)
    metrics: dict[str, Any] = {}
    per_class: dict[str, dict] = {}
    evals: dict[str, COCOeval] = {}
    for iou_type in iou_types:
        evaluator = run_cocoeval(coco_gt, results, iou_type, verbose=verbose)
        metrics[iou_type] = summarize_cocoeval(evaluator)
        per_class[iou_type] = per_class_ap(evaluator)
        evals[iou_type] = evaluator
    metrics["per_class"] = per_class
    return (metrics, evals) if return_evals else metrics


def evaluate_model(
    model,
    dataset,
    *,
    image_ids: Sequence[int] | None = None,
    limit: int | None = None,
    batch_size: int = 1,
    progress: bool = True,
    iou_types: Sequence[str] = IOU_TYPES,
    results_path: str | os.PathLike | None = None,
    verbose: bool = False,
    return_evals: bool = False,
):
    """COCO bbox/segm AP of ``model`` on ``dataset``.

    Runs ``model.detect`` on each image (tqdm bar when ``progress``), scores the
    detections against :func:`dataset_to_coco` of the same images and returns
    :func:`coco_evaluate`'s dict plus ``"images"`` (images evaluated) and
    ``"detections"`` (instances detected). results_path: also write the COCO results
    JSON there (internal image ids, contiguous category ids). ``return_evals`` as in
    :func:`coco_evaluate`.
    """
    ids = select_image_ids(dataset, image_ids, limit)
    coco_gt = dataset_to_coco(dataset, ids)
    coco_results: list[dict] = []
    for image_id, image, result in iter_detections(
        model, dataset, ids, batch_size=batch_size, progress=progress, desc="evaluate"
    ):
        masks = result.get("masks")
        if masks is not None and np.asarray(masks).ndim == 3 and np.asarray(masks).shape[-1] > 0:
            if np.asarray(masks).shape[:2] != image.shape[:2]:
                raise MaskRCNNError(
                    f"detections of image {image_id}: masks are {np.asarray(masks).shape[:2]} but the "
                    f"image is {image.shape[:2]}; model.detect must return masks in original pixels"
                )
        coco_results.extend(detections_to_coco_results([result], [image_id]))
    if results_path is not None:
        from .plots import write_json

        write_json(coco_results, results_path)
    out = coco_evaluate(coco_gt, coco_results, iou_types, verbose=verbose, return_evals=return_evals)
    metrics = out[0] if return_evals else out
    metrics["images"] = len(ids)
    metrics["detections"] = len(coco_results)
    return out


def load_metrics(path: str | os.PathLike) -> dict:
    """Read a metrics JSON written by :func:`maskrcnn.evaluation.plots.write_metrics_json`."""
    return _load_json(Path(path), "metrics")
