"""matterport's mask and box utilities (``utils.extract_bboxes``, mini-masks), numpy in and out.

Boxes here are matterport's ``(y1, x1, y2, x2)`` int32 with **exclusive** ends (the public
API edge); :func:`masks_to_boxes` gives the internal ``xyxy`` float form of the same boxes.

Mini-masks are resized bilinearly with pixel centers aligned (``align_corners=False``) and
thresholded like matterport (> 0.5). Resizing and padding images for the network is not done
here: the model's :mod:`maskrcnn.model.preprocess` is the one geometry (training gives it images
at their original size).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DatasetError


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
