"""``maskrcnn train``: train or fine-tune (transfer learning, staged layers, resume).

    maskrcnn train --dataset ../shared/data/balloon --weights coco --layers heads --epochs 30
    maskrcnn train --dataset ../shared/data/balloon --weights last --layers all --epochs 60 --lr 0.0001
    maskrcnn train --dataset shapes:500:128 --set BACKBONE=resnet18 IMAGES_PER_GPU=8 --epochs 10
    torchrun --nproc_per_node 2 -m maskrcnn train --dataset ... --device cpu --logs-dir logs  # DDP

``--set`` values are YAML (``--set RPN_ANCHOR_SCALES="[8, 16, 32, 64, 128]"``). A dataset
folder with ``train/`` and ``val/`` uses both; otherwise ``--val-fraction`` of it is held out.

``--weights`` follows the detector's one rule (:mod:`maskrcnn.detector.weights_rule`). Our own
checkpoints carry their config: ``--weights last`` (or a checkpoint in its run folder) resumes that
run with it — no ``--set`` needed; ``--set`` may change training values (learning rate, schedule,
steps, …) and refuses, naming the key, values the network is built from. ``--exclude-class-layers``
or ``--new-run`` start a new run from a checkpoint instead (then ``--set`` may change anything).
"""

from __future__ import annotations

import argparse
import os

from . import add_dataset_path

LAYERS_HELP = "heads, 3+, 4+, 5+, all (matterport's presets) or a regex over parameter names (default: heads)"


EPILOG = """\
config keys that matter most (--set KEY=VALUE, or in --config FILE.yaml):
  BACKBONE, BACKBONE_NORM   resnet18/34/50/101; gn trains from random weights (frozen_bn needs pretrained ones)
  IMAGE_MIN_DIM/MAX_DIM     image size: the cost of a step grows with its square
  IMAGES_PER_GPU            images per step; STEPS_PER_EPOCH steps per epoch (VALIDATION_STEPS: at most)
  LEARNING_RATE, OPTIMIZER  sgd (matterport) or adamw; LR_SCHEDULE cosine with LR_WARMUP_STEPS
  TOP_DOWN_PYRAMID_SIZE, MASK_HEAD_CONV_CHANNELS, FPN_CLASSIF_FC_LAYERS_SIZE, TRAIN_ROIS_PER_IMAGE
                            head widths and ROIs: on a CPU the heads cost more than the backbone
  RPN_ANCHOR_SCALES         one anchor side per level P2..P6, pixels: match your objects' sizes
  DETECTION_MIN_CONFIDENCE  score threshold of detections (evaluation and detect)
presets (--preset NAME; --config and --set go on top):
{presets}
--weights none trains from scratch: GroupNorm instead of frozen BatchNorm and --layers all unless you name
them (BACKBONE_NORM=frozen_bn or --layers heads are refused: they cannot train from random weights).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..presets import DESCRIPTIONS

    parser.epilog = EPILOG.format(presets="\n".join(f"  {k:5} {v}" for k, v in sorted(DESCRIPTIONS.items())))
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_dataset_path(parser, flag="--dataset")
    parser.add_argument("--val-fraction", type=float, default=0.1, metavar="F",
                        help="without a val/ folder: hold out this fraction for validation (0: none; default 0.1)")
    parser.add_argument("--preset", default=None, metavar="NAME",
                        help=f"start from a named config ({', '.join(sorted(DESCRIPTIONS))}; --config and --set "
                             f"go on top): cpu is a small model for CPUs, see below")
    parser.add_argument("--config", default=None, metavar="FILE.yaml", help="config attributes (YAML mapping)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override config attributes (values parsed as YAML)")
    parser.add_argument("--weights", default="none", metavar="W",
                        help="coco, matterport-coco, imagenet, last (resume the newest run of --name), a checkpoint "
                             "FILE (a training checkpoint in its run folder resumes that run), matterport's Keras "
                             ".h5 weights, or none")
    parser.add_argument("--exclude-class-layers", action="store_true",
                        help="don't load the class-specific layers (fine-tuning to another class count; a new "
                             "run); matterport's: mrcnn_class_logits, mrcnn_bbox_fc, mrcnn_bbox, mrcnn_mask")
    parser.add_argument("--new-run", action="store_true",
                        help="start a new run from a training checkpoint instead of resuming its run")
    parser.add_argument("--layers", default=None,
                        help=LAYERS_HELP.replace("(default: heads)", "(default: heads; on resume, the run's)"))
    parser.add_argument("--epochs", type=int, default=None, metavar="N",
                        help="train up to epoch N (absolute, as matterport; default 30)")
    parser.add_argument("--lr", type=float, default=None, metavar="X", help="learning rate (default LEARNING_RATE)")
    parser.add_argument("--augment", default="none", metavar="NAME", help="augmentation: none, default, strong")
    parser.add_argument("--logs", "--logs-dir", dest="logs", default="logs", metavar="DIR",
                        help="folder of the run folders (default logs); under torchrun spell it --logs-dir "
                             "(torchrun takes --logs for its own --logs-specs)")
    parser.add_argument("--name", default=None, metavar="NAME",
                        help="run name (config NAME; default: the config's NAME or the dataset's folder name)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    parser.add_argument("--workers", type=int, default=0, metavar="N", help="data loader processes (default 0)")
    parser.add_argument("--seed", type=int, default=None, metavar="N", help="seed of sampling and initialization")
    parser.add_argument("--eval-every", type=int, default=None, metavar="K",
                        help="validation mAP every K epochs (0: never; default EVAL_EVERY = 1)")
    parser.add_argument("--eval-limit", type=int, default=None, metavar="N",
                        help="validation mAP on the first N validation images only")
    parser.add_argument("--time-limit", type=float, default=None, metavar="MINUTES",
                        help="stop after this many minutes of training (the current epoch is checkpointed)")
    parser.add_argument("--progress", choices=("bar", "plain", "none"), default="bar",
                        help="tqdm bar, a line per step, or nothing (default bar)")


def _dataset_name(path: str) -> str:
    from ..data.loading import is_shapes_spec

    if is_shapes_spec(path):
        return "shapes"
    p = os.path.abspath(path)
    if os.path.isfile(p):
        p = os.path.dirname(p)
    return os.path.basename(p.rstrip(os.sep)) or "model"


def run(args: argparse.Namespace) -> int:
    import torch

    from ..data.augment import get_augmentation
    from ..detector import MaskRCNN, resolve_weights
    from ..detector.run import RunState, config_for_resume
    from ..errors import WeightsError
    from ..presets import preset_values
    from ..training.rundir import run_name
    from ..training.scratch import scratch_plan
    from ..training.setup import build_config, load_train_val, parse_set_values, read_config_file, \
        split_training_attributes

    main = int(os.environ.get("RANK", "0")) == 0

    def say(text: str) -> None:
        if main:
            print(text, flush=True)

    if args.seed is not None:
        torch.manual_seed(args.seed)  # the model's initialization
    data = load_train_val(args.dataset, format=args.format, class_attribute=args.class_attribute,
                          annotations=args.annotations, val_fraction=args.val_fraction,
                          split_seed=args.seed or 0)
    class_names = list(data.train.class_names)
    preset = preset_values(args.preset) if args.preset else {}
    file_values = {**preset, **(read_config_file(args.config) if args.config else {})}
    set_values = parse_set_values(args.set)
    name = args.name or set_values.get("NAME") or file_values.get("NAME") or _dataset_name(args.dataset)
    say(f"dataset {args.dataset}: {data.describe()}, classes {class_names[1:]}")

    try:
        choice = resolve_weights(args.weights, model_dir=args.logs, name=name)
    except WeightsError as exc:
        raise WeightsError(f"--weights: {exc}") from None
    exclude = "class_specific" if args.exclude_class_layers else None
    if choice.is_ours:  # our checkpoint: its own config, with --config/--set on top
        stored = choice.config()
        values = {**file_values, **set_values}
        resuming = choice.run().run_dir is not None and exclude is None and not args.new_run
        if resuming:
            explicit = args.name or set_values.get("NAME") or file_values.get("NAME")
            if explicit and run_name(explicit) != run_name(stored.NAME):
                raise WeightsError(f"--name {explicit}: the run being resumed ({choice.label}) is named "
                                   f"{stored.NAME!r}; drop it, or pass --new-run")
            values.pop("NAME", None)
            stored_names = choice.class_names() or []
            if stored_names and stored_names != class_names:
                raise WeightsError(
                    f"--dataset {args.dataset}: has the classes {class_names[1:]} (NUM_CLASSES={len(class_names)}) "
                    f"but {choice.label} was trained on {stored_names[1:]} (NUM_CLASSES={len(stored_names)}); to "
                    f"fine-tune it to these classes start a new run with --exclude-class-layers")
            values, attributes = split_training_attributes(values, type(stored))
            config = config_for_resume(stored, values, source=choice.label)
        else:
            values, attributes = split_training_attributes(values, type(stored))
            values.update(NUM_CLASSES=len(class_names), NAME=name)
            config = stored.copy(**values).validate()
    elif choice.format == "matterport_h5":  # matterport's .h5: a MatterportConfig of its backbone, --config/--set on top
        stored = choice.config()
        values, attributes = split_training_attributes({**file_values, **set_values}, type(stored))
        values.update(NUM_CLASSES=len(class_names), NAME=name)
        config = stored.copy(**values).validate()
    else:
        config, attributes = build_config(config_file=args.config, sets=args.set, num_classes=len(class_names),
                                          name=name, preset=preset)
    if choice.kind == "none":  # random weights: what can train (one line), or a refusal with the fix
        plan = scratch_plan(config, layers=args.layers)
        config, args.layers = (config.copy(**plan.values).validate() if plan.values else config), plan.layers
    if args.lr is not None:
        config.LEARNING_RATE = args.lr

    model = MaskRCNN(config, class_names=class_names, device=args.device or None, model_dir=args.logs)
    if choice.spec == "coco" and exclude is None and config.NUM_CLASSES != 91:
        exclude = "class_specific"  # COCO's 91 classes: fine-tuning keeps everything else
    if choice.is_matterport_coco and exclude is None and config.NUM_CLASSES != 81:
        exclude = "class_specific"  # matterport's COCO: 81 classes; mrcnn_class_logits, mrcnn_bbox_fc, mrcnn_mask
    try:
        report = model.load_weights(choice, exclude=exclude)
    except WeightsError as exc:
        text = str(exc)
        if "exclude='class_specific'" in text:
            text += " — on the command line: --exclude-class-layers"
        raise WeightsError(f"--weights: {text}") from None
    if args.new_run:
        model.run = RunState()
    layers = args.layers
    if model.log_dir is not None:
        stage = (choice.checkpoint.get("training") or {}).get("stage") or {}
        layers = layers or stage.get("layers")
        say(f"weights: resuming {choice.label}: run {model.log_dir.name} at epoch {model.epoch}")
    else:
        say(("weights: none — " + (plan.message or "training from scratch")) if choice.kind == "none" else
            str(report).splitlines()[0] + (" (class-specific layers excluded)" if exclude else ""))

    result = model.train(
        data.train, data.val, learning_rate=config.LEARNING_RATE, epochs=args.epochs or 30,
        layers=layers or "heads", augmentation=get_augmentation(args.augment), device=args.device,
        num_workers=args.workers, progress=args.progress, seed=args.seed, eval_every=args.eval_every,
        eval_limit=args.eval_limit, attributes=attributes, train_image_ids=data.train_ids,
        val_image_ids=data.val_ids, time_limit=None if args.time_limit is None else 60.0 * args.time_limit,
    )
    if result.history:
        last = result.history[-1]
        say(f"trained to epoch {result.epoch} (step {result.global_step}); last loss {last['train'].get('loss', 0):.4f}")
    if result.last_checkpoint is not None:
        say(f"checkpoint: {result.last_checkpoint}")
    if result.best:
        say(f"best: epoch {result.best['epoch']} {result.best['metric']}={result.best['value']:.4f}")
    say(f"logs: {result.run_dir} (tensorboard --logdir {result.run_dir.parent})")
    return 0
