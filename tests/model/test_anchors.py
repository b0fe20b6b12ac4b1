"""Anchors: hand-computed values, order, strides, and torchvision equality."""

from __future__ import annotations

import torch
from torchvision.models.detection.anchor_utils import (
    AnchorGenerator as TVAnchorGenerator,
)
from torchvision.models.detection.image_list import ImageList

from maskrcnn.model.anchors import AnchorGenerator, base_anchors


def test_base_anchors_by_hand():
    # scale 8: ratio w/h 0.5 -> w = 8*sqrt(.5) = 5.66, h = 11.31 -> halves rounded 3, 6
    assert base_anchors(8, [0.5, 1.0, 2.0]).tolist() == [
        [-3.0, -6.0, 3.0, 6.0], [-4.0, -4.0, 4.0, 4.0], [-6.0, -3.0, 6.0, 3.0]]


def test_small_image_anchors_by_hand():
    gen = AnchorGenerator(scales=[8], ratios=[0.5, 1.0, 2.0], strides=[4])
    (anchors,) = gen([(2, 2)], (8, 8))
    base = [[-3, -6, 3, 6], [-4, -4, 4, 4], [-6, -3, 6, 3]]
    expected = []
    for y in (0, 4):  # row major, then column, then ratio
        for x in (0, 4):
            for b in base:
                expected.append([x + b[0], y + b[1], x + b[2], y + b[3]])
    assert anchors.tolist() == expected
    assert anchors.dtype == torch.float32


def test_stride_computed_from_sizes_and_anchor_stride():
    gen = AnchorGenerator(scales=[16, 32], ratios=[1.0], strides=[8, 16])
    a1, a2 = gen([(13, 10), (7, 5)], (100, 80))
    # level 2: stride = (100 // 7, 80 // 5) = (14, 16)
    assert a2.shape == (35, 4)
    assert a2[1].tolist() == [16 - 16, 0 - 16, 16 + 16, 0 + 16]
    assert a2[5].tolist() == [0 - 16, 14 - 16, 0 + 16, 14 + 16]
    assert a1.shape == (130, 4)
    sparse = AnchorGenerator(scales=[16], ratios=[1.0], strides=[8], anchor_stride=2)
    (s,) = sparse([(5, 4)], (40, 32))
    # every other cell: 3 rows x 2 cols at spacing 16
    centres = ((s[:, :2] + s[:, 2:]) / 2).tolist()
    assert centres == [[0, 0], [16, 0], [0, 16], [16, 16], [0, 32], [16, 32]]


def test_equals_torchvision_and_caches():
    sizes = ((32,), (64,), (128,), (256,), (512,))
    tv = TVAnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * 5)  # height / width
    ours = AnchorGenerator(scales=[32, 64, 128, 256, 512], ratios=[2.0, 1.0, 0.5], strides=[4, 8, 16, 32, 64])
    shapes = [(200, 272), (100, 136), (50, 68), (25, 34), (13, 17)]
    feats = [torch.zeros(1, 1, h, w) for h, w in shapes]
    images = ImageList(torch.zeros(1, 3, 800, 1088), [(800, 1066)])
    expected = tv(images, feats)[0]
    got = ours(shapes, (800, 1088))
    assert torch.equal(torch.cat(got), expected)
    assert ours(shapes, (800, 1088))[0] is got[0]
