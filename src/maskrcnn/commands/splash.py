"""``maskrcnn splash``: color splash of an image or a video with a trained model.

    maskrcnn splash --weights mask_rcnn_balloon.pt --image balloons.jpg
    maskrcnn splash --weights mask_rcnn_balloon.pt --video party.mp4 --out party_splash.mp4 \\
        --classes balloon --min-confidence 0.9 --batch-size 4 --device cuda
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import check_min_confidence
from ..errors import MaskRCNNError
from . import WEIGHTS_FILES, add_class_names_argument, add_inference_arguments, class_names_from, inference_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True, metavar="FILE", help=WEIGHTS_FILES)
    add_class_names_argument(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", metavar="FILE", help="image to splash (written as PNG or JPEG)")
    source.add_argument("--video", metavar="FILE", help="video to splash (any format FFmpeg reads; written as MP4)")
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="output file (.png/.jpg for an image, .mp4 for a video); default splash_<name>_<timestamp>.png/.mp4",
    )
    parser.add_argument("--classes", metavar="A,B", help="comma-separated class names to keep (default: all)")
    parser.add_argument(
        "--min-confidence",
        type=float,
        metavar="X",
        help="keep detections scoring at least X (default: the model's DETECTION_MIN_CONFIDENCE; lower or higher)",
    )
    parser.add_argument("--batch-size", type=int, default=4, metavar="N", help="video frames per model call (4)")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="where the model runs (default: cuda if available)")
    add_inference_arguments(parser)
    parser.add_argument("--crf", type=int, metavar="Q", help="video quality, x264 CRF 0..51, lower is better (18)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _classes(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise MaskRCNNError(f"--classes: no class names in {text!r}")
    return names


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise MaskRCNNError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.min_confidence is not None:
        check_min_confidence(args.min_confidence, "--min-confidence")
    source = Path(args.image or args.video)
    option = "--image" if args.image else "--video"
    if source.is_dir():
        raise MaskRCNNError(f"{option} {source}: is a folder; give one {option[2:]} file (for the images of a "
                            f"folder: maskrcnn detect --weights ... {source} --out DIR)")
    if not source.is_file():
        raise MaskRCNNError(f"{option}: file not found: {source}")
    classes = _classes(args.classes)

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise MaskRCNNError("--device cuda: no CUDA device is available")
    from ..apps.detect import load_model
    from ..apps.splash import detect_and_color_splash

    # As for detect: --min-confidence is the model's threshold, so it can lower it as well as raise it.
    model = load_model(args.weights, device=args.device, min_confidence=args.min_confidence,
                       class_names=class_names_from(args.class_names),
                       **inference_options(args))
    out = detect_and_color_splash(
        model,
        image_path=args.image,
        video_path=args.video,
        out_path=args.out,
        classes=classes,
        min_confidence=args.min_confidence,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        crf=args.crf,
        say=print,
    )
    print(f"Saved to {out}")
    return 0
