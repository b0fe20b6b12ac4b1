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


WEIGHTS_FILES = ("a checkpoint written by training, torchvision's COCO maskrcnn_resnet50_fpn file, matterport's "
                 "Keras .h5 weights, 'coco' or 'matterport-coco' (those files from the cache, downloaded once)")


def add_class_names_argument(parser: argparse.ArgumentParser) -> None:
    """``--class-names``: the names an .h5 file does not hold."""
    parser.add_argument("--class-names", default=None, metavar="A,B,C|FILE",
                        help="class names for weights that hold none (matterport's .h5): comma-separated, or a "
                             "text file with one name per line; without the background (default class_1, ...)")


def class_names_from(value: str | None) -> list[str] | None:
    """``--class-names``' value: a text file (one name per line, blank lines skipped) or ``a,b,c``."""
    import os

    from ..errors import ConfigError

    if value is None:
        return None
    if os.path.isfile(value):
        try:
            with open(value, encoding="utf-8") as f:
                names = [line.strip() for line in f if line.strip()]
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--class-names {value}: cannot read the file: {exc}") from None
    else:
        names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise ConfigError(f"--class-names {value!r}: no class names (give a,b,c or a file with one name per line)")
    if len(set(names)) != len(names):
        raise ConfigError(f"--class-names {value!r}: a name appears twice")
    return names


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
