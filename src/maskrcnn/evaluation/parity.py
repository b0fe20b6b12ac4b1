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

The reference may be reduced (the committed CI fixture, :func:`.parity_compact.compact_reference`):
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
from .parity_compact import masks_to_rle, own_class_masks, rle_from_arrays
from .parity_boundary import (boundary_detections, detection_rows, edge_sensitive_rois, in_padding,
                              mask_edge_detections, overlapping)

__all__ = ["DEFAULT_TOLERANCES", "STAGES", "Tolerance", "StageResult", "DetectionMatch", "ImageParity", "pair_rows",
           "compare_stages", "match_final", "compare_image", "format_report", "masks_to_rle", "own_class_masks",
           "rle_from_arrays"]

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


#: float32 on both sides, different libraries (TF vs PyTorch): per-stage limits. Features get relative
#: limits; probabilities and normalized coordinates absolute ones (1e-4 of a 1024 image is 0.1 px).
#: The head outputs amplify upstream float noise (seen with a correct port: proposals within 6e-6,
#: one classifier probability 1.3e-4 off), so the class/box/mask heads get 1e-3, the final score
#: limit of :func:`match_final`. Pass ``tolerances=`` to change any of them.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "molded_image": Tolerance(1e-3),
    "anchors": Tolerance(1e-6),
    **{k: Tolerance(1e-4, 1e-3) for k in FPN_KEYS},
    "rpn_class": Tolerance(2e-4),
    "rpn_bbox": Tolerance(1e-4, 1e-3),
    "proposals": Tolerance(1e-4),
    "mrcnn_class": Tolerance(1e-3),
    "mrcnn_bbox": Tolerance(1e-3, 1e-3),
    "detections": Tolerance(5e-4),
    "mrcnn_mask": Tolerance(2e-3),   # the fixture stores these as float16 (2.4e-4 rounding)
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
    excused_ref: list[int] = field(default_factory=list)   # unmatched, but from edge-sensitive ROIs
    excused_ours: list[int] = field(default_factory=list)  # ours without a partner, edge-sensitive
    excused_masks: list[int] = field(default_factory=list)  # matched, mask differs, mask crop edge-sensitive


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

    Rows equal within ``limit`` (max abs over the row) at the same index stay paired; then each
    other reference row takes the nearest unused row within ``limit``; the rest take, in reference
    order, the nearest unused row (greedy). Returns ``pairs`` [n]
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
    for within in (True, False):
        for i in np.nonzero(pairs < 0)[0]:
            free = np.nonzero(~used)[0]
            if not free.size:
                break
            dist = np.abs(ours[free] - ref[i]).max(axis=1)
            best = int(np.argmin(dist))
            if within and dist[best] > limit:
                continue
            j = free[best]
            pairs[i], used[j] = j, True
            moved += int(j != i)
    return pairs, moved


def _row_stage(name: str, ours: np.ndarray, ref: np.ndarray, tol: Tolerance,
               excused: np.ndarray | None = None) -> tuple[StageResult, np.ndarray]:
    """A [1, n, k] stage whose rows may be permuted: compared on :func:`pair_rows`' pairs.

    ``excused`` [n] bool: reference rows left out of the verdict when they have no partner.
    Returns the result and ``pairs`` [n] (-1 for a row without a partner within the limit).
    """
    o, r = np.asarray(ours)[0], np.asarray(ref)[0]
    if o.ndim != 2 or o.shape[1] != r.shape[1]:
        return _stat(name, ours, ref, tol), np.full(len(r), -1, np.int64)
    limit = tol.limit(float(np.abs(r).max()) if r.size else 0.0)
    pairs, moved = pair_rows(o.astype(np.float64), r.astype(np.float64), limit)
    if (pairs < 0).any():
        return _stat(name, ours, ref, tol, f"ours has {len(o)} rows"), pairs
    note = f"{moved} of {len(r)} rows in another order" if moved else ""
    far = np.abs(o[pairs] - r).max(axis=1) > limit
    keep = np.ones(len(r), bool)
    if far.any():
        note = "; ".join(x for x in (note, f"{int(far.sum())} rows without a partner within the limit") if x)
        if excused is not None and (far & excused[:len(r)]).any():
            keep = ~(far & excused[:len(r)])
            note += f" ({int((~keep).sum())} of them boundary cases, left out)"
    if len(o) != len(r):
        note = "; ".join(x for x in (note, f"first {len(r)} of {len(o)} rows") if x)
    return _stat(name, o[pairs][keep][None], r[keep][None], tol, note), np.where(far, -1, pairs)


def _detections_stage(ours: np.ndarray, ref: np.ndarray, tol: Tolerance, excused_ref: set[int] | None,
                      excused_ours: set[int] | None) -> tuple[StageResult, np.ndarray]:
    """``detections`` [1, D, 6]: the non-zero rows (a prefix; matterport zero-pads the rest) paired
    one to one (:func:`pair_rows`); a detection of either side without a partner within the limit
    fails the stage unless it is in ``excused_ref`` / ``excused_ours`` (edge flips)."""
    o, r = np.asarray(ours, np.float64)[0], np.asarray(ref, np.float64)[0]
    if o.ndim != 2 or o.shape[1:] != r.shape[1:]:
        return _stat("detections", ours, ref, tol), np.full(len(r), -1, np.int64)
    no, nr = int((o[:, 4] > 0).sum()), int((r[:, 4] > 0).sum())
    limit = tol.limit(float(np.abs(r).max()) if r.size else 0.0)
    pairs, moved = pair_rows(o[:no], r[:nr], limit)
    near = pairs >= 0
    near[near] = np.abs(o[pairs[near]] - r[:nr][near]).max(axis=1) <= limit
    pairs = np.where(near, pairs, -1)
    lone_ref = [i for i in range(nr) if not near[i]]
    lone_ours = sorted(set(range(no)) - set(pairs[near].tolist()))
    notes = [f"{moved} of {nr} rows in another order"] if moved else []
    if lone_ref or lone_ours:
        notes.append(f"without a partner within the limit: reference rows {lone_ref[:10]}, ours {lone_ours[:10]}")
    unexcused = [i for i in lone_ref if excused_ref is None or i not in excused_ref] + \
                [j for j in lone_ours if excused_ours is None or j not in excused_ours]
    if (lone_ref or lone_ours) and excused_ref is not None and len(unexcused) < len(lone_ref) + len(lone_ours):
        notes.append(f"{len(lone_ref) + len(lone_ours) - len(unexcused)} of them boundary cases, left out")
    res = _stat("detections", o[pairs[near]][None], r[:nr][near][None], tol, "; ".join(notes))
    if unexcused:
        res.ok = False
    return res, np.concatenate([pairs, np.full(len(r) - nr, -1, np.int64)])


def compare_stages(ours: dict, ref: dict, tolerances: dict[str, Tolerance] | None = None, *,
                   edge_flips_ok: bool = False) -> list[StageResult]:
    """Every stage present in ``ref``, in :data:`STAGES` order (a stage ``ours`` lacks fails).

    ``edge_flips_ok``: rows over the limit that come from edge-sensitive ROIs
    (:mod:`.parity_edges`) are left out of the verdict (and counted in the note).
    """
    tols = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    edge_rois = edge_sensitive_rois(ref)
    edge_dets = boundary_detections(ref, ref, edge_rois)
    mask_edges = mask_edge_detections(ref)
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
            padding = in_padding(ref) if edge_flips_ok else None
            res, pairs = _row_stage("proposals", ours["proposals"], ref["proposals"], tols["proposals"], padding)
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
        rows = pairs[:n] if pairs is not None and len(pairs) >= n else np.arange(n)
        note = "on the paired proposals" if pairs is not None and not np.array_equal(rows, np.arange(n)) else ""
        ref_idx = np.nonzero(rows >= 0)[0]   # proposals without a partner: nothing to compare with
        if len(ref_idx) < n:
            note = "; ".join(x for x in (note, f"{n - len(ref_idx)} rows left out (their proposals differ)") if x)
            r, rows = r[:, ref_idx], rows[ref_idx]
        if n != o.shape[1]:
            note = "; ".join(x for x in (note, f"first {n} proposals") if x)
        got = o[:, rows] if rows.max(initial=-1) < o.shape[1] else o
        if got.shape == r.shape and edge_rois is not None:
            axes = tuple(range(2, r.ndim))
            bad = np.abs(got.astype(np.float64) - r).max(axis=axes)[0] > tols[key].limit(float(np.abs(r).max()))
            flips = bad & edge_rois[ref_idx]
            if bad.any():
                note = "; ".join(x for x in (note, f"{int(bad.sum())} rows over the limit, {int(flips.sum())} "
                                                   "of them on edge-sensitive boxes") if x)
            if edge_flips_ok and flips.any():
                got, r = got[:, ~flips], r[:, ~flips]
                note += " (left out)"
        out.append(_stat(key, got, r, tols[key], note))
    det_pairs, ref_edge = None, None
    if "detections" in ref:
        if "detections" in ours:
            ours_edge = None
            if edge_flips_ok:  # the final check's excuses, NMS cascades included, on the detection rows
                ours_edge = boundary_detections(ours, ref, edge_sensitive_rois(ours, ref)) or set()
                ref_edge = set(edge_dets or ())
                o_rows, r_rows = detection_rows(ours["detections"]), detection_rows(ref["detections"])
                ours_edge |= overlapping(o_rows, r_rows, ref_edge)
                ref_edge |= overlapping(r_rows, o_rows, ours_edge)
            res, det_pairs = _detections_stage(ours["detections"], ref["detections"], tols["detections"],
                                               ref_edge, ours_edge)
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
            rows = det_pairs[:n] if det_pairs is not None and len(det_pairs) >= n else np.arange(n)
            cls = np.asarray(ref["detections"])[0, :n, 4].astype(int)
            # only detections with a partner of the same class (the others fail the detections stage)
            keep = (rows >= 0) & (rows < len(o_mask))
            keep[keep] = o_det[rows[keep], 4] == cls[keep]
            note = "own class of each detection"
            if not keep.all():
                note += f"; {int((~keep).sum())} of {n} detections without a partner (see detections)"
            got = o_mask[rows[keep], :, :, cls[keep]]
            bad = np.abs(got - r[keep]).max(axis=(1, 2)) > tol.limit(1.0) if len(got) == keep.sum() else None
            flips = np.zeros(n, bool)
            if bad is not None and bad.any():
                flips[np.nonzero(keep)[0][bad]] = [i in mask_edges for i in np.nonzero(keep)[0][bad]]
                note += f"; {int(bad.sum())} masks over the limit, {int(flips.sum())} of them edge-sensitive crops"
                if edge_flips_ok and flips.any():
                    keep &= ~flips
                    got = o_mask[rows[keep], :, :, cls[keep]]
                    note += " (left out)"
            res = _stat("mrcnn_mask", got, r[keep], tol, note)
            lost = set(np.nonzero(~keep & ~flips)[0].tolist())
            excused = ref_edge if ref_edge is not None else edge_dets
            res.ok = res.ok and (not lost or (edge_flips_ok and excused is not None and lost <= excused))
            out.append(res)
    return out


# ---------------------------------------------------------------------- final detections
def _rles(result: dict) -> list[dict]:
    if "masks_rle" in result:
        return rle_from_arrays(result["masks_rle"], result["masks_rle_offsets"], result["image_shape"])
    return masks_to_rle(result["masks"])


def match_final(ours: dict, ref: dict, *, min_box_iou: float = 0.95, max_score_diff: float = 1e-3,
                min_mask_iou: float = 0.95, min_mean_mask_iou: float = 0.98, excuse_ref=(),
                excuse_ours=(), excuse_masks=()) -> DetectionMatch:
    """One-to-one matching of final detections; ``ok`` = same count and every one matched.

    For each reference detection (in its order) the unused detection of ours with the same class
    and the highest box IoU (integer boxes, matterport's ``compute_overlaps``) is its partner when
    box IoU >= ``min_box_iou``, |score difference| <= ``max_score_diff`` and mask IoU >=
    ``min_mask_iou``; over all pairs the mean mask IoU must reach ``min_mean_mask_iou``.
    Unmatched detections listed in ``excuse_ref`` / ``excuse_ours`` (indices) do not fail it; a
    reference detection in ``excuse_masks`` matches on class, box and score alone (its mask IoU is
    reported in ``excused_masks`` and left out of the mask statistics when below the limit).
    """
    from pycocotools import mask as coco_mask

    n_ref, n_ours = len(ref["scores"]), len(ours["scores"])
    if n_ref == 0 or n_ours == 0:
        ok = n_ref == n_ours
        return DetectionMatch(n_ref, n_ours, 0, 1.0 if ok else 0.0, 0.0, 1.0 if ok else 0.0, 1.0 if ok else 0.0,
                              list(range(n_ref)), ok)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = compute_overlaps(np.asarray(ref["rois"], np.float64), np.asarray(ours["rois"], np.float64))
    # two empty boxes: IoU 1 when they are the same box, else 0 (compute_overlaps gives 0/0)
    same_box = (np.asarray(ref["rois"])[:, None, :] == np.asarray(ours["rois"])[None, :, :]).all(axis=2)
    iou = np.where(np.isnan(iou), same_box.astype(np.float64), iou)
    same_class = np.asarray(ref["class_ids"])[:, None] == np.asarray(ours["class_ids"])[None, :]
    iou = np.where(same_class, iou, -1.0)
    ref_rle, ours_rle = _rles(ref), _rles(ours)
    used = np.zeros(n_ours, bool)
    box_ious, score_diffs, mask_ious, unmatched, excused_masks = [], [], [], [], []
    for i in range(n_ref):
        candidates = np.where(used, -2.0, iou[i])
        j = int(np.argmax(candidates))
        if candidates[j] < min_box_iou:
            unmatched.append(i)
            continue
        score_diff = abs(float(ref["scores"][i]) - float(ours["scores"][j]))
        if coco_mask.area(ref_rle[i]) == 0 and coco_mask.area(ours_rle[j]) == 0:
            mask_iou = 1.0   # both empty (a box clipped to a line at the window edge): the same mask
        else:
            mask_iou = float(coco_mask.iou([ours_rle[j]], [ref_rle[i]], [0])[0, 0])
        mask_excused = mask_iou < min_mask_iou and i in set(excuse_masks)
        if score_diff > max_score_diff or (mask_iou < min_mask_iou and not mask_excused):
            unmatched.append(i)
            continue
        used[j] = True
        box_ious.append(float(candidates[j]))
        score_diffs.append(score_diff)
        if mask_excused:
            excused_masks.append(i)
        else:
            mask_ious.append(mask_iou)
    mean_mask = float(np.mean(mask_ious)) if mask_ious else 0.0
    matched = len(box_ious)
    excused_ref = [i for i in unmatched if i in set(excuse_ref)]
    excused_ours = [j for j in np.nonzero(~used)[0].tolist() if j in set(excuse_ours)]
    ok = (n_ref - len(excused_ref) == n_ours - len(excused_ours) == matched and mean_mask >= min_mean_mask_iou)
    return DetectionMatch(n_ref, n_ours, matched, min(box_ious, default=0.0), max(score_diffs, default=0.0),
                          min(mask_ious, default=0.0), mean_mask, unmatched, ok, excused_ref, excused_ours,
                          excused_masks)


def compare_image(ours: dict, ref: dict, *, name: str = "", tolerances: dict[str, Tolerance] | None = None,
                  edge_flips_ok: bool = False, **match_kwargs) -> ImageParity:
    """Stages and final detections of one image (final detections only when ``ref`` has ``scores``).

    ``edge_flips_ok``: a detection found on one side only passes when it comes from an
    edge-sensitive ROI (:mod:`.parity_edges`: matterport's ROI pooling flips there on a last-bit
    difference of the proposal) or lies wholly in the padding (a zero-height/width box on the
    window's edge: near-tied scores over constant padding, decided by float noise); a mask may
    differ when its 14×14 crop is edge-sensitive. The report lists them either way.
    """
    detections = None
    if "scores" in ref:
        if edge_flips_ok:
            ex_ref = boundary_detections(ref, ref, edge_sensitive_rois(ref)) or set()
            ex_ours = boundary_detections(ours, ref, edge_sensitive_rois(ours, ref)) or set()
            # NMS cascades: a detection that overlaps (same class, IoU > 0.3, matterport's
            # DETECTION_NMS_THRESHOLD) an excused one of the other side may have been suppressed by it there
            ex_ours |= overlapping(ours, ref, ex_ref)
            ex_ref |= overlapping(ref, ours, ex_ours)
            match_kwargs.setdefault("excuse_ref", ex_ref)
            match_kwargs.setdefault("excuse_ours", ex_ours)
            match_kwargs.setdefault("excuse_masks", mask_edge_detections(ref))
        detections = match_final(ours, ref, **match_kwargs)
    return ImageParity(name, compare_stages(ours, ref, tolerances, edge_flips_ok=edge_flips_ok), detections)


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
                         + (f"; unmatched reference detections {d.unmatched[:10]}" if d.unmatched else "")
                         + (f"; boundary cases excused: reference {d.excused_ref}, ours {d.excused_ours}"
                            if d.excused_ref or d.excused_ours else "")
                         + (f"; masks excused (edge-sensitive crop): {d.excused_masks}" if d.excused_masks else ""))
        lines.append(f"image {'ok' if res.ok else 'FAIL'}")
        lines.append("")
    lines.append(f"ALL {'OK' if all(r.ok for r in results) else 'FAIL'} ({len(results)} images)")
    return "\n".join(lines)
