"""Training-step benchmark: one SGD step (forward + backward + update) of our MaskRCNN
(TorchvisionConfig) against torchvision's Mask R-CNN R50-FPN at equal settings.

Equal settings: identical weights (see :mod:`common`), the same batch of annotated balloon
train images (full-size masks rasterized from the VIA polygons), torchvision's training
defaults on both sides (800/1333 px, 256 anchors and 512 ROIs per image, frozen BatchNorm,
conv1 and layer1 frozen = torchvision's ``trainable_backbone_layers=3``), the same global seed
before each step (so that both samplers draw from the same RNG state), ``SGD(lr=0.01,
momentum=0.9, weight_decay=1e-4)``. Every timed step starts from the initial weights with a fresh
optimizer (steps chained on random weights diverge). The two models alternate step by step.

Reported: per-stage median seconds (forward by hooks: preprocess, backbone+FPN, RPN, ROI
heads box part, mask part; backward; optimizer step), total per step and the ratio ours/tv,
peak memory of a step (RSS delta in a fresh process per model; CUDA ``max_memory_allocated``),
FLOPs of forward+backward (``torch.utils.flop_counter``) and achieved GFLOP/s against the
4096² matmul peak, and the losses of the first step side by side.

Usage::

    python benchmarks/train_step.py [--device cpu|cuda] [--amp] [--runs 3] [--batch 2] [--min-size 800]
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

TRAIN_STAGES = (
    ("preprocess", "start", "backbone.pre"),
    ("backbone+FPN", "backbone.pre", "backbone.post"),
    ("RPN (+ targets, loss)", "rpn.pre", "rpn.post"),
    ("ROI heads box (+ targets)", "roi_heads.pre", "mask_roi_pool.pre"),
    ("ROI heads mask (+ targets, losses)", "mask_roi_pool.pre", "roi_heads.post"),
    ("forward", "start", "forward_end"),
    ("backward", "forward_end", "backward_end"),
    ("optimizer step", "backward_end", "end"),
    ("total", "start", "end"),
)
LOSS_NAMES = {  # torchvision's names → ours
    "loss_objectness": "rpn_class_loss",
    "loss_rpn_box_reg": "rpn_bbox_loss",
    "loss_classifier": "mrcnn_class_loss",
    "loss_box_reg": "mrcnn_bbox_loss",
    "loss_mask": "mrcnn_mask_loss",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--amp", action="store_true", help="autocast (float16 on CUDA, bfloat16 on CPU)")
    parser.add_argument("--runs", type=int, default=3, help="timed steps per model (after one warm-up step)")
    parser.add_argument("--batch", type=int, default=2, help="images per step")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--min-size", type=int, default=800)
    parser.add_argument("--max-size", type=int, default=1333)
    parser.add_argument("--channels-last", action="store_true", help="our model's weights in channels-last")
    parser.add_argument("--rpn-head", choices=["auto", "sampled", "dense"], default="auto",
                        help="ours: RPN losses from the head at the sampled anchors or from the dense head "
                             "(RPN sampled_head_grad; auto: sampled on the CPU)")
    parser.add_argument("--bn-fold", choices=["auto", "on", "off"], default="auto",
                        help="ours: frozen BN folded into the convolutions in training (auto: on the CPU)")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--no-flops", action="store_true")
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--memory-worker", choices=["ours", "torchvision"], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def make_optimizer(model) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)


def build(which: str, args: argparse.Namespace, device: torch.device):
    """The model in training mode with conv1 + layer1 frozen, and its SGD optimizer."""
    if which == "torchvision":
        model = common.build_torchvision(args.weights, device, min_size=args.min_size, max_size=args.max_size)
        # torchvision's _resnet_fpn_extractor(trainable_layers=3) already froze conv1 and layer1.
    else:
        model = common.build_ours(args.weights, device, min_size=args.min_size, max_size=args.max_size,
                                  optimize=False).network
        body = model.backbone.body
        for module in (body.conv1, body.bn1, body.layer1):
            for p in module.parameters():
                p.requires_grad_(False)
        if args.channels_last:
            model.to(memory_format=torch.channels_last)
        model.rpn.sampled_head_grad = {"auto": None, "sampled": True, "dense": False}[args.rpn_head]
        model.backbone.body.fold_frozen_bn = {"auto": None, "on": True, "off": False}[args.bn_fold]
    model.train()
    return model, make_optimizer(model)


def batch_for(which: str, samples, device: torch.device):
    images, targets = [], []
    for image, target in samples:
        x = common.to_tensor(image).to(device)
        images.append(x.float() / 255 if which == "torchvision" else x)
        targets.append({k: v.to(device) for k, v in target.items()})
    return images, targets


def loss_sum(which: str, losses: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    named = {LOSS_NAMES.get(k, k): float(v.detach()) for k, v in losses.items()}
    return sum(losses.values()), named


def consume_resize_draws(num_images: int) -> None:
    """Draw what torchvision's ``GeneralizedRCNNTransform`` draws in training before the samplers run.

    Its ``resize`` picks the training size with ``torch.empty(1).uniform_(0, len(min_size))`` once per
    image (one size here, so the draw changes nothing else). Ours has no such draw; consuming the same
    numbers leaves both anchor and ROI samplers at the same global RNG state, so that both models sample
    the same anchors and ROIs and the first-step losses compare like for like.
    """
    for _ in range(num_images):
        torch.empty(1).uniform_(0.0, 1.0)


def step(model, optimizer, which, images, targets, device, amp, timeline=None, seed=0):
    """One SGD step; returns the losses (floats, our names)."""
    torch.manual_seed(seed)
    mark = timeline.mark if timeline is not None else (lambda _e: None)
    if timeline is not None:
        timeline.reset()
    mark("start")
    optimizer.zero_grad(set_to_none=True)
    if which == "ours":
        consume_resize_draws(len(images))
    with common.autocast_context(device, amp):
        losses = model(images, targets)
    total, named = loss_sum(which, losses)
    mark("forward_end")
    total.backward()
    mark("backward_end")
    optimizer.step()
    mark("end")
    return named


def memory_worker(args: argparse.Namespace) -> int:
    device = torch.device(args.device)
    model, optimizer = build(args.memory_worker, args, device)
    images, targets = batch_for(args.memory_worker, common.load_annotated(args.batch), device)
    with common.PeakMemory(device) as peak:
        step(model, optimizer, args.memory_worker, images, targets, device, args.amp)
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
    samples = common.load_annotated(args.batch)
    names = ("torchvision", "ours")
    built = {name: build(name, args, device) for name in names}
    batches = {name: batch_for(name, samples, device) for name in names}
    timelines = {
        "torchvision": common.Timeline(built["torchvision"][0], common.TORCHVISION_MODULES, device),
        "ours": common.Timeline(built["ours"][0], common.OURS_MODULES, device),
    }

    # Every step starts from the initial weights with a fresh optimizer: the random weights' losses are
    # large, and steps chained on them would drive the weights to inf/NaN and the heads to empty work.
    initial = {name: {k: v.detach().clone() for k, v in built[name][0].state_dict().items()} for name in names}

    def fresh(name: str):
        model = built[name][0]
        model.load_state_dict(initial[name])
        return model, make_optimizer(model)

    # Warm-up step (also the losses compared: same weights, same seed).
    first_losses = {}
    for name in names:
        first_losses[name] = step(*fresh(name), name, *batches[name], device, args.amp, seed=0)

    samples_t: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for run in range(args.runs):
        order = names if run % 2 == 0 else names[::-1]
        for name in order:
            model, optimizer = fresh(name)
            step(model, optimizer, name, *batches[name], device, args.amp, timeline=timelines[name], seed=run + 1)
            samples_t[name].append(timelines[name].stages(TRAIN_STAGES))
    stage_medians = {name: common.medians(s) for name, s in samples_t.items()}

    flops = {}
    if not args.no_flops:
        for name in names:
            model, optimizer = fresh(name)

            def fwd_bwd(model=model, name=name, optimizer=optimizer):
                with common.autocast_context(device, args.amp):
                    losses = model(*batches[name])
                sum(losses.values()).backward()
                optimizer.zero_grad(set_to_none=True)

            flops[name] = common.count_flops(fwd_bwd)

    memory = {}
    if not args.no_memory:
        for name in names:
            worker_args = ["--device", args.device, "--batch", str(args.batch), "--weights", str(args.weights),
                           "--min-size", str(args.min_size), "--max-size", str(args.max_size),
                           "--memory-worker", name]
            if args.amp:
                worker_args.append("--amp")
            if args.channels_last:
                worker_args.append("--channels-last")
            worker_args += ["--rpn-head", args.rpn_head, "--bn-fold", args.bn_fold]
            if args.threads:
                worker_args += ["--threads", str(args.threads)]
            memory[name] = common.run_worker(Path(__file__), worker_args)["peak_bytes"]

    result = {"machine": info, "matmul_peak_gflops": peak_gflops, "args": {k: str(v) for k, v in vars(args).items()},
              "stages": stage_medians, "flops": flops, "peak_memory_bytes": memory, "first_losses": first_losses}
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
    for name, _, _ in TRAIN_STAGES:
        label = "**step (median)**" if name == "total" else name
        rows.append([label, tv[name], ours[name], ours[name] / tv[name] if tv[name] else float("nan")])
    if result["peak_memory_bytes"]:
        m = result["peak_memory_bytes"]
        rows.append(["peak memory (MB)", m["torchvision"] / 2**20, m["ours"] / 2**20, m["ours"] / m["torchvision"]])
    if result["flops"]:
        f = result["flops"]
        rows.append(["GFLOP per step (fwd+bwd)", f["torchvision"] / 1e9, f["ours"] / 1e9,
                     f["ours"] / f["torchvision"]])
        rate_tv, rate_ours = f["torchvision"] / 1e9 / tv["total"], f["ours"] / 1e9 / ours["total"]
        rows.append(["achieved GFLOP/s", rate_tv, rate_ours, rate_ours / rate_tv])
        peak = result["matmul_peak_gflops"]
        rows.append(["% of matmul peak", 100 * rate_tv / peak, 100 * rate_ours / peak, float("nan")])
    table = common.format_table(["stage (s)", "torchvision", "ours", "ours/tv"], rows)
    losses = result["first_losses"]
    loss_rows = [[k, losses["torchvision"].get(k, float("nan")), losses["ours"].get(k, float("nan"))]
                 for k in LOSS_NAMES.values()]
    loss_table = common.format_table(["loss (first step, same seed)", "torchvision", "ours"], loss_rows)
    return "\n".join([
        f"# Training step: batch {args.batch} balloon train images, {args.min_size}/{args.max_size} px, "
        f"{'AMP' if args.amp else 'fp32'}, SGD, {args.runs} timed steps after 1 warm-up"
        + (", ours channels-last" if args.channels_last else "")
        + f"; ours: RPN head {args.rpn_head}, BN fold {args.bn_fold}",
        common.format_machine(result["machine"]),
        f"matmul peak (4096² fp32): {result['matmul_peak_gflops']:.1f} GFLOP/s",
        "",
        table,
        "",
        loss_table,
    ])


if __name__ == "__main__":
    sys.exit(main())
