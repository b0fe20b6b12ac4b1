"""Rasterization: the pixel-center rule, pycocotools parity, ellipses, RLE, unions, clipping."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from maskrcnn.data.geometry import (
    decode_rle, ellipse, pixel_count, polygon, polygon_area, rasterize, rasterize_polygon, rectangle,
)
from maskrcnn.errors import DatasetError


def _coco_raster(parts, h, w):
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(parts, h, w))).astype(bool)


def test_integer_square_covers_exactly_its_pixels():
    m = rasterize_polygon([[1, 2], [5, 2], [5, 4], [1, 4]], 6, 7)
    expected = np.zeros((6, 7), bool)
    expected[2:4, 1:5] = True
    assert (m == expected).all()


def test_half_pixel_polygon_follows_pixel_centers():
    # centers 2.5, 3.5 are inside (1.5, 4.5]; 1.5 is on the left edge (out), 4.5 on the right edge (in)
    m = rasterize_polygon([[1.5, 1.5], [4.5, 1.5], [4.5, 4.5], [1.5, 4.5]], 7, 7)
    assert np.argwhere(m.any(0)).ravel().tolist() == [2, 3, 4]
    assert np.argwhere(m.any(1)).ravel().tolist() == [2, 3, 4]


def test_triangle_pixel_count_by_hand():
    # right triangle (0,0) (4,0) (0,4): centers (j+.5, i+.5) with j + i + 1 < 4 -> rows of 3, 2, 1 pixels
    m = rasterize_polygon([[0, 0], [4, 0], [0, 4]], 5, 5)
    assert m.sum(axis=1).tolist() == [3, 2, 1, 0, 0]


def test_points_outside_are_clipped():
    m = rasterize_polygon([[-3, -3], [3, -3], [3, 3], [-3, 3]], 5, 5)
    assert m.sum() == 9 and m[:3, :3].all()


def test_polygon_entirely_outside_is_empty():
    assert not rasterize_polygon([[10, 10], [12, 10], [12, 12]], 5, 5).any()


def test_random_polygons_match_pycocotools_exactly():
    rng = np.random.default_rng(0)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 25, 2))
        pts = rng.uniform(-4, 30, (int(rng.integers(3, 8)), 2))
        if rng.random() < 0.4:
            pts = np.round(pts)
        ours = rasterize([polygon(pts)], h, w)
        assert (ours == _coco_raster([pts.ravel().tolist()], h, w)).all(), pts.tolist()


def test_coco_sample_polygons_agree_with_pycocotools(shared_data):
    """Acceptance: IoU >= 0.99 per instance on the real COCO sample (ours is in fact identical)."""
    data = json.loads((shared_data / "coco_val2017_4img" / "annotations.json").read_text())
    sizes = {im["id"]: (im["height"], im["width"]) for im in data["images"]}
    assert len(data["annotations"]) == 45
    for ann in data["annotations"]:
        h, w = sizes[ann["image_id"]]
        ref = _coco_raster(ann["segmentation"], h, w)
        ours = rasterize([polygon(np.reshape(p, (-1, 2))) for p in ann["segmentation"]], h, w)
        iou = (ref & ours).sum() / (ref | ours).sum()
        assert iou >= 0.99, (ann["id"], iou)


def test_multi_part_instance_is_the_union():
    a, b = polygon([[0, 0], [2, 0], [2, 2], [0, 2]]), polygon([[4, 4], [6, 4], [6, 6], [4, 6]])
    m = rasterize([a, b], 8, 8)
    assert m.sum() == 8 and m[0:2, 0:2].all() and m[4:6, 4:6].all()


def test_rectangle_and_area():
    r = rectangle(5, 4, 1, 2)  # corners in any order
    assert polygon_area(r["points"]) == 8.0
    assert rasterize([r], 6, 6)[2:4, 1:5].all() and rasterize([r], 6, 6).sum() == 8


def test_circle_uses_exact_center_rule():
    # radius 2 at (3, 3): centers (j+.5, i+.5) with (j+.5-3)^2 + (i+.5-3)^2 <= 4
    m = rasterize([ellipse(3, 3, 2, 2)], 6, 6)
    jj, ii = np.meshgrid(np.arange(6) + 0.5, np.arange(6) + 0.5)
    assert (m == ((jj - 3) ** 2 + (ii - 3) ** 2 <= 4)).all()
    assert m.sum() == 12


def test_rotated_ellipse():
    m = rasterize([ellipse(10, 10, 8, 2, np.pi / 2)], 21, 21)  # long axis vertical
    ys, xs = np.nonzero(m)
    assert ys.max() - ys.min() > 2 * (xs.max() - xs.min())


def test_rle_compressed_and_uncompressed():
    ref = np.zeros((5, 6), np.uint8)
    ref[1:4, 2:5] = 1
    compressed = mask_utils.encode(np.asfortranarray(ref))
    compressed["counts"] = compressed["counts"].decode("ascii")
    # column-major runs, worked out by hand: 11 zeros, 3 ones, 2 zeros, 3 ones, 2 zeros, 3 ones, 6 zeros
    uncompressed = {"counts": [11, 3, 2, 3, 2, 3, 6], "size": [5, 6]}
    assert (decode_rle(compressed, 5, 6) == ref.astype(bool)).all()
    assert (decode_rle(uncompressed, 5, 6) == ref.astype(bool)).all()


def test_rle_size_mismatch_is_named():
    with pytest.raises(DatasetError, match=r"x.json ann 3: RLE size \[4, 4\]"):
        decode_rle({"counts": "abc", "size": [4, 4]}, 5, 6, where="x.json ann 3")


def test_pixel_count_matches_raster():
    shape = polygon([[0.2, 0.3], [7.7, 1.1], [5.2, 6.9]])
    assert pixel_count([shape], 8, 8) == rasterize([shape], 8, 8).sum() > 0
