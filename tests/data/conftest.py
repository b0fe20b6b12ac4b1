"""Fixtures of the data-layer tests: small synthetic datasets in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest
from data_builders import region, via_entry, via_polygon, write_image, write_json


@pytest.fixture
def via_dataset(tmp_path: Path) -> Path:
    """``tmp/fruit/train`` with a VIA 2 export: two 40x30 images, classes via attribute 'kind'."""
    folder = tmp_path / "fruit" / "train"
    write_image(folder / "a.png", 30, 40, seed=1)
    write_image(folder / "b.png", 30, 40, seed=2)
    write_image(folder / "neg.png", 30, 40, seed=3)
    data = dict([
        via_entry("a.png", [region(via_polygon([2, 10, 10, 2], [2, 2, 8, 8]), kind="apple"),
                            region({"name": "rect", "x": 20, "y": 10, "width": 5, "height": 4}, kind="pear")]),
        via_entry("b.png", [region({"name": "circle", "cx": 20, "cy": 15, "r": 3}, kind="apple"),
                            region({"name": "ellipse", "cx": 8, "cy": 20, "rx": 4, "ry": 2, "theta": 0},
                                   kind="pear"),
                            region({"name": "polyline", "all_points_x": [30, 38, 38],
                                    "all_points_y": [2, 2, 10]}, kind="apple")]),
        via_entry("neg.png", []),
    ])
    write_json(folder / "via_region_data.json", data)
    return folder
