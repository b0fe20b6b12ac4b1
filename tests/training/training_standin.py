"""A tiny stand-in for MaskRCNN: the same parameter-name layout, a per-image-mean loss dict.

Lets the trainer's machinery (layers, checkpoints, resume, accumulation, distributed) be
tested exactly and fast without the real model.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

LOSS_NAMES = ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss", "mrcnn_mask_loss")


class _Body(nn.Module):
    def __init__(self, norm: str = "none") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4) if norm == "bn" else nn.GroupNorm(2, 4)
        for i in range(1, 5):
            setattr(self, f"layer{i}", nn.Sequential(nn.Conv2d(4, 4, 1, bias=False), nn.GroupNorm(2, 4)))

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        for i in range(1, 5):
            x = torch.relu(getattr(self, f"layer{i}")(x)) + x
        return x


class _FPN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner_blocks = nn.ModuleList([nn.Conv2d(4, 4, 1)])
        self.layer_blocks = nn.ModuleList([nn.Conv2d(4, 4, 3, padding=1)])

    def forward(self, x):
        return self.layer_blocks[0](self.inner_blocks[0](x))


class _Backbone(nn.Module):
    def __init__(self, norm: str) -> None:
        super().__init__()
        self.body = _Body(norm)
        self.fpn = _FPN()


class _RPNHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.cls_logits = nn.Conv2d(4, 1, 1)
        self.bbox_pred = nn.Conv2d(4, 4, 1)


class _RPN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = _RPNHead()


class _BoxPredictor(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(8, num_classes)
        self.bbox_pred = nn.Linear(8, 4 * num_classes)


class _RoIHeads(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.box_head = nn.Module()
        self.box_head.fc6 = nn.Linear(4, 8)
        self.box_head.fc7 = nn.Linear(8, 8)
        self.box_predictor = _BoxPredictor(num_classes)


class StandInModel(nn.Module):
    """``model(images, targets)`` → the five losses, each a mean over the images of a per-image
    squared error against ``target["value"]`` (so the mean over ranks is the global mean)."""

    def __init__(self, num_classes: int = 3, norm: str = "gn") -> None:
        super().__init__()
        self.backbone = _Backbone(norm)
        self.rpn = _RPN()
        self.roi_heads = _RoIHeads(num_classes)
        self.loss_scale = 1.0

    def forward(self, images, targets=None):
        x = torch.stack([im.float() / 255.0 for im in images])
        f = self.backbone.fpn(self.backbone.body(x))
        h = torch.relu(self.rpn.head.conv(f))
        obj = self.rpn.head.cls_logits(h).mean(dim=(1, 2, 3))  # [B]
        deltas = self.rpn.head.bbox_pred(h).mean(dim=(2, 3))  # [B,4]
        pooled = f.mean(dim=(2, 3))
        z = torch.relu(self.roi_heads.box_head.fc7(torch.relu(self.roi_heads.box_head.fc6(pooled))))
        cls = self.roi_heads.box_predictor.cls_score(z)
        box = self.roi_heads.box_predictor.bbox_pred(z)
        values = torch.stack([t["value"] for t in targets]).float()  # [B,5]
        preds = [obj, deltas.mean(1), cls.mean(1), box.mean(1), (cls.sum(1) - box.sum(1)) * 0.1]
        return {name: self.loss_scale * ((p - values[:, i]) ** 2).mean() for i, (name, p) in
                enumerate(zip(LOSS_NAMES, preds))}


class StandInSamples(Dataset):
    """``count`` random ``(uint8 image [3,S,S], {"value": float[5]})`` samples, fixed by ``seed``."""

    def __init__(self, count: int = 12, size: int = 8, seed: int = 0, nan_at: int | None = None) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randint(0, 256, (count, 3, size, size), generator=g, dtype=torch.uint8)
        self.values = torch.rand(count, 5, generator=g)
        if nan_at is not None:
            self.values[nan_at, 0] = float("nan")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], {"value": self.values[i]}


def collate(batch):
    return [b[0] for b in batch], [b[1] for b in batch]
