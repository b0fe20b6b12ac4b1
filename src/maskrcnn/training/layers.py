"""Which layers train: matterport's ``layers`` presets, translated to our parameter names.

matterport names its ResNet stages ``res2..res5`` (with ``conv1``/``bn_conv1`` as stage 1)
and its heads ``rpn_*``, ``fpn_*`` and ``mrcnn_*``. Our parameters follow torchvision's
names, so the presets map as follows (``layers`` = what trains; everything else is frozen):

=========  ===========================================  ==============================================
preset     matterport regex (keras layer names)         ours (``re.match`` on parameter names)
=========  ===========================================  ==============================================
``heads``  ``(mrcnn\\_.*)|(rpn\\_.*)|(fpn\\_.*)``           ``rpn.``, ``roi_heads.``, ``backbone.fpn.``
``3+``     ``res3..res5`` + heads                       ``backbone.body.layer2..layer4`` + heads
``4+``     ``res4..res5`` + heads                       ``backbone.body.layer3..layer4`` + heads
``5+``     ``res5`` + heads                             ``backbone.body.layer4`` + heads
``all``    ``.*``                                       ``.*`` (``conv1`` and ``layer1`` too)
=========  ===========================================  ==============================================

matterport's ``res3`` is torchvision's ``layer2`` (``res2`` = ``layer1``), hence the shift by one.
Any other string is a regular expression matched with :func:`re.match` (anchored at the
start of the name) against every parameter name, e.g. ``r"rpn\\.|roi_heads\\.box_"``.

Normalization: frozen BatchNorm (the default, ``TRAIN_BN = False``) has no parameters, so
nothing changes there. With trainable BatchNorm, a frozen layer's BatchNorm modules are also
kept in inference mode (:func:`freeze_norm_statistics`) so their running statistics don't
move, as matterport's ``BatchNorm(training=False)``. GroupNorm has no running statistics.
"""

from __future__ import annotations

import re

from torch import nn

from ..errors import ConfigError
from ..weights import CLASS_SPECIFIC

_HEADS = r"(rpn\..*)|(roi_heads\..*)|(backbone\.fpn\..*)"

#: matterport's presets in our parameter names (see the module docstring).
LAYER_PRESETS: dict[str, str] = {
    "heads": _HEADS,
    "3+": r"(backbone\.body\.layer[234]\..*)|" + _HEADS,
    "4+": r"(backbone\.body\.layer[34]\..*)|" + _HEADS,
    "5+": r"(backbone\.body\.layer4\..*)|" + _HEADS,
    "all": r".*",
}

#: key prefixes of the parameters whose shape depends on NUM_CLASSES (matterport's
#: ``mrcnn_class_logits``, ``mrcnn_bbox_fc``, ``mrcnn_mask``): excluded when fine-tuning on
#: another class count (``model.load_weights(path, exclude=CLASS_SPECIFIC_LAYERS)``).
CLASS_SPECIFIC_LAYERS: tuple[str, ...] = CLASS_SPECIFIC


def layers_regex(layers: str) -> re.Pattern[str]:
    """The compiled regex for a preset name or a user regex; :class:`ConfigError` if it doesn't compile."""
    if not isinstance(layers, str) or not layers:
        raise ConfigError(f"layers={layers!r}: give one of {', '.join(LAYER_PRESETS)} or a regex")
    pattern = LAYER_PRESETS.get(layers, layers)
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"layers={layers!r} is neither a preset ({', '.join(LAYER_PRESETS)}) "
                          f"nor a valid regular expression: {exc}") from None


def set_trainable(model: nn.Module, layers: str) -> list[str]:
    """Set ``requires_grad`` of every parameter of ``model`` from ``layers``; return the frozen names.

    A ``DistributedDataParallel`` wrapper is looked through (names without ``module.``).
    Raises :class:`ConfigError` when the regex matches no parameter (most likely a typo).
    """
    model = getattr(model, "module", model)
    regex = layers_regex(layers)
    frozen, trainable = [], 0
    for name, param in model.named_parameters():
        train = regex.match(name) is not None
        param.requires_grad_(train)
        if train:
            trainable += 1
        else:
            frozen.append(name)
    if trainable == 0:
        raise ConfigError(f"layers={layers!r} matches no parameter of the model, so nothing would train; "
                          f"parameter names look like 'backbone.body.layer4.0.conv1.weight', 'rpn.head.conv...', "
                          f"'roi_heads.box_head.fc6.weight'")
    return frozen


def freeze_norm_statistics(model: nn.Module) -> int:
    """Put every BatchNorm whose parameters are all frozen into eval mode; return how many.

    Call after ``model.train()`` (which sets them back to training mode).
    """
    count = 0
    for module in getattr(model, "module", model).modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()
                count += 1
    return count


def trainable_summary(model: nn.Module) -> dict[str, int]:
    """Counts of parameter tensors and elements, trainable and frozen."""
    out = {"trainable_tensors": 0, "trainable_elements": 0, "frozen_tensors": 0, "frozen_elements": 0}
    for param in getattr(model, "module", model).parameters():
        key = "trainable" if param.requires_grad else "frozen"
        out[f"{key}_tensors"] += 1
        out[f"{key}_elements"] += param.numel()
    return out
