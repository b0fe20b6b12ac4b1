"""Box coder, clipping, small-box removal and converters."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.models.detection._utils import BoxCoder as TVBoxCoder

from maskrcnn.model.boxes import (
    BoxCoder,
    clip_boxes,
    remove_small_boxes,
    weights_from_std_dev,
    xyxy_to_yxyx,
    yxyx_to_xyxy,
)


def _random_boxes(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 100
    wh = torch.rand(n, 2, generator=g) * 50 + 1
    return torch.cat([xy, xy + wh], dim=1)


def test_weights_from_std_dev_inverts_and_reorders():
    assert weights_from_std_dev([0.1, 0.1, 0.2, 0.2]) == (10.0, 10.0, 5.0, 5.0)
    # (dy, dx, dh, dw) -> (wx, wy, ww, wh)
    assert weights_from_std_dev([0.5, 0.25, 1.0, 0.125]) == (4.0, 2.0, 8.0, 1.0)


def test_encode_by_hand():
    coder = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    ref = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    box = torch.tensor([[5.0, 0.0, 15.0, 40.0]])  # centre +5 in x, +10 in y, height doubled
    d = coder.encode(ref, box)
    expected = torch.tensor([[10 * 0.5, 10 * 10 / 20, 5 * 0.0, 5 * np.log(2.0)]], dtype=torch.float32)
    torch.testing.assert_close(d, expected)


def test_round_trip_and_torchvision_equality():
    coder = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    ref, boxes = _random_boxes(50, 1), _random_boxes(50, 2)
    deltas = coder.encode(ref, boxes)
    torch.testing.assert_close(coder.decode(deltas, ref)[:, 0], boxes, rtol=1e-5, atol=1e-4)
    tv = TVBoxCoder((10.0, 10.0, 5.0, 5.0))
    torch.testing.assert_close(deltas, tv.encode_single(boxes, ref), rtol=0, atol=0)
    wild = torch.randn(50, 8) * 3  # two classes, large dw/dh hit the clip
    ours = coder.decode(wild, ref)
    theirs = tv.decode_single(wild, ref).reshape(50, 2, 4)
    assert torch.equal(ours, theirs)


def test_clip_and_small_and_converters():
    boxes = torch.tensor([[-5.0, 2.0, 30.0, 50.0], [1.0, 1.0, 1.5, 9.0]])
    clipped = clip_boxes(boxes, (40, 20))
    assert clipped.tolist() == [[0.0, 2.0, 20.0, 40.0], [1.0, 1.0, 1.5, 9.0]]
    assert remove_small_boxes(clipped, 1.0).tolist() == [0]
    assert remove_small_boxes(clipped, 0.5).tolist() == [0, 1]
    arr = np.array([[1, 2, 3, 4]])
    assert xyxy_to_yxyx(arr).tolist() == [[2, 1, 4, 3]]
    assert yxyx_to_xyxy(xyxy_to_yxyx(arr)).tolist() == arr.tolist()
