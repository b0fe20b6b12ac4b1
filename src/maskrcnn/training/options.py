"""Training options read from a Config: the one place that knows their names and defaults.

The training loop needs a few attributes that matterport's Config does not have
(optimizer kind, schedule, AMP, accumulation, checkpoint retention, validation
mAP cadence). They are class attributes of :class:`maskrcnn.config.Config` (so a
subclass, ``--set NAME=value`` and YAML files set them, and checkpoints keep them); they
are read here with ``getattr(config, NAME, default)`` so that any config-like object
works, and ``attributes`` (:meth:`TrainOptions.from_config`) may still override them. Every other module of
:mod:`maskrcnn.training` reads them from :class:`TrainOptions`, never from the Config.

========================  ===========  ==============================================================
attribute                 default      meaning
========================  ===========  ==============================================================
OPTIMIZER                 ``"sgd"``    ``"sgd"`` (momentum LEARNING_MOMENTUM, matterport) or ``"adamw"``
ADAM_BETAS                (0.9, 0.999) AdamW betas
LR_SCHEDULE               ``"constant"`` ``"constant"`` (matterport), ``"step"`` or ``"cosine"``
LR_WARMUP_STEPS           0            optimizer steps of linear warmup at the start of a stage
LR_WARMUP_FACTOR          0.001        learning-rate factor at the first warmup step
LR_STEPS                  []           ``"step"`` schedule: absolute epochs at which the rate is multiplied by LR_GAMMA
LR_GAMMA                  0.1          ``"step"`` schedule factor
LR_MIN_FACTOR             0.0          ``"cosine"`` schedule: final rate as a fraction of the base rate
AMP                       None         None, ``"bf16"`` or ``"fp16"`` (CUDA only; fp16 uses a GradScaler)
GRADIENT_ACCUMULATION     1            micro-batches of IMAGES_PER_GPU accumulated per optimizer step
CHECKPOINT_KEEP_LAST      3            epoch checkpoints kept (plus the best one); 0 keeps all
BEST_METRIC               ``"segm.AP"`` validation metric that picks the best checkpoint (``"val_loss"``
                                       for the validation loss; higher is better except for losses)
EVAL_EVERY                1            validation mAP every k epochs (0: never; validation loss still runs)
EVAL_LIMIT                None         images of the validation set used for mAP (None: all)
SEED                      None         seed of sampling and all RNGs (None: drawn once, kept in checkpoints)
========================  ===========  ==============================================================

Matterport attributes used as they are: LEARNING_RATE, LEARNING_MOMENTUM,
WEIGHT_DECAY, GRADIENT_CLIP_NORM, STEPS_PER_EPOCH, IMAGES_PER_GPU, USE_MINI_MASK,
MINI_MASK_SHAPE, MAX_GT_INSTANCES.

VALIDATION_STEPS (matterport: 50 batches of validation loss after every epoch) is an upper
bound: :func:`validation_steps` keeps the validation loss proportionate, at most one pass over
the validation images and at most a quarter of the epoch's training steps (a validation batch
costs about a third of a training step, so validation adds at most about 8 % to an epoch).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..errors import ConfigError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("constant", "step", "cosine")
AMP_MODES = (None, "bf16", "fp16")

#: name -> default of every training attribute read with getattr (see the module docstring).
EXTRA_ATTRIBUTES: dict[str, Any] = {
    "OPTIMIZER": "sgd",
    "ADAM_BETAS": (0.9, 0.999),
    "LR_SCHEDULE": "constant",
    "LR_WARMUP_STEPS": 0,
    "LR_WARMUP_FACTOR": 0.001,
    "LR_STEPS": [],
    "LR_GAMMA": 0.1,
    "LR_MIN_FACTOR": 0.0,
    "AMP": None,
    "GRADIENT_ACCUMULATION": 1,
    "CHECKPOINT_KEEP_LAST": 3,
    "BEST_METRIC": "segm.AP",
    "EVAL_EVERY": 1,
    "EVAL_LIMIT": None,
    "SEED": None,
}


@dataclass(frozen=True)
class TrainOptions:
    """Everything the training loop reads from a Config, validated."""

    learning_rate: float
    momentum: float = 0.9
    weight_decay: float = 1e-4
    gradient_clip_norm: float | None = 5.0
    optimizer: str = "sgd"
    adam_betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "constant"
    warmup_steps: int = 0
    warmup_factor: float = 0.001
    lr_steps: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    lr_min_factor: float = 0.0
    amp: str | None = None
    accumulation: int = 1
    steps_per_epoch: int = 1000
    validation_steps: int = 50
    images_per_gpu: int = 2
    keep_last: int = 3
    best_metric: str = "segm.AP"
    eval_every: int = 1
    eval_limit: int | None = None
    seed: int | None = None
    use_mini_mask: bool = True
    mini_mask_shape: tuple[int, int] = (56, 56)
    max_gt_instances: int = 100

    @classmethod
    def from_config(cls, config: Any, *, learning_rate: float | None = None,
                    attributes: dict[str, Any] | None = None, **overrides: Any) -> TrainOptions:
        """Read the options of ``config``.

        ``attributes``: values of the :data:`EXTRA_ATTRIBUTES` by attribute name (e.g. from
        ``--set LR_SCHEDULE=cosine``) that win over the config's; ``learning_rate`` and
        ``overrides`` (field names of this class; None values ignored) win over both.
        """
        attributes = dict(attributes or {})
        unknown = [k for k in attributes if k not in EXTRA_ATTRIBUTES]
        if unknown:
            raise ConfigError(f"unknown training attribute(s) {', '.join(map(repr, unknown))}; "
                              f"known: {', '.join(EXTRA_ATTRIBUTES)}")

        def get(name: str) -> Any:
            if name in attributes:
                return attributes[name]
            return getattr(config, name, EXTRA_ATTRIBUTES[name])

        lr = float(config.LEARNING_RATE if learning_rate is None else learning_rate)
        amp = get("AMP")
        amp = None if amp in (None, "", "none", "None", False) else str(amp).lower()
        clip = getattr(config, "GRADIENT_CLIP_NORM", 5.0)
        values = {
            "learning_rate": lr,
            "momentum": float(getattr(config, "LEARNING_MOMENTUM", 0.9)),
            "weight_decay": float(getattr(config, "WEIGHT_DECAY", 1e-4)),
            "gradient_clip_norm": None if clip in (None, 0) else float(clip),
            "optimizer": str(get("OPTIMIZER")).lower(),
            "adam_betas": tuple(float(b) for b in get("ADAM_BETAS")),
            "schedule": str(get("LR_SCHEDULE")).lower(),
            "warmup_steps": int(get("LR_WARMUP_STEPS")),
            "warmup_factor": float(get("LR_WARMUP_FACTOR")),
            "lr_steps": tuple(int(s) for s in get("LR_STEPS")),
            "lr_gamma": float(get("LR_GAMMA")),
            "lr_min_factor": float(get("LR_MIN_FACTOR")),
            "amp": amp,
            "accumulation": int(get("GRADIENT_ACCUMULATION")),
            "steps_per_epoch": int(config.STEPS_PER_EPOCH),
            "validation_steps": int(config.VALIDATION_STEPS),
            "images_per_gpu": int(config.IMAGES_PER_GPU),
            "keep_last": int(get("CHECKPOINT_KEEP_LAST")),
            "best_metric": str(get("BEST_METRIC")),
            "eval_every": int(get("EVAL_EVERY")),
            "eval_limit": None if get("EVAL_LIMIT") is None else int(get("EVAL_LIMIT")),
            "seed": None if get("SEED") is None else int(get("SEED")),
            "use_mini_mask": bool(getattr(config, "USE_MINI_MASK", True)),
            "mini_mask_shape": tuple(int(s) for s in getattr(config, "MINI_MASK_SHAPE", (56, 56))),
            "max_gt_instances": int(getattr(config, "MAX_GT_INSTANCES", 100)),
        }
        for key, value in overrides.items():
            if value is not None:
                values[key] = value
        return cls(**values).validate()

    def validate(self) -> TrainOptions:
        problems = []
        if not self.learning_rate > 0:
            problems.append(f"learning rate {self.learning_rate!r}: must be positive")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"OPTIMIZER={self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            problems.append(f"LR_SCHEDULE={self.schedule!r}: choose one of {', '.join(SCHEDULES)}")
        if self.amp not in AMP_MODES:
            problems.append(f"AMP={self.amp!r}: choose None, 'bf16' or 'fp16'")
        if self.accumulation < 1:
            problems.append(f"GRADIENT_ACCUMULATION={self.accumulation!r}: must be >= 1")
        if self.warmup_steps < 0 or not 0 < self.warmup_factor <= 1:
            problems.append(f"LR_WARMUP_STEPS={self.warmup_steps!r} / LR_WARMUP_FACTOR={self.warmup_factor!r}: "
                            f"steps must be >= 0 and the factor in (0, 1]")
        if self.steps_per_epoch < 1 or self.images_per_gpu < 1:
            problems.append("STEPS_PER_EPOCH and IMAGES_PER_GPU must be positive integers")
        if self.validation_steps < 0:
            problems.append(f"VALIDATION_STEPS={self.validation_steps!r}: must be >= 0")
        if self.keep_last < 0:
            problems.append(f"CHECKPOINT_KEEP_LAST={self.keep_last!r}: must be >= 0 (0 keeps all)")
        if self.eval_every < 0:
            problems.append(f"EVAL_EVERY={self.eval_every!r}: must be >= 0 (0: no validation mAP)")
        if problems:
            raise ConfigError("invalid training options:\n  - " + "\n  - ".join(problems))
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validation_steps(options: TrainOptions, val_images: int, world_size: int = 1) -> int:
    """Validation-loss batches per epoch and rank: ``VALIDATION_STEPS``, capped at one pass over the
    ``val_images`` validation images (``ceil(val_images / (IMAGES_PER_GPU * world_size))``) and at a
    quarter of ``STEPS_PER_EPOCH`` (at least 1); 0 when either is 0 (see the module docstring)."""
    if options.validation_steps <= 0 or val_images <= 0:
        return 0
    one_pass = -(-int(val_images) // (options.images_per_gpu * max(int(world_size), 1)))
    return max(min(options.validation_steps, one_pass, options.steps_per_epoch // 4), 1)
