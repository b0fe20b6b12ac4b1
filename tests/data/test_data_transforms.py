"""matterport's resize_image / resize_mask / mini-masks / extract_bboxes: exact bookkeeping."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from maskrcnn.data.transforms import (
    expand_mask, extract_bboxes, masks_to_boxes, minimize_mask, minimize_masks_xyxy, resize, resize_image,
    resize_mask,
)
from maskrcnn.errors import DatasetError, ImageError


def _img(h, w, value=None):
    if value is not None:
        return np.full((h, w, 3), value, np.uint8)
    return (np.arange(h * w * 3) % 251).astype(np.uint8).reshape(h, w, 3)


def test_mode_none_is_identity():
    im = _img(5, 7)
    out, window, scale, padding, crop = resize_image(im, 10, 20, mode="none")
    assert out is im and window == (0, 0, 5, 7) and scale == 1 and padding == [(0, 0)] * 3 and crop is None


def test_square_pads_centered_without_scaling():
    im = _img(4, 8)
    out, window, scale, padding, crop = resize_image(im, min_dim=4, max_dim=16, mode="square")
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert scale == 1 and window == (6, 4, 10, 12) and padding == [(6, 6), (4, 4), (0, 0)] and crop is None
    assert (out[6:10, 4:12] == im).all() and out[:6].sum() == 0 and out[:, :4].sum() == 0


def test_square_scales_up_to_min_dim():
    out, window, scale, padding, _ = resize_image(_img(4, 8, 77), min_dim=8, max_dim=32, mode="square")
    assert scale == 2 and out.shape == (32, 32, 3)
    assert window == (12, 8, 20, 24) and padding == [(12, 12), (8, 8), (0, 0)]
    assert (out[12:20, 8:24] == 77).all() and out.sum() == 77 * 8 * 16 * 3


def test_square_caps_the_long_side_at_max_dim():
    out, window, scale, padding, _ = resize_image(_img(10, 40, 5), min_dim=20, max_dim=32, mode="square")
    assert scale == pytest.approx(0.8) and out.shape == (32, 32, 3)
    assert window == (12, 0, 20, 32) and padding == [(12, 12), (0, 0), (0, 0)]


def test_min_scale_forces_upscaling():
    _, window, scale, padding, _ = resize_image(_img(10, 10), min_dim=None, max_dim=40, min_scale=2, mode="square")
    assert scale == 2 and window == (10, 10, 30, 30) and padding == [(10, 10), (10, 10), (0, 0)]


def test_pad64():
    out, window, scale, padding, crop = resize_image(_img(70, 100), min_dim=64, max_dim=1024, mode="pad64")
    assert scale == 1 and out.shape == (128, 128, 3)
    assert padding == [(29, 29), (14, 14), (0, 0)] and window == (29, 14, 99, 114) and crop is None
    with pytest.raises(ImageError, match="multiple of 64"):
        resize_image(_img(70, 100), min_dim=50, mode="pad64")


def test_crop_is_a_seeded_window():
    im = _img(10, 12)
    out, window, scale, padding, crop = resize_image(im, min_dim=8, mode="crop", rng=random.Random(3))
    y, x, h, w = crop
    assert (h, w) == (8, 8) and 0 <= y <= 2 and 0 <= x <= 4 and window == (0, 0, 8, 8) and scale == 1
    assert (out == im[y:y + 8, x:x + 8]).all()
    again = resize_image(im, min_dim=8, mode="crop", rng=random.Random(3))
    assert again[4] == crop


def test_shortest_edge():
    out, window, scale, padding, _ = resize_image(_img(20, 30), min_dim=40, max_dim=50, mode="shortest_edge")
    assert scale == pytest.approx(50 / 30) and out.shape == (33, 50, 3) and window == (0, 0, 33, 50)


def test_bilinear_resize_of_a_ramp_is_pixel_center_aligned():
    ramp = np.repeat(np.arange(0, 200, 50, dtype=np.uint8)[None, :], 2, axis=0)  # 0 50 100 150
    up = resize(ramp, (2, 8))
    # align_corners=False: out j samples x = (j + .5) / 2 - .5, clamped at the borders
    assert up[0].tolist() == [0, 12, 38, 62, 88, 112, 138, 150]


def test_resize_mask_follows_resize_image():
    image = _img(6, 10)
    mask = np.zeros((6, 10, 2), bool)
    mask[2:4, 2:6, 0] = True
    mask[0, 0, 1] = True
    out, window, scale, padding, crop = resize_image(image, min_dim=12, max_dim=32, mode="square")
    assert scale == 2
    m = resize_mask(mask, scale, padding, crop)
    assert m.shape == out.shape[:2] + (2,) and m.dtype == bool
    y1, x1 = window[:2]
    assert m[..., 0].sum() == 32 and m[y1 + 4:y1 + 8, x1 + 4:x1 + 12, 0].all()
    assert m[..., 1].sum() == 4 and m[y1:y1 + 2, x1:x1 + 2, 1].all()
    c = resize_mask(mask, 1, None, crop=(1, 2, 3, 4))
    assert (c == mask[1:4, 2:6]).all()


def test_extract_bboxes_exclusive_ends():
    mask = np.zeros((8, 9, 3), bool)
    mask[1:4, 2:7, 0] = True
    mask[5, 8, 1] = True
    boxes = extract_bboxes(mask)
    assert boxes.dtype == np.int32
    assert boxes.tolist() == [[1, 2, 4, 7], [5, 8, 6, 9], [0, 0, 0, 0]]
    xyxy = masks_to_boxes(torch.from_numpy(np.moveaxis(mask, -1, 0)))
    assert xyxy.dtype == torch.float32 and xyxy.tolist() == [[2, 1, 7, 4], [8, 5, 9, 6], [0, 0, 0, 0]]
    assert extract_bboxes(np.zeros((3, 3, 0), bool)).shape == (0, 4)


def test_minimize_and_expand_by_hand():
    mask = np.zeros((6, 6, 1), bool)
    mask[2:4, 3:5, 0] = [[True, True], [True, False]]
    bbox = extract_bboxes(mask)
    assert bbox.tolist() == [[2, 3, 4, 5]]
    mini = minimize_mask(bbox, mask, (4, 4))
    # bilinear 2x upsampling then > 0.5: each source pixel becomes a 2x2 block
    assert (mini[..., 0] == np.kron(mask[2:4, 3:5, 0], np.ones((2, 2), bool))).all()
    assert (expand_mask(bbox, mini, (6, 6)) == mask).all()
    t = minimize_masks_xyxy(torch.from_numpy(np.moveaxis(mask, -1, 0)), torch.tensor([[3.0, 2, 5, 4]]), (4, 4))
    assert (t[0].numpy() == mini[..., 0]).all()


def test_minimize_threshold_is_matterports_round():
    mask = np.zeros((1, 2, 1), bool)
    mask[0, 0, 0] = True  # one of two pixels: the 1x1 mini-mask value is exactly 0.5 -> rounds to 0
    assert not minimize_mask(np.array([[0, 0, 1, 2]]), mask, (1, 1)).any()


def test_minimize_zero_area_box_is_an_error():
    with pytest.raises(DatasetError, match="instance 0 has a box of zero area"):
        minimize_mask(np.array([[2, 2, 2, 4]]), np.ones((5, 5, 1), bool), (4, 4))
