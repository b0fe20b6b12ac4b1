"""``maskrcnn convert``: matterport's Keras ``.h5`` weights → this package's checkpoint (``.pth``).

    maskrcnn convert mask_rcnn_balloon.h5 --out balloon.pth --class-names balloon
    maskrcnn convert matterport-coco --out mask_rcnn_coco.pth

The checkpoint holds the weights, the config (a MatterportConfig of the file's BACKBONE and
NUM_CLASSES, with ``--set`` on top) and the class names, so every other command and
``MaskRCNN.from_weights`` rebuild the model from it alone.
"""

from __future__ import annotations

import argparse

from . import add_class_names_argument, class_names_from


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("weights", metavar="FILE.h5",
                        help="matterport's Keras .h5 weights, or 'matterport-coco' (its COCO release, downloaded once)")
    parser.add_argument("--out", required=True, metavar="FILE.pth", help="the checkpoint to write")
    add_class_names_argument(parser)
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="config attributes stored with the weights (values parsed as YAML), e.g. NAME=balloon "
                             "DETECTION_MIN_CONFIDENCE=0.9")


def run(args: argparse.Namespace) -> int:
    from ..apps.detect import fit_class_names
    from ..detector import MaskRCNN, resolve_weights
    from ..detector.weights_rule import class_names_note, placeholder_class_names
    from ..errors import WeightsError
    from ..training.setup import parse_set_values

    try:
        choice = resolve_weights(args.weights)
    except WeightsError as exc:
        raise WeightsError(f"{args.weights}: {exc}" if not str(exc).startswith(str(args.weights)) else str(exc)) \
            from None
    if choice.format != "matterport_h5":
        raise WeightsError(f"{choice.label}: convert reads matterport's Keras .h5 weights; this is a "
                           f"{choice.format or choice.kind} file, which the other commands read as it is")
    config = choice.config()
    values = parse_set_values(args.set, type(config))
    if values:
        config = config.copy(**values).validate()
    given = class_names_from(args.class_names)
    names = fit_class_names(given, config.NUM_CLASSES) if given else choice.class_names()
    if names is None:
        names = placeholder_class_names(config.NUM_CLASSES)
        print(f"note: {class_names_note(choice, int(config.NUM_CLASSES))}")
    model = MaskRCNN(config, class_names=names, device="cpu")
    report = model.load_weights(choice)
    print(str(report))
    path = model.save(args.out)
    print(f"wrote {path}: {type(config).__name__} BACKBONE={config.BACKBONE} NUM_CLASSES={config.NUM_CLASSES}, "
          f"classes {names[1:6]}{' …' if len(names) > 6 else ''}")
    return 0
