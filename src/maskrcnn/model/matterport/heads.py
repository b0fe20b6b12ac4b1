"""matterport's box and mask heads (``fpn_classifier_graph``, ``build_fpn_mask_graph``) on pooled ROIs.

* :class:`MatterportBoxHead`: ``mrcnn_class_conv1`` (a ``POOL_SIZE × POOL_SIZE`` "valid" convolution,
  i.e. a fully connected layer) → ``mrcnn_class_bn1`` → ReLU → ``mrcnn_class_conv2`` (1×1) → ``mrcnn_class_bn2``
  → ReLU: ``[K, 256, 7, 7]`` → ``[K, 1024]``;
* :class:`MatterportBoxPredictor`: ``mrcnn_class_logits`` ``[K, C]`` and ``mrcnn_bbox_fc`` → ``[K, C, 4]``
  class-specific ``(dy, dx, log dh, log dw)`` (before BBOX_STD_DEV);
* :class:`MatterportMaskHead`: 4 × (3×3 conv ``mrcnn_mask_conv{i}`` → ``mrcnn_mask_bn{i}`` → ReLU), then
  ``mrcnn_mask_deconv`` (2×2 stride-2 transposed conv) → ReLU: ``[K, 256, 14, 14]`` → ``[K, 256, 28, 28]``;
* :class:`MatterportMaskPredictor`: ``mrcnn_mask`` 1×1 → ``[K, C, 28, 28]`` logits (sigmoid = matterport's output).

BatchNorm is Keras' in inference mode (:class:`.layers.KerasBatchNorm`), as matterport runs it with
``TRAIN_BN = False``. Module names are matterport's Keras layer names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import KerasBatchNorm


class MatterportBoxHead(nn.Module):
    """Args: in_channels (256), pool_size (POOL_SIZE), fc_size (FPN_CLASSIF_FC_LAYERS_SIZE)."""

    def __init__(self, *, in_channels: int = 256, pool_size: int = 7, fc_size: int = 1024) -> None:
        super().__init__()
        self.mrcnn_class_conv1 = nn.Conv2d(in_channels, fc_size, pool_size)
        self.mrcnn_class_bn1 = KerasBatchNorm(fc_size)
        self.mrcnn_class_conv2 = nn.Conv2d(fc_size, fc_size, 1)
        self.mrcnn_class_bn2 = KerasBatchNorm(fc_size)
        self.out_features = fc_size

    def forward(self, x: Tensor) -> Tensor:
        # A "valid" convolution as large as its input is a fully connected layer: computed as one (faster).
        conv1, conv2 = self.mrcnn_class_conv1, self.mrcnn_class_conv2
        x = self.mrcnn_class_bn1(F.linear(x.flatten(1), conv1.weight.flatten(1), conv1.bias)[:, :, None, None])
        x = F.relu(x, inplace=True)
        x = self.mrcnn_class_bn2(F.linear(x.flatten(1), conv2.weight.flatten(1), conv2.bias)[:, :, None, None])
        return F.relu(x, inplace=True).flatten(1)


class MatterportBoxPredictor(nn.Module):
    """``[K, F]`` → ``(logits [K, C], deltas [K, C, 4])``. Args: in_features, num_classes."""

    def __init__(self, *, in_features: int = 1024, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.mrcnn_class_logits = nn.Linear(in_features, num_classes)
        self.mrcnn_bbox_fc = nn.Linear(in_features, num_classes * 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.mrcnn_class_logits(x), self.mrcnn_bbox_fc(x).reshape(-1, self.num_classes, 4)


class MatterportMaskHead(nn.Module):
    """Args: in_channels (256), conv_channels (256), num_convs (4)."""

    def __init__(self, *, in_channels: int = 256, conv_channels: int = 256, num_convs: int = 4) -> None:
        super().__init__()
        self.num_convs = num_convs
        for i in range(1, num_convs + 1):
            self.add_module(f"mrcnn_mask_conv{i}", nn.Conv2d(in_channels if i == 1 else conv_channels,
                                                             conv_channels, 3, padding=1))
            self.add_module(f"mrcnn_mask_bn{i}", KerasBatchNorm(conv_channels))
        self.mrcnn_mask_deconv = nn.ConvTranspose2d(conv_channels, conv_channels, 2, stride=2)
        self.out_channels = conv_channels

    def forward(self, x: Tensor) -> Tensor:
        m = self._modules
        x = x.contiguous(memory_format=torch.channels_last)
        for i in range(1, self.num_convs + 1):
            x = F.relu(m[f"mrcnn_mask_bn{i}"](m[f"mrcnn_mask_conv{i}"](x)), inplace=True)
        return F.relu(self.mrcnn_mask_deconv(x), inplace=True)


class MatterportMaskPredictor(nn.Module):
    """``[K, 256, 28, 28]`` → mask logits ``[K, C, 28, 28]``. Args: in_channels, num_classes."""

    def __init__(self, *, in_channels: int = 256, num_classes: int) -> None:
        super().__init__()
        self.mrcnn_mask = nn.Conv2d(in_channels, num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.mrcnn_mask(x)
