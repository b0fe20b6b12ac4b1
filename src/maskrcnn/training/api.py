"""Training entry points: :func:`train` (matterport datasets) and :func:`fit` (the generic core).

matterport's ``model.train(dataset_train, dataset_val, learning_rate=…, epochs=…, layers=…)`` is
:meth:`maskrcnn.detector.MaskRCNN.train`; it calls :func:`train` with its network, config and run::

    train(network, config, dataset_train, dataset_val, learning_rate=config.LEARNING_RATE,
          epochs=30, layers="heads", augmentation=None)            # a new run, epochs 1..30
    train(network, config, dataset_train, dataset_val, learning_rate=config.LEARNING_RATE / 10,
          epochs=40, layers="all", resume=RunStart(...))          # the same run, epochs 31..40

``epochs`` is absolute: training runs from the run's current epoch up to it. A new run
writes to ``<logs>/<name><timestamp>/``; ``resume`` continues a run in its folder, from the epoch
and step it ended, with the optimizer, schedule, GradScaler and RNG states it had, as long as the
stage (``layers``, learning rate, optimizer kind) is the same; otherwise a new stage starts there
with a fresh optimizer (matterport recompiles the model at each stage too). The learning rate
never jumps back up on resume (see :mod:`.schedule`).

:func:`fit` is the generic core (any model that returns a loss dict, any map-style
dataset of ``(image, target)``); :func:`train` builds the samples, the collate function
and the validation mAP from matterport-style :class:`~maskrcnn.data.dataset.Dataset`\\s.
"""

from __future__ import annotations

import dataclasses
import random
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from ..errors import ConfigError, WeightsError
from . import distributed as D
from .checkpoint import read_training_checkpoint
from .hooks import CheckpointHook, EvalHook, MetricsLogger, ProgressHook, TimeLimitHook
from .layers import set_trainable
from .optim import build_optimizer
from .options import TrainOptions
from .rng import restore_rng_state
from .rundir import find_last, list_checkpoints, new_run_dir, run_name, write_run_config
from .schedule import LRSchedule
from .trainer import Hook, Trainer, TrainState


@dataclass
class TrainResult:
    """What a training call did.

    run_dir: the run folder. epoch / global_step: where the model stands now.
    checkpoints: the epoch checkpoints in the run folder (after retention), oldest first.
    best: ``{"metric", "value", "epoch"}`` or None. history: this call's epoch records.
    message: a note, e.g. that nothing was left to train.
    """

    run_dir: Path
    epoch: int
    global_step: int
    checkpoints: list[Path] = field(default_factory=list)
    best: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""

    @property
    def last_checkpoint(self) -> Path | None:
        return self.checkpoints[-1] if self.checkpoints else None


@dataclass
class RunStart:
    """A run to continue whose weights the model already holds: its folder and the ``training``
    state of the checkpoint those weights came from (epoch, step, seed, stage, optimizer, RNG...).
    ``source`` names that checkpoint in messages."""

    run_dir: Path
    training: dict[str, Any]
    source: str = ""


class _History(Hook):
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def after_epoch(self, trainer: Trainer, record: dict[str, Any]) -> None:
        self.records.append(record)


class _RunConfig(Hook):
    """Writes the run's ``config.yaml`` when training starts (rank 0)."""

    def __init__(self, config: Any) -> None:
        self.config = config

    def before_train(self, trainer: Trainer) -> None:
        if trainer.ctx.is_main and trainer.run_dir is not None:
            write_run_config(trainer.run_dir, self.config, epoch=trainer.state.epoch)


def _resolve_resume(resume: str | Path | RunStart | None, logs_dir: Path, name: str,
                    model: nn.Module) -> RunStart | None:
    """``resume`` as a :class:`RunStart`; a path (or ``"last"``) is read and its weights loaded into ``model``."""
    if resume is None or resume is False or isinstance(resume, RunStart):
        return resume or None
    path = find_last(logs_dir, name) if str(resume) == "last" else Path(resume)
    return RunStart(run_dir=path.parent, training=read_training_checkpoint(path, model), source=str(path))


def _same_stage(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return all(old.get(k) == new[k] for k in ("layers", "learning_rate", "optimizer"))


def fit(
    model: nn.Module,
    train_samples: Dataset,
    collate: Callable[[list], Any],
    *,
    epochs: int,
    layers: str = "all",
    options: TrainOptions,
    val_samples: Dataset | None = None,
    logs_dir: str | Path = "logs",
    name: str | None = None,
    resume: str | Path | RunStart | None = None,
    device: str | torch.device | None = None,
    ctx: D.DistContext | None = None,
    num_workers: int = 0,
    progress: str = "bar",
    evaluate: Callable[[nn.Module], dict[str, Any]] | None = None,
    hooks: Sequence[Hook] = (),
    describe_image: Callable[[int], str] | None = None,
    checkpoint_extras: Callable[[], dict[str, Any]] | None = None,
    model_fields: Callable[[], dict[str, Any]] | None = None,
    tensorboard: bool = True,
    time_limit: float | None = None,
) -> TrainResult:
    """Train ``model`` on ``train_samples`` up to epoch ``epochs`` (see the module docstring).

    Args:
        model: returns the dict of weighted losses from ``model(images, targets)`` in train mode.
        train_samples, val_samples: map-style datasets of ``(image [3,H,W], target dict)``.
        collate: list of samples → ``(images list, targets list)``.
        epochs: absolute epoch to train up to.
        layers: preset (heads, 3+, 4+, 5+, all) or regex, see :mod:`.layers`.
        options: :class:`TrainOptions` (learning rate, schedule, AMP, ...).
        logs_dir, name: the run folder is ``<logs_dir>/<name><timestamp>``.
        resume: a :class:`RunStart` (the model holds its weights already), or a training checkpoint
            (or ``"last"`` for the newest one of ``name``) whose weights are loaded into ``model``.
        device: ``"cpu"``/``"cuda"``/None (CUDA if available); ignored when ``ctx`` is given.
        ctx: distributed context (default: from torchrun's environment, if any).
        num_workers: DataLoader workers (0: in the main process).
        progress: ``"bar"``, ``"plain"`` or ``"none"``.
        evaluate: model → COCO-style metrics, run by :class:`EvalHook` every ``options.eval_every`` epochs.
        hooks: more hooks, called after the built-in ones.
        checkpoint_extras: more entries of the checkpoints' training state.
        model_fields: what the checkpoints carry to rebuild the model (config, class names), see
            :func:`.checkpoint.save_checkpoint`.
        time_limit: seconds; training stops after the step that passes it (the epoch in progress is
            then validated and checkpointed, see :meth:`Trainer.request_stop`).
    """
    if len(train_samples) == 0:  # type: ignore[arg-type]
        raise ConfigError("fit(): no training samples")
    ctx = ctx or D.init_distributed(device)
    logs_dir = Path(logs_dir)
    name = run_name(name)
    if options.amp is not None and ctx.device.type != "cuda":
        warnings.warn(f"AMP={options.amp!r} needs CUDA; training in float32 on {ctx.device}", stacklevel=2)
        options = dataclasses.replace(options, amp=None)

    start = _resolve_resume(resume, logs_dir, name, model)
    saved: dict[str, Any] | None = None
    if start is not None:
        saved = start.training
        run_dir = Path(start.run_dir)
        state = TrainState(seed=int(saved["seed"]), epoch=int(saved["epoch"]), global_step=int(saved["global_step"]),
                           stage=dict(saved.get("stage") or {}), best=saved.get("best"))
    else:
        seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**31)
        run_dir, seed = D.broadcast_object((new_run_dir(logs_dir, name), seed), ctx)
        state = TrainState(seed=int(seed))

    if state.epoch >= epochs:
        where = f" ({start.source or run_dir})" if start is not None else ""
        message = (f"nothing to train: the model is already at epoch {state.epoch}{where} and epochs="
                   f"{epochs} is the epoch to train up to (absolute, as matterport); ask for epochs > "
                   f"{state.epoch} to train further")
        if ctx.is_main:
            print(message, file=sys.stderr, flush=True)
        return TrainResult(run_dir=run_dir, epoch=state.epoch, global_step=state.global_step,
                           checkpoints=list_checkpoints(run_dir), best=state.best, message=message)

    model.to(ctx.device)
    set_trainable(model, layers)
    optimizer = build_optimizer(model, options)
    scaler = torch.amp.GradScaler("cuda", enabled=options.amp == "fp16" and ctx.device.type == "cuda")
    stage = {"layers": layers, "learning_rate": options.learning_rate, "optimizer": options.optimizer,
             "start_step": state.global_step}
    schedule = _schedule(options, start_step=state.global_step, epochs=epochs)
    message = ""
    if saved is not None and _same_stage(state.stage, stage):
        stage["start_step"] = int(state.stage.get("start_step", 0))
        try:
            optimizer.load_state_dict(saved["optimizer"])
        except (ValueError, KeyError) as exc:
            raise WeightsError(f"{start.source or run_dir}: its optimizer state does not fit this model's trainable "
                               f"parameters ({exc}); was the model or 'layers' changed?") from None
        if saved.get("scaler"):
            scaler.load_state_dict(saved["scaler"])
        schedule = _schedule(options, start_step=stage["start_step"], epochs=epochs)
        if saved.get("schedule"):
            previous = LRSchedule.from_state_dict(saved["schedule"])
            schedule = previous.continued(schedule, state.global_step)
            if schedule.kind == "cosine" and state.global_step >= previous.end_step > previous.start_step:
                message = (f"; its cosine schedule had ended at epoch {state.epoch} (learning rate at its minimum): "
                           f"training goes on at that rate — pass another learning rate to start a new stage")
        message = f"resuming {run_dir.name} at epoch {state.epoch}, step {state.global_step}" + message
    elif saved is not None:
        message = (f"continuing {run_dir.name} from epoch {state.epoch} with a new stage (layers={layers!r}, "
                   f"lr={options.learning_rate:g}, {options.optimizer}): fresh optimizer state")
    state.stage = stage
    if saved is not None and saved.get("rng"):
        restore_rng_state(saved["rng"])
    if message and ctx.is_main:
        print(message, file=sys.stderr, flush=True)

    def extras() -> dict[str, Any]:
        out = {"options": options.to_dict(), "world_size": ctx.world_size}
        if checkpoint_extras is not None:
            out.update(checkpoint_extras())
        return out

    history = _History()
    all_hooks: list[Hook] = [ProgressHook(progress)]
    if time_limit is not None:
        all_hooks.insert(0, TimeLimitHook(time_limit))
    if evaluate is not None and options.eval_every > 0:
        all_hooks.append(EvalHook(evaluate, every=options.eval_every))
    all_hooks += [
        MetricsLogger(run_dir, tensorboard=tensorboard),
        CheckpointHook(run_dir, name=name, keep_last=options.keep_last, best_metric=options.best_metric,
                       training_extras=extras, model_fields=model_fields),
        history,
        *hooks,
    ]
    trainer = Trainer(model=D.wrap_model(model, ctx), optimizer=optimizer, schedule=schedule,
                      train_samples=train_samples, collate=collate, options=options, state=state, ctx=ctx,
                      val_samples=val_samples, scaler=scaler, hooks=all_hooks, describe_image=describe_image,
                      num_workers=num_workers, run_dir=run_dir)
    trainer.fit(epochs)
    return TrainResult(run_dir=run_dir, epoch=state.epoch, global_step=state.global_step,
                       checkpoints=list_checkpoints(run_dir), best=state.best, history=history.records,
                       message=message)


def _schedule(options: TrainOptions, *, start_step: int, epochs: int) -> LRSchedule:
    return LRSchedule(kind=options.schedule, start_step=start_step, end_step=epochs * options.steps_per_epoch,
                      steps_per_epoch=options.steps_per_epoch, warmup_steps=options.warmup_steps,
                      warmup_factor=options.warmup_factor, milestones=options.lr_steps, gamma=options.lr_gamma,
                      min_factor=options.lr_min_factor)


def _describe(samples: Any) -> Callable[[int], str]:
    """Sample index → ``"<image id> (<path or source id>)"``."""

    def describe(index: int) -> str:
        try:
            image_id = int(samples.image_ids[index])
            info = samples.dataset.image_info[image_id]
        except (AttributeError, IndexError, KeyError, TypeError):
            return str(index)
        ref = info.get("path") or info.get("id")
        return f"{image_id} ({ref})" if ref is not None else str(image_id)

    return describe


def train(
    network: nn.Module,
    config: Any,
    train_dataset: Any,
    val_dataset: Any | None,
    *,
    learning_rate: float | None = None,
    epochs: int,
    layers: str,
    augmentation: Any = None,
    logs_dir: str | Path = "logs",
    name: str | None = None,
    resume: str | Path | RunStart | None = None,
    detector: Any = None,
    model_fields: Callable[[], dict[str, Any]] | None = None,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    progress: str = "bar",
    seed: int | None = None,
    eval_every: int | None = None,
    eval_limit: int | None = None,
    hooks: Sequence[Hook] = (),
    ctx: D.DistContext | None = None,
    tensorboard: bool = True,
    attributes: dict[str, Any] | None = None,
    train_image_ids: Sequence[int] | None = None,
    val_image_ids: Sequence[int] | None = None,
    time_limit: float | None = None,
) -> TrainResult:
    """matterport's ``train(train_dataset, val_dataset, learning_rate, epochs, layers, augmentation)`` for
    ``network`` (an ``nn.Module`` returning the loss dict) built from ``config``.

    ``config`` gives the training options (see :mod:`.options`); the datasets are prepared
    :class:`~maskrcnn.data.dataset.Dataset`\\s. ``learning_rate`` defaults to the config's
    LEARNING_RATE; ``name`` to the config's NAME. ``resume``: see :func:`fit`. ``detector``: anything
    with matterport's ``detect`` running ``network`` — it gives the validation COCO mAP (which picks the
    best checkpoint) every EVAL_EVERY epochs on EVAL_LIMIT images (``eval_every`` / ``eval_limit``
    override them); without it there is none. ``model_fields``: see :func:`fit`. ``attributes``:
    training attributes by name (``{"LR_SCHEDULE": "cosine"}``, see :mod:`.options`) overriding the
    config's. ``train_image_ids`` / ``val_image_ids``: use only these images of the datasets (e.g. a
    split of one dataset passed as both). ``time_limit``: seconds of training after which it stops
    (see :func:`fit`). The run folder gets the config as ``config.yaml``. Returns a :class:`TrainResult`.
    """
    from ..data.loader import TrainingSamples, collate
    from .scratch import check_trainable

    check_trainable(network)  # frozen BatchNorm of random weights cannot train: refused, with the fix
    options = TrainOptions.from_config(config, learning_rate=learning_rate, attributes=attributes, seed=seed,
                                       eval_every=eval_every, eval_limit=eval_limit)

    def samples(dataset: Any, aug: Any, ids: Sequence[int] | None) -> Dataset:
        return TrainingSamples(dataset, use_mini_mask=options.use_mini_mask, mini_mask_shape=options.mini_mask_shape,
                               max_gt_instances=options.max_gt_instances, augmentation=aug, image_ids=ids)

    train_samples = samples(train_dataset, augmentation, train_image_ids)
    if len(train_samples) == 0:
        raise ConfigError("train(): the training dataset has no images (did you call dataset.prepare()?)")
    val_samples = samples(val_dataset, None, val_image_ids) if val_dataset is not None else None
    evaluate = None
    if detector is not None and val_samples is not None and len(val_samples) > 0:
        val_ids = list(val_samples.image_ids)

        def evaluate(_: nn.Module) -> dict[str, Any]:
            from ..evaluation.coco_eval import evaluate_model

            return evaluate_model(detector, val_dataset, image_ids=val_ids, limit=options.eval_limit, progress=False)

    def extras() -> dict[str, Any]:
        return {"layers": layers}

    return fit(network, train_samples, collate, epochs=epochs, layers=layers, options=options,
               val_samples=val_samples, logs_dir=logs_dir, name=name or getattr(config, "NAME", None),
               resume=resume, device=device, ctx=ctx, num_workers=num_workers, progress=progress,
               evaluate=evaluate, hooks=[_RunConfig(config), *hooks], describe_image=_describe(train_samples),
               checkpoint_extras=extras, model_fields=model_fields, tensorboard=tensorboard, time_limit=time_limit)
