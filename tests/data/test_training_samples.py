"""TrainingSamples items, collate, worker seeding and make_loader."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from maskrcnn import Config
from maskrcnn.data import ShapesDataset
from maskrcnn.data.dataset import Dataset
from maskrcnn.data.geometry import polygon
from maskrcnn.data.loader import TrainingSamples, collate, make_loader, worker_init_fn
from maskrcnn.errors import DatasetError

from data_builders import write_image


@pytest.fixture
def hand_dataset(tmp_path):
    """Two 8x10 images: one with a normal and a crowd instance, one negative."""
    write_image(tmp_path / "a.png", 8, 10)
    write_image(tmp_path / "b.png", 8, 10, seed=1)
    ds = Dataset()
    ds.add_class("t", 1, "cat")
    ds.add_class("t", 2, "dog")
    ds.add_image("t", image_id="a", path=str(tmp_path / "a.png"), height=8, width=10, instances=[
        {"class_id": 2, "shapes": [polygon([[1, 2], [5, 2], [5, 6], [1, 6]])], "iscrowd": False},
        {"class_id": 1, "shapes": [polygon([[6, 0], [10, 0], [10, 2], [6, 2]])], "iscrowd": True},
        {"class_id": 1, "shapes": [polygon([[3.1, 7.1], [3.4, 7.1], [3.4, 7.4]])], "iscrowd": False},  # no pixel
    ])
    ds.add_image("t", image_id="b", path=str(tmp_path / "b.png"), height=8, width=10, instances=[])
    ds.prepare()
    return ds


def test_full_size_masks_item(hand_dataset):
    image, target = TrainingSamples(hand_dataset, use_mini_mask=False)[0]
    assert image.dtype == torch.uint8 and image.shape == (3, 8, 10)
    assert set(target) == {"boxes", "labels", "iscrowd", "image_id", "masks"}
    assert target["boxes"].dtype == torch.float32 and target["boxes"].tolist() == [[1, 2, 5, 6], [6, 0, 10, 2]]
    assert target["labels"].dtype == torch.int64 and target["labels"].tolist() == [2, 1]
    assert target["iscrowd"].tolist() == [False, True] and target["image_id"] == 0
    assert target["masks"].dtype == torch.bool and target["masks"].shape == (2, 8, 10)
    assert target["masks"][0].sum() == 16 and target["masks"][1].sum() == 8  # the empty one was dropped


def test_mini_masks_cover_exactly_their_boxes(hand_dataset):
    _, target = TrainingSamples(hand_dataset, use_mini_mask=True, mini_mask_shape=(6, 4))[0]
    assert "masks" not in target and target["mini_masks"].shape == (2, 6, 4)
    assert target["mini_masks"].all()  # both instances are rectangles filling their boxes


def test_negative_image_gives_empty_tensors(hand_dataset):
    for mini in (False, True):
        image, target = TrainingSamples(hand_dataset, use_mini_mask=mini, mini_mask_shape=(5, 5))[1]
        assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,) and target["iscrowd"].shape == (0,)
        key, shape = ("mini_masks", (0, 5, 5)) if mini else ("masks", (0, 8, 10))
        assert target[key].shape == shape and target[key].dtype == torch.bool


def test_from_config_and_image_ids(hand_dataset):
    cfg = Config(USE_MINI_MASK=True, MINI_MASK_SHAPE=(7, 9), MAX_GT_INSTANCES=1)
    samples = TrainingSamples.from_config(hand_dataset, cfg, image_ids=[0])
    assert len(samples) == 1
    np.random.seed(0)
    _, target = samples[0]
    assert target["mini_masks"].shape == (1, 7, 9) and len(target["labels"]) == 1  # capped at MAX_GT_INSTANCES
    with pytest.raises(DatasetError, match=r"image_ids \[5\] are not ids"):
        TrainingSamples(hand_dataset, image_ids=[5])


def test_mask_image_mismatch_is_named(hand_dataset):
    class Broken(Dataset):
        def load_mask(self, image_id):
            return np.zeros((3, 3, 1), bool), np.array([1], np.int32)

    ds = Broken()
    ds.__dict__.update(hand_dataset.__dict__)
    with pytest.raises(DatasetError, match=r"a\.png: load_mask returned masks of shape \(3, 3, 1\)"):
        TrainingSamples(ds)[0]


def test_augmentation_is_applied_and_consistent():
    ds = ShapesDataset(4, 40, 56, seed=0)
    torch.manual_seed(0)
    samples = TrainingSamples(ds, use_mini_mask=False, augmentation=RotateOnce())
    image, target = samples[0]
    plain_image, plain_target = TrainingSamples(ds, use_mini_mask=False)[0]
    assert image.shape == (3, 56, 40) and (image == torch.rot90(plain_image, 1, dims=(1, 2))).all()
    assert (target["masks"] == torch.rot90(plain_target["masks"], 1, dims=(1, 2))).all()
    assert target["labels"].tolist() == plain_target["labels"].tolist()


class RotateOnce(v2.Transform):
    """A user's own v2 transform: rotate everything by 90 degrees."""

    def transform(self, inpt, params):
        from torchvision import tv_tensors

        if isinstance(inpt, (tv_tensors.Image, tv_tensors.Mask)):
            return tv_tensors.wrap(torch.rot90(inpt.as_subclass(torch.Tensor), 1, dims=(-2, -1)), like=inpt)
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            h, w = inpt.canvas_size
            x1, y1, x2, y2 = inpt.as_subclass(torch.Tensor).unbind(-1)
            return tv_tensors.BoundingBoxes(torch.stack([y1, w - x2, y2, w - x1], -1), format="XYXY",
                                            canvas_size=(w, h))
        return inpt


def test_collate_and_loader_order_is_seeded():
    ds = ShapesDataset(6, 32, 32, seed=0)
    samples = TrainingSamples(ds, use_mini_mask=True, mini_mask_shape=(8, 8))
    images, targets = collate([samples[0], samples[1]])
    assert len(images) == len(targets) == 2 and targets[1]["image_id"] == 1

    def order(seed):
        loader = make_loader(samples, batch_size=4, shuffle=True, seed=seed, drop_last=False)
        return [t["image_id"] for _, ts in loader for t in ts]

    assert order(1) == order(1) and sorted(order(1)) == list(range(6)) and order(1) != order(2)
    batches = list(make_loader(samples, batch_size=4, shuffle=False, seed=0, drop_last=True))
    assert len(batches) == 1 and len(batches[0][0]) == 4


def test_loader_with_workers_and_sampler():
    ds = ShapesDataset(4, 32, 32, seed=0)
    samples = TrainingSamples(ds, use_mini_mask=False)
    sampler = torch.utils.data.SequentialSampler(range(4))
    loader = make_loader(samples, batch_size=2, shuffle=True, num_workers=1, seed=0, sampler=sampler)
    ids = [t["image_id"] for _, ts in loader for t in ts]
    assert ids == [0, 1, 2, 3]


def test_worker_init_fn_seeds_numpy_and_random():
    torch.manual_seed(1234)
    worker_init_fn(0)
    a = (np.random.rand(), random.random())
    torch.manual_seed(1234)
    worker_init_fn(0)
    assert (np.random.rand(), random.random()) == a
