"""Precision-recall PNGs and metrics JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from eval_fakes import ground_truth_detections
from PIL import Image

from maskrcnn.evaluation.coco_eval import coco_evaluate, dataset_to_coco, detections_to_coco_results
from maskrcnn.evaluation.plots import coco_pr_curve, plot_precision_recall_curve, to_jsonable, write_metrics_json

# pycocotools (<= 2.0.11) decodes RLEs in a way numpy 2 deprecates; not our code.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture
def evals(shapes):
    ids = list(shapes.image_ids)
    # image 0 keeps only its circle: the square is missed -> recall 1 for circles, 1/2 for squares
    dets = [ground_truth_detections(shapes, i, keep=[0] if i == 0 else None) for i in ids]
    metrics, evals = coco_evaluate(dataset_to_coco(shapes), detections_to_coco_results(dets, ids), return_evals=True)
    return metrics, evals


def test_coco_pr_curve_values(evals):
    metrics, ev = evals
    recalls, precisions, ap = coco_pr_curve(ev["segm"], iou=0.5)
    assert recalls.shape == (101,) and recalls[0] == 0.0 and recalls[-1] == 1.0
    # circle: precision 1 at every recall; square: 1 up to recall .5, then 0 -> mean 1 then .5
    np.testing.assert_allclose(precisions[recalls <= 0.5], 1.0)
    np.testing.assert_allclose(precisions[recalls > 0.5], 0.5)
    assert ap == pytest.approx(metrics["segm"]["AP50"])
    _, square, square_ap = coco_pr_curve(ev["segm"], iou=None, category="square")
    assert square_ap == pytest.approx(metrics["per_class"]["segm"]["square"])
    _, none_curve, none_ap = coco_pr_curve(ev["segm"], category="triangle")
    assert none_ap is None and np.isnan(none_curve).all()
    with pytest.raises(ValueError, match="iou 0.42"):
        coco_pr_curve(ev["segm"], iou=0.42)


def test_plot_precision_recall_curve_pngs(evals, tmp_path):
    _, ev = evals
    fig = plot_precision_recall_curve(ev["bbox"], save_path=tmp_path / "pr.png", figsize=(4, 3), dpi=50)
    assert Image.open(tmp_path / "pr.png").size == (200, 150)
    assert len(fig.axes[0].lines) == 3  # IoU .5, .75, .5:.95
    voc = (0.5, np.array([1, 1, 0.5, 0.5, 0.5, 0]), np.array([0, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 1]), None)
    plot_precision_recall_curve(voc, save_path=tmp_path / "sub" / "voc.png", dpi=40)
    assert Image.open(tmp_path / "sub" / "voc.png").size == (240, 200)
    with pytest.raises(ValueError, match="source must be"):
        plot_precision_recall_curve(42)


def test_write_metrics_json_is_strict_json(tmp_path):
    metrics = {"segm": {"AP": np.float64(0.5), "APs": float("nan")}, "per_class": {"a": None},
               "images": np.int64(3), "curve": np.array([1.0, np.inf])}
    path = write_metrics_json(metrics, tmp_path / "m.json")
    text = path.read_text()
    assert json.loads(text) == {"segm": {"AP": 0.5, "APs": None}, "per_class": {"a": None}, "images": 3,
                                "curve": [1.0, None]}
    assert "NaN" not in text and "Infinity" not in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]  # no temp file left
    assert to_jsonable((np.bool_(True), math.inf)) == [True, None]
