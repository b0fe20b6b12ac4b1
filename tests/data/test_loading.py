"""load_dataset / resolve_dataset: what a PATH designates, subsets, ambiguity, explicit formats, shapes."""

from __future__ import annotations

import shutil

import pytest
from data_builders import region, via_entry, via_polygon, write_image, write_json

from maskrcnn.data import ShapesDataset, find_subsets, load_dataset, resolve_dataset
from maskrcnn.data.loading import is_shapes_spec
from maskrcnn.errors import DatasetError


@pytest.fixture
def two_subsets(via_dataset):
    val = via_dataset.parent / "val"
    val.mkdir()
    write_image(val / "c.png", 30, 40)
    write_json(val / "via_region_data.json",
               dict([via_entry("c.png", [region(via_polygon([1, 5, 5], [1, 1, 5]), kind="pear")])]))
    (via_dataset.parent / "test").mkdir()  # images only: not a subset
    write_image(via_dataset.parent / "test" / "t.png", 4, 4)
    return via_dataset.parent


def test_dataset_folder_with_subsets(two_subsets):
    assert list(find_subsets(two_subsets)) == ["train", "val"]
    with pytest.raises(DatasetError, match=r"holds several subsets \(train, val\); choose one with subset="):
        load_dataset(two_subsets)
    assert load_dataset(two_subsets, subset="val").num_images == 1
    assert load_dataset(two_subsets, subset="train").num_images == 3
    with pytest.raises(DatasetError, match=r"no subset folder 'dev' \(subsets found: train, val\)"):
        load_dataset(two_subsets, subset="dev")


def test_val_gets_the_training_class_ids_with_classes(two_subsets):
    train = load_dataset(two_subsets, subset="train", class_attribute="kind")
    val = load_dataset(two_subsets, subset="val", class_attribute="kind", classes=train.class_names[1:])
    assert val.class_names == train.class_names == ["BG", "apple", "pear"]
    assert val.load_mask(0)[1].tolist() == [2]


def test_preferred_file_wins_and_ambiguity_is_explained(via_dataset):
    other = dict([via_entry("a.png", [region(via_polygon([1, 5, 5], [1, 1, 5]), kind="x")])])
    write_json(via_dataset / "train_multiclass.json", other)
    write_json(via_dataset / "attrs.json", {"region": {"kind": {"type": "text"}}, "file": {}})
    assert resolve_dataset(via_dataset).path.name == "via_region_data.json"
    (via_dataset / "via_region_data.json").rename(via_dataset / "single.json")
    with pytest.raises(DatasetError, match=r"several annotation files \(single\.json, train_multiclass\.json\)"):
        resolve_dataset(via_dataset)
    r = resolve_dataset(via_dataset.parent, subset="train", annotations="{subset}_multiclass.json")
    assert r.format == "via" and r.path.name == "train_multiclass.json"


def test_explicit_format_must_match(via_dataset):
    with pytest.raises(DatasetError, match=r"via_region_data\.json: is a via file, not coco"):
        load_dataset(via_dataset / "via_region_data.json", format="coco")
    with pytest.raises(DatasetError, match="format='yolo'"):
        load_dataset(via_dataset, format="yolo")


def test_option_for_another_format_is_refused(via_dataset, tmp_path):
    write_json(tmp_path / "c.json", {"images": [], "annotations": [], "categories": []})
    with pytest.raises(DatasetError, match="class_attribute='name' applies to via datasets"):
        load_dataset(tmp_path / "c.json", class_attribute="name")


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(DatasetError, match=r"nothing: not found"):
        load_dataset(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"empty: no annotations found"):
        load_dataset(tmp_path / "empty")


def test_strict_errors_suggest_check_dataset(via_dataset):
    shutil.copy(via_dataset / "via_region_data.json", via_dataset / "copy.json")
    (via_dataset / "b.png").unlink()
    with pytest.raises(DatasetError, match=r"b\.png: image file not found\n\(run `maskrcnn check-dataset"):
        load_dataset(via_dataset / "copy.json")


def test_shapes_specs():
    ds = load_dataset("shapes:5:48x64:3")
    assert isinstance(ds, ShapesDataset) and ds.num_images == 5 and ds.format == "shapes"
    assert ds.load_image(0).shape == (48, 64, 3)
    assert load_dataset("shapes").num_images == 200
    train, val = load_dataset("shapes:2:32", subset="train"), load_dataset("shapes:2:32", subset="val")
    assert (train.load_image(0) != val.load_image(0)).any()
    assert (train.load_image(0) == load_dataset("2:32", format="shapes").load_image(0)).all()
    with pytest.raises(DatasetError, match="expected shapes"):
        load_dataset("shapes:many")


def test_is_shapes_spec_is_the_one_rule(tmp_path, monkeypatch):
    assert is_shapes_spec("shapes") and is_shapes_spec("shapes:5:48x64:3") and is_shapes_spec("2:32", "shapes")
    assert not is_shapes_spec("data/balloon") and not is_shapes_spec("shapes:5", "via")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shapes").mkdir()  # a folder of that name is a dataset folder, not a spec
    assert not is_shapes_spec("shapes") and is_shapes_spec("shapes", "shapes")


def test_images_subfolders_are_not_mistaken_for_mask_samples(tmp_path):
    """``data/train/images/*.jpg`` + ``data/train/annotations.json`` is a COCO subset, not a DSB layout."""
    for name in ("train", "val"):
        write_image(tmp_path / "data" / name / "images" / "p.jpg", 8, 8)
        write_json(tmp_path / "data" / name / "annotations.json", {
            "images": [{"id": 1, "file_name": "p.jpg", "height": 8, "width": 8}],
            "categories": [{"id": 1, "name": "x"}], "annotations": []})
    assert list(find_subsets(tmp_path / "data")) == ["train", "val"]
    r = resolve_dataset(tmp_path / "data", subset="val")
    assert r.format == "coco" and r.path == tmp_path / "data" / "val" / "annotations.json"
    assert load_dataset(tmp_path / "data", subset="val").image_info[0]["path"].endswith("val/images/p.jpg")


def test_one_name_class_list_names_the_implicit_class(via_dataset):
    assert load_dataset(via_dataset, classes=["apple"]).class_names == ["BG", "apple"]
    with pytest.raises(DatasetError, match=r"classes=\['a', 'b'\] but without class_attribute there is one"):
        load_dataset(via_dataset, classes=["a", "b"])
