"""ResNet trunk + feature pyramid network (torchvision's ``resnet_fpn_backbone`` math).

``ResNetFPN(depth=50, norm="frozen_bn", fpn_channels=256)`` maps an image batch
``[B,3,H,W]`` to an ``OrderedDict`` of feature maps ``p2..p6`` with strides 4..64,
each ``[B, fpn_channels, ceil(H/s), ceil(W/s)]``:

* ``.body`` is torchvision's ResNet definition (``conv1, bn1, layer1..layer4``; no
  ``avgpool``/``fc``) built with the chosen normalization, returning C2..C5;
* ``.fpn`` has lateral 1x1 convs ``inner_blocks[i]`` and 3x3 output convs
  ``layer_blocks[i]`` (plain ``Conv2d``; torchvision names them ``inner_blocks.i.0``),
  top-down nearest upsampling to the lateral's size, and P6 = ``max_pool2d(P5, 1, 2)``
  (torchvision's ``LastLevelMaxPool``).

C2..C5 are recorded as ``backbone.c2..c5`` and P2..P6 as ``fpn.p2..p6`` (see :mod:`.probe`).
Freezing layers is the trainer's job, not this module's.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import resnet as tv_resnet
from torchvision.ops import FrozenBatchNorm2d

from .fuse import conv_frozen_bn
from .probe import Probed

DEPTHS: dict[int, Callable[..., tv_resnet.ResNet]] = {
    18: tv_resnet.resnet18,
    34: tv_resnet.resnet34,
    50: tv_resnet.resnet50,
    101: tv_resnet.resnet101,
}
NORMS = ("frozen_bn", "bn", "gn")
LEVELS = ("p2", "p3", "p4", "p5", "p6")
STRIDES = (4, 8, 16, 32, 64)  # of P2..P6


def feature_shapes(height: int, width: int) -> list[tuple[int, int]]:
    """``(h, w)`` of P2..P6 for an input of ``height x width``, without running the network.

    Every stride-2 convolution and pooling of the trunk (and P6's ``max_pool2d(P5, 1, 2)``) rounds
    up, so level ``s`` is ``ceil(height / s) x ceil(width / s)``.
    """
    return [(-(-int(height) // s), -(-int(width) // s)) for s in STRIDES]


def norm_layer_factory(norm: str, *, gn_groups: int = 32) -> Callable[[int], nn.Module]:
    """The normalization layer constructor for ``norm``: FrozenBatchNorm2d (eps 1e-5), BatchNorm2d, GroupNorm."""
    if norm == "frozen_bn":
        return lambda channels: FrozenBatchNorm2d(channels, eps=1e-5)
    if norm == "bn":
        return nn.BatchNorm2d
    if norm == "gn":
        return lambda channels: nn.GroupNorm(gn_groups, channels)
    raise ValueError(f"norm={norm!r}: choose one of {', '.join(NORMS)}")


class ResNetBody(nn.Module):
    """The ResNet trunk of torchvision's definition without ``avgpool``/``fc``.

    ``forward(x [B,3,H,W]) -> [C2, C3, C4, C5]`` with strides 4, 8, 16, 32.

    Args:
        depth: 18, 34, 50 or 101.
        norm: see :func:`norm_layer_factory`.
        fold_frozen_bn: in training with frozen BN, fold each BN into its convolution on the fly
            (:func:`.fuse.conv_frozen_bn`); ``None`` (default): on the CPU only, where it was measured to
            pay (backbone+FPN forward 0.81-0.88× torchvision's); on an H200 the folded step measured slower.
    """

    def __init__(self, *, depth: int, norm: str, fold_frozen_bn: bool | None = None) -> None:
        super().__init__()
        self.fold_frozen_bn = fold_frozen_bn
        if depth not in DEPTHS:
            raise ValueError(f"depth={depth!r}: choose one of {', '.join(map(str, DEPTHS))}")
        net = DEPTHS[depth](weights=None, norm_layer=norm_layer_factory(norm))
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        expansion = 4 if depth >= 50 else 1
        self.out_channels = [64 * expansion * 2**i for i in range(4)]

    def forward(self, x: Tensor) -> list[Tensor]:
        if self.training and isinstance(self.bn1, FrozenBatchNorm2d):
            fold = self.fold_frozen_bn if self.fold_frozen_bn is not None else x.device.type == "cpu"
            if fold:
                return self._forward_folded(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c2, c3, c4, c5]

    def _forward_folded(self, x: Tensor) -> list[Tensor]:
        """Training with frozen BN: each BN folded into its conv on the fly (:func:`.fuse.conv_frozen_bn`).

        The same function as torchvision's blocks (BasicBlock / Bottleneck) up to float rounding, one
        elementwise pass less per convolution in the forward and in the backward (~13% of a ResNet-50
        training step's backbone time on CPU). Eval mode runs torchvision's modules unchanged (exact).
        """
        x = self.maxpool(F.relu(conv_frozen_bn(self.conv1, self.bn1, x), inplace=True))
        outputs = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in layer:
                x = _block_folded(block, x)
            outputs.append(x)
        return outputs


def _block_folded(block: nn.Module, x: Tensor) -> Tensor:
    """A torchvision BasicBlock/Bottleneck forward with :func:`.fuse.conv_frozen_bn` for conv → BN."""
    pairs = [(block.conv1, block.bn1), (block.conv2, block.bn2)]
    if hasattr(block, "conv3"):
        pairs.append((block.conv3, block.bn3))
    out = x
    for index, (conv, bn) in enumerate(pairs):
        out = conv_frozen_bn(conv, bn, out)
        if index < len(pairs) - 1:
            out = F.relu(out, inplace=True)
    identity = x if block.downsample is None else conv_frozen_bn(block.downsample[0], block.downsample[1], x)
    out += identity
    return F.relu(out, inplace=True)


class FPN(nn.Module):
    """Feature pyramid on C2..C5 → P2..P6 (torchvision's FeaturePyramidNetwork + LastLevelMaxPool).

    Args:
        in_channels: channels of C2..C5.
        out_channels: channels of every P level.
    """

    def __init__(self, *, in_channels: list[int], out_channels: int) -> None:
        super().__init__()
        self.inner_blocks = nn.ModuleList(nn.Conv2d(c, out_channels, kernel_size=1) for c in in_channels)
        self.layer_blocks = nn.ModuleList(
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1) for _ in in_channels
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_uniform_(module.weight, a=1)
                nn.init.constant_(module.bias, 0)
        self.out_channels = out_channels

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        """``[C2..C5]`` → ``[P2..P6]``."""
        last_inner = self.inner_blocks[-1](features[-1])
        results = [self.layer_blocks[-1](last_inner)]
        for idx in range(len(features) - 2, -1, -1):
            lateral = self.inner_blocks[idx](features[idx])
            top_down = F.interpolate(last_inner, size=lateral.shape[-2:], mode="nearest")
            last_inner = lateral + top_down
            results.insert(0, self.layer_blocks[idx](last_inner))
        results.append(F.max_pool2d(results[-1], kernel_size=1, stride=2, padding=0))
        return results


class ResNetFPN(nn.Module, Probed):
    """ResNet-FPN backbone: ``forward(x [B,3,H,W]) -> OrderedDict p2..p6``.

    Args:
        depth: 18, 34, 50 or 101.
        norm: ``"frozen_bn"`` (torchvision's FrozenBatchNorm2d, eps 1e-5), ``"bn"`` or ``"gn"`` (32 groups);
            applies to the ResNet trunk (the FPN convs have no normalization, as torchvision's v1).
        fpn_channels: channels of the pyramid levels (TOP_DOWN_PYRAMID_SIZE).
    """

    def __init__(self, *, depth: int = 50, norm: str = "frozen_bn", fpn_channels: int = 256) -> None:
        super().__init__()
        self.depth = depth
        self.norm = norm
        self.body = ResNetBody(depth=depth, norm=norm)
        self.fpn = FPN(in_channels=self.body.out_channels, out_channels=fpn_channels)
        self.out_channels = fpn_channels

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        cs = self.body(x)
        for i, c in enumerate(cs):
            self.probe(f"backbone.c{i + 2}", c)
        ps = self.fpn(cs)
        out = OrderedDict(zip(LEVELS, ps))
        for name, p in out.items():
            self.probe(f"fpn.{name}", p)
        return out


def set_frozen_bn_eps(module: nn.Module, eps: float) -> int:
    """Set ``eps`` of every FrozenBatchNorm2d in ``module`` (torchvision's COCO v1 weights need 0.0); returns count."""
    count = 0
    for m in module.modules():
        if isinstance(m, FrozenBatchNorm2d):
            m.eps = eps
            count += 1
    return count
