"""check_dataset and ``maskrcnn check-dataset``: counts, subsets, every problem named, exit codes."""

from __future__ import annotations

import json
import shutil

from data_builders import region, via_entry, via_polygon, write_image, write_json

from maskrcnn.cli import main
from maskrcnn.data.checks import check_dataset, format_report


def test_clean_dataset_report(via_dataset):
    report = check_dataset(via_dataset, class_attribute="kind")
    assert report["format"] == "via" and report["errors"] == [] and report["warnings"] == []
    assert (report["images"], report["instances"], report["negatives"]) == (3, 5, 1)
    assert report["classes"] == {"apple": 3, "pear": 2}
    assert report["image_sizes"] == {"min": [30, 40], "max": [30, 40], "mean": [30.0, 40.0], "distinct": 1}
    text = format_report(report)
    assert "3 images (1 without instances), 5 instances" in text and "apple  3" in text


def test_cli_json_and_exit_code(via_dataset, capsys):
    assert main(["check-dataset", str(via_dataset), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"images", "instances", "classes", "negatives", "errors", "warnings"} <= set(report)
    assert report["classes"] == {"fruit": 5}
    assert main(["check-dataset", str(via_dataset)]) == 0
    assert "OK: 0 errors, 0 warnings" in capsys.readouterr().out


def test_subsets_are_reported_with_totals(via_dataset, capsys):
    val = via_dataset.parent / "val"
    write_image(val / "v.png", 12, 16)
    write_json(val / "via_region_data.json", dict([via_entry("v.png", [region(via_polygon([1, 5, 5], [1, 1, 5]))])]))
    assert main(["check-dataset", str(via_dataset.parent), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["subsets"]) == {"train", "val"}
    assert report["subsets"]["train"]["images"] == 3 and report["subsets"]["val"]["images"] == 1
    assert (report["images"], report["instances"], report["negatives"]) == (4, 6, 1)
    assert report["classes"] == {"fruit": 6}
    assert report["image_sizes"]["min"] == [12, 16] and report["image_sizes"]["max"] == [30, 40]


def test_every_problem_is_named(tmp_path, capsys):
    root = tmp_path / "ds"
    write_image(root / "ok.png", 20, 20)
    write_image(root / "small.png", 20, 20)
    shutil.copy(root / "ok.png", root / "copy.png")
    write_image(tmp_path / "outside.png", 20, 20)
    meta = dict([
        via_entry("ok.png", [
            region(via_polygon([1, 5], [1, 5]), kind="cat"),                     # 2 points
            region(via_polygon([1, 5, 9], [1, 5, 9]), kind="cat"),               # zero area
            region(via_polygon([-3, 10, 10], [2, 2, 25]), kind="cat"),           # outside: clipped, warned
            region({"name": "hexagon", "cx": 3}, kind="cat"),                    # unknown shape
            region(via_polygon([1, 9, 9], [1, 1, 9]), kind="zebra"),             # unknown class
            region(via_polygon([2.1, 2.3, 2.3], [2.1, 2.1, 2.3]), kind="cat"),   # covers no pixel
        ]),
        via_entry("missing.png", [region(via_polygon([1, 9, 9], [1, 1, 9]), kind="cat")]),
        via_entry("copy.png", []),
        via_entry("../outside.png", []),
        via_entry("/etc/hosts", []),
        via_entry("small.png", [region(via_polygon([1, 9, 9], [1, 1, 9]))]),   # no 'kind' attribute
    ])
    project = {"_via_settings": {}, "_via_img_metadata": meta,
               "_via_attributes": {"region": {"kind": {"type": "radio", "options": {"cat": "", "dog": ""}}}}}
    write_json(root / "project.json", project)
    report = check_dataset(root / "project.json", class_attribute="kind")
    errors, warnings = "\n".join(report["errors"]), "\n".join(report["warnings"])
    expected_errors = [
        r"project.json: ok.png region 0: polygon with 2 points (needs >= 3)",
        r"project.json: ok.png region 1: polygon has zero area",
        r"project.json: ok.png region 3: unknown region shape 'hexagon'",
        r"project.json: ok.png region 4: unknown class 'zebra' (known: cat, dog)",
        r"missing.png: image file not found",
        r"image path '../outside.png' leaves the dataset folder",
        r"image path '/etc/hosts' is absolute; refused",
        r"project.json: small.png region 0: has no 'kind' attribute",
    ]
    for text in expected_errors:
        assert text in errors, text
    assert len(report["errors"]) == len(expected_errors)
    assert "ok.png region 2: points outside the image (20x20): x in [-3, 10], y in [2, 25]; clipped" in warnings
    assert "ok.png region 5: the instance's mask is empty" in warnings
    assert f"byte-identical duplicate images: {root / 'copy.png'}, {root / 'ok.png'}" in warnings
    assert report["images"] == 3 and report["instances"] == 2 and report["classes"] == {"cat": 2, "dog": 0}
    assert main(["check-dataset", str(root / "project.json"), "--class-attribute", "kind", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["errors"] == report["errors"]


def test_image_size_contradicting_the_annotation(tmp_path):
    write_image(tmp_path / "a.png", 10, 12)
    write_json(tmp_path / "annotations.json", {
        "images": [{"id": 1, "file_name": "a.png", "height": 20, "width": 12}],
        "categories": [{"id": 1, "name": "x"}], "annotations": []})
    report = check_dataset(tmp_path)
    assert report["errors"] == [f"{tmp_path / 'annotations.json'}: {tmp_path / 'a.png'} is 12x10 (WxH) but the "
                                f"annotation says 12x20"]


def test_missing_path_is_a_report_not_a_crash(tmp_path, capsys):
    assert main(["check-dataset", str(tmp_path / "nope"), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 0 and report["errors"] == [f"{tmp_path / 'nope'}: not found"]


def test_shapes_spec(capsys):
    assert main(["check-dataset", "shapes:4:32", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["format"] == "shapes" and report["images"] == 4 and sum(report["classes"].values()) == \
        report["instances"] > 0
