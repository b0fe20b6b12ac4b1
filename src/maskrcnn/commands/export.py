"""``maskrcnn export``: write a trained model as an ONNX graph for one input size.

    maskrcnn export --weights mask_rcnn_balloon.pt --format onnx --out balloon.onnx --size 768 1024
    maskrcnn export --weights maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth --out coco.onnx   # torchvision COCO file

The graph takes one ``uint8 [3, H, W]`` RGB image of exactly ``--size H W`` and returns boxes,
labels, scores and ``M×M`` mask probabilities; preprocessing is inside the graph, mask pasting
outside (see :mod:`maskrcnn.apps.export_onnx` for the policy and
:class:`~maskrcnn.apps.export_onnx.OnnxDetector` to run it with onnxruntime). A matterport model
(``.h5``) exports its network from the molded image on (:mod:`maskrcnn.apps.export_onnx_matterport`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import MaskRCNNError

from . import WEIGHTS_FILES, add_class_names_argument, class_names_from

FORMATS = ("onnx",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True, metavar="FILE", help=WEIGHTS_FILES)
    add_class_names_argument(parser)
    parser.add_argument("--format", default="onnx", metavar="FMT", help="export format: onnx (the only one)")
    parser.add_argument("--out", required=True, metavar="FILE", help="output file, e.g. model.onnx")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                        help="input image height and width the graph is made for (default: IMAGE_MAX_DIM² for "
                             "square resizing, 800x1067 for torchvision's shortest-edge resizing)")
    parser.add_argument("--opset", type=int, default=17, metavar="N", help="ONNX opset (>= 16; default 17)")
    parser.add_argument("--no-check", action="store_true", help="skip onnx.checker on the written file")


def run(args: argparse.Namespace) -> int:
    fmt = str(args.format).lower()
    if fmt not in FORMATS:
        raise MaskRCNNError(f"--format {args.format!r}: supported formats: {', '.join(FORMATS)}")
    out = Path(args.out)
    if out.suffix.lower() != ".onnx":
        raise MaskRCNNError(f"--out {out}: use the .onnx extension")
    if args.size is not None and min(args.size) < 32:
        raise MaskRCNNError(f"--size {args.size[0]} {args.size[1]}: height and width must be at least 32")

    from ..apps.detect import load_model
    from ..apps.export_onnx import default_input_size, export_onnx, require_onnx

    model = load_model(args.weights, device="cpu", class_names=class_names_from(args.class_names))  # the weights first: a wrong file is the first thing to say
    require_onnx()
    size = tuple(args.size) if args.size else default_input_size(model.config)
    path = export_onnx(model, out, size=size, opset=args.opset, check=not args.no_check)
    mb = path.stat().st_size / 2**20
    if model.network.architecture == "matterport":
        hm, wm = model.network.preprocessor.molded_size(*size)
        print(f"wrote {path} ({mb:.1f} MB): inputs 'molded' float32 [1, 3, {hm}, {wm}] (matterport's mold_inputs) "
              f"and 'window' [4]; outputs detections [N, 6], mask_probs (run it with OnnxDetector)")
        return 0
    print(f"wrote {path} ({mb:.1f} MB): input 'image' uint8 [3, {size[0]}, {size[1]}] RGB; "
          f"outputs boxes (xyxy), labels, scores, mask_probs")
    return 0
