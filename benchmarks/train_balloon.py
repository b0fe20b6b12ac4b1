"""Benchmark: the balloon dataset of the color-splash tutorial, from scratch on CPU, time-boxed.

    python benchmarks/train_balloon.py                       # at most 60 minutes, 2 threads
    python benchmarks/train_balloon.py --minutes 10 --size 192

Reads ``../shared/data/balloon/{train,val}`` (VIA 1.x, one implicit class) in place. No
pretrained weights exist offline, so this trains a ResNet-18 (GroupNorm) FPN with narrow heads
from random weights at reduced size (``--size``, square) with the default augmentation
(horizontal flip, color jitter), AdamW with warmup and cosine decay over the steps that fit in
the budget, then prints the validation COCO bbox/segm AP and AP50 (and matterport's mask
mAP@0.5) on the full-size validation images. Training images are decoded once and kept shrunk
to ``--size`` in memory. The whole run stays within ``--minutes``; training stops at the time limit.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from train_shapes import EpochTable, Replan, seconds_per_step

from maskrcnn.config import Config
from maskrcnn.data.augment import default_augmentation
from maskrcnn.data.loading import load_dataset
from maskrcnn.evaluation.coco_eval import evaluate_model
from maskrcnn.evaluation.voc_eval import evaluate_voc
from maskrcnn.detector import MaskRCNN

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "balloon"


class BalloonBenchConfig(Config):
    NAME = "balloon_bench"
    NUM_CLASSES = 1 + 1
    BACKBONE = "resnet18"
    BACKBONE_NORM = "gn"
    IMAGES_PER_GPU = 4
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 256
    IMAGE_MAX_DIM = 256
    RPN_ANCHOR_SCALES = (16, 32, 64, 128, 256)
    TOP_DOWN_PYRAMID_SIZE = 64
    MASK_HEAD_CONV_CHANNELS = 64
    MASK_HEAD_NUM_CONVS = 2
    FPN_CLASSIF_FC_LAYERS_SIZE = 256
    TRAIN_ROIS_PER_IMAGE = 64
    PRE_NMS_LIMIT = 3000
    POST_NMS_ROIS_TRAINING = 1000
    POST_NMS_ROIS_INFERENCE = 500
    MINI_MASK_SHAPE = (56, 56)
    DETECTION_MIN_CONFIDENCE = 0.05  # AP integrates over scores: keep the low ones for evaluation
    LEARNING_RATE = 0.001
    STEPS_PER_EPOCH = 25
    VALIDATION_STEPS = 0


class Downscaled:
    """A prepared dataset whose images and masks are loaded once, shrunk so the longer side is at most
    ``size`` (masks nearest-neighbor), and kept in memory: the full-size JPEG decoding, polygon
    rasterization and augmentation would otherwise cost more than the training step at 256 px."""

    def __init__(self, dataset, size: int) -> None:
        self._dataset = dataset
        self._size = int(size)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def __getattr__(self, name):
        return getattr(self._dataset, name)

    def _load(self, image_id: int):
        if image_id not in self._cache:
            image = self._dataset.load_image(image_id)
            masks, class_ids = self._dataset.load_mask(image_id)
            h, w = image.shape[:2]
            scale = min(1.0, self._size / max(h, w))
            if scale < 1.0:
                size = (max(1, round(w * scale)), max(1, round(h * scale)))
                image = np.array(Image.fromarray(image).resize(size, Image.BILINEAR))
                small = [np.asarray(Image.fromarray(masks[..., k].astype(np.uint8)).resize(size, Image.NEAREST))
                         for k in range(masks.shape[-1])]
                masks = np.stack(small, axis=-1) > 0 if small else np.zeros((size[1], size[0], 0), bool)
            self._cache[image_id] = (image, masks, class_ids)
        return self._cache[image_id]

    def load_image(self, image_id: int) -> np.ndarray:
        return self._load(image_id)[0]

    def load_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        _, masks, class_ids = self._load(image_id)
        return masks, class_ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=str(DEFAULT_DATA), help="balloon folder with train/ and val/")
    parser.add_argument("--minutes", type=float, default=60.0, help="total time budget, at most (default 60)")
    parser.add_argument("--size", type=int, default=256, help="square image side, a multiple of 64 (default 256)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default AdamW 0.001, SGD 0.02)")
    parser.add_argument("--optimizer", choices=("sgd", "adamw"), default="adamw", help="optimizer (default adamw)")
    parser.add_argument("--eval-reserve", type=float, default=120.0, help="seconds kept for evaluation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--logs", default=None, help="run folder parent (default: a temporary folder)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train_set = load_dataset(args.dataset, subset="train")
    val_set = load_dataset(args.dataset, subset="val", classes=list(train_set.class_names[1:]))
    overrides = {"IMAGE_MIN_DIM": args.size, "IMAGE_MAX_DIM": args.size}
    overrides["LEARNING_RATE"] = args.lr or (0.001 if args.optimizer == "adamw" else 0.02)
    config = BalloonBenchConfig(**overrides)
    model = MaskRCNN(config, class_names=train_set.class_names, device="cpu")
    print(f"balloon: {len(train_set.image_ids)} train / {len(val_set.image_ids)} val images, "
          f"classes {train_set.class_names[1:]}, {args.size} px", flush=True)

    train_small = Downscaled(train_set, args.size)  # validation stays at full size
    per_step = seconds_per_step(model.network, train_small, config)
    budget = args.minutes * 60.0 - (time.perf_counter() - start) - args.eval_reserve
    total_steps = max(config.STEPS_PER_EPOCH, int(budget / (per_step * 1.15)))
    epochs = math.ceil(total_steps / config.STEPS_PER_EPOCH)
    print(f"calibration: {per_step:.2f} s per step of {config.IMAGES_PER_GPU} images; planning {epochs} epochs "
          f"x {config.STEPS_PER_EPOCH} steps in {budget:.0f} s", flush=True)

    table = EpochTable(start)
    logs = args.logs or tempfile.mkdtemp(prefix="train_balloon_")
    model.model_dir = Path(logs)
    result = model.train(train_small, val_set, epochs=epochs, layers="all", augmentation=default_augmentation(),
                   seed=args.seed, progress="none", eval_every=0, tensorboard=False,
                   hooks=[table, Replan(time.perf_counter() + budget)],
                   time_limit=budget,
                   attributes={"LR_SCHEDULE": "cosine", "LR_WARMUP_STEPS": min(100, total_steps // 10),
                               "LR_WARMUP_FACTOR": 0.01, "OPTIMIZER": args.optimizer, "CHECKPOINT_KEEP_LAST": 1,
                               "BEST_METRIC": "train.loss"})
    train_s = time.perf_counter() - start
    coco = evaluate_model(model, val_set, progress=False)
    voc = evaluate_voc(model, val_set, iou=0.5)
    total_s = time.perf_counter() - start
    summary = {
        "size": args.size, "threads": args.threads, "steps": result.global_step,
        "train_seconds": train_s, "total_seconds": total_s,
        "bbox_AP": coco["bbox"]["AP"], "bbox_AP50": coco["bbox"]["AP50"],
        "segm_AP": coco["segm"]["AP"], "segm_AP50": coco["segm"]["AP50"],
        "voc_mask_mAP50": voc["mAP_mask"], "run_dir": str(result.run_dir),
    }
    print()
    print(f"{'val metric (' + str(len(val_set.image_ids)) + ' images)':32} value")
    for key in ("bbox_AP", "bbox_AP50", "segm_AP", "segm_AP50", "voc_mask_mAP50"):
        value = summary[key]
        print(f"{key:32} {value:.4f}" if value is not None else f"{key:32} -")
    print(f"{'steps':32} {result.global_step}")
    print(f"{'training time (s)':32} {train_s:.0f}")
    print(f"{'total time incl. evaluation (s)':32} {total_s:.0f}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
