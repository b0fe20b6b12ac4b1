"""matterport's training targets on tiny cases, and a training step of the matterport network."""

import torch

from maskrcnn import MatterportConfig
from maskrcnn.model.matterport.geometry import norm_boxes
from maskrcnn.model.matterport.targets import detection_targets, rpn_losses, rpn_targets
from maskrcnn.model.network import MaskRCNNNetwork

STD = torch.tensor([0.1, 0.1, 0.2, 0.2])


def test_rpn_targets_positive_negative_neutral_and_crowd():
    shape = (64, 64)
    pixels = torch.tensor([[10.0, 10, 30, 30], [40, 40, 60, 60], [10, 15, 30, 35], [0, 40, 20, 60]])
    anchors = norm_boxes(pixels, shape)
    gt = {"boxes": torch.tensor([[10.0, 10, 30, 30]]), "class_ids": torch.tensor([1])}
    match, bbox = rpn_targets(anchors, shape, [gt], positive_iou=0.7, negative_iou=0.3, anchors_per_image=4,
                              std_dev=STD)
    # anchor 0 = the box (IoU 1); 1 and 3 miss it; 2 overlaps 15/25 of it: IoU 300/500 = 0.6 -> neutral
    assert match[0].tolist() == [1, -1, 0, -1]
    assert torch.allclose(bbox[0], torch.zeros(4, 4), atol=1e-5)
    crowd = {"boxes": torch.tensor([[10.0, 10, 30, 30], [38, 38, 62, 62]]), "class_ids": torch.tensor([1, -1])}
    match, _ = rpn_targets(anchors, shape, [crowd], positive_iou=0.7, negative_iou=0.3, anchors_per_image=4,
                           std_dev=STD)
    assert match[0].tolist() == [1, 0, 0, -1]  # touching a crowd: not a negative


def test_rpn_targets_deltas_of_a_shifted_anchor_and_losses():
    shape = (64, 64)
    anchors = norm_boxes(torch.tensor([[10.0, 12, 30, 32]]), shape)  # IoU 360/440 = 0.82 with the box
    gt = {"boxes": torch.tensor([[10.0, 10, 30, 30]]), "class_ids": torch.tensor([1])}
    match, bbox = rpn_targets(anchors, shape, [gt], positive_iou=0.7, negative_iou=0.3, anchors_per_image=2,
                              std_dev=STD)
    assert match.tolist() == [[1]]
    assert torch.allclose(bbox[0, 0], torch.tensor([0.0, -2 / 20 / 0.1, 0.0, 0.0]), atol=1e-5)
    logits = torch.tensor([[[0.0, 0.0]]])
    losses = rpn_losses(logits, torch.zeros(1, 1, 4), match, bbox)
    assert torch.isclose(losses["rpn_class_loss"], torch.log(torch.tensor(2.0)))
    assert torch.isclose(losses["rpn_bbox_loss"], torch.tensor(0.5 / 4))  # smooth L1 of |1| is 0.5, mean of 4


def test_detection_targets_positive_negative_padding_and_mini_mask():
    shape = (64, 64)
    gt_pixels = torch.tensor([[10.0, 10, 30, 30]])
    proposals = torch.cat([norm_boxes(torch.tensor([[10.0, 10, 30, 30], [40, 40, 60, 60]]), shape), torch.zeros(3, 4)])
    target = {"boxes": gt_pixels, "class_ids": torch.tensor([3]), "mini_masks": torch.ones(1, 56, 56)}
    rois, ids, deltas, masks = detection_targets(proposals, target, shape, rois_per_image=4, positive_ratio=0.5,
                                                 std_dev=STD, mask_shape=(28, 28))
    assert torch.allclose(rois[:2], proposals[:2]) and torch.equal(rois[2:], torch.zeros(2, 4))
    assert ids.tolist() == [3, 0, 0, 0]
    assert torch.allclose(deltas, torch.zeros(4, 4), atol=1e-5)
    # TensorFlow's sampling reaches 27 * (55 / 27) = 55.000004 > 55 on the last row and column, which
    # crop_and_resize then extrapolates as 0: matterport's own mask targets have that zero edge too.
    assert masks.shape == (1, 28, 28) and bool((masks[0, :27, :27] == 1).all())


def _tiny_config():
    class Tiny(MatterportConfig):
        NAME = "tiny"
        NUM_CLASSES = 3
        BACKBONE = "resnet50"
        IMAGE_MIN_DIM = 128
        IMAGE_MAX_DIM = 128
        RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
        PRE_NMS_LIMIT = 500
        POST_NMS_ROIS_TRAINING = 100
        TRAIN_ROIS_PER_IMAGE = 32
        USE_MINI_MASK = False
    return Tiny()


def test_matterport_network_trains():
    torch.manual_seed(0)
    net = MaskRCNNNetwork(_tiny_config())
    for m in net.modules():  # small random weights that keep activations finite
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.ConvTranspose2d)):
            torch.nn.init.normal_(m.weight, std=0.01)
    net.train()
    image = torch.zeros((3, 128, 128), dtype=torch.uint8)
    image[:, 30:70, 40:90] = 200
    masks = torch.zeros((1, 128, 128), dtype=torch.uint8)
    masks[0, 30:70, 40:90] = 1
    target = {"boxes": torch.tensor([[40.0, 30, 90, 70]]), "labels": torch.tensor([2]), "masks": masks}
    params = [p for n, p in net.named_parameters() if n.startswith(("rpn.", "roi_heads."))]
    optimizer = torch.optim.SGD(params, lr=0.005, momentum=0.9)
    history = []
    for _ in range(5):
        losses = net([image], [target])
        assert set(losses) == {"rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss",
                               "mrcnn_mask_loss"}
        total = sum(losses.values())
        assert torch.isfinite(total)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        history.append({k: float(v.detach()) for k, v in losses.items()})
    for key in ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss"):
        assert history[-1][key] < history[0][key], key
    assert net.roi_heads.box_head.mrcnn_class_bn1.weight.grad is not None  # Keras BN gamma trains (as in Keras)
