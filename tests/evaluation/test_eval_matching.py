"""matterport's matching / VOC AP utilities against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskrcnn.evaluation.matching import (
    _greedy_match,
    compute_ap,
    compute_ap_range,
    compute_iou,
    compute_matches,
    compute_overlaps,
    compute_overlaps_masks,
    compute_recall,
    extract_bboxes,
    trim_zeros,
)


def box_masks(boxes, shape=(60, 60)):
    """H×W×N bool masks filling each (y1, x1, y2, x2) box (y2, x2 exclusive)."""
    masks = np.zeros(shape + (len(boxes),), dtype=bool)
    for i, (y1, x1, y2, x2) in enumerate(boxes):
        masks[y1:y2, x1:x2, i] = True
    return masks


def test_compute_iou_and_overlaps_by_hand():
    # [0,0,10,10] vs [5,5,15,15]: intersection 5*5 = 25, union 100+100-25 = 175.
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 5, 15, 15], [0, 0, 10, 10], [20, 20, 30, 40]])
    iou = compute_iou(a[0], b, 100.0, np.array([100.0, 100.0, 200.0]))
    np.testing.assert_allclose(iou, [25 / 175, 1.0, 0.0])
    ov = compute_overlaps(a, b)
    assert ov.shape == (1, 3)
    np.testing.assert_allclose(ov, [[25 / 175, 1.0, 0.0]])
    np.testing.assert_allclose(compute_overlaps(b, a), ov.T)
    assert compute_overlaps(np.zeros((0, 4)), b).shape == (0, 3)


def test_compute_overlaps_masks_by_hand():
    m1 = box_masks([(0, 0, 10, 10)], (20, 20))
    m2 = box_masks([(5, 5, 15, 15), (10, 10, 20, 20)], (20, 20))
    np.testing.assert_allclose(compute_overlaps_masks(m1, m2), [[25 / 175, 0.0]])
    # float masks are thresholded at 0.5
    np.testing.assert_allclose(compute_overlaps_masks(m1.astype(np.float32) * 0.6, m2), [[25 / 175, 0.0]])
    assert compute_overlaps_masks(m1, np.zeros((20, 20, 0), bool)).shape == (1, 0)
    assert compute_overlaps_masks(np.zeros((20, 20, 0), bool), m2).shape == (0, 2)


def test_trim_zeros_and_extract_bboxes():
    x = np.array([[1, 2, 3, 4], [0, 0, 0, 0], [0, 0, 0, 5]])
    np.testing.assert_array_equal(trim_zeros(x), [[1, 2, 3, 4], [0, 0, 0, 5]])
    mask = np.zeros((10, 12, 3), bool)
    mask[2:5, 3:8, 0] = True  # rows 2..4, cols 3..7
    mask[9, 11, 1] = True  # one corner pixel
    boxes = extract_bboxes(mask)
    assert boxes.dtype == np.int32
    np.testing.assert_array_equal(boxes, [[2, 3, 5, 8], [9, 11, 10, 12], [0, 0, 0, 0]])


# Three ground truths (classes 1, 1, 2) and four predictions, all box-shaped so mask IoU
# equals box IoU:
#   a (0.9): exactly g0, class 1                   -> TP (g0)
#   b (0.8): g0 shifted right by 5, IoU 50/150=1/3  -> FP
#   c (0.7): exactly g2 but class 1 (g2 is 2)       -> FP
#   d (0.6): g1 shifted right by 2, IoU 80/120=2/3  -> TP (g1)
# In score order: tp cumsum 1,1,1,2 -> precisions 1, 1/2, 1/3, 1/2; recalls 1/3,1/3,1/3,2/3.
# Padded: P = [0, 1, .5, 1/3, .5, 0], R = [0, 1/3, 1/3, 1/3, 2/3, 1]; made non-increasing from
# the right: P = [1, 1, .5, .5, .5, 0]. Recall steps at 1/3, 2/3, 1:
# AP = 1/3*1 + 1/3*.5 + 1/3*0 = 0.5.
GT_BOXES = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]])
GT_CLASS_IDS = np.array([1, 1, 2])
PRED_BOXES = np.array([[0, 0, 10, 10], [0, 5, 10, 15], [40, 40, 50, 50], [20, 22, 30, 32]])
PRED_CLASS_IDS = np.array([1, 1, 1, 1])
PRED_SCORES = np.array([0.9, 0.8, 0.7, 0.6])


def shuffled_preds(order=(2, 0, 3, 1)):
    order = np.array(order)
    return PRED_BOXES[order], PRED_CLASS_IDS[order], PRED_SCORES[order], box_masks(PRED_BOXES[order])


@pytest.mark.parametrize("use_masks", [True, False])
def test_compute_ap_hand_case(use_masks):
    boxes, class_ids, scores, masks = shuffled_preds()  # input order must not matter
    gt_masks = box_masks(GT_BOXES) if use_masks else None
    ap, precisions, recalls, overlaps = compute_ap(
        GT_BOXES, GT_CLASS_IDS, gt_masks, boxes, class_ids, scores, masks if use_masks else None
    )
    assert ap == pytest.approx(0.5, rel=1e-6)  # recalls are float32, as in matterport
    np.testing.assert_allclose(precisions, [1, 1, 0.5, 0.5, 0.5, 0])
    np.testing.assert_allclose(recalls, [0, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 1], rtol=1e-6)
    # overlaps rows follow the score order a, b, c, d
    np.testing.assert_allclose(
        overlaps, [[1, 0, 0], [1 / 3, 0, 0], [0, 0, 1], [0, 2 / 3, 0]], rtol=1e-6, atol=1e-12
    )


def test_compute_matches_hand_case():
    boxes, class_ids, scores, masks = shuffled_preds()
    gt_match, pred_match, _ = compute_matches(
        GT_BOXES, GT_CLASS_IDS, box_masks(GT_BOXES), boxes, class_ids, scores, masks
    )
    np.testing.assert_array_equal(pred_match, [0, -1, -1, 1])
    np.testing.assert_array_equal(gt_match, [0, 3, -1])
    # score_threshold is matterport's IoU floor: d's IoU 2/3 < 0.7 -> no candidate
    _, pred_match, _ = compute_matches(
        GT_BOXES, GT_CLASS_IDS, box_masks(GT_BOXES), boxes, class_ids, scores, masks, score_threshold=0.7
    )
    np.testing.assert_array_equal(pred_match, [0, -1, -1, -1])


def test_compute_ap_range_and_stricter_iou():
    # At IoU 0.7, d (IoU 2/3) misses: precisions 1, 1/2, 1/3, 1/4; recalls all 1/3.
    # P = [1, 1, .5, 1/3, .25, 0], R = [0, 1/3, 1/3, 1/3, 1/3, 1] -> AP = 1/3*1 + 2/3*0 = 1/3.
    boxes, class_ids, scores, masks = shuffled_preds()
    gt_masks = box_masks(GT_BOXES)
    ap, precisions, _, _ = compute_ap(GT_BOXES, GT_CLASS_IDS, gt_masks, boxes, class_ids, scores, masks,
                                      iou_threshold=0.7)
    assert ap == pytest.approx(1 / 3)
    np.testing.assert_allclose(precisions, [1, 1, 0.5, 1 / 3, 0.25, 0])
    mean = compute_ap_range(GT_BOXES, GT_CLASS_IDS, gt_masks, boxes, class_ids, scores, masks,
                            iou_thresholds=[0.5, 0.7], verbose=0)
    assert mean == pytest.approx((0.5 + 1 / 3) / 2)


def test_compute_ap_range_default_thresholds_prints(capsys):
    masks = box_masks(GT_BOXES)
    mean = compute_ap_range(GT_BOXES, GT_CLASS_IDS, masks, GT_BOXES, GT_CLASS_IDS, np.array([.9, .8, .7]), masks)
    assert mean == pytest.approx(1.0)
    out = capsys.readouterr().out
    assert "AP @0.50:" in out and "AP @0.95:" in out and "AP @0.50-0.95:" in out


def test_ground_truth_is_matched_once():
    # matterport tested gt_match[j] > 0, so the GT taken by prediction 0 could be taken again.
    gt = np.array([[0, 0, 10, 10]])
    preds = np.array([[0, 0, 10, 10], [0, 0, 10, 10]])
    gt_match, pred_match, _ = compute_matches(gt, np.array([1]), box_masks(gt), preds, np.array([1, 1]),
                                              np.array([0.9, 0.8]), box_masks(preds))
    np.testing.assert_array_equal(pred_match, [0, -1])
    np.testing.assert_array_equal(gt_match, [0])


def test_wrong_class_best_overlap_is_skipped_for_a_same_class_one():
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 16]])  # A (class 2), B (class 1)
    pred = np.array([[0, 0, 10, 11]])  # IoU with A 100/110, with B 110/160
    _, pred_match, ov = compute_matches(gt, np.array([2, 1]), None, pred, np.array([1]), np.array([0.9]), None)
    np.testing.assert_allclose(ov, [[100 / 110, 110 / 160]])
    np.testing.assert_array_equal(pred_match, [1])


def test_no_predictions_and_no_ground_truth():
    ap, precisions, recalls, overlaps = compute_ap(GT_BOXES, GT_CLASS_IDS, box_masks(GT_BOXES),
                                                   np.zeros((0, 4)), np.zeros(0), np.zeros(0),
                                                   np.zeros((60, 60, 0), bool))
    assert ap == 0.0 and overlaps.shape == (0, 3)
    np.testing.assert_allclose(recalls, [0, 1])
    ap, *_ = compute_ap(np.zeros((0, 4)), np.zeros(0), np.zeros((60, 60, 0), bool),
                        PRED_BOXES, PRED_CLASS_IDS, PRED_SCORES, box_masks(PRED_BOXES))
    assert np.isnan(ap)


def test_zero_padding_is_trimmed():
    pad_boxes = np.concatenate([GT_BOXES, np.zeros((2, 4), int)])
    pad_masks = np.concatenate([box_masks(GT_BOXES), np.zeros((60, 60, 2), bool)], axis=-1)
    pad_ids = np.concatenate([GT_CLASS_IDS, [0, 0]])
    ap, *_ = compute_ap(pad_boxes, pad_ids, pad_masks, PRED_BOXES, PRED_CLASS_IDS, PRED_SCORES, box_masks(PRED_BOXES))
    assert ap == pytest.approx(0.5)


def test_compute_recall_by_hand():
    preds = np.array([[0, 0, 10, 10], [0, 0, 10, 11], [45, 45, 55, 55]])
    recall, positive_ids = compute_recall(preds, GT_BOXES, 0.5)
    # preds 0 and 1 both find g0; pred 2 overlaps g2 with IoU 25/175 < 0.5
    assert recall == pytest.approx(1 / 3)
    np.testing.assert_array_equal(positive_ids, [0, 1])


def _matterport_loop(overlaps, gt_class_ids, pred_class_ids, iou_threshold, score_threshold):
    """Direct transcription of matterport's loop (with the gt_match > -1 fix)."""
    pred_match = -1 * np.ones([overlaps.shape[0]])
    gt_match = -1 * np.ones([overlaps.shape[1]])
    for i in range(overlaps.shape[0]):
        sorted_ixs = np.argsort(overlaps[i], kind="stable")[::-1]
        low_score_idx = np.where(overlaps[i, sorted_ixs] < score_threshold)[0]
        if low_score_idx.size > 0:
            sorted_ixs = sorted_ixs[:low_score_idx[0]]
        for j in sorted_ixs:
            if gt_match[j] > -1:
                continue
            if overlaps[i, j] < iou_threshold:
                break
            if pred_class_ids[i] == gt_class_ids[j]:
                gt_match[j] = i
                pred_match[i] = j
                break
    return gt_match, pred_match


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    n_pred=st.integers(0, 7),
    n_gt=st.integers(0, 7),
    seed=st.integers(0, 2**31 - 1),
    iou_threshold=st.sampled_from([0.3, 0.5, 0.75]),
    score_threshold=st.sampled_from([0.0, 0.2]),
)
def test_vectorized_matching_equals_matterport_loop(n_pred, n_gt, seed, iou_threshold, score_threshold):
    rng = np.random.default_rng(seed)
    overlaps = np.round(rng.random((n_pred, n_gt)), 1)  # ties on purpose
    gt_ids = rng.integers(1, 3, n_gt)
    pred_ids = rng.integers(1, 3, n_pred)
    got = _greedy_match(overlaps, gt_ids, pred_ids, iou_threshold, score_threshold)
    want = _matterport_loop(overlaps, gt_ids, pred_ids, iou_threshold, score_threshold)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
