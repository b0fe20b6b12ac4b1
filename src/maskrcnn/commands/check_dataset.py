"""``maskrcnn check-dataset PATH``: count images, instances and classes; name every problem.

Exit code 1 when there are errors, 0 otherwise (warnings allowed). ``--json`` prints one
JSON object (see :mod:`maskrcnn.data.checks`).
"""

from __future__ import annotations

import argparse
import json


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that say how to read a dataset PATH (shared with show-dataset)."""
    from ..data.loading import FORMAT_CHOICES

    parser.add_argument("path", metavar="PATH",
                        help="annotation file, folder holding one, dataset folder with train/ and val/, "
                             "or shapes[:COUNT[:SIZE[:SEED]]]")
    parser.add_argument("--format", default="auto", choices=FORMAT_CHOICES, help="annotation format (default: auto)")
    parser.add_argument("--subset", default=None, help="sub-folder of a dataset folder to use (train, val, ...)")
    parser.add_argument("--class-attribute", default=None, metavar="NAME",
                        help="VIA region attribute holding the class name (default: one implicit class)")
    parser.add_argument("--class-name", default=None, metavar="NAME",
                        help="name of the implicit class (VIA, mask folders; default: the dataset folder's name)")
    parser.add_argument("--annotations", default=None, metavar="FILE",
                        help="annotation file name inside each folder; {subset} is replaced by the subset name")
    parser.add_argument("--image-dir", default=None, metavar="DIR", help="folder of the images (VIA, COCO)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")


def run(args: argparse.Namespace) -> int:
    from ..data.checks import check_dataset, format_report

    report = check_dataset(args.path, format=args.format, subset=args.subset, class_attribute=args.class_attribute,
                           class_name=args.class_name, annotations=args.annotations, image_dir=args.image_dir)
    if args.json:
        print(json.dumps(report, indent=None, sort_keys=False))
    else:
        print(format_report(report))
        status = "FAILED" if report["errors"] else "OK"
        print(f"{status}: {len(report['errors'])} errors, {len(report['warnings'])} warnings")
    return 1 if report["errors"] else 0
