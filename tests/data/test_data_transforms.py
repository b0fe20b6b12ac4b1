"""matterport's mini-masks / extract_bboxes: exact bookkeeping (resizing is the model's: tests/model/test_preprocess.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskrcnn.data.transforms import expand_mask, extract_bboxes, masks_to_boxes, minimize_mask, minimize_masks_xyxy
from maskrcnn.errors import DatasetError


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
