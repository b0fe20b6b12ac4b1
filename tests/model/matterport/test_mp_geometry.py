"""matterport's geometry: hand-computed anchors, boxes, deltas, skimage's resize."""

import math

import pytest
import torch

from maskrcnn.model.matterport.geometry import (
    apply_box_deltas, box_refinement, clip_boxes, denorm_boxes, norm_boxes, pyramid_anchors, resize_linear,
)
from maskrcnn.model.matterport.layers import max_pool_same, same_padding


def test_norm_and_denorm_boxes_follow_matterport():
    boxes = torch.tensor([[0.0, 0.0, 64.0, 32.0], [10.0, 20.0, 30.0, 40.0]])
    n = norm_boxes(boxes, (65, 33))
    assert torch.allclose(n, torch.tensor([[0, 0, 63 / 64, 31 / 32], [10 / 64, 20 / 32, 29 / 64, 39 / 32]]))
    assert torch.equal(denorm_boxes(n, (65, 33)), boxes.long())


def test_denorm_rounds_half_to_even():
    # 0.5 * 5 = 2.5 -> 2, 0.5 * 7 = 3.5 -> 4, 2.5 + 1 -> 4, 3.5 + 1 = 4.5 -> 4 (np.around: half to even)
    assert denorm_boxes(torch.tensor([[0.5, 0.5, 0.5, 0.5]]), (6, 8)).tolist() == [[2, 4, 4, 4]]


def test_pyramid_anchors_hand_computed():
    anchors = pyramid_anchors(scales=[32], ratios=[1, 2], image_shape=(64, 64), strides=[32], anchor_stride=1)
    assert anchors.shape == (2 * 2 * 2, 4)
    h2, w2 = 32 / math.sqrt(2), 32 * math.sqrt(2)
    expected_pixels = []
    for cy in (0, 32):
        for cx in (0, 32):
            expected_pixels.append([cy - 16, cx - 16, cy + 16, cx + 16])
            expected_pixels.append([cy - h2 / 2, cx - w2 / 2, cy + h2 / 2, cx + w2 / 2])
    expected = norm_boxes(torch.tensor(expected_pixels, dtype=torch.float64), (64, 64))
    assert torch.allclose(anchors, expected, atol=1e-7)


def test_apply_box_deltas_inverts_box_refinement():
    boxes = torch.tensor([[0.1, 0.2, 0.5, 0.4], [0.0, 0.0, 1.0, 1.0]])
    gt = torch.tensor([[0.15, 0.1, 0.45, 0.6], [0.2, 0.3, 0.4, 0.9]])
    assert torch.allclose(apply_box_deltas(boxes, box_refinement(boxes, gt)), gt, atol=1e-6)
    assert torch.allclose(box_refinement(boxes[:1], boxes[:1]), torch.zeros(1, 4))


def test_clip_boxes_into_window():
    out = clip_boxes(torch.tensor([[-0.1, 0.2, 1.3, 0.9]]), torch.tensor([0.0, 0.25, 1.0, 0.75]))
    assert torch.allclose(out, torch.tensor([[0.0, 0.25, 1.0, 0.75]]))


def test_resize_linear_is_skimage_constant_mode():
    # scipy.ndimage.zoom(grid_mode=True, mode="grid-constant") values (checked against skimage 0.26):
    # the border pulls toward 0; skimage then clips to the input's range [5, 35].
    x = torch.tensor([[5.0, 15, 25, 35]] * 4, dtype=torch.float64)
    raw = resize_linear(x, (4, 8), clip=False)[0]
    assert torch.allclose(raw, torch.tensor([3.75, 7.5, 12.5, 17.5, 22.5, 27.5, 32.5, 26.25], dtype=torch.float64))
    clipped = resize_linear(x, (4, 8))[0]
    assert clipped[0] == 5.0 and clipped[-1] == 26.25
    column = resize_linear(x, (8, 4), clip=False)[:, 0]
    assert torch.allclose(column, torch.tensor([3.75] + [5.0] * 6 + [3.75], dtype=torch.float64))
    # downscaling by 2 samples between pixel pairs, no border effect
    assert torch.allclose(resize_linear(x, (2, 2))[0], torch.tensor([10.0, 30.0], dtype=torch.float64))


@pytest.mark.parametrize("size, expected", [(1024, (0, 1)), (5, (1, 1)), (7, (1, 1)), (4, (0, 1))])
def test_same_padding_puts_the_extra_pixel_after(size, expected):
    assert same_padding(size, 3, 2) == expected


def test_max_pool_same_ignores_padding():
    x = torch.arange(16.0).reshape(1, 1, 4, 4) - 100  # all negative: zero padding would win
    out = max_pool_same(x, 3, 2)
    assert out.flatten().tolist() == [v - 100 for v in (10.0, 11.0, 14.0, 15.0)]
