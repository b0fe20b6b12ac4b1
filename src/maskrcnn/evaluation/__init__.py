"""Evaluation: matterport's matching/VOC AP utilities and COCO bbox/segm AP for any dataset.

- :mod:`.matching` — ``compute_overlaps``, ``compute_matches``, ``compute_ap``, ... (numpy only)
- :mod:`.coco_eval` — ``dataset_to_coco``, ``detections_to_coco_results``, ``coco_evaluate``,
  ``evaluate_model``, ``evaluate_voc`` (pycocotools)
- :mod:`.plots` — precision-recall PNGs, metrics JSON

The matching utilities load eagerly (numpy only); the rest on first use.
"""

from __future__ import annotations

from .matching import (
    compute_ap,
    compute_ap_range,
    compute_iou,
    compute_matches,
    compute_overlaps,
    compute_overlaps_masks,
    compute_recall,
    extract_bboxes,
    trim_zeros,
)

_LAZY = {
    "dataset_to_coco": "coco_eval",
    "detections_to_coco_results": "coco_eval",
    "coco_evaluate": "coco_eval",
    "run_cocoeval": "coco_eval",
    "evaluate_model": "coco_eval",
    "evaluate_voc": "coco_eval",
    "plot_precision_recall_curve": "plots",
    "write_metrics_json": "plots",
}

__all__ = [
    "compute_ap",
    "compute_ap_range",
    "compute_iou",
    "compute_matches",
    "compute_overlaps",
    "compute_overlaps_masks",
    "compute_recall",
    "extract_bboxes",
    "trim_zeros",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
