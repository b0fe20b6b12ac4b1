"""The CLI's sub-commands: one module each with ``add_arguments(parser)`` and ``run(args) -> int``."""

from __future__ import annotations

import argparse


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """``--no-optimize`` and ``--amp``: how the commands that run the model on images run it."""
    parser.add_argument("--no-optimize", action="store_true",
                        help="run the model as saved (default: BatchNorm folded into the convolutions and "
                             "channels-last, the same detections up to float rounding, faster)")
    parser.add_argument("--amp", choices=("fp16", "bf16"), default=None,
                        help="mixed precision on CUDA (ignored on the CPU); default float32")


def inference_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of :func:`maskrcnn.apps.detect.load_model` that those two flags give."""
    return {"optimize": not args.no_optimize, "amp": args.amp}


DATASET_HELP = ("annotation file, folder holding one, dataset folder with train/ and val/, "
                "or shapes[:COUNT[:SIZE[:SEED]]]")


def add_dataset_path(parser: argparse.ArgumentParser, *, flag: str | None = None) -> None:
    """A dataset PATH (positional, or the option ``flag``, e.g. ``--dataset``) and how to read it:
    ``--format``, ``--class-attribute``, ``--annotations`` (what :func:`maskrcnn.data.load_dataset` takes)."""
    from ..data.loading import FORMAT_CHOICES

    if flag is None:
        parser.add_argument("path", metavar="PATH", help=DATASET_HELP)
    else:
        parser.add_argument(flag, required=True, metavar="PATH", help=DATASET_HELP)
    parser.add_argument("--format", default="auto", choices=FORMAT_CHOICES, help="annotation format (default: auto)")
    parser.add_argument("--class-attribute", default=None, metavar="NAME",
                        help="VIA region attribute holding the class name (default: one implicit class)")
    parser.add_argument("--annotations", default=None, metavar="FILE",
                        help="annotation file name inside each folder; {subset} is replaced by the subset name")
