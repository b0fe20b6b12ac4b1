"""The ``maskrcnn`` command line: one command for the whole cycle.

Thin by design: each sub-command lives in :mod:`maskrcnn.commands.<name>` with
``add_arguments(parser)`` and ``run(args) -> int``; only the invoked one is
imported, so ``maskrcnn --help`` is instant. Errors of this package
(:class:`~maskrcnn.errors.MaskRCNNError`) print as one line without a traceback, warnings as
one line ``maskrcnn COMMAND: warning: ...``; ``--debug`` shows the traceback and Python's warnings.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

# name -> (module under maskrcnn.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "offline end-to-end demo on synthetic shapes: train, evaluate, splash, inspect"),
    "download": ("download", "download a tutorial dataset (balloon) into data/<name>, checksum-verified"),
    "check-dataset": ("check_dataset", "load a dataset, count images/instances/classes, name every problem"),
    "show-dataset": ("show_dataset", "draw samples with masks, boxes, class names and matching anchors"),
    "train": ("train", "train or fine-tune (transfer learning, staged layers, resume)"),
    "evaluate": ("evaluate", "COCO bbox/segm AP of a model on a dataset"),
    "detect": ("detect", "detect objects in images; write pictures, COCO results and VIA/labelme polygons"),
    "splash": ("splash", "color splash: keep the detected objects' color, turn the rest gray (image or video)"),
    "inspect": ("inspect", "an HTML report of every stage of the model on one image"),
    "export": ("export", "export a model to ONNX"),
    "convert": ("convert", "convert matterport's Keras .h5 weights into a checkpoint (.pth) with config and class names"),
}


def _parser_for(name: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maskrcnn",
        description="Mask R-CNN instance segmentation: datasets, training, evaluation, color splash.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(cmd, help=help_text, description=help_text)
        p.add_argument("--debug", action="store_true", help="show full tracebacks")
        if cmd == name:
            importlib.import_module(f"maskrcnn.commands.{module}").add_arguments(p)
    return parser


def _one_line_warning(command: str):
    """A ``warnings.showwarning`` printing ``maskrcnn COMMAND: warning: MESSAGE`` on one line to stderr.

    Warnings of this package (dataset, splash, training) read as the command's own; others name
    their category and module. No source line, no file:line (``--debug`` keeps Python's format).
    """
    package = os.path.dirname(os.path.abspath(__file__))

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = " ".join(str(message).split())
        if not os.path.abspath(filename).startswith(package + os.sep):
            module = os.path.splitext(os.path.basename(filename))[0]
            text += f" ({category.__name__} from {module})"
        print(f"maskrcnn {command}: warning: {text}", file=sys.stderr if file is None else file, flush=True)

    return show


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = next((a for a in argv if not a.startswith("-")), None)
    if name not in COMMANDS:
        name = None
    parser = _parser_for(name)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from .errors import MaskRCNNError

    module = importlib.import_module(f"maskrcnn.commands.{COMMANDS[args.command][0]}")
    try:
        with warnings.catch_warnings():
            if not args.debug:
                warnings.showwarning = _one_line_warning(args.command)
            return int(module.run(args) or 0)
    except MaskRCNNError as exc:
        if args.debug:
            raise
        print(f"maskrcnn {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"maskrcnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
