"""Parity with torchvision's maskrcnn_resnet50_fpn (the anchor of correctness).

torchvision's model with seeded random weights (class scores scaled so detections pass 0.05)
is saved with ``state_dict()``, loaded into ``MaskRCNN(TorchvisionConfig())`` through
:func:`maskrcnn.weights.load_weights`, and both run on two real balloon val images (resized to
800x1202 and 800x1199, batched and padded) at 800 px. Every stage must agree to float tolerance and
the final detections one to one. The comparison code is ``benchmarks/parity_report.py``.
"""

from __future__ import annotations

import math

import pytest
import torch


@pytest.fixture(scope="module")
def parity(tmp_path_factory, shared_data, parity_report):
    report = parity_report
    torch.set_num_threads(2)
    tv, ours = report.build_pair(tmp_path_factory.mktemp("parity") / "tv_maskrcnn.pth", seed=0)
    images = report.load_images(report.DEFAULT_IMAGES, shared_data / "balloon" / "val")
    result = report.run_parity(tv, ours, images)
    print(report.format_report(result))
    return result


def test_every_stage_agrees(parity):
    assert len(parity.stages) > 20
    for stage in parity.stages:
        assert math.isfinite(stage.max_abs_diff), f"{stage.stage}: {stage.note}"
        tolerance = 1e-4 * max(1.0, stage.ref_max_abs)
        assert stage.max_abs_diff <= tolerance, f"{stage.stage}: {stage.max_abs_diff} > {tolerance}"
    # the inputs are bit-identical, and so are the features (the same ops in the same order)
    assert parity.stage("input (normalized, resized, padded)").max_abs_diff == 0.0
    assert parity.stage("fpn.p2").ref_max_abs > 1.0


def test_final_detections_match_one_to_one(parity):
    assert len(parity.matches) == 2
    total = 0
    for m in parity.matches:
        assert m.n_ours == m.n_torchvision
        assert m.matched == m.n_torchvision, m
        assert m.min_box_iou >= 0.98 and m.max_score_diff <= 1e-3 and m.min_mask_iou >= 0.95
        total += m.matched
    assert total >= 20  # enough detections for the comparison to mean something
