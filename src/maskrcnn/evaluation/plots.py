"""Precision-recall plots (headless Agg, PNG) and JSON writing of metrics.

Figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas, never
through pyplot: no display is needed, no global figure state leaks, and the returned
Figure still shows inline in a notebook.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import atomic_path, write_text

__all__ = [
    "coco_pr_curve",
    "plot_precision_recall_curve",
    "to_jsonable",
    "write_json",
    "write_metrics_json",
    "new_figure",
    "save_figure",
]

_AREAS = ("all", "small", "medium", "large")


def new_figure(figsize=(6.0, 5.0), dpi: int = 100):
    """A Figure on an Agg canvas (no pyplot, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, save_path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG (or the format of the suffix) at its own size and dpi, atomically.

    The file is ``figsize * dpi`` pixels (no tight cropping), so sizes are predictable.
    """
    path = Path(save_path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=fig.dpi)
    return path


def coco_pr_curve(evaluator, *, iou: float | None = 0.5, category: str | int | None = None,
                  area: str = "all", max_dets: int = 100) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Recall points, mean precision and AP of a summarized/accumulated ``COCOeval``.

    iou: one of the evaluator's IoU thresholds, or None for the mean over all of them.
    category: a category name or id (default: mean over categories with ground truth).
    Returns ``(recalls [R], precisions [R], ap)``: precision at each of COCO's 101 recall
    points averaged over the categories (and IoUs) that have a value there (NaN where
    none has), and their overall mean (None without ground truth).
    """
    params = evaluator.params
    precision = np.asarray(evaluator.eval["precision"])  # [T, R, K, A, M]
    if iou is None:
        t_idx = np.arange(precision.shape[0])
    else:
        t_idx = np.nonzero(np.isclose(params.iouThrs, iou))[0]
        if t_idx.size == 0:
            raise ValueError(f"iou {iou} is not one of the evaluated thresholds {list(params.iouThrs)}")
    if area not in params.areaRngLbl:
        raise ValueError(f"area must be one of {params.areaRngLbl}, got {area!r}")
    a_idx = list(params.areaRngLbl).index(area)
    if max_dets not in params.maxDets:
        raise ValueError(f"max_dets must be one of {params.maxDets}, got {max_dets}")
    m_idx = list(params.maxDets).index(max_dets)
    k_idx = np.arange(precision.shape[2])
    if category is not None:
        cats = evaluator.cocoGt.cats
        wanted = [i for i, c in enumerate(params.catIds)
                  if c == category or cats.get(c, {}).get("name") == category]
        if not wanted:
            raise ValueError(f"category {category!r} is not one of the evaluated categories")
        k_idx = np.array(wanted)
    p = precision[t_idx][:, :, k_idx, a_idx, m_idx]  # [t, R, k]
    valid = p > -1
    counts = valid.sum(axis=(0, 2))
    sums = np.where(valid, p, 0.0).sum(axis=(0, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    ap = float(p[valid].mean()) if valid.any() else None
    return np.asarray(params.recThrs, dtype=np.float64), curve, ap


def _is_cocoeval(obj) -> bool:
    return hasattr(obj, "eval") and hasattr(obj, "params") and isinstance(getattr(obj, "eval"), Mapping)


def plot_precision_recall_curve(
    source,
    *,
    save_path: str | os.PathLike | None = None,
    title: str | None = None,
    ious: Sequence[float | None] = (0.5, 0.75, None),
    category: str | int | None = None,
    area: str = "all",
    figsize=(6.0, 5.0),
    dpi: int = 100,
):
    """Precision-recall curve(s) as a Figure (and a PNG at ``save_path``).

    source:
      - a ``COCOeval`` after ``accumulate()`` (e.g. from ``coco_evaluate(...,
        return_evals=True)``): one curve per IoU in ``ious`` (None = mean over
        0.50:0.95), precision averaged over categories (or one ``category``);
      - ``compute_ap``'s output ``(AP, precisions, recalls[, overlaps])``: the VOC curve;
      - a mapping ``{"precisions": [...], "recalls": [...], "AP": ap (optional)}``.
    The figure is ``figsize * dpi`` pixels.
    """
    fig = new_figure(figsize=figsize, dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    if _is_cocoeval(source):
        for iou in ious:
            recalls, precisions, ap = coco_pr_curve(source, iou=iou, category=category, area=area)
            name = "IoU=0.50:0.95" if iou is None else f"IoU={iou:.2f}"
            label = f"{name}  AP={ap:.3f}" if ap is not None else f"{name}  (no ground truth)"
            ax.plot(recalls, precisions, label=label)
        iou_type = getattr(source.params, "iouType", "")
        default_title = f"Precision-recall ({iou_type}{', ' + str(category) if category is not None else ''})"
        ax.legend(loc="lower left")
    else:
        if isinstance(source, Mapping):
            ap = source.get("AP", source.get("mAP"))
            precisions, recalls = source["precisions"], source["recalls"]
        elif isinstance(source, (tuple, list)) and len(source) >= 3:
            ap, precisions, recalls = source[0], source[1], source[2]
        else:
            raise ValueError(
                "source must be a COCOeval, compute_ap's (AP, precisions, recalls, overlaps), "
                "or a mapping with 'precisions' and 'recalls'"
            )
        ax.step(np.asarray(recalls, dtype=float), np.asarray(precisions, dtype=float), where="post")
        default_title = "Precision-recall" + (f"  AP@50 = {float(ap):.3f}" if ap is not None else "")
    ax.set_xlim(0, 1.05)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(True, alpha=0.3)
    ax.set_title(title if title is not None else default_title)
    if save_path is not None:
        save_figure(fig, save_path)
    return fig


def to_jsonable(obj: Any) -> Any:
    """A copy of ``obj`` that ``json.dump(allow_nan=False)`` accepts: numpy scalars and
    arrays become Python numbers and lists, NaN/inf become None, tuples lists,
    paths strings."""
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, bytes):
        return obj.decode("ascii", errors="replace")
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def write_json(obj: Any, path: str | os.PathLike, *, indent: int | None = None) -> Path:
    """Write ``to_jsonable(obj)`` as JSON at ``path`` atomically (:func:`maskrcnn.fileio.write_text`)."""
    return write_text(path, json.dumps(to_jsonable(obj), indent=indent, allow_nan=False) + "\n")


def write_metrics_json(metrics: Mapping, path: str | os.PathLike) -> Path:
    """Write a metrics dict (e.g. :func:`~maskrcnn.evaluation.coco_eval.coco_evaluate`'s)
    as indented JSON, NaN as null, atomically."""
    return write_json(metrics, path, indent=2)
