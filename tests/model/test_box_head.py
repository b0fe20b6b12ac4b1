"""BoxHead / BoxPredictor: parameter names, shapes, equality with torchvision's heads."""

from __future__ import annotations

import torch
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead

from maskrcnn.model.box_head import BoxHead, BoxPredictor


def test_box_head_matches_torchvision_two_mlp_head():
    ours = BoxHead(in_channels=4, pool_size=7, fc_size=16)
    theirs = TwoMLPHead(4 * 7 * 7, 16)
    assert list(ours.state_dict()) == ["fc6.weight", "fc6.bias", "fc7.weight", "fc7.bias"]
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(5, 4, 7, 7)
    out = ours(x)
    assert out.shape == (5, 16)
    assert ours.out_features == 16
    assert torch.equal(out, theirs(x))
    assert (out >= 0).all()  # ReLU after fc7


def test_box_head_by_hand():
    head = BoxHead(in_channels=1, pool_size=1, fc_size=2)
    with torch.no_grad():
        head.fc6.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        head.fc6.bias.zero_()
        head.fc7.weight.copy_(torch.tensor([[1.0, 1.0], [2.0, -3.0]]))
        head.fc7.bias.copy_(torch.tensor([0.5, 0.0]))
    # x=3: fc6 -> relu([3, -3]) = [3, 0]; fc7 -> relu([3.5, 6]) = [3.5, 6]
    assert head(torch.full((1, 1, 1, 1), 3.0)).tolist() == [[3.5, 6.0]]


def test_box_predictor_matches_torchvision():
    ours = BoxPredictor(in_features=16, num_classes=3)
    theirs = FastRCNNPredictor(16, 3)
    assert list(ours.state_dict()) == ["cls_score.weight", "cls_score.bias", "bbox_pred.weight", "bbox_pred.bias"]
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(6, 16)
    logits, deltas = ours(x)
    assert logits.shape == (6, 3) and deltas.shape == (6, 12)
    ref_logits, ref_deltas = theirs(x)
    assert torch.equal(logits, ref_logits) and torch.equal(deltas, ref_deltas)
