"""Color splash: keep the detected objects' color, turn the rest of the picture gray.

The tutorial's effect, on an image file or a video::

    model = MaskRCNN.from_weights("mask_rcnn_balloon.pt")
    detect_and_color_splash(model, image_path="balloons.jpg")   # -> splash_balloons_<time>.png
    detect_and_color_splash(model, video_path="balloons.mp4")   # -> splash_balloons_<time>.mp4

Gray is the picture's own luminance, ITU-R 601-2 luma ``L = 0.299 R + 0.587 G + 0.114 B``
computed exactly as ``PIL.Image.convert("L")`` does, in 16-bit fixed point with
rounding: ``L = (19595 R + 38470 G + 7471 B + 32768) >> 16`` (the weights are
``round(65536 × (0.299, 0.587, 0.114))`` and sum to 65536, so white stays 255).
Inside the union of the masks the original pixels are copied back unchanged.

Video decoding/encoding lives in :mod:`maskrcnn.apps.video`; this module only says
what happens to each frame.
"""

from __future__ import annotations

import datetime
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import check_min_confidence
from ..data.image_io import read_image
from ..errors import ImageError, MaskRCNNError
from ..fileio import atomic_path
from .detector_protocol import Detector
from .summary import objects_found

__all__ = [
    "LUMA_WEIGHTS_Q16",
    "color_splash",
    "detect_and_color_splash",
    "filter_detections",
    "luminance",
    "mask_union",
    "splash_unions",
    "union_of_detections",
]

# ITU-R 601-2 luma weights (0.299, 0.587, 0.114) in 16-bit fixed point, as Pillow uses them.
LUMA_WEIGHTS_Q16 = (19595, 38470, 7471)
_Q16_HALF = 1 << 15

_IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
_VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv")

Array = np.ndarray | torch.Tensor


# ----------------------------------------------------------------------------------
# the effect


def _check_image(image: Any) -> None:
    if not isinstance(image, (np.ndarray, torch.Tensor)):
        raise ImageError(f"color_splash: image must be a numpy array or torch tensor, got {type(image).__name__}")
    shape = tuple(image.shape)
    dtype_ok = image.dtype == (np.uint8 if isinstance(image, np.ndarray) else torch.uint8)
    if len(shape) != 3 or shape[2] != 3 or not dtype_ok:
        raise ImageError(f"color_splash: image must be H×W×3 uint8 RGB, got shape {shape} dtype {image.dtype}")


def luminance(image: Array) -> Array:
    """ITU-R 601-2 luma of an H×W×3 uint8 RGB image, as an H×W uint8 array of the same
    kind (numpy in, numpy out; a tensor stays on its device).

    Bit-exact with ``PIL.Image.fromarray(image).convert("L")``:
    ``(19595 R + 38470 G + 7471 B + 32768) >> 16``.
    """
    _check_image(image)
    wr, wg, wb = LUMA_WEIGHTS_Q16
    if isinstance(image, torch.Tensor):
        x = image.to(torch.int32)
        lum = x[..., 0] * wr + x[..., 1] * wg + x[..., 2] * wb + _Q16_HALF
        return torch.bitwise_right_shift(lum, 16).to(torch.uint8)
    acc = image[..., 0].astype(np.int32)
    acc *= wr
    channel = image[..., 1].astype(np.int32)
    channel *= wg
    acc += channel
    np.multiply(image[..., 2], wb, out=channel, dtype=np.int32)
    acc += channel
    acc += _Q16_HALF
    acc >>= 16
    return acc.astype(np.uint8)


def mask_union(masks: Array, *, height: int, width: int) -> Array:
    """The H×W bool union of instance masks.

    ``masks`` is matterport's H×W×N (numpy; any dtype, nonzero = inside), or N×H×W
    when it is a torch tensor (the layout inside the model); an H×W array is one
    mask. N may be 0 (an all-False union). Raises :class:`ImageError` when the
    spatial size is not ``height × width``.
    """
    if isinstance(masks, torch.Tensor):
        if masks.ndim == 2:
            masks = masks[None]
        if masks.ndim != 3 or tuple(masks.shape[1:]) != (height, width):
            raise ImageError(
                f"color_splash: torch masks must be N×{height}×{width} (N×H×W), got shape {tuple(masks.shape)}"
            )
        if masks.shape[0] == 0:
            return torch.zeros((height, width), dtype=torch.bool, device=masks.device)
        return (masks != 0).any(dim=0)
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[..., None]
    if masks.ndim != 3 or masks.shape[:2] != (height, width):
        raise ImageError(
            f"color_splash: masks must be {height}×{width}×N (H×W×N, matterport), got shape {masks.shape}"
        )
    union = np.zeros((height, width), dtype=bool)
    for i in range(masks.shape[2]):  # one slice at a time: fast for either memory layout
        union |= masks[..., i] if masks.dtype == bool else masks[..., i] != 0
    return union


def color_splash(image: Array, masks: Array) -> Array:
    """Gray picture with the masked pixels in their original color.

    ``image``: H×W×3 uint8 RGB (numpy, or a torch tensor; the result has the same
    kind, and a tensor's device). ``masks``: H×W×N bool numpy (matterport) or an
    N×H×W torch tensor (see :func:`mask_union`). Outside the union of the masks every
    pixel is ``(L, L, L)`` with ``L`` = :func:`luminance`; inside it equals the input.
    No mask (N = 0) gives an all-gray picture.
    """
    _check_image(image)
    height, width = int(image.shape[0]), int(image.shape[1])
    union = mask_union(masks, height=height, width=width)
    gray = luminance(image)
    if isinstance(image, torch.Tensor):
        union = torch.as_tensor(union, device=image.device)
        return torch.where(union[..., None], image, gray[..., None])
    if isinstance(union, torch.Tensor):
        union = union.cpu().numpy()
    out = np.stack([gray, gray, gray], axis=-1)
    rows = np.flatnonzero(union.any(axis=1))
    if rows.size:  # copy back inside the union's bounding box only
        cols = np.flatnonzero(union.any(axis=0))
        y1, y2, x1, x2 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        np.copyto(out[y1:y2, x1:x2], image[y1:y2, x1:x2], where=union[y1:y2, x1:x2, None])
    return out


def filter_detections(
    r: dict[str, Any],
    class_names: Sequence[str],
    classes: Iterable[str | int] | None = None,
    min_confidence: float | None = None,
) -> dict[str, Any]:
    """Keep only detections of the given classes and with a score ≥ ``min_confidence``.

    ``r`` is one result of ``model.detect``: ``rois`` N×4 (y1, x1, y2, x2),
    ``class_ids`` [N], ``scores`` [N], ``masks`` H×W×N. ``classes`` are class names
    (from ``class_names``, index 0 = "BG") or class ids; ``None`` keeps every class.
    Returns a new dict with the same keys (other keys are copied unchanged).
    """
    class_ids = np.asarray(r["class_ids"])
    keep = np.ones(len(class_ids), dtype=bool)
    if classes is not None:
        wanted = _class_ids(classes, class_names)
        keep &= np.isin(class_ids, list(wanted))
    if min_confidence is not None:
        keep &= np.asarray(r["scores"]) >= check_min_confidence(min_confidence)
    out = dict(r)
    for key in ("rois", "class_ids", "scores"):
        if key in r:
            out[key] = r[key][keep]
    if "masks" in r:
        masks = r["masks"]
        out["masks"] = masks[keep] if isinstance(masks, torch.Tensor) else masks[..., keep]
    return out


def _class_ids(classes: Iterable[str | int], class_names: Sequence[str]) -> set[int]:
    ids: set[int] = set()
    by_name = {name: i for i, name in enumerate(class_names) if i > 0}
    for c in classes:
        if isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            if not 0 < int(c) < len(class_names):
                raise MaskRCNNError(f"classes: class id {c} is not in 1..{len(class_names) - 1}")
            ids.add(int(c))
        elif isinstance(c, str) and c in by_name:
            ids.add(by_name[c])
        else:
            raise MaskRCNNError(f"classes: unknown class {c!r}; the model's classes are {list(by_name)}")
    return ids


# ----------------------------------------------------------------------------------
# files


def _save_image(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    fmt = _IMAGE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise MaskRCNNError(f"output image {path}: unsupported extension {path.suffix!r}; use .png, .jpg or .jpeg")
    options = {"quality": 95} if fmt == "JPEG" else {}
    try:
        with atomic_path(path) as tmp:
            Image.fromarray(image).save(tmp, format=fmt, **options)
    except OSError as exc:
        raise MaskRCNNError(f"cannot write image {path}: {exc}") from exc


def _default_out(source: Path, suffix: str) -> Path:
    """``splash_<stem>_<YYYYmmddTHHMMSS>.<suffix>`` in the working directory (the tutorial's name)."""
    return Path(f"splash_{source.stem}_{datetime.datetime.now():%Y%m%dT%H%M%S}{suffix}")


def union_of_detections(detector: Detector, images: Sequence[np.ndarray], *,
                        class_ids: Iterable[int] | None = None, min_confidence: float | None = None,
                        batch_size: int | None = None,
                        return_counts: bool = False) -> list[np.ndarray] | tuple[list[np.ndarray], list[int]]:
    """``detect_union`` computed from ``detector.detect``: per image the H×W bool :func:`mask_union` of
    :func:`filter_detections` of its result (with ``return_counts``, also the number of masks of each).
    A :class:`~.detector_protocol.Detector` that has only ``detect`` (a wrapper, a stand-in) uses it as
    its ``detect_union``."""
    results = list(detector.detect(images, batch_size=batch_size))
    if len(results) != len(images):
        raise MaskRCNNError(f"model.detect returned {len(results)} results for {len(images)} images")
    if class_ids is not None or min_confidence is not None:
        results = [filter_detections(r, detector.class_names, classes=class_ids, min_confidence=min_confidence)
                   for r in results]
    unions = [mask_union(r["masks"], height=im.shape[0], width=im.shape[1]) for im, r in zip(images, results)]
    return (unions, [int(np.asarray(r["masks"]).shape[-1]) for r in results]) if return_counts else unions


def splash_unions(
    model: Detector,
    images: list[np.ndarray],
    *,
    classes: Iterable[str | int] | None = None,
    min_confidence: float | None = None,
    counts: list[int] | None = None,
) -> list[np.ndarray]:
    """Per image the H×W bool union of the masks that the splash keeps: ``mask_union`` of
    ``filter_detections(model.detect([image])[0], ...)["masks"]``, by the model's ``detect_union``
    (our :class:`~maskrcnn.detector.MaskRCNN` takes it on the model's device). ``counts``: a list that
    gets the number of objects kept in each image appended.
    """
    if min_confidence is not None:
        check_min_confidence(min_confidence)  # before any work
    ids = None if classes is None else _class_ids(classes, model.class_names)
    unions, kept = model.detect_union(images, class_ids=ids, min_confidence=min_confidence, batch_size=len(images),
                                      return_counts=True)
    if len(unions) != len(images) or len(kept) != len(images):
        raise MaskRCNNError(f"model returned {len(unions)} results for {len(images)} images")
    if counts is not None:
        counts.extend(int(k) for k in kept)
    return list(unions)


def _check_min_confidence(model: Detector, min_confidence: float | None) -> None:
    if min_confidence is None:
        return
    floor = model.config.DETECTION_MIN_CONFIDENCE
    if min_confidence < floor:
        warnings.warn(
            f"min_confidence={min_confidence} is below the model's DETECTION_MIN_CONFIDENCE={floor}: "
            "detections under that are already dropped by the model; set model.config.DETECTION_MIN_CONFIDENCE "
            "to see them (maskrcnn splash --min-confidence does)",
            stacklevel=3,
        )


def detect_and_color_splash(
    model: Detector,
    image_path: str | os.PathLike[str] | None = None,
    video_path: str | os.PathLike[str] | None = None,
    out_path: str | os.PathLike[str] | None = None,
    *,
    classes: Iterable[str | int] | None = None,
    min_confidence: float | None = None,
    batch_size: int = 4,
    progress: bool = True,
    crf: int | None = None,
    say: Callable[[str], Any] | None = None,
) -> Path:
    """Detect objects and write the color-splashed image or video; return its path.

    Exactly one of ``image_path`` / ``video_path``. An image is written as PNG or JPEG
    by ``out_path``'s extension (default ``splash_<stem>_<timestamp>.png`` in the
    working directory). A video is streamed through :func:`maskrcnn.apps.video.transform_video`
    in batches of ``batch_size`` frames and written as MP4 (``.mp4``/``.m4v``/``.mov``/
    ``.mkv`` by extension; default ``splash_<stem>_<timestamp>.mp4``) with the input's
    size, frame timing and audio; ``crf`` is the video quality (x264 CRF, default 18).
    ``classes`` / ``min_confidence`` filter the detections (:func:`filter_detections`).
    ``say``: called with one line on the objects kept (:func:`~.summary.objects_found`), e.g. ``print``.
    """
    if (image_path is None) == (video_path is None):
        raise MaskRCNNError("detect_and_color_splash: give exactly one of image_path or video_path")
    if batch_size < 1:
        raise MaskRCNNError(f"batch_size must be >= 1, got {batch_size}")
    if classes is not None:
        classes = list(classes)
        _class_ids(classes, model.class_names)  # fail before any work on an unknown class
    _check_min_confidence(model, min_confidence)

    if image_path is not None:
        source = Path(image_path)
        out = Path(out_path) if out_path is not None else _default_out(source, ".png")
        if out.suffix.lower() not in _IMAGE_FORMATS:
            raise MaskRCNNError(f"output image {out}: unsupported extension {out.suffix!r}; use .png, .jpg or .jpeg")
        image = read_image(source)
        counts: list[int] = []
        (union,) = splash_unions(model, [image], classes=classes, min_confidence=min_confidence, counts=counts)
        _save_image(out, color_splash(image, union))
        if say is not None:
            say(objects_found(sum(counts), 1))
        return out

    from .video import transform_video

    source = Path(video_path)
    out = Path(out_path) if out_path is not None else _default_out(source, ".mp4")
    if out.suffix.lower() not in _VIDEO_EXTENSIONS:
        raise MaskRCNNError(f"output video {out}: unsupported extension {out.suffix!r}; use one of {_VIDEO_EXTENSIONS}")
    counts = []
    stats = transform_video(
        source,
        out,
        infer=lambda images: splash_unions(model, images, classes=classes, min_confidence=min_confidence,
                                           counts=counts),
        render=color_splash,
        batch_size=batch_size,
        progress=progress,
        desc=f"splash {source.name}",
        crf=crf,
    )
    if say is not None:
        say(objects_found(sum(counts), len(counts), unit="frame"))
    return stats.path
