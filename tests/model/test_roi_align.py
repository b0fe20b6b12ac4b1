"""PyramidRoIAlign: level assignment by hand, equality with torchvision's MultiScaleRoIAlign."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign, roi_align

from maskrcnn.model.roi_align import PyramidRoIAlign, assign_levels, boxes_to_rois, infer_scale


def _features(batch: int, channels: int, height: int, width: int) -> OrderedDict:
    return OrderedDict(
        (f"p{level}", torch.randn(batch, channels, height // 2**level, width // 2**level)) for level in range(2, 7)
    )


def _random_boxes(count: int, height: int, width: int) -> torch.Tensor:
    # Side lengths log-uniform over 4..600 px from the top-left quarter: every level P2..P5 is used.
    sides = torch.exp(torch.empty(count, 2).uniform_(1.4, 6.4))
    x1y1 = torch.rand(count, 2) * torch.tensor([width, height]) * 0.25
    x2y2 = torch.minimum(x1y1 + sides, torch.tensor([float(width), float(height)]))
    return torch.cat([x1y1, x2y2], dim=1)


def test_infer_scale_rounds_log2():
    assert infer_scale(200, 800) == 0.25
    assert infer_scale(25, 800) == 1 / 32
    assert infer_scale(13, 800) == 1 / 64  # log2(0.01625) = -5.94 -> -6
    assert infer_scale(208, 800) == 0.25  # padded feature maps are a bit larger


def test_assign_levels_by_hand():
    # sqrt(area) 224 -> level 4; 112 -> 3; 448 -> 5; 56 -> 2; tiny -> clamped to 2; huge -> clamped to 5.
    sides = torch.tensor([224.0, 112.0, 448.0, 56.0, 10.0, 2000.0, 223.0, 111.0])
    boxes = torch.stack([torch.zeros(8), torch.zeros(8), sides, sides], dim=1)
    levels = assign_levels(boxes, k_min=2, k_max=5)
    assert levels.tolist() == [2, 1, 3, 0, 0, 3, 1, 0]
    assert levels.dtype == torch.int64
    # Non-square box: the geometric mean of the sides decides (112 x 448 -> sqrt(area) 224 -> level 4).
    assert assign_levels(torch.tensor([[0.0, 0.0, 112.0, 448.0]]), k_min=2, k_max=5).tolist() == [2]


def test_boxes_to_rois_prefixes_image_index():
    rois = boxes_to_rois([torch.tensor([[1.0, 2, 3, 4]]), torch.zeros(0, 4), torch.tensor([[5.0, 6, 7, 8]] * 2)])
    assert rois.tolist() == [[0, 1, 2, 3, 4], [2, 5, 6, 7, 8], [2, 5, 6, 7, 8]]


@pytest.mark.parametrize("output_size", [7, 14])
def test_equals_torchvision_multiscale_roi_align(output_size):
    height, width = 512, 640
    features = _features(2, 4, height, width)
    image_sizes = [(500, 640), (512, 600)]
    one_per_level = torch.tensor([[0.0, 0, 40, 40], [5, 5, 155, 155], [10, 20, 310, 320], [4, 2, 484, 482]])
    boxes = [torch.cat([_random_boxes(56, *image_sizes[0]), one_per_level]), _random_boxes(45, *image_sizes[1])]
    ours = PyramidRoIAlign(output_size=output_size, sampling_ratio=2, aligned=False)
    theirs = MultiScaleRoIAlign(["p2", "p3", "p4", "p5"], output_size, 2)
    expected = theirs(features, boxes, image_sizes)
    result = ours(features, boxes, image_sizes)
    assert result.shape == (105, 4, output_size, output_size)
    assert torch.equal(result, expected)
    # Every level was exercised.
    levels = assign_levels(torch.cat(boxes), k_min=2, k_max=5)
    assert set(levels.tolist()) == {0, 1, 2, 3}


def test_uses_only_named_maps_and_single_level():
    features = _features(1, 3, 128, 128)
    boxes = [_random_boxes(10, 128, 128)]
    pool = PyramidRoIAlign(featmap_names=("p3",), output_size=5, sampling_ratio=2, aligned=False)
    expected = roi_align(features["p3"], boxes_to_rois(boxes), (5, 5), spatial_scale=1 / 8, sampling_ratio=2)
    assert torch.equal(pool(features, boxes, [(128, 128)]), expected)


def test_aligned_passes_through():
    features = _features(1, 3, 128, 128)
    boxes = [torch.tensor([[10.0, 12.0, 40.0, 50.0]])]  # sqrt(area) ~ 34 -> P2 (scale 1/4)
    pool = PyramidRoIAlign(output_size=7, sampling_ratio=2, aligned=True)
    expected = roi_align(features["p2"], boxes_to_rois(boxes), (7, 7), 0.25, 2, aligned=True)
    not_aligned = roi_align(features["p2"], boxes_to_rois(boxes), (7, 7), 0.25, 2, aligned=False)
    result = pool(features, boxes, [(128, 128)])
    assert torch.equal(result, expected)
    assert not torch.allclose(result, not_aligned)


def test_empty_boxes_and_missing_map():
    features = _features(2, 4, 64, 64)
    pool = PyramidRoIAlign(output_size=7, sampling_ratio=2, aligned=False)
    out = pool(features, [torch.zeros(0, 4), torch.zeros(0, 4)], [(64, 64), (64, 64)])
    assert out.shape == (0, 4, 7, 7)
    del features["p4"]
    with pytest.raises(KeyError, match="p4"):
        pool(features, [torch.zeros(1, 4)], [(64, 64)])
