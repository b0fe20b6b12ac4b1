"""Inference benchmark: our MaskRCNN (TorchvisionConfig) against torchvision's Mask R-CNN R50-FPN.

Both models hold identical weights (see :mod:`common`), run on the same real balloon val
images with the same thresholds, one image per forward under ``torch.inference_mode``; the
two models alternate image by image so that both see the same machine load. Reported:

* per-stage median seconds (forward hooks on both models: preprocess, backbone+FPN, RPN,
  box head incl. detection layer, mask head, mask pasting/postprocess) and the ratio ours/tv;
* median latency per image; peak memory of the inference (RSS delta measured in a fresh
  subprocess per model on CPU, ``max_memory_allocated`` on CUDA); FLOPs per image
  (``torch.utils.flop_counter``: convolutions and matrix products) and the achieved GFLOP/s
  against the measured peak of a 4096² fp32 matrix product;
* whether the detections are identical (count, labels, max box/score/mask differences).

Usage::

    python benchmarks/inference.py [--device cpu|cuda] [--amp] [--runs 3] [--images 2]
        [--no-optimize] [--no-channels-last] [--compile] [--json results.json]

``ours`` is run as :func:`maskrcnn.model.fuse.prepare_for_inference` makes it (frozen BN folded
into the convolutions, channels-last) unless ``--no-optimize``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--amp", action="store_true", help="autocast (float16 on CUDA, bfloat16 on CPU)")
    parser.add_argument("--runs", type=int, default=3, help="timed passes over the images")
    parser.add_argument("--images", type=int, default=2, help="balloon val images (sorted by name)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--min-size", type=int, default=800)
    parser.add_argument("--max-size", type=int, default=1333)
    parser.add_argument("--no-optimize", action="store_true", help="our model without BN folding/channels-last")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile our backbone")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--no-flops", action="store_true")
    parser.add_argument("--weights", type=Path, default=None, help="torchvision state dict (default: seeded random)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--memory-worker", choices=["ours", "torchvision"], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def build(which: str, args: argparse.Namespace, device: torch.device):
    if which == "torchvision":
        return common.build_torchvision(args.weights, device, min_size=args.min_size, max_size=args.max_size)
    return common.build_ours(args.weights, device, min_size=args.min_size, max_size=args.max_size,
                             optimize=not args.no_optimize,
                             channels_last=False if args.no_channels_last else None,
                             compile=args.compile).network


def inputs_for(which: str, images, device: torch.device) -> list[torch.Tensor]:
    tensors = [common.to_tensor(img).to(device) for img in images]
    if which == "torchvision":
        return [t.float() / 255 for t in tensors]
    return tensors


def memory_worker(args: argparse.Namespace) -> int:
    """Fresh process: peak memory of inference over the images for one model; prints JSON."""
    device = torch.device(args.device)
    model = build(args.memory_worker, args, device)
    inputs = inputs_for(args.memory_worker, common.load_images(args.images), device)
    with torch.inference_mode(), common.autocast_context(device, args.amp), common.PeakMemory(device) as peak:
        for x in inputs:
            model([x])
    print(json.dumps({"peak_bytes": peak.delta}))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    tmp = tempfile.TemporaryDirectory(prefix="maskrcnn-bench-")
    if args.weights is None:
        args.weights = common.write_weights(Path(tmp.name) / "tv_maskrcnn.pth")
    if args.memory_worker:
        return memory_worker(args)

    info = common.machine_info(device)
    peak_gflops = common.matmul_peak_gflops(device)
    images = common.load_images(args.images)
    models = {name: build(name, args, device) for name in ("torchvision", "ours")}
    inputs = {name: inputs_for(name, images, device) for name in models}
    timelines = {
        "torchvision": common.Timeline(models["torchvision"], common.TORCHVISION_MODULES, device),
        "ours": common.Timeline(models["ours"], common.OURS_MODULES, device),
    }

    def forward(name: str, index: int):
        timeline = timelines[name]
        timeline.reset()
        timeline.mark("start")
        with torch.inference_mode(), common.autocast_context(device, args.amp):
            out = models[name]([inputs[name][index]])
        timeline.mark("end")
        return out[0], timeline.stages(common.INFERENCE_STAGES)

    # Warm-up (allocator, oneDNN primitive caches, compile) and the detections check.
    checks = []
    for i in range(len(images)):
        ref, _ = forward("torchvision", i)
        ours, _ = forward("ours", i)
        checks.append(common.compare_detections(ours, ref))

    samples: dict[str, list[dict[str, float]]] = {"torchvision": [], "ours": []}
    for run in range(args.runs):
        for i in range(len(images)):
            order = ("torchvision", "ours") if (run + i) % 2 == 0 else ("ours", "torchvision")
            for name in order:
                samples[name].append(forward(name, i)[1])
    stage_medians = {name: common.medians(s) for name, s in samples.items()}

    flops = {}
    if not args.no_flops:
        for name, model in models.items():
            with torch.inference_mode(), common.autocast_context(device, args.amp):
                flops[name] = common.count_flops(lambda: model([inputs[name][0]]))

    memory = {}
    if not args.no_memory:
        base = [a for a in (argv if argv is not None else sys.argv[1:]) if a not in ("--json",)]
        for name in models:
            worker_args = ["--device", args.device, "--images", str(args.images), "--weights", str(args.weights),
                           "--min-size", str(args.min_size), "--max-size", str(args.max_size),
                           "--memory-worker", name]
            for flag in ("--amp", "--no-optimize", "--no-channels-last", "--compile"):
                if flag in base:
                    worker_args.append(flag)
            if args.threads:
                worker_args += ["--threads", str(args.threads)]
            memory[name] = common.run_worker(Path(__file__), worker_args)["peak_bytes"]

    result = {
        "machine": info, "matmul_peak_gflops": peak_gflops, "args": {k: str(v) for k, v in vars(args).items()},
        "stages": stage_medians, "flops": flops, "peak_memory_bytes": memory, "detections": checks,
    }
    print(report(result, args))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    for timeline in timelines.values():
        timeline.remove()
    tmp.cleanup()
    return 0


def report(result: dict, args: argparse.Namespace) -> str:
    tv, ours = result["stages"]["torchvision"], result["stages"]["ours"]
    rows = []
    for name, _, _ in common.INFERENCE_STAGES:
        label = "**latency per image (median)**" if name == "total" else name
        rows.append([label, tv[name], ours[name], ours[name] / tv[name] if tv[name] else float("nan")])
    if result["peak_memory_bytes"]:
        m = result["peak_memory_bytes"]
        rows.append(["peak memory (MB)", m["torchvision"] / 2**20, m["ours"] / 2**20, m["ours"] / m["torchvision"]])
    if result["flops"]:
        f = result["flops"]
        rows.append(["GFLOP per image", f["torchvision"] / 1e9, f["ours"] / 1e9, f["ours"] / f["torchvision"]])
        rate_tv = f["torchvision"] / 1e9 / tv["total"]
        rate_ours = f["ours"] / 1e9 / ours["total"]
        peak = result["matmul_peak_gflops"]
        rows.append(["achieved GFLOP/s", rate_tv, rate_ours, rate_ours / rate_tv])
        rows.append(["% of matmul peak", 100 * rate_tv / peak, 100 * rate_ours / peak, float("nan")])
    table = common.format_table(["stage (s)", "torchvision", "ours", "ours/tv"], rows)
    det_rows = [[i, c["n_torchvision"], c["n_ours"], c["matched"], c["swapped"], c["max_box_diff"],
                 c["max_score_diff"], c["same"], c["max_mask_diff"], c["mean_mask_iou"], c["min_mask_iou"],
                 c["bit_identical"]] for i, c in enumerate(result["detections"])]
    det = common.format_table(["image", "n tv", "n ours", "matched", "order swaps", "max box diff (px)",
                               "max score diff", "same detections", "max mask prob diff", "mean mask soft IoU",
                               "min mask soft IoU", "bit-identical"], det_rows)
    mode = "ours optimized (BN folded, channels-last)" if not args.no_optimize else "ours unoptimized"
    if args.no_channels_last and not args.no_optimize:
        mode = "ours optimized (BN folded)"
    if args.compile:
        mode += " + torch.compile(backbone)"
    lines = [
        f"# Inference: {args.images} balloon val images × {args.runs} runs, batch 1, "
        f"{args.min_size}/{args.max_size} px, {'AMP' if args.amp else 'fp32'}; {mode}",
        common.format_machine(result["machine"]),
        f"matmul peak (4096² fp32): {result['matmul_peak_gflops']:.1f} GFLOP/s",
        "",
        table,
        "",
        f"Detections (same weights, images, thresholds), matched one to one by label and box IoU; same = equal "
        f"count and labels, boxes within {common.SAME_BOX_PX} px, scores within {common.SAME_SCORE}; masks: soft "
        f"IoU sum(min)/sum(max) of the pasted probabilities:",
        det,
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
