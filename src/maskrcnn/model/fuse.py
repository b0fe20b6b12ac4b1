"""Frozen BatchNorm folded into the convolutions (training and inference), and inference transforms.

A ``FrozenBatchNorm2d`` after a convolution is an affine map per output channel,
``y = x * s + t`` with ``s = weight / sqrt(running_var + eps)`` and
``t = bias - running_mean * s`` (torchvision's arithmetic). Folding it into the
convolution before it gives one convolution with weight ``W * s`` (per output channel)
and bias ``b * s + t`` — the same function, one pass over the activations less per
normalization layer (53 of them in a ResNet-50). The outputs of the folded model equal the
original's to float rounding (relative differences of about 1e-6 per layer).

* :func:`conv_frozen_bn` computes ``bn(conv(x))`` with the fold done on the fly — differentiable, the
  ResNet trunk (:class:`~maskrcnn.model.backbone.ResNetBody`) uses it in training with frozen BN; in
  eval mode the trunk keeps torchvision's exact conv → BN arithmetic (the parity test's bit equality);
* :func:`fold_conv_bn` folds one pair; :func:`fuse_frozen_bn` every ``conv → bn`` pair of a
  model (torchvision's ResNet naming: ``convK``/``bnK`` siblings, ``conv1``/``bn1`` of the
  stem, and ``Sequential(conv, bn)`` downsample branches). Eval-mode ``nn.BatchNorm2d`` with
  running statistics is folded too when ``batchnorm=True`` (a trained ``TRAIN_BN`` model);
  ``GroupNorm`` cannot be folded and is left alone.
* :func:`prepare_for_inference` applies the inference transforms that pay off on the
  device: BN folding, channels-last memory format (CPU and CUDA convolutions run faster in
  NHWC), optionally ``torch.compile`` of the backbone and mixed precision on CUDA.

The folded model is for inference: its state dict lacks the ``bn*`` buffers (save the
unfolded model), and fine-tuning it would train a reparametrized network. By default a
deep copy is transformed and the given model is left untouched.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

log = logging.getLogger(__name__)

__all__ = ["conv_frozen_bn", "fold_conv_bn", "fuse_frozen_bn", "is_fused", "prepare_for_inference"]

_FUSED_ATTR = "_maskrcnn_bn_fused"


def _bn_affine(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale [C], shift [C])`` of a frozen (or eval-mode) batch norm, in float64 for exactness."""
    weight = bn.weight.detach().double() if bn.weight is not None else None
    bias = bn.bias.detach().double() if bn.bias is not None else None
    mean = bn.running_mean.detach().double()
    var = bn.running_var.detach().double()
    scale = torch.rsqrt(var + float(bn.eps))
    if weight is not None:
        scale = weight * scale
    shift = -mean * scale
    if bias is not None:
        shift = shift + bias
    return scale, shift


def _foldable(bn: nn.Module, *, batchnorm: bool) -> bool:
    if isinstance(bn, FrozenBatchNorm2d):
        return True
    if batchnorm and isinstance(bn, nn.BatchNorm2d):
        return (not bn.training) and bn.track_running_stats and bn.running_mean is not None
    return False


_AFFINE_CACHE_ATTR = "_maskrcnn_affine_cache"


def _cached_bn_affine(bn: nn.Module, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_bn_affine` in ``dtype``, kept on the module until one of its buffers changes.

    The key holds each buffer's storage address and version counter (``load_state_dict``, ``copy_``
    and in-place edits bump the version; ``.to()`` and ``deepcopy`` make new storage), and ``eps``.
    On CUDA this saves about ten small kernel launches per convolution and step.
    """
    tensors = [t for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var) if t is not None]
    key = (tuple((t.data_ptr(), t._version) for t in tensors), float(bn.eps), dtype)
    cached = getattr(bn, _AFFINE_CACHE_ATTR, None)
    if cached is None or cached[0] != key:
        scale, shift = (t.to(dtype) for t in _bn_affine(bn))
        cached = (key, scale, shift)
        object.__setattr__(bn, _AFFINE_CACHE_ATTR, cached)  # a plain attribute: not a buffer, not saved
    return cached[1], cached[2]


def conv_frozen_bn(conv: nn.Conv2d, bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``bn(conv(x))`` for a frozen ``bn``, computed as one convolution with folded weights.

    ``conv(x, W * s, b * s + t)``: differentiable in ``W`` (and ``b``), so it serves training — the
    gradient is the same up to float rounding and the elementwise BN pass disappears from the forward
    and the backward. ``s`` and ``t`` are constants (the BN is frozen), computed in float64 once and
    cached until the BN's buffers change; ``W * s`` is taken on every call (``W`` trains).
    """
    scale, shift = _cached_bn_affine(bn, conv.weight.dtype)
    weight = conv.weight * scale.view(-1, 1, 1, 1)
    bias = shift if conv.bias is None else conv.bias * scale + shift
    return conv._conv_forward(x, weight, bias)


def fold_conv_bn(conv: nn.Conv2d, bn: nn.Module) -> nn.Conv2d:
    """A new ``Conv2d`` computing ``bn(conv(x))`` (``bn`` frozen or in eval mode).

    The weight ``[O, I/g, kh, kw]`` is scaled per output channel ``O``; the new conv always has
    a bias. Computed in float64 and cast back to the conv's dtype.
    """
    if conv.out_channels != bn.running_mean.numel():
        raise ValueError(f"fold_conv_bn: conv has {conv.out_channels} output channels but the norm "
                         f"has {bn.running_mean.numel()}")
    scale, shift = _bn_affine(bn)
    weight = conv.weight.detach()
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
        dilation=conv.dilation, groups=conv.groups, bias=True, padding_mode=conv.padding_mode,
        device=weight.device, dtype=weight.dtype,
    )
    conv_bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros_like(shift)
    with torch.no_grad():
        fused.weight.copy_((weight.double() * scale.view(-1, 1, 1, 1)).to(weight.dtype))
        fused.bias.copy_((conv_bias * scale + shift).to(weight.dtype))
    # Keep the memory format (channels-last weights stay channels-last).
    if weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous():
        fused.to(memory_format=torch.channels_last)
    fused.train(conv.training)
    return fused


def _pairs(module: nn.Module) -> list[tuple[str, str]]:
    """Names of ``(conv, bn)`` children of ``module`` where the norm directly follows the conv."""
    children = dict(module.named_children())
    pairs = []
    if isinstance(module, nn.Sequential):
        names = list(children)
        for first, second in zip(names, names[1:]):
            pairs.append((first, second))
        return pairs
    for name in children:
        if name.startswith("conv"):
            suffix = name[len("conv"):]
            partner = "bn" + suffix
            if partner in children:
                pairs.append((name, partner))
    return pairs


def fuse_frozen_bn(model: nn.Module, *, inplace: bool = False, batchnorm: bool = True) -> nn.Module:
    """Fold every normalization layer that follows a convolution into it.

    Args:
        model: any module; torchvision-style ResNets (ours: ``model.backbone.body``) are covered.
        inplace: transform ``model`` itself instead of a deep copy.
        batchnorm: also fold ``nn.BatchNorm2d`` layers that are in eval mode (running statistics).

    Returns:
        the transformed model: each folded conv replaced by a biased conv, its norm by
        ``nn.Identity``. Outputs equal the original's to ~1e-5 (relative). ``is_fused(model)``
        tells it apart; the number of folded pairs is in ``model._maskrcnn_bn_fused``.
    """
    target = model if inplace else copy.deepcopy(model)
    count = 0
    for parent in list(target.modules()):
        for conv_name, bn_name in _pairs(parent):
            conv = getattr(parent, conv_name)
            bn = getattr(parent, bn_name)
            if not isinstance(conv, nn.Conv2d) or not _foldable(bn, batchnorm=batchnorm):
                continue
            if conv.out_channels != bn.running_mean.numel():
                continue
            setattr(parent, conv_name, fold_conv_bn(conv, bn))
            setattr(parent, bn_name, nn.Identity())
            count += 1
    previous = getattr(target, _FUSED_ATTR, 0)
    setattr(target, _FUSED_ATTR, previous + count)
    log.debug("fuse_frozen_bn: folded %d conv+norm pairs", count)
    return target


def is_fused(model: nn.Module) -> bool:
    """Whether :func:`fuse_frozen_bn` folded at least one pair of ``model``."""
    return getattr(model, _FUSED_ATTR, 0) > 0


def prepare_for_inference(
    model: Any,
    *,
    fuse: bool = True,
    channels_last: bool | None = None,
    compile: bool = False,
    amp: str | None = None,
    inplace: bool = False,
    compile_options: dict[str, Any] | None = None,
) -> Any:
    """The model in eval mode with the inference transforms applied.

    Args:
        model: a network (``nn.Module``), or an object that holds one as ``.network`` — matterport's
            detector (:class:`maskrcnn.detector.MaskRCNN`); it is returned with its network transformed.
        fuse: fold frozen/eval BatchNorm into the convolutions (:func:`fuse_frozen_bn`).
        channels_last: convert 4-D weights to channels-last (NHWC); ``None``: yes (it pays off on
            CPU with oneDNN and on CUDA tensor cores alike).
        compile: wrap the backbone's forward with ``torch.compile`` (static shapes: the first call of
            each input size compiles; the detection heads stay eager, their shapes are
            data-dependent).
        amp: ``"fp16"`` or ``"bf16"``: run inference under autocast on CUDA (sets the network's
            ``inference_amp``; ignored on the CPU); ``None`` leaves the setting as it is.
        inplace: transform ``model`` itself instead of a deep copy.
        compile_options: keyword arguments for ``torch.compile``.
    """
    target = model if inplace else copy.deepcopy(model)
    network = target if isinstance(target, nn.Module) else getattr(target, "network", None)
    if not isinstance(network, nn.Module):
        raise TypeError(f"prepare_for_inference: expected an nn.Module or a detector with .network, "
                        f"got {type(model).__name__}")
    network.eval()
    if amp is not None:
        if not hasattr(network, "inference_amp"):
            raise ValueError("prepare_for_inference(amp=...): the model has no inference_amp setting")
        network.inference_amp = amp
    if fuse:
        fuse_frozen_bn(network, inplace=True)
    if channels_last is None:
        channels_last = True
    if channels_last:
        network.to(memory_format=torch.channels_last)
    if compile:
        backbone = getattr(network, "backbone", None)
        if backbone is None:
            raise ValueError("prepare_for_inference(compile=True): the model has no .backbone to compile")
        backbone.forward = torch.compile(backbone.forward, **(compile_options or {}))
    return target
