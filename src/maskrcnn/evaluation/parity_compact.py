"""The compact copy of a matterport reference ``.npz`` that the CI fixture commits, and back.

:func:`compact_reference` keeps what the parity checks need in under 0.5 MB per image (no image,
no features, masks as COCO RLE); :func:`expand_compact` rebuilds full layouts from it (as ours
would give them) for self-checks. Layouts: :mod:`.parity`'s docstring.
"""

from __future__ import annotations

import numpy as np

from .parity_edges import detection_rois


def own_class_masks(mrcnn_mask: np.ndarray, detections: np.ndarray) -> np.ndarray:
    """[N, 28, 28]: each detection's own-class mask from ``mrcnn_mask`` [1, D, 28, 28, C] and
    ``detections`` [1, D, 6] (N = rows with a class id > 0; matterport zero-pads the rest)."""
    det = np.asarray(detections)[0]
    n = int((det[:, 4] > 0).sum())
    mask = np.asarray(mrcnn_mask)[0]
    return np.stack([mask[i, :, :, int(det[i, 4])] for i in range(n)]) if n else np.zeros((0,) + mask.shape[1:3])


def masks_to_rle(masks: np.ndarray) -> list[dict]:
    """COCO RLEs of ``masks`` [H, W, N] bool."""
    from pycocotools import mask as coco_mask

    return coco_mask.encode(np.asfortranarray(np.asarray(masks, np.uint8)))


def rle_from_arrays(counts: np.ndarray, offsets: np.ndarray, image_shape) -> list[dict]:
    """COCO RLEs from ``counts`` (uint8, the concatenated ``counts`` strings) and ``offsets`` [N + 1]."""
    h, w = int(image_shape[0]), int(image_shape[1])
    data = np.asarray(counts, np.uint8).tobytes()
    offsets = np.asarray(offsets)
    return [{"size": [h, w], "counts": data[offsets[i]:offsets[i + 1]]} for i in range(len(offsets) - 1)]


def compact_reference(ref: dict, *, proposals: int = 1000, class_rows: int = 50, rpn_top: int = 2000,
                      rpn_random: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    """A small copy of one reference ``.npz`` for committing (no image, no features).

    Keeps ``rois``, ``class_ids``, ``scores``, ``window``, ``scale``, ``image_meta``,
    ``detections``; masks as RLE (``masks_rle``, ``masks_rle_offsets``, ``image_shape``); the first
    ``proposals`` proposals (float32); ``mrcnn_class`` of the first ``class_rows`` proposals;
    ``mrcnn_mask_own`` [N, 28, 28] float16; the fg probability (``rpn_class_fg``) of the
    ``rpn_top`` best anchors plus ``rpn_random`` others drawn with ``seed`` (``rpn_class_index``).
    """
    fg = np.asarray(ref["rpn_class"])[0, :, 1]
    top = np.argsort(-fg, kind="stable")[:rpn_top]
    rest = np.setdiff1d(np.arange(len(fg)), top)
    extra = np.sort(np.random.default_rng(seed).choice(rest, size=min(rpn_random, len(rest)), replace=False))
    index = np.concatenate([top, extra]).astype(np.int32)
    rles = masks_to_rle(ref["masks"])
    counts = [r["counts"] for r in rles]
    return {
        "rois": np.asarray(ref["rois"], np.int32),
        "class_ids": np.asarray(ref["class_ids"], np.int32),
        "scores": np.asarray(ref["scores"], np.float32),
        "image_shape": np.asarray(np.shape(ref["masks"])[:2] if "image" not in ref else np.shape(ref["image"]),
                                  np.int32),
        "masks_rle": np.frombuffer(b"".join(counts), np.uint8),
        "masks_rle_offsets": np.cumsum([0] + [len(c) for c in counts]).astype(np.int64),
        "window": np.asarray(ref["window"], np.int32),
        "scale": np.asarray(ref["scale"], np.float32),
        "image_meta": np.asarray(ref["image_meta"], np.float32),
        "proposals": np.asarray(ref["proposals"], np.float32)[:, :proposals],
        "detections": np.asarray(ref["detections"], np.float32),
        "mrcnn_class": np.asarray(ref["mrcnn_class"], np.float32)[:, :class_rows],
        "mrcnn_mask_own": own_class_masks(ref["mrcnn_mask"], ref["detections"]).astype(np.float16),
        "rpn_class_index": index,
        "rpn_class_fg": fg[index].astype(np.float32),
        "detection_rois": detection_rois(ref["detections"], ref["proposals"], ref["mrcnn_bbox"],
                                         ref["image_meta"]).astype(np.int32),
    }


def expand_compact(compact: dict) -> dict[str, np.ndarray]:
    """The arrays of :func:`compact_reference` in full layouts, as ours would give them (for
    self-checks): ``rpn_class`` [1, A, 2] (A = highest stored anchor + 1; anchors not stored get
    0.5/0.5), ``mrcnn_mask`` [1, D, 28, 28, C] (zeros but each detection's own class), ``masks``
    [H, W, N] bool decoded from the RLEs; the other stages as stored."""
    from pycocotools import mask as coco_mask

    out = {k: np.asarray(v) for k, v in compact.items()
           if k not in ("rpn_class_index", "rpn_class_fg", "mrcnn_mask_own", "masks_rle", "masks_rle_offsets")}
    index, fg = np.asarray(compact["rpn_class_index"]), np.asarray(compact["rpn_class_fg"], np.float32)
    rpn = np.full((1, int(index.max(initial=-1)) + 1, 2), 0.5, np.float32)
    rpn[0, index, 1], rpn[0, index, 0] = fg, 1 - fg
    out["rpn_class"] = rpn
    det = np.asarray(compact["detections"])
    num_classes = int(np.asarray(compact["image_meta"]).shape[-1]) - 12
    own = np.asarray(compact["mrcnn_mask_own"], np.float32)
    mask = np.zeros((1, det.shape[1]) + own.shape[1:3] + (num_classes,), np.float32)
    for i in range(len(own)):
        mask[0, i, :, :, int(det[0, i, 4])] = own[i]
    out["mrcnn_mask"] = mask
    rles = rle_from_arrays(compact["masks_rle"], compact["masks_rle_offsets"], compact["image_shape"])
    h, w = (int(x) for x in np.asarray(compact["image_shape"])[:2])
    out["masks"] = coco_mask.decode(rles).astype(bool) if rles else np.zeros((h, w, 0), bool)
    return out
