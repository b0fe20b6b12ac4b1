"""Training: matterport's ``model.train(...)`` cycle on a small trainer with hooks.

- :func:`train` (matterport datasets) and :func:`fit` (any loss-returning model) — :mod:`.api`
- :class:`Trainer`, :class:`Hook`, :class:`TrainingDiverged` — :mod:`.trainer`; built-in hooks in :mod:`.hooks`
- ``layers`` presets (heads, 3+, 4+, 5+, all) — :mod:`.layers`
- options read from the Config (optimizer, schedule, AMP, accumulation, retention) — :mod:`.options`
- checkpoints, run folders, ``--weights last`` — :mod:`.checkpoint`, :mod:`.rundir`
- deterministic sampling and RNG state — :mod:`.sampler`, :mod:`.rng`
- torchrun / DistributedDataParallel — :mod:`.distributed`
"""

from __future__ import annotations

from .api import TrainResult, fit, train
from .layers import CLASS_SPECIFIC_LAYERS, LAYER_PRESETS, set_trainable
from .options import EXTRA_ATTRIBUTES, TrainOptions
from .rundir import find_last
from .trainer import Hook, Trainer, TrainingDiverged, TrainState

__all__ = [
    "CLASS_SPECIFIC_LAYERS",
    "EXTRA_ATTRIBUTES",
    "LAYER_PRESETS",
    "Hook",
    "TrainOptions",
    "TrainResult",
    "TrainState",
    "Trainer",
    "TrainingDiverged",
    "find_last",
    "fit",
    "set_trainable",
    "train",
]
