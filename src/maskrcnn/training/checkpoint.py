"""Training checkpoints: the model's checkpoint format plus the training state.

A training checkpoint is our weights file (:func:`maskrcnn.weights.write_checkpoint`: weights,
config, class names, epoch) with ``"training"`` holding everything needed to resume exactly:
optimizer, schedule, GradScaler, epoch, global step, seed, stage, best metric and the RNG
states (torch, CUDA, numpy, python), and ``"run_dir"``, the run folder it was written in. So the
detector (:meth:`maskrcnn.detector.MaskRCNN.load_weights`) reads training checkpoints like any
other, and :func:`maskrcnn.weights.read_checkpoint` is the one reader of both. Files are written
atomically: a run killed while saving leaves the previous file intact. Everything loads with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import WeightsError
from ..weights import load_weights, read_checkpoint, training_state, write_checkpoint
from .distributed import unwrap
from .rundir import checkpoint_epoch, list_checkpoints

FORMAT_VERSION = 1

__all__ = ["save_checkpoint", "read_training_checkpoint", "training_state", "parameters_finite", "better",
           "prune_checkpoints"]


def save_checkpoint(path: str | Path, model: nn.Module, training: dict[str, Any],
                    model_fields: Callable[[], dict[str, Any]] | None = None) -> Path:
    """Write ``model``'s weights and the ``training`` state to ``path`` atomically.

    ``model_fields()`` gives what rebuilds the model (``config``, ``class_names``, ``frozen_bn_eps``:
    see :meth:`maskrcnn.detector.MaskRCNN.checkpoint_fields`); without it the file holds the
    weights and the training state only.
    """
    path = Path(path)
    training = {"version": FORMAT_VERSION, **training}
    fields = dict(model_fields() if model_fields is not None else {})
    return write_checkpoint(path, unwrap(model).state_dict(), epoch=training.get("epoch"), training=training,
                            run_dir=str(path.parent), **fields)


def read_training_checkpoint(path: str | Path, model: nn.Module | None = None) -> dict[str, Any]:
    """The ``training`` state of the checkpoint at ``path`` (read with the one reader); with ``model``,
    its weights are loaded into it first, all of them (resuming needs every one)."""
    checkpoint = read_checkpoint(path)
    saved = training_state(checkpoint)
    if saved is None:
        raise WeightsError(f"{path}: holds weights but no training state, so it cannot be resumed; "
                           f"load it as weights to start a new run from them")
    if model is not None:
        load_weights(unwrap(model), checkpoint, label=str(path), strict=True)
    return saved


def parameters_finite(model: nn.Module) -> list[str]:
    """Names of parameters and buffers that hold NaN or infinity (empty when all are finite)."""
    bad = []
    for name, tensor in unwrap(model).state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad.append(name)
    return bad


def better(metric: str, value: float, best: float | None) -> bool:
    """Whether ``value`` beats ``best`` (lower is better for losses, higher otherwise)."""
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value < best if "loss" in metric else value > best


def prune_checkpoints(run_dir: str | Path, *, keep_last: int, keep_epochs: set[int] = frozenset()) -> list[Path]:
    """Delete epoch checkpoints except the last ``keep_last`` and those of ``keep_epochs``; return the deleted.

    ``keep_last = 0`` keeps everything.
    """
    if keep_last <= 0:
        return []
    checkpoints = list_checkpoints(run_dir)
    keep = {p for p in checkpoints[-keep_last:]} | {p for p in checkpoints if checkpoint_epoch(p) in keep_epochs}
    deleted = []
    for p in checkpoints:
        if p not in keep:
            p.unlink(missing_ok=True)
            deleted.append(p)
    return deleted
