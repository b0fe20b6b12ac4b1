"""The tutorial's "inspect model" walk-through as one self-contained HTML page.

:func:`inspect_report` runs ONE inference forward with :meth:`MaskRCNN.run_graph` (the
model's named probes record every stage; nothing is recomputed by a copy of the model)
and lays out, stage by stage:

1. input: the image, its resized network input, sizes and scale (and the ground truth);
2. anchors: a few anchors of every pyramid level, and the positive anchors of the ground
   truth before/after applying their regression targets (``rpn_targets``, as in training);
3. RPN: the top anchors by objectness before and after the RPN's box refinement;
4. proposals after NMS, and the RPN's recall of the ground-truth boxes;
5. ROI refinement (class and box per proposal) and per-class NMS;
6. the final detections (and, with ground truth, matches against it);
7. the raw 28×28 mask predictions and the masks pasted into the image;
8. backbone and FPN activations (channel means of c2..c5 and p2..p6);
9. weight statistics.

Boxes in the model are ``xyxy``; the drawing functions of :mod:`maskrcnn.visualize`
take matterport's ``(y1, x1, y2, x2)``, converted here. Everything the network
computed lives in network-input pixels and is drawn on the network input; detections
and pasted masks are at the original size and drawn on the original image.

Both architectures record the same probes in the same conventions: matterport's stages
(:mod:`maskrcnn.model.matterport.generic`) convert their normalized boxes to pixels of the
molded image, whose padding is centred (the ground truth is shifted by the window's corner,
:func:`image_offset`), and their RPN offers the generic ``anchor_generator`` and ``box_coder``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from . import inspect_sections as sections
from .detector_protocol import InspectableDetector
from .html_report import Page
from .inspect_sections import first, yxyx

#: The probes the report reads (``MaskRCNN.run_graph`` names).
PROBES = (
    "input.images", "backbone.c2", "backbone.c3", "backbone.c4", "backbone.c5",
    "fpn.p2", "fpn.p3", "fpn.p4", "fpn.p5", "fpn.p6",
    "rpn.anchors", "rpn.objectness", "rpn.deltas", "rpn.pre_nms_boxes", "rpn.proposals",
    "roi.class_logits", "roi.box_deltas", "roi.refined_boxes", "roi.detections",
    "mask.logits", "mask.probs", "output.masks", "output",
)

SECTION_IDS = ("input", "anchors", "rpn", "proposals", "roi", "detections", "masks", "activations", "weights")


@dataclass
class GroundTruth:
    """Ground truth of the inspected image at its original size (matterport's conventions).

    masks: ``H×W×N`` bool; class_ids: ``[N]`` (positive; negative = crowd).
    Boxes are derived from the masks (``xyxy``, exclusive right/bottom edge).
    """

    masks: np.ndarray
    class_ids: np.ndarray
    boxes: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        from ..data.transforms import extract_bboxes

        self.masks = np.asarray(self.masks).astype(bool)
        self.class_ids = np.asarray(self.class_ids).reshape(-1).astype(np.int64)
        self.boxes = extract_bboxes(self.masks)[:, [1, 0, 3, 2]].astype(np.float32)


def image_offset(batch) -> tuple[int, int]:
    """``(top, left)`` pixels of the first image inside the network input: ``(0, 0)`` for the generic
    preprocessor (padding at the bottom/right), the window's corner for matterport's molding (centred)."""
    windows = getattr(batch, "windows", None)
    return (int(windows[0][0]), int(windows[0][1])) if windows else (0, 0)


def _network_image(batch, config) -> np.ndarray:
    """The first image of an ``ImageBatch`` as the network sees it, de-normalized to ``h×w×3`` uint8: the
    resized image (generic), or the whole molded image with its centred padding (matterport's windows),
    so that boxes in network-input pixels land where they are drawn."""
    from ..model.build import build_preprocessor

    h, w = batch.image_sizes[0]
    x = batch.tensor[0] if getattr(batch, "windows", None) else batch.tensor[0, :, :h, :w]
    x = build_preprocessor(config).denormalize(x.detach().float().cpu())
    return x.clamp(0, 255).round().byte().permute(1, 2, 0).numpy()


# ---------------------------------------------------------------------------- entry point
def inspect_report(
    model: InspectableDetector,
    image: np.ndarray,
    out_path: str | os.PathLike,
    *,
    gt_masks: np.ndarray | None = None,
    gt_class_ids: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
    limit: int = 50,
) -> Path:
    """Write the inspect-model report of ``model`` on ``image`` to ``out_path`` (one HTML file).

    Args:
        model: a :class:`~maskrcnn.detector.MaskRCNN` (``run_graph``, ``config``, ``network``).
        image: ``H×W×3`` uint8 RGB.
        gt_masks, gt_class_ids: optional ground truth (``H×W×N`` bool, ``[N]``), for the
            positive anchors, the RPN recall and the comparison with the detections.
        class_names: names by class id (default: the model's).
        limit: at most this many boxes per drawing.

    Returns the path written.
    """
    from ..model.preprocess import resize_boxes
    from .detect import model_class_names

    image = np.asarray(image)
    class_names = list(class_names) if class_names is not None else model_class_names(model)
    # every section reads the recorded tensors on the CPU, wherever the model ran
    record = _on_cpu(model.run_graph([image], names=list(PROBES)))
    batch = record["input.images"]
    config = model.config
    gt = None
    gt_resized = gt_crowd = None
    if gt_masks is not None and gt_class_ids is not None:
        gt = GroundTruth(masks=gt_masks, class_ids=gt_class_ids)
        boxes = torch.as_tensor(gt.boxes, dtype=torch.float32)
        top, left = image_offset(batch)
        gt_resized = resize_boxes(boxes, batch.original_sizes[0], batch.image_sizes[0])
        gt_resized = gt_resized + torch.tensor([left, top, left, top], dtype=gt_resized.dtype)
        gt_crowd = torch.as_tensor(gt.class_ids < 0)
    result = _matterport_result(record, config)
    ctx = {
        "model": model.network, "config": config, "record": record, "batch": batch, "image": image,
        "net_image": _network_image(batch, config), "class_names": class_names, "gt": gt,
        "gt_resized": gt_resized, "gt_crowd": gt_crowd, "anchors": record["rpn.anchors"].float(),
        "result": result, "offset": image_offset(batch),
    }
    page = Page(title=title or f"Inspecting {config.NAME or type(config).__name__}: every stage on one image")
    page.intro.append("Produced by `maskrcnn inspect` from one inference forward (MaskRCNN.run_graph). "
                      "Boxes drawn on the network input are in its pixels; detections are at the "
                      "original size.")
    sections.input_section(page, ctx)
    sections.anchors_section(page, ctx)
    sections.rpn_section(page, ctx, limit)
    sections.proposals_section(page, ctx, limit)
    sections.roi_section(page, ctx, limit)
    sections.detections_section(page, ctx, limit=20)
    sections.masks_section(page, ctx, limit=10)
    sections.activations_section(page, ctx)
    sections.weights_section(page, ctx)
    return page.write(out_path)


def _on_cpu(value):
    """``value`` with every tensor (in dicts, lists, tuples and :class:`ImageBatch`) moved to the CPU."""
    from ..model.preprocess import ImageBatch

    if isinstance(value, torch.Tensor):
        return value.cpu()
    if isinstance(value, ImageBatch):
        return value.to("cpu")
    if isinstance(value, dict):
        return type(value)((k, _on_cpu(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_on_cpu(v) for v in value)
    return value


def _matterport_result(record: dict, config) -> dict:
    """The final detections of the recorded forward (``"output"``) as a matterport ``detect`` dict."""
    output = first(record["output"])
    probs = output["masks"].detach().float().cpu()
    binary = (probs >= config.MASK_THRESHOLD).numpy()
    height, width = probs.shape[-2:]
    return {
        "rois": yxyx(output["boxes"].float()),
        "class_ids": output["labels"].detach().cpu().numpy().astype(np.int32),
        "scores": output["scores"].detach().float().cpu().numpy(),
        "masks": np.ascontiguousarray(np.transpose(binary, (1, 2, 0))).reshape(height, width, -1),
    }


def _dataset_image(dataset: Any, *, image: str | None, image_id: int | None) -> int:
    """The internal id of the image to inspect: ``image_id``, or the image whose file is named ``image``."""
    from ..errors import DatasetError

    ids = [int(i) for i in dataset.image_ids]
    if image_id is not None:
        if image_id not in ids:
            raise DatasetError(f"--image-id {image_id}: the dataset has image ids 0..{len(ids) - 1}")
        return image_id
    name = Path(image).name
    for i in ids:
        if Path(str(dataset.image_info[i].get("path", ""))).name == name:
            return i
    raise DatasetError(f"--image {image}: no image of that file name in the dataset; give --image-id")


def _map_class_ids(class_ids: np.ndarray, source_names: Sequence[str], target_names: Sequence[str]) -> np.ndarray:
    """Dataset class ids → the model's ids of the same names (crowd sign kept; unknown names → as they are)."""
    index = {str(n): i for i, n in enumerate(target_names)}
    out = class_ids.copy()
    for k, cid in enumerate(class_ids):
        name = str(source_names[abs(int(cid))])
        if name in index:
            out[k] = index[name] * (1 if cid > 0 else -1)
    return out


def inspect_from_arguments(
    *,
    weights: str,
    out: str | os.PathLike,
    image: str | None = None,
    dataset: str | None = None,
    image_id: int | None = None,
    dataset_format: str | None = None,
    subset: str | None = None,
    class_attribute: str | None = None,
    limit: int = 50,
    device: str | None = None,
    class_names: list[str] | None = None,
) -> Path:
    """What ``maskrcnn inspect`` does: load the model (and the dataset image), write the report.
    ``class_names``: for weights that hold none (matterport's .h5)."""
    from ..data.image_io import read_image
    from ..errors import MaskRCNNError
    from .detect import load_model

    if image is None and (dataset is None or image_id is None):
        raise MaskRCNNError("give --image FILE, or --dataset PATH with --image-id ID (or with --image)")
    if image_id is not None and dataset is None:
        raise MaskRCNNError("--image-id needs --dataset")
    model = load_model(weights, device=device, class_names=class_names)
    gt_masks = gt_class_ids = None
    title = None
    if dataset is not None:
        from ..data.loading import load_dataset

        data = load_dataset(dataset, format=dataset_format or "auto", subset=subset, class_attribute=class_attribute)
        index = _dataset_image(data, image=image, image_id=image_id)
        pixels = data.load_image(index)
        gt_masks, ids = data.load_mask(index)
        gt_class_ids = _map_class_ids(np.asarray(ids).reshape(-1), data.class_names, model.class_names)
        title = f"Inspecting {Path(weights).name} on {data.image_reference(index)}"
    else:
        pixels = read_image(image)
        title = f"Inspecting {Path(weights).name} on {image}"
    return inspect_report(model, pixels, out, gt_masks=gt_masks, gt_class_ids=gt_class_ids, title=title,
                          limit=limit)
