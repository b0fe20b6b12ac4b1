"""COCO bbox/segm AP: perfect predictions, parity with plain pycocotools, empty results, models."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from eval_fakes import FakeModel, ground_truth_detections
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from maskrcnn.errors import DatasetError, MaskRCNNError
from maskrcnn.evaluation.coco_eval import (
    METRIC_NAMES,
    coco_evaluate,
    dataset_to_coco,
    detections_to_coco_results,
    evaluate_model,
    evaluate_voc,
)
from maskrcnn.evaluation.matching import extract_bboxes

# pycocotools (<= 2.0.11) decodes RLEs in a way numpy 2 deprecates; not our code.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def perfect_results(dataset, ids=None, **kwargs):
    ids = list(dataset.image_ids) if ids is None else ids
    return detections_to_coco_results([ground_truth_detections(dataset, i) for i in ids], ids, **kwargs)


def test_perfect_predictions_score_one(shapes):
    metrics = coco_evaluate(dataset_to_coco(shapes), perfect_results(shapes))
    for iou_type in ("bbox", "segm"):
        m = metrics[iou_type]
        assert set(m) == set(METRIC_NAMES)
        assert m["AP"] == pytest.approx(1.0) and m["AP50"] == pytest.approx(1.0) and m["AP75"] == pytest.approx(1.0)
        assert m["AR100"] == pytest.approx(1.0)
        assert m["APs"] == pytest.approx(1.0)  # all objects < 32² px: small
        assert m["APm"] == -1.0 and m["APl"] == -1.0  # pycocotools: no ground truth in range
        assert metrics["per_class"][iou_type] == {"circle": pytest.approx(1.0), "square": pytest.approx(1.0),
                                                  "triangle": None}


def test_perfect_predictions_on_real_coco_masks(coco4):
    """Ground truth built from load_mask of the real annotations (multi-part polygons)."""
    metrics = coco_evaluate(dataset_to_coco(coco4), perfect_results(coco4))
    for iou_type in ("bbox", "segm"):
        assert metrics[iou_type]["AP"] == pytest.approx(1.0)
        per_class = metrics["per_class"][iou_type]
        assert len(per_class) == 80
        assert sum(v is not None for v in per_class.values()) == 11
        assert per_class["car"] == pytest.approx(1.0) and per_class["dog"] is None


def perturbed_detections(dataset, image_id, rng):
    """Ground truth shifted by a few pixels, ~20% dropped, random scores, plus false positives."""
    masks, class_ids = dataset.load_mask(image_id)
    h, w = masks.shape[:2]
    keep = rng.random(len(class_ids)) > 0.2
    out_masks = [np.roll(masks[..., k], tuple(rng.integers(-4, 5, 2)), axis=(0, 1)) for k in np.nonzero(keep)[0]]
    out_ids = list(np.abs(class_ids[keep]))
    for _ in range(2):  # false positives: random rectangles of a present class
        y, x = rng.integers(0, h - 40), rng.integers(0, w - 40)
        m = np.zeros((h, w), bool)
        m[y:y + rng.integers(8, 40), x:x + rng.integers(8, 40)] = True
        out_masks.append(m)
        out_ids.append(rng.choice(np.abs(class_ids)))
    masks = np.stack(out_masks, axis=-1)
    nonempty = masks.any(axis=(0, 1))
    masks = masks[..., nonempty]
    return {"rois": extract_bboxes(masks), "class_ids": np.array(out_ids, np.int32)[nonempty],
            "scores": rng.uniform(0.3, 1.0, masks.shape[-1]).astype(np.float32), "masks": masks}


def test_equals_plain_pycocotools_on_real_coco(coco4, shared_data, tmp_path):
    """Our numbers == COCOeval run by hand on the same GT json + results json."""
    gt_path = shared_data / "coco_val2017_4img" / "annotations.json"
    rng = np.random.default_rng(0)
    ids = list(coco4.image_ids)
    dets = [perturbed_detections(coco4, i, rng) for i in ids]
    results = detections_to_coco_results(dets, ids, dataset=coco4)  # COCO image + category ids
    res_path = tmp_path / "results.json"
    res_path.write_text(json.dumps(results))

    ours = coco_evaluate(str(gt_path), str(res_path))

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        by_hand = {}
        for iou_type in ("bbox", "segm"):
            if iou_type == "bbox":
                coco_dt = coco_gt.loadRes(str(res_path))
            else:  # documented convention: segm areas from the masks, so drop "bbox"
                dts = json.loads(res_path.read_text())
                for d in dts:
                    d.pop("bbox")
                coco_dt = coco_gt.loadRes(dts)
            ev = COCOeval(coco_gt, coco_dt, iou_type)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            by_hand[iou_type] = ev
    for iou_type in ("bbox", "segm"):
        stats = [ours[iou_type][name] for name in METRIC_NAMES]
        assert stats == [float(s) for s in by_hand[iou_type].stats]  # exactly
        assert 0.2 < ours[iou_type]["AP"] < 0.95  # a real, imperfect score
        precision = by_hand[iou_type].eval["precision"]
        k = by_hand[iou_type].params.catIds.index(3)  # car
        p = precision[:, :, k, 0, -1]
        assert ours["per_class"][iou_type]["car"] == float(np.mean(p[p > -1]))
        assert ours["per_class"][iou_type]["dog"] is None
    # our in-memory COCO of the same file and our list of results give the same numbers
    again = coco_evaluate(coco_gt, results, iou_types=("segm",))
    assert set(again) == {"segm", "per_class"}
    assert again["segm"] == ours["segm"]


def test_empty_results_score_zero(shapes):
    coco_gt = dataset_to_coco(shapes)
    metrics = coco_evaluate(coco_gt, [])
    for iou_type in ("bbox", "segm"):
        assert metrics[iou_type]["AP"] == 0.0 and metrics[iou_type]["AR100"] == 0.0
        assert metrics["per_class"][iou_type] == {"circle": 0.0, "square": 0.0, "triangle": None}
    # box-only results: segm sees no detections, bbox scores them
    box_only = [{k: v for k, v in d.items() if k != "segmentation"} for d in perfect_results(shapes)]
    metrics = coco_evaluate(coco_gt, box_only)
    assert metrics["bbox"]["AP"] == pytest.approx(1.0) and metrics["segm"]["AP"] == 0.0


def test_coco_evaluate_names_bad_input(shapes, tmp_path):
    coco_gt = dataset_to_coco(shapes, image_ids=[0])
    with pytest.raises(DatasetError, match="image_id 1 is not an image of the ground truth"):
        coco_evaluate(coco_gt, perfect_results(shapes, [1]))
    wrong_size = perfect_results(shapes, [0])
    wrong_size[0]["segmentation"]["size"] = [20, 50]
    with pytest.raises(DatasetError, match=r"mask size \[20, 50\] but the image is 40x50"):
        coco_evaluate(coco_gt, wrong_size, iou_types="segm")
    with pytest.raises(MaskRCNNError, match="iou_types"):
        coco_evaluate(coco_gt, [], iou_types=("keypoints",))
    with pytest.raises(DatasetError, match="not found"):
        coco_evaluate(coco_gt, tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DatasetError, match="bad.json is not readable JSON"):
        coco_evaluate(coco_gt, tmp_path / "bad.json")


def test_evaluate_model_perfect_and_padded_batches(shapes, tmp_path):
    model = FakeModel(lambda i: ground_truth_detections(shapes, i))
    metrics = evaluate_model(model, shapes, batch_size=2, progress=False, results_path=tmp_path / "r.json")
    assert model.batches == [2, 2]  # 3 images, last batch padded
    assert metrics["images"] == 3 and metrics["detections"] == 4
    assert metrics["bbox"]["AP"] == pytest.approx(1.0) and metrics["segm"]["AP"] == pytest.approx(1.0)
    assert len(json.loads((tmp_path / "r.json").read_text())) == 4
    metrics = evaluate_model(model, shapes, image_ids=[1, 0], limit=1, progress=False)
    assert metrics["images"] == 1 and metrics["detections"] == 2


def test_evaluate_model_without_detections(shapes):
    model = FakeModel(lambda i: ground_truth_detections(shapes, 2))  # empty result for every image
    metrics, evals = evaluate_model(model, shapes, progress=False, return_evals=True)
    assert metrics["detections"] == 0
    assert metrics["segm"]["AP"] == 0.0 and metrics["bbox"]["AP"] == 0.0
    assert set(evals) == {"bbox", "segm"}


def test_evaluate_model_names_wrong_mask_size(shapes):
    def answer(i):
        r = ground_truth_detections(shapes, i)
        r["masks"] = r["masks"][:20]
        return r

    with pytest.raises(MaskRCNNError, match=r"image 0: masks are \(20, 50\) but the image is \(40, 50\)"):
        evaluate_model(FakeModel(answer), shapes, progress=False)


def test_evaluate_voc_by_hand(shapes):
    perfect = evaluate_voc(FakeModel(lambda i: ground_truth_detections(shapes, i)), shapes, shapes.image_ids)
    assert perfect == {"mAP_box": 1.0, "mAP_mask": 1.0, "iou": 0.5, "images": 2, "skipped": 1}
    # image 0: only the circle of 2 objects -> precision [1], recall [.5]: AP = .5*1 + .5*0 = .5;
    # image 1: perfect (the crowd is not ground truth) -> 1. Mean .75; image 2 skipped.
    half = FakeModel(lambda i: ground_truth_detections(shapes, i, keep=[0] if i == 0 else None))
    got = evaluate_voc(half, shapes, [0, 1, 2], iou=0.5)
    assert got["mAP_mask"] == pytest.approx(0.75) and got["mAP_box"] == pytest.approx(0.75)
    assert got["images"] == 2 and got["skipped"] == 1
