"""paste_masks: equal to torchvision's paste_masks_in_image and to a naive per-mask loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection.roi_heads import paste_masks_in_image

from maskrcnn.model import postprocess
from maskrcnn.model.postprocess import bilinear_weights, expand_boxes, paste_masks


def naive_paste(masks: torch.Tensor, boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """One interpolate and one canvas per mask (torchvision's recipe, safe for boxes outside the image)."""
    m = masks.shape[-1]
    padded = F.pad(masks, (1, 1, 1, 1))
    int_boxes = expand_boxes(boxes, (m + 2) / m).to(torch.int64).tolist()
    out = torch.zeros(len(masks), height, width)
    for i, (x1, y1, x2, y2) in enumerate(int_boxes):
        w, h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        resized = F.interpolate(padded[i][None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        for y in range(max(y1, 0), min(y2 + 1, height)):
            xs = range(max(x1, 0), min(x2 + 1, width))
            if len(xs):
                out[i, y, xs.start:xs.stop] = resized[y - y1, xs.start - x1:xs.stop - x1]
    return out


def _boxes(count: int, height: int, width: int, *, max_side: float = 120.0) -> torch.Tensor:
    centers = torch.rand(count, 2) * torch.tensor([width, height])
    sides = torch.rand(count, 2) * max_side + 0.1
    sides[: count // 5] = torch.rand(count // 5, 2) * 3  # tiny boxes
    return torch.cat([centers - sides / 2, centers + sides / 2], dim=1)


@pytest.mark.parametrize("size", [(97, 131), (40, 30)])
def test_equals_torchvision_paste_masks_in_image(size):
    height, width = size
    masks = torch.rand(40, 28, 28)
    boxes = _boxes(40, height, width)
    assert (boxes[:, :2] < 0).any() and (boxes[:, 2] > width).any()  # some boxes stick out of the image
    expected = paste_masks_in_image(masks[:, None], boxes, (height, width))[:, 0]
    result = paste_masks(masks, boxes, (height, width))
    assert result.shape == (40, height, width) and result.dtype == torch.float32
    assert (result - expected).abs().max() <= 1e-5
    assert torch.all(result[expected == 0] == 0)  # exact zeros wherever torchvision pastes nothing


def test_equals_naive_loop_including_boxes_outside_the_image(monkeypatch):
    height, width = 50, 70
    masks = torch.rand(12, 14, 14)
    boxes = torch.tensor([
        [-30.0, -20.0, -5.0, -2.0],   # entirely above-left: nothing pasted
        [80.0, 10.0, 120.0, 30.0],    # entirely right of the image
        [10.0, 60.0, 30.0, 90.0],     # entirely below
        [-10.0, -10.0, 80.0, 60.0],   # covers the whole image
        [5.0, 5.0, 5.2, 5.1],         # sub-pixel box
        [20.0, 30.0, 19.0, 29.0],     # inverted (x2 < x1): nothing pasted
        [0.0, 0.0, 70.0, 50.0],
        [60.0, 40.0, 75.0, 55.0],
        [33.3, 12.7, 47.9, 44.1],
        [1.0, 1.0, 2.0, 2.0],
        [-0.4, 10.0, 3.0, 12.0],
        [10.0, 10.0, 40.0, 40.0],
    ])
    expected = naive_paste(masks, boxes, height, width)
    for chunk in (1, 5, 32):
        result = paste_masks(masks, boxes, (height, width), chunk=chunk)
        assert (result - expected).abs().max() <= 1e-5
    monkeypatch.setattr(postprocess, "WINDOW_PIXELS", 600)  # chunks split by window size, too
    result = paste_masks(masks, boxes, (height, width))
    assert (result - expected).abs().max() <= 1e-5
    assert torch.all(result[:3] == 0) and torch.all(result[5] == 0)
    assert (result[3] > 0).sum() > 0.9 * height * width


def test_constant_mask_by_hand():
    # Box [10,10,40,40], M=28: grown by 30/28 around 25 -> [8.93, 41.07] -> int [8, 41].
    out = paste_masks(torch.ones(1, 28, 28), torch.tensor([[10.0, 10.0, 40.0, 40.0]]), (60, 60))[0]
    assert torch.all(out[:8] == 0) and torch.all(out[42:] == 0)
    assert torch.all(out[:, :8] == 0) and torch.all(out[:, 42:] == 0)
    assert abs(out[25, 25].item() - 1.0) < 1e-6
    assert out.max() <= 1.0 + 1e-6
    assert torch.all(out[8] == 0)  # the first row samples the zero padding only


def test_bilinear_weights_match_interpolate():
    signal = torch.rand(3, 9)
    for length in (1, 4, 9, 17, 40):
        weights = bilinear_weights(torch.tensor([0]), torch.tensor([length]), 9, length)[0]  # [length, 9]
        expected = F.interpolate(signal[None], size=length, mode="linear", align_corners=False)[0]
        assert torch.allclose(signal @ weights.T, expected, atol=1e-6)
        assert torch.allclose(weights.sum(1), torch.ones(length))
    # Placed at start=-2 on an axis of 5: samples 2..6 of the resized signal, none beyond its length.
    placed = bilinear_weights(torch.tensor([-2]), torch.tensor([4]), 9, 5)[0]
    full = bilinear_weights(torch.tensor([0]), torch.tensor([4]), 9, 4)[0]
    assert torch.equal(placed[:2], full[2:]) and torch.all(placed[2:] == 0)


def test_threshold_empty_and_bad_shapes():
    masks = torch.rand(5, 28, 28)
    boxes = _boxes(5, 64, 64)
    probs = paste_masks(masks, boxes, (64, 64))
    binary = paste_masks(masks, boxes, (64, 64), threshold=0.5)
    assert binary.dtype == torch.bool and torch.equal(binary, probs >= 0.5)
    ones = paste_masks(torch.full((1, 4, 4), 0.5), torch.tensor([[2.0, 2, 12, 12]]), (16, 16), threshold=0.5)
    assert ones[0, 7, 7] and not ones[0, 0, 0]  # >= (matterport), not >
    empty = paste_masks(torch.zeros(0, 28, 28), torch.zeros(0, 4), (10, 20))
    assert empty.shape == (0, 10, 20)
    with pytest.raises(ValueError, match="mask_probs"):
        paste_masks(torch.zeros(2, 1, 28, 28), torch.zeros(2, 4), (10, 10))
    with pytest.raises(ValueError, match="boxes"):
        paste_masks(torch.zeros(2, 28, 28), torch.zeros(3, 4), (10, 10))
