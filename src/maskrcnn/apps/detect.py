"""Detect objects in image files and write everything a person or a tool needs afterwards.

:func:`collect_images` expands files, folders and glob patterns into image paths;
:func:`detect_images` runs a model on them in batches and writes, under ``out_dir``::

    pictures/<name>.png        the image with masks, boxes, class names and scores
    predictions.json           COCO results (RLE masks), loadable with COCO(images.json).loadRes
    images.json                COCO "images" + "categories" for those results to attach to
    via_region_data.json       VIA 2.x export of the masks as polygons      (format "via" / "both")
    labelme/<name>.json        one labelme file per image                     (format "labelme" / "both")
    labelme/<name>.<ext>       the image beside it (a hard link where possible, else a copy), so
                               labelme's "Open Dir" on labelme/ shows images and polygons to correct,
                               and ``load_dataset("labelme/")`` reads the corrected set back

Results are turned into files image by image, so memory does not grow with the number
of images (only the small JSON records are kept until the end).
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..config import check_min_confidence
from ..errors import ImageError, MaskRCNNError
from ..fileio import atomic_path
from .detector_protocol import Detector
from .export_predictions import (
    ImageRecord,
    coco_images_document,
    coco_results,
    labelme_document,
    via_entry,
    write_json,
)
from .polygons import Parts

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm")
POLYGON_FORMATS = ("via", "labelme", "both", "none")


def _is_image_name(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def collect_images(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Image files named by ``inputs``: files, folders (their images, sorted, not recursive)
    and glob patterns (``**`` recursive). Duplicates are removed, order kept.

    Raises :class:`ImageError` naming the argument that matches nothing.
    """
    found: list[Path] = []
    for item in inputs:
        text = str(item)
        path = Path(text).expanduser()
        if path.is_dir():
            matches = sorted(p for p in path.iterdir() if p.is_file() and _is_image_name(p))
            if not matches:
                raise ImageError(f"{text}: the folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        elif path.is_file():
            matches = [path]
        elif any(ch in text for ch in "*?["):
            matches = sorted(
                Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True)
                if os.path.isfile(p) and _is_image_name(p)
            )
            if not matches:
                raise ImageError(f"{text}: the pattern matches no image files")
        else:
            raise ImageError(f"{text}: no such image file or folder")
        found.extend(matches)
    unique: dict[Path, Path] = {}
    for p in found:
        unique.setdefault(p.resolve(), p)
    if not unique:
        raise ImageError("no images given")
    return list(unique.values())


def _unique_names(paths: Sequence[Path]) -> list[str]:
    """File stems, made unique with ``_2``, ``_3``… where two images share a stem."""
    names, used = [], set()
    for p in paths:
        stem, name, k = p.stem, p.stem, 1
        while name in used:
            k += 1
            name = f"{stem}_{k}"
        used.add(name)
        names.append(name)
    return names


def filter_result(result: Mapping, min_confidence: float) -> dict:
    """A ``detect`` result without the instances scoring below ``min_confidence``."""
    scores = np.asarray(result["scores"]).reshape(-1)
    keep = np.flatnonzero(scores >= min_confidence)
    out = dict(result)
    out["rois"] = np.asarray(result["rois"]).reshape(-1, 4)[keep]
    out["class_ids"] = np.asarray(result["class_ids"]).reshape(-1)[keep]
    out["scores"] = scores[keep]
    out["masks"] = np.asarray(result["masks"])[:, :, keep]
    return out


@dataclass
class DetectRun:
    """What :func:`detect_images` wrote. ``counts`` maps image name → number of detections."""

    out_dir: Path
    pictures: list[Path] = field(default_factory=list)
    predictions: Path | None = None
    images_json: Path | None = None
    via: Path | None = None
    labelme: list[Path] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def num_detections(self) -> int:
        return sum(self.counts.values())


def _read_image(path: Path) -> np.ndarray:
    from ..data.image_io import read_image

    return read_image(path)


def _render(image: np.ndarray, result: Mapping, class_names: Sequence[str]) -> np.ndarray:
    from ..visualize import render_instances

    return render_instances(
        image, result["rois"], result["masks"], result["class_ids"], class_names, result["scores"]
    )


def _place_image(source: Path, target: Path) -> None:
    """Put a copy of ``source`` at ``target`` (labelme opens the image beside its JSON).

    A copy, never a link: an output must not alias an input (editing it would change the user's
    original). Written through :func:`~maskrcnn.fileio.atomic_path`, so it replaces an older output
    (even a hard link left by an old version) without touching the source, and gets the umask's
    ordinary permissions like every other output (not the source's mode).
    """
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def _save_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")


def set_min_confidence(model: Detector, min_confidence: float) -> None:
    """Make ``model`` keep detections scoring above ``min_confidence`` (its config's DETECTION_MIN_CONFIDENCE,
    which the network reads at every call)."""
    model.config.DETECTION_MIN_CONFIDENCE = check_min_confidence(min_confidence)


def load_model(weights: str | os.PathLike, *, device: str | None = None,
               min_confidence: float | None = None, optimize: bool = False, amp: str | None = None,
               argument: str | None = "--weights", class_names: Sequence[str] | None = None,
               note: Callable[[str], None] | None = None) -> Any:
    """A :class:`~maskrcnn.detector.MaskRCNN` ready for inference, optionally with another
    ``DETECTION_MIN_CONFIDENCE``: :meth:`MaskRCNN.from_weights <maskrcnn.detector.MaskRCNN.from_weights>`
    (the one weights rule: our checkpoint with its own config and class names, torchvision's COCO
    ``maskrcnn_resnet50_fpn`` file or ``"coco"``, matterport's ``.h5`` or ``"matterport-coco"``), then the
    inference options.

    ``class_names``: the classes' names (without or with ``BG`` first), for weights that carry none
    (matterport's ``.h5``: otherwise ``class_1`` …, and ``note`` — default: print to stderr — gets one line
    saying so). ``optimize``: the inference path of :func:`~maskrcnn.model.fuse.prepare_for_inference`
    (frozen BatchNorm folded into the convolutions, channels-last): faster, the same detections up to
    float rounding; the model can then not be saved. ``amp``: ``"fp16"``/``"bf16"`` autocast on CUDA.
    ``argument``: how errors name the weights (the command-line option), e.g. ``--weights: FILE: ...``.
    """
    from ..detector import MaskRCNN
    from ..detector.weights_rule import class_names_note, resolve_weights
    from ..errors import WeightsError

    try:
        choice = resolve_weights(weights)
        names = None
        if class_names is not None:
            config = choice.config()
            names = fit_class_names(class_names, config.NUM_CLASSES if config is not None else None)
        model = MaskRCNN.from_weights(choice, device=device, class_names=names)
    except WeightsError as exc:
        if argument is None:
            raise
        raise WeightsError(f"{argument}: {exc}") from None
    if class_names is None and choice.format == "matterport_h5" and choice.class_names() is None:
        line = class_names_note(choice, int(model.config.NUM_CLASSES))
        (note or (lambda text: print(f"note: {text}", file=sys.stderr, flush=True)))(line)
    if min_confidence is not None:
        set_min_confidence(model, min_confidence)
    if amp is not None:
        model.inference_amp = amp
    if optimize:
        from ..model.fuse import prepare_for_inference

        model = prepare_for_inference(model, inplace=True)
    return model


def fit_class_names(names: Sequence[str], num_classes: int | None, *, argument: str = "--class-names") -> list[str]:
    """``names`` as a model's ``class_names``: ``BG`` is put first unless it is there already (``BG`` or
    ``background``); their number must be NUM_CLASSES (one :class:`~maskrcnn.errors.ConfigError` line)."""
    from ..errors import ConfigError

    names = [str(n) for n in names]
    if not names or names[0].lower() not in ("bg", "background"):
        names = ["BG", *names]
    if num_classes is not None and len(names) != int(num_classes):
        raise ConfigError(f"{argument}: {len(names) - 1} class names but the model has {int(num_classes) - 1} "
                          f"classes (NUM_CLASSES={int(num_classes)}, the background included)")
    return names


def model_class_names(model: Detector) -> list[str]:
    """The model's class names (``model.class_names``), else ``BG, class_1, …`` from its config."""
    names = model.class_names
    if names:
        return [str(n) for n in names]
    num = int(model.config.NUM_CLASSES)
    return ["BG"] + [f"class_{k}" for k in range(1, num)]


def detect_images(
    model: Detector,
    paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    class_names: Sequence[str] | None = None,
    min_confidence: float | None = None,
    batch_size: int = 1,
    polygon_format: str = "both",
    tolerance: float = 1.0,
    parts: Parts = "all",
    pictures: bool = True,
    progress: Callable[[str], None] | None = None,
) -> DetectRun:
    """Run ``model.detect`` on ``paths`` and write pictures, COCO results and polygons under ``out_dir``.

    Args:
        model: a :class:`~.detector_protocol.Detector` (matterport's ``detect(images, batch_size=...)``).
        paths: image files (see :func:`collect_images` to expand folders and globs).
        class_names: names by class id (default: :func:`model_class_names`).
        min_confidence: drop detections scoring below this (the model's own
            ``DETECTION_MIN_CONFIDENCE`` applies first; lower it on the model to see more).
        batch_size: images per ``detect`` call.
        polygon_format: ``via``, ``labelme``, ``both`` or ``none``.
        tolerance, parts: polygon simplification (pixels) and ``all``/``largest`` parts.
        pictures: draw ``pictures/<name>.png``.
        progress: called with one line per image.
    """
    if polygon_format not in POLYGON_FORMATS:
        raise MaskRCNNError(f"polygon format {polygon_format!r}: choose one of {', '.join(POLYGON_FORMATS)}")
    if batch_size < 1:
        raise MaskRCNNError(f"batch size {batch_size}: must be at least 1")
    if min_confidence is not None:
        check_min_confidence(min_confidence)
    start = time.perf_counter()
    paths = [Path(p) for p in paths]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = _unique_names(paths)
    class_names = list(class_names) if class_names is not None else model_class_names(model)
    want_via = polygon_format in ("via", "both")
    want_labelme = polygon_format in ("labelme", "both")
    run = DetectRun(out_dir=out)
    records: list[ImageRecord] = []
    predictions: list[dict] = []
    via: dict[str, dict] = {}
    for first in range(0, len(paths), batch_size):
        batch = list(range(first, min(first + batch_size, len(paths))))
        images = [_read_image(paths[i]) for i in batch]
        results = model.detect(images, batch_size=len(images))
        if len(results) != len(images):
            raise MaskRCNNError(f"model.detect returned {len(results)} results for {len(images)} images")
        for i, image, result in zip(batch, images, results):
            if min_confidence is not None:
                result = filter_result(result, min_confidence)
            record = ImageRecord(path=paths[i], image_id=i + 1, height=int(image.shape[0]),
                                 width=int(image.shape[1]), name=names[i])
            records.append(record)
            predictions.extend(coco_results([record], [result]))
            run.counts[record.name] = int(len(np.asarray(result["scores"]).reshape(-1)))
            if pictures:
                picture = out / "pictures" / f"{record.name}.png"
                _save_png(_render(image, result, class_names), picture)
                run.pictures.append(picture)
            if want_via:
                key, entry = via_entry(record, result, class_names, tolerance=tolerance, parts=parts)
                via[key] = entry
            if want_labelme:
                labelme_dir = out / "labelme"
                placed = labelme_dir / f"{record.name}{paths[i].suffix.lower()}"
                _place_image(paths[i], placed)
                doc = labelme_document(record, result, class_names, image_path=placed.name,
                                       tolerance=tolerance, parts=parts)
                run.labelme.append(write_json(labelme_dir / f"{record.name}.json", doc, indent=2))
            if progress is not None:
                progress(f"{paths[i]}: {run.counts[record.name]} detections")
    run.images_json = write_json(out / "images.json", coco_images_document(records, class_names))
    run.predictions = write_json(out / "predictions.json", predictions)
    if want_via:
        run.via = write_json(out / "via_region_data.json", via)
    run.seconds = time.perf_counter() - start
    return run
