"""Benchmark: the demo's recipe (Mask R-CNN from scratch on synthetic shapes, CPU), a fixed number of steps.

    python benchmarks/train_shapes.py                      # the demo's steps and threads
    python benchmarks/train_shapes.py --steps 800 --threads 2 --json out.json

Trains exactly what ``maskrcnn demo`` trains (:class:`maskrcnn.apps.demo.ShapesDemoConfig`: the
presets' CPU model — ResNet-18 + GroupNorm, narrow heads — on 64 px shapes, AdamW with warmup and
cosine decay over ``--steps``; :func:`maskrcnn.apps.demo.train_demo_model`), then evaluates it on
``--val-images`` held-out images (detections scoring >= 0.05, as the demo): matterport's mask
mAP@0.5 (``evaluate_voc``) and COCO bbox/segm AP (the demo prints COCO segm AP50). The result depends on the seed and the steps, not on the machine's speed. Prints the losses
every tenth of the run, the wall and CPU seconds of training (with one thread, the CPU seconds
estimate the wall time of an idle machine) and the final metrics.

``EpochTable``, ``Replan`` and ``seconds_per_step`` serve ``train_balloon.py`` (time-boxed).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from maskrcnn.apps.demo import (DEMO_STEPS, DEMO_THREADS, EVAL_MIN_CONFIDENCE, ShapesDemoConfig, demo_datasets,
                                train_demo_model)
from maskrcnn.config import Config
from maskrcnn.detector import MaskRCNN
from maskrcnn.evaluation.coco_eval import evaluate_model
from maskrcnn.evaluation.voc_eval import evaluate_voc
from maskrcnn.training import Hook


def seconds_per_step(model, dataset, config: Config, repeats: int = 2) -> float:
    """Forward + backward time of one training batch (after a warm-up) of ``model`` (the network, an
    ``nn.Module``), without changing the weights."""
    from maskrcnn.data.loader import TrainingSamples, collate

    samples = TrainingSamples.from_config(dataset, config)
    images, targets = collate([samples[i] for i in range(config.IMAGES_PER_GPU)])
    model.train()
    times = []
    for _ in range(repeats + 1):
        tick = time.monotonic()
        losses = model(images, targets)
        sum(losses.values()).backward()
        times.append(time.monotonic() - tick)
    model.zero_grad(set_to_none=True)
    return sorted(times[1:])[len(times[1:]) // 2]


class EpochTable(Hook):
    """Prints one row per epoch: elapsed seconds, steps, learning rate and the five losses."""

    COLUMNS = ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss", "mrcnn_mask_loss", "loss")

    def __init__(self, start: float) -> None:
        self.start = start
        self.rows: list[dict] = []

    def before_train(self, trainer) -> None:
        names = " ".join(f"{c.replace('_loss', ''):>11}" for c in self.COLUMNS)
        print(f"{'epoch':>5} {'time_s':>7} {'step':>5} {'lr':>8} {names}", flush=True)

    def after_epoch(self, trainer, record) -> None:
        row = {"epoch": record["epoch"], "time_s": time.perf_counter() - self.start, "step": record["global_step"],
               "lr": record["lr"], **record["train"]}
        self.rows.append(row)
        print(f"{row['epoch']:>5} {row['time_s']:7.0f} {row['step']:>5} {row['lr']:8.5f} "
              + " ".join(f"{row.get(c, float('nan')):11.4f}" for c in self.COLUMNS), flush=True)


class Replan(Hook):
    """Fits the run to a deadline: every ``every`` steps, the pace measured since the start gives the
    steps left, which become the end of the cosine schedule and the number of epochs (the first
    estimate comes from a short calibration; the machine's load may change)."""

    def __init__(self, deadline: float, every: int = 10) -> None:
        self.deadline = deadline
        self.every = every
        self.start_time = 0.0
        self.start_step = 0

    def before_train(self, trainer) -> None:
        self.start_time, self.start_step = time.perf_counter(), trainer.state.global_step

    def after_step(self, trainer, info) -> None:
        done = info.global_step - self.start_step
        if done % self.every:
            return
        now = time.perf_counter()
        left = max(int((self.deadline - now) / ((now - self.start_time) / done)), 1)
        trainer.schedule.end_step = info.global_step + left
        trainer.target_epochs = math.ceil((info.global_step + left) / trainer.options.steps_per_epoch)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=DEMO_STEPS, help=f"training steps (default {DEMO_STEPS}, the demo's)")
    parser.add_argument("--threads", type=int, default=DEMO_THREADS,
                        help=f"torch threads (default {DEMO_THREADS}, the demo's)")
    parser.add_argument("--val-images", type=int, default=50, help="held-out images (default 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--logs", default=None, help="run folder parent (default: a temporary folder)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)

    import tempfile

    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    config = ShapesDemoConfig(STEPS_PER_EPOCH=args.steps)
    train_set, held_out = demo_datasets(seed=args.seed, held_out=args.val_images)
    logs = args.logs or tempfile.mkdtemp(prefix="train_shapes_")
    model = MaskRCNN(config, class_names=train_set.class_names, device="cpu", model_dir=logs)
    print(f"{args.steps} steps of {config.IMAGES_PER_GPU} images, {config.IMAGE_MAX_DIM} px, "
          f"{args.threads} threads", flush=True)

    class Every(Hook):
        def after_step(self, trainer, info) -> None:
            if info.global_step % max(args.steps // 10, 1) == 0 or info.global_step == args.steps:
                print(f"step {info.global_step:5d}  {time.perf_counter() - start:7.0f} s  loss {info.losses['loss']:.3f}",
                      flush=True)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    steps = train_demo_model(model, train_set, seed=args.seed, progress=False, hooks=[Every()])
    train_cpu, train_s = time.process_time() - cpu0, time.perf_counter() - wall0

    model.config.DETECTION_MIN_CONFIDENCE = EVAL_MIN_CONFIDENCE  # as the demo evaluates
    voc = evaluate_voc(model, held_out, iou=0.5)
    coco = evaluate_model(model, held_out, progress=False)
    total_s = time.perf_counter() - start
    summary = {
        "threads": args.threads,
        "steps": len(steps),
        "images_seen": len(steps) * config.IMAGES_PER_GPU,
        "train_seconds": train_s,
        "train_cpu_seconds": train_cpu,
        "total_seconds": total_s,
        "final_loss": steps[-1]["loss"] if steps else None,
        "voc_mask_mAP50": voc["mAP_mask"],
        "voc_box_mAP50": voc["mAP_box"],
        "coco_segm_AP": coco["segm"]["AP"],
        "coco_segm_AP50": coco["segm"]["AP50"],
        "coco_bbox_AP": coco["bbox"]["AP"],
        "coco_bbox_AP50": coco["bbox"]["AP50"],
        "held_out_images": args.val_images,
    }
    print()
    print(f"{'metric (held-out ' + str(args.val_images) + ' images)':40} value")
    for key in ("voc_mask_mAP50", "voc_box_mAP50", "coco_segm_AP", "coco_segm_AP50", "coco_bbox_AP",
                "coco_bbox_AP50"):
        print(f"{key:40} {summary[key]:.4f}")
    print(f"{'steps (images seen)':40} {summary['steps']} ({summary['images_seen']})")
    print(f"{'training wall / CPU time (s)':40} {train_s:.0f} / {train_cpu:.0f}")
    print(f"{'total time incl. evaluation (s)':40} {total_s:.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
