"""matterport's ResNet-50/101 + FPN (``resnet_graph`` and the FPN of ``MaskRCNN.build``).

``MatterportResNetFPN(depth=101)`` maps a molded batch ``[B, 3, H, W]`` (RGB minus MEAN_PIXEL,
``H`` and ``W`` multiples of 64) to an ``OrderedDict`` ``p2..p6`` of ``[B, 256, H/s, W/s]``,
``s = 4..64``. What differs from torchvision's ResNet (:mod:`..backbone`):

* every convolution carries a bias, and each stage's first block has its stride on the first
  1×1 convolution (``res3a_branch2a``), not on the 3×3 (ResNet "v1", Caffe layout);
* ``conv1`` is a 7×7 stride-2 convolution after 3 pixels of zero padding; the 3×3 stride-2 max-pool
  pads TensorFlow's way (``"same"``: the extra row/column after, padding never wins);
* BatchNorm is Keras' with eps 1e-3, always in inference mode (:class:`.layers.KerasBatchNorm`); not
  folded into the convolutions: unfolded, our float rounding stays closer to TensorFlow's, which
  matters where matterport's proposal layer is chaotic (near-equal RPN scores, NMS at the threshold);
* the maps are channels-last (NHWC, as TensorFlow's): measured about 1.8× faster on the CPU;
* the FPN upsamples by exactly 2 (``UpSampling2D``) and P6 is ``MaxPooling2D(1, strides=2)`` of P5.

Modules carry matterport's Keras layer names as the last component of their names
(``body.conv1``, ``body.bn_conv1``, ``body.layer1.a.res2a_branch2a`` … ``body.layer4.c.bn5c_branch2c``,
``fpn.fpn_c5p5`` … ``fpn.fpn_p2``): ``layer1..layer4`` are matterport's stages ``res2..res5``.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..probe import Probed
from .layers import KerasBatchNorm, max_pool_same

#: identity blocks after the first block of stage 4, per depth (matterport's ``block_count``).
STAGE4_IDENTITY_BLOCKS = {50: 5, 101: 22}
LEVELS = ("p2", "p3", "p4", "p5", "p6")


class Bottleneck(nn.Module):
    """matterport's ``conv_block`` (``shortcut=True``) or ``identity_block``.

    Args:
        stage, block: name parts (stage 2..5, block ``"a"``, ``"b"``, …).
        in_channels: channels of the input.
        filters: ``(f1, f2, f3)`` of the 1×1, 3×3 and 1×1 convolutions.
        stride: of the first 1×1 convolution and of the shortcut's.
        shortcut: a projection shortcut (``res{stage}{block}_branch1``) instead of the identity.
    """

    def __init__(self, *, stage: int, block: str, in_channels: int, filters: tuple[int, int, int],
                 stride: int = 1, shortcut: bool = False) -> None:
        super().__init__()
        conv, bn = f"res{stage}{block}_branch", f"bn{stage}{block}_branch"
        f1, f2, f3 = filters
        self.stride = stride
        self.names = (conv, bn)
        self.add_module(conv + "2a", nn.Conv2d(in_channels, f1, 1, stride=stride))
        self.add_module(bn + "2a", KerasBatchNorm(f1))
        self.add_module(conv + "2b", nn.Conv2d(f1, f2, 3, padding=1))
        self.add_module(bn + "2b", KerasBatchNorm(f2))
        self.add_module(conv + "2c", nn.Conv2d(f2, f3, 1))
        self.add_module(bn + "2c", KerasBatchNorm(f3))
        self.shortcut = shortcut
        if shortcut:
            self.add_module(conv + "1", nn.Conv2d(in_channels, f3, 1, stride=stride))
            self.add_module(bn + "1", KerasBatchNorm(f3))

    def forward(self, x: Tensor) -> Tensor:
        conv, bn = self.names
        m = self._modules
        out = F.relu(m[bn + "2a"](m[conv + "2a"](x)), inplace=True)
        out = F.relu(m[bn + "2b"](m[conv + "2b"](out)), inplace=True)
        out = m[bn + "2c"](m[conv + "2c"](out))
        identity = m[bn + "1"](m[conv + "1"](x)) if self.shortcut else x
        return F.relu(out + identity, inplace=True)


def _stage(stage: int, blocks: int, in_channels: int, filters: tuple[int, int, int], stride: int) -> nn.ModuleDict:
    layers = nn.ModuleDict()
    for index in range(blocks):
        letter = chr(ord("a") + index)
        layers[letter] = Bottleneck(stage=stage, block=letter, in_channels=in_channels if index == 0 else filters[2],
                                    filters=filters, stride=stride if index == 0 else 1, shortcut=index == 0)
    return layers


class MatterportResNet(nn.Module):
    """``resnet_graph(input, "resnet50"|"resnet101", stage5=True)``: ``[B,3,H,W]`` → ``[C2, C3, C4, C5]``."""

    def __init__(self, *, depth: int) -> None:
        super().__init__()
        if depth not in STAGE4_IDENTITY_BLOCKS:
            raise ValueError(f"depth={depth!r}: matterport's backbone is resnet50 or resnet101")
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2)
        self.bn_conv1 = KerasBatchNorm(64)
        self.layer1 = _stage(2, 3, 64, (64, 64, 256), 1)
        self.layer2 = _stage(3, 4, 256, (128, 128, 512), 2)
        self.layer3 = _stage(4, 1 + STAGE4_IDENTITY_BLOCKS[depth], 512, (256, 256, 1024), 2)
        self.layer4 = _stage(5, 3, 1024, (512, 512, 2048), 2)
        self.out_channels = [256, 512, 1024, 2048]

    def forward(self, x: Tensor) -> list[Tensor]:
        x = F.relu(self.bn_conv1(self.conv1(F.pad(x, (3, 3, 3, 3)))), inplace=True)
        x = max_pool_same(x, 3, 2)
        outputs = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer.values():
                x = block(x)
            outputs.append(x)
        return outputs


class MatterportFPN(nn.Module):
    """matterport's FPN: ``[C2..C5]`` → ``[P2..P6]``, ``out_channels`` each (TOP_DOWN_PYRAMID_SIZE)."""

    def __init__(self, *, in_channels: list[int], out_channels: int = 256) -> None:
        super().__init__()
        for level, channels in zip((2, 3, 4, 5), in_channels):
            self.add_module(f"fpn_c{level}p{level}", nn.Conv2d(channels, out_channels, 1))
        for level in (2, 3, 4, 5):
            self.add_module(f"fpn_p{level}", nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.out_channels = out_channels

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        m = self._modules
        c2, c3, c4, c5 = features
        p5 = m["fpn_c5p5"](c5)
        p4 = F.interpolate(p5, scale_factor=2, mode="nearest") + m["fpn_c4p4"](c4)
        p3 = F.interpolate(p4, scale_factor=2, mode="nearest") + m["fpn_c3p3"](c3)
        p2 = F.interpolate(p3, scale_factor=2, mode="nearest") + m["fpn_c2p2"](c2)
        outs = [m["fpn_p2"](p2), m["fpn_p3"](p3), m["fpn_p4"](p4), m["fpn_p5"](p5)]
        outs.append(outs[-1][..., ::2, ::2])  # MaxPooling2D(pool_size=1, strides=2)
        return outs


class MatterportResNetFPN(nn.Module, Probed):
    """matterport's backbone: ``forward(x [B,3,H,W]) -> OrderedDict p2..p6`` (see the module docstring).

    Args:
        depth: 50 or 101.
        fpn_channels: TOP_DOWN_PYRAMID_SIZE (256).
    """

    def __init__(self, *, depth: int = 101, fpn_channels: int = 256) -> None:
        super().__init__()
        self.depth = depth
        self.norm = "keras_bn"
        self.body = MatterportResNet(depth=depth)
        self.fpn = MatterportFPN(in_channels=self.body.out_channels, out_channels=fpn_channels)
        self.out_channels = fpn_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        cs = self.body(x.contiguous(memory_format=torch.channels_last))
        for i, c in enumerate(cs):
            self.probe(f"backbone.c{i + 2}", c)
        out = OrderedDict(zip(LEVELS, self.fpn(cs)))
        for name, p in out.items():
            self.probe(f"fpn.{name}", p)
        return out
