"""Parity with a reference implementation: per-stage differences and one-to-one final detections.

Works on plain dicts of numpy arrays keyed and laid out like the ``.npz`` files of matterport's
reference harness (``../shared/reference/matterport/reference.py``; README there, "Outputs"):

- stages (a batch of one image): ``molded_image`` [1, h, w, 3], ``anchors`` [1, A, 4] normalized,
  ``fpn_p2``…``fpn_p6`` [1, h/s, w/s, 256] NHWC, ``rpn_class`` [1, A, 2] softmax (bg, fg),
  ``rpn_bbox`` [1, A, 4], ``proposals`` [1, R, 4] normalized (y1, x1, y2, x2) zero-padded,
  ``mrcnn_class`` [1, R, C], ``mrcnn_bbox`` [1, R, C, 4], ``detections`` [1, D, 6] normalized
  (y1, x1, y2, x2, class id, score) zero-padded, ``mrcnn_mask`` [1, D, 28, 28, C];
- final results (matterport's ``detect()``): ``rois`` [N, 4] int (y1, x1, y2, x2) pixels of the
  original image, ``class_ids`` [N], ``scores`` [N], ``masks`` [H, W, N] bool.

The reference may be reduced (the committed CI fixture, see :func:`compact_reference`):
``proposals``/``mrcnn_class`` with only the first rows, ``rpn_class_index`` + ``rpn_class_fg``
instead of ``rpn_class``, ``mrcnn_mask_own`` [N, 28, 28] (each detection's own class) instead of
``mrcnn_mask``, masks as COCO RLE (``masks_rle`` + ``masks_rle_offsets`` + ``image_shape``).

Row stages are compared order-independently: proposals (and detections) are paired one to one with
the nearest row of the other side, so tie-breaking differences in top-k/NMS show as "reordered"
rather than as huge differences; ``mrcnn_class``/``mrcnn_bbox`` (``mrcnn_mask``) are then compared
on those pairs. numpy only (pycocotools for RLE masks).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .matching import compute_overlaps

FPN_KEYS = ("fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5", "fpn_p6")
#: Stage order of the report.
STAGES = ("molded_image", "anchors", *FPN_KEYS, "rpn_class", "rpn_bbox", "proposals", "mrcnn_class",
          "mrcnn_bbox", "detections", "mrcnn_mask")


@dataclass(frozen=True)
class Tolerance:
    """A stage passes when ``max |ours - ref| <= atol + rtol * max |ref|``."""

    atol: float
    rtol: float = 0.0

    def limit(self, ref_max_abs: float) -> float:
        return self.atol + self.rtol * ref_max_abs


#: float32 on both sides, different libraries (TF vs PyTorch): per-stage limits. Probabilities and
#: normalized coordinates get absolute limits (1e-4 of a 1024 image is 0.1 px); features relative ones.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "molded_image": Tolerance(1e-3),
    "anchors": Tolerance(1e-6),
    **{k: Tolerance(1e-4, 1e-3) for k in FPN_KEYS},
    "rpn_class": Tolerance(1e-4),
    "rpn_bbox": Tolerance(1e-4, 1e-3),
    "proposals": Tolerance(1e-4),
    "mrcnn_class": Tolerance(1e-4),
    "mrcnn_bbox": Tolerance(1e-4, 1e-3),
    "detections": Tolerance(1e-4),
    "mrcnn_mask": Tolerance(1e-3),   # the fixture stores these as float16 (2.4e-4 rounding)
}


@dataclass
class StageResult:
    stage: str
    max_abs_diff: float          # inf when shapes differ or the stage is missing
    mean_abs_diff: float
    ref_max_abs: float
    limit: float
    ok: bool
    note: str = ""


@dataclass
class DetectionMatch:
    """One-to-one matching of one image's final detections (reference order, which is by score)."""

    n_ref: int
    n_ours: int
    matched: int
    min_box_iou: float
    max_score_diff: float
    min_mask_iou: float
    mean_mask_iou: float
    unmatched: list[int] = field(default_factory=list)   # reference indices without a partner
    ok: bool = False


@dataclass
class ImageParity:
    name: str
    stages: list[StageResult]
    detections: DetectionMatch | None

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.stages) and (self.detections is None or self.detections.ok)


# ---------------------------------------------------------------------- stages
def _stat(name: str, ours: np.ndarray, ref: np.ndarray, tol: Tolerance, note: str = "") -> StageResult:
    ref = np.asarray(ref, np.float64)
    ref_max = float(np.abs(ref).max()) if ref.size else 0.0
    limit = tol.limit(ref_max)
    ours = np.asarray(ours, np.float64)
    if ours.shape != ref.shape:
        return StageResult(name, float("inf"), float("inf"), ref_max, limit, False,
                           f"shapes {ours.shape} vs reference {ref.shape}" + (f"; {note}" if note else ""))
    if not ref.size:
        return StageResult(name, 0.0, 0.0, 0.0, limit, True, note)
    diff = np.abs(ours - ref)
    bad = ~np.isfinite(diff)
    if bad.any():
        return StageResult(name, float("inf"), float("inf"), ref_max, limit, False,
                           f"{int(bad.sum())} non-finite values" + (f"; {note}" if note else ""))
    return StageResult(name, float(diff.max()), float(diff.mean()), ref_max, limit, bool(diff.max() <= limit), note)


def _missing(name: str, tol: Tolerance) -> StageResult:
    return StageResult(name, float("inf"), float("inf"), 0.0, tol.atol, False, "missing in ours")


def pair_rows(ours: np.ndarray, ref: np.ndarray, limit: float) -> tuple[np.ndarray, int]:
    """Pair each reference row with one row of ``ours`` ([n, k] and [m, k]).

    Rows equal within ``limit`` (max abs over the row) at the same index stay paired; the others
    take, in reference order, the nearest unused row of ``ours`` (greedy). Returns ``pairs`` [n]
    (index into ``ours``, -1 when ``ours`` has too few rows) and how many rows changed place.
    """
    n, m = len(ref), len(ours)
    pairs = np.full(n, -1, np.int64)
    k = min(n, m)
    same = np.zeros(n, bool)
    if k:
        same[:k] = np.abs(ours[:k] - ref[:k]).max(axis=1) <= limit
    pairs[same] = np.nonzero(same)[0]
    used = np.zeros(m, bool)
    used[pairs[same]] = True
    moved = 0
    for i in np.nonzero(~same)[0]:
        free = np.nonzero(~used)[0]
        if not free.size:
            break
        j = free[np.argmin(np.abs(ours[free] - ref[i]).max(axis=1))]
        pairs[i], used[j] = j, True
        moved += int(j != i)
    return pairs, moved


def _row_stage(name: str, ours: np.ndarray, ref: np.ndarray, tol: Tolerance) -> tuple[StageResult, np.ndarray]:
    """A [1, n, k] stage whose rows may be permuted: compared on :func:`pair_rows`' pairs."""
    o, r = np.asarray(ours)[0], np.asarray(ref)[0]
    if o.ndim != 2 or o.shape[1] != r.shape[1]:
        return _stat(name, ours, ref, tol), np.arange(len(r))
    limit = tol.limit(float(np.abs(r).max()) if r.size else 0.0)
    pairs, moved = pair_rows(o.astype(np.float64), r.astype(np.float64), limit)
    if (pairs < 0).any():
        return _stat(name, ours, ref, tol, f"ours has {len(o)} rows"), pairs
    note = f"{moved} of {len(r)} rows in another order" if moved else ""
    if len(o) != len(r):
        note = "; ".join(x for x in (note, f"first {len(r)} of {len(o)} rows") if x)
    return _stat(name, o[pairs][None], r[None], tol, note), pairs


def own_class_masks(mrcnn_mask: np.ndarray, detections: np.ndarray) -> np.ndarray:
    """[N, 28, 28]: each detection's own-class mask from ``mrcnn_mask`` [1, D, 28, 28, C] and
    ``detections`` [1, D, 6] (N = rows with a class id > 0; matterport zero-pads the rest)."""
    det = np.asarray(detections)[0]
    n = int((det[:, 4] > 0).sum())
    mask = np.asarray(mrcnn_mask)[0]
    return np.stack([mask[i, :, :, int(det[i, 4])] for i in range(n)]) if n else np.zeros((0,) + mask.shape[1:3])


def compare_stages(ours: dict, ref: dict, tolerances: dict[str, Tolerance] | None = None) -> list[StageResult]:
    """Every stage present in ``ref``, in :data:`STAGES` order (a stage ``ours`` lacks fails)."""
    tols = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    out: list[StageResult] = []
    for key in ("molded_image", "anchors", *FPN_KEYS, "rpn_bbox"):
        if key in ref:
            out.append(_stat(key, ours[key], ref[key], tols[key]) if key in ours else _missing(key, tols[key]))
    if "rpn_class" in ref or "rpn_class_index" in ref:
        tol = tols["rpn_class"]
        if "rpn_class" not in ours:
            out.append(_missing("rpn_class", tol))
        elif "rpn_class" in ref:
            out.append(_stat("rpn_class", ours["rpn_class"], ref["rpn_class"], tol))
        else:
            idx = np.asarray(ref["rpn_class_index"])
            fg = np.asarray(ours["rpn_class"])[0, :, 1]
            got = fg[idx] if fg.shape[0] > idx.max(initial=0) else np.zeros(0)
            out.append(_stat("rpn_class", got, ref["rpn_class_fg"], tol, f"fg at {len(idx)} anchors"))
    pairs = None
    if "proposals" in ref:
        if "proposals" in ours:
            res, pairs = _row_stage("proposals", ours["proposals"], ref["proposals"], tols["proposals"])
            out.append(res)
        else:
            out.append(_missing("proposals", tols["proposals"]))
    for key in ("mrcnn_class", "mrcnn_bbox"):
        if key not in ref:
            continue
        if key not in ours:
            out.append(_missing(key, tols[key]))
            continue
        r, o = np.asarray(ref[key]), np.asarray(ours[key])
        n = r.shape[1]
        rows = pairs[:n] if pairs is not None and len(pairs) >= n and (pairs[:n] >= 0).all() else np.arange(n)
        note = "on the paired proposals" if pairs is not None and not np.array_equal(rows, np.arange(n)) else ""
        if n != o.shape[1]:
            note = "; ".join(x for x in (note, f"first {n} proposals") if x)
        got = o[:, rows] if rows.max(initial=-1) < o.shape[1] else o
        out.append(_stat(key, got, r, tols[key], note))
    det_pairs = None
    if "detections" in ref:
        if "detections" in ours:
            res, det_pairs = _row_stage("detections", ours["detections"], ref["detections"], tols["detections"])
            out.append(res)
        else:
            out.append(_missing("detections", tols["detections"]))
    if "mrcnn_mask" in ref or "mrcnn_mask_own" in ref:
        tol = tols["mrcnn_mask"]
        if "mrcnn_mask" not in ours or "detections" not in ours:
            out.append(_missing("mrcnn_mask", tol))
        else:
            r = (np.asarray(ref["mrcnn_mask_own"], np.float32) if "mrcnn_mask_own" in ref
                 else own_class_masks(ref["mrcnn_mask"], ref["detections"]))
            o_det = np.asarray(ours["detections"])[0]
            o_mask = np.asarray(ours["mrcnn_mask"])[0]
            n = len(r)
            rows = det_pairs[:n] if det_pairs is not None and (det_pairs[:n] >= 0).all() else np.arange(n)
            cls = np.asarray(ref["detections"])[0, :n, 4].astype(int)
            got = (o_mask[rows, :, :, cls] if n and rows.max() < len(o_mask) and (o_det[rows, 4] == cls).all()
                   else np.zeros((0, 28, 28)))
            out.append(_stat("mrcnn_mask", got, r, tol, "own class of each detection"))
    return out


# ---------------------------------------------------------------------- final detections
def masks_to_rle(masks: np.ndarray) -> list[dict]:
    """COCO RLEs of ``masks`` [H, W, N] bool."""
    from pycocotools import mask as coco_mask

    return coco_mask.encode(np.asfortranarray(np.asarray(masks, np.uint8)))


def _rles(result: dict) -> list[dict]:
    if "masks_rle" in result:
        return rle_from_arrays(result["masks_rle"], result["masks_rle_offsets"], result["image_shape"])
    return masks_to_rle(result["masks"])


def match_final(ours: dict, ref: dict, *, min_box_iou: float = 0.95, max_score_diff: float = 1e-3,
                min_mask_iou: float = 0.95, min_mean_mask_iou: float = 0.98) -> DetectionMatch:
    """One-to-one matching of final detections; ``ok`` = same count and every one matched.

    For each reference detection (in its order) the unused detection of ours with the same class
    and the highest box IoU (integer boxes, matterport's ``compute_overlaps``) is its partner when
    box IoU >= ``min_box_iou``, |score difference| <= ``max_score_diff`` and mask IoU >=
    ``min_mask_iou``; over all pairs the mean mask IoU must reach ``min_mean_mask_iou``.
    """
    from pycocotools import mask as coco_mask

    n_ref, n_ours = len(ref["scores"]), len(ours["scores"])
    if n_ref == 0 or n_ours == 0:
        ok = n_ref == n_ours
        return DetectionMatch(n_ref, n_ours, 0, 1.0 if ok else 0.0, 0.0, 1.0 if ok else 0.0, 1.0 if ok else 0.0,
                              list(range(n_ref)), ok)
    iou = compute_overlaps(np.asarray(ref["rois"], np.float64), np.asarray(ours["rois"], np.float64))
    same_class = np.asarray(ref["class_ids"])[:, None] == np.asarray(ours["class_ids"])[None, :]
    iou = np.where(same_class, iou, -1.0)
    ref_rle, ours_rle = _rles(ref), _rles(ours)
    used = np.zeros(n_ours, bool)
    box_ious, score_diffs, mask_ious, unmatched = [], [], [], []
    for i in range(n_ref):
        candidates = np.where(used, -2.0, iou[i])
        j = int(np.argmax(candidates))
        if candidates[j] < min_box_iou:
            unmatched.append(i)
            continue
        score_diff = abs(float(ref["scores"][i]) - float(ours["scores"][j]))
        mask_iou = float(coco_mask.iou([ours_rle[j]], [ref_rle[i]], [0])[0, 0])
        if score_diff > max_score_diff or mask_iou < min_mask_iou:
            unmatched.append(i)
            continue
        used[j] = True
        box_ious.append(float(candidates[j]))
        score_diffs.append(score_diff)
        mask_ious.append(mask_iou)
    mean_mask = float(np.mean(mask_ious)) if mask_ious else 0.0
    matched = len(mask_ious)
    ok = n_ref == n_ours == matched and mean_mask >= min_mean_mask_iou
    return DetectionMatch(n_ref, n_ours, matched, min(box_ious, default=0.0), max(score_diffs, default=0.0),
                          min(mask_ious, default=0.0), mean_mask, unmatched, ok)


def compare_image(ours: dict, ref: dict, *, name: str = "", tolerances: dict[str, Tolerance] | None = None,
                  **match_kwargs) -> ImageParity:
    """Stages and final detections of one image (final detections only when ``ref`` has ``scores``)."""
    detections = match_final(ours, ref, **match_kwargs) if "scores" in ref else None
    return ImageParity(name, compare_stages(ours, ref, tolerances), detections)


def format_report(results: list[ImageParity]) -> str:
    """The per-stage table and the final-detection acceptance of each image, as text."""
    lines = []
    for res in results:
        lines.append(f"== {res.name}")
        lines.append(f"{'stage':14} {'max abs diff':>13} {'mean abs diff':>13} {'max |ref|':>10} {'limit':>9}"
                     "  ok    note")
        for s in res.stages:
            lines.append(f"{s.stage:14} {s.max_abs_diff:13.3g} {s.mean_abs_diff:13.3g} {s.ref_max_abs:10.4g} "
                         f"{s.limit:9.2g}  {'ok  ' if s.ok else 'FAIL'}  {s.note}")
        d = res.detections
        if d is not None:
            lines.append(f"final detections: reference {d.n_ref}, ours {d.n_ours}, matched {d.matched}; "
                         f"min box IoU {d.min_box_iou:.4f}, max score diff {d.max_score_diff:.2e}, "
                         f"min mask IoU {d.min_mask_iou:.4f}, mean mask IoU {d.mean_mask_iou:.4f}  "
                         f"{'ok' if d.ok else 'FAIL'}"
                         + (f"; unmatched reference detections {d.unmatched[:10]}" if d.unmatched else ""))
        lines.append(f"image {'ok' if res.ok else 'FAIL'}")
        lines.append("")
    lines.append(f"ALL {'OK' if all(r.ok for r in results) else 'FAIL'} ({len(results)} images)")
    return "\n".join(lines)


# ---------------------------------------------------------------------- compact reference (CI fixture)
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
