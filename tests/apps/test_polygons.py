"""Mask → polygon → mask round trips, simplification, parts and holes."""

from __future__ import annotations

import numpy as np
import pytest

from maskrcnn.apps.polygons import mask_to_polygons, polygon_area, polygons_to_mask, simplify_polygon
from maskrcnn.errors import ImageError


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """The mask plus every background pixel not 8-connected to the border (flood fill)."""
    padded = np.pad(~mask, 1, constant_values=True)
    reach = np.zeros_like(padded)
    reach[0, :] = reach[-1, :] = reach[:, 0] = reach[:, -1] = True
    reach &= padded
    while True:
        grown = reach.copy()
        grown[1:] |= reach[:-1]
        grown[:-1] |= reach[1:]
        grown[:, 1:] |= reach[:, :-1]
        grown[:, :-1] |= reach[:, 1:]
        grown[1:, 1:] |= reach[:-1, :-1]
        grown[:-1, :-1] |= reach[1:, 1:]
        grown[1:, :-1] |= reach[:-1, 1:]
        grown[:-1, 1:] |= reach[1:, :-1]
        grown &= padded
        if np.array_equal(grown, reach):
            break
        reach = grown
    outside = reach[1:-1, 1:-1]
    return ~outside


def test_rectangle_gives_its_four_pixel_edge_corners():
    mask = np.zeros((40, 50), dtype=bool)
    mask[5:20, 5:30] = True  # rows 5..19, columns 5..29
    (poly,) = mask_to_polygons(mask)
    assert poly.tolist() == [[4.5, 4.5], [29.5, 4.5], [29.5, 19.5], [4.5, 19.5]]
    assert polygon_area(poly) == 25 * 15


def test_single_pixel_is_a_unit_square():
    mask = np.zeros((5, 5), dtype=bool)
    mask[2, 3] = True
    (poly,) = mask_to_polygons(mask, tolerance=0, min_area=0)
    assert sorted(map(tuple, poly.tolist())) == [(2.5, 1.5), (2.5, 2.5), (3.5, 1.5), (3.5, 2.5)]
    assert polygons_to_mask([poly], 5, 5).tolist() == mask.tolist()


@pytest.mark.parametrize("seed", range(5))
def test_exact_round_trip_at_zero_tolerance(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((24, 31)) < 0.55
    polys = mask_to_polygons(mask, tolerance=0, min_area=0)
    back = polygons_to_mask(polys, 24, 31)
    # Holes are dropped (annotation tools have none), so the result is the mask with holes filled.
    assert np.array_equal(back, _fill_holes(mask))
    assert (mask & ~back).sum() == 0


def test_hole_is_covered_and_parts_are_ordered_by_area():
    mask = np.zeros((40, 50), dtype=bool)
    mask[5:20, 5:30] = True
    mask[10:14, 10:14] = False  # a 4x4 hole
    mask[25:35, 35:45] = True  # a second part, 10x10
    polys = mask_to_polygons(mask)
    assert [polygon_area(p) for p in polys] == [375.0, 100.0]
    (largest,) = mask_to_polygons(mask, parts="largest")
    assert np.array_equal(largest, polys[0])
    back = polygons_to_mask(polys, 40, 50)
    assert (back != mask).sum() == 16  # exactly the hole


def test_disc_is_simplified_but_stays_close():
    yy, xx = np.mgrid[:100, :100]
    disc = (xx - 50) ** 2 + (yy - 40) ** 2 < 30**2
    exact = mask_to_polygons(disc, tolerance=0)[0]
    coarse = mask_to_polygons(disc, tolerance=1.0)[0]
    assert len(coarse) < len(exact) / 3
    back = polygons_to_mask([coarse], 100, 100)
    iou = (back & disc).sum() / (back | disc).sum()
    assert iou > 0.97
    assert abs(polygon_area(coarse) - disc.sum()) / disc.sum() < 0.02


def test_min_area_and_empty_masks():
    mask = np.zeros((10, 10), dtype=bool)
    assert mask_to_polygons(mask) == []
    mask[1, 1] = True  # area 1
    mask[5:8, 5:8] = True  # area 9
    assert [polygon_area(p) for p in mask_to_polygons(mask, min_area=2)] == [9.0]
    assert len(mask_to_polygons(mask, min_area=0)) == 2


def test_float_probabilities_threshold_at_half():
    probs = np.zeros((8, 8), dtype=np.float32)
    probs[2:5, 2:6] = 0.9
    probs[6, 6] = 0.4
    (poly,) = mask_to_polygons(probs, min_area=0)
    assert polygon_area(poly) == 12.0


def test_mask_touching_the_border():
    mask = np.ones((6, 7), dtype=bool)
    (poly,) = mask_to_polygons(mask)
    assert poly.tolist() == [[-0.5, -0.5], [6.5, -0.5], [6.5, 5.5], [-0.5, 5.5]]


def test_simplify_removes_collinear_points_and_keeps_corners():
    ring = np.array([[0, 0], [1, 0], [2, 0], [2, 1], [2, 2], [1, 2], [0, 2], [0, 1]], dtype=float)
    out = simplify_polygon(np.roll(ring, 3, axis=0), 0.0)
    assert out.tolist() == [[0, 0], [2, 0], [2, 2], [0, 2]]
    # A sliver thinner than the tolerance still comes back as a triangle.
    sliver = np.array([[0, 0], [10, 0.2], [20, 0], [10, -0.1]], dtype=float)
    assert len(simplify_polygon(sliver, 1.0)) == 3


def test_bad_shape_is_refused_with_the_shape():
    with pytest.raises(ImageError, match=r"\(2, 3, 4\)"):
        mask_to_polygons(np.zeros((2, 3, 4), dtype=bool))
