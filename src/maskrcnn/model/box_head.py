"""The box branch: two fully connected layers (``fc6``, ``fc7``) and the class/box predictor.

Parameter names match torchvision's ``TwoMLPHead`` and ``FastRCNNPredictor``
(``roi_heads.box_head.fc6.weight``, ``roi_heads.box_predictor.cls_score.weight``, ...),
so a torchvision checkpoint loads 1:1. Initialization is PyTorch's default for
``nn.Linear``, as in torchvision.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class BoxHead(nn.Module):
    """Flatten pooled ROI features and apply ``fc6`` + ReLU, ``fc7`` + ReLU.

    Args:
        in_channels: channels of the pooled features (the FPN width).
        pool_size: side of the pooled square (``POOL_SIZE``, 7).
        fc_size: width of both layers (``FPN_CLASSIF_FC_LAYERS_SIZE``, 1024).
    """

    def __init__(self, *, in_channels: int, pool_size: int, fc_size: int) -> None:
        super().__init__()
        self.out_features = int(fc_size)
        self.fc6 = nn.Linear(in_channels * pool_size * pool_size, fc_size)
        self.fc7 = nn.Linear(fc_size, fc_size)

    def forward(self, x: Tensor) -> Tensor:
        """``[R, C, P, P]`` pooled features → ``[R, fc_size]``."""
        x = x.flatten(start_dim=1)
        x = F.relu(self.fc6(x))
        return F.relu(self.fc7(x))


class BoxPredictor(nn.Module):
    """Class logits and class-specific box deltas from the box head's features.

    Args:
        in_features: width of the box head's output.
        num_classes: classes including the background (``NUM_CLASSES``).
    """

    def __init__(self, *, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.cls_score = nn.Linear(in_features, num_classes)
        self.bbox_pred = nn.Linear(in_features, num_classes * 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``[R, F]`` → ``(class_logits [R, C], box_deltas [R, 4C])``; deltas ``(dx, dy, dw, dh)`` per class."""
        x = x.flatten(start_dim=1)
        return self.cls_score(x), self.bbox_pred(x)
