"""The sections of the inspect-model report (see :mod:`.inspect_report`).

Each ``*_section(page, ctx, ...)`` adds one :class:`~.html_report.Section` to the page from
``ctx``: the model, its config, the ``run_graph`` record, the ``ImageBatch``, the original
image and the de-normalized network input, class names, the optional ground truth (original
and resized-image boxes) and the final detections as a matterport dict.

Boxes in the model are ``xyxy``; :mod:`maskrcnn.visualize` draws matterport's
``(y1, x1, y2, x2)``: :func:`yxyx` converts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from .html_report import Page


def yxyx(boxes: Any) -> np.ndarray:
    """``xyxy`` (tensor or array) → numpy ``[N, (y1, x1, y2, x2)]``."""
    b = boxes.detach().cpu().numpy() if isinstance(boxes, Tensor) else np.asarray(boxes)
    b = b.reshape(-1, 4).astype(np.float64)
    return b[:, [1, 0, 3, 2]]


def is_matterport(ctx: dict) -> bool:
    """Whether the inspected network computes as matterport (``ARCHITECTURE = "matterport"``)."""
    return getattr(ctx["model"], "architecture", "torchvision") == "matterport"


def first(value: Any) -> Any:
    """The first image's entry of a per-image list (or the batch tensor's first row)."""
    if isinstance(value, (list, tuple)):
        return value[0]
    return value


def _figure(size=(7.0, 7.0), dpi: int = 80):
    from ..evaluation.plots import new_figure

    return new_figure(figsize=size, dpi=dpi)


def _iou(a: Tensor, b: Tensor) -> Tensor:
    from torchvision.ops import box_iou

    if a.shape[0] == 0 or b.shape[0] == 0:
        return torch.zeros((a.shape[0], b.shape[0]))
    return box_iou(a.float(), b.float())


# ---------------------------------------------------------------------------- sections
def input_section(page: Page, ctx: dict) -> None:
    from ..visualize import display_instances

    s = page.section("input", "1. Input image")
    batch, config = ctx["batch"], ctx["config"]
    (h, w), (oh, ow) = batch.image_sizes[0], batch.original_sizes[0]
    if is_matterport(ctx):
        top, left = ctx["offset"]
        s.text(f"The image is molded as matterport molds it: resized by IMAGE_RESIZE_MODE="
               f"{config.IMAGE_RESIZE_MODE!r} (scale {batch.scales[0]:.4g}), padded with black, centred "
               f"(the image's window starts at row {top}, column {left}) and MEAN_PIXEL subtracted.")
    else:
        s.text(f"The image is resized by IMAGE_RESIZE_MODE={config.IMAGE_RESIZE_MODE!r} "
               f"(scale {batch.scales[0]:.4g}), normalized with MEAN_PIXEL/PIXEL_STD and padded to a "
               f"multiple of {config.IMAGE_PAD_DIVISOR}.")
    s.table(["quantity", "value"], [
        ["original size (h × w)", f"{oh} × {ow}"],
        ["resized size (h × w)", f"{h} × {w}"],
        ["padded batch (h × w)", f"{batch.tensor.shape[-2]} × {batch.tensor.shape[-1]}"],
        ["scale", batch.scales[0]],
        ["backbone", f"{config.BACKBONE} ({config.backbone_norm})"],
        ["classes (incl. background)", config.NUM_CLASSES],
    ])
    gt = ctx["gt"]
    if gt is not None and gt.class_ids.size:
        fig = _figure()
        display_instances(ctx["image"], yxyx(gt.boxes), gt.masks, np.abs(gt.class_ids), ctx["class_names"],
                          ax=fig.add_subplot(1, 1, 1), title="ground truth")
        s.figure(fig, f"The original image with its {gt.class_ids.size} ground-truth instances.")
    else:
        s.figure(ctx["image"], "The original image (no ground truth given).")
    s.figure(ctx["net_image"], "The molded network input, centred padding included (de-normalized)."
             if is_matterport(ctx) else "The resized network input (de-normalized).")


def anchors_section(page: Page, ctx: dict) -> None:
    from ..visualize import draw_boxes

    s = page.section("anchors", "2. Anchors")
    anchors: Tensor = ctx["anchors"]
    generator = ctx["model"].rpn.anchor_generator
    per_loc = generator.num_anchors_per_location
    counts, rows = [], []
    for i, name in enumerate(("p2", "p3", "p4", "p5", "p6")):
        feature = ctx["record"].get(f"fpn.{name}")
        gh, gw = generator.grid_size(feature.shape[-2:])
        counts.append(gh * gw * per_loc)
        rows.append([name, f"{feature.shape[-2]} × {feature.shape[-1]}", generator.scales[i], gh * gw * per_loc])
    where = "every cell" if generator.anchor_stride == 1 else f"every {generator.anchor_stride}th cell"
    s.text(f"{anchors.shape[0]} anchors: {per_loc} ratios (width/height {generator.ratios}) at {where} "
           "of each pyramid level.")
    s.table(["level", "feature map", "anchor side (px)", "anchors"], rows)
    # The anchors of the cell nearest to the image centre, for each level.
    h, w = ctx["batch"].image_sizes[0]
    top, left = ctx.get("offset", (0, 0))
    centre = torch.tensor([left + w / 2.0, top + h / 2.0])
    chosen, captions, offset = [], [], 0
    for i, n in enumerate(counts):
        level = anchors[offset : offset + n]
        offset += n
        centres = (level[:, :2] + level[:, 2:]) / 2
        cell = int(torch.argmin(((centres - centre) ** 2).sum(dim=1)))
        cell -= cell % per_loc
        for k in range(per_loc):
            chosen.append(level[cell + k])
            captions.append(f"P{i + 2}" if k == 0 else "")
    fig = _figure()
    draw_boxes(ctx["net_image"], boxes=yxyx(torch.stack(chosen)), captions=captions, ax=fig.add_subplot(1, 1, 1),
               title="anchors at the image centre, all levels", seed=0)
    s.figure(fig, "The anchors of the cell nearest to the image centre on each level P2..P6.")
    gt = ctx["gt_resized"]
    if gt is None or gt.shape[0] == 0:
        s.text("No ground truth given: positive anchors are not shown.", note=True)
        return
    from ..model.targets import rpn_targets

    model, config = ctx["model"], ctx["config"]
    labels, deltas = rpn_targets(anchors, gt, ctx["gt_crowd"], positive_iou=config.RPN_POSITIVE_IOU,
                                 negative_iou=config.RPN_NEGATIVE_IOU, box_coder=model.rpn.box_coder)
    positive = torch.where(labels == 1)[0]
    s.table(["anchor label", "count"], [
        ["positive", int((labels == 1).sum())], ["negative", int((labels == 0).sum())],
        ["neutral (ignored)", int((labels == -1).sum())],
    ])
    if positive.numel():
        refined = model.rpn.box_coder.decode(deltas[positive], anchors[positive]).reshape(-1, 4)
        fig = _figure()
        draw_boxes(ctx["net_image"], boxes=yxyx(anchors[positive]), refined_boxes=yxyx(refined),
                   ax=fig.add_subplot(1, 1, 1), title="positive anchors", seed=0)
        s.figure(fig, f"The {positive.numel()} positive anchors of the ground truth (dotted; IoU ≥ "
                      f"{config.RPN_POSITIVE_IOU} or best anchor of a box) and after applying their "
                      "regression targets (solid): the ground-truth boxes.")


def rpn_section(page: Page, ctx: dict, limit: int) -> None:
    from ..visualize import draw_boxes

    s = page.section("rpn", "3. RPN: top anchors before and after refinement")
    record, model = ctx["record"], ctx["model"]
    objectness = record["rpn.objectness"][0].float()
    deltas = record["rpn.deltas"][0].float()
    anchors = ctx["anchors"]
    k = min(limit, objectness.shape[0])
    top = torch.topk(objectness, k).indices
    refined = model.rpn.box_coder.decode(deltas[top], anchors[top]).reshape(-1, 4)
    probs = torch.sigmoid(objectness[top])
    s.text(f"Objectness of the {k} best anchors: {float(probs.min()):.3f} .. {float(probs.max()):.3f} "
           f"(sigmoid). The RPN predicts a box refinement for every anchor.")
    fig = _figure()
    draw_boxes(ctx["net_image"], boxes=yxyx(anchors[top]), ax=fig.add_subplot(1, 1, 1),
               title=f"top {k} anchors", seed=0)
    s.figure(fig, f"The {k} anchors with the highest objectness, before refinement.")
    fig = _figure()
    draw_boxes(ctx["net_image"], boxes=yxyx(anchors[top]), refined_boxes=yxyx(refined),
               ax=fig.add_subplot(1, 1, 1), title=f"top {k} anchors refined", seed=0)
    s.figure(fig, "The same anchors (dotted) and after the RPN's box refinement (solid).")
    pre_nms = first(record["rpn.pre_nms_boxes"])
    how = "top-k over all levels, clipped" if is_matterport(ctx) else "top-k, clipped, small ones dropped"
    s.text(f"{pre_nms.shape[0]} refined boxes ({how}) enter the RPN's NMS at IoU {model.rpn.nms_thresh}.")


def proposals_section(page: Page, ctx: dict, limit: int) -> None:
    from ..visualize import draw_boxes

    s = page.section("proposals", "4. Proposals after NMS and RPN recall")
    proposals: Tensor = first(ctx["record"]["rpn.proposals"])
    k = min(limit, proposals.shape[0])
    s.text(f"{proposals.shape[0]} proposals leave the RPN (ordered by objectness); the first {k} are drawn.")
    if k:
        fig = _figure()
        draw_boxes(ctx["net_image"], refined_boxes=yxyx(proposals[:k]), ax=fig.add_subplot(1, 1, 1),
                   title=f"top {k} proposals", seed=0)
        s.figure(fig, f"The top {k} proposals after NMS.")
    gt = ctx["gt_resized"]
    if gt is None or gt.shape[0] == 0:
        s.text("No ground truth given: RPN recall is not computed.", note=True)
        return
    iou = _iou(proposals, gt)
    rows = []
    for top in (50, 100, proposals.shape[0]):
        best = iou[:top].max(dim=0).values if min(top, iou.shape[0]) else torch.zeros(gt.shape[0])
        rows.append([f"top {min(top, proposals.shape[0])}"] +
                    [float((best >= t).float().mean()) for t in (0.2, 0.5, 0.7)])
    s.table(["proposals", "recall@0.2", "recall@0.5", "recall@0.7"], rows)
    s.text("Recall: the fraction of ground-truth boxes that some proposal overlaps with at least that IoU.")


def roi_section(page: Page, ctx: dict, limit: int) -> None:
    from ..visualize import draw_boxes, draw_rois

    s = page.section("roi", "5. ROI refinement and per-class NMS")
    record, class_names = ctx["record"], ctx["class_names"]
    proposals: Tensor = first(record["rpn.proposals"])
    logits = first(record["roi.class_logits"]).float()
    probs = torch.softmax(logits, dim=-1)
    class_ids = probs.argmax(dim=-1)
    refined_all = first(record["roi.refined_boxes"]).float()
    num = min(proposals.shape[0], refined_all.shape[0])
    refined_all = refined_all.reshape(num, -1, 4)
    refined = refined_all[torch.arange(num), class_ids[:num].clamp(max=refined_all.shape[1] - 1)]
    rows = []
    for c in range(1, len(class_names)):
        rows.append([class_names[c], int((class_ids == c).sum())])
    rows.append(["background", int((class_ids == 0).sum())])
    s.text(f"The box head classifies each of the {logits.shape[0]} proposals and refines its box "
           "for every class. Predicted class (argmax of the softmax) per proposal:")
    s.table(["class", "proposals"], rows)
    fig = draw_rois(ctx["net_image"], yxyx(proposals[:num]), yxyx(refined), None,
                    class_ids[:num].cpu().numpy(), class_names, limit=limit, seed=0, figsize=(7, 7), dpi=80)
    s.figure(fig, "Proposals (dashed; gray when classified as background) and the box refined for the "
                  "predicted class (solid), a random sample.")
    # The detection layer's candidates: every (proposal, class) pair scoring above the threshold.
    detection = ctx["model"].detection_settings()  # the thresholds this forward used
    if is_matterport(ctx):  # matterport's detection layer: one candidate per proposal, its argmax class
        best = probs[:num].max(dim=-1)
        pair_rows = torch.where((best.indices > 0) & (best.values >= detection.min_confidence))[0]
        pair_labels, pair_score = best.indices[pair_rows], best.values[pair_rows]
        rule = (f"Detection layer (matterport's): each proposal whose most probable class is not the background "
                f"and scores at least DETECTION_MIN_CONFIDENCE={detection.min_confidence:g} is a candidate "
                "with that class's refined box (clipped to the image window)")
    else:
        pair_rows, pair_cols = torch.where(probs[:num, 1:] > detection.min_confidence)
        pair_labels = pair_cols + 1
        pair_score = probs[pair_rows, pair_labels]
        rule = (f"Detection layer: every (proposal, class) pair with a score above DETECTION_MIN_CONFIDENCE="
                f"{detection.min_confidence:g} is a candidate with that class's refined box")
    detections = first(record.get("roi.detections"))
    det_labels = detections["labels"] if isinstance(detections, dict) else torch.zeros(0, dtype=torch.int64)
    nms_rows = [[class_names[c], int((pair_labels == c).sum()), int((det_labels == c).sum())]
                for c in range(1, len(class_names))]
    s.text(f"{rule}; NMS per class at IoU {detection.nms_threshold:g}; at most {detection.max_instances} "
           "are kept.")
    s.table(["class", "candidates before NMS", "after NMS"], nms_rows)
    if pair_rows.numel():
        order = torch.argsort(pair_score, descending=True)[:limit]
        boxes = refined_all[pair_rows[order], pair_labels[order]]
        captions = [f"{class_names[int(pair_labels[i])]} {float(pair_score[i]):.2f}" for i in order]
        fig = _figure()
        draw_boxes(ctx["net_image"], refined_boxes=yxyx(boxes), captions=captions,
                   ax=fig.add_subplot(1, 1, 1), title="before NMS", seed=0)
        s.figure(fig, f"The best {order.numel()} of {pair_rows.numel()} candidates before NMS.")
    if isinstance(detections, dict) and detections["boxes"].shape[0]:
        captions = [f"{class_names[int(c)]} {float(p):.2f}" for c, p in zip(det_labels, detections["scores"])]
        fig = _figure()
        draw_boxes(ctx["net_image"], refined_boxes=yxyx(detections["boxes"][:limit]), captions=captions[:limit],
                   ax=fig.add_subplot(1, 1, 1), title="after NMS", seed=0)
        s.figure(fig, f"The {detections['boxes'].shape[0]} detections kept by per-class NMS (network-input "
                      f"pixels; at most {limit} drawn).")


def _top(result: dict, k: int) -> dict:
    """The ``k`` best-scoring instances of a matterport result (it is sorted by score already)."""
    return {"rois": result["rois"][:k], "class_ids": result["class_ids"][:k], "scores": result["scores"][:k],
            "masks": result["masks"][:, :, :k]}


def detections_section(page: Page, ctx: dict, limit: int) -> None:
    from ..visualize import display_differences, render_instances

    s = page.section("detections", "6. Final detections")
    result, class_names = ctx["result"], ctx["class_names"]
    n = len(result["class_ids"])
    picture = render_instances(ctx["image"], result["rois"], result["masks"], result["class_ids"], class_names,
                               result["scores"])
    s.figure(picture, f"{n} detections at the original size, masks thresholded at MASK_THRESHOLD.")
    s.table(["class", "score", "y1", "x1", "y2", "x2"],
            [[class_names[int(c)], float(p)] + [float(v) for v in box]
             for c, p, box in zip(result["class_ids"], result["scores"], result["rois"])])
    gt = ctx["gt"]
    if gt is not None and gt.class_ids.size:
        keep = gt.class_ids > 0
        top = _top(result, limit)
        fig = _figure((7, 7))
        display_differences(ctx["image"], yxyx(gt.boxes[keep]), gt.class_ids[keep], gt.masks[:, :, keep],
                            top["rois"], top["class_ids"], top["scores"], top["masks"], class_names,
                            ax=fig.add_subplot(1, 1, 1))
        s.figure(fig, f"Ground truth (green) and the {len(top['class_ids'])} best detections (red); captions: "
                      "score / IoU with the matched ground truth.")


def masks_section(page: Page, ctx: dict, limit: int) -> None:
    from ..visualize import display_images

    s = page.section("masks", "7. Masks: raw 28×28 predictions and pasted masks")
    record, class_names = ctx["record"], ctx["class_names"]
    probs = first(record.get("mask.probs"))
    pasted = first(record.get("output"))["masks"]
    detections = first(record.get("roi.detections"))
    labels = detections["labels"] if isinstance(detections, dict) else ctx["result"]["class_ids"]
    n = 0 if probs is None else int(probs.shape[0])
    if n == 0:
        s.text("No detections, so no masks.", note=True)
        return
    k = min(limit, n, len(labels))
    titles = [f"{class_names[int(c)]} #{i}" for i, c in enumerate(labels[:k])]
    fig = display_images([probs[i].float().squeeze().cpu().numpy() for i in range(k)], titles=titles,
                         cols=min(k, 5), cmap="Blues", figsize=(8, 1.8 * -(-k // 5) + 0.5), dpi=80)
    s.figure(fig, f"The mask head's {probs.shape[-2]}×{probs.shape[-1]} probabilities (sigmoid of the "
                  f"predicted class's logits), first {k} of {n}.")
    if pasted is not None and pasted.shape[0]:
        pasted = pasted.float().cpu()
        if pasted.ndim == 4:
            pasted = pasted[:, 0]
        # matterport's unmolding drops detections of zero area at the original size: count the results
        names = ctx["result"]["class_ids"]
        k = min(limit, pasted.shape[0], len(names))
        titles = [f"{class_names[int(c)]} #{i}" for i, c in enumerate(names[:k])]
        fig = display_images([pasted[i].numpy() for i in range(k)], titles=titles, cols=min(k, 5),
                             cmap="Blues", figsize=(8, 1.8 * -(-k // 5) + 0.5), dpi=80)
        how = ("resized to their boxes and thresholded at 0.5 by matterport's unmolding" if is_matterport(ctx)
               else "probabilities, before thresholding")
        s.figure(fig, f"The same masks pasted into the original image ({how}).")


def activations_section(page: Page, ctx: dict) -> None:
    from ..visualize import display_images

    s = page.section("activations", "8. Backbone and FPN activations")
    record = ctx["record"]
    for group, names in (("backbone", ("c2", "c3", "c4", "c5")), ("fpn", ("p2", "p3", "p4", "p5", "p6"))):
        maps, titles = [], []
        for name in names:
            x = record.get(f"{group}.{name}")
            if x is None:
                continue
            maps.append(x[0].float().mean(dim=0).cpu().numpy())
            titles.append(f"{name} {tuple(x.shape[1:])}")
        if maps:
            fig = display_images(maps, titles=titles, cols=len(maps), cmap="viridis",
                                 figsize=(2.2 * len(maps), 2.6), dpi=80)
            what = "ResNet stages" if group == "backbone" else "FPN levels"
            s.figure(fig, f"Channel means of the {what} {', '.join(names)} (shapes C×H×W).")


def weights_section(page: Page, ctx: dict) -> None:
    from ..visualize import weight_stats_html

    s = page.section("weights", "9. Weight statistics")
    model = ctx["model"]
    params = [(n, p) for n, p in model.named_parameters() if p.dim() > 1]
    picks = params[:: max(1, len(params) // 8)][:8]
    if picks:
        rng = np.random.default_rng(0)
        fig = _figure((9.0, 4.5))
        fig.subplots_adjust(left=0.05, right=0.98, top=0.92, bottom=0.08, hspace=0.45, wspace=0.3)
        for i, (name, p) in enumerate(picks):
            values = p.detach().float().cpu().numpy().ravel()
            if values.size > 20000:
                values = rng.choice(values, 20000, replace=False)
            counts, edges = np.histogram(values, bins=40)
            ax = fig.add_subplot(2, 4, i + 1)
            ax.stairs(counts, edges, fill=True, color="#4477aa")
            ax.set_title(name, fontsize=6)
            ax.tick_params(labelsize=5)
            ax.locator_params(axis="x", nbins=3)
        s.figure(fig, "Histograms of the weights of some layers (evenly spaced through the network; "
                      "at most 20,000 values each).")
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    s.text(f"{total:,} parameters, {trainable:,} trainable.")
    s.raw(weight_stats_html(model))
