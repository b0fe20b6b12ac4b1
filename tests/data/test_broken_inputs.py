"""A corpus of broken inputs: each gets a clear message naming the file (and region), never a deep traceback.

Each case builds a one-image VIA dataset (or a COCO/labelme file) in tmp_path and states the
message expected from ``check-dataset`` (None: the input must load correctly).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from data_builders import region, via_entry, via_polygon, write_image, write_json
from PIL import Image

from maskrcnn.cli import main
from maskrcnn.data.checks import check_dataset
from maskrcnn.data.loader import TrainingSamples
from maskrcnn.data.loading import load_dataset
from maskrcnn.errors import MaskRCNNError

GOOD_REGION = region(via_polygon([2, 14, 14, 2], [2, 2, 10, 10]))


def _via(folder, filename="x.jpg", regions=(GOOD_REGION,), **entry_changes):
    key, entry = via_entry(filename, list(regions))
    entry.update(entry_changes)
    return write_json(folder / "via_region_data.json", {key: entry})


def truncated_jpeg(d):
    write_image(d / "full.jpg", 40, 48)
    data = (d / "full.jpg").read_bytes()
    (d / "x.jpg").write_bytes(data[: len(data) // 2])
    (d / "full.jpg").unlink()
    return _via(d), r"x\.jpg: cannot read image, truncated or corrupt"


def missing_key(d):
    write_image(d / "x.jpg", 20, 20)
    key, entry = via_entry("x.jpg", [GOOD_REGION])
    del entry["regions"]
    return write_json(d / "via_region_data.json", {key: entry}), r"via_region_data\.json: x\.jpg: missing key 'regions'"


def missing_shape_attributes(d):
    write_image(d / "x.jpg", 20, 20)
    return (_via(d, regions=[{"region_attributes": {}}]),
            r"via_region_data\.json: x\.jpg region 0: missing key 'shape_attributes'")


def two_point_polygon(d):
    write_image(d / "x.jpg", 20, 20)
    return (_via(d, regions=[region(via_polygon([1, 5], [1, 5]))]),
            r"via_region_data\.json: x\.jpg region 0: polygon with 2 points \(needs >= 3\)")


def unknown_shape(d):
    write_image(d / "x.jpg", 20, 20)
    return (_via(d, regions=[GOOD_REGION, region({"name": "spline", "points": []})]),
            r"via_region_data\.json: x\.jpg region 1: unknown region shape 'spline'")


def dotdot_path(d):
    write_image(d.parent / "secret.jpg", 20, 20)
    return _via(d, filename="../secret.jpg"), r"image path '\.\./secret\.jpg' leaves the dataset folder .*; refused"


def empty_image_file(d):
    (d / "x.jpg").write_bytes(b"")
    return _via(d), r"x\.jpg: image file is empty \(0 bytes\)"


def empty_annotation_file(d):
    (d / "via_region_data.json").write_text("")
    return d / "via_region_data.json", r"via_region_data\.json: annotation file is empty"


def invalid_json(d):
    (d / "via_region_data.json").write_text('{"x.jpg0": {"filename": "x.jpg",,}}')
    return d / "via_region_data.json", r"via_region_data\.json: not valid JSON \(line 1, column"


def coco_missing_key(d):
    return (write_json(d / "annotations.json", {"images": [], "categories": []}),
            r"annotations\.json: missing key 'annotations'")


def labelme_bad_points(d):
    write_image(d / "x.jpg", 20, 20)
    return (write_json(d / "x.json", {"shapes": [{"label": "a", "points": [[1, 2], [3]], "shape_type": "polygon"}],
                                      "imagePath": "x.jpg"}),
            r"x\.json: shape 0 \(a\): 'points' must be a list of \[x, y\] number pairs")


def png_16bit(d):
    arr = (np.arange(20 * 24, dtype=np.uint32).reshape(20, 24) * 130).astype(np.uint16)
    Image.fromarray(arr).save(d / "x.png")
    return _via(d, filename="x.png"), None


def cmyk_jpeg(d):
    Image.new("CMYK", (24, 20), (10, 200, 30, 5)).save(d / "x.jpg")
    return _via(d), None


CASES = [truncated_jpeg, missing_key, missing_shape_attributes, two_point_polygon, unknown_shape, dotdot_path,
         empty_image_file, empty_annotation_file, invalid_json, coco_missing_key, labelme_bad_points, png_16bit,
         cmyk_jpeg]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_broken_input(case, tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    path, expected = case(folder)
    report = check_dataset(path)
    if expected is None:  # loads correctly, as RGB uint8
        assert report["errors"] == [] and report["images"] == 1 and report["instances"] == 1
        image, target = TrainingSamples(load_dataset(path), use_mini_mask=False)[0]
        assert image.shape == (3, 20, 24) and target["boxes"].tolist() == [[2, 2, 14, 10]]
        return
    assert any(__import__("re").search(expected, e) for e in report["errors"]), report["errors"]

    # the CLI reports it and exits 1, with JSON on stdout
    assert main(["check-dataset", str(path), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["errors"] == report["errors"]

    # using the dataset fails with one clear line, not a traceback
    code = main(["show-dataset", str(path), "--out", str(tmp_path / "out"), "--no-anchors"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("maskrcnn show-dataset: error: ") and "Traceback" not in err
    with pytest.raises(MaskRCNNError):
        dataset = load_dataset(path)
        for i in dataset.image_ids:
            TrainingSamples(dataset)[i]
