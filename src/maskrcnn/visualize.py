"""matterport's ``visualize`` functions, headless.

Same names and arguments as ``mrcnn.visualize``; each draws on a
:class:`matplotlib.figure.Figure` with an Agg canvas (no pyplot, no display needed),
returns that Figure (it shows inline when it is a notebook cell's value) and writes a
PNG of ``figsize * dpi`` pixels when given ``save_path=``. Functions that take ``ax=``
draw there instead and return ``ax.figure``.

Conventions: images ``H×W×3`` uint8 RGB; boxes ``[N, (y1, x1, y2, x2)]`` in pixels;
masks ``H×W×N`` bool; colors RGB(A) floats in ``[0, 1]``.

Also here: :func:`render_instances` (fast numpy/PIL picture of detections) and the
weight-statistics table of a torch model (:func:`display_weight_stats`).
"""

from __future__ import annotations

import itertools
import os

import numpy as np

from .evaluation.plots import new_figure, save_figure
from .visualize_render import apply_mask, draw_box, mask_outline, random_colors, render_instances, unmold_mask
from .visualize_stats import display_table, display_weight_stats, weight_stats, weight_stats_html, weight_stats_text

__all__ = [
    "random_colors",
    "apply_mask",
    "draw_box",
    "unmold_mask",
    "mask_outline",
    "render_instances",
    "display_images",
    "display_instances",
    "display_differences",
    "draw_rois",
    "display_top_masks",
    "plot_precision_recall",
    "plot_overlaps",
    "draw_boxes",
    "display_table",
    "display_weight_stats",
    "weight_stats",
    "weight_stats_html",
    "weight_stats_text",
]


def _figure_and_ax(ax, figsize, dpi):
    if ax is not None:
        return ax.figure, ax
    fig = new_figure(figsize=figsize, dpi=dpi)
    return fig, fig.add_subplot(1, 1, 1)


def _finish(fig, save_path):
    if save_path is not None:
        save_figure(fig, save_path)
    return fig


def _mask_contour(ax, mask: np.ndarray, color) -> None:
    """Outline of one ``H×W`` mask; padded so masks touching the border close."""
    if not np.any(mask):
        return
    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2), dtype=np.float32)
    padded[1:-1, 1:-1] = mask > 0
    xs = np.arange(-1, w + 1)
    ys = np.arange(-1, h + 1)
    ax.contour(xs, ys, padded, levels=[0.5], colors=[color[:3]], linewidths=1)


def display_images(images, titles=None, cols=4, cmap=None, norm=None, interpolation=None,
                   *, figsize=None, dpi: int = 100, save_path: str | os.PathLike | None = None):
    """A grid of images (``H×W×3`` or ``H×W``) with optional titles, ``cols`` per row."""
    images = list(images)
    titles = list(titles) if titles is not None else [""] * len(images)
    cols = max(1, int(cols))
    rows = max(1, -(-len(images) // cols))
    figsize = figsize or (14, max(14 * rows / cols, 2))
    fig = new_figure(figsize=figsize, dpi=dpi)
    for i, (image, title) in enumerate(zip(images, titles)):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        image = np.asarray(image)
        shown = image.astype(np.uint8) if image.ndim == 3 else image
        ax.imshow(shown, cmap=cmap, norm=norm, interpolation=interpolation)
    return _finish(fig, save_path)


def display_instances(image, boxes, masks, class_ids, class_names,
                      scores=None, title="",
                      figsize=(16, 16), ax=None,
                      show_mask=True, show_bbox=True,
                      colors=None, captions=None,
                      *, dpi: int = 100, save_path: str | os.PathLike | None = None):
    """Image with instance masks (blended + outlined), dashed boxes and captions.

    boxes: ``[N, (y1, x1, y2, x2)]``; masks: ``H×W×N``; class_ids: ``[N]``;
    scores: ``[N]`` or None; colors: N colors (default :func:`random_colors`);
    captions: N strings replacing ``"<class> <score>"``.
    """
    image = np.asarray(image)
    boxes = np.asarray(boxes).reshape(-1, 4)
    n = boxes.shape[0]
    class_ids = np.asarray(class_ids).reshape(-1)
    if n:
        masks = np.asarray(masks)
        if not (masks.shape[-1] == n == class_ids.shape[0]):
            raise ValueError(
                f"display_instances: {n} boxes, {class_ids.shape[0]} class ids and masks of "
                f"shape {masks.shape} must agree on the number of instances"
            )
    fig, ax = _figure_and_ax(ax, figsize, dpi)
    colors = random_colors(n) if colors is None else colors
    height, width = image.shape[:2]
    ax.axis("off")
    ax.set_title(title)
    masked_image = image.astype(np.uint32).copy()
    for i in range(n):
        color = colors[i]
        if not np.any(boxes[i]):
            continue  # no box: likely lost in cropping
        y1, x1, y2, x2 = boxes[i]
        if show_bbox:
            from matplotlib import patches

            ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, linewidth=2, alpha=0.7,
                                           linestyle="dashed", edgecolor=color, facecolor="none"))
        if captions is not None:
            caption = captions[i]
        else:
            label = class_names[int(class_ids[i])]
            caption = f"{label} {float(scores[i]):.3f}" if scores is not None else label
        ax.text(x1, y1 + 8, caption, color="w", size=11, backgroundcolor="none")
        mask = masks[:, :, i]
        if show_mask:
            masked_image = apply_mask(masked_image, mask, color)
        _mask_contour(ax, mask, color)
    ax.imshow(masked_image.astype(np.uint8))
    ax.set_ylim(height + 10, -10)
    ax.set_xlim(-10, width + 10)
    return _finish(fig, save_path)


def display_differences(image,
                        gt_box, gt_class_id, gt_mask,
                        pred_box, pred_class_id, pred_score, pred_mask,
                        class_names, title="", ax=None,
                        show_mask=True, show_box=True,
                        iou_threshold=0.5, score_threshold=0.5,
                        *, figsize=(16, 16), dpi: int = 100, save_path: str | os.PathLike | None = None):
    """Ground truth (green) and predictions (red) on one image; captions ``score / IoU``.

    Predictions are matched with :func:`~maskrcnn.evaluation.matching.compute_matches`
    (``score_threshold`` is its IoU floor, as in matterport).
    """
    from .evaluation.matching import compute_matches

    pred_score = np.asarray(pred_score).reshape(-1)
    order = np.argsort(pred_score, kind="stable")[::-1]  # compute_matches' order
    pred_box = np.asarray(pred_box).reshape(-1, 4)[order]
    pred_class_id = np.asarray(pred_class_id).reshape(-1)[order]
    pred_score = pred_score[order]
    pred_mask = np.asarray(pred_mask)[..., order]
    gt_box = np.asarray(gt_box).reshape(-1, 4)
    gt_class_id = np.asarray(gt_class_id).reshape(-1)
    gt_match, pred_match, overlaps = compute_matches(
        gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score, pred_mask,
        iou_threshold=iou_threshold, score_threshold=score_threshold,
    )
    n_gt, n_pred = len(gt_box), len(pred_box)
    colors = [(0, 1, 0, 0.8)] * n_gt + [(1, 0, 0, 1)] * n_pred
    class_ids = np.concatenate([gt_class_id, pred_class_id]).astype(np.int64)
    scores = np.concatenate([np.zeros([n_gt]), pred_score])
    boxes = np.concatenate([gt_box, pred_box])
    masks = np.concatenate([np.asarray(gt_mask), pred_mask], axis=-1)
    captions = [""] * n_gt
    for i in range(n_pred):
        if i < len(pred_match) and pred_match[i] > -1:
            iou = overlaps[i, int(pred_match[i])]
        else:
            iou = overlaps[i].max() if overlaps.shape[1] and i < overlaps.shape[0] else 0.0
        captions.append(f"{pred_score[i]:.2f} / {iou:.2f}")
    title = title or "Ground Truth and Detections\n GT=green, pred=red, captions: score/IoU"
    return display_instances(image, boxes, masks, class_ids, class_names, scores, ax=ax, title=title,
                             figsize=figsize, show_bbox=show_box, show_mask=show_mask, colors=colors,
                             captions=captions, dpi=dpi, save_path=save_path)


def draw_rois(image, rois, refined_rois, mask, class_ids, class_names, limit=10,
              *, seed: int | None = None, figsize=(12, 12), dpi: int = 100,
              save_path: str | os.PathLike | None = None):
    """ROIs (dashed; gray for background), their refined boxes (solid, for positive ROIs),
    a line between their corners, and each positive ROI's mask.

    rois, refined_rois: ``[N, (y1, x1, y2, x2)]``; mask: ``[N, h, w]`` small masks, or
    ``[N, h, w, num_classes]`` (the class channel is used), or None; class_ids: ``[N]``.
    At most ``limit`` ROIs, picked at random (``seed``) when there are more.
    """
    from matplotlib import lines, patches

    rng = np.random.default_rng(seed)
    rois = np.asarray(rois).reshape(-1, 4)
    refined_rois = np.asarray(refined_rois).reshape(-1, 4)
    class_ids = np.asarray(class_ids).reshape(-1).astype(np.int64)
    masked_image = np.asarray(image).astype(np.float32).copy()
    ids = np.arange(rois.shape[0])
    if ids.shape[0] > limit:
        ids = rng.choice(ids, limit, replace=False)
    fig, ax = _figure_and_ax(None, figsize, dpi)
    if rois.shape[0] > limit:
        ax.set_title(f"Showing {len(ids)} random ROIs out of {rois.shape[0]}")
    else:
        ax.set_title(f"{len(ids)} ROIs")
    for i in ids:
        color = rng.random(3)
        class_id = class_ids[i]
        y1, x1, y2, x2 = rois[i]
        ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, linewidth=2,
                                       edgecolor=color if class_id else "gray",
                                       facecolor="none", linestyle="dashed"))
        if not class_id:
            continue
        ry1, rx1, ry2, rx2 = refined_rois[i]
        ax.add_patch(patches.Rectangle((rx1, ry1), rx2 - rx1, ry2 - ry1, linewidth=2,
                                       edgecolor=color, facecolor="none"))
        ax.add_line(lines.Line2D([x1, rx1], [y1, ry1], color=color))
        ax.text(rx1, ry1 + 8, str(class_names[class_id]), color="w", size=11, backgroundcolor="none")
        if mask is not None:
            small = np.asarray(mask[i])
            if small.ndim == 3:
                small = small[..., class_id]
            m = unmold_mask(small, rois[i], masked_image.shape)
            masked_image = apply_mask(masked_image, m, color)
    ax.imshow(np.clip(masked_image, 0, 255).astype(np.uint8))
    ax.set_ylim(masked_image.shape[0] + 20, -20)
    ax.set_xlim(-50, masked_image.shape[1] + 20)
    ax.axis("off")
    positives = int((class_ids > 0).sum())
    ax.set_xlabel(f"positive ROIs: {positives}, negative: {int((class_ids == 0).sum())}")
    return _finish(fig, save_path)


def display_top_masks(image, mask, class_ids, class_names, limit=4,
                      *, dpi: int = 100, save_path: str | os.PathLike | None = None):
    """The image and, for its ``limit`` classes of largest mask area, their instances' masks."""
    image = np.asarray(image)
    mask = np.asarray(mask)
    class_ids = np.asarray(class_ids).reshape(-1)
    to_display = [image]
    titles = [f"H x W={image.shape[0]}x{image.shape[1]}"]
    unique_class_ids = np.unique(class_ids)
    areas = [mask[..., class_ids == c].sum() if mask.ndim == 3 else 0 for c in unique_class_ids]
    top_ids = [c for c, a in sorted(zip(unique_class_ids, areas), key=lambda r: r[1], reverse=True) if a > 0]
    for i in range(limit):
        class_id = top_ids[i] if i < len(top_ids) else -1
        if class_id == -1 or mask.ndim != 3:
            m = np.zeros(image.shape[:2], dtype=np.int64)
        else:
            sel = mask[..., class_ids == class_id].astype(np.int64)
            m = np.sum(sel * np.arange(1, sel.shape[-1] + 1), -1)
        to_display.append(m)
        titles.append(class_names[int(class_id)] if class_id != -1 else "-")
    return display_images(to_display, titles=titles, cols=limit + 1, cmap="Blues_r", dpi=dpi, save_path=save_path)


def plot_precision_recall(AP, precisions, recalls,
                          *, figsize=(6.4, 4.8), dpi: int = 100, save_path: str | os.PathLike | None = None):
    """Precision-recall curve of :func:`~maskrcnn.evaluation.matching.compute_ap`'s output."""
    fig, ax = _figure_and_ax(None, figsize, dpi)
    ax.set_title(f"Precision-Recall Curve. AP@50 = {float(AP):.3f}")
    ax.set_ylim(0, 1.1)
    ax.set_xlim(0, 1.1)
    ax.plot(np.asarray(recalls, dtype=float), np.asarray(precisions, dtype=float))
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    return _finish(fig, save_path)


def plot_overlaps(gt_class_ids, pred_class_ids, pred_scores, overlaps, class_names, threshold=0.5,
                  *, figsize=(12, 10), dpi: int = 100, save_path: str | os.PathLike | None = None):
    """Grid of IoUs ``overlaps [pred, gt]``, each cell marked "match" or "wrong" above
    ``threshold`` (class ids 0 are dropped first, as in matterport)."""
    import matplotlib

    gt_class_ids = np.asarray(gt_class_ids).reshape(-1)
    pred_class_ids = np.asarray(pred_class_ids).reshape(-1)
    pred_scores = np.asarray(pred_scores).reshape(-1)
    gt_class_ids = gt_class_ids[gt_class_ids != 0]
    pred_class_ids = pred_class_ids[pred_class_ids != 0]
    overlaps = np.asarray(overlaps, dtype=float)
    if overlaps.shape != (len(pred_class_ids), len(gt_class_ids)):
        raise ValueError(f"plot_overlaps: overlaps of shape {overlaps.shape}, expected [pred, gt] = "
                         f"({len(pred_class_ids)}, {len(gt_class_ids)}) after dropping class ids 0")
    fig, ax = _figure_and_ax(None, figsize, dpi)
    ax.imshow(overlaps, interpolation="nearest", cmap=matplotlib.colormaps["Blues"], vmin=0, vmax=1)
    ax.set_yticks(np.arange(len(pred_class_ids)))
    ax.set_yticklabels([f"{class_names[int(c)]} ({pred_scores[i]:.2f})" for i, c in enumerate(pred_class_ids)])
    ax.set_xticks(np.arange(len(gt_class_ids)))
    ax.set_xticklabels([class_names[int(c)] for c in gt_class_ids], rotation=90)
    thresh = overlaps.max() / 2.0 if overlaps.size else 0.0
    for i, j in itertools.product(range(overlaps.shape[0]), range(overlaps.shape[1])):
        text = ""
        if overlaps[i, j] > threshold:
            text = "match" if gt_class_ids[j] == pred_class_ids[i] else "wrong"
        color = "white" if overlaps[i, j] > thresh else "black" if overlaps[i, j] > 0 else "grey"
        ax.text(j, i, f"{overlaps[i, j]:.3f}\n{text}", horizontalalignment="center",
                verticalalignment="center", fontsize=9, color=color)
    ax.set_xlabel("Ground Truth")
    ax.set_ylabel("Predictions")
    fig.tight_layout()
    return _finish(fig, save_path)


def draw_boxes(image, boxes=None, refined_boxes=None,
               masks=None, captions=None, visibilities=None,
               title="", ax=None,
               *, figsize=(12, 12), dpi: int = 100, seed: int | None = None,
               save_path: str | os.PathLike | None = None):
    """Boxes (dotted), refined boxes (solid, joined to their box), masks and captions.

    boxes, refined_boxes: ``[N, (y1, x1, y2, x2)]`` (at least one); masks: ``H×W×N``;
    captions: N strings; visibilities: N values in {0: gray dotted, 1: dotted, 2: solid}.
    """
    from matplotlib import lines, patches

    if boxes is None and refined_boxes is None:
        raise ValueError("draw_boxes: give boxes, refined_boxes or both")
    boxes = None if boxes is None else np.asarray(boxes).reshape(-1, 4)
    refined_boxes = None if refined_boxes is None else np.asarray(refined_boxes).reshape(-1, 4)
    n = boxes.shape[0] if boxes is not None else refined_boxes.shape[0]
    image = np.asarray(image)
    fig, ax = _figure_and_ax(ax, figsize, dpi)
    colors = random_colors(n, seed=seed)
    margin = image.shape[0] // 10
    ax.axis("off")
    ax.set_title(title)
    masked_image = image.astype(np.uint32).copy()
    for i in range(n):
        visibility = visibilities[i] if visibilities is not None else 1
        color, style, alpha = {0: ("gray", "dotted", 0.5), 2: (colors[i], "solid", 1.0)}.get(
            int(visibility), (colors[i], "dotted", 1.0))
        if boxes is not None:
            if not np.any(boxes[i]):
                continue
            y1, x1, y2, x2 = boxes[i]
            ax.add_patch(patches.Rectangle((x1, y1), x2 - x1, y2 - y1, linewidth=2, alpha=alpha,
                                           linestyle=style, edgecolor=color, facecolor="none"))
        if refined_boxes is not None and visibility > 0:
            ry1, rx1, ry2, rx2 = refined_boxes[i].astype(np.int32)
            ax.add_patch(patches.Rectangle((rx1, ry1), rx2 - rx1, ry2 - ry1, linewidth=2,
                                           edgecolor=color, facecolor="none"))
            if boxes is not None:
                ax.add_line(lines.Line2D([x1, rx1], [y1, ry1], color=color))
        if captions is not None:
            # on the refined box when there is one
            cy, cx = (refined_boxes[i] if refined_boxes is not None else boxes[i])[:2]
            ax.text(cx, cy, captions[i], size=11, verticalalignment="top", color="w",
                    backgroundcolor="none", bbox={"facecolor": color, "alpha": 0.5, "pad": 2, "edgecolor": "none"})
        if masks is not None:
            mask = np.asarray(masks)[:, :, i]
            color3 = colors[i] if isinstance(color, str) else color
            masked_image = apply_mask(masked_image, mask, color3)
            _mask_contour(ax, mask, color3)
    ax.imshow(masked_image.astype(np.uint8))
    ax.set_ylim(image.shape[0] + margin, -margin)
    ax.set_xlim(-margin, image.shape[1] + margin)
    return _finish(fig, save_path)
