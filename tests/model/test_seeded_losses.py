"""Losses of a seeded tiny model on a fixed synthetic batch, against stored values.

Any change to initialization, anchors, matching, sampling, pooling, heads or losses moves
these numbers. If the change is intended, regenerate and paste the printed dict into
``EXPECTED``::

    python tests/model/test_seeded_losses.py

Also: a batch whose image has no objects trains (finite losses, zero box and mask
losses, gradients flow).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_overfit import SIZE, synthetic_scene, tiny_config

from maskrcnn.model.network import MaskRCNNNetwork

# Computed with torch 2.14.1 / torchvision 0.29.1 on CPU (regenerate: see the module docstring).
EXPECTED = {
    "rpn_class_loss": 0.6895238161087036,
    "rpn_bbox_loss": 0.14019542932510376,
    "mrcnn_class_loss": 1.2255998849868774,
    "mrcnn_bbox_loss": 0.03371192887425423,
    "mrcnn_mask_loss": 5.068692684173584,
}
RTOL = 1e-4


def _batch() -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Two images of different sizes: the synthetic scene with full masks, and its top 30×64 strip
    with its one object (the rectangle) given as a 14×14 mini mask."""
    image, masks, boxes, class_ids = synthetic_scene()
    first = {"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(class_ids),
             "masks": torch.from_numpy(masks), "iscrowd": torch.tensor([False, False])}
    crop = image[:30]  # 30×64: the rectangle only
    x1, y1, x2, y2 = boxes[0].astype(int)
    rect = torch.from_numpy(masks[0, y1:y2, x1:x2].astype(np.float32))
    mini = torch.nn.functional.interpolate(rect[None, None], size=(14, 14), mode="area")[0, 0] >= 0.5
    second = {"boxes": torch.from_numpy(boxes[:1]), "labels": torch.from_numpy(class_ids[:1]),
              "mini_masks": mini[None]}
    images = [torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1) for im in (image, crop)]
    return images, [first, second]


def seeded_losses() -> dict[str, float]:
    torch.manual_seed(1234)
    model = MaskRCNNNetwork(tiny_config(IMAGES_PER_GPU=2))
    model.train()
    images, targets = _batch()
    torch.manual_seed(99)  # the anchor / ROI sampling draws
    losses = model(images, targets)
    return {k: float(v.detach()) for k, v in losses.items()}


def test_seeded_losses_match_stored_values():
    got = seeded_losses()
    assert set(got) == set(EXPECTED)
    for name, value in EXPECTED.items():
        assert math.isclose(got[name], value, rel_tol=RTOL, abs_tol=1e-7), (name, got[name], value)


def test_image_without_objects_trains():
    torch.manual_seed(5)
    model = MaskRCNNNetwork(tiny_config())
    model.train()
    image, _, _, _ = synthetic_scene()
    x = torch.from_numpy(image).permute(2, 0, 1)
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
             "masks": torch.zeros(0, SIZE, SIZE, dtype=torch.bool)}
    losses = model([x], [empty])
    for name, value in losses.items():
        assert torch.isfinite(value), name
        assert value.requires_grad, name
    assert losses["rpn_class_loss"] > 0 and losses["mrcnn_class_loss"] > 0
    assert float(losses["rpn_bbox_loss"].detach()) == 0.0
    assert float(losses["mrcnn_bbox_loss"].detach()) == 0.0 and float(losses["mrcnn_mask_loss"].detach()) == 0.0
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert model.rpn.head.cls_logits.weight.grad.abs().sum() > 0
    assert model.roi_heads.box_predictor.cls_score.weight.grad.abs().sum() > 0


if __name__ == "__main__":
    print("EXPECTED = {")
    for key, val in seeded_losses().items():
        print(f'    "{key}": {val!r},')
    print("}")
