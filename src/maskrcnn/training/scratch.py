"""Training from random weights: choose what can work, refuse what cannot.

matterport's defaults assume pretrained weights: the backbone's BatchNorm is *frozen* (it keeps
the statistics of the pretrained file) and ``--layers heads`` trains only the heads. From random
weights neither works: frozen BatchNorm of random weights normalizes nothing (ResNet-101's first
loss is about 100,000), and ``heads`` freezes a random backbone. So, with ``--weights none``:

- the backbone normalization becomes GroupNorm (trainable, batch-size independent) when the
  config did not name one (``BACKBONE_NORM`` unset, ``TRAIN_BN`` False), and all layers train
  when ``--layers`` was not given; :func:`scratch_plan` says so in one line;
- an explicit ``BACKBONE_NORM=frozen_bn`` or ``--layers heads/3+/4+/5+`` is refused with the
  reason and the fix (:class:`~maskrcnn.errors.ConfigError`).

The Python API gets the same rule at :func:`maskrcnn.training.train`: :func:`check_trainable`
refuses a model whose frozen BatchNorm layers never received statistics (built with random
weights and nothing loaded).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..errors import ConfigError

#: matterport's layer presets that freeze (part of) the backbone.
FREEZING_LAYERS = ("heads", "3+", "4+", "5+")


@dataclass(frozen=True)
class ScratchPlan:
    """What training from random weights uses: config ``values`` to set, the ``layers`` to train and
    the one-line ``message`` saying what was chosen ("" when the config already fits)."""

    values: dict[str, Any] = field(default_factory=dict)
    layers: str = "all"
    message: str = ""


def scratch_plan(config: Any, *, layers: str | None) -> ScratchPlan:
    """The plan for training ``config``'s network from random weights with ``layers`` (None: not given).

    Raises ConfigError (reason and fix in one line) for an explicit frozen BatchNorm or a
    layer preset that freezes the random backbone.
    """
    values: dict[str, Any] = {}
    chosen: list[str] = []
    if getattr(config, "BACKBONE_NORM", None) == "frozen_bn":
        raise ConfigError("--weights none with BACKBONE_NORM=frozen_bn cannot train: frozen BatchNorm needs the "
                          "statistics of pretrained weights; use --set BACKBONE_NORM=gn (or --preset cpu), or "
                          "pretrained --weights (imagenet, coco)")
    if getattr(config, "backbone_norm", "frozen_bn") == "frozen_bn":
        values["BACKBONE_NORM"] = "gn"
        chosen.append("BACKBONE_NORM=gn (frozen BatchNorm needs pretrained statistics)")
    if layers in FREEZING_LAYERS:
        raise ConfigError(f"--layers {layers} with --weights none cannot train: it freezes a randomly initialized "
                          f"backbone; use --layers all (the default from scratch), or pretrained --weights "
                          f"(imagenet, coco)")
    if layers is None:
        layers = "all"
        chosen.append("--layers all (a random backbone must learn too)")
    if not chosen:
        return ScratchPlan(layers=layers)
    hint = ""
    if getattr(config, "BACKBONE", "") in ("resnet50", "resnet101"):
        hint = f"; {config.BACKBONE} is slow to train from scratch, --preset cpu is a small model"
    return ScratchPlan(values=values, layers=layers,
                       message="training from scratch (--weights none): " + ", ".join(chosen) + hint)


def untrained_frozen_norms(model: nn.Module) -> list[str]:
    """Names of the frozen BatchNorm layers of ``model`` still at their initial values (mean 0, variance 1,
    scale 1, shift 0): statistics were never loaded into them."""
    from torchvision.ops import FrozenBatchNorm2d

    names = []
    for name, module in model.named_modules():
        if isinstance(module, FrozenBatchNorm2d):
            pristine = (not module.running_mean.any() and bool((module.running_var == 1).all())
                        and bool((module.weight == 1).all()) and not module.bias.any())
            if pristine:
                names.append(name)
    return names


def check_trainable(model: nn.Module) -> None:
    """Refuse (ConfigError, one line) to train a model whose frozen BatchNorm layers never got statistics."""
    names = untrained_frozen_norms(model)
    if names:
        raise ConfigError(f"cannot train: {len(names)} frozen BatchNorm layers (e.g. {names[0]}) hold no statistics, "
                          f"the model has random weights and BACKBONE_NORM=frozen_bn; load pretrained weights "
                          f"first (model.load_weights(...)) or build it with BACKBONE_NORM='gn' and train "
                          f"layers='all'")
