"""RPN: proposals and losses equal torchvision's; matterport's global top-k mode; head layout."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from torchvision.models.detection.anchor_utils import (
    AnchorGenerator as TVAnchorGenerator,
)
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.rpn import RegionProposalNetwork
from torchvision.models.detection.rpn import RPNHead as TVRPNHead

from maskrcnn.model.anchors import AnchorGenerator
from maskrcnn.model.probe import recording
from maskrcnn.model.rpn import RPN, AnchorIndex, RPNHead, flatten_predictions

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


def test_anchor_index_decodes_the_flattened_order():
    # levels of 2x3 and 1x2 positions, 2 anchors each: 12 + 4 = 16 anchors per image
    where = AnchorIndex.from_flat(torch.tensor([0, 1, 7, 11, 12, 15, 16, 31]), [(2, 3), (1, 2)], 2)
    assert where.image.tolist() == [0, 0, 0, 0, 0, 0, 1, 1]
    assert where.level.tolist() == [0, 0, 0, 0, 1, 1, 0, 1]
    assert where.y.tolist() == [0, 0, 1, 1, 0, 0, 0, 0]
    assert where.x.tolist() == [0, 0, 0, 2, 0, 1, 0, 1]
    assert where.anchor.tolist() == [0, 1, 1, 1, 0, 1, 0, 1]


@pytest.mark.parametrize("stride", [1, 2])
def test_predict_at_equals_the_dense_head_everywhere(stride):
    torch.manual_seed(0)
    head = RPNHead(in_channels=6, num_anchors=3, anchor_stride=stride)
    for p in head.parameters():
        torch.nn.init.normal_(p, std=0.3)
    feats = [torch.randn(2, 6, 9, 7), torch.randn(2, 6, 4, 5)]
    logits, deltas = head(feats)
    objectness, flat_deltas, _ = flatten_predictions(logits, deltas)
    shapes = [tuple(t.shape[-2:]) for t in logits]
    every = torch.arange(objectness.numel())
    got_logits, got_deltas = head.predict_at(feats, AnchorIndex.from_flat(every, shapes, 3))
    torch.testing.assert_close(got_logits, objectness.reshape(-1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got_deltas, flat_deltas.reshape(-1, 4), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sampled_head_losses_and_gradients_equal_the_dense_head(dtype):
    """float64: equal to rounding. float32 is the training dtype; there a rounding difference can in
    principle flip one ReLU of the head whose input is within ~1e-6 of zero and move a gradient by
    more than the tolerance (the same exposure as any two float32 evaluations of a ReLU network)."""
    _tv, ours, feats = _pair()
    ours.to(dtype).train()
    feats = OrderedDict((k, v.to(dtype)) for k, v in feats.items())
    targets = [{"boxes": torch.tensor([[10.0, 20.0, 60.0, 90.0], [70.0, 5.0, 140.0, 40.0]])},
               {"boxes": torch.tensor([[30.0, 30.0, 50.0, 44.0]])}]
    results, dense_backwards = {}, []
    ours.head.conv.register_full_backward_hook(lambda *_: dense_backwards.append(1))
    for sampled in (False, True):
        ours.sampled_head_grad = sampled
        ours.zero_grad()
        inputs = OrderedDict((k, v.clone().requires_grad_(True)) for k, v in feats.items())
        torch.manual_seed(3)
        proposals, losses = ours(BATCH, SIZES, inputs, targets)
        sum(losses.values()).backward()
        grads = [p.grad.clone() for p in ours.parameters()]
        grads += [v.grad if v.grad is not None else torch.zeros_like(v) for v in inputs.values()]
        results[sampled] = proposals, losses, grads
        # the dense 3x3 conv is differentiated once per level in the dense mode, never in the sampled one
        assert len(dense_backwards) == 5
    (dense_props, dense_losses, dense_grads), (props, losses, grads) = results[False], results[True]
    for a, b in zip(dense_props, props):
        assert torch.equal(a, b)
    exact = dtype == torch.float64
    for name in dense_losses:
        torch.testing.assert_close(losses[name], dense_losses[name], rtol=1e-12 if exact else 1e-6, atol=0)
    assert dense_grads[0].abs().max() > 0
    for a, b in zip(dense_grads, grads):
        torch.testing.assert_close(b, a, rtol=1e-10 if exact else 1e-5, atol=1e-14 if exact else 1e-7)


def test_sampled_head_grad_is_the_default_on_the_cpu():
    _tv, ours, feats = _pair()
    assert ours.sampled_head_grad is None  # auto: sampled where the features are on the CPU
    ours.train()
    dense_backwards = []
    ours.head.conv.register_full_backward_hook(lambda *_: dense_backwards.append(1))
    inputs = OrderedDict((k, v.clone().requires_grad_(True)) for k, v in feats.items())
    _, losses = ours(BATCH, SIZES, inputs, [{"boxes": torch.tensor([[10.0, 20.0, 60.0, 90.0]])}] * 2)
    sum(losses.values()).backward()
    assert dense_backwards == [] and ours.head.conv.weight.grad.abs().sum() > 0
