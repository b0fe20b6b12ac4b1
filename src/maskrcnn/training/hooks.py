"""Hooks of the trainer: progress bar, validation mAP, logs (TensorBoard + JSONL), checkpoints.

Order matters at the end of an epoch: :class:`EvalHook` adds the metrics to the epoch
record, :class:`MetricsLogger` writes the record, :class:`CheckpointHook` picks the best
and saves. Only rank 0 writes files or evaluates; the other ranks wait at a barrier.
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import distributed as D
from .checkpoint import better, parameters_finite, prune_checkpoints, save_checkpoint
from .rng import capture_rng_state
from .rundir import checkpoint_name
from .trainer import Hook, StepInfo, Trainer, TrainingDiverged

LOSS_ORDER = ("loss", "rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss", "mrcnn_mask_loss")


def _short(name: str) -> str:
    return name.replace("_loss", "").replace("mrcnn_", "m_") if name != "loss" else "loss"


def format_losses(losses: dict[str, float]) -> str:
    keys = [k for k in LOSS_ORDER if k in losses] + sorted(k for k in losses if k not in LOSS_ORDER)
    return " ".join(f"{_short(k)}={losses[k]:.4f}" for k in keys)


def flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """``{"bbox": {"AP": .5}}`` → ``{"bbox.AP": .5}`` (numbers only; None/NaN dropped)."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_metrics(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value)):
            out[name] = float(value)
    return out


def _clean(value: Any) -> Any:
    """JSON-safe copy: numpy/torch scalars to floats, NaN and infinity to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else None


class ProgressHook(Hook):
    """A tqdm bar per epoch with running mean losses and ETA (``mode="bar"``), one line per
    step (``"plain"``, for logs and tests), or nothing (``"none"``). Rank 0 only.

    The validation loss after an epoch gets its own bar (``"bar"``) or one line announcing its
    batches (``"plain"``), so a long validation is never silent. tqdm's ETA comes from the
    measured pace of the steps so far."""

    def __init__(self, mode: str = "bar", stream=None) -> None:
        if mode not in ("bar", "plain", "none"):
            raise ValueError(f"progress mode {mode!r}: use bar, plain or none")
        self.mode = mode
        self.stream = stream or sys.stderr
        self.bar = None
        self.sums: dict[str, float] = {}
        self.count = 0

    def before_epoch(self, trainer: Trainer, epoch: int) -> None:
        self.sums, self.count = {}, 0
        if not trainer.ctx.is_main:
            return
        if self.mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=trainer.options.steps_per_epoch, desc=f"epoch {epoch + 1}/{trainer.target_epochs}",
                            unit="step", file=self.stream, dynamic_ncols=True, leave=True)

    def after_step(self, trainer: Trainer, info: StepInfo) -> None:
        for k, v in info.losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1
        if not trainer.ctx.is_main:
            return
        running = {k: v / self.count for k, v in self.sums.items()}
        if self.mode == "bar" and self.bar is not None:
            self.bar.set_postfix_str(f"{format_losses(running)} lr={info.lr:.2e}", refresh=False)
            self.bar.update(1)
        elif self.mode == "plain":
            print(f"epoch {info.epoch + 1}/{trainer.target_epochs} step {info.step + 1}/"
                  f"{trainer.options.steps_per_epoch} global_step {info.global_step} lr {info.lr:.6g} "
                  f"{format_losses(info.losses)}", file=self.stream, flush=True)

    def before_validation(self, trainer: Trainer, steps: int) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if not trainer.ctx.is_main or steps <= 0:
            return
        if self.mode == "bar":
            from tqdm import tqdm

            self.bar = tqdm(total=steps, desc="validation", unit="batch", file=self.stream, dynamic_ncols=True,
                            leave=False)
        elif self.mode == "plain":
            print(f"validation loss: {steps} batches of {trainer.options.images_per_gpu} images", file=self.stream,
                  flush=True)

    def after_validation_step(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def after_epoch(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if trainer.ctx.is_main and self.mode != "none":
            parts = [f"epoch {record['epoch']}/{trainer.target_epochs} done in {record['time_s']:.1f}s",
                     f"train: {format_losses(record['train'])}"]
            if record.get("val"):
                parts.append(f"val: {format_losses(record['val'])}")
            evals = record.get("eval") or {}
            shown = {k: v for k, v in evals.items() if k in ("bbox.AP", "bbox.AP50", "segm.AP", "segm.AP50")}
            if shown:
                parts.append("eval: " + " ".join(f"{k}={v:.4f}" for k, v in shown.items()))
            print(" | ".join(parts), file=self.stream, flush=True)

    def after_train(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class TimeLimitHook(Hook):
    """Stop training once ``seconds`` have passed since :meth:`before_train` (a time box): the epoch in
    progress ends after the current step and is validated, logged and checkpointed as usual."""

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.start = 0.0

    def before_train(self, trainer: Trainer) -> None:
        import time

        self.start = time.perf_counter()

    def after_step(self, trainer: Trainer, info: StepInfo) -> None:
        import time

        if time.perf_counter() - self.start >= self.seconds:
            trainer.request_stop()


class EvalHook(Hook):
    """Validation mAP every ``every`` epochs (and after the last epoch) on rank 0.

    ``evaluate(model) -> {"bbox": {...}, "segm": {...}, ...}`` is called with the unwrapped
    model in eval mode; its numbers land in the epoch record as ``eval["segm.AP"]`` etc.
    ``every = 0`` disables it.
    """

    def __init__(self, evaluate: Callable[[Any], dict[str, Any]], *, every: int = 1) -> None:
        self.evaluate = evaluate
        self.every = int(every)

    def after_epoch(self, trainer: Trainer, record: dict[str, Any]) -> None:
        epoch = record["epoch"]
        if self.every <= 0 or (epoch % self.every and epoch != trainer.target_epochs):
            return
        metrics: dict[str, float] | None = {}
        if trainer.ctx.is_main:
            module = trainer.module
            module.eval()
            try:
                metrics = flatten_metrics(self.evaluate(module))
            except Exception as exc:  # noqa: BLE001 - a failed evaluation must not lose the epoch's weights
                warnings.warn(f"validation mAP after epoch {epoch} failed ({type(exc).__name__}: {exc}); "
                              f"training goes on", stacklevel=2)
                metrics = {}
            finally:
                module.train()
        metrics = D.broadcast_object(metrics, trainer.ctx)
        record["eval"] = {k: v for k, v in metrics.items() if not k.startswith("per_class.")}


class MetricsLogger(Hook):
    """TensorBoard scalars (every ``log_every`` steps and per epoch) and ``metrics.jsonl``
    (one JSON object per epoch: epoch, global_step, lr, time_s, train, val, eval). Rank 0."""

    def __init__(self, run_dir: str | Path, *, log_every: int = 1, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.log_every = max(int(log_every), 1)
        self.tensorboard = tensorboard
        self.writer = None

    @property
    def jsonl_path(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    def before_train(self, trainer: Trainer) -> None:
        if not trainer.ctx.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.tensorboard and self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(self.run_dir), purge_step=trainer.state.global_step or None)

    def after_step(self, trainer: Trainer, info: StepInfo) -> None:
        if self.writer is None or info.global_step % self.log_every:
            return
        for k, v in info.losses.items():
            self.writer.add_scalar(f"train/{k}", v, info.global_step)
        self.writer.add_scalar("lr", info.lr, info.global_step)
        if info.grad_norm is not None and math.isfinite(info.grad_norm):
            self.writer.add_scalar("grad_norm", info.grad_norm, info.global_step)

    def after_epoch(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if not trainer.ctx.is_main:
            return
        step = record["global_step"]
        if self.writer is not None:
            for group in ("train", "val", "eval"):
                for k, v in (record.get(group) or {}).items():
                    self.writer.add_scalar(f"epoch_{group}/{k}", v, step)
            self.writer.flush()
        line = json.dumps(_clean(record), sort_keys=True, allow_nan=False)
        with open(self.jsonl_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def after_train(self, trainer: Trainer) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class CheckpointHook(Hook):
    """After every epoch (rank 0): refuse non-finite weights, update the best metric, write
    ``mask_rcnn_<name>_<epoch>.pth`` atomically, delete all but the last ``keep_last`` and
    the best.

    ``training_extras()`` returns what besides the state goes in the checkpoint's training part
    (``options``, ``layers``...), ``model_fields()`` what rebuilds the model (``config``, class names).
    ``self.saved`` lists the paths written.
    """

    def __init__(self, run_dir: str | Path, *, name: str, keep_last: int = 3, best_metric: str = "segm.AP",
                 training_extras: Callable[[], dict[str, Any]] | None = None,
                 model_fields: Callable[[], dict[str, Any]] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.name = name
        self.keep_last = int(keep_last)
        self.best_metric = best_metric
        self.training_extras = training_extras or dict
        self.model_fields = model_fields
        self.saved: list[Path] = []

    def metric_value(self, record: dict[str, Any]) -> float | None:
        if self.best_metric in ("val_loss", "val.loss"):
            return (record.get("val") or {}).get("loss")
        if self.best_metric.startswith("train."):
            return (record.get("train") or {}).get(self.best_metric[6:])
        return (record.get("eval") or {}).get(self.best_metric)

    def after_epoch(self, trainer: Trainer, record: dict[str, Any]) -> None:
        bad = parameters_finite(trainer.model)
        if bad:
            raise TrainingDiverged(f"training stopped after epoch {record['epoch']}: weights became non-finite "
                                   f"({', '.join(bad[:3])}{'...' if len(bad) > 3 else ''}); no checkpoint written")
        for group in ("train", "val"):
            for k, v in (record.get(group) or {}).items():
                if not math.isfinite(v):
                    raise TrainingDiverged(f"training stopped after epoch {record['epoch']}: {group} {k} is {v}; "
                                           f"no checkpoint written")
        state = trainer.state
        value = self.metric_value(record)
        best = state.best
        if better(self.best_metric, value, None if best is None else best.get("value")):
            state.best = {"metric": self.best_metric, "value": float(value), "epoch": record["epoch"]}
        if trainer.ctx.is_main:
            training = {
                **state.to_dict(),
                "optimizer": trainer.optimizer.state_dict(),
                "schedule": trainer.schedule.state_dict(),
                "scaler": trainer.scaler.state_dict(),
                "rng": capture_rng_state(),
                "record": record,
                **self.training_extras(),
            }
            path = save_checkpoint(self.run_dir / checkpoint_name(self.name, record["epoch"]), trainer.model,
                                   training, model_fields=self.model_fields)
            self.saved.append(path)
            keep = {state.best["epoch"]} if state.best else set()
            prune_checkpoints(self.run_dir, keep_last=self.keep_last, keep_epochs=keep)
        D.barrier(trainer.ctx)
