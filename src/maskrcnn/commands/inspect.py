"""``maskrcnn inspect``: one HTML page showing every stage of the model on one image.

    maskrcnn inspect --weights model.pt --image photo.jpg --out report.html
    maskrcnn inspect --weights model.pt --dataset data/balloon/val --image-id 3 --out report.html
"""

from __future__ import annotations

import argparse

from . import WEIGHTS_FILES, add_class_names_argument, class_names_from


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True, metavar="FILE", help=WEIGHTS_FILES)
    add_class_names_argument(parser)
    parser.add_argument("--image", metavar="FILE", help="the image to inspect (or give --dataset and --image-id)")
    parser.add_argument("--dataset", metavar="PATH",
                        help="a dataset folder or annotation file; with --image-id, inspect that image with its "
                             "ground truth (positive anchors, RPN recall, matches)")
    parser.add_argument("--image-id", type=int, default=None, metavar="ID",
                        help="internal image id (0..n-1) of --dataset; with --image, the image is matched by file "
                             "name instead")
    parser.add_argument("--format", default=None, dest="dataset_format", metavar="FORMAT",
                        help="dataset format (default: detected): via, coco, labelme, masks, ...")
    parser.add_argument("--subset", default=None, help="dataset subset folder (train, val, ...)")
    parser.add_argument("--class-attribute", default=None, metavar="NAME",
                        help="VIA region attribute that holds the class name")
    parser.add_argument("--out", required=True, metavar="report.html", help="the HTML file to write")
    parser.add_argument("--limit", type=int, default=50, metavar="N", help="at most N boxes per drawing")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")


def run(args: argparse.Namespace) -> int:
    from ..apps.inspect_report import inspect_from_arguments

    path = inspect_from_arguments(
        weights=args.weights, image=args.image, dataset=args.dataset, image_id=args.image_id,
        dataset_format=args.dataset_format, subset=args.subset, class_attribute=args.class_attribute,
        out=args.out, limit=args.limit, device=args.device, class_names=class_names_from(args.class_names),
    )
    print(f"wrote {path}")
    return 0
