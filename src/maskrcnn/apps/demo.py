"""``maskrcnn demo``: the whole cycle offline, on CPU (about 5 minutes on 2 idle cores), the same model idle or busy.

:func:`run_demo` makes a synthetic shapes dataset, trains a small Mask R-CNN from scratch
(the CPU model of :mod:`maskrcnn.presets`: ResNet-18 with GroupNorm, narrow heads) for a
**fixed number of steps** (:data:`DEMO_STEPS`, seeded: the model and its mAP depend on the
seed, not on the machine's speed or load; a slower machine only takes longer; another kind of CPU rounds
its convolutions differently, so its model differs a little), evaluates it
(mask mAP@0.5 on :data:`EVAL_IMAGES` held-out images), runs ``detect`` on a few images
(pictures, COCO results, VIA/labelme polygons), color-splashes them, writes the inspect-model
report and an ``index.html`` / ``README.txt`` of what it wrote::

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

Training shows a tqdm bar whose ETA comes from the measured pace of the steps so far.
``minutes`` turns on a time box instead: training stops when it is spent (the schedule stays
the fixed one's, so a stopped model is less trained, and the demo says so).
"""

from __future__ import annotations

import contextlib
import html
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config
from ..fileio import atomic_path, write_text
from ..presets import SMALL_CPU_OVERRIDES, with_cpu_model

__all__ = ["DemoResult", "ShapesDemoConfig", "SMALL_CPU_OVERRIDES", "run_demo", "training_attributes"]

#: The demo's fixed amount of work: training steps of IMAGES_PER_GPU images, and held-out images evaluated.
DEMO_STEPS = 500
EVAL_IMAGES = 50
#: Torch threads: at these sizes a second thread gains little, and while another program holds a core the
#: threads of one step wait for each other (measured: 12x slower on a 2-core machine with one busy core).
DEMO_THREADS = 1
#: Score threshold of the detections the mAP counts (COCO practice: AP integrates over the scores, so
#: low-scoring detections only add recall); the pictures and splashes show those >= DETECTION_MIN_CONFIDENCE.
EVAL_MIN_CONFIDENCE = 0.05
#: Side of the square synthetic images (the shapes are 1/8 to 1/2 of it across).
IMAGE_SIZE = 64
TRAIN_IMAGES = 4000
SHOWN_IMAGES = 4


@with_cpu_model
class ShapesDemoConfig(Config):
    """matterport's ShapesConfig at CPU scale: the presets' CPU model on 64-pixel images with 14x14 masks, the
    recipe that gave the best mask mAP@0.5 per CPU second in three short searches: 0.918 after 500 steps (4 min
    56 s on an idle 2-core AMD EPYC), see BENCHMARKS.md (``benchmarks/train_shapes.py`` trains it too)."""

    NAME = "shapes_demo"
    NUM_CLASSES = 1 + 3  # background + square, circle, triangle
    IMAGES_PER_GPU = 8
    STEPS_PER_EPOCH = DEMO_STEPS
    VALIDATION_STEPS = 0
    DETECTION_MIN_CONFIDENCE = 0.5  # what detect and splash show; the mAP counts detections down to 0.05
    MINI_MASK_SHAPE = (28, 28)
    MASK_POOL_SIZE = 7  # 14x14 masks: the shapes are at most 32 px across; the mask head costs a quarter
    MASK_SHAPE = [14, 14]
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = IMAGE_SIZE
    IMAGE_MAX_DIM = IMAGE_SIZE
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    TRAIN_ROIS_PER_IMAGE = 64
    PRE_NMS_LIMIT = 500
    POST_NMS_ROIS_TRAINING = 200
    POST_NMS_ROIS_INFERENCE = 250
    # The schedule: AdamW, warmup, cosine decay to the last step.
    LEARNING_RATE = 0.002
    OPTIMIZER = "adamw"
    LR_SCHEDULE = "cosine"
    LR_WARMUP_FACTOR = 0.01
    LR_WARMUP_STEPS = DEMO_STEPS // 10
    EVAL_EVERY = 0
    CHECKPOINT_KEEP_LAST = 1
    BEST_METRIC = "train.loss"


def training_attributes(total_steps: int) -> dict[str, Any]:
    """The demo's schedule for ``total_steps`` steps (one epoch): its warmup is a tenth of them, at most 100."""
    return {"LR_WARMUP_STEPS": min(100, total_steps // 10)}


@contextlib.contextmanager
def deterministic(device: Any) -> Iterator[None]:
    """On the CPU with more than one thread, torch's deterministic algorithms while inside (the previous settings
    after): with 2 threads some accumulations otherwise differ in the last digits from run to run, and hundreds
    of steps amplify that.
    Without torch's NaN-filling of every new tensor (``torch.utils.deterministic.fill_uninitialized_memory``,
    which deterministic mode turns on): it guards against reading memory before writing it, which these
    layers never do, and cost thousands of fills per training step."""
    import torch
    import torch.utils.deterministic as torch_deterministic

    if torch.device(device).type != "cpu" or torch.get_num_threads() == 1:
        # One thread: the CPU kernels are deterministic as they are (the same losses bit for bit, run after run);
        # deterministic mode would only cost time (measured: 0.30 -> 0.34 s per demo backward).
        yield
        return
    before = torch.are_deterministic_algorithms_enabled()
    fill_before = torch_deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True)
    torch_deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
        torch_deterministic.fill_uninitialized_memory = fill_before


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
    """What :func:`run_demo` did and wrote. ``planned_steps``: the fixed amount; ``steps``: those done
    (fewer only when a time box stopped training). ``detections`` / ``gt_objects``: objects found in the
    shown images and those in their ground truth."""

    out_dir: Path
    planned_steps: int = 0
    steps: int = 0
    train_seconds: float = 0.0
    mask_ap50: float | None = None
    box_ap50: float | None = None
    eval_images: int = 0
    detections: int = 0
    gt_objects: int = 0
    shown_images: int = 0
    files: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0


def nothing_found_message(count: int, images: int, min_confidence: float) -> str:
    """What the console says when a model finds nothing (instead of silent gray pictures)."""
    return (f"0 objects found in {images} images — the model is undertrained or the threshold too high "
            f"(DETECTION_MIN_CONFIDENCE={min_confidence:g})") if count == 0 else ""


def demo_datasets(*, seed: int = 0, held_out: int = EVAL_IMAGES, size: int = IMAGE_SIZE):
    """The demo's synthetic shapes: :data:`TRAIN_IMAGES` training images (seed ``seed``) and ``held_out``
    others (seed ``seed + 1``), ``size`` pixels square."""
    from ..data.formats.shapes import ShapesDataset

    return (ShapesDataset(TRAIN_IMAGES, size, size, seed=seed),
            ShapesDataset(held_out, size, size, seed=seed + 1))


def train_demo_model(model: Any, train_set: Any, *, seed: int = 0, progress: bool = True, hooks: list | tuple = (),
                     time_limit: float | None = None) -> list[dict]:
    """Train ``model`` (a :class:`~maskrcnn.detector.MaskRCNN` of a :class:`ShapesDemoConfig`) the demo's way:
    one epoch of its STEPS_PER_EPOCH steps, all layers, seeded, deterministic on the CPU; ``time_limit``
    (seconds) may stop it early. Returns the losses of every step (:func:`_loss_recorder`)."""
    steps_log: list[dict] = []
    with deterministic(model.device):
        model.train(train_set, None, epochs=1, layers="all", device=model.device,
                    progress="bar" if progress else "none", seed=seed,
                    hooks=[_loss_recorder(steps_log), *hooks], tensorboard=False,
                    attributes=training_attributes(model.config.STEPS_PER_EPOCH), time_limit=time_limit)
    return steps_log


def run_demo(
    out_dir: str | os.PathLike = "maskrcnn_demo",
    *,
    steps: int | None = None,
    eval_images: int | None = None,
    minutes: float | None = None,
    threads: int = DEMO_THREADS,
    seed: int = 0,
    device: str | None = "cpu",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> DemoResult:
    """Run the offline demo into ``out_dir``: ``steps`` training steps (default :data:`DEMO_STEPS`) and
    ``eval_images`` held-out images (default :data:`EVAL_IMAGES`), see the module doc. ``minutes``: a time
    box for the whole demo (training stops when the time left is needed for the rest). ``threads``: torch
    threads while the demo runs (the previous number after). ``progress``: tqdm bars for training and
    evaluation."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        return _run_demo(out_dir, steps=steps, eval_images=eval_images, minutes=minutes, seed=seed, device=device,
                         progress=progress, log=log)
    finally:
        torch.set_num_threads(before)


def _run_demo(out_dir: str | os.PathLike, *, steps: int | None, eval_images: int | None, minutes: float | None,
              seed: int, device: str | None, progress: bool, log: Callable[[str], None]) -> DemoResult:
    import torch

    from ..detector import MaskRCNN
    from ..evaluation.coco_eval import evaluate_model
    from .detect import detect_images
    from .export_predictions import write_json
    from .inspect_report import inspect_report
    from .splash import color_splash

    start = time.monotonic()
    steps = DEMO_STEPS if steps is None else int(steps)
    eval_images = EVAL_IMAGES if eval_images is None else int(eval_images)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = DemoResult(out_dir=out, planned_steps=int(steps))
    torch.manual_seed(seed)

    config = ShapesDemoConfig(STEPS_PER_EPOCH=int(steps))
    size = config.IMAGE_MAX_DIM
    train_set, val_set = demo_datasets(seed=seed, held_out=max(eval_images, SHOWN_IMAGES))
    log(f"[1/5] shapes dataset: {train_set.num_images} training images (made as needed), "
        f"{eval_images} held-out images, {size}x{size}")
    model = MaskRCNN(config, class_names=train_set.class_names, device=device, model_dir=out / "logs")
    config.to_yaml(out / "config.yaml")
    result.files["config"] = out / "config.yaml"

    time_limit = None
    if minutes is not None:
        time_limit = max(float(minutes) * 60.0 - _RESERVE_S - (time.monotonic() - start), 1.0)
    box = f", stopped after {time_limit:.0f} s (time box)" if time_limit is not None else ""
    log(f"[2/5] training {config.BACKBONE} ({config.backbone_norm}) from scratch: {steps} steps of "
        f"{config.IMAGES_PER_GPU} images, seed {seed}, {torch.get_num_threads()} thread(s){box}")
    train_start = time.monotonic()
    steps_log = train_demo_model(model, train_set, seed=seed, progress=progress, time_limit=time_limit)
    for checkpoint in (out / "logs").glob("*/*.pth"):
        checkpoint.unlink()  # the training state (optimizer moments) is not needed: model.pt is the model
    result.train_seconds = time.monotonic() - train_start
    result.steps = len(steps_log)
    if steps_log:
        first, last = steps_log[0]["loss"], np.mean([s["loss"] for s in steps_log[-10:]])
        log(f"      {result.steps} steps in {result.train_seconds:.0f} s; loss {first:.2f} -> {last:.2f}")
    if result.steps < result.planned_steps:
        log(f"      the time box stopped training after {result.steps} of {result.planned_steps} steps: "
            f"this model is less trained than the demo's (drop --minutes for the full demo)")
    result.files["training"] = write_json(out / "training.json", {"steps": steps_log}, indent=1)
    result.files["model"] = model.save(out / "model.pt", epoch=1)

    log(f"[3/5] evaluating on {eval_images} held-out images")
    shown_threshold = model.config.DETECTION_MIN_CONFIDENCE
    model.config.DETECTION_MIN_CONFIDENCE = EVAL_MIN_CONFIDENCE
    try:
        metrics = evaluate_model(model, val_set, limit=eval_images, progress=progress)
    finally:
        model.config.DETECTION_MIN_CONFIDENCE = shown_threshold
    result.eval_images = int(eval_images)
    result.mask_ap50 = float(metrics["segm"]["AP50"])
    result.box_ap50 = float(metrics["bbox"]["AP50"])
    result.files["evaluation"] = write_json(out / "evaluation.json", metrics, indent=1)
    log(f"      mask mAP@0.5 = {result.mask_ap50:.3f}   (box mAP@0.5 = {result.box_ap50:.3f}; COCO AP50 of the "
        f"detections scoring >= {EVAL_MIN_CONFIDENCE:g})")

    log(f"[4/5] detect and color splash on {SHOWN_IMAGES} held-out images")
    image_paths = _write_images(val_set, out / "images", count=SHOWN_IMAGES)
    result.shown_images = len(image_paths)
    result.detections = detect_images(model, image_paths, out / "detections", batch_size=4).num_detections
    result.gt_objects = sum(len(val_set.load_mask(i)[1]) for i in range(len(image_paths)))
    result.files["detections"] = out / "detections"
    images = [val_set.load_image(i) for i in range(len(image_paths))]
    for path, image, r in zip(image_paths, images, model.detect(images)):
        _save_png(color_splash(image, r["masks"]), out / "splash" / path.name)
    result.files["splash"] = out / "splash"
    empty = nothing_found_message(result.detections, result.shown_images, config.DETECTION_MIN_CONFIDENCE)
    log(f"      {empty}" if empty else
        f"      {result.detections} objects found in {result.shown_images} images "
        f"({result.gt_objects} in their ground truth)")

    log("[5/5] inspect report of the first held-out image")
    masks, class_ids = val_set.load_mask(0)
    result.files["inspect"] = inspect_report(model, val_set.load_image(0), out / "inspect.html", gt_masks=masks,
                                             gt_class_ids=class_ids, title="Inspecting the demo model")
    result.seconds = time.monotonic() - start
    result.files["readme"] = _write_readme(out, result)
    result.files["index"] = _write_index(out, result, [p.name for p in image_paths])
    log(f"done in {result.seconds:.0f} s: {_achievement(result)}")
    log(f"open {out / 'index.html'}")
    return result


#: Seconds a time box keeps for what follows training (evaluation, detect, splash, report).
_RESERVE_S = 30.0


def _achievement(result: DemoResult) -> str:
    """One sentence: what the model achieved."""
    ap = "n/a" if result.mask_ap50 is None else f"{result.mask_ap50:.3f}"
    return (f"the model ({result.steps} steps) reached mask mAP@0.5 = {ap} on {result.eval_images} held-out images "
            f"and found {result.detections} objects in {result.shown_images} images "
            f"({result.gt_objects} in their ground truth)")


def _save_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")


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
        ("evaluation.json", f"COCO metrics on {result.eval_images} held-out shapes; mask mAP@0.5 = {ap}"),
        ("images/", "held-out images"),
        ("detections/", f"maskrcnn detect on them: pictures/, predictions.json + images.json (COCO), "
                        f"via_region_data.json, labelme/ ({result.detections} objects found, "
                        f"{result.gt_objects} in the ground truth)"),
        ("splash/", "color splash of the same images"),
        ("inspect.html", "the inspect-model report (every stage) of the first image"),
    ]


def _write_readme(out: Path, result: DemoResult) -> Path:
    lines = [f"maskrcnn demo ({result.seconds:.0f} s)", ""]
    lines += [f"{name:18} {text}" for name, text in _summary_lines(result)]
    lines += ["", "Next:", f"  maskrcnn detect --weights {out / 'model.pt'} {out / 'images'} --out my_detections",
              f"  maskrcnn inspect --weights {out / 'model.pt'} --image {out / 'images' / 'shapes_1.png'} "
              "--out report.html", ""]
    return write_text(out / "README.txt", "\n".join(lines))


def _write_index(out: Path, result: DemoResult, names: list[str]) -> Path:
    rows = "".join(f"<tr><td><a href=\"{html.escape(n)}\">{html.escape(n)}</a></td><td>{html.escape(t)}</td></tr>"
                   for n, t in _summary_lines(result) if n != "index.html")
    cells = "".join(
        f"<tr><td><img src=\"images/{n}\"></td><td><img src=\"detections/pictures/{Path(n).stem}.png\"></td>"
        f"<td><img src=\"splash/{n}\"></td></tr>" for n in names)
    ap = "n/a" if result.mask_ap50 is None else f"{result.mask_ap50:.3f}"
    empty = nothing_found_message(result.detections, result.shown_images, ShapesDemoConfig.DETECTION_MIN_CONFIDENCE)
    warning = f"<p><b>{html.escape(empty)}</b></p>" if empty else ""
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>maskrcnn demo</title>"
        "<style>body{font-family:sans-serif;max-width:900px;margin:2em auto}td{padding:4px 10px;"
        "border-bottom:1px solid #ddd}img{width:192px;image-rendering:pixelated}</style></head><body>"
        f"<h1>maskrcnn demo</h1><p>Trained {result.steps} steps in {result.train_seconds:.0f} s; "
        f"mask mAP@0.5 on {result.eval_images} held-out shapes: <b>{ap}</b>; {result.detections} objects found in "
        f"the {result.shown_images} images below ({result.gt_objects} in their ground truth). "
        f"The whole demo took {result.seconds:.0f} s.</p>{warning}"
        f"<table>{rows}</table><h2>Held-out images, detections, color splash</h2>"
        f"<table><tr><th>image</th><th>detections</th><th>splash</th></tr>{cells}</table>"
        "<p><a href=\"inspect.html\">Every stage of the model on the first image &rarr;</a></p></body></html>\n"
    )
    return write_text(out / "index.html", page)
