"""``maskrcnn detect``: pictures, COCO results and VIA/labelme polygons for image files.

    maskrcnn detect --weights logs/balloon/mask_rcnn_balloon_0030.pt photos/ --out detections/
"""

from __future__ import annotations

import argparse

from . import WEIGHTS_FILES, add_class_names_argument, add_inference_arguments, class_names_from, inference_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True, metavar="FILE", help=WEIGHTS_FILES)
    add_class_names_argument(parser)
    parser.add_argument("images", nargs="+", metavar="IMAGES",
                        help="image files, folders (their images) or glob patterns ('**' recursive)")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder to write the outputs to")
    parser.add_argument("--min-confidence", type=float, default=None, metavar="X",
                        help="keep detections scoring at least X (default: the model's DETECTION_MIN_CONFIDENCE)")
    parser.add_argument("--batch-size", type=int, default=1, metavar="N", help="images per forward pass")
    parser.add_argument("--format-polygons", choices=("via", "labelme", "both", "none"), default="both",
                        help="polygon files for annotation tools (default: both)")
    parser.add_argument("--polygon-tolerance", type=float, default=1.0, metavar="PX",
                        help="polygon simplification tolerance in pixels (default 1)")
    parser.add_argument("--polygon-parts", choices=("all", "largest"), default="all",
                        help="write every part of a mask, or only its largest (default all)")
    parser.add_argument("--no-pictures", action="store_true", help="do not draw pictures/<name>.png")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    add_inference_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ..apps.detect import collect_images, detect_images, load_model
    from ..apps.summary import objects_found
    from ..config import check_min_confidence

    if args.min_confidence is not None:
        check_min_confidence(args.min_confidence, "--min-confidence")
    paths = collect_images(args.images)
    model = load_model(args.weights, device=args.device, min_confidence=args.min_confidence,
                       class_names=class_names_from(args.class_names),
                       **inference_options(args))
    print(f"detecting in {len(paths)} image(s) with {args.weights}")
    result = detect_images(
        model, paths, args.out, min_confidence=args.min_confidence, batch_size=args.batch_size,
        polygon_format=args.format_polygons, tolerance=args.polygon_tolerance, parts=args.polygon_parts,
        pictures=not args.no_pictures, progress=print,
    )
    if result.num_detections == 0:
        print(objects_found(0, len(paths)))
    print(f"{result.num_detections} detections in {len(paths)} image(s), {result.seconds:.1f} s; "
          f"wrote to {result.out_dir}:")
    if result.pictures:
        print(f"  pictures/            {len(result.pictures)} picture(s) with masks, boxes and scores")
    print(f"  {result.predictions.name:20} COCO results (RLE), for COCO({result.images_json.name}).loadRes(...)")
    print(f"  {result.images_json.name:20} COCO images and categories")
    if result.via is not None:
        print(f"  {result.via.name:20} VIA 2 polygons (open in VIA with the images)")
    if result.labelme:
        print(f"  labelme/             {len(result.labelme)} labelme JSON file(s)")
    return 0
