"""roi_align_dense: torchvision's RoIAlign (values and gradients) as matrix products; when PyramidRoIAlign uses it."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import roi_align

from maskrcnn.model import roi_align as pyramid
from maskrcnn.model.roi_align import PyramidRoIAlign
from maskrcnn.model.roi_align_dense import axis_weights, dense_is_cheap, roi_align_dense


def _rois(count: int, height: int, width: int, scale: float, images: int) -> torch.Tensor:
    """Boxes in image pixels over and beyond the map, plus one wholly outside and one of zero size."""
    generator = torch.Generator().manual_seed(0)
    xy = torch.rand(count, 2, generator=generator) * torch.tensor([width / scale, height / scale]) * 1.2 - 8
    wh = torch.rand(count, 2, generator=generator) * 40
    index = torch.randint(0, images, (count, 1), generator=generator)
    rois = torch.cat([index.double(), xy.double(), (xy + wh).double()], dim=1)
    rois[0, 1:] = torch.tensor([-20.0, -20.0, -10.0, -10.0])
    rois[1, 1:] = torch.tensor([5.0, 5.0, 5.0, 5.0])
    return rois


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("height,width,size,scale", [(16, 16, 7, 0.25), (16, 16, 14, 0.25), (8, 12, 7, 0.125),
                                                     (1, 1, 7, 1 / 64)])
def test_equals_torchvision_values_and_gradients(aligned, height, width, size, scale):
    feature = torch.randn(3, 5, height, width, dtype=torch.float64, requires_grad=True)
    rois = _rois(40, height, width, scale, images=3)
    expected = roi_align(feature, rois, (size, size), scale, 2, aligned)
    result = roi_align_dense(feature, rois, (size, size), scale, 2, aligned)
    assert result.shape == (40, 5, size, size) and result.is_contiguous()
    torch.testing.assert_close(result, expected, rtol=0, atol=1e-12)
    upstream = torch.randn_like(expected)
    (grad_expected,) = torch.autograd.grad(expected, feature, upstream)
    (grad_result,) = torch.autograd.grad(result, feature, upstream)
    torch.testing.assert_close(grad_result, grad_expected, rtol=0, atol=1e-12)


def test_axis_weights_by_hand():
    # One bin over [0, 2) of a 4-cell axis, 2 samples at 0.5 (half on cells 0, 1) and 1.5 (half on 1, 2).
    weights = axis_weights(torch.tensor([0.0]), torch.tensor([2.0]), bins=1, grid=2, size=4)
    assert weights.tolist() == [[[0.25, 0.5, 0.25, 0.0]]]
    # Samples past the last cell clamp onto it; beyond size they count zero (torchvision's rule).
    weights = axis_weights(torch.tensor([3.0]), torch.tensor([2.0]), bins=1, grid=2, size=4)
    assert weights.tolist() == [[[0.0, 0.0, 0.0, 0.5]]]  # 3.5 -> cell 3; 4.5 > 4 -> 0


def test_needs_fixed_sampling_ratio_and_small_maps():
    feature = torch.zeros(1, 4, 16, 16)
    rois = torch.zeros(10, 5)
    assert dense_is_cheap(feature, rois, 2)
    assert not dense_is_cheap(feature, rois, 0)  # adaptive grid: torchvision's kernel
    assert not dense_is_cheap(torch.zeros(1, 4, 64, 64), rois, 2)  # large map
    assert not dense_is_cheap(torch.zeros(1, 256, 32, 32), torch.zeros(100, 5), 2)  # too much to gather
    with pytest.raises(ValueError, match="sampling_ratio"):
        roi_align_dense(feature, rois, (7, 7), 0.25, 0, False)


def test_pyramid_uses_dense_in_training_only(monkeypatch):
    calls = []
    real = pyramid.roi_align_dense
    monkeypatch.setattr(pyramid, "roi_align_dense", lambda *a, **k: calls.append(1) or real(*a, **k))
    features = {f"p{k}": torch.randn(2, 4, 64 // 2**k, 64 // 2**k) for k in range(2, 6)}
    boxes = [torch.tensor([[4.0, 4.0, 30.0, 28.0], [10.0, 0.0, 60.0, 50.0]]), torch.tensor([[0.0, 0.0, 16.0, 16.0]])]
    pool = PyramidRoIAlign(output_size=7, sampling_ratio=2, aligned=False)
    inference = pool(features, boxes, [(64, 64)] * 2)  # no grad needed: torchvision's kernel, bit-identical
    assert calls == []
    trained = {k: v.requires_grad_() for k, v in features.items()}
    result = pool(trained, boxes, [(64, 64)] * 2)
    assert calls and result.requires_grad
    torch.testing.assert_close(result, inference, rtol=0, atol=1e-5)
    monkeypatch.setattr(pyramid, "DENSE_TRAINING", False)
    calls.clear()
    assert torch.equal(pool(trained, boxes, [(64, 64)] * 2), inference)
    assert calls == []
