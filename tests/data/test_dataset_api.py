"""The matterport Dataset API: classes, images, prepare, id maps, several sources, subclasses."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from maskrcnn import Dataset as TopLevelDataset
from maskrcnn.data import ShapesDataset
from maskrcnn.data.dataset import Dataset
from maskrcnn.data.geometry import polygon
from maskrcnn.errors import DatasetError

from data_builders import write_image


def test_lazy_top_level_import():
    assert TopLevelDataset is Dataset


def _two_source_dataset() -> Dataset:
    ds = Dataset()
    ds.add_class("coco", 1, "person")
    ds.add_class("coco", 18, "dog")
    ds.add_class("via", 1, "balloon")
    ds.add_class("coco", 1, "person")  # duplicates are skipped
    ds.add_image("coco", image_id=42, path="/x/42.jpg")
    ds.add_image("via", image_id="a.jpg", path="/y/a.jpg", width=10, height=8)
    ds.prepare()
    return ds


def test_prepare_builds_matterport_tables():
    ds = _two_source_dataset()
    assert ds.num_classes == 4 and ds.class_names == ["BG", "person", "dog", "balloon"]
    assert ds.class_info[0] == {"source": "", "id": 0, "name": "BG"}
    assert ds.num_images == 2 and ds.image_ids.tolist() == [0, 1]
    assert ds.class_from_source_map == {".0": 0, "coco.1": 1, "coco.18": 2, "via.1": 3}
    assert ds.image_from_source_map == {"coco.42": 0, "via.a.jpg": 1}
    assert ds.source_class_ids == {"": [0], "coco": [0, 1, 2], "via": [0, 3]}
    assert ds.map_source_class_id("coco.18") == 2
    assert ds.get_source_class_id(2, "coco") == 18
    assert ds.image_reference(0) == "/x/42.jpg" and ds.source_image_link(1) == "/y/a.jpg"
    assert ds.image_info[1]["width"] == 10


def test_id_errors_are_clear():
    ds = _two_source_dataset()
    with pytest.raises(DatasetError, match="from source 'via', not 'coco'"):
        ds.get_source_class_id(3, "coco")
    with pytest.raises(DatasetError, match="unknown source class 'coco.99'"):
        ds.map_source_class_id("coco.99")
    with pytest.raises(DatasetError, match="cannot contain a dot"):
        ds.add_class("a.b", 1, "x")
    with pytest.raises(DatasetError, match="already named 'person'"):
        ds.add_class("coco", 1, "human")


def test_class_map_merges_classes():
    ds = Dataset()
    ds.add_class("a", 1, "cat")
    ds.add_class("b", 7, "kitty")
    ds.prepare(class_map={"b.7": "a.1"})
    assert ds.class_names == ["BG", "cat"] and ds.num_classes == 2
    assert ds.map_source_class_id("b.7") == ds.map_source_class_id("a.1") == 1
    with pytest.raises(DatasetError, match="not a class"):
        ds.prepare(class_map={"b.7": "a.5"})


def test_default_load_mask_warns_and_returns_empty(caplog):
    ds = Dataset()
    ds.add_image("x", image_id=0, path="nowhere.png")
    ds.prepare()
    with caplog.at_level(logging.WARNING):
        mask, ids = ds.load_mask(0)
    assert mask.shape == (0, 0, 0) and ids.dtype == np.int32 and len(ids) == 0
    assert "default load_mask" in caplog.text


def test_instances_load_mask_with_crowd_negative(tmp_path):
    write_image(tmp_path / "im.png", 6, 8)
    ds = Dataset()
    ds.add_class("src", 5, "thing")
    ds.add_class("src", 9, "other")
    ds.add_image("src", image_id="im", path=str(tmp_path / "im.png"), height=6, width=8, instances=[
        {"class_id": 5, "shapes": [polygon([[0, 0], [2, 0], [2, 2], [0, 2]])], "iscrowd": False},
        {"class_id": 9, "shapes": [polygon([[4, 2], [8, 2], [8, 6], [4, 6]])], "iscrowd": True},
    ])
    ds.prepare()
    mask, ids = ds.load_mask(0)
    assert mask.shape == (6, 8, 2) and mask.dtype == bool
    assert ids.tolist() == [1, -2]  # crowd instances come back negated (matterport)
    assert mask[..., 0].sum() == 4 and mask[..., 1].sum() == 16
    assert ds.load_image(0).shape == (6, 8, 3)


def test_load_mask_needs_prepare():
    ds = Dataset()
    ds.add_class("s", 1, "a")
    ds.add_image("s", image_id=0, path=None, height=2, width=2, instances=[])
    with pytest.raises(DatasetError, match=r"call dataset.prepare\(\)"):
        ds.load_mask(0)


class BalloonDataset(Dataset):
    """The tutorial's subclass, in spirit: polygons in image_info, its own load_mask."""

    def load_balloon(self, folder, names):
        self.add_class("balloon", 1, "balloon")
        for name in names:
            write_image(folder / name, 10, 12)
            self.add_image("balloon", image_id=name, path=str(folder / name), width=12, height=10,
                           polygons=[{"name": "polygon", "all_points_x": [1, 5, 5, 1], "all_points_y": [1, 1, 4, 4]}])

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        if info["source"] != "balloon":
            return super().load_mask(image_id)
        mask = np.zeros([info["height"], info["width"], len(info["polygons"])], dtype=np.uint8)
        for i, p in enumerate(info["polygons"]):
            mask[p["all_points_y"][0]:p["all_points_y"][2], p["all_points_x"][0]:p["all_points_x"][1], i] = 1
        return mask.astype(bool), np.ones([mask.shape[-1]], dtype=np.int32)

    def image_reference(self, image_id):
        return self.image_info[image_id]["path"]


def test_tutorial_style_subclass_with_a_second_source(tmp_path):
    ds = BalloonDataset()
    ds.load_balloon(tmp_path, ["a.png", "b.png"])
    shapes = ShapesDataset(2, 32, 32, seed=3)  # borrow shapes' class list and images in the same dataset
    for info in shapes.class_info[1:]:
        ds.add_class(info["source"], info["id"], info["name"])
    ds.prepare()
    assert ds.class_names == ["BG", "balloon", "square", "circle", "triangle"]
    assert ds.source_class_ids["balloon"] == [0, 1] and ds.source_class_ids["shapes"] == [0, 2, 3, 4]
    mask, ids = ds.load_mask(1)
    assert mask.shape == (10, 12, 1) and mask.sum() == 12 and ids.tolist() == [1]
    assert ds.load_image(0).shape == (10, 12, 3)


def test_shapes_dataset_is_deterministic_and_consistent():
    a, b = ShapesDataset(6, 64, 80, seed=1), ShapesDataset(3, 64, 80, seed=1)
    c = ShapesDataset(3, 64, 80, seed=2)
    for i in range(3):
        assert (a.load_image(i) == b.load_image(i)).all()  # a smaller count is a prefix
    assert any((a.load_image(i) != c.load_image(i)).any() for i in range(3))
    for i in range(6):
        image = a.load_image(i)
        mask, ids = a.load_mask(i)
        assert image.shape == (64, 80, 3) and image.dtype == np.uint8
        assert mask.shape[:2] == (64, 80) and mask.shape[2] == len(ids) >= 1
        assert set(ids.tolist()) <= {1, 2, 3}
        assert mask.reshape(-1, mask.shape[2]).any(axis=0).all()  # no empty mask
        assert mask.sum(axis=-1).max() <= 1  # occlusion: masks do not overlap
        bg = a.image_info[i]["bg_color"]
        covered = mask.any(axis=-1)
        assert ((image[~covered] == bg).all(axis=-1)).all()  # background only where no mask


def test_shapes_square_pixels_match_its_mask():
    ds = ShapesDataset(1, 64, 64, seed=0)
    ds.image_info[0]["shapes"] = [("square", (255, 0, 0), (30, 30, 5))]
    ds.image_info[0]["bg_color"] = np.array([0, 0, 0])
    mask, ids = ds.load_mask(0)
    assert ids.tolist() == [1] and mask[..., 0].sum() == 11 * 11  # PIL rectangles include both ends
    assert (ds.load_image(0)[..., 0] > 0).sum() == 121
