"""Training checkpoints: the model's own checkpoint format plus the training state.

A checkpoint is what :meth:`MaskRCNN.save` writes (weights, config, class names,
epoch) with ``extra={"training": {...}}`` holding everything needed to resume
exactly: optimizer, schedule, GradScaler, epoch, global step, seed, stage, best
metric and the RNG states (torch, CUDA, numpy, python). So
:meth:`MaskRCNN.from_checkpoint` and :meth:`MaskRCNN.load_weights` read training
checkpoints like any other. Files are written atomically (temporary file in the same
folder, then ``os.replace``): a run killed while saving leaves the previous file intact.
Everything loads with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import WeightsError
from .distributed import unwrap
from .rundir import checkpoint_epoch, list_checkpoints

TRAINING_KEY = "training"
FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, model: nn.Module, training: dict[str, Any]) -> Path:
    """Write ``model`` and the ``training`` state to ``path`` atomically.

    Uses ``model.save(path, epoch=..., extra={"training": training})`` when the model has it
    (our :class:`MaskRCNN`), else a plain ``{"model": state_dict, "epoch", "extra"}`` dict.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    model = unwrap(model)
    training = {"version": FORMAT_VERSION, **training}
    try:
        if hasattr(model, "save"):
            model.save(tmp, epoch=training.get("epoch"), extra={TRAINING_KEY: training})
        else:
            torch.save({"model": model.state_dict(), "epoch": training.get("epoch"),
                        "extra": {TRAINING_KEY: training}}, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict (CPU tensors), with :class:`WeightsError` for missing/broken files."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem is a bad file
        raise WeightsError(f"{path}: not a readable checkpoint (torch.load, weights_only=True): {exc}") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: expected a checkpoint dict, got {type(data).__name__}")
    return data


def training_state(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """The ``training`` part of a checkpoint dict, or None (a weights-only file)."""
    extra = checkpoint.get("extra")
    if isinstance(extra, dict) and isinstance(extra.get(TRAINING_KEY), dict):
        return extra[TRAINING_KEY]
    if isinstance(checkpoint.get(TRAINING_KEY), dict):
        return checkpoint[TRAINING_KEY]
    return None


def model_state_dict(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights in a checkpoint dict (``model`` / ``state_dict`` / ``model_state_dict`` / the dict itself)."""
    for key in ("model", "state_dict", "model_state_dict"):
        value = checkpoint.get(key)
        if isinstance(value, dict) and value and all(isinstance(v, torch.Tensor) for v in value.values()):
            return value
    if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return checkpoint
    raise WeightsError("checkpoint holds no model state_dict under 'model'")


def load_model_weights(model: nn.Module, path: str | Path, checkpoint: dict[str, Any] | None = None) -> None:
    """Load every weight of the checkpoint into ``model`` (strict: resuming needs all of them)."""
    model = unwrap(model)
    checkpoint = checkpoint if checkpoint is not None else load_checkpoint(path)
    state = model_state_dict(checkpoint)
    own = model.state_dict()
    wrong = [f"{k} {tuple(v.shape)} vs model {tuple(own[k].shape)}" for k, v in state.items()
             if k in own and own[k].shape != v.shape]
    if wrong:
        raise WeightsError(f"{path}: was trained with another configuration ({len(wrong)} tensors differ in "
                           f"shape, e.g. {wrong[0]}); resume with the config it was trained with")
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise WeightsError(f"{path}: does not match the model: missing {list(result.missing_keys)[:5]}, "
                           f"unexpected {list(result.unexpected_keys)[:5]}")


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
