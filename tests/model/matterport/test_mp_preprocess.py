"""matterport's molding: scale rule, centred padding, truncation, -MEAN_PIXEL padding."""

import pytest
import torch

from maskrcnn.model.matterport.preprocess import MatterportPreprocessor, resize_scale

MEAN = [123.7, 116.8, 103.9]


def test_square_mode_scales_pads_centred_and_subtracts_the_mean():
    pre = MatterportPreprocessor(mean=MEAN, resize_mode="square", min_dim=64, max_dim=128)
    image = torch.full((3, 100, 200), 200, dtype=torch.uint8)
    batch, _ = pre([image])
    assert batch.tensor.shape == (1, 3, 128, 128)
    assert batch.scales == [0.64] and batch.windows == [(32, 0, 96, 128)]
    assert torch.allclose(batch.tensor[0, :, 0, 0], -torch.tensor(MEAN))           # padding = black pixels
    assert torch.allclose(batch.tensor[0, :, 64, 64], 200 - torch.tensor(MEAN))


def test_pad64_and_upscaling_rule():
    assert resize_scale(100, 200, mode="pad64", min_dim=128, max_dim=0, min_scale=0) == 1.28
    assert resize_scale(1000, 2000, mode="pad64", min_dim=128, max_dim=0, min_scale=0) == 1.0  # never downscales
    pre = MatterportPreprocessor(mean=MEAN, resize_mode="pad64", min_dim=64, max_dim=0)
    batch, _ = pre([torch.zeros((3, 70, 64), dtype=torch.uint8)])
    assert batch.tensor.shape[-2:] == (128, 64) and batch.windows == [(29, 0, 99, 64)]


def test_uint8_images_are_truncated_after_resizing():
    pre = MatterportPreprocessor(mean=[0, 0, 0], resize_mode="square", min_dim=8, max_dim=8)
    image = torch.tensor([[10, 13]], dtype=torch.uint8).repeat(3, 2, 2)  # 4x4 -> 8x8 (scale 2)
    batch, _ = pre([image])
    row = batch.tensor[0, 0, 3].tolist()
    assert all(v == int(v) for v in row)  # integers again (truncated), as resize_image's astype(uint8)


def test_none_mode_takes_multiples_of_32_as_matterport():
    pre = MatterportPreprocessor(mean=MEAN, resize_mode="none", min_dim=0, max_dim=0)
    batch, _ = pre([torch.zeros((3, 480, 640), dtype=torch.uint8)])  # COCO's size: matterport runs it unpadded
    assert batch.tensor.shape[-2:] == (480, 640) and batch.windows == [(0, 0, 480, 640)]
    with pytest.raises(ValueError, match="multiples of 32"):
        pre([torch.zeros((3, 70, 64), dtype=torch.uint8)])


def test_targets_follow_the_padding():
    pre = MatterportPreprocessor(mean=MEAN, resize_mode="square", min_dim=32, max_dim=64)
    masks = torch.zeros((1, 32, 64), dtype=torch.uint8)
    masks[0, 4:8, 10:20] = 1
    target = {"boxes": torch.tensor([[10.0, 4.0, 20.0, 8.0]]), "labels": torch.tensor([1]), "masks": masks}
    batch, (out,) = pre([torch.zeros((3, 32, 64), dtype=torch.uint8)], [target], training=True)
    assert batch.windows == [(16, 0, 48, 64)]
    assert out["boxes"].tolist() == [[10.0, 20.0, 20.0, 24.0]]
    assert out["masks"].shape == (1, 64, 64) and out["masks"][0, 20:24, 10:20].all() and out["masks"].sum() == 40


@pytest.mark.parametrize("mode,min_dim,max_dim,size,expected", [
    ("square", 800, 1024, (683, 1024), (1024, 1024)),
    ("pad64", 512, 1024, (480, 640), (512, 704)),     # scale 512/480: 512 x 683, padded to multiples of 64
    ("none", 800, 1024, (480, 640), (480, 640)),
    ("crop", 256, 1024, (300, 500), (1024, 1024)),    # at inference "crop" molds as "square"
])
def test_molded_size_is_the_size_molding_gives(mode, min_dim, max_dim, size, expected):
    prep = MatterportPreprocessor(mean=[0.0, 0.0, 0.0], resize_mode=mode, min_dim=min_dim, max_dim=max_dim)
    assert prep.molded_size(*size) == expected
    batch, _ = prep([torch.zeros((3, *size), dtype=torch.uint8)])
    assert tuple(batch.tensor.shape[-2:]) == expected
