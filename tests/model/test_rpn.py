"""RPN: proposals and losses equal torchvision's; matterport's global top-k mode; head layout."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torchvision.models.detection.anchor_utils import (
    AnchorGenerator as TVAnchorGenerator,
)
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.models.detection.rpn import RPNHead as TVRPNHead

from maskrcnn.model.anchors import AnchorGenerator
from maskrcnn.model.probe import recording
from maskrcnn.model.rpn import RPN, RPNHead, flatten_predictions

SHAPES = [(32, 40), (16, 20), (8, 10), (4, 5), (2, 3)]
BATCH = (128, 160)
SIZES = [(128, 150), (100, 160)]


def _pair(channels: int = 16, **kw):
    torch.manual_seed(0)
    tv_head = TVRPNHead(channels, 3)
    for p in tv_head.parameters():
        torch.nn.init.normal_(p, std=0.3)
    tv = RegionProposalNetwork(
        TVAnchorGenerator(((8,), (16,), (32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 5), tv_head,
        fg_iou_thresh=0.7, bg_iou_thresh=0.3, batch_size_per_image=64, positive_fraction=0.5,
        pre_nms_top_n={"training": 300, "testing": 100}, post_nms_top_n={"training": 200, "testing": 50},
        nms_thresh=0.7)
    head = RPNHead(in_channels=channels, num_anchors=3)
    head.load_state_dict({k.replace("conv.0.0.", "conv."): v for k, v in tv_head.state_dict().items()})
    ours = RPN(head=head, anchor_generator=AnchorGenerator(scales=[8, 16, 32, 64, 128], ratios=[2.0, 1.0, 0.5],
                                                           strides=[4, 8, 16, 32, 64]),
               pre_nms_top_n_train=300, pre_nms_top_n_test=100, post_nms_top_n_train=200, post_nms_top_n_test=50,
               nms_thresh=0.7, per_level_nms=True, fg_iou=0.7, bg_iou=0.3, batch_size_per_image=64,
               positive_fraction=0.5, **kw)
    feats = OrderedDict((f"p{i + 2}", torch.randn(2, channels, h, w)) for i, (h, w) in enumerate(SHAPES))
    return tv, ours, feats


def test_inference_proposals_equal_torchvision():
    tv, ours, feats = _pair()
    tv.eval(), ours.eval()
    with torch.no_grad():
        expected, _ = tv(ImageList(torch.zeros(2, 3, *BATCH), SIZES), OrderedDict(zip("01234", feats.values())))
        with recording() as rec:
            got, losses = ours(BATCH, SIZES, feats)
    assert losses == {}
    for e, g in zip(expected, got):
        assert g.shape[0] == e.shape[0] == 50
        torch.testing.assert_close(g, e, rtol=0, atol=0)
    total = 3 * sum(h * w for h, w in SHAPES)
    assert rec["rpn.anchors"].shape == (total, 4)
    assert rec["rpn.objectness"].shape == (2, total) and rec["rpn.deltas"].shape == (2, total, 4)
    assert len(rec["rpn.pre_nms_boxes"]) == 2 and rec["rpn.proposals"][0] is not None


def test_training_losses_equal_torchvision():
    tv, ours, feats = _pair()
    tv.train(), ours.train()
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 60.0, 90.0], [70.0, 5.0, 140.0, 40.0]])},
               {"boxes": torch.tensor([[30.0, 30.0, 50.0, 44.0]])}]
    torch.manual_seed(3)
    _props_tv, loss_tv = tv(ImageList(torch.zeros(2, 3, *BATCH), SIZES), OrderedDict(zip("01234", feats.values())),
                           targets)
    torch.manual_seed(3)
    props, losses = ours(BATCH, SIZES, feats, targets)
    assert set(losses) == {"rpn_class_loss", "rpn_bbox_loss"}
    torch.testing.assert_close(losses["rpn_class_loss"], loss_tv["loss_objectness"])
    torch.testing.assert_close(losses["rpn_bbox_loss"], loss_tv["loss_rpn_box_reg"])
    assert all(p.shape[0] <= 200 and not p.requires_grad for p in props)
    (losses["rpn_class_loss"] + losses["rpn_bbox_loss"]).backward()
    assert ours.head.bbox_pred.weight.grad.abs().sum() > 0


def test_matterport_mode_takes_one_global_top_k():
    anchors = AnchorGenerator(scales=[8, 16], ratios=[1.0], strides=[4, 8])
    rpn = RPN(head=RPNHead(in_channels=4, num_anchors=1), anchor_generator=anchors, pre_nms_top_n_test=3,
              post_nms_top_n_test=10, nms_thresh=0.99, per_level_nms=False).eval()
    # objectness: make level-2 anchors (4 of them) the best; per-level mode would also keep 3 of level 1
    logits = [torch.full((1, 1, 4, 4), -5.0), torch.tensor([[[[4.0, 3.0], [2.0, 1.0]]]])]
    logits[0][0, 0, 0, 0] = 0.0
    deltas = [torch.zeros(1, 4, 4, 4), torch.zeros(1, 4, 2, 2)]
    objectness, _, counts = flatten_predictions(logits, deltas)
    all_anchors = torch.cat(anchors([(4, 4), (2, 2)], (16, 16)))
    boxes = all_anchors[None]
    kept = rpn.filter_proposals(boxes, objectness, [(16, 16)], counts)[0]
    expected = all_anchors[16:19]
    expected[:, 0::2] = expected[:, 0::2].clamp(0, 16)
    expected[:, 1::2] = expected[:, 1::2].clamp(0, 16)
    assert torch.equal(kept, expected)
    rpn.per_level_nms = True
    assert rpn.filter_proposals(boxes, objectness, [(16, 16)], counts)[0].shape[0] == 6


def test_head_shapes_and_anchor_stride():
    head = RPNHead(in_channels=8, num_anchors=3, anchor_stride=2)
    logits, deltas = head([torch.randn(1, 8, 9, 6)])
    assert logits[0].shape == (1, 3, 5, 3) and deltas[0].shape == (1, 12, 5, 3)
    rpn = RPN(head=head, anchor_generator=AnchorGenerator(scales=[8], ratios=[0.5, 1, 2], strides=[4],
                                                          anchor_stride=2),
              pre_nms_top_n_test=1000, post_nms_top_n_test=1000, nms_thresh=1.0).eval()
    with recording() as rec:
        rpn((36, 24), [(36, 24)], [torch.randn(1, 8, 9, 6)])
    assert rec["rpn.anchors"].shape == (5 * 3 * 3, 4)
