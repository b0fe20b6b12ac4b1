"""``maskrcnn show-dataset PATH --out DIR``: samples as the model trains on them, with masks, boxes, names
and the anchors the RPN is trained towards (see :mod:`maskrcnn.apps.show_dataset`)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .check_dataset import add_dataset_arguments

    add_dataset_arguments(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write the PNGs into")
    parser.add_argument("--limit", type=int, default=8, metavar="N", help="number of images to draw (default: 8)")
    parser.add_argument("--config", default=None, metavar="YAML",
                        help="Config YAML giving the resize mode and anchors (default: Config() defaults)")
    parser.add_argument("--no-anchors", action="store_true", help="do not draw the positive anchors")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random crop of IMAGE_RESIZE_MODE=crop")


def run(args: argparse.Namespace) -> int:
    from ..apps.show_dataset import show_dataset
    from ..config import Config
    from ..data.loading import load_dataset
    from ..errors import DatasetError

    if args.limit < 1:
        raise DatasetError(f"--limit {args.limit}: must be >= 1")
    config = Config.from_yaml(args.config) if args.config else Config()
    dataset = load_dataset(args.path, format=args.format, subset=args.subset, class_attribute=args.class_attribute,
                           class_name=args.class_name, annotations=args.annotations, image_dir=args.image_dir)
    shown = show_dataset(dataset, args.out, limit=args.limit, config=config, anchors=not args.no_anchors,
                         seed=args.seed)
    for item in shown:
        positives = f", positive anchors per object {item.anchors_per_object}" if item.anchors_per_object else ""
        print(f"{item.path}: {len(item.class_names)} objects{positives}")
    print(f"wrote {len(shown)} pictures to {args.out}")
    return 0
