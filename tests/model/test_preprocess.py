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
