"""The one rule for "which weights": ``coco``, ``imagenet``, ``last``, ``none``, or a file.

:func:`resolve_weights` turns what a user wrote (``--weights W`` of every command, the argument of
``model.load_weights(W)`` and ``MaskRCNN.from_weights(W)``, each sample's ``--weights``) into a
:class:`Weights`: which file, read once, and what it carries. The detector applies it
(:meth:`maskrcnn.detector.MaskRCNN.load_weights`); nothing else decides which weights to load.

==============  ==============================================================================
``none``        nothing is loaded: the network keeps its (random) initialization; a new run
``coco``        torchvision's COCO ``maskrcnn_resnet50_fpn`` file (downloaded once, cached)
``matterport-coco``  matterport's COCO release ``mask_rcnn_coco.h5`` (downloaded once, cached; ResNet-101,
                81 classes with COCO's names)
``imagenet``    torchvision's ImageNet ResNet of the model's depth (the backbone's trunk only)
``last``        the last checkpoint of the newest run of the config's NAME under the logs folder
                (matterport's ``find_last``): its weights, and the run continues
a file path     recognized by its content (:func:`maskrcnn.weights.sniff` and
                :func:`~maskrcnn.weights.detect_format`), never by its name or an error text:
                our checkpoint, a torchvision Mask R-CNN state dict, a torchvision ImageNet ResNet,
                matterport's Keras 2 ``.h5`` weights
==============  ==============================================================================

What a file carries:

* **ours**: the weights, the config (its values and class) and class names — enough to rebuild
  the model with no ``--set`` (:meth:`Weights.config`, :meth:`Weights.class_names`) — and, when
  written by training and still in its run folder, the run: :meth:`Weights.run` (the folder and
  epoch that ``train()`` continues, as matterport's ``load_weights`` sets them from the path);
* **torchvision's Mask R-CNN**: :class:`~maskrcnn.config.TorchvisionConfig` and COCO's 91 names;
* **an ImageNet ResNet**: nothing but the trunk; the model needs a config of its own;
* **matterport's .h5**: a :class:`~maskrcnn.config.MatterportConfig` with the file's BACKBONE (from its
  res4 block count), NUM_CLASSES (``mrcnn_class_logits``), TOP_DOWN_PYRAMID_SIZE, FPN_CLASSIF_FC_LAYERS_SIZE
  and POOL_SIZE (``fpn_c5p5``, ``mrcnn_class_conv1``); no class names (``matterport-coco``: COCO's
  81): :func:`placeholder_class_names` ``BG, class_1, …`` unless the user gives them.

New formats plug in at :func:`_read` (the content sniffer says what a file is).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import config as config_module
from ..config import Config, TorchvisionConfig
from ..errors import WeightsError
from ..training.rundir import find_last, run_folder_of
from ..matterport_h5 import H5_FORMAT, read_h5_checkpoint
from ..weights import coco_file, detect_format, is_ours, read_checkpoint, sniff, training_state
from .run import RunState

NAMES = ("coco", "matterport-coco", "imagenet", "last", "none")
#: matterport's COCO weights (the v2.0 release asset), ResNet-101, 81 classes.
MATTERPORT_COCO_URL = "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"


@dataclass
class Weights:
    """A resolved weights choice.

    kind: ``"none"``, ``"imagenet"`` (the file depends on the model's depth: resolved when applied)
    or ``"file"``. spec: what was asked for. path / checkpoint / format: the file, its content (read
    once) and :func:`~maskrcnn.weights.detect_format`'s name for it (``"maskrcnn"`` is ours).
    """

    spec: str
    kind: str
    path: Path | None = None
    checkpoint: dict[str, Any] | None = field(default=None, repr=False)
    format: str = ""

    @property
    def label(self) -> str:
        """How messages name it: the file (and the name it was chosen by)."""
        if self.path is None:
            return self.spec
        return str(self.path) if self.spec == str(self.path) else f"{self.spec} ({self.path})"

    @property
    def is_ours(self) -> bool:
        return self.format == "maskrcnn"

    def config(self) -> Config | None:
        """The configuration the weights were made with: ours → the stored one (its class where this
        package defines it, else :class:`Config` with the same values); torchvision's Mask R-CNN →
        :class:`TorchvisionConfig`; otherwise None."""
        if self.is_ours:
            values = self.checkpoint.get("config")
            if not isinstance(values, dict):
                raise WeightsError(f"{self.label}: a maskrcnn checkpoint without its config (a training checkpoint "
                                   f"of another model?); build the model from a Config and load_weights it")
            return _config_class(self.checkpoint.get("config_class")).from_dict(values, source=self.label)
        if self.format == "torchvision_maskrcnn":
            return TorchvisionConfig()
        if self.format == H5_FORMAT:
            return _h5_config(self)
        return None

    def class_names(self) -> list[str] | None:
        """The class names the weights were trained for (ours: stored; torchvision's: COCO's 91)."""
        if self.is_ours:
            names = self.checkpoint.get("class_names")
            return [str(n) for n in names] if isinstance(names, list) else None
        if self.format == "torchvision_maskrcnn":
            from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights

            return list(MaskRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"])
        if self.format == H5_FORMAT and self.is_matterport_coco:
            return coco_class_names()
        return None

    @property
    def is_matterport_coco(self) -> bool:
        """matterport's COCO release file (by the name ``matterport-coco``, or its file name with 81 classes)."""
        if self.format != H5_FORMAT or getattr(self.checkpoint.get("description"), "num_classes", None) != 81:
            return False
        return self.spec == "matterport-coco" or (self.path is not None
                                                  and self.path.name == os.path.basename(MATTERPORT_COCO_URL))

    def run(self) -> RunState:
        """The run these weights continue: a training checkpoint that still lies in its run folder gives
        that folder and its epoch; anything else a new run (epoch 0)."""
        if not self.is_ours or self.path is None:
            return RunState()
        training = training_state(self.checkpoint)
        if training is None:
            return RunState()
        folder = run_folder_of(self.path, self.checkpoint.get("run_dir"))
        if folder is None:
            return RunState()
        return RunState(run_dir=folder, epoch=int(training.get("epoch") or self.checkpoint.get("epoch") or 0))


def resolve_weights(weights: str | os.PathLike | Weights, *, model_dir: str | os.PathLike = "logs",
                    name: str | None = None) -> Weights:
    """The :class:`Weights` that ``weights`` names (see the module docstring).

    ``model_dir`` and ``name``: where ``last`` looks (the logs folder and the config's NAME).
    Raises :class:`~maskrcnn.errors.WeightsError` with one line naming the file for anything that
    is not a weights file (a text file, random bytes, a folder, an empty file, a missing one).
    """
    if isinstance(weights, Weights):
        return weights
    spec = os.fspath(weights)
    if spec == "none":
        return Weights(spec, "none", format="none")
    if spec == "imagenet":
        return Weights(spec, "imagenet", format="imagenet_resnet")
    if spec == "coco":
        path = coco_file()
    elif spec == "matterport-coco":
        path = matterport_coco_file()
    elif spec == "last":
        if not name:
            raise WeightsError("last: the last checkpoint of which run? give the config's NAME (or the checkpoint file)")
        try:
            path = find_last(model_dir, name)
        except WeightsError as exc:
            raise WeightsError(f"last: {exc}") from None
    else:
        path = Path(spec).expanduser()
    checkpoint = _read(path)
    return Weights(spec, "file", path=path, checkpoint=checkpoint, format=detect_format(checkpoint))


def _read(path: Path) -> dict[str, Any]:
    """A weights file's content, read by the reader of what :func:`~maskrcnn.weights.sniff` says it is.

    The place where formats plug in: a reader returns a checkpoint dict (ours, or a state dict that
    :func:`~maskrcnn.weights.detect_format` knows): torch files (zip, pickle) by
    :func:`~maskrcnn.weights.read_checkpoint`, HDF5 (matterport's Keras ``.h5``) by
    :func:`~maskrcnn.matterport_h5.read_h5_checkpoint`.
    """
    reader = _READERS.get(sniff(path), read_checkpoint)
    checkpoint = reader(path)
    if is_ours(checkpoint) and not isinstance(checkpoint.get("model"), dict):
        raise WeightsError(f"{path}: maskrcnn checkpoint without a 'model' state_dict")
    return checkpoint


#: file kind (:func:`~maskrcnn.weights.sniff`) -> reader
_READERS = {"zip": read_checkpoint, "pickle": read_checkpoint, "hdf5": read_h5_checkpoint}


def matterport_coco_file() -> Path:
    """matterport's ``mask_rcnn_coco.h5`` from the package's download cache (downloaded once; offline, the
    :class:`~maskrcnn.errors.DownloadError` names the URL and where to place the file)."""
    from ..download import fetch

    return fetch(MATTERPORT_COCO_URL)


def coco_class_names() -> list[str]:
    """matterport's 81 COCO class names: ``BG`` and the 80 categories (torchvision's list without its
    ``N/A`` gaps: the same names, in matterport's ``class_names`` order)."""
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights

    names = MaskRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"]
    return ["BG"] + [n for n in names[1:] if n != "N/A"]


def placeholder_class_names(num_classes: int) -> list[str]:
    """``BG, class_1, …, class_{N-1}``: the names of a model whose weights carry none (matterport's .h5)."""
    return ["BG"] + [f"class_{i}" for i in range(1, int(num_classes))]


def class_names_note(choice: Weights, num_classes: int) -> str:
    """The one-line note when a model's class names are placeholders."""
    last = f"class_{num_classes - 1}"
    return (f"{choice.label}: the file holds no class names; the {num_classes - 1} classes are named class_1 … "
            f"{last} (pass --class-names a,b,c or a text file with one name per line)")


def _h5_config(choice: Weights) -> Config:
    """A MatterportConfig with the BACKBONE, NUM_CLASSES and head sizes that a matterport .h5 file says."""
    klass = getattr(config_module, "MatterportConfig", None)
    if klass is None:
        raise WeightsError(f"{choice.label}: matterport .h5 weights need MatterportConfig, which this version of "
                           f"maskrcnn.config does not define")
    description = choice.checkpoint["description"]
    if description.backbone is None:
        raise WeightsError(f"{choice.label}: cannot tell the backbone: {description.res4_blocks} res4 blocks "
                           f"(matterport: 6 for resnet50, 23 for resnet101)")
    if description.num_classes is None:
        raise WeightsError(f"{choice.label}: the file has no mrcnn_class_logits layer (a backbone only?); build "
                           f"MaskRCNN(MatterportConfig(...)) and load_weights it")
    values = description.config_values()  # BACKBONE, NUM_CLASSES and the head sizes the file holds
    if choice.is_matterport_coco:
        values["NAME"] = "coco"
    return klass(**values)


def _config_class(name: str | None) -> type[Config]:
    klass = getattr(config_module, str(name), None) if name else None
    if isinstance(klass, type) and issubclass(klass, Config):
        return klass
    return Config
