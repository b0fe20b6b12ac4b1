"""Configuration with matterport's attribute names, defaults and meaning.

Subclass and override class attributes, exactly as in the tutorial::

    class BalloonConfig(Config):
        NAME = "balloon"
        NUM_CLASSES = 1 + 1
        IMAGES_PER_GPU = 2

The Config is an adapter: modules of :mod:`maskrcnn.model` take plain keyword
arguments, and :mod:`maskrcnn.model.build` turns a Config into them. Derived
values (``BATCH_SIZE``, ``IMAGE_SHAPE``, ``IMAGE_META_SIZE``) are computed on
construction; :meth:`Config.validate` explains what is wrong and what would be right.

Conventions that differ from matterport are documented on the attribute:
``RPN_ANCHOR_RATIOS`` is width/height (matterport's meaning), ``MEAN_PIXEL`` and
``PIXEL_STD`` act on 0-255 RGB pixels, and images are padded at the bottom/right.
"""

from __future__ import annotations

import copy
import difflib
import math
from pathlib import Path
from typing import Any

import numpy as np

from .config_kinds import _KIND_WORDS, _expected_kind, _has_kind, _is_attribute, _plain, _unknown_message
from .errors import ConfigError
from .fileio import read_yaml, write_text

RESIZE_MODES = ("none", "square", "pad64", "crop", "shortest_edge")  # model/preprocess.py implements them
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
#: "torchvision": this project's network (torchvision's computation); "matterport": matterport's Keras
#: computation in PyTorch, for its .h5 weights (model/matterport/, see MatterportConfig).
ARCHITECTURES = ("torchvision", "matterport")
NORMS = ("frozen_bn", "bn", "gn")
LOSS_NAMES = ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss", "mrcnn_mask_loss")
_DERIVED = ("BATCH_SIZE", "IMAGE_SHAPE", "IMAGE_META_SIZE")


class Config:
    """Base configuration. Override attributes in a subclass or with keyword arguments.

    ``Config(NUM_CLASSES=3)`` overrides on the instance; unknown names are refused
    with the nearest known name.
    """

    # --- identity and batch -------------------------------------------------------
    NAME: str | None = None  # Override in sub-classes
    GPU_COUNT = 1
    IMAGES_PER_GPU = 2
    STEPS_PER_EPOCH = 1000
    VALIDATION_STEPS = 50

    # --- backbone and FPN ---------------------------------------------------------
    ARCHITECTURE = "torchvision"  # "torchvision" | "matterport" (matterport's computation: MatterportConfig)
    BACKBONE = "resnet101"  # resnet18 | resnet34 | resnet50 | resnet101
    BACKBONE_STRIDES = [4, 8, 16, 32, 64]  # P2..P6
    BACKBONE_NORM: str | None = None  # None: "frozen_bn" unless TRAIN_BN, then "bn"; or "gn"
    FPN_CLASSIF_FC_LAYERS_SIZE = 1024  # width of the box head's two fully connected layers
    TOP_DOWN_PYRAMID_SIZE = 256  # FPN channels (also the RPN head's)
    NUM_CLASSES = 1  # background + classes

    # --- RPN ----------------------------------------------------------------------
    RPN_ANCHOR_SCALES = (32, 64, 128, 256, 512)  # one side length per level P2..P6, pixels
    RPN_ANCHOR_RATIOS = [0.5, 1, 2]  # width / height
    RPN_ANCHOR_STRIDE = 1  # anchors at every feature-map cell (1) or every other (2)
    RPN_NMS_THRESHOLD = 0.7
    RPN_TRAIN_ANCHORS_PER_IMAGE = 256
    RPN_POSITIVE_IOU = 0.7
    RPN_NEGATIVE_IOU = 0.3
    PRE_NMS_LIMIT = 6000  # top anchors kept before NMS (training; inference too unless set below)
    PRE_NMS_LIMIT_INFERENCE: int | None = None  # None: same as PRE_NMS_LIMIT
    RPN_NMS_PER_LEVEL = False  # False: one top-k + NMS over all levels (matterport); True: per level (torchvision)
    RPN_MIN_SIZE = 1e-3  # proposals with a side below this (pixels) are dropped
    POST_NMS_ROIS_TRAINING = 2000
    POST_NMS_ROIS_INFERENCE = 1000

    # --- masks ----------------------------------------------------------------------
    USE_MINI_MASK = True
    MINI_MASK_SHAPE = (56, 56)  # (height, width) of the mini-mask

    # --- input images ---------------------------------------------------------------
    IMAGE_RESIZE_MODE = "square"  # none | square | pad64 | crop | shortest_edge
    IMAGE_MIN_DIM = 800
    IMAGE_MAX_DIM = 1024
    IMAGE_MIN_SCALE = 0
    IMAGE_CHANNEL_COUNT = 3
    # RGB, 0-255 units: (pixel - MEAN_PIXEL) / PIXEL_STD. The defaults are ImageNet's statistics, which
    # every pretrained file we load (torchvision's COCO and ImageNet weights) expects. matterport used
    # MEAN_PIXEL = [123.7, 116.8, 103.9] and no division (PIXEL_STD = [1, 1, 1]) for its Keras weights.
    MEAN_PIXEL = [123.675, 116.28, 103.53]
    PIXEL_STD = [58.395, 57.12, 57.375]
    IMAGE_PAD_DIVISOR = 32  # a batch is padded to a multiple of this

    # --- ROI heads --------------------------------------------------------------------
    TRAIN_ROIS_PER_IMAGE = 200
    ROI_POSITIVE_RATIO = 0.33
    ROI_POSITIVE_IOU = 0.5
    ROI_NEGATIVE_IOU = 0.5
    POOL_SIZE = 7
    MASK_POOL_SIZE = 14
    MASK_SHAPE = [28, 28]
    ROI_ALIGN_SAMPLING_RATIO = 2
    ROI_ALIGN_ALIGNED = False
    MASK_HEAD_CONV_CHANNELS = 256
    MASK_HEAD_NUM_CONVS = 4
    MAX_GT_INSTANCES = 100
    RPN_BBOX_STD_DEV = [0.1, 0.1, 0.2, 0.2]  # (dy, dx, dh, dw) matterport order; box coder weights are 1/std
    BBOX_STD_DEV = [0.1, 0.1, 0.2, 0.2]

    # --- detection --------------------------------------------------------------------
    DETECTION_MAX_INSTANCES = 100
    DETECTION_MIN_CONFIDENCE = 0.7
    DETECTION_NMS_THRESHOLD = 0.3
    DETECTION_MIN_SIZE = 1e-2
    MASK_THRESHOLD = 0.5

    # --- training ---------------------------------------------------------------------
    LEARNING_RATE = 0.001
    LEARNING_MOMENTUM = 0.9
    WEIGHT_DECAY = 0.0001
    LOSS_WEIGHTS = {
        "rpn_class_loss": 1.0,
        "rpn_bbox_loss": 1.0,
        "mrcnn_class_loss": 1.0,
        "mrcnn_bbox_loss": 1.0,
        "mrcnn_mask_loss": 1.0,
    }
    USE_RPN_ROIS = True  # False (matterport's random ROIs for the heads, a debugging aid) is refused
    TRAIN_BN = False
    GRADIENT_CLIP_NORM = 5.0
    # Beyond matterport (read by maskrcnn.training.options; meaning documented there).
    OPTIMIZER = "sgd"  # "sgd" (momentum LEARNING_MOMENTUM) or "adamw"
    ADAM_BETAS = (0.9, 0.999)
    LR_SCHEDULE = "constant"  # "constant" (matterport), "step" or "cosine"
    LR_WARMUP_STEPS = 0
    LR_WARMUP_FACTOR = 0.001
    LR_STEPS: list = []  # "step" schedule: absolute epochs where the rate is multiplied by LR_GAMMA
    LR_GAMMA = 0.1
    LR_MIN_FACTOR = 0.0  # "cosine": final rate as a fraction of the base rate
    AMP: str | None = None  # None, "bf16" or "fp16" (CUDA only)
    GRADIENT_ACCUMULATION = 1
    CHECKPOINT_KEEP_LAST = 3  # epoch checkpoints kept besides the best one (0: all)
    BEST_METRIC = "segm.AP"  # validation metric choosing the best checkpoint ("val_loss" also works)
    EVAL_EVERY = 1  # validation mAP every k epochs (0: never)
    EVAL_LIMIT: int | None = None  # validation images used for mAP (None: all)
    SEED: int | None = None

    def __init__(self, **overrides: Any) -> None:
        for key, value in overrides.items():
            if key in _DERIVED:
                raise ConfigError(f"{key} is derived from other attributes and cannot be set")
            if not _is_attribute(type(self), key):
                raise ConfigError(_unknown_message(type(self), key, "Config"))
            setattr(self, key, value)
        # Class-level lists and dicts would be shared between instances: copy them.
        for key in self.attribute_names():
            setattr(self, key, copy.deepcopy(getattr(self, key)))
        self._check_types()  # before _derive, which computes with them
        self._derive()

    # ------------------------------------------------------------------ derived values
    def _derive(self) -> None:
        self.BATCH_SIZE = self.IMAGES_PER_GPU * self.GPU_COUNT
        if self.IMAGE_RESIZE_MODE == "crop":
            side = self.IMAGE_MIN_DIM
        else:
            side = self.IMAGE_MAX_DIM
        self.IMAGE_SHAPE = np.array([side, side, self.IMAGE_CHANNEL_COUNT])
        self.IMAGE_META_SIZE = 1 + 3 + 3 + 4 + 1 + self.NUM_CLASSES

    @property
    def backbone_norm(self) -> str:
        """The backbone's normalization: BACKBONE_NORM, or what TRAIN_BN implies."""
        if self.BACKBONE_NORM is not None:
            return self.BACKBONE_NORM
        return "bn" if self.TRAIN_BN else "frozen_bn"

    @property
    def pre_nms_limit_inference(self) -> int:
        return self.PRE_NMS_LIMIT if self.PRE_NMS_LIMIT_INFERENCE is None else self.PRE_NMS_LIMIT_INFERENCE

    # ------------------------------------------------------------------ introspection
    @classmethod
    def attribute_names(cls) -> list[str]:
        """All configurable attribute names (upper case, not derived), sorted."""
        names = set()
        for klass in cls.__mro__:
            for key in vars(klass):
                if key.isupper() and key not in _DERIVED and not key.startswith("_"):
                    names.add(key)
        return sorted(names)

    def to_dict(self, derived: bool = False) -> dict[str, Any]:
        """Plain JSON/YAML-serializable values (tuples and arrays become lists)."""
        keys = self.attribute_names() + (list(_DERIVED) if derived else [])
        return {key: _plain(getattr(self, key)) for key in keys}

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "dict") -> "Config":
        """A config of this class with ``values`` overriding the defaults.

        Derived keys present in ``values`` are ignored (they are recomputed);
        unknown keys raise :class:`ConfigError` naming ``source``.
        """
        clean = {}
        for key, value in values.items():
            if key in _DERIVED:
                continue
            if not _is_attribute(cls, key):
                raise ConfigError(_unknown_message(cls, key, source))
            default = getattr(cls, key)
            if isinstance(default, tuple) and isinstance(value, list):
                value = tuple(value)
            problem = cls.type_problem(key, value)
            if problem:
                raise ConfigError(f"{source}: {problem}")
            clean[key] = value
        return cls(**clean)

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The values as YAML text; with ``path``, also written there (atomically)."""
        import yaml

        text = yaml.safe_dump(self.to_dict(), sort_keys=True)
        if path is not None:
            write_text(path, text)
        return text

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Config":
        """A config of this class with the values of a YAML file (:func:`read_config_file`)."""
        return cls.from_dict(read_config_file(path), source=str(path))

    def copy(self, **overrides: Any) -> "Config":
        values = self.to_dict()
        values.update(overrides)
        return type(self).from_dict(values)

    def display(self) -> str:
        """Print and return the configuration values, matterport style."""
        lines = ["Configurations:"]
        for key, value in self.to_dict(derived=True).items():
            lines.append(f"{key:30} {value}")
        text = "\n".join(lines)
        print(text + "\n")
        return text

    # ------------------------------------------------------------------ validation
    @classmethod
    def type_problem(cls, key: str, value: Any) -> str | None:
        """``"KEY=value: expected <type> (the default is …)"`` when ``value`` has the wrong type for ``key``.

        The type expected is that of the attribute's default in the first class that declares it
        (an ``int`` default wants an integer, a ``float`` one any number, a list of numbers a list or
        tuple of numbers, ...), or None where the annotation says ``| None``. None for unknown keys.
        """
        kind = _expected_kind(cls, key)
        if kind is None or _has_kind(value, kind):
            return None
        default = getattr(cls, key, None)
        hint = f" (the default is {_plain(default)!r})" if default is not None else ""
        return f"{key}={value!r}: expected {_KIND_WORDS[kind[0]]}{' or None' if kind[1] else ''}{hint}"

    def _check_types(self, source: str | None = None) -> None:
        """Raise a one-line :class:`ConfigError` naming every attribute of the wrong type."""
        problems = [p for key in self.attribute_names() if (p := self.type_problem(key, getattr(self, key)))]
        if problems:
            raise ConfigError((f"{source}: " if source else "") + "; ".join(problems))

    def validate(self) -> "Config":
        """Check every value; raise :class:`ConfigError` saying what is wrong and what would be right."""
        self._check_types()  # the value checks below compare and compute: types first
        problems: list[str] = []

        def need(cond: bool, message: str) -> None:
            if not cond:
                problems.append(message)

        need(isinstance(self.NUM_CLASSES, int) and self.NUM_CLASSES >= 2,
             f"NUM_CLASSES={self.NUM_CLASSES!r}: it counts the background too, so it must be an integer >= 2 "
             f"(1 + the number of object classes, e.g. NUM_CLASSES = 1 + 1 for balloons)")
        need(self.BACKBONE in BACKBONES, f"BACKBONE={self.BACKBONE!r}: choose one of {', '.join(BACKBONES)}")
        need(self.ARCHITECTURE in ARCHITECTURES,
             f"ARCHITECTURE={self.ARCHITECTURE!r}: choose one of {', '.join(ARCHITECTURES)}")
        if self.ARCHITECTURE == "matterport":
            problems.extend(_matterport_problems(self))
        need(self.backbone_norm in NORMS, f"BACKBONE_NORM={self.BACKBONE_NORM!r}: choose one of {', '.join(NORMS)}")
        need(list(self.BACKBONE_STRIDES) == [4, 8, 16, 32, 64],
             f"BACKBONE_STRIDES={self.BACKBONE_STRIDES!r}: the ResNet-FPN has strides [4, 8, 16, 32, 64]")
        need(len(self.RPN_ANCHOR_SCALES) == len(self.BACKBONE_STRIDES),
             f"RPN_ANCHOR_SCALES has {len(self.RPN_ANCHOR_SCALES)} values; give one per pyramid level "
             f"({len(self.BACKBONE_STRIDES)}, for P2..P6)")
        need(len(self.RPN_ANCHOR_RATIOS) >= 1 and all(r > 0 for r in self.RPN_ANCHOR_RATIOS),
             f"RPN_ANCHOR_RATIOS={self.RPN_ANCHOR_RATIOS!r}: give positive width/height ratios, e.g. [0.5, 1, 2]")
        need(self.RPN_ANCHOR_STRIDE in (1, 2, 4), f"RPN_ANCHOR_STRIDE={self.RPN_ANCHOR_STRIDE!r}: use 1 (or 2, 4)")
        for key in ("RPN_NMS_THRESHOLD", "DETECTION_NMS_THRESHOLD", "ROI_POSITIVE_RATIO",
                    "RPN_POSITIVE_IOU", "RPN_NEGATIVE_IOU", "ROI_POSITIVE_IOU", "ROI_NEGATIVE_IOU", "MASK_THRESHOLD"):
            value = getattr(self, key)
            need(0.0 < value <= 1.0, f"{key}={value!r}: must be in (0, 1]")
        confidence = min_confidence_problem(self.DETECTION_MIN_CONFIDENCE, "DETECTION_MIN_CONFIDENCE")
        if confidence:
            problems.append(confidence)
        need(self.RPN_NEGATIVE_IOU <= self.RPN_POSITIVE_IOU,
             f"RPN_NEGATIVE_IOU={self.RPN_NEGATIVE_IOU} must not exceed RPN_POSITIVE_IOU={self.RPN_POSITIVE_IOU}")
        for key in ("IMAGES_PER_GPU", "GPU_COUNT", "STEPS_PER_EPOCH", "RPN_TRAIN_ANCHORS_PER_IMAGE", "PRE_NMS_LIMIT",
                    "POST_NMS_ROIS_TRAINING", "POST_NMS_ROIS_INFERENCE", "TRAIN_ROIS_PER_IMAGE", "POOL_SIZE",
                    "MASK_POOL_SIZE", "MAX_GT_INSTANCES", "DETECTION_MAX_INSTANCES", "TOP_DOWN_PYRAMID_SIZE",
                    "FPN_CLASSIF_FC_LAYERS_SIZE", "MASK_HEAD_CONV_CHANNELS", "IMAGE_PAD_DIVISOR"):
            value = getattr(self, key)
            need(isinstance(value, int) and value >= 1, f"{key}={value!r}: must be a positive integer")
        need(self.USE_RPN_ROIS is True,
             f"USE_RPN_ROIS={self.USE_RPN_ROIS!r}: training the heads on random ROIs instead of the RPN's proposals "
             f"(matterport's debugging option) is not supported; keep USE_RPN_ROIS = True")
        need(self.MASK_HEAD_NUM_CONVS >= 0, f"MASK_HEAD_NUM_CONVS={self.MASK_HEAD_NUM_CONVS!r}: must be >= 0")
        need(list(self.MASK_SHAPE) == [2 * self.MASK_POOL_SIZE] * 2,
             f"MASK_SHAPE={list(self.MASK_SHAPE)!r}: the mask head upsamples MASK_POOL_SIZE={self.MASK_POOL_SIZE} "
             f"by 2, so MASK_SHAPE must be [{2 * self.MASK_POOL_SIZE}, {2 * self.MASK_POOL_SIZE}]")
        need(len(self.MINI_MASK_SHAPE) == 2 and min(self.MINI_MASK_SHAPE) >= 1,
             f"MINI_MASK_SHAPE={self.MINI_MASK_SHAPE!r}: give (height, width), e.g. (56, 56)")
        need(self.IMAGE_RESIZE_MODE in RESIZE_MODES,
             f"IMAGE_RESIZE_MODE={self.IMAGE_RESIZE_MODE!r}: choose one of {', '.join(RESIZE_MODES)}")
        if self.IMAGE_RESIZE_MODE in ("square", "crop"):
            side_key = "IMAGE_MAX_DIM" if self.IMAGE_RESIZE_MODE == "square" else "IMAGE_MIN_DIM"
            side = getattr(self, side_key)
            if side % 64:
                problems.append(
                    f"{side_key}={side}: in {self.IMAGE_RESIZE_MODE!r} mode it must be a multiple of 64 so that "
                    f"P2..P6 align (try {max(64, 64 * round(side / 64))})")
        if self.IMAGE_RESIZE_MODE in ("square", "shortest_edge"):
            need(self.IMAGE_MIN_DIM <= self.IMAGE_MAX_DIM,
                 f"IMAGE_MIN_DIM={self.IMAGE_MIN_DIM} exceeds IMAGE_MAX_DIM={self.IMAGE_MAX_DIM}")
        need(self.IMAGE_CHANNEL_COUNT == 3,
             f"IMAGE_CHANNEL_COUNT={self.IMAGE_CHANNEL_COUNT}: only 3-channel RGB input is supported")
        for key in ("MEAN_PIXEL", "PIXEL_STD"):
            value = list(getattr(self, key))
            need(len(value) == self.IMAGE_CHANNEL_COUNT,
                 f"{key} has {len(value)} values; give one per channel ({self.IMAGE_CHANNEL_COUNT})")
        need(all(s > 0 for s in self.PIXEL_STD), f"PIXEL_STD={self.PIXEL_STD!r}: values must be positive")
        for key in ("RPN_BBOX_STD_DEV", "BBOX_STD_DEV"):
            value = list(getattr(self, key))
            need(len(value) == 4 and all(v > 0 for v in value), f"{key}={value!r}: give 4 positive values")
        if not isinstance(self.LOSS_WEIGHTS, dict):
            problems.append(f"LOSS_WEIGHTS={self.LOSS_WEIGHTS!r}: give a dict with keys {', '.join(LOSS_NAMES)}")
        else:
            for key in self.LOSS_WEIGHTS:
                if key not in LOSS_NAMES:
                    close = difflib.get_close_matches(key, LOSS_NAMES, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(LOSS_NAMES)}"
                    problems.append(f"LOSS_WEIGHTS has an unknown loss {key!r}{hint}")
        need(self.LEARNING_RATE > 0 and math.isfinite(self.LEARNING_RATE),
             f"LEARNING_RATE={self.LEARNING_RATE!r}: must be a positive number")
        need(self.OPTIMIZER in ("sgd", "adamw"), f"OPTIMIZER={self.OPTIMIZER!r}: choose 'sgd' or 'adamw'")
        need(self.LR_SCHEDULE in ("constant", "step", "cosine"),
             f"LR_SCHEDULE={self.LR_SCHEDULE!r}: choose 'constant', 'step' or 'cosine'")
        need(self.AMP in (None, "bf16", "fp16"), f"AMP={self.AMP!r}: choose None, 'bf16' or 'fp16'")
        need(isinstance(self.GRADIENT_ACCUMULATION, int) and self.GRADIENT_ACCUMULATION >= 1,
             f"GRADIENT_ACCUMULATION={self.GRADIENT_ACCUMULATION!r}: must be a positive integer")
        need(self.GRADIENT_CLIP_NORM is None or self.GRADIENT_CLIP_NORM > 0,
             f"GRADIENT_CLIP_NORM={self.GRADIENT_CLIP_NORM!r}: must be positive (or None for no clipping)")
        if problems:
            name = self.NAME or type(self).__name__
            raise ConfigError(f"invalid configuration {name!r}:\n  - " + "\n  - ".join(problems))
        return self

    def __repr__(self) -> str:
        return f"<{type(self).__name__} NAME={self.NAME!r} NUM_CLASSES={self.NUM_CLASSES} BACKBONE={self.BACKBONE!r}>"


class TorchvisionConfig(Config):
    """Every convention of torchvision's ``maskrcnn_resnet50_fpn`` (COCO, 91 classes).

    Resize shortest edge to 800 (longest at most 1333) with ImageNet normalization,
    batch padding to 32; anchors 32..512 with torchvision's ratio order; RPN top-k
    and NMS per level (2000/1000 before NMS, 2000/1000 after); box coder weights
    (1, 1, 1, 1) for the RPN and (10, 10, 5, 5) for the heads; ROIAlign with
    sampling ratio 2, not aligned; 512 ROIs at 25% positives; detections above
    0.05 after per-class NMS at 0.5, at most 100; full-size (not mini) masks.
    """

    NAME = "torchvision_coco"
    NUM_CLASSES = 91
    BACKBONE = "resnet50"
    IMAGE_RESIZE_MODE = "shortest_edge"
    IMAGE_MIN_DIM = 800
    IMAGE_MAX_DIM = 1333
    MEAN_PIXEL = [0.485 * 255, 0.456 * 255, 0.406 * 255]  # torchvision's arithmetic, bit for bit
    PIXEL_STD = [0.229 * 255, 0.224 * 255, 0.225 * 255]
    IMAGE_PAD_DIVISOR = 32
    RPN_ANCHOR_RATIOS = [2.0, 1.0, 0.5]  # torchvision's (0.5, 1, 2) are height/width
    PRE_NMS_LIMIT = 2000
    PRE_NMS_LIMIT_INFERENCE = 1000
    RPN_NMS_PER_LEVEL = True
    POST_NMS_ROIS_TRAINING = 2000
    POST_NMS_ROIS_INFERENCE = 1000
    RPN_BBOX_STD_DEV = [1.0, 1.0, 1.0, 1.0]
    BBOX_STD_DEV = [0.1, 0.1, 0.2, 0.2]
    TRAIN_ROIS_PER_IMAGE = 512
    ROI_POSITIVE_RATIO = 0.25
    USE_MINI_MASK = False
    DETECTION_MIN_CONFIDENCE = 0.05
    DETECTION_NMS_THRESHOLD = 0.5
    DETECTION_MAX_INSTANCES = 100


class MatterportConfig(Config):
    """matterport's ``Config`` defaults and its computation (``ARCHITECTURE = "matterport"``), for its ``.h5`` models.

    Subclass it as matterport's samples subclass ``Config``::

        class BalloonConfig(MatterportConfig):
            NAME = "balloon"
            NUM_CLASSES = 1 + 1
            STEPS_PER_EPOCH = 100
            DETECTION_MIN_CONFIDENCE = 0.9

    ResNet-101, images resized to 800..1024 and padded (centred) to 1024×1024, MEAN_PIXEL subtracted
    without a division, the 2-way softmax RPN (512 channels) with one global top-6000 before NMS,
    14×14 ROIs for masks with ``crop_and_resize``, per-class NMS 0.3 and DETECTION_MIN_CONFIDENCE 0.7.
    The network is :mod:`maskrcnn.model.matterport` (ResNet-50/101 only; modes none/square/pad64/crop).
    """

    ARCHITECTURE = "matterport"
    BACKBONE = "resnet101"
    MEAN_PIXEL = [123.7, 116.8, 103.9]
    PIXEL_STD = [1.0, 1.0, 1.0]
    IMAGE_PAD_DIVISOR = 64
    RPN_NMS_PER_LEVEL = False
    RPN_MIN_SIZE = 0.0
    DETECTION_MIN_SIZE = 0.0
    PRE_NMS_LIMIT = 6000
    POST_NMS_ROIS_TRAINING = 2000
    POST_NMS_ROIS_INFERENCE = 1000
    TRAIN_BN = False


def _matterport_problems(config: Config) -> list[str]:
    """What ARCHITECTURE = "matterport" cannot compute (see MatterportConfig)."""
    problems = []
    if config.BACKBONE not in ("resnet50", "resnet101"):
        problems.append(f"BACKBONE={config.BACKBONE!r}: matterport's network is resnet50 or resnet101")
    if config.IMAGE_RESIZE_MODE not in ("none", "square", "pad64", "crop"):
        problems.append(f"IMAGE_RESIZE_MODE={config.IMAGE_RESIZE_MODE!r}: matterport's modes are none, square, "
                        f"pad64, crop")
    if config.backbone_norm != "frozen_bn":
        problems.append(f"BACKBONE_NORM={config.BACKBONE_NORM!r} / TRAIN_BN={config.TRAIN_BN!r}: matterport's "
                        f"network runs BatchNorm with its moving statistics (TRAIN_BN = False)")
    if config.RPN_NMS_PER_LEVEL:
        problems.append("RPN_NMS_PER_LEVEL=True: matterport's proposal layer is one top-k and NMS over all levels")
    return problems


# ---------------------------------------------------------------------- rules used beyond Config
def read_config_file(path: str | Path) -> dict[str, Any]:
    """The ``ATTRIBUTE: value`` mapping of a YAML config file (empty file: ``{}``); names not checked here.

    The one reader of config files (``Config.from_yaml``, ``maskrcnn train --config``). Raises
    :class:`ConfigError` naming the file when it is missing, not YAML or not a mapping.
    """
    values = read_yaml(path, what="config file")
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of ATTRIBUTE: value, got {type(values).__name__}")
    return values


#: A minimum detection confidence lies in [0, 1): the detection layer keeps scores above it, so 1 would
#: keep nothing. The one interval of DETECTION_MIN_CONFIDENCE and of every ``min_confidence`` argument.
MIN_CONFIDENCE_INTERVAL = "[0, 1)"


def min_confidence_problem(value: Any, name: str = "min_confidence") -> str | None:
    """What is wrong with ``value`` as a minimum confidence (named ``name`` in the message), or None."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok and 0.0 <= float(value) < 1.0:
        return None
    return f"{name}={value!r}: must be in {MIN_CONFIDENCE_INTERVAL}"


def check_min_confidence(value: Any, name: str = "min_confidence") -> float:
    """``value`` as a float when it is a valid minimum confidence, else :class:`ConfigError`."""
    problem = min_confidence_problem(value, name)
    if problem is not None:
        raise ConfigError(problem)
    return float(value)
