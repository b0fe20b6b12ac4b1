"""MaskHead / MaskPredictor: state-dict formats, init, shapes, equality with torchvision."""

from __future__ import annotations

import math

import torch
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor

from maskrcnn.model.mask_head import MaskHead, MaskPredictor


def test_mask_head_keys_and_torchvision_checkpoint():
    ours = MaskHead(in_channels=4, conv_channels=8, num_convs=3)
    assert list(ours.state_dict()) == [f"{i}.{p}" for i in range(3) for p in ("weight", "bias")]
    theirs = MaskRCNNHeads(4, [8, 8, 8], 1)
    # torchvision 0.29 keys are "<i>.0.weight": accepted as they are.
    assert "0.0.weight" in theirs.state_dict()
    result = ours.load_state_dict(theirs.state_dict())
    assert not result.missing_keys and not result.unexpected_keys
    x = torch.randn(3, 4, 14, 14)
    assert torch.equal(ours(x), theirs(x))


def test_mask_head_loads_old_mask_fcn_names_inside_a_parent():
    parent = torch.nn.Module()
    parent.mask_head = MaskHead(in_channels=2, conv_channels=3, num_convs=2)
    weights = {f"mask_head.mask_fcn{i + 1}.{p}": torch.full_like(t, float(i + 1))
               for i in range(2) for p, t in (("weight", parent.mask_head.get_submodule(str(i)).weight),
                                              ("bias", parent.mask_head.get_submodule(str(i)).bias))}
    parent.load_state_dict(weights)
    assert torch.all(parent.mask_head.get_submodule("1").weight == 2.0)


def test_mask_head_init_and_identity():
    torch.manual_seed(1)
    head = MaskHead(in_channels=32, conv_channels=64, num_convs=2)
    conv = head.get_submodule("1")
    assert torch.all(conv.bias == 0)
    expected_std = math.sqrt(2.0 / (64 * 9))  # kaiming normal, fan_out, relu
    assert abs(conv.weight.std().item() - expected_std) < 0.05 * expected_std
    identity = MaskHead(in_channels=5, conv_channels=7, num_convs=0)
    x = torch.randn(2, 5, 4, 4)
    assert identity.out_channels == 5 and torch.equal(identity(x), x)
    assert head.out_channels == 64


def test_mask_predictor_matches_torchvision():
    ours = MaskPredictor(in_channels=8, num_classes=3)
    theirs = MaskRCNNPredictor(8, 8, 3)
    assert list(ours.state_dict()) == [
        "conv5_mask.weight", "conv5_mask.bias", "mask_fcn_logits.weight", "mask_fcn_logits.bias"]
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(4, 8, 14, 14)
    out = ours(x)
    assert out.shape == (4, 3, 28, 28)
    assert torch.equal(out, theirs(x))


def test_mask_predictor_hidden_channels_and_upsampling_by_hand():
    pred = MaskPredictor(in_channels=1, num_classes=1, hidden_channels=1)
    with torch.no_grad():
        pred.conv5_mask.weight.copy_(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]))
        pred.conv5_mask.bias.zero_()
        pred.mask_fcn_logits.weight.fill_(1.0)
        pred.mask_fcn_logits.bias.fill_(-1.0)
    # A 1x1 input of value 1 becomes the 2x2 kernel (stride-2 transposed conv), then -1.
    assert pred(torch.ones(1, 1, 1, 1)).tolist() == [[[[0.0, 1.0], [2.0, 3.0]]]]
    wide = MaskPredictor(in_channels=4, num_classes=2, hidden_channels=6)
    assert wide.conv5_mask.out_channels == 6 and wide.mask_fcn_logits.in_channels == 6
