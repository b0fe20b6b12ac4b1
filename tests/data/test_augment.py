"""Augmentation keeps image, masks, labels and boxes consistent (exact cases + hypothesis properties)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision import tv_tensors
from torchvision.transforms import v2

from maskrcnn.data.augment import (
    RandomCropFraction, RandomRotate90, RandomScale, augment_sample, get_augmentation,
    strong_augmentation,
)
from maskrcnn.data.transforms import masks_to_boxes
from maskrcnn.errors import DatasetError


def _sample(h, w, rects, labels):
    """Disjoint masks (later rectangles cover earlier ones, like drawing order), signed labels, and an
    image whose red channel is ``40 * (k + 1)`` exactly on mask ``k`` (0 elsewhere)."""
    masks = torch.zeros((len(rects), h, w), dtype=torch.bool)
    for k, (y1, x1, y2, x2) in enumerate(rects):
        masks[k, y1:y2, x1:x2] = True
    for k in range(len(rects) - 1):
        masks[k] &= ~masks[k + 1:].any(dim=0)
    image = torch.zeros((3, h, w), dtype=torch.uint8)
    image[1] = 7
    for k in range(len(rects)):
        image[0][masks[k]] = 40 * (k + 1)
    return image, masks, torch.tensor(labels, dtype=torch.int64)


def test_rot90_is_exact_for_image_masks_and_boxes():
    image, masks, labels = _sample(6, 10, [(1, 2, 3, 7)], [1])
    torch.manual_seed(0)
    aug = RandomRotate90(ks=(1,))
    boxes = tv_tensors.BoundingBoxes(masks_to_boxes(masks), format="XYXY", canvas_size=(6, 10))
    img2, tgt = aug(tv_tensors.Image(image), {"masks": tv_tensors.Mask(masks.to(torch.uint8)), "boxes": boxes})
    assert (img2.numpy() == np.rot90(image.numpy(), 1, axes=(1, 2))).all()
    assert tgt["masks"].shape == (1, 10, 6) and tgt["boxes"].canvas_size == (10, 6)
    assert tgt["boxes"].tolist() == masks_to_boxes(tgt["masks"].bool()).tolist() == [[1.0, 3.0, 3.0, 8.0]]


def test_horizontal_flip_moves_masks_and_labels_together():
    image, masks, labels = _sample(5, 8, [(0, 0, 2, 3), (3, 5, 5, 8)], [2, -1])
    out = augment_sample(v2.RandomHorizontalFlip(p=1.0), image, masks, labels)
    img, m, lab, boxes = out
    assert (m.numpy() == masks.numpy()[:, :, ::-1]).all() and lab.tolist() == [2, -1]
    assert boxes.tolist() == [[5.0, 0.0, 8.0, 2.0], [0.0, 3.0, 3.0, 5.0]]


def test_instances_cropped_away_are_dropped_with_their_labels():
    image, masks, labels = _sample(8, 12, [(0, 0, 3, 5), (4, 9, 7, 12), (2, 5, 6, 8)], [1, 2, -3])
    user_aug = v2.CenterCrop((8, 6))  # a user's own transform; keeps columns 3..8
    img, m, lab, boxes = augment_sample(user_aug, image, masks, labels)
    assert img.shape == (3, 8, 6) and m.shape == (2, 8, 6) and lab.tolist() == [1, -3]  # the second is gone
    assert m[0].sum() == 3 * 2 and m[1].sum() == 4 * 3
    assert boxes.tolist() == [[0.0, 0.0, 2.0, 3.0], [2.0, 2.0, 5.0, 6.0]]


def test_no_augmentation_still_drops_empty_masks():
    image, masks, labels = _sample(4, 4, [(0, 0, 2, 2), (1, 1, 1, 1)], [1, 2])
    _, m, lab, boxes = augment_sample(None, image, masks, labels)
    assert lab.tolist() == [1] and boxes.tolist() == [[0.0, 0.0, 2.0, 2.0]]


def test_bad_augmentation_results_are_named():
    image, masks, labels = _sample(4, 4, [(0, 0, 2, 2)], [1])
    with pytest.raises(DatasetError, match=r"img7: an augmentation must return \(image, target_dict\)"):
        augment_sample(lambda im, t: im, image, masks, labels, where="img7")

    def drops_a_mask(im, t):
        t = dict(t, masks=t["masks"][:0])
        return im, t

    with pytest.raises(DatasetError, match="they must agree"):
        augment_sample(drops_a_mask, image, masks, labels)


def test_presets_by_name():
    assert get_augmentation("none") is None and get_augmentation(None) is None
    assert isinstance(get_augmentation("default"), v2.Compose)
    assert isinstance(get_augmentation("STRONG"), v2.Compose)
    with pytest.raises(DatasetError, match="choose one of none, default, strong"):
        get_augmentation("extreme")


# ----------------------------------------------------------------------------- properties
@st.composite
def samples(draw):
    h = draw(st.integers(8, 32))
    w = draw(st.integers(8, 32))
    n = draw(st.integers(0, 4))
    rects = []
    for _ in range(n):
        y1 = draw(st.integers(0, h - 1))
        x1 = draw(st.integers(0, w - 1))
        rects.append((y1, x1, draw(st.integers(y1 + 1, h)), draw(st.integers(x1 + 1, w))))
    labels = [draw(st.integers(1, 3)) * draw(st.sampled_from([1, 1, -1])) for _ in range(n)]
    return h, w, rects, labels, draw(st.integers(0, 2**31 - 1))


def _check_invariants(image, masks, labels, out):
    img, m, lab, boxes = out
    assert img.dtype == torch.uint8 and img.ndim == 3 and img.shape[0] == 3
    assert m.dtype == torch.bool and m.shape[1:] == img.shape[1:] and m.shape[0] == len(lab) == len(boxes)
    assert lab.dtype == torch.int64 and boxes.dtype == torch.float32
    assert len(lab) <= len(labels)
    it = iter(labels.tolist())  # the survivors keep their order: a subsequence
    assert all(any(x == y for y in it) for x in lab.tolist())
    assert all(bool(mm.any()) for mm in m)  # no empty instance survives
    assert torch.equal(boxes, masks_to_boxes(m))  # boxes are the masks' boxes


@settings(max_examples=30, deadline=None)
@given(samples())
def test_strong_preset_invariants(sample):
    h, w, rects, labels, seed = sample
    image, masks, labels_t = _sample(h, w, rects, labels)
    torch.manual_seed(seed)
    out = augment_sample(strong_augmentation(), image, masks, labels_t)
    _check_invariants(image, masks, labels_t, out)
    side = round(max(h, w) * 1.25)  # the preset's largest scale
    assert out[0].shape[1] <= side and out[0].shape[2] <= side


@settings(max_examples=30, deadline=None)
@given(samples())
def test_exact_transforms_preserve_every_instance(sample):
    h, w, rects, labels, seed = sample
    image, masks, labels_t = _sample(h, w, rects, labels)
    torch.manual_seed(seed)
    aug = v2.Compose([v2.RandomHorizontalFlip(0.5), v2.RandomVerticalFlip(0.5), RandomRotate90()])
    out = augment_sample(aug, image, masks, labels_t)
    _check_invariants(image, masks, labels_t, out)
    img, m, lab, _ = out
    nonempty = [k for k in range(len(labels)) if masks[k].any()]
    assert lab.tolist() == [labels[k] for k in nonempty]
    assert sorted(m.flatten(1).sum(1).tolist()) == sorted(masks[nonempty].flatten(1).sum(1).tolist())
    for j, k in enumerate(nonempty):  # each mask still covers exactly its own pixels of the image
        assert bool((img[0][m[j]] == 40 * (k + 1)).all())
        assert int((img[0] == 40 * (k + 1)).sum()) == int(m[j].sum())


@settings(max_examples=25, deadline=None)
@given(samples())
def test_geometric_jitter_keeps_labels_with_their_pixels(sample):
    h, w, rects, labels, seed = sample
    labels = list(range(1, len(rects) + 1))  # unique labels name the original instance
    image, masks, labels_t = _sample(h, w, rects, labels)
    torch.manual_seed(seed)
    aug = v2.Compose([RandomRotate90(), RandomScale((0.7, 1.4), interpolation=v2.InterpolationMode.NEAREST),
                      RandomCropFraction(0.6)])
    out = augment_sample(aug, image, masks, labels_t)
    _check_invariants(image, masks, labels_t, out)
    img, m, lab, _ = out
    for j, label in enumerate(lab.tolist()):  # image and masks were resampled alike: pixels still match
        assert bool((img[0][m[j]] == 40 * label).all())
        assert int((img[0] == 40 * label).sum()) == int(m[j].sum())
