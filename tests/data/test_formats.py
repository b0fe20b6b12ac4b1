"""Each annotation format on small synthetic files: shapes, classes, crowds, negatives, id maps."""

from __future__ import annotations

import base64
import io
import warnings

import numpy as np
import pytest
from data_builders import region, via_entry, via_polygon, write_image, write_json
from PIL import Image
from pycocotools import mask as mask_utils

from maskrcnn.data.dataset import Dataset
from maskrcnn.data.formats.coco import add_coco
from maskrcnn.data.formats.labelme import add_labelme
from maskrcnn.data.formats.masks import add_mask_folder
from maskrcnn.data.formats.via import add_via
from maskrcnn.data.loading import load_dataset
from maskrcnn.data.problems import DatasetWarning
from maskrcnn.errors import DatasetError


# ----------------------------------------------------------------------------- VIA
def test_via2_export_with_class_attribute(via_dataset):
    ds = load_dataset(via_dataset / "via_region_data.json", class_attribute="kind")
    assert ds.format == "via" and ds.class_names == ["BG", "apple", "pear"]  # sorted values found
    assert ds.num_images == 3
    info = {i["id"]: i for i in ds.image_info}
    assert (info["a.png"]["height"], info["a.png"]["width"]) == (30, 40)
    assert info["a.png"]["polygons"][0]["name"] == "polygon"  # matterport's field is there
    mask, ids = ds.load_mask(ds.image_from_source_map["via.a.png"])
    assert ids.tolist() == [1, 2] and mask.shape == (30, 40, 2)
    assert mask[..., 0].sum() == 8 * 6 and mask[2:8, 2:10, 0].all()  # polygon (2,2)-(10,8)
    assert mask[..., 1].sum() == 20 and mask[10:14, 20:25, 1].all()  # rect x=20 y=10 5x4
    mask, ids = ds.load_mask(ds.image_from_source_map["via.b.png"])
    assert ids.tolist() == [1, 2, 1]
    assert mask[..., 0].sum() == 32  # circle r=3: 32 pixel centers inside, computed by hand
    assert mask[..., 2].sum() > 0  # polyline closed into a triangle
    mask, ids = ds.load_mask(ds.image_from_source_map["via.neg.png"])
    assert mask.shape == (30, 40, 0) and len(ids) == 0


def test_via_implicit_class_named_after_the_dataset_folder(via_dataset):
    ds = load_dataset(via_dataset)
    assert ds.class_names == ["BG", "fruit"]  # "train" is a generic name: its parent names the class
    assert load_dataset(via_dataset, class_name="thing").class_names == ["BG", "thing"]


def test_via_negatives_can_be_dropped(via_dataset):
    assert load_dataset(via_dataset, keep_negatives=False).num_images == 2


def test_via_given_classes_and_unknown_class(via_dataset):
    ds = load_dataset(via_dataset, class_attribute="kind", classes=["pear", "apple"])
    assert ds.class_names == ["BG", "pear", "apple"]
    with pytest.raises(DatasetError, match=r"a\.png region 1: unknown class 'pear' \(known: apple\)"):
        load_dataset(via_dataset, class_attribute="kind", classes=["apple"])


def test_via1_export_regions_dict_and_point_warning(tmp_path):
    write_image(tmp_path / "x.jpg", 20, 20)
    data = dict([via_entry("x.jpg", [region(via_polygon([1, 9, 9, 1, 1], [1, 1, 9, 9, 1])),
                                     region({"name": "point", "cx": 3, "cy": 3})], v1=True, size=123)])
    write_json(tmp_path / "via_region_data.json", data)
    ds = Dataset()
    with pytest.warns(DatasetWarning, match=r"x\.jpg region 1: point region ignored"):
        assert add_via(ds, tmp_path / "via_region_data.json") == 1
    ds.prepare()
    mask, ids = ds.load_mask(0)
    assert mask.shape == (20, 20, 1) and mask.sum() == 64  # repeated closing vertex is harmless


def test_via2_project_file_uses_declared_options(tmp_path):
    write_image(tmp_path / "x.jpg", 20, 20)
    meta = dict([via_entry("x.jpg", [region(via_polygon([1, 9, 9], [1, 1, 9]), type="dent")])])
    project = {"_via_settings": {}, "_via_img_metadata": meta, "_via_attributes": {"region": {
        "type": {"type": "dropdown", "options": {"scratch": "", "dent": "", "unknown": ""}}}, "file": {}}}
    write_json(tmp_path / "project.json", project)
    ds = load_dataset(tmp_path / "project.json", class_attribute="type")
    assert ds.class_names == ["BG", "scratch", "dent", "unknown"]
    assert ds.load_mask(0)[1].tolist() == [2]


def test_via_checkbox_attribute(tmp_path):
    write_image(tmp_path / "x.jpg", 20, 20)
    meta = dict([via_entry("x.jpg", [region(via_polygon([1, 9, 9], [1, 1, 9]), kind={"cat": True, "dog": False}),
                                     region(via_polygon([1, 9, 9], [1, 1, 9]), kind={"cat": True, "dog": True})])])
    write_json(tmp_path / "v.json", meta)
    with pytest.raises(DatasetError, match=r"region 1: checkbox attribute 'kind' must have exactly one option"):
        load_dataset(tmp_path / "v.json", class_attribute="kind")


# ----------------------------------------------------------------------------- COCO
def _coco_file(tmp_path, *, extra_categories=()):
    write_image(tmp_path / "imgs" / "sub" / "p.png", 10, 12)
    write_image(tmp_path / "imgs" / "q.png", 10, 12)
    rle_mask = np.zeros((10, 12), np.uint8)
    rle_mask[5:8, 6:10] = 1
    compressed = mask_utils.encode(np.asfortranarray(rle_mask))
    compressed["counts"] = compressed["counts"].decode("ascii")
    data = {
        "images": [{"id": 7, "file_name": "sub/p.png", "height": 10, "width": 12},
                   {"id": 3, "file_name": "q.png", "height": 10, "width": 12}],
        "categories": [{"id": 0, "name": "_background_"}, {"id": 44, "name": "bottle"},
                       {"id": 18, "name": "dog"}, *extra_categories],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 44, "iscrowd": 0,
             "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4], [6, 0, 8, 0, 8, 2, 6, 2]]},  # two parts
            {"id": 2, "image_id": 7, "category_id": 18, "iscrowd": 1, "segmentation": compressed},
            # uncompressed RLE of a 10x12 image: 100 zeros, 5 ones, 15 zeros (column-major)
            {"id": 3, "image_id": 7, "category_id": 18, "iscrowd": 1,
             "segmentation": {"counts": [100, 5, 15], "size": [10, 12]}},
        ],
    }
    return write_json(tmp_path / "annotations.json", data)


def test_coco_noncontiguous_ids_rle_crowd_and_subfolders(tmp_path):
    ds = load_dataset(_coco_file(tmp_path), image_dir=tmp_path / "imgs")
    assert ds.format == "coco" and ds.class_names == ["BG", "dog", "bottle"]  # by category id, background skipped
    assert ds.get_source_class_id(1, "coco") == 18 and ds.get_source_class_id(2, "coco") == 44
    assert ds.map_source_class_id("coco.44") == 2
    first = ds.image_from_source_map["coco.7"]
    assert ds.image_info[first]["path"].endswith("imgs/sub/p.png")
    mask, ids = ds.load_mask(first)
    assert ids.tolist() == [2, -1, -1]  # crowds negated
    assert mask[..., 0].sum() == 16 + 4 and mask[0:4, 0:4, 0].all() and mask[0:2, 6:8, 0].all()  # union
    assert mask[..., 1].sum() == 12 and mask[5:8, 6:10, 1].all()
    assert mask[..., 2].sum() == 5 and mask[0:5, 10, 2].all()  # column 10, rows 0..4
    negative = ds.image_from_source_map["coco.3"]
    assert ds.load_mask(negative)[0].shape == (10, 12, 0)
    assert load_dataset(tmp_path / "annotations.json", image_dir=tmp_path / "imgs",
                        keep_negatives=False).num_images == 1


def test_coco_classes_filter(tmp_path):
    ds = load_dataset(_coco_file(tmp_path), image_dir=tmp_path / "imgs", classes=["bottle"])
    assert ds.class_names == ["BG", "bottle"] and ds.get_source_class_id(1, "coco") == 44
    assert ds.load_mask(ds.image_from_source_map["coco.7"])[1].tolist() == [1]
    with pytest.raises(DatasetError, match=r"classes \['cat'\] are not categories"):
        load_dataset(tmp_path / "annotations.json", image_dir=tmp_path / "imgs", classes=["cat"])


def test_coco_image_dir_is_found_in_images_subfolder(tmp_path):
    write_image(tmp_path / "images" / "a.png", 8, 8)
    write_json(tmp_path / "annotations.json", {
        "images": [{"id": 1, "file_name": "a.png", "height": 8, "width": 8}],
        "categories": [{"id": 1, "name": "x"}], "annotations": []})
    ds = load_dataset(tmp_path)
    assert ds.image_info[0]["path"] == str(tmp_path / "images" / "a.png")


def test_coco_unknown_category_is_an_error(tmp_path):
    write_json(tmp_path / "c.json", {
        "images": [{"id": 1, "file_name": "a.png", "height": 8, "width": 8}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 9, "segmentation": [[0, 0, 2, 0, 2, 2]]}]})
    with pytest.raises(DatasetError, match=r"c\.json: a\.png annotation 5: unknown class: category_id 9"):
        add_coco(Dataset(), tmp_path / "c.json")


# ----------------------------------------------------------------------------- labelme
def _labelme(path, image, shapes, h=20, w=30):
    write_image(path.parent / image, h, w)
    write_json(path, {"version": "5.0", "flags": {}, "shapes": shapes, "imagePath": image, "imageData": None,
                      "imageHeight": h, "imageWidth": w})


def _shape(label, points, shape_type="polygon", group_id=None, **extra):
    return {"label": label, "points": points, "group_id": group_id, "shape_type": shape_type, "flags": {}, **extra}


def test_labelme_groups_shapes_and_types(tmp_path):
    patch = np.zeros((3, 4), np.uint8)
    patch[1, 1:3] = 255
    buf = io.BytesIO()
    Image.fromarray(patch).save(buf, format="PNG")
    _labelme(tmp_path / "one.json", "one.jpg", [
        _shape("cat", [[0, 0], [4, 0], [4, 4], [0, 4]], group_id=1),
        _shape("cat", [[10, 0], [12, 0], [12, 2], [10, 2]], group_id=1),  # same instance
        _shape("cat", [[20, 10], [24, 14]], "rectangle"),
        _shape("dog", [[15, 15], [15, 17]], "circle"),
        _shape("dog", [[5, 10], [8, 12]], "mask", mask=base64.b64encode(buf.getvalue()).decode()),
        _shape("__ignore__", [[0, 0], [5, 0], [5, 5]]),
        _shape("cat", [[1, 1], [2, 2]], "line"),
    ])
    _labelme(tmp_path / "two.json", "two.jpg", [])
    with pytest.warns(DatasetWarning, match=r"one\.json: shape 6 \(cat\): line shape ignored"):
        ds = load_dataset(tmp_path)
    assert ds.format == "labelme" and ds.class_names == ["BG", "cat", "dog"] and ds.num_images == 2
    mask, ids = ds.load_mask(0)
    assert ids.tolist() == [1, 1, 2, 2]
    assert mask[..., 0].sum() == 16 + 4  # the two parts of group 1
    assert mask[..., 1].sum() == 16 and mask[10:14, 20:24, 1].all()
    assert mask[..., 2].sum() == 12  # circle r=2 around (15, 15): 12 centers, like the by-hand circle test
    assert mask[..., 3].sum() == 2 and mask[11, 6:8, 3].all()  # the mask patch placed at (5, 10)
    assert ds.load_mask(1)[0].shape == (20, 30, 0)


def test_labelme_labels_file_sets_classes(tmp_path):
    (tmp_path / "labels.txt").write_text("__ignore__\n_background_\ncat\ndog\nbird\n")
    _labelme(tmp_path / "ann" / "one.json", "one.jpg", [_shape("bird", [[0, 0], [4, 0], [4, 4]])])
    ds = load_dataset(tmp_path / "ann")
    assert ds.class_names == ["BG", "cat", "dog", "bird"] and ds.load_mask(0)[1].tolist() == [3]
    _labelme(tmp_path / "ann" / "two.json", "two.jpg", [_shape("fish", [[0, 0], [4, 0], [4, 4]])])
    with pytest.raises(DatasetError, match=r"two\.json: shape 0 \(fish\): unknown class 'fish'"):
        add_labelme(Dataset(), tmp_path / "ann")


# ----------------------------------------------------------------------------- mask folders
def test_mask_folder_layout(tmp_path):
    root = tmp_path / "cells" / "stage1_train"
    for sid, n in (("s1", 2), ("s2", 0)):
        write_image(root / sid / "images" / f"{sid}.png", 8, 9)
        (root / sid / "masks").mkdir(parents=True)
        for k in range(n):
            m = np.zeros((8, 9), np.uint8)
            m[k:k + 2, 3:5] = 255
            Image.fromarray(m).save(root / sid / "masks" / f"m{k}.png")
    ds = load_dataset(tmp_path / "cells", subset="stage1_train", class_name="nucleus")
    assert ds.format == "masks" and ds.class_names == ["BG", "nucleus"] and ds.num_images == 2
    mask, ids = ds.load_mask(0)
    assert mask.shape == (8, 9, 2) and ids.tolist() == [1, 1] and mask[..., 1].sum() == 4 and mask[1:3, 3:5, 1].all()
    assert ds.load_mask(1)[0].shape == (8, 9, 0)
    assert load_dataset(root).class_names == ["BG", "cells"]


def test_mask_of_wrong_size_is_named(tmp_path):
    root = tmp_path / "d"
    write_image(root / "s" / "images" / "s.png", 8, 9)
    (root / "s" / "masks").mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "s" / "masks" / "bad.png")
    ds = Dataset()
    add_mask_folder(ds, root)
    ds.prepare()
    with pytest.raises(DatasetError, match=r"s: mask bad\.png: mask file .*bad\.png is 4x4 but the image is 9x8"):
        ds.load_mask(0)


def test_no_warning_for_points_on_the_border(tmp_path):
    write_image(tmp_path / "x.jpg", 10, 10)
    write_json(tmp_path / "v.json", dict([via_entry("x.jpg", [region(via_polygon([0, 10, 10.4], [0, 0, 10]))])]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset(tmp_path / "v.json")
