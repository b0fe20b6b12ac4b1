"""``maskrcnn demo``: the whole cycle offline, on CPU, in a few minutes.

:func:`run_demo` makes a synthetic shapes dataset, trains a small Mask R-CNN from scratch
(ResNet-18 with GroupNorm and narrow heads, 128×128 images) for as long as the time box
allows, evaluates it (mask AP at IoU 0.5), runs ``detect`` on a few images (pictures, COCO
results, VIA/labelme polygons), color-splashes them, writes the inspect-model report and an
``index.html`` / ``README.txt`` of what it wrote::

    <out>/
      index.html, README.txt      what is where
      model.pt                    the trained model (MaskRCNN.from_weights / --weights)
      config.yaml                 its configuration
      training.json               losses of every training step
      logs/                       the training run's folder (metrics.jsonl; its checkpoint is removed)
      evaluation.json             COCO bbox/segm metrics on held-out shapes
      images/                     the held-out images used below
      detections/                 `maskrcnn detect` outputs on them
      splash/                     color splash of them
      inspect.html                `maskrcnn inspect` report of the first one (with ground truth)

Training is planned and time-boxed by wall clock: one forward/backward pass is timed to plan
the number of steps (AdamW, warmup, cosine decay to the planned end, as
``benchmarks/train_shapes.py``), and ``train(time_limit=...)`` stops after the step that
crosses the deadline; the number of evaluation images adapts to the time left. So the demo
ends within about ``minutes`` on any machine; more time, better model.
"""

from __future__ import annotations

import html
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..config import Config


class ShapesDemoConfig(Config):
    """matterport's ShapesConfig at CPU scale: narrow heads, few ROIs, 128-pixel images, batches of
    4 (the settings of ``benchmarks/train_shapes.py``: about 0.6 s per step on 2 cores)."""

    NAME = "shapes_demo"
    NUM_CLASSES = 1 + 3  # background + square, circle, triangle
    IMAGES_PER_GPU = 4  # more updates per image seen beat bigger batches here
    STEPS_PER_EPOCH = 50  # replaced by the planned number of steps (one epoch)
    VALIDATION_STEPS = 0
    DETECTION_MIN_CONFIDENCE = 0.5  # a young model is unsure; COCO AP only gains from the extra detections
    LEARNING_RATE = 0.001
    MINI_MASK_SHAPE = (28, 28)

    # The small CPU model (also the samples' --smoke settings, see SMALL_CPU_OVERRIDES).
    BACKBONE = "resnet18"
    BACKBONE_NORM = "gn"
    TOP_DOWN_PYRAMID_SIZE = 64
    MASK_HEAD_CONV_CHANNELS = 64
    MASK_HEAD_NUM_CONVS = 2
    FPN_CLASSIF_FC_LAYERS_SIZE = 256
    TRAIN_ROIS_PER_IMAGE = 32
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    PRE_NMS_LIMIT = 2000
    POST_NMS_ROIS_TRAINING = 500
    POST_NMS_ROIS_INFERENCE = 250


#: The CPU-scale model's attributes, to apply to another Config (the samples' ``--smoke``).
SMALL_CPU_OVERRIDES: dict[str, Any] = {
    key: getattr(ShapesDemoConfig, key)
    for key in ("BACKBONE", "BACKBONE_NORM", "TOP_DOWN_PYRAMID_SIZE", "MASK_HEAD_CONV_CHANNELS",
                "MASK_HEAD_NUM_CONVS", "FPN_CLASSIF_FC_LAYERS_SIZE", "TRAIN_ROIS_PER_IMAGE", "IMAGE_RESIZE_MODE",
                "IMAGE_MIN_DIM", "IMAGE_MAX_DIM", "RPN_ANCHOR_SCALES", "PRE_NMS_LIMIT", "POST_NMS_ROIS_TRAINING",
                "POST_NMS_ROIS_INFERENCE")
}


def training_attributes(total_steps: int) -> dict[str, Any]:
    """Training-loop settings (:mod:`maskrcnn.training.options`) for ``total_steps`` steps: AdamW,
    warmup, then cosine decay to the planned end (the time limit may stop it a little earlier)."""
    return {"OPTIMIZER": "adamw", "LR_SCHEDULE": "cosine", "LR_WARMUP_STEPS": min(100, total_steps // 10),
            "LR_WARMUP_FACTOR": 0.01, "EVAL_EVERY": 0, "CHECKPOINT_KEEP_LAST": 1, "BEST_METRIC": "train.loss"}


def seconds_per_step(model: Any, dataset: Any, config: Config, repeats: int = 2) -> float:
    """Forward + backward time of one training batch (after a warm-up) of ``model`` (the network, an
    ``nn.Module``), without changing the weights."""
    from ..data.loader import TrainingSamples, collate

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


def _loss_recorder(steps: list[dict]):
    """A training hook that appends each step's losses (and the seconds since training began) to ``steps``."""
    from ..training.trainer import Hook

    class _Recorder(Hook):
        def before_train(self, trainer) -> None:
            self.start = time.monotonic()

        def after_step(self, trainer, info) -> None:
            steps.append({"step": info.global_step, "time_s": round(time.monotonic() - self.start, 2),
                          "lr": info.lr, **{k: round(float(v), 5) for k, v in info.losses.items()}})

    return _Recorder()


@dataclass
class DemoResult:
    """What :func:`run_demo` did and wrote."""

    out_dir: Path
    steps: int = 0
    train_seconds: float = 0.0
    mask_ap50: float | None = None
    box_ap50: float | None = None
    detections: int = 0
    files: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0


MAX_EVAL_IMAGES = 24
MIN_EVAL_IMAGES = 4


def _budget(total_s: float) -> dict[str, float]:
    """How the time box is shared: training gets what is left after a reserve for the rest.

    On an idle 2-core machine everything after training (evaluation of up to 24 images, detect,
    splash, the inspect report) takes about 10 s, and starting Python with torch about 7 s: a 12 %
    reserve (36 s of 5 minutes) keeps a margin for a slower machine (the evaluation also shrinks
    to the time left, see :func:`_eval_images`)."""
    reserve = min(max(0.12 * total_s, 20.0), 75.0)
    return {"train": max(total_s - reserve, 1.0)}


def _eval_images(seconds_left: float, seconds_per_image: float) -> int:
    """Held-out images to evaluate so that evaluation, detect/splash (8 forward passes) and the
    inspect report (about 10 forward passes' worth of work) fit in ``seconds_left``."""
    spare = seconds_left - 18 * seconds_per_image - 3.0
    count = int(spare / max(1.2 * seconds_per_image, 1e-3))
    return max(MIN_EVAL_IMAGES, min(MAX_EVAL_IMAGES, count))


def run_demo(
    out_dir: str | os.PathLike = "maskrcnn_demo",
    *,
    minutes: float = 5.0,
    seed: int = 0,
    device: str | None = "cpu",
    log: Callable[[str], None] = print,
) -> DemoResult:
    """Run the offline demo into ``out_dir`` within about ``minutes`` of wall clock (see the module doc)."""
    import torch

    from ..data.formats.shapes import ShapesDataset
    from ..evaluation.coco_eval import evaluate_model
    from ..detector import MaskRCNN
    from .detect import detect_images
    from .export_predictions import write_json
    from .inspect_report import inspect_report
    from .splash import color_splash

    start = time.monotonic()
    total_s = max(float(minutes) * 60.0, 5.0)
    budget = _budget(total_s)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = DemoResult(out_dir=out)
    torch.manual_seed(seed)

    config = ShapesDemoConfig()
    class_names = ["BG", "square", "circle", "triangle"]
    train_set = ShapesDataset(2000, 128, 128, seed=seed)
    val_set = ShapesDataset(MAX_EVAL_IMAGES, 128, 128, seed=seed + 1)
    log(f"[1/5] shapes dataset: {train_set.num_images} training images (made as needed), "
        f"up to {val_set.num_images} held-out images, 128x128")
    model = MaskRCNN(config, class_names=class_names, device=device, model_dir=out / "logs")
    config.to_yaml(out / "config.yaml")
    result.files["config"] = out / "config.yaml"

    per_step = seconds_per_step(model.network, train_set, config)
    train_s = max(start + budget["train"] - time.monotonic(), 1.0)
    total_steps = max(int(train_s / (per_step * 1.1)), 1)  # the optimizer step and data add ~10 %
    config.STEPS_PER_EPOCH = total_steps
    log(f"[2/5] training {config.BACKBONE} ({config.backbone_norm}) from scratch: {per_step:.2f} s per step of "
        f"{config.IMAGES_PER_GPU} images, about {total_steps} steps in {train_s:.0f} s (time-boxed)")
    steps: list[dict] = []
    train_start = time.monotonic()
    model.train(train_set, None, epochs=1, layers="all", device=device, progress="none", seed=seed,
                hooks=[_loss_recorder(steps)], tensorboard=False, attributes=training_attributes(total_steps),
                time_limit=train_s)
    for checkpoint in (out / "logs").glob("*/*.pth"):
        checkpoint.unlink()  # the training state (optimizer moments) is not needed: model.pt is the model
    result.train_seconds = time.monotonic() - train_start
    result.steps = len(steps)
    if steps:
        first, last = steps[0]["loss"], np.mean([s["loss"] for s in steps[-10:]])
        log(f"      {result.steps} steps in {result.train_seconds:.0f} s; loss {first:.2f} -> {last:.2f}")
    result.files["training"] = write_json(out / "training.json", {"steps": steps}, indent=1)
    result.files["model"] = model.save(out / "model.pt", epoch=1)

    tick = time.monotonic()
    model.detect([val_set.load_image(0)])  # one forward pass: how many images does the time left allow?
    count = _eval_images(start + total_s - time.monotonic(), time.monotonic() - tick)
    log(f"[3/5] evaluating on {count} held-out images")
    metrics = evaluate_model(model, val_set, limit=count, progress=False)
    result.mask_ap50 = float(metrics["segm"]["AP50"])
    result.box_ap50 = float(metrics["bbox"]["AP50"])
    result.files["evaluation"] = write_json(out / "evaluation.json", metrics, indent=1)
    log(f"      mask mAP@0.5 = {result.mask_ap50:.3f}   (box mAP@0.5 = {result.box_ap50:.3f})")

    log("[4/5] detect and color splash on 4 held-out images")
    image_paths = _write_images(val_set, out / "images", count=4)
    result.detections = detect_images(model, image_paths, out / "detections", batch_size=4).num_detections
    result.files["detections"] = out / "detections"
    splash_dir = out / "splash"
    splash_dir.mkdir(exist_ok=True)
    images = [val_set.load_image(i) for i in range(len(image_paths))]
    for path, image, r in zip(image_paths, images, model.detect(images)):
        _save_png(color_splash(image, r["masks"]), splash_dir / path.name)
    result.files["splash"] = splash_dir

    log("[5/5] inspect report of the first held-out image")
    masks, class_ids = val_set.load_mask(0)
    result.files["inspect"] = inspect_report(model, val_set.load_image(0), out / "inspect.html", gt_masks=masks,
                                             gt_class_ids=class_ids, title="Inspecting the demo model")
    result.seconds = time.monotonic() - start
    result.files["readme"] = _write_readme(out, result)
    result.files["index"] = _write_index(out, result, [p.name for p in image_paths])
    log(f"done in {result.seconds:.0f} s: open {out / 'index.html'}")
    return result


def _save_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(array)).save(path, format="PNG")


def _write_images(dataset, folder: Path, *, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(min(count, dataset.num_images)):
        path = folder / f"shapes_{i}.png"
        _save_png(dataset.load_image(i), path)
        paths.append(path)
    return paths


def _summary_lines(result: DemoResult) -> list[tuple[str, str]]:
    ap = "n/a" if result.mask_ap50 is None else f"{result.mask_ap50:.3f}"
    return [
        ("index.html", "this overview"),
        ("model.pt", f"the trained model: {result.steps} steps in {result.train_seconds:.0f} s "
                     "(use with --weights model.pt)"),
        ("config.yaml", "its configuration"),
        ("training.json", "losses of every training step"),
        ("logs/", "the training run's metrics.jsonl"),
        ("evaluation.json", f"COCO metrics on held-out shapes; mask mAP@0.5 = {ap}"),
        ("images/", "held-out images"),
        ("detections/", f"maskrcnn detect on them: pictures/, predictions.json + images.json (COCO), "
                        f"via_region_data.json, labelme/ ({result.detections} detections)"),
        ("splash/", "color splash of the same images"),
        ("inspect.html", "the inspect-model report (every stage) of the first image"),
    ]


def _write_readme(out: Path, result: DemoResult) -> Path:
    lines = [f"maskrcnn demo ({result.seconds:.0f} s)", ""]
    lines += [f"{name:18} {text}" for name, text in _summary_lines(result)]
    lines += ["", "Next:", f"  maskrcnn detect --weights {out / 'model.pt'} {out / 'images'} --out my_detections",
              f"  maskrcnn inspect --weights {out / 'model.pt'} --image {out / 'images' / 'shapes_1.png'} "
              "--out report.html", ""]
    path = out / "README.txt"
    path.write_text("\n".join(lines))
    return path


def _write_index(out: Path, result: DemoResult, names: list[str]) -> Path:
    rows = "".join(f"<tr><td><a href=\"{html.escape(n)}\">{html.escape(n)}</a></td><td>{html.escape(t)}</td></tr>"
                   for n, t in _summary_lines(result) if n != "index.html")
    cells = "".join(
        f"<tr><td><img src=\"images/{n}\"></td><td><img src=\"detections/pictures/{Path(n).stem}.png\"></td>"
        f"<td><img src=\"splash/{n}\"></td></tr>" for n in names)
    ap = "n/a" if result.mask_ap50 is None else f"{result.mask_ap50:.3f}"
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>maskrcnn demo</title>"
        "<style>body{font-family:sans-serif;max-width:900px;margin:2em auto}td{padding:4px 10px;"
        "border-bottom:1px solid #ddd}img{width:192px;image-rendering:pixelated}</style></head><body>"
        f"<h1>maskrcnn demo</h1><p>Trained {result.steps} steps in {result.train_seconds:.0f} s; "
        f"mask mAP@0.5 on held-out shapes: <b>{ap}</b>. The whole demo took {result.seconds:.0f} s.</p>"
        f"<table>{rows}</table><h2>Held-out images, detections, color splash</h2>"
        f"<table><tr><th>image</th><th>detections</th><th>splash</th></tr>{cells}</table>"
        "<p><a href=\"inspect.html\">Every stage of the model on the first image &rarr;</a></p></body></html>\n"
    )
    path = out / "index.html"
    path.write_text(page)
    return path
