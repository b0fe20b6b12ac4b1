"""``maskrcnn download balloon``: fetch a tutorial dataset (checksum-verified, cached) into ``data/<name>``.

    maskrcnn download balloon                      # -> data/balloon/train, data/balloon/val
    maskrcnn download balloon --out ~/datasets/balloon
    maskrcnn download balloon --from balloon_dataset.zip   # offline: a copy fetched elsewhere
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..data.catalog import DATASETS

    parser.add_argument("name", choices=sorted(DATASETS), help="the dataset")
    parser.add_argument("--out", default=None, metavar="DIR", help="where to put it (default: data/<name>)")
    parser.add_argument("--from", dest="source", default=None, metavar="ZIP_OR_DIR",
                        help="install from a local copy (the release zip, or a folder with train/ and val/) "
                             "instead of downloading")


def run(args: argparse.Namespace) -> int:
    from ..data.catalog import DATASETS, install_dataset

    spec = DATASETS[args.name]
    out = args.out or f"data/{spec.name}"
    path = install_dataset(spec.name, out, source=args.source)
    counts = ", ".join(f"{subset}/ {n} images" for subset, n in spec.image_counts.items())
    print(f"{spec.name}: {path} ({counts}; verified)")
    print(f"  source: {spec.source}")
    print(f"  next: maskrcnn check-dataset {path}")
    return 0
