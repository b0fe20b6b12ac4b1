"""``maskrcnn evaluate``: COCO bbox/segm AP of a trained model on a dataset.

    maskrcnn evaluate --weights logs/balloon20240101T1200/mask_rcnn_balloon_0030.pth \\
        --dataset ../shared/data/balloon --json metrics.json --pr-curve pr.png

Prints the COCO table (AP, AP50, AP75, APs, APm, APl for boxes and masks) and the AP of each
class; ``--json`` writes ``{"bbox": {...}, "segm": {...}, "per_class": {"bbox": {...},
"segm": {...}}, "images": N, "detections": M, "weights": ..., "dataset": ..., "subset": ...}``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import (WEIGHTS_FILES, add_class_names_argument, add_dataset_path, add_inference_arguments, class_names_from,
               inference_options)

TABLE_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True, metavar="FILE", help=WEIGHTS_FILES)
    add_class_names_argument(parser)
    add_dataset_path(parser, flag="--dataset")
    parser.add_argument("--subset", default=None, metavar="NAME",
                        help="sub-folder to evaluate (default: val when the dataset has one)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate the first N images only")
    parser.add_argument("--json", default=None, metavar="OUT", help="write the metrics as JSON here")
    parser.add_argument("--pr-curve", default=None, metavar="OUT.png", help="draw the mask precision-recall curve")
    parser.add_argument("--min-confidence", type=float, default=None, metavar="X",
                        help="score threshold of detections (default: the model's DETECTION_MIN_CONFIDENCE)")
    parser.add_argument("--batch-size", type=int, default=1, metavar="N", help="images per forward pass")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    add_inference_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _pick_subset(path: str, subset: str | None, fmt: str) -> str | None:
    if subset is not None:
        return subset
    from ..data.loading import is_shapes_spec

    if is_shapes_spec(path, fmt):
        return "val"
    p = Path(path)
    if p.is_dir() and (p / "val").is_dir():
        return "val"
    return None


def format_table(metrics: dict) -> str:
    """The COCO summary (boxes and masks) and per-class AP as aligned text."""
    lines = [f"{'':6}" + "".join(f"{m:>8}" for m in TABLE_METRICS)]
    for iou_type in ("bbox", "segm"):
        if iou_type in metrics:
            row = metrics[iou_type]
            lines.append(f"{iou_type:6}" + "".join(
                f"{row[m]:8.3f}" if row.get(m) is not None and row[m] >= 0 else f"{'-':>8}" for m in TABLE_METRICS))
    per_class = metrics.get("per_class") or {}
    names = list(dict.fromkeys(n for t in ("bbox", "segm") for n in (per_class.get(t) or {})))
    if names:
        width = max(12, max(len(n) for n in names) + 2)
        lines.append("")
        lines.append(f"{'class':{width}}{'box AP':>8}{'mask AP':>9}")
        for n in names:
            vals = [(per_class.get(t) or {}).get(n) for t in ("bbox", "segm")]
            text = [f"{v:.3f}" if v is not None else "-" for v in vals]
            lines.append(f"{n:{width}}{text[0]:>8}{text[1]:>9}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..apps.detect import load_model
    from ..data.loading import is_shapes_spec, load_dataset
    from ..errors import DatasetError
    from ..evaluation.coco_eval import evaluate_model
    from ..config import check_min_confidence
    from ..evaluation.plots import plot_precision_recall_curve, write_metrics_json

    if args.min_confidence is not None:
        check_min_confidence(args.min_confidence, "--min-confidence")
    model = load_model(args.weights, device=args.device, min_confidence=args.min_confidence,
                       class_names=class_names_from(args.class_names),
                       **inference_options(args))
    subset = _pick_subset(args.dataset, args.subset, args.format)
    kwargs = {}
    if not is_shapes_spec(args.dataset, args.format):
        kwargs = {"class_attribute": args.class_attribute, "annotations": args.annotations}
        if args.format in ("auto", "via", "coco", "labelme"):
            kwargs["classes"] = list(model.class_names[1:])
    try:
        dataset = load_dataset(args.dataset, format=args.format, subset=subset, **kwargs)
    except DatasetError as exc:
        if "classes" in kwargs and "applies to" not in str(exc):
            raise DatasetError(f"{exc}\n(the model was trained on classes {model.class_names[1:]})") from None
        raise
    if len(dataset.class_names) != len(model.class_names):
        raise DatasetError(f"{args.dataset}: has {len(dataset.class_names) - 1} classes "
                           f"{list(dataset.class_names[1:])} but the model {args.weights} was trained on "
                           f"{len(model.class_names) - 1}: {list(model.class_names[1:])}")
    where = f"{args.dataset}" + (f" ({subset})" if subset else "")
    print(f"evaluating {args.weights} on {where}: {len(dataset.image_ids)} images"
          + (f", first {args.limit}" if args.limit is not None else ""), flush=True)
    metrics, evals = evaluate_model(model, dataset, limit=args.limit, batch_size=args.batch_size,
                                    progress=not args.no_progress, return_evals=True)
    metrics["weights"] = str(args.weights)
    metrics["dataset"] = str(args.dataset)
    metrics["subset"] = subset
    print(format_table(metrics))
    print(f"{metrics.get('images')} images, {metrics.get('detections')} detections")
    if args.json:
        write_metrics_json(metrics, args.json)
        print(f"metrics: {args.json}")
    if args.pr_curve:
        plot_precision_recall_curve(evals["segm"], save_path=args.pr_curve,
                                    title=f"mask precision-recall — {Path(args.weights).name}")
        print(f"precision-recall curve: {args.pr_curve}")
    return 0
