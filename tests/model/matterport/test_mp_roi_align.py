"""crop_and_resize and matterport's pyramid level, on hand-computed cases."""

import torch

from maskrcnn.model.matterport.roi_align import crop_and_resize, roi_levels


def test_crop_and_resize_samples_edge_to_edge():
    image = torch.arange(9.0).reshape(1, 1, 3, 3)
    ids = torch.zeros(1, dtype=torch.long)
    whole = crop_and_resize(image, torch.tensor([[0.0, 0.0, 1.0, 1.0]]), ids, (3, 3))
    assert torch.allclose(whole[0, 0], image[0, 0])
    corner = crop_and_resize(image, torch.tensor([[0.0, 0.0, 0.5, 0.5]]), ids, (2, 2))
    assert torch.allclose(corner[0, 0], torch.tensor([[0.0, 1.0], [3.0, 4.0]]))
    middle = crop_and_resize(image, torch.tensor([[0.25, 0.25, 0.75, 0.75]]), ids, (1, 1))
    assert torch.allclose(middle[0, 0], torch.tensor([[4.0]]))


def test_crop_and_resize_extrapolates_zero_outside():
    image = torch.arange(9.0).reshape(1, 1, 3, 3) + 1
    ids = torch.zeros(1, dtype=torch.long)
    # one row at y = 1, columns at x = 0, 1.5, 3 (outside: 0, as TensorFlow's extrapolation_value)
    out = crop_and_resize(image, torch.tensor([[0.0, 0.0, 1.0, 1.5]]), ids, (1, 3))
    assert torch.allclose(out[0, 0], torch.tensor([[4.0, 5.5, 0.0]]))


def test_crop_and_resize_reads_each_box_from_its_image():
    image = torch.stack([torch.full((1, 2, 2), 1.0), torch.full((1, 2, 2), 2.0)])
    out = crop_and_resize(image, torch.tensor([[0.0, 0.0, 1.0, 1.0]] * 3), torch.tensor([1, 0, 1]), (2, 2))
    assert out[:, 0, 0, 0].tolist() == [2.0, 1.0, 2.0]


def test_roi_levels():
    side = 224 / 1024  # a 224-pixel box of a 1024x1024 image: level 4
    boxes = torch.tensor([[0, 0, side, side], [0, 0, side / 2, side / 2], [0, 0, side * 4, side * 4],
                          [0, 0, side / 64, side / 64], [0.5, 0.5, 0.5, 0.5]])
    assert roi_levels(boxes, (1024, 1024)).tolist() == [4, 3, 5, 2, 2]
