"""A tiny Mask R-CNN overfits one synthetic image: the whole training path learns.

ResNet-18 + GroupNorm, FPN 64 channels, box MLP 256, mask head 2×64, 64×64 image with a
rectangle (class 1) and a disc (class 2). 150 Adam steps, ~0.1 s each on two CPU
threads (with 100, a box-loss spike of the few positive ROIs was still settling on some CPUs'
rounding; 150 ended below the thresholds for every seed tried, 0-4). Checks that the total loss falls by ≥ 90 %, that every one of the five losses ends
small (so the mask loss' large start cannot carry the total alone), and that the trained
model then detects both objects with the right class, box and mask.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision import ops

from maskrcnn.config import Config
from maskrcnn.detector import MaskRCNN
from maskrcnn.model.network import MaskRCNNNetwork

SIZE = 64
STEPS = 150
LR_DROP = 60  # Adam at 1e-3, then 1e-4: the last steps settle instead of bouncing


def tiny_config(**overrides) -> Config:
    values = {
        "NAME": "tiny", "NUM_CLASSES": 3, "BACKBONE": "resnet18", "BACKBONE_NORM": "gn", "IMAGES_PER_GPU": 1,
        "IMAGE_RESIZE_MODE": "none", "IMAGE_MIN_DIM": SIZE, "IMAGE_MAX_DIM": SIZE, "PIXEL_STD": [58.0, 57.0, 57.0],
        "TOP_DOWN_PYRAMID_SIZE": 64, "FPN_CLASSIF_FC_LAYERS_SIZE": 256, "MASK_HEAD_CONV_CHANNELS": 64,
        "MASK_HEAD_NUM_CONVS": 2, "MASK_POOL_SIZE": 7, "MASK_SHAPE": [14, 14], "RPN_ANCHOR_SCALES": (8, 16, 32, 64, 128),
        "RPN_TRAIN_ANCHORS_PER_IMAGE": 64, "PRE_NMS_LIMIT": 500, "POST_NMS_ROIS_TRAINING": 100,
        "POST_NMS_ROIS_INFERENCE": 100, "TRAIN_ROIS_PER_IMAGE": 32, "DETECTION_MIN_CONFIDENCE": 0.5,
    }
    values.update(overrides)
    return Config(**values)


def synthetic_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(image H×W×3 uint8, masks [2,H,W] bool, boxes [2,4] xyxy, class ids [2])``."""
    image = np.full((SIZE, SIZE, 3), 30, np.uint8)
    rect = np.zeros((SIZE, SIZE), bool)
    rect[8:28, 10:34] = True
    yy, xx = np.mgrid[:SIZE, :SIZE]
    disc = (yy - 44) ** 2 + (xx - 42) ** 2 < 12 ** 2
    image[rect] = (220, 40, 40)
    image[disc] = (40, 200, 60)
    masks = np.stack([rect, disc])
    boxes = []
    for m in masks:  # tight boxes, x2/y2 exclusive (matterport's extract_bboxes)
        ys, xs = np.where(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    boxes = np.array(boxes, np.float32)
    return image, masks, boxes, np.array([1, 2])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def overfit(model: MaskRCNNNetwork, steps: int = STEPS) -> list[dict[str, float]]:
    """Train the network ``model`` on the synthetic scene (Adam 1e-3, then 1e-4 from ``LR_DROP``); the losses per step."""
    image, masks, boxes, class_ids = synthetic_scene()
    model.train()
    x = torch.from_numpy(image).permute(2, 0, 1)
    target = {"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(class_ids),
              "masks": torch.from_numpy(masks)}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[LR_DROP], gamma=0.1)
    history = []
    for _ in range(steps):
        losses = model([x], [target])
        total = sum(losses.values())
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        schedule.step()
        history.append({k: float(v.detach()) for k, v in losses.items()} | {"total": float(total.detach())})
    return history


def test_tiny_model_overfits_one_image():
    torch.manual_seed(0)
    image, masks, boxes, _class_ids = synthetic_scene()
    model = MaskRCNN(tiny_config(), device="cpu")
    history = overfit(model.network)

    first = history[0]["total"]
    last = {k: float(np.mean([h[k] for h in history[-10:]])) for k in history[-1]}
    assert last["total"] <= 0.1 * first, (first, last)
    assert last["rpn_class_loss"] < 0.05 and last["rpn_bbox_loss"] < 0.05, last
    assert last["mrcnn_class_loss"] < 0.1 and last["mrcnn_bbox_loss"] < 0.1, last
    assert last["mrcnn_mask_loss"] < 0.2, last

    result = model.detect([image])[0]
    assert len(result["class_ids"]) >= 2
    top = np.argsort(-result["scores"])[:2]
    for i in top:
        cls = int(result["class_ids"][i])
        assert cls in (1, 2)
        gt = cls - 1
        y1, x1, y2, x2 = (float(v) for v in result["rois"][i])
        box_iou = float(ops.box_iou(torch.tensor([[x1, y1, x2, y2]]), torch.from_numpy(boxes[gt:gt + 1])))
        assert box_iou > 0.7, (cls, result["rois"][i], boxes[gt])
        assert _iou(result["masks"][:, :, i], masks[gt]) > 0.8
    assert sorted(int(result["class_ids"][i]) for i in top) == [1, 2]
