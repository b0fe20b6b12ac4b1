"""The mask branch: a stack of 3×3 convolutions and the upsampling predictor.

State-dict keys: the convolutions are plain ``nn.Conv2d`` children named ``0``, ``1``, ...
(``roi_heads.mask_head.0.weight``). torchvision 0.29 wraps each in a
``Conv2dNormActivation`` (``roi_heads.mask_head.0.0.weight``); :class:`MaskHead` accepts
that form too when loading (and the pre-0.9 ``mask_fcn1`` names), so either kind of
checkpoint loads. The predictor's keys (``conv5_mask``, ``mask_fcn_logits``) match
torchvision's ``MaskRCNNPredictor``. Initialization as torchvision: Kaiming normal
(fan_out, relu) weights, zero conv biases in the head, default biases in the predictor.
"""

from __future__ import annotations

import re

import torch.nn.functional as F
from torch import Tensor, nn


class MaskHead(nn.Module):
    """``num_convs`` × (3×3 conv, padding 1, ReLU) on pooled ROI features.

    Args:
        in_channels: channels of the pooled features (the FPN width).
        conv_channels: channels of every convolution (``MASK_HEAD_CONV_CHANNELS``).
        num_convs: number of convolutions (``MASK_HEAD_NUM_CONVS``; 0 = identity).
    """

    def __init__(self, *, in_channels: int, conv_channels: int, num_convs: int) -> None:
        super().__init__()
        self.num_convs = int(num_convs)
        channels = in_channels
        for index in range(self.num_convs):
            conv = nn.Conv2d(channels, conv_channels, kernel_size=3, stride=1, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            self.add_module(str(index), conv)
            channels = conv_channels
        self.out_channels = channels

    def forward(self, x: Tensor) -> Tensor:
        """``[R, C_in, S, S]`` → ``[R, out_channels, S, S]``."""
        for conv in self.children():
            x = F.relu(conv(x))
        return x

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # Accept torchvision's "<i>.0.weight" (Conv2dNormActivation) and old "mask_fcn<i+1>.weight" keys.
        pattern = re.compile(re.escape(prefix) + r"(?:(\d+)\.0|mask_fcn(\d+))\.(weight|bias)$")
        for key in [k for k in state_dict if k.startswith(prefix)]:
            match = pattern.match(key)
            if match is None:
                continue
            index = int(match.group(1)) if match.group(1) is not None else int(match.group(2)) - 1
            new_key = f"{prefix}{index}.{match.group(3)}"
            if new_key not in state_dict:
                state_dict[new_key] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


class MaskPredictor(nn.Module):
    """Upsample ×2 (``conv5_mask``, 2×2 transposed conv, stride 2, ReLU) then per-class logits (1×1 conv).

    Args:
        in_channels: channels of the mask head's output.
        num_classes: classes including the background.
        hidden_channels: channels of ``conv5_mask`` (torchvision: 256 = the head's width; default ``in_channels``).
    """

    def __init__(self, *, in_channels: int, num_classes: int, hidden_channels: int | None = None) -> None:
        super().__init__()
        hidden = int(in_channels if hidden_channels is None else hidden_channels)
        self.conv5_mask = nn.ConvTranspose2d(in_channels, hidden, kernel_size=2, stride=2, padding=0)
        self.mask_fcn_logits = nn.Conv2d(hidden, num_classes, kernel_size=1, stride=1, padding=0)
        for module in (self.conv5_mask, self.mask_fcn_logits):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        """``[R, C, S, S]`` → mask logits ``[R, num_classes, 2S, 2S]``."""
        return self.mask_fcn_logits(F.relu(self.conv5_mask(x)))
