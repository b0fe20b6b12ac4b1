"""matterport's image and mask utilities (``utils.resize_image`` and friends), numpy in and out.

Boxes here are matterport's ``(y1, x1, y2, x2)`` int32 with **exclusive** ends (the public
API edge); :func:`masks_to_boxes` gives the internal ``xyxy`` float form of the same boxes.

Resampling: images are resized bilinearly with pixel centers aligned (``align_corners=False``,
no antialiasing, like skimage's ``resize(order=1)`` that matterport used) and rounded to
uint8 (matterport truncated); masks are resized by nearest neighbour on the same pixel-center
grid, so a resized mask stays aligned with its resized image.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DatasetError, ImageError

RESIZE_MODES = ("none", "square", "pad64", "crop", "shortest_edge")


def _resize_array(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of ``[H, W]`` or ``[H, W, C]`` to ``[height, width(, C)]``, dtype kept."""
    squeeze = image.ndim == 2
    arr = image[..., None] if squeeze else image
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None].to(torch.float32)
    out = F.interpolate(t, size=(int(height), int(width)), mode="bilinear", align_corners=False)
    out = out[0].permute(1, 2, 0).numpy()
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        out = np.clip(np.round(out), info.min, info.max)
    elif image.dtype == bool:
        out = out >= 0.5
    out = out.astype(image.dtype)
    return out[..., 0] if squeeze else out


def resize(image: np.ndarray, output_shape: tuple[int, int]) -> np.ndarray:
    """Resize ``image`` (``[H, W]`` or ``[H, W, C]``) to ``output_shape`` (h, w) bilinearly, dtype kept."""
    return _resize_array(image, output_shape[0], output_shape[1])


def resize_image(
    image: np.ndarray,
    min_dim: int | None = None,
    max_dim: int | None = None,
    min_scale: float | None = None,
    mode: str = "square",
    *,
    rng: random.Random | None = None,
) -> tuple[np.ndarray, tuple[int, int, int, int], float, list[tuple[int, int]], tuple[int, int, int, int] | None]:
    """Resize an image keeping its aspect ratio (matterport's ``utils.resize_image``).

    Modes:
        none: unchanged.
        square: scale so the short side is at least ``min_dim`` (never down) and the long side
            at most ``max_dim``, then pad (centered) to ``max_dim x max_dim``.
        pad64: scale up to ``min_dim`` like square, then pad (centered) to multiples of 64.
        crop: scale up to ``min_dim``, then take a random ``min_dim x min_dim`` crop.
        shortest_edge: (torchvision's rule, not matterport) scale the short side to ``min_dim``
            unless the long side would exceed ``max_dim``; no padding.

    ``min_scale`` forces at least that scale (square/pad64/crop).

    Returns:
        image: the resized image, same dtype.
        window: ``(y1, x1, y2, x2)`` of the image inside the padded result.
        scale: the factor applied.
        padding: ``[(top, bottom), (left, right), (0, 0)]``.
        crop: ``(y, x, h, w)`` for mode crop, else None.
    """
    if mode not in RESIZE_MODES:
        raise ImageError(f"resize_image: mode={mode!r}; choose one of {', '.join(RESIZE_MODES)}")
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ImageError(f"resize_image: expected an [H, W] or [H, W, C] image, got shape {image.shape}")
    h, w = image.shape[:2]
    window = (0, 0, h, w)
    scale: float = 1
    padding = [(0, 0), (0, 0), (0, 0)]
    crop = None
    if mode == "none":
        return image, window, scale, padding, crop

    if mode == "shortest_edge":
        scale = min_dim / min(h, w) if min_dim else 1
        if max_dim and round(max(h, w) * scale) > max_dim:
            scale = max_dim / max(h, w)
    else:
        if min_dim:
            scale = max(1, min_dim / min(h, w))  # scale up but not down
        if min_scale and scale < min_scale:
            scale = min_scale
        if max_dim and mode == "square":
            image_max = max(h, w)
            if round(image_max * scale) > max_dim:
                scale = max_dim / image_max
    if scale != 1:
        image = _resize_array(image, round(h * scale), round(w * scale))

    h, w = image.shape[:2]
    pad_tail = [(0, 0)] if image.ndim == 3 else []
    if mode == "shortest_edge":
        window = (0, 0, h, w)
    elif mode == "square":
        if not max_dim:
            raise ImageError("resize_image: mode 'square' needs max_dim")
        top_pad = (max_dim - h) // 2
        bottom_pad = max_dim - h - top_pad
        left_pad = (max_dim - w) // 2
        right_pad = max_dim - w - left_pad
        padding = [(top_pad, bottom_pad), (left_pad, right_pad), (0, 0)]
        image = np.pad(image, padding[:2] + pad_tail, mode="constant", constant_values=0)
        window = (top_pad, left_pad, h + top_pad, w + left_pad)
    elif mode == "pad64":
        if not min_dim or min_dim % 64:
            raise ImageError(f"resize_image: mode 'pad64' needs min_dim a multiple of 64, got {min_dim}")
        top_pad = bottom_pad = left_pad = right_pad = 0
        if h % 64:
            max_h = h - (h % 64) + 64
            top_pad = (max_h - h) // 2
            bottom_pad = max_h - h - top_pad
        if w % 64:
            max_w = w - (w % 64) + 64
            left_pad = (max_w - w) // 2
            right_pad = max_w - w - left_pad
        padding = [(top_pad, bottom_pad), (left_pad, right_pad), (0, 0)]
        image = np.pad(image, padding[:2] + pad_tail, mode="constant", constant_values=0)
        window = (top_pad, left_pad, h + top_pad, w + left_pad)
    elif mode == "crop":
        if not min_dim or h < min_dim or w < min_dim:
            raise ImageError(f"resize_image: mode 'crop' needs min_dim <= the scaled image ({h}x{w}), got {min_dim}")
        rng = rng or random
        y = rng.randint(0, h - min_dim)
        x = rng.randint(0, w - min_dim)
        crop = (y, x, min_dim, min_dim)
        image = image[y:y + min_dim, x:x + min_dim]
        window = (0, 0, min_dim, min_dim)
    return image, window, scale, padding, crop


def resize_mask(mask: np.ndarray, scale: float, padding: Any, crop: tuple[int, int, int, int] | None = None
                ) -> np.ndarray:
    """Resize ``[H, W, N]`` masks like :func:`resize_image` resized their image.

    ``scale`` gives the size ``round(H * scale) x round(W * scale)`` (nearest neighbour on
    pixel centers); then ``crop`` ``(y, x, h, w)`` is taken, or ``padding`` (as returned by
    resize_image) is added.
    """
    mask = np.asarray(mask)
    h, w = mask.shape[:2]
    nh, nw = round(h * scale), round(w * scale)
    if (nh, nw) != (h, w):
        rows = np.minimum(((np.arange(nh) + 0.5) * h / nh).astype(np.int64), h - 1)
        cols = np.minimum(((np.arange(nw) + 0.5) * w / nw).astype(np.int64), w - 1)
        mask = mask[rows[:, None], cols[None, :]]
    if crop is not None:
        y, x, ch, cw = crop
        return mask[y:y + ch, x:x + cw]
    pad = [tuple(p) for p in padding][:2] + [(0, 0)] * (mask.ndim - 2)
    return np.pad(mask, pad, mode="constant", constant_values=0)


def extract_bboxes(mask: np.ndarray) -> np.ndarray:
    """Boxes ``[N, 4]`` int32 ``(y1, x1, y2, x2)`` of ``[H, W, N]`` masks; ends exclusive; empty -> zeros."""
    mask = np.asarray(mask).astype(bool)
    if mask.ndim != 3:
        raise DatasetError(f"extract_bboxes: expected masks [H, W, N], got shape {mask.shape}")
    h, w, n = mask.shape
    boxes = np.zeros((n, 4), dtype=np.int32)
    if n == 0 or h == 0 or w == 0:
        return boxes
    cols = mask.any(axis=0)  # [W, N]
    rows = mask.any(axis=1)  # [H, N]
    present = cols.any(axis=0)
    x1 = cols.argmax(axis=0)
    x2 = w - cols[::-1].argmax(axis=0)
    y1 = rows.argmax(axis=0)
    y2 = h - rows[::-1].argmax(axis=0)
    boxes[:] = np.stack([y1, x1, y2, x2], axis=1)
    boxes[~present] = 0
    return boxes


def masks_to_boxes(masks: torch.Tensor) -> torch.Tensor:
    """Boxes ``[N, 4]`` float32 ``xyxy`` (x2, y2 exclusive) of bool masks ``[N, H, W]``; empty -> zeros."""
    n, h, w = masks.shape
    if n == 0:
        return torch.zeros((0, 4), dtype=torch.float32, device=masks.device)
    if masks.device.type == "cpu":  # numpy's boolean reductions are ~10x faster than torch's here
        m = masks.numpy() if masks.dtype == torch.bool else masks.numpy() != 0
        yx = extract_bboxes(np.moveaxis(m, 0, -1))
        return torch.from_numpy(yx[:, [1, 0, 3, 2]].astype(np.float32))
    cols = masks.any(dim=1)  # [N, W]
    rows = masks.any(dim=2)  # [N, H]
    ar_w = torch.arange(w, device=masks.device)
    ar_h = torch.arange(h, device=masks.device)
    big = max(h, w) + 1
    x1 = torch.where(cols, ar_w, big).amin(dim=1)
    x2 = torch.where(cols, ar_w, -1).amax(dim=1) + 1
    y1 = torch.where(rows, ar_h, big).amin(dim=1)
    y2 = torch.where(rows, ar_h, -1).amax(dim=1) + 1
    boxes = torch.stack([x1, y1, x2, y2], dim=1).to(torch.float32)
    boxes[~cols.any(dim=1)] = 0
    return boxes


def nonempty(masks: torch.Tensor) -> torch.Tensor:
    """bool ``[N]``: which of the masks ``[N, H, W]`` have any pixel set."""
    if masks.shape[0] == 0 or masks.numel() == 0:
        return torch.zeros(masks.shape[0], dtype=torch.bool, device=masks.device)
    if masks.device.type == "cpu" and masks.dtype == torch.bool:
        return torch.from_numpy(masks.numpy().reshape(masks.shape[0], -1).any(axis=1))
    return masks.flatten(1).any(dim=1)


def _resize_bool(m: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a bool mask, then matterport's ``np.around`` (values > 0.5 are in)."""
    t = torch.from_numpy(m.astype(np.float32))[None, None]
    out = F.interpolate(t, size=(int(shape[0]), int(shape[1])), mode="bilinear", align_corners=False)
    return out[0, 0].numpy() > 0.5


def minimize_mask(bbox: np.ndarray, mask: np.ndarray, mini_shape: tuple[int, int]) -> np.ndarray:
    """Crop each ``[H, W, N]`` mask to its box ``(y1, x1, y2, x2)`` and resize it to ``mini_shape``.

    Returns bool ``[mh, mw, N]``. Raises :class:`DatasetError` for a box of zero area.
    """
    mini_shape = (int(mini_shape[0]), int(mini_shape[1]))
    mini = np.zeros(mini_shape + (mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        y1, x1, y2, x2 = (int(v) for v in bbox[i][:4])
        m = np.asarray(mask[y1:y2, x1:x2, i], dtype=bool)
        if m.size == 0:
            raise DatasetError(f"minimize_mask: instance {i} has a box of zero area {tuple(bbox[i][:4])}")
        mini[:, :, i] = _resize_bool(m, mini_shape)
    return mini


def expand_mask(bbox: np.ndarray, mini_mask: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`minimize_mask`: paste each mini-mask back into its box; bool ``[H, W, N]``."""
    mask = np.zeros(tuple(image_shape[:2]) + (mini_mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        y1, x1, y2, x2 = (int(v) for v in bbox[i][:4])
        if y2 <= y1 or x2 <= x1:
            continue
        mask[y1:y2, x1:x2, i] = _resize_bool(np.asarray(mini_mask[:, :, i], dtype=bool), (y2 - y1, x2 - x1))
    return mask


def minimize_masks_xyxy(masks: torch.Tensor, boxes: torch.Tensor, mini_shape: tuple[int, int]) -> torch.Tensor:
    """Mini-masks ``[N, mh, mw]`` bool from masks ``[N, H, W]`` and their ``xyxy`` boxes (exclusive ends).

    Each mini-mask covers exactly its box (crop, bilinear resize, > 0.5), the tensor form of
    :func:`minimize_mask`.
    """
    mh, mw = int(mini_shape[0]), int(mini_shape[1])
    out = torch.zeros((masks.shape[0], mh, mw), dtype=torch.bool)
    for i in range(masks.shape[0]):
        x1, y1, x2, y2 = (int(v) for v in boxes[i].tolist())
        crop = masks[i, y1:y2, x1:x2]
        if crop.numel() == 0:
            continue
        out[i] = F.interpolate(crop[None, None].float(), size=(mh, mw), mode="bilinear",
                               align_corners=False)[0, 0] > 0.5
    return out
