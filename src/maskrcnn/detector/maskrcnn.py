"""matterport's ``MaskRCNN``: the user's detector around the network.

The network (:class:`~maskrcnn.model.network.MaskRCNNNetwork`) is an ``nn.Module`` of tensors.
This class is matterport's user API around it, as matterport's class is around its
``keras_model``: a plain object holding

* ``network``: the ``nn.Module`` (what the trainer trains, what ``state_dict`` and ``torch.compile``
  see; checkpoint keys are its state-dict keys);
* ``config`` (the network's config: changing a detection threshold on it changes what ``detect``
  returns), ``class_names`` and ``model_dir`` (the logs folder);
* the run state (:class:`~.run.RunState`): ``log_dir`` and ``epoch``, so that ``train()``
  continues one run, call after call, as in matterport.

Methods: :meth:`detect`, :meth:`detect_union`, :meth:`run_graph` (numpy images in, matterport's
results out), :meth:`load_weights` and :meth:`from_weights` (the one "which weights" rule,
:mod:`.weights_rule`), :meth:`save`, :meth:`find_last`, :meth:`train`.

It sits above training, weights and evaluation (it uses them); nothing below it imports it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..config import Config
from ..errors import ConfigError, ImageError, WeightsError
from ..matterport_h5 import H5_FORMAT
from ..model.build import NETWORK_ATTRIBUTES
from ..model.fuse import is_fused
from ..model.network import MaskRCNNNetwork
from ..model.probe import recording
from ..training.api import RunStart, TrainResult
from ..training.rundir import checkpoint_of_epoch, find_last
from ..training.trainer import Hook
from ..weights import LoadReport, imagenet_file, load_weights, read_checkpoint, training_state, write_checkpoint
from .run import RunState
from .weights_rule import Weights, placeholder_class_names, resolve_weights


class MaskRCNN:
    """Mask R-CNN with matterport's API.

    Args:
        config: the configuration (validated here).
        class_names: names by class id, ``class_names[0]`` the background (default ``BG, class1, ...``).
        device: where the network lives; default CUDA when available, else CPU.
        model_dir: the logs folder: run folders are made there, ``last`` is looked for there.
        mode: matterport's ``"inference"`` / ``"training"``, accepted so that matterport's line
            ``MaskRCNN(mode="training", config=config, model_dir=DIR)`` runs unchanged; one model does
            both here (``train()`` and ``detect()``), so it only names the intent.
    """

    def __init__(self, config: Config | None = None, *, class_names: Sequence[str] | None = None,
                 device: str | torch.device | None = None, model_dir: str | os.PathLike = "logs",
                 mode: str = "inference") -> None:
        if mode not in ("inference", "training"):
            raise ConfigError(f"mode={mode!r}: matterport's modes are 'inference' and 'training'")
        if config is None:
            raise ConfigError("MaskRCNN needs a config: MaskRCNN(mode=..., config=YourConfig(), model_dir=...)")
        self.mode = mode
        self.network = MaskRCNNNetwork(config)
        self.class_names = _class_names(class_names, config.NUM_CLASSES)
        self.model_dir = Path(model_dir)
        self.run = RunState()
        self.to(device)

    def __repr__(self) -> str:
        return (f"MaskRCNN({self.config!r}, classes={self.class_names[1:]}, device={self.device}, "
                f"run={self.log_dir}, epoch={self.epoch})")

    # ------------------------------------------------------------------ state
    @property
    def config(self) -> Config:
        """The network's configuration (one object: changing a detection threshold here takes effect)."""
        return self.network.config

    @property
    def device(self) -> torch.device:
        return self.network.device

    def to(self, device: str | torch.device | None) -> MaskRCNN:
        """Move the network to ``device`` (None: CUDA when available, else CPU); returns self."""
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.network.to(torch.device(device))
        return self

    @property
    def inference_amp(self) -> str | None:
        """The network's inference mixed precision on CUDA (see ``MaskRCNNNetwork.inference_amp``)."""
        return self.network.inference_amp

    @inference_amp.setter
    def inference_amp(self, value: str | None) -> None:
        self.network.inference_amp = value

    @property
    def epoch(self) -> int:
        """Epochs done in the current run (matterport's ``model.epoch``)."""
        return self.run.epoch

    @property
    def log_dir(self) -> Path | None:
        """The current run folder (matterport's ``model.log_dir``), None before the first ``train()``."""
        return self.run.run_dir

    # ------------------------------------------------------------------ matterport API: inference
    def detect(self, images: Sequence[np.ndarray], verbose: int = 0, batch_size: int | None = None) -> list[dict]:
        """Detect instances in ``H×W×3`` uint8 RGB images (grayscale and RGBA are converted).

        Returns one dict per image: ``rois`` ``[N, (y1, x1, y2, x2)]`` int32 original pixels,
        ``class_ids`` int32, ``scores`` float32, ``masks`` ``H×W×N`` bool (probability ≥ MASK_THRESHOLD).
        Any number of images of any sizes, processed ``batch_size`` (default BATCH_SIZE) at a time.
        The config's DETECTION_* values and MASK_THRESHOLD are read at each call.
        """
        if isinstance(images, np.ndarray) and images.ndim in (2, 3) and images.dtype == np.uint8:
            raise ImageError("images: detect() takes a list of images; wrap a single image as [image]")
        tensors = [_image_tensor(image, i) for i, image in enumerate(images)]
        if verbose:
            print(f"Processing {len(tensors)} images")
            for t in tensors:
                print(f"image                    shape: {tuple(t.shape[1:]) + (3,)}  dtype: uint8")
        threshold = float(self.config.MASK_THRESHOLD)
        return [_to_matterport(out, threshold) for out in self._inference_outputs(tensors, batch_size)]

    def detect_union(
        self,
        images: Sequence[np.ndarray],
        *,
        class_ids: Iterable[int] | None = None,
        min_confidence: float | None = None,
        batch_size: int | None = None,
        return_counts: bool = False,
    ) -> list[np.ndarray] | tuple[list[np.ndarray], list[int]]:
        """Per image the ``H×W`` bool union of the masks :meth:`detect` returns — only of
        ``class_ids`` (``None``: all) and of scores ≥ ``min_confidence`` when given.
        ``return_counts``: also return how many masks each union joins (the objects a splash keeps).

        What a color splash needs, computed where the model runs: only ``H×W`` bools reach the
        host, instead of ``N`` full-size masks transposed to matterport's ``H×W×N``.
        """
        tensors = [_image_tensor(image, i) for i, image in enumerate(images)]
        wanted = None if class_ids is None else sorted({int(c) for c in class_ids})
        threshold = float(self.config.MASK_THRESHOLD)
        unions, counts = [], []
        for out in self._inference_outputs(tensors, batch_size):
            keep = _nonempty_rois(out["boxes"])
            if wanted is not None:
                keep &= torch.isin(out["labels"], torch.tensor(wanted, device=keep.device))
            if min_confidence is not None:
                keep &= out["scores"].float() >= float(min_confidence)
            probs = out["masks"] if bool(keep.all()) else out["masks"][keep]
            counts.append(int(probs.shape[0]))
            if probs.shape[0] == 0:
                unions.append(np.zeros(tuple(probs.shape[1:]), dtype=bool))
                continue
            # any(p_i >= t) == max_i(p_i) >= t: one pass, no N×H×W bool intermediate
            unions.append((probs.amax(dim=0) >= threshold).cpu().numpy())
        return (unions, counts) if return_counts else unions

    def run_graph(self, images: Sequence[np.ndarray | Tensor], names: Iterable[str] | None = None) -> dict[str, Any]:
        """Named intermediates of one inference forward (see :mod:`maskrcnn.model.probe` for the names).

        ``images``: ``H×W×3`` uint8 arrays (as :meth:`detect`) or ``[3,H,W]`` tensors in 0-255.
        ``names``: the intermediates wanted (default all). The final outputs (``"output"``, per-image
        dicts as the network returns) are always included. Unknown names raise ``KeyError``.
        """
        tensors = [img if isinstance(img, Tensor) else _image_tensor(img, i) for i, img in enumerate(images)]
        wanted = None if names is None else list(names)
        network = self.network
        was_training = network.training
        network.eval()
        try:
            with torch.inference_mode(), recording(None if wanted is None else wanted + ["output"]) as rec:
                network(tensors)
        finally:
            network.train(was_training)
        if wanted is not None:
            unknown = [n for n in wanted if n not in rec and n not in rec.seen]
            if unknown:
                raise KeyError(f"run_graph: unknown names {unknown}; known: {', '.join(dict.fromkeys(rec.seen))}")
        return dict(rec)

    def _inference_outputs(self, tensors: list[Tensor], batch_size: int | None) -> Iterator[dict[str, Tensor]]:
        """The network's eval-mode outputs, ``batch_size`` (default BATCH_SIZE) images a call."""
        step = int(batch_size or self.config.BATCH_SIZE or 1)
        network = self.network
        was_training = network.training
        network.eval()
        try:
            for start in range(0, len(tensors), step):
                with torch.inference_mode():
                    outputs = network(tensors[start:start + step])
                yield from outputs
        finally:
            network.train(was_training)

    # ------------------------------------------------------------------ weights
    def load_weights(self, weights: str | os.PathLike | Weights, by_name: bool = True,
                     exclude: str | Iterable[str] | None = None, strict: bool = True) -> LoadReport:
        """Load ``coco``, ``matterport-coco``, ``imagenet``, ``last``, ``none`` or a file — ours, torchvision's, or
        matterport's Keras ``.h5`` into a ``MatterportConfig`` model (see :mod:`.weights_rule`).

        ``by_name``: accepted for matterport's ``load_weights(path, by_name=True, exclude=[...])``; weights
        are always matched by name here (matterport's own files need it: its training checkpoints order
        their layers differently). ``exclude``: ``"class_specific"``, matterport's layer names (``["mrcnn_class_logits",
        "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"]``) or key prefixes to leave as initialized.
        A training checkpoint in its run folder (``last`` is one) continues that run: :attr:`log_dir`
        and :attr:`epoch` become its own, so :meth:`train` goes on from there (as matterport's
        ``load_weights`` sets them from the path); any other weights, or ``exclude``, start a new run.
        Returns the :class:`~maskrcnn.weights.LoadReport`.
        """
        choice = resolve_weights(weights, model_dir=self.model_dir, name=self.config.NAME)
        if choice.kind == "none":
            self.run = RunState()
            return LoadReport(source="none", format="none",
                              notes=["no weights loaded: the network keeps its initialization"])
        if choice.kind == "imagenet":
            path = imagenet_file(self.network.backbone_depth)
            report = load_weights(self.network, path, exclude=exclude, strict=strict)
        else:
            try:
                report = load_weights(self.network, choice.checkpoint, exclude=exclude, strict=strict,
                                      label=choice.label, path=choice.path)
            except WeightsError as exc:
                differing = self._differing_network_values(choice)
                if not differing:
                    raise
                raise WeightsError(f"{choice.label}: was trained with another configuration ({differing}); build "
                                   f"the model from the checkpoint (MaskRCNN.from_weights) or use its values; "
                                   f"in detail: {exc}") from None
            names = choice.class_names()
            if (names and len(names) == len(self.class_names) and exclude is None
                    and self.class_names == _class_names(None, len(self.class_names))):
                self.class_names = names  # the generated defaults give way to the names it was trained with
        self.run = choice.run() if exclude is None else RunState()
        self.to(self.device)
        return report

    @classmethod
    def from_weights(cls, weights: str | os.PathLike | Weights, *, device: str | torch.device | None = None,
                     model_dir: str | os.PathLike = "logs", config: Config | None = None,
                     class_names: Sequence[str] | None = None) -> MaskRCNN:
        """The detector that ``weights`` describe: our checkpoint rebuilds its own model (config, class
        names, run); torchvision's COCO Mask R-CNN (the file, or ``"coco"``) gives a
        :class:`~maskrcnn.config.TorchvisionConfig` model with COCO's names; matterport's ``.h5`` (the file,
        or ``"matterport-coco"``) a :class:`~maskrcnn.config.MatterportConfig` model of the file's BACKBONE
        and NUM_CLASSES, named ``BG, class_1, …`` (``matterport-coco``: COCO's names) unless
        ``class_names`` are given. ``config`` / ``class_names`` are needed for weights that carry none
        (``imagenet``, ``none``, an ImageNet ResNet file) and override what the weights carry otherwise."""
        choice = resolve_weights(weights, model_dir=model_dir, name=None if config is None else config.NAME)
        config = config if config is not None else choice.config()
        if config is None:
            raise WeightsError(_no_config_message(choice))
        names = class_names or choice.class_names()
        if names is None and choice.format == H5_FORMAT:
            names = placeholder_class_names(config.NUM_CLASSES)
        model = cls(config, class_names=names, device="cpu", model_dir=model_dir)
        model.load_weights(choice)
        return model.to(device)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> MaskRCNN:
        """:meth:`from_weights` of a checkpoint file (the name earlier versions used)."""
        return cls.from_weights(path, device=device)

    def _differing_network_values(self, choice: Weights) -> str:
        """``KEY=stored (this model: own)`` for the network values where a checkpoint's config differs."""
        if not choice.is_ours or not isinstance(choice.checkpoint.get("config"), dict):
            return ""
        stored = choice.checkpoint["config"]
        own = self.config.to_dict()
        diffs = [f"{k}={stored[k]!r} (this model: {own[k]!r})" for k in NETWORK_ATTRIBUTES
                 if k in stored and stored[k] != own.get(k)]
        return ", ".join(diffs[:4]) + (f" and {len(diffs) - 4} more" if len(diffs) > 4 else "")

    def checkpoint_fields(self) -> dict[str, Any]:
        """What a checkpoint carries besides the weights to rebuild this model."""
        fields: dict[str, Any] = {"config": self.config, "class_names": list(self.class_names)}
        eps = self.network.frozen_bn_eps
        if eps is not None:
            fields["frozen_bn_eps"] = eps
        return fields

    def save(self, path: str | os.PathLike, *, epoch: int | None = None, extra: dict[str, Any] | None = None) -> Path:
        """Write weights, config, class names and epoch to ``path`` atomically (a weights file: loading it
        starts a new run; training writes the checkpoints that continue one)."""
        if is_fused(self.network):
            raise WeightsError(f"{path}: this model's BatchNorm layers were folded into its convolutions for "
                               f"inference (prepare_for_inference / fuse_frozen_bn); save the original model")
        run = {"run_dir": str(self.log_dir)} if self.log_dir is not None else {}
        return write_checkpoint(path, self.network.state_dict(), epoch=self.epoch if epoch is None else epoch,
                                **self.checkpoint_fields(), **run, **(extra or {}))

    # ------------------------------------------------------------------ matterport API: training
    def find_last(self) -> Path:
        """The last checkpoint of the newest run of this config's NAME in :attr:`model_dir`."""
        return find_last(self.model_dir, self.config.NAME)

    def train(self, train_dataset: Any, val_dataset: Any, learning_rate: float | None = None, epochs: int = 1,
              layers: str = "all", augmentation: Any = None, **options: Any) -> TrainResult:
        """matterport's ``model.train(dataset_train, dataset_val, learning_rate, epochs, layers, augmentation)``.

        Trains the current run from :attr:`epoch` up to ``epochs`` (absolute, as matterport) in
        :attr:`log_dir` (a new run folder under :attr:`model_dir` when there is none yet); a second
        call continues the same run. ``options``: the keyword arguments of
        :func:`maskrcnn.training.api.train` (``progress``, ``eval_every``, ``time_limit``, ``device``,
        ``hooks``, ``attributes``, …). Returns its :class:`~maskrcnn.training.api.TrainResult`.
        """
        from ..training.api import train

        for key in ("network", "config", "logs_dir", "resume", "detector", "model_fields"):
            if key in options:
                raise ConfigError(f"train(): {key}= is the detector's own (logs folder: model.model_dir; the run "
                                  f"continued: model.log_dir and model.epoch, set by load_weights)")
        tracker = _RunTracker(self)
        result = train(self.network, self.config, train_dataset, val_dataset, learning_rate=learning_rate,
                       epochs=epochs, layers=layers, augmentation=augmentation, logs_dir=self.model_dir,
                       name=self.config.NAME, resume=self._run_start(), detector=self,
                       model_fields=self.checkpoint_fields, hooks=[tracker, *options.pop("hooks", ())], **options)
        self.run = RunState(run_dir=result.run_dir, epoch=result.epoch) if result.epoch > 0 else RunState()
        return result

    def _run_start(self) -> RunStart | None:
        """The current run to continue, with the training state of its checkpoint at :attr:`epoch`."""
        if self.run.run_dir is None:
            return None
        path = checkpoint_of_epoch(self.run.run_dir, self.run.epoch)
        saved = training_state(read_checkpoint(path)) if path is not None else None
        if saved is None:
            warnings.warn(f"{self.run.run_dir}: no training checkpoint of epoch {self.run.epoch} any more; "
                          f"training starts a new run", stacklevel=3)
            self.run = RunState()
            return None
        return RunStart(run_dir=self.run.run_dir, training=saved, source=str(path))


def _no_config_message(choice: Weights) -> str:
    need = "a trained Mask R-CNN checkpoint is needed here (or build MaskRCNN(config) and call load_weights)"
    if choice.kind == "none":
        return f"'none' loads no weights; {need}"
    if choice.format in ("imagenet_resnet",) or choice.kind == "imagenet":
        return f"{choice.label}: ImageNet weights are a backbone only; {need}"
    if choice.format == "state_dict":
        return f"{choice.label}: a state dict of this package's layers without its config; {need}"
    if choice.format == "torchvision_maskrcnn_v2":
        return (f"{choice.label}: torchvision's maskrcnn_resnet50_fpn_v2 checkpoint, whose heads this architecture "
                f"does not have; use the v1 weights ('coco')")
    keys = ", ".join(list(choice.checkpoint or {})[:5])
    return f"{choice.label}: not a Mask R-CNN or ResNet checkpoint (first keys: {keys or 'none'})"


class _RunTracker(Hook):
    """Keeps the detector's run state current after every epoch (also when training stops on an error)."""

    def __init__(self, detector: MaskRCNN) -> None:
        self.detector = detector

    def after_epoch(self, trainer: Any, record: dict[str, Any]) -> None:
        if trainer.run_dir is not None:
            self.detector.run = RunState(run_dir=trainer.run_dir, epoch=trainer.state.epoch)


def _class_names(names: Sequence[str] | None, num_classes: int) -> list[str]:
    if names is None:
        return ["BG"] + [f"class{i}" for i in range(1, num_classes)]
    names = [str(n) for n in names]
    if len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} names but NUM_CLASSES={num_classes} "
                         f"(the background counts: class_names[0] is it)")
    return names


def _to_matterport(out: dict[str, Tensor], mask_threshold: float) -> dict[str, np.ndarray]:
    boxes = out["boxes"].float().cpu().numpy()
    rois = np.around(boxes[:, [1, 0, 3, 2]]).astype(np.int32).reshape(-1, 4)
    keep = _nonempty_rois(out["boxes"]).cpu().numpy()  # matterport drops empty boxes
    masks = (out["masks"] >= mask_threshold).cpu().numpy()[keep]
    return {
        "rois": rois[keep],
        "class_ids": out["labels"].cpu().numpy().astype(np.int32)[keep],
        "scores": out["scores"].float().cpu().numpy().astype(np.float32)[keep],
        "masks": np.ascontiguousarray(np.transpose(masks, (1, 2, 0))),
    }


def _nonempty_rois(boxes: Tensor) -> Tensor:
    """``[N]`` bool: the ``xyxy`` boxes whose matterport ``rois`` (rounded to whole pixels, as
    :meth:`MaskRCNN.detect` rounds them) have a nonzero area; on the boxes' device."""
    rounded = torch.round(boxes.float())  # half to even, as np.around
    return (rounded[:, 2] - rounded[:, 0]) * (rounded[:, 3] - rounded[:, 1]) > 0


def _image_tensor(image: Any, index: int) -> Tensor:
    """One public-API image (``H×W×3`` uint8 RGB; ``H×W``, ``H×W×1`` gray or ``H×W×4`` RGBA) → ``[3,H,W]`` uint8."""
    if isinstance(image, Tensor):
        raise ImageError(f"images[{index}]: got a torch tensor; detect() takes H×W×3 uint8 numpy arrays "
                         f"(call model.network directly with [3,H,W] tensors)")
    if not isinstance(image, np.ndarray):
        raise ImageError(f"images[{index}]: expected an H×W×3 uint8 numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        hint = " (scale 0-1 floats by 255 and convert with .astype(np.uint8))" if image.dtype.kind == "f" else ""
        raise ImageError(f"images[{index}]: dtype {image.dtype}; expected uint8 RGB values 0-255{hint}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise ImageError(f"images[{index}]: shape {image.shape}; expected H×W×3 (or H×W grayscale)")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"images[{index}]: empty image of shape {image.shape}")
    channels = image.shape[2]
    if channels == 1:
        image = np.repeat(image, 3, axis=2)
    elif channels == 4:
        image = image[:, :, :3]
    elif channels != 3:
        raise ImageError(f"images[{index}]: {channels} channels; expected 3 (RGB), 1 (gray) or 4 (RGBA)")
    image = np.ascontiguousarray(image)
    if not image.flags.writeable:  # e.g. np.asarray(PIL image): torch.from_numpy warns on read-only memory
        image = image.copy()
    return torch.from_numpy(image).permute(2, 0, 1)
