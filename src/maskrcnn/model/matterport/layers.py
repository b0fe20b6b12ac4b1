"""Keras layers whose PyTorch equivalents compute differently: BatchNorm and ``"same"`` max-pooling."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class KerasBatchNorm(nn.Module):
    """matterport's ``BatchNorm(training=False)``: always the moving statistics, Keras' eps 1e-3.

    ``gamma``/``beta`` are parameters (``weight``/``bias``: trainable as in Keras, where ``layers=``
    decides), ``moving_mean``/``moving_variance`` are buffers (``running_mean``/``running_var``)
    that never change (matterport's ``TRAIN_BN = False``). Works on ``[N, C, ...]``.
    """

    def __init__(self, channels: int, *, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's ``"same"`` padding ``(before, after)`` of one axis: the extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def max_pool_same(x: Tensor, kernel: int, stride: int) -> Tensor:
    """``MaxPooling2D(kernel, strides=stride, padding="same")`` on ``[N, C, H, W]`` (padding never wins)."""
    top, bottom = same_padding(x.shape[-2], kernel, stride)
    left, right = same_padding(x.shape[-1], kernel, stride)
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
    return F.max_pool2d(x, kernel, stride)
