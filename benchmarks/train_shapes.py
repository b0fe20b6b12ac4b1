"""Benchmark: Mask R-CNN from scratch on synthetic shapes, on CPU, time-boxed.

    python benchmarks/train_shapes.py                 # 15 minutes, 2 threads
    python benchmarks/train_shapes.py --minutes 5 --threads 2 --json out.json

A ResNet-18 (GroupNorm) FPN with narrow heads (FPN 64 channels, mask head 2 x 64 convs, box MLP
256, 32 ROIs per image) on 128 px shapes images, trained from random weights with AdamW (lr 1e-3,
warmup, cosine decay; batches of 4 images: more updates per image seen beat bigger batches here)
for as many steps as fit in the time budget (estimated by a short calibration, re-planned after
every epoch from the measured pace),
then evaluated on 50 held-out images: matterport's mask mAP@0.5 (``evaluate_voc``) and COCO
bbox/segm AP. The whole run (calibration, training, evaluation) stays within ``--minutes``.
Prints a table per epoch (elapsed time, losses) and the final metrics.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

from maskrcnn.apps.demo import ShapesDemoConfig, seconds_per_step
from maskrcnn.data.formats.shapes import ShapesDataset
from maskrcnn.evaluation.coco_eval import evaluate_model
from maskrcnn.evaluation.voc_eval import evaluate_voc
from maskrcnn.detector import MaskRCNN
from maskrcnn.training import Hook


class ShapesBenchConfig(ShapesDemoConfig):
    """The demo's small CPU model (ResNet-18 + GroupNorm, narrow heads, 128 px, batches of 4)."""

    NAME = "shapes_bench"


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
    parser.add_argument("--minutes", type=float, default=15.0, help="total time budget (default 15)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--train-images", type=int, default=2000, help="synthetic training images (default 2000)")
    parser.add_argument("--val-images", type=int, default=50, help="held-out images (default 50)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default AdamW 0.001, SGD 0.02)")
    parser.add_argument("--optimizer", choices=("sgd", "adamw"), default="adamw", help="optimizer (default adamw)")
    parser.add_argument("--batch", type=int, default=4, help="images per step (default 4)")
    parser.add_argument("--eval-reserve", type=float, default=75.0, help="seconds kept for evaluation (default 75)")
    parser.add_argument("--steps", type=int, default=None,
                        help="train exactly this many steps instead of what the calibration predicts "
                             "(still stopped by --minutes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--logs", default=None, help="run folder parent (default: a temporary folder)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    lr = args.lr or (0.001 if args.optimizer == "adamw" else 0.02)
    config = ShapesBenchConfig(LEARNING_RATE=lr, IMAGES_PER_GPU=args.batch)
    train_set = ShapesDataset(args.train_images, 128, 128, seed=args.seed)
    held_out = ShapesDataset(args.val_images, 128, 128, seed=args.seed + 1000)
    model = MaskRCNN(config, class_names=train_set.class_names, device="cpu")

    per_step = seconds_per_step(model.network, train_set, config, repeats=3)
    budget = args.minutes * 60.0 - (time.perf_counter() - start) - args.eval_reserve
    # optimizer step, data and bookkeeping add ~10% to forward + backward
    total_steps = max(config.STEPS_PER_EPOCH, int(budget / (per_step * 1.1)))
    if args.steps:
        total_steps = args.steps
        config.STEPS_PER_EPOCH = min(config.STEPS_PER_EPOCH, total_steps)
    epochs = math.ceil(total_steps / config.STEPS_PER_EPOCH)
    warmup = min(100, total_steps // 10)
    print(f"calibration: {per_step:.2f} s per step of {config.IMAGES_PER_GPU} images at {args.threads} threads; "
          f"planning {epochs} epochs x {config.STEPS_PER_EPOCH} steps in {budget:.0f} s", flush=True)

    table = EpochTable(start)
    hooks = [table] if args.steps else [table, Replan(time.perf_counter() + budget)]
    logs = args.logs or tempfile.mkdtemp(prefix="train_shapes_")
    model.model_dir = Path(logs)
    result = model.train(train_set, None, epochs=epochs, layers="all", seed=args.seed,
                   progress="none", eval_every=0, tensorboard=False, hooks=hooks, time_limit=budget,
                   attributes={"LR_SCHEDULE": "cosine", "LR_WARMUP_STEPS": warmup, "LR_WARMUP_FACTOR": 0.01,
                               "OPTIMIZER": args.optimizer, "CHECKPOINT_KEEP_LAST": 1, "BEST_METRIC": "train.loss"})
    train_s = time.perf_counter() - start

    voc = evaluate_voc(model, held_out, iou=0.5)
    coco = evaluate_model(model, held_out, progress=False)
    total_s = time.perf_counter() - start
    summary = {
        "threads": args.threads,
        "seconds_per_step_calibrated": per_step,
        "steps": result.global_step,
        "images_seen": result.global_step * config.IMAGES_PER_GPU,
        "train_seconds": train_s,
        "total_seconds": total_s,
        "final_losses": table.rows[-1] if table.rows else {},
        "voc_mask_mAP50": voc["mAP_mask"],
        "voc_box_mAP50": voc["mAP_box"],
        "coco_segm_AP": coco["segm"]["AP"],
        "coco_segm_AP50": coco["segm"]["AP50"],
        "coco_bbox_AP": coco["bbox"]["AP"],
        "coco_bbox_AP50": coco["bbox"]["AP50"],
        "held_out_images": args.val_images,
        "run_dir": str(result.run_dir),
    }
    print()
    print(f"{'metric (held-out ' + str(args.val_images) + ' images)':40} value")
    for key in ("voc_mask_mAP50", "voc_box_mAP50", "coco_segm_AP", "coco_segm_AP50", "coco_bbox_AP",
                "coco_bbox_AP50"):
        print(f"{key:40} {summary[key]:.4f}")
    print(f"{'steps (images seen)':40} {summary['steps']} ({summary['images_seen']})")
    print(f"{'training time (s)':40} {train_s:.0f}")
    print(f"{'total time incl. evaluation (s)':40} {total_s:.0f}")
    goal = voc["mAP_mask"] is not None and voc["mAP_mask"] >= 0.90 and total_s <= args.minutes * 60 + 30
    print(f"goal mask mAP@0.5 >= 0.90 within {args.minutes:g} min: {'MET' if goal else 'NOT MET'}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, default=float))
    return 0 if goal else 1


if __name__ == "__main__":
    sys.exit(main())
