"""The training loop: a small detectron2-style trainer with hooks.

:class:`Trainer` runs epochs of ``STEPS_PER_EPOCH`` optimizer steps. Each step:
learning rate from the schedule → ``GRADIENT_ACCUMULATION`` micro-batches of
``IMAGES_PER_GPU`` images (forward under autocast, the five weighted losses summed,
finite-loss check, backward; DDP syncs only on the last micro-batch) → gradient
clipping (``GRADIENT_CLIP_NORM``, after unscaling under fp16) → optimizer step.
After the epoch: the validation loss over ``VALIDATION_STEPS`` batches (capped, see
:func:`~maskrcnn.training.options.validation_steps`), then the
hooks (validation mAP, logs, checkpoint) in the order given.

Reproducibility: at the start of every epoch all global RNGs are seeded from
``(seed, epoch, rank)`` and the sampler from ``(seed, epoch)``, so a run resumed from an
end-of-epoch checkpoint repeats the uninterrupted run exactly (with ``num_workers=0``,
or workers seeded by :func:`~maskrcnn.training.rng.worker_init_fn`).

A NaN or infinite loss raises :class:`TrainingDiverged` naming the epoch, step and the
batch's images, before any backward pass or checkpoint from the broken state.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..errors import MaskRCNNError
from ..model.amp import autocast_context
from . import distributed as D
from .layers import freeze_norm_statistics
from .options import TrainOptions, validation_steps
from .rng import derive_seed, seed_everything, worker_init_fn
from .sampler import EpochSampler
from .schedule import LRSchedule


class TrainingDiverged(MaskRCNNError, FloatingPointError):
    """A loss or a weight became NaN or infinite; no checkpoint was written from that state."""


@dataclass
class TrainState:
    """Where the run stands; saved in every checkpoint.

    epoch: epochs completed (the next epoch to run, 0-based). global_step: optimizer steps done.
    stage: the current stage (``layers``, ``learning_rate``, ``optimizer``, ``start_step``).
    best: ``{"metric", "value", "epoch"}`` of the best checkpoint so far, or None.
    """

    seed: int
    epoch: int = 0
    global_step: int = 0
    stage: dict[str, Any] = field(default_factory=dict)
    best: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StepInfo:
    """What one optimizer step did (``losses``: mean over its micro-batches, weighted)."""

    epoch: int  # 0-based epoch being run
    step: int  # 0-based step within the epoch
    global_step: int  # optimizer steps done after this one
    lr: float
    losses: dict[str, float]
    grad_norm: float | None
    sample_indices: list[int]  # indices into the training samples of the step's images


class Hook:
    """Override any of these; the trainer calls them in list order."""

    def before_train(self, trainer: Trainer) -> None: ...
    def before_epoch(self, trainer: Trainer, epoch: int) -> None: ...
    def after_step(self, trainer: Trainer, info: StepInfo) -> None: ...
    def before_validation(self, trainer: Trainer, steps: int) -> None: ...
    def after_validation_step(self, trainer: Trainer) -> None: ...
    def after_epoch(self, trainer: Trainer, record: dict[str, Any]) -> None: ...
    def after_train(self, trainer: Trainer) -> None: ...


class _Indexed(Dataset):
    """Items ``(index, sample)`` so a batch knows which images it holds."""

    def __init__(self, samples: Dataset) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)  # type: ignore[arg-type]

    def __getitem__(self, index: int):
        return index, self.samples[index]


class _IndexedCollate:
    def __init__(self, collate: Callable[[list], Any]) -> None:
        self.collate = collate

    def __call__(self, batch: list) -> tuple[list[int], Any]:
        return [int(i) for i, _ in batch], self.collate([s for _, s in batch])


def to_device(value: Any, device: torch.device) -> Any:
    """Move tensors inside lists, tuples and dicts to ``device``."""
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_device(v, device) for v in value)
    return value




class Trainer:
    """Runs epochs over ``train_samples`` with ``model``, calling ``hooks``.

    Args:
        model: returns a dict of scalar losses from ``model(images, targets)`` in train mode
            (possibly wrapped in DistributedDataParallel).
        optimizer, schedule: from :mod:`.optim` and :mod:`.schedule`.
        train_samples, val_samples: map-style datasets of ``(image [3,H,W], target dict)``.
        collate: turns a list of samples into ``(images list, targets list)``.
        options: the validated training options.
        state: the run's state (fresh or restored from a checkpoint).
        ctx: the distributed context.
        scaler: a ``torch.amp.GradScaler`` (enabled for fp16 only).
        hooks: called in order.
        describe_image: index → a short description (id, path) for error messages.
        num_workers: DataLoader workers.
        run_dir: the run's folder (where the hooks write), or None.
    """

    def __init__(self, *, model: nn.Module, optimizer: torch.optim.Optimizer, schedule: LRSchedule,
                 train_samples: Dataset, collate: Callable[[list], Any], options: TrainOptions,
                 state: TrainState, ctx: D.DistContext | None = None, val_samples: Dataset | None = None,
                 scaler: torch.amp.GradScaler | None = None, hooks: Sequence[Hook] = (),
                 describe_image: Callable[[int], str] | None = None, num_workers: int = 0,
                 run_dir: str | Path | None = None) -> None:
        self.model = model
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.optimizer = optimizer
        self.schedule = schedule
        self.options = options
        self.state = state
        self.ctx = ctx or D.DistContext()
        self.scaler = scaler or torch.amp.GradScaler("cuda", enabled=False)
        self.hooks = list(hooks)
        self.describe_image = describe_image or (lambda i: str(i))
        self.num_workers = int(num_workers)
        self.collate = _IndexedCollate(collate)
        self.train_samples = train_samples
        self.val_samples = val_samples
        self.target_epochs = state.epoch
        per_step = options.images_per_gpu * options.accumulation
        self.train_sampler = EpochSampler(len(train_samples), samples_per_rank=options.steps_per_epoch * per_step,
                                          seed=state.seed, rank=self.ctx.rank, world_size=self.ctx.world_size)
        self.val_sampler = None
        self.validation_steps = validation_steps(options, 0 if val_samples is None else len(val_samples),
                                                 self.ctx.world_size)
        if self.validation_steps > 0:
            self.val_sampler = EpochSampler(len(val_samples),
                                            samples_per_rank=self.validation_steps * options.images_per_gpu,
                                            seed=state.seed, rank=self.ctx.rank, world_size=self.ctx.world_size)
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.stop_requested = False

    def request_stop(self) -> None:
        """End the current epoch after the step in progress (its validation, logs and checkpoint still
        run, the record says ``"stopped_early": True``), and train no further epoch."""
        self.stop_requested = True

    # ------------------------------------------------------------------ helpers
    @property
    def module(self) -> nn.Module:
        """The model without its DDP wrapper."""
        return D.unwrap(self.model)

    def _loader(self, samples: Dataset, sampler: EpochSampler) -> DataLoader:
        return DataLoader(_Indexed(samples), batch_size=self.options.images_per_gpu, sampler=sampler,
                          collate_fn=self.collate, num_workers=self.num_workers,
                          worker_init_fn=worker_init_fn if self.num_workers else None,
                          pin_memory=self.ctx.device.type == "cuda", drop_last=False)

    def _call(self, name: str, *args: Any) -> None:
        for hook in self.hooks:
            getattr(hook, name)(self, *args)

    def _check_finite(self, losses: dict[str, torch.Tensor], ids: list[int], epoch: int, step: int) -> None:
        values = {k: float(v.detach()) for k, v in losses.items()}
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        message = ""
        if bad:
            images = ", ".join(self.describe_image(i) for i in ids)
            losses_text = ", ".join(f"{k}={v}" for k, v in bad.items())
            message = (f"rank {self.ctx.rank}: non-finite loss at epoch {epoch + 1}, step {step + 1} "
                       f"(global step {self.state.global_step + 1}): {losses_text}; batch images: {images}")
        if D.all_true(not bad, self.ctx):
            return
        messages = [message]
        if self.ctx.distributed:
            gathered: list[Any] = [None] * self.ctx.world_size
            torch.distributed.all_gather_object(gathered, message)
            messages = gathered
        text = "; ".join(m for m in messages if m)
        raise TrainingDiverged(f"training stopped: {text}. No checkpoint was written from this state; lower the "
                               f"learning rate, add warmup (LR_WARMUP_STEPS) or check these images' annotations")

    # ------------------------------------------------------------------ the loop
    def fit(self, epochs: int) -> TrainState:
        """Train from ``state.epoch`` up to ``epochs`` (absolute, matterport style).

        Hooks may change ``target_epochs`` (and the schedule) while training, e.g. to fit a time budget.
        """
        self.target_epochs = int(epochs)
        self._call("before_train")
        try:
            while self.state.epoch < self.target_epochs and not self.stop_requested:
                self.run_epoch(self.state.epoch)  # hooks may move target_epochs
        finally:
            self._call("after_train")
        return self.state

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        """One epoch (0-based ``epoch``): training steps, validation loss, hooks. Returns the epoch record."""
        opts = self.options
        seed_everything(derive_seed(self.state.seed, epoch, self.ctx.rank))
        self.train_sampler.set_epoch(epoch)
        self._call("before_epoch", epoch)
        self.model.train()
        freeze_norm_statistics(self.model)
        start = time.perf_counter()
        sums: dict[str, float] = {}
        batches: Iterator = iter(self._loader(self.train_samples, self.train_sampler))
        lr = 0.0
        steps = 0
        for step in range(opts.steps_per_epoch):
            lr = self.schedule.apply(self.optimizer, self.state.global_step)
            info = self._train_step(batches, epoch, step, lr)
            steps += 1
            for k, v in info.losses.items():
                sums[k] = sums.get(k, 0.0) + v
            self._call("after_step", info)
            if not D.all_true(not self.stop_requested, self.ctx):
                self.stop_requested = True
                break
        train_losses = {k: v / max(steps, 1) for k, v in sums.items()}
        train_losses = D.all_reduce_mean(train_losses, self.ctx)
        val_losses = self.validate()
        self.state.epoch = epoch + 1
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "global_step": self.state.global_step,
            "lr": lr,
            "time_s": round(time.perf_counter() - start, 3),
            "train": train_losses,
            "val": val_losses,
            "eval": {},
        }
        if steps < opts.steps_per_epoch:
            record["stopped_early"] = True
            record["steps"] = steps
        self._call("after_epoch", record)
        return record

    def _train_step(self, batches: Iterator, epoch: int, step: int, lr: float) -> StepInfo:
        opts = self.options
        self.optimizer.zero_grad(set_to_none=True)
        step_losses: dict[str, float] = {}
        step_ids: list[int] = []
        for micro in range(opts.accumulation):
            ids, (images, targets) = next(batches)
            step_ids.extend(ids)
            images = to_device(images, self.ctx.device)
            targets = to_device(targets, self.ctx.device)
            last = micro == opts.accumulation - 1
            sync = contextlib.nullcontext()
            if self.ctx.distributed and not last:
                sync = self.model.no_sync()
            with sync:
                with autocast_context(opts.amp, self.ctx.device):
                    losses = self.model(images, targets)
                self._check_finite(losses, ids, epoch, step)
                total = sum(v.float() for v in losses.values())
                self.scaler.scale(total / opts.accumulation).backward()
            for k, v in losses.items():
                step_losses[k] = step_losses.get(k, 0.0) + float(v.detach()) / opts.accumulation
        step_losses["loss"] = sum(step_losses.values())
        grad_norm = None
        if opts.gradient_clip_norm is not None:
            self.scaler.unscale_(self.optimizer)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(self.params, opts.gradient_clip_norm))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.state.global_step += 1
        return StepInfo(epoch=epoch, step=step, global_step=self.state.global_step, lr=lr, losses=step_losses,
                        grad_norm=grad_norm, sample_indices=step_ids)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean losses over ``VALIDATION_STEPS`` validation batches (train-mode forward, no gradient,
        BatchNorm statistics untouched); ``{}`` without validation data."""
        if self.val_sampler is None:
            return {}
        module = self.module
        module.train()
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        sums: dict[str, float] = {}
        count = 0
        self._call("before_validation", self.validation_steps)
        for ids, (images, targets) in self._loader(self.val_samples, self.val_sampler):
            images = to_device(images, self.ctx.device)
            targets = to_device(targets, self.ctx.device)
            with autocast_context(self.options.amp, self.ctx.device):
                losses = module(images, targets)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
            self._call("after_validation_step")
        means = {k: v / max(count, 1) for k, v in sums.items()}
        if means:
            means["loss"] = sum(means.values())
        means = D.all_reduce_mean(means, self.ctx)
        self.model.train()
        freeze_norm_statistics(self.model)
        return means
