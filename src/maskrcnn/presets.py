"""Named configuration presets: the one home of the small CPU model and its training settings.

``maskrcnn train --preset cpu`` starts from :data:`PRESETS` ``["cpu"]`` (then ``--config`` and
``--set`` on top); :func:`preset_config` gives the same values as a Config subclass for Python
users; the demo's config (:class:`maskrcnn.apps.demo.ShapesDemoConfig`, through
:func:`with_cpu_model`) and the samples' ``--smoke`` settings (:data:`SMALL_CPU_OVERRIDES`) derive
from :data:`CPU_MODEL`.

The CPU model is what the shapes and balloon benchmarks found on 2 CPU cores (see
BENCHMARKS.md): with matterport's default head widths (FPN 256, mask head 4 × 256) the heads
dominate a CPU step; ResNet-18 with GroupNorm (trainable from random weights, unlike frozen
BatchNorm), FPN 64 channels, mask head 2 × 64, box MLP 256 and few ROIs per image train about
6× faster at the same image size.

=================  =====================================================================
preset             meaning
=================  =====================================================================
``cpu``            the CPU model at 256 px (square), batches of 4, AdamW lr 1e-3 with 100
                   warmup steps and cosine decay, small validation (the balloon benchmark)
=================  =====================================================================
"""

from __future__ import annotations

from typing import Any

from .config import Config
from .errors import ConfigError

#: The small CPU network: backbone, normalization and head widths (no image size, no training values).
CPU_MODEL: dict[str, Any] = {
    "BACKBONE": "resnet18",
    "BACKBONE_NORM": "gn",
    "TOP_DOWN_PYRAMID_SIZE": 64,
    "MASK_HEAD_CONV_CHANNELS": 64,
    "MASK_HEAD_NUM_CONVS": 2,
    "FPN_CLASSIF_FC_LAYERS_SIZE": 256,
}

#: preset name -> Config attributes (training attributes included).
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {
        **CPU_MODEL,
        "IMAGE_RESIZE_MODE": "square",
        "IMAGE_MIN_DIM": 256,
        "IMAGE_MAX_DIM": 256,
        "RPN_ANCHOR_SCALES": (16, 32, 64, 128, 256),
        "TRAIN_ROIS_PER_IMAGE": 64,
        "PRE_NMS_LIMIT": 3000,
        "POST_NMS_ROIS_TRAINING": 1000,
        "POST_NMS_ROIS_INFERENCE": 500,
        "IMAGES_PER_GPU": 4,
        "STEPS_PER_EPOCH": 100,
        "VALIDATION_STEPS": 5,
        "LEARNING_RATE": 0.001,
        "OPTIMIZER": "adamw",
        "LR_SCHEDULE": "cosine",
        "LR_WARMUP_STEPS": 100,
        "LR_WARMUP_FACTOR": 0.01,
    },
}

#: One line per preset, for ``maskrcnn train --help``.
DESCRIPTIONS: dict[str, str] = {
    "cpu": "ResNet-18 + GroupNorm, FPN 64, mask head 2x64, box MLP 256, 256 px, batches of 4, AdamW 1e-3 cosine",
}

#: The CPU model at 128 px with few ROIs: the samples' ``--smoke`` runs (one step, any dataset).
SMALL_CPU_OVERRIDES: dict[str, Any] = {
    **CPU_MODEL,
    "TRAIN_ROIS_PER_IMAGE": 32,
    "IMAGE_RESIZE_MODE": "square",
    "IMAGE_MIN_DIM": 128,
    "IMAGE_MAX_DIM": 128,
    "RPN_ANCHOR_SCALES": (8, 16, 32, 64, 128),
    "PRE_NMS_LIMIT": 2000,
    "POST_NMS_ROIS_TRAINING": 500,
    "POST_NMS_ROIS_INFERENCE": 250,
}


def with_cpu_model(cls: type[Config]) -> type[Config]:
    """Class decorator: :data:`CPU_MODEL`'s attributes on a Config subclass, except those the class sets itself::

        @with_cpu_model
        class ShapesDemoConfig(Config):
            IMAGE_MAX_DIM = 64
    """
    for key, value in CPU_MODEL.items():
        if key not in vars(cls):
            setattr(cls, key, value)
    return cls


def preset_values(name: str) -> dict[str, Any]:
    """A copy of the attributes of preset ``name``; an unknown name is a one-line ConfigError listing the known."""
    if name not in PRESETS:
        raise ConfigError(f"--preset {name}: unknown preset; known: {', '.join(sorted(PRESETS))}")
    return dict(PRESETS[name])


def preset_config(name: str, base: type[Config] = Config) -> type[Config]:
    """A subclass of ``base`` with preset ``name``'s values as class attributes (subclass it further)::

        class BalloonConfig(preset_config("cpu")):
            NAME = "balloon"
            NUM_CLASSES = 1 + 1
    """
    return type(f"{name.capitalize()}PresetConfig", (base,), {"NAME": name, **preset_values(name)})
