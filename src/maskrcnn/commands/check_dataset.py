"""``maskrcnn check-dataset PATH``: count images, instances and classes; name every problem.

Exit code 1 when there are errors, 0 otherwise (warnings allowed). ``--json`` prints one
JSON object (see :mod:`maskrcnn.data.checks`).
"""

from __future__ import annotations

import argparse
import json

from . import add_dataset_path


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """A positional dataset PATH and every option of how to read it (shared with show-dataset)."""
    add_dataset_path(parser)
    parser.add_argument("--subset", default=None, help="sub-folder of a dataset folder to use (train, val, ...)")
    parser.add_argument("--class-name", default=None, metavar="NAME",
                        help="name of the implicit class (VIA, mask folders; default: the dataset folder's name)")
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
