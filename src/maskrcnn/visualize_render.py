"""Fast drawing on numpy images (numpy + PIL, no matplotlib): colors, mask blending, boxes,
and :func:`render_instances`, the picture writer of the ``detect`` command.

Conventions of the public API: images ``H×W×3`` uint8 RGB; boxes ``[N, (y1, x1, y2, x2)]``
in pixels, ``(y2, x2)`` just outside the box; masks ``H×W×N`` bool; colors RGB floats in
``[0, 1]`` (matterport's ``random_colors``).
"""

from __future__ import annotations

import colorsys
import random
from collections.abc import Sequence

import numpy as np

__all__ = ["random_colors", "apply_mask", "draw_box", "unmold_mask", "mask_outline", "render_instances"]


def random_colors(N: int, bright: bool = True, *, seed: int | None = None) -> list[tuple[float, float, float]]:
    """``N`` visually distinct RGB colors in ``[0, 1]``: evenly spaced hues, shuffled.

    seed: None shuffles with Python's global ``random`` (matterport); an int gives the
    same colors every call.
    """
    brightness = 1.0 if bright else 0.7
    colors = [colorsys.hsv_to_rgb(i / N, 1, brightness) for i in range(N)]
    if seed is None:
        random.shuffle(colors)
    else:
        random.Random(seed).shuffle(colors)
    return colors


def apply_mask(image: np.ndarray, mask: np.ndarray, color, alpha: float = 0.5) -> np.ndarray:
    """Blend ``color`` (RGB in ``[0, 1]``) into ``image`` where ``mask`` is set, in place.

    image: ``H×W×3`` (any numeric dtype; integer results are truncated as in matterport).
    mask: ``H×W`` bool or 0/1 (values > 0.5 count). Returns ``image``.
    """
    m = np.asarray(mask) > 0.5
    if not m.any():
        return image
    c = np.asarray(color, dtype=np.float64)[:3] * 255.0
    image[m] = image[m] * (1 - alpha) + alpha * c
    return image


def draw_box(image: np.ndarray, box, color, thickness: int = 2) -> np.ndarray:
    """Draw the outline of ``box`` ``(y1, x1, y2, x2)`` on ``image`` in place and return it.

    color: a value per channel (e.g. ``[255, 0, 0]``). Lines are ``thickness`` pixels
    wide, drawn inside ``[y1, y2] × [x1, x2]`` and clipped to the image.
    """
    h, w = image.shape[:2]
    y1, x1, y2, x2 = (int(round(float(v))) for v in box)
    y1, y2 = sorted((y1, y2))
    x1, x2 = sorted((x1, x2))
    t = max(int(thickness), 1)
    cy1, cy2 = max(y1, 0), min(y2 + 1, h)
    cx1, cx2 = max(x1, 0), min(x2 + 1, w)
    if cy1 >= cy2 or cx1 >= cx2:
        return image
    color = np.asarray(color)
    image[max(y1, 0):max(min(y1 + t, h), 0), cx1:cx2] = color
    image[max(y2 - t + 1, 0):max(min(y2 + 1, h), 0), cx1:cx2] = color
    image[cy1:cy2, max(x1, 0):max(min(x1 + t, w), 0)] = color
    image[cy1:cy2, max(x2 - t + 1, 0):max(min(x2 + 1, w), 0)] = color
    return image


def unmold_mask(mask: np.ndarray, bbox, image_shape, threshold: float = 0.5) -> np.ndarray:
    """Paste a small ``h×w`` float mask into its box of a full-size bool mask.

    bbox: ``(y1, x1, y2, x2)`` in pixels; image_shape: ``(H, W[, C])``. The mask is
    resized bilinearly to the box (PIL) and thresholded. Returns bool ``H×W``.
    """
    from PIL import Image

    height, width = int(image_shape[0]), int(image_shape[1])
    y1, x1, y2, x2 = (int(round(float(v))) for v in bbox)
    full = np.zeros((height, width), dtype=bool)
    bh, bw = y2 - y1, x2 - x1
    if bh <= 0 or bw <= 0:
        return full
    small = Image.fromarray(np.asarray(mask, dtype=np.float32), mode="F").resize((bw, bh), Image.BILINEAR)
    pasted = np.asarray(small) >= threshold
    ys, xs = slice(max(y1, 0), min(y2, height)), slice(max(x1, 0), min(x2, width))
    full[ys, xs] = pasted[ys.start - y1:ys.stop - y1, xs.start - x1:xs.stop - x1]
    return full


def mask_outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """Pixels of ``mask`` (``H×W`` bool) that touch a pixel outside it (4-neighbourhood),
    grown inward to ``width`` pixels. The image border counts as outside."""
    m = np.asarray(mask, dtype=bool)
    inner = m.copy()
    for _ in range(max(int(width), 1)):
        p = np.pad(inner, 1, constant_values=False)
        inner = inner & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return m & ~inner


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def render_instances(
    image: np.ndarray,
    boxes: np.ndarray,
    masks: np.ndarray | None,
    class_ids: Sequence[int],
    class_names: Sequence[str],
    scores: Sequence[float] | None = None,
    *,
    colors: Sequence | None = None,
    captions: Sequence[str] | None = None,
    alpha: float = 0.5,
    show_mask: bool = True,
    show_bbox: bool = True,
    show_caption: bool = True,
    seed: int = 0,
) -> np.ndarray:
    """Draw detections on a copy of ``image`` quickly (numpy + PIL): masks blended in their
    color with a solid outline, boxes, and ``"<class> <score>"`` captions.

    image: ``H×W×3`` uint8 RGB (grayscale ``H×W`` and RGBA are converted).
    boxes: ``[N, (y1, x1, y2, x2)]`` pixels; masks: ``H×W×N`` bool or None;
    class_ids: ``[N]``; scores: ``[N]`` or None; colors: N RGB triples in ``[0, 1]``
    (default: :func:`random_colors` with ``seed``, the same every call).
    Returns a new ``H×W×3`` uint8 array; the input is not modified.
    """
    from PIL import Image, ImageDraw

    img = np.asarray(image)
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3]
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    height, width = img.shape[:2]
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n = boxes.shape[0]
    class_ids = np.asarray(class_ids).reshape(-1)
    if masks is not None:
        masks = np.asarray(masks)
        if masks.ndim != 3 or masks.shape[:2] != (height, width) or masks.shape[-1] != n:
            raise ValueError(f"render_instances: masks of shape {masks.shape}, expected ({height}, {width}, {n})")
    if len(class_ids) != n:
        raise ValueError(f"render_instances: {len(class_ids)} class ids for {n} boxes")
    if colors is None:
        colors = random_colors(n, seed=seed)
    out = img.astype(np.float32)
    if masks is not None and show_mask:
        for i in range(n):
            m = masks[..., i] > 0
            if not m.any():
                continue
            apply_mask(out, m, colors[i], alpha)
            out[mask_outline(m)] = np.asarray(colors[i][:3], dtype=np.float32) * 255.0
    pil = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))
    if n == 0 or not (show_bbox or show_caption):
        return np.asarray(pil)
    draw = ImageDraw.Draw(pil)
    font = _font(max(11, min(height, width) // 40))
    line = max(1, min(height, width) // 300 + 1)
    for i in range(n):
        color = tuple(int(round(c * 255)) for c in colors[i][:3])
        y1, x1, y2, x2 = boxes[i]
        if not np.any(boxes[i]):
            continue
        if show_bbox:
            draw.rectangle([x1, y1, max(x2 - 1, x1), max(y2 - 1, y1)], outline=color, width=line)
        if show_caption:
            if captions is not None:
                text = str(captions[i])
            else:
                cid = int(class_ids[i])
                name = class_names[cid] if 0 <= cid < len(class_names) else str(cid)
                text = f"{name} {float(scores[i]):.2f}" if scores is not None else str(name)
            if not text:
                continue
            tx = max(float(x1), 0.0)
            _, top, _, bottom = draw.textbbox((0, 0), text, font=font)
            text_h = bottom - top + 2
            # above the box when there is room, else just inside its top edge
            ty = float(y1) - text_h - line if float(y1) - text_h - line >= 0 else max(float(y1), 0.0)
            left, top, right, bottom = draw.textbbox((tx, ty), text, font=font)
            draw.rectangle([left - 1, top - 1, right + 1, bottom + 1], fill=color)
            luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
            draw.text((tx, ty), text, fill=(0, 0, 0) if luminance > 160 else (255, 255, 255), font=font)
    return np.asarray(pil).copy()
