"""Preprocessing: equality with torchvision's transform, matterport's resize modes, targets."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from maskrcnn.model.preprocess import ImagePreprocessor

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def _pre(mode: str, **kw) -> ImagePreprocessor:
    args = {"mean": [m * 255 for m in MEAN], "std": [s * 255 for s in STD], "resize_mode": mode, "min_dim": 800,
                "max_dim": 1333, "pad_divisor": 32}
    args.update(kw)
    return ImagePreprocessor(**args)


def test_shortest_edge_equals_torchvision_with_targets():
    torch.manual_seed(0)
    images = [torch.randint(0, 256, (3, 300, 451), dtype=torch.uint8),
              torch.randint(0, 256, (3, 517, 333), dtype=torch.uint8)]
    masks = [torch.rand(2, 300, 451) > 0.5, torch.rand(1, 517, 333) > 0.5]
    boxes = [torch.tensor([[10.0, 20.0, 100.0, 200.0], [0.0, 0.0, 451.0, 300.0]]),
             torch.tensor([[5.5, 6.5, 50.0, 60.0]])]
    tv = GeneralizedRCNNTransform(800, 1333, MEAN, STD).eval()
    expected, tv_targets = tv([i.float() / 255 for i in images],
                              [{"boxes": b, "masks": m.to(torch.uint8)} for b, m in zip(boxes, masks)])
    batch, targets = _pre("shortest_edge")(images, [{"boxes": b, "masks": m} for b, m in zip(boxes, masks)])
    assert batch.tensor.shape == expected.tensors.shape == (2, 3, 1248, 1216)
    assert torch.equal(batch.tensor, expected.tensors)  # bit-identical
    assert batch.image_sizes == expected.image_sizes == [(800, 1202), (1242, 800)]
    assert batch.original_sizes == [(300, 451), (517, 333)]
    assert batch.scales[0] == pytest.approx(800 / 300)
    for t, e in zip(targets, tv_targets):
        torch.testing.assert_close(t["boxes"], e["boxes"], rtol=0, atol=0)
        assert t["masks"].dtype == torch.bool and torch.equal(t["masks"].to(torch.uint8), e["masks"])


def test_square_mode_by_hand():
    pre = ImagePreprocessor(mean=[10, 20, 30], std=[1, 1, 1], resize_mode="square", min_dim=64, max_dim=128,
                            pad_divisor=32)
    image = torch.full((3, 100, 50), 50, dtype=torch.uint8)
    batch, targets = pre([image], [{"boxes": torch.tensor([[10.0, 10.0, 20.0, 30.0]]),
                                    "masks": torch.ones(1, 100, 50, dtype=torch.bool)}])
    # scale = max(1, 64/50) = 1.28; round(100 * 1.28) = 128 <= 128 -> (128, 64), padded to 128 x 128
    assert batch.scales == [1.28] and batch.image_sizes == [(128, 64)]
    assert batch.tensor.shape == (1, 3, 128, 128)
    valid = batch.tensor[0, :, :, :64]
    torch.testing.assert_close(valid, torch.tensor([40.0, 30.0, 20.0])[:, None, None].expand_as(valid))
    assert batch.tensor[0, :, :, 64:].abs().max() == 0
    torch.testing.assert_close(targets[0]["boxes"], torch.tensor([[12.8, 12.8, 25.6, 38.4]]))
    assert targets[0]["masks"].shape == (1, 128, 64) and bool(targets[0]["masks"].all())
    # a large image is scaled down so that its long side fits max_dim
    batch, _ = pre([torch.zeros(3, 300, 200, dtype=torch.uint8)])
    assert batch.image_sizes == [(128, 85)] and batch.scales == [128 / 300]


def test_pad64_none_and_crop():
    kw = {"mean": [0, 0, 0], "std": [1, 1, 1], "min_dim": 64, "max_dim": 128, "pad_divisor": 32}
    batch, _ = ImagePreprocessor(resize_mode="pad64", **kw)([torch.zeros(3, 70, 100), torch.zeros(3, 65, 64)])
    assert batch.tensor.shape == (2, 3, 128, 128) and batch.image_sizes == [(70, 100), (65, 64)]
    batch, _ = ImagePreprocessor(resize_mode="none", **kw)([torch.zeros(3, 70, 100)])
    assert batch.tensor.shape == (1, 3, 96, 128) and batch.scales == [1.0]
    crop = ImagePreprocessor(resize_mode="crop", **kw)
    image = torch.arange(100 * 120, dtype=torch.float32).reshape(1, 100, 120).expand(3, -1, -1)
    boxes = torch.tensor([[0.0, 0.0, 120.0, 100.0], [110.0, 90.0, 119.0, 99.0]])
    mini = torch.zeros(2, 8, 8, dtype=torch.bool)
    mini[:, :, :4] = True  # left half of each box
    torch.manual_seed(1)
    batch, targets = crop([image], [{"boxes": boxes, "labels": torch.tensor([1, 2]), "mini_masks": mini}],
                          training=True)
    torch.manual_seed(1)
    y, x = int(torch.randint(0, 37, ())), int(torch.randint(0, 57, ()))
    assert batch.image_sizes == [(64, 64)]
    assert batch.tensor[0, 0, 0, 0].item() == pytest.approx(y * 120 + x, abs=1e-3)
    t = targets[0]
    kept_second = x + 64 > 110 and y + 64 > 90
    assert t["labels"].tolist() == ([1, 2] if kept_second else [1])
    assert t["boxes"][0].tolist() == [0.0, 0.0, 64.0, 64.0]
    # the crop of box 0 covers x in [x, x+64) of 120 px: the mini mask's left half (x < 60) maps accordingly
    cols = t["mini_masks"][0].any(dim=0)
    expected_true = round(max(0, min(64, 60 - x)) / 64 * 8)
    assert abs(int(cols.sum()) - expected_true) <= 1
    # at inference "crop" behaves as "square"
    batch, _ = crop([image])
    assert batch.image_sizes == [(100, 120)] and batch.tensor.shape == (1, 3, 128, 128)


def test_bad_inputs():
    with pytest.raises(ValueError, match="resize_mode"):
        _pre("stretch")
    with pytest.raises(ValueError, match=r"images\[0\]"):
        _pre("none")([torch.zeros(4, 10, 10)])


# ---------------------------------------------------------------------------- the one geometry, by hand
# (matterport's resize_image cases, on the model's bottom/right padding: the only resize of the package)
def _plain(mode: str, **kw) -> ImagePreprocessor:
    """No normalization (mean 0, std 1): the batch holds the resized pixel values (up to float rounding)."""
    return ImagePreprocessor(mean=[0, 0, 0], std=[1, 1, 1], resize_mode=mode, pad_divisor=16, **kw)


def _ramp(h: int, w: int) -> torch.Tensor:
    return (torch.arange(h * w * 3) % 251).to(torch.uint8).reshape(3, h, w)


def test_square_pads_bottom_right_without_scaling():
    image = _ramp(4, 8)
    batch, _ = _plain("square", min_dim=4, max_dim=16)([image])
    assert batch.scales == [1.0] and batch.image_sizes == [(4, 8)] and batch.tensor.shape == (1, 3, 16, 16)
    torch.testing.assert_close(batch.tensor[0, :, :4, :8], image.float())
    assert batch.tensor[0, :, 4:].abs().sum() == 0 and batch.tensor[0, :, :, 8:].abs().sum() == 0


def test_square_scales_up_to_min_dim_and_caps_the_long_side():
    batch, _ = _plain("square", min_dim=8, max_dim=32)([torch.full((3, 4, 8), 77, dtype=torch.uint8)])
    assert batch.scales == [2.0] and batch.image_sizes == [(8, 16)] and batch.tensor.shape == (1, 3, 32, 32)
    assert (batch.tensor[0, :, :8, :16] == 77).all() and batch.tensor.sum() == 77 * 8 * 16 * 3
    batch, _ = _plain("square", min_dim=20, max_dim=32)([torch.full((3, 10, 40), 5, dtype=torch.uint8)])
    assert batch.scales == [pytest.approx(0.8)] and batch.image_sizes == [(8, 32)]
    assert batch.tensor.shape == (1, 3, 32, 32)


def test_min_scale_forces_upscaling():
    batch, _ = _plain("square", min_dim=0, max_dim=40, min_scale=2)([_ramp(10, 10)])
    assert batch.scales == [2.0] and batch.image_sizes == [(20, 20)] and batch.tensor.shape == (1, 3, 48, 48)


def test_shortest_edge_by_hand():
    batch, _ = _plain("shortest_edge", min_dim=40, max_dim=50)([_ramp(20, 30)])
    assert batch.scales == [pytest.approx(50 / 30)] and batch.image_sizes == [(33, 50)]


def test_bilinear_resize_of_a_ramp_is_pixel_center_aligned():
    ramp = torch.tensor([0.0, 50.0, 100.0, 150.0]).expand(3, 4, 4)  # 0 50 100 150 along x
    batch, _ = _plain("square", min_dim=8, max_dim=8)([ramp])
    # align_corners=False: output column j samples x = (j + .5) / 2 - .5, clamped at the borders
    torch.testing.assert_close(batch.tensor[0, 0, 0, :8], torch.tensor([0, 12.5, 37.5, 62.5, 87.5, 112.5, 137.5, 150]))


def test_masks_and_boxes_follow_the_image():
    mask = torch.zeros(2, 6, 10, dtype=torch.bool)
    mask[0, 2:4, 2:6] = True
    mask[1, 0, 0] = True
    boxes = torch.tensor([[2.0, 2.0, 6.0, 4.0], [0.0, 0.0, 1.0, 1.0]])
    batch, (t,) = _plain("square", min_dim=12, max_dim=32)([_ramp(6, 10)], [{"boxes": boxes, "masks": mask}])
    assert batch.scales == [2.0] and batch.image_sizes == [(12, 20)]
    assert t["masks"].shape == (2, 12, 20) and t["masks"].dtype == torch.bool
    assert t["masks"][0].sum() == 32 and t["masks"][0, 4:8, 4:12].all()
    assert t["masks"][1].sum() == 4 and t["masks"][1, :2, :2].all()
    assert t["boxes"].tolist() == [[4.0, 4.0, 12.0, 8.0], [0.0, 0.0, 2.0, 2.0]]  # = the boxes of the resized masks
