"""ONNX Runtime against PyTorch: latency of ``detect`` on the same images, same weights.

Our MaskRCNN (TorchvisionConfig, the benchmarks' seeded random weights — see :mod:`common`) is
exported with :func:`maskrcnn.apps.export_onnx.export_onnx` at the size of the balloon val images
used (one exported graph serves one image size, so the images are the first ``--images`` val
images of the most common size). Then, image by image and alternating the order:

* **PyTorch eager**: ``MaskRCNN.detect`` on the unmodified model;
* **PyTorch optimized**: ``detect`` after :func:`~maskrcnn.model.fuse.prepare_for_inference`
  (frozen BatchNorm folded, channels-last) — the default inference path of the apps;
* **onnxruntime**: :meth:`~maskrcnn.apps.export_onnx.OnnxDetector.detect` (graph up to the mask
  probabilities in onnxruntime's CPU provider, mask pasting in PyTorch as the model does).

All three return matterport's result dicts; the table reports the median latency per image, the
ratio to eager PyTorch and whether the detections agree with eager PyTorch (count, class ids,
boxes within 1 px, mask IoU).

Usage::

    python benchmarks/onnx_runtime.py [--images 2] [--runs 3] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2, help="balloon val images of the most common size")
    parser.add_argument("--runs", type=int, default=3, help="timed passes over the images")
    parser.add_argument("--threads", type=int, default=None, help="torch and onnxruntime threads (default torch's)")
    parser.add_argument("--min-size", type=int, default=800)
    parser.add_argument("--max-size", type=int, default=1333)
    parser.add_argument("--json", type=Path, default=None)
    return parser.parse_args(argv)


def same_size_images(count: int) -> list[np.ndarray]:
    """The first ``count`` balloon val images (by name) of the most common size."""
    from PIL import Image

    by_size: dict[tuple[int, int], list[str]] = collections.defaultdict(list)
    for name in common.balloon_names():
        with Image.open(common.BALLOON_VAL / name) as im:
            by_size[(im.height, im.width)].append(name)
    names = max(by_size.values(), key=len)[:count]
    return [np.array(Image.open(common.BALLOON_VAL / name).convert("RGB")) for name in names]


def agreement(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> dict[str, Any]:
    """Detections of ``got`` matched one to one to ``want``'s (same class, box IoU ≥ 0.9, best first).

    Reports the counts, the matched pairs, the largest box-corner difference (px) and smallest mask
    IoU of the pairs, and the highest score among the unmatched detections of either side (a
    detection near the score threshold or an NMS near-tie can flip on float rounding).
    """
    from torchvision.ops import box_iou

    n, n_ref = len(got["rois"]), len(want["rois"])
    out: dict[str, Any] = {"n": n, "n_ref": n_ref, "matched": 0, "max_box_diff": 0.0, "min_mask_iou": 1.0,
                           "max_unmatched_score": 0.0}
    pairs: list[tuple[int, int]] = []
    if n and n_ref:
        iou = box_iou(torch.from_numpy(want["rois"][:, [1, 0, 3, 2]]).float(),
                      torch.from_numpy(got["rois"][:, [1, 0, 3, 2]]).float())
        iou[torch.from_numpy(want["class_ids"])[:, None] != torch.from_numpy(got["class_ids"])[None, :]] = 0
        used: set[int] = set()
        for i in range(n_ref):  # want's detections in score order
            order = [j for j in iou[i].argsort(descending=True).tolist() if j not in used and iou[i, j] >= 0.9]
            if order:
                used.add(order[0])
                pairs.append((i, order[0]))
    out["matched"] = len(pairs)
    if pairs:
        wi, gi = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
        out["max_box_diff"] = float(np.abs(got["rois"][gi].astype(np.int64) - want["rois"][wi]).max())
        a, b = got["masks"][..., gi], want["masks"][..., wi]
        inter, union = (a & b).sum((0, 1)), (a | b).sum((0, 1))
        out["min_mask_iou"] = float(np.where(union > 0, inter / np.maximum(union, 1), 1.0).min())
    unmatched = [float(s) for k, s in enumerate(want["scores"]) if k not in {p[0] for p in pairs}]
    unmatched += [float(s) for k, s in enumerate(got["scores"]) if k not in {p[1] for p in pairs}]
    out["max_unmatched_score"] = max(unmatched, default=0.0)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from maskrcnn.apps.export_onnx import OnnxDetector, export_onnx

    device = torch.device("cpu")
    info = common.machine_info(device)
    tmp = tempfile.TemporaryDirectory(prefix="maskrcnn-onnx-bench-")
    weights = common.write_weights(Path(tmp.name) / "tv_maskrcnn.pth")
    images = same_size_images(args.images)
    size = images[0].shape[:2]

    eager = common.build_ours(weights, device, min_size=args.min_size, max_size=args.max_size, optimize=False)
    optimized = common.build_ours(weights, device, min_size=args.min_size, max_size=args.max_size, optimize=True)
    tick = time.perf_counter()
    onnx_path = export_onnx(eager, Path(tmp.name) / "model.onnx", size=size)
    export_s = time.perf_counter() - tick
    detector = OnnxDetector(onnx_path, threads=torch.get_num_threads())

    runners = {
        "PyTorch eager": lambda image: eager.detect([image])[0],
        "PyTorch optimized": lambda image: optimized.detect([image])[0],
        "onnxruntime": lambda image: detector.detect([image])[0],
    }
    # Warm-up (oneDNN primitive caches, onnxruntime's first-run allocations) and the agreement check.
    reference = [runners["PyTorch eager"](image) for image in images]
    checks = {name: [agreement(run(image), ref) for image, ref in zip(images, reference)]
              for name, run in runners.items() if name != "PyTorch eager"}

    times: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for r in range(args.runs):
        for i, image in enumerate(images):
            shift = (r + i) % len(names)
            for name in names[shift:] + names[:shift]:
                tick = time.perf_counter()
                runners[name](image)
                times[name].append(time.perf_counter() - tick)
    medians = {name: statistics.median(t) for name, t in times.items()}

    print(f"# detect latency: PyTorch and onnxruntime, {len(images)} balloon val images of {size[0]}x{size[1]}, "
          f"{args.min_size}/{args.max_size} px, {args.runs} timed passes")
    print(common.format_machine(info) + f"; onnxruntime {__import__('onnxruntime').__version__}")
    print(f"ONNX export: {export_s:.1f} s, {onnx_path.stat().st_size / 2**20:.0f} MiB\n")
    rows = []
    for name in names:
        check = checks.get(name)
        detail = "(reference)" if check is None else "; ".join(
            f"{c['matched']} of {c['n']}/{c['n_ref']} matched, box ≤ {c['max_box_diff']:.0f} px, "
            f"mask IoU ≥ {c['min_mask_iou']:.3f}"
            + (f", unmatched score ≤ {c['max_unmatched_score']:.3f}" if c["matched"] < max(c["n"], c["n_ref"]) else "")
            for c in check)
        rows.append([name, medians[name], medians[name] / medians["PyTorch eager"], detail])
    print(common.format_table(["runtime", "latency per image (s, median)", "ratio to eager",
                               "detections against eager, per image"], rows))
    print(f"(score threshold DETECTION_MIN_CONFIDENCE = {eager.config.DETECTION_MIN_CONFIDENCE})")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "size": list(size), "medians": medians, "times": times,
                                         "checks": checks, "export_seconds": export_s}, indent=2))
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
