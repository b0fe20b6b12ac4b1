"""Acceptance: every dataset of ../shared/data loads with the counts its README gives,
through the Python API and through ``maskrcnn check-dataset --json`` (in-process)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskrcnn.cli import main
from maskrcnn.data import load_dataset

# (id, path under shared/data, load_dataset kwargs, CLI args, images, instances, object classes)
CASES = [
    ("balloon-train", "balloon", {"subset": "train"}, ["--subset", "train"], 61, 255, ["balloon"]),
    ("balloon-val", "balloon", {"subset": "val"}, ["--subset", "val"], 13, 50, ["balloon"]),
    ("car-parts-train", "car_damage/dataset/train/train_multiclass.json", {"class_attribute": "name"},
     ["--class-attribute", "name"], 62, 191, ["door", "front_bumper", "headlamp", "hood", "rear_bumper"]),
    ("car-parts-val", "car_damage/dataset/val/val_multiclass.json", {"class_attribute": "name"},
     ["--class-attribute", "name"], 8, 24, ["door", "front_bumper", "headlamp", "hood", "rear_bumper"]),
    ("car-damage-train", "car_damage/dataset/train/via_region_data.json", {}, [], 62, 152, ["car_damage"]),
    ("car-damage-val", "car_damage/dataset/val/via_region_data.json", {}, [], 8, 12, ["car_damage"]),
    ("car-damage-project", "car_damage/dataset/train/car-damage-train.json", {"class_attribute": "name"},
     ["--class-attribute", "name"], 62, 152, ["damage"]),
    ("coco-sample", "coco_val2017_4img", {}, [], 4, 45, None),
    ("labelme-json", "labelme_voc_coco/data_annotated", {}, [], 3, 12, None),
    ("labelme-coco-export", "labelme_voc_coco/data_dataset_coco/annotations.json", {}, [], 3, 12, None),
    ("nuclei", "dsb2018_sample/stage1_train", {"class_name": "nucleus"}, ["--class-name", "nucleus"], 26, 1910,
     ["nucleus"]),
]
IDS = [c[0] for c in CASES]
CLI_CASES = [c for c in CASES if not c[0].startswith("balloon")]  # the balloon folder test covers both subsets

pytestmark = pytest.mark.filterwarnings("ignore::maskrcnn.data.problems.DatasetWarning")


def _instances(ds):
    return sum(len(info["instances"]) for info in ds.image_info)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_python_api_counts(case, shared_data):
    _, rel, kwargs, _, images, instances, classes = case
    ds = load_dataset(shared_data / rel, **kwargs)
    assert ds.num_images == images and _instances(ds) == instances
    if classes is not None:
        assert ds.class_names == ["BG"] + classes


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_check_dataset_json_counts(case, shared_data, capsys):
    _, rel, _, args, images, instances, classes = case
    code = main(["check-dataset", str(shared_data / rel), "--json", *args])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["errors"] == []
    assert report["images"] == images and report["instances"] == instances
    assert sum(report["classes"].values()) == instances
    if classes is not None:
        assert sorted(report["classes"]) == sorted(classes)


def test_readme_quirks_are_reported(shared_data, capsys):
    main(["check-dataset", str(shared_data / "car_damage/dataset/train/train_multiclass.json"),
          "--class-attribute", "name", "--json"])
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert any("5.jpg region" in w and "points outside the image" in w and "1025" in w for w in warnings)
    assert any("33.jpg region" in w and "points outside the image" in w and "y in [-1," in w for w in warnings)
    assert any("byte-identical duplicate images" in w and "25.jpg" in w and "48.jpg" in w for w in warnings)


def test_balloon_folder_reports_both_subsets(shared_data, capsys):
    assert main(["check-dataset", str(shared_data / "balloon"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {k: (v["images"], v["instances"]) for k, v in report["subsets"].items()} == \
        {"train": (61, 255), "val": (13, 50)}
    assert (report["images"], report["instances"], report["classes"]) == (74, 305, {"balloon": 305})


def test_coco_sample_classes_and_category_ids(shared_data):
    ds = load_dataset(shared_data / "coco_val2017_4img")
    assert ds.num_classes == 81 and ds.class_names[1] == "person"
    car = ds.class_names.index("car")
    assert ds.get_source_class_id(car, "coco") == 3 and ds.map_source_class_id("coco.90") == 80
    present = {}
    for i in ds.image_ids:
        _, ids = ds.load_mask(i)
        for c in ids:
            present[ds.class_names[c]] = present.get(ds.class_names[c], 0) + 1
    assert present == {"car": 16, "person": 12, "motorcycle": 5, "traffic light": 3, "truck": 3, "bicycle": 1,
                       "bird": 1, "bus": 1, "giraffe": 1, "cow": 1, "potted plant": 1}


def test_labelme_json_and_its_coco_export_agree(shared_data):
    """The labelme JSON and labelme's own COCO export of the same images give the same classes and masks."""
    native = load_dataset(shared_data / "labelme_voc_coco/data_annotated")
    export = load_dataset(shared_data / "labelme_voc_coco/data_dataset_coco")
    assert native.class_names == export.class_names and native.num_classes == 21
    by_name = {export.image_info[i]["path"].rsplit("/", 1)[-1]: i for i in export.image_ids}
    for i in native.image_ids:
        j = by_name[native.image_info[i]["path"].rsplit("/", 1)[-1]]
        m1, c1 = native.load_mask(i)
        m2, c2 = export.load_mask(j)
        assert sorted(c1.tolist()) == sorted(c2.tolist())
        for k in range(m1.shape[-1]):  # every labelme instance has a near-identical COCO instance
            inter = (m1[..., k:k + 1] & m2).sum(axis=(0, 1))
            union = (m1[..., k:k + 1] | m2).sum(axis=(0, 1))
            assert (inter / union).max() > 0.97


def test_balloon_masks_stay_inside_their_polygons(shared_data):
    ds = load_dataset(shared_data / "balloon", subset="val")
    mask, ids = ds.load_mask(0)
    info = ds.image_info[0]
    assert mask.shape == (info["height"], info["width"], len(info["polygons"])) and (ids == 1).all()
    for k, poly in enumerate(info["polygons"]):
        ys, xs = np.nonzero(mask[..., k])
        assert xs.min() >= min(poly["all_points_x"]) and xs.max() < max(poly["all_points_x"])
        assert ys.min() >= min(poly["all_points_y"]) and ys.max() < max(poly["all_points_y"])
