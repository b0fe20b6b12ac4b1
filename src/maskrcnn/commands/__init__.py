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
