"""Weights file formats: ours, torchvision's Mask R-CNN (COCO), torchvision's ImageNet ResNets.

The home of what a weights file *is*; which file to load (``coco``, ``imagenet``, ``last``,
``none`` or a path) is the detector's rule (:mod:`maskrcnn.detector.weights_rule`).

* :func:`read_checkpoint` is the one reader: it recognizes a file by its content
  (:func:`sniff`: a zip or pickle written by ``torch.save``; a folder, an empty file, text, HDF5 or
  random bytes are refused with one line) and reads it with
  ``torch.load(path, map_location="cpu", weights_only=True)``;
* :func:`detect_format` tells the formats apart by their keys;
* :func:`load_weights(network, source, exclude=None, strict=True)` maps the keys to this package's
  module tree and loads them, returning a :class:`LoadReport` (loaded, skipped, missing keys);
* :func:`write_checkpoint` writes ours, atomically.

Formats:

* ours (``{"format": "maskrcnn", "model": state_dict, "config", "config_class", "class_names",
  "epoch", ...}``, written by :func:`write_checkpoint`; training adds ``"training"``, the state to
  resume from, and ``"run_dir"``);
* torchvision ``maskrcnn_resnet50_fpn`` state dicts (keys ``backbone.fpn.inner_blocks.i.0.*``,
  ``rpn.head.conv.0.0.*``, ``roi_heads.mask_head.i.0.*`` are renamed; BatchNorm's
  ``num_batches_tracked`` dropped where our norm has none). torchvision's COCO v1 file was
  trained with FrozenBatchNorm eps 0, so loading it (by name or by its file name) sets eps 0
  like torchvision does. The **v2** model (``maskrcnn_resnet50_fpn_v2``: BatchNorm in the FPN,
  two RPN convs, a conv box head) is recognized and refused with an explanation: its heads have
  no counterpart in this architecture;
* torchvision ImageNet ResNet classification state dicts: loaded into ``backbone.body``
  (``fc.*`` dropped); everything else is reported missing, as expected;
* matterport's Keras 2 ``.h5`` weights (:mod:`maskrcnn.matterport_h5`, a checkpoint dict of format
  ``"matterport_h5"``): mapped by matterport's layer names onto a network built with
  ``ARCHITECTURE = "matterport"``; the file's layers without a module are listed in the report.

Anything else — a file that would run code when unpickled, random bytes, a classification
model of another depth, a ResNet-101 Mask R-CNN into a ResNet-50 model — raises one
:class:`~maskrcnn.errors.WeightsError` naming the file and the first mismatched keys.

Class-specific layers (``roi_heads.box_predictor.cls_score``, ``.bbox_pred``,
``roi_heads.mask_predictor.mask_fcn_logits``) of a checkpoint with another NUM_CLASSES are
skipped with ``exclude="class_specific"`` (or a list of key prefixes, matterport's names
``mrcnn_class_logits``, ``mrcnn_bbox_fc``, ``mrcnn_bbox``, ``mrcnn_mask`` accepted);
without it the error says so.

The network is reached through its state dict and one small public handle only (the
``frozen_bn_eps`` property of :class:`~maskrcnn.model.network.MaskRCNNNetwork`): nothing here
imports the model.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import WeightsError
from .fileio import atomic_path

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "maskrcnn"
CHECKPOINT_VERSION = 1

COCO_URL = "https://download.pytorch.org/models/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
COCO_V2_URL = "https://download.pytorch.org/models/maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth"
IMAGENET_URLS = {
    18: "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    34: "https://download.pytorch.org/models/resnet34-b627a593.pth",
    50: "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    101: "https://download.pytorch.org/models/resnet101-63fe2227.pth",
}
CLASS_SPECIFIC = (
    "roi_heads.box_predictor.cls_score.",
    "roi_heads.box_predictor.bbox_pred.",
    "roi_heads.mask_predictor.mask_fcn_logits.",
)
MATTERPORT_NAMES = {
    "mrcnn_class_logits": ("roi_heads.box_predictor.cls_score.",),
    "mrcnn_bbox_fc": ("roi_heads.box_predictor.bbox_pred.",),
    "mrcnn_bbox": ("roi_heads.box_predictor.bbox_pred.",),
    "mrcnn_mask": ("roi_heads.mask_predictor.mask_fcn_logits.",),
}
_SHOW = 5  # mismatched keys listed in an error


@dataclass
class LoadReport:
    """What :func:`load_weights` did: keys loaded, skipped on request, and left at their initial values."""

    source: str
    format: str
    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.source}: {self.format} checkpoint, loaded {len(self.loaded)} tensors"]
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} (excluded): {', '.join(self.skipped)}")
        if self.missing:
            lines.append(f"  not in the checkpoint ({len(self.missing)}, left as initialized): "
                         f"{_short(self.missing)}")
        lines.extend(f"  {note}" for note in self.notes)
        return "\n".join(lines)


# ---------------------------------------------------------------------- reading files
def cache_path(url: str) -> Path:
    """Where a downloaded file lives: ``<torch hub dir>/checkpoints/<file name>``, torch.hub's cache, where
    torchvision keeps the same files (a copy torchvision downloaded is used as it is)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def fetch(url: str) -> Path:
    """The cached file of ``url``, downloaded once by :func:`maskrcnn.download.fetch`; offline, its
    :class:`~maskrcnn.errors.DownloadError` says where to put it."""
    from .download import fetch as download

    path = cache_path(url)
    return download(url, directory=path.parent, filename=path.name)


def coco_file() -> Path:
    """torchvision's COCO ``maskrcnn_resnet50_fpn`` v1 file, from the cache (downloaded once)."""
    return fetch(COCO_URL)


def imagenet_file(depth: int) -> Path:
    """torchvision's ImageNet ResNet-``depth`` file, from the cache (downloaded once)."""
    if depth not in IMAGENET_URLS:
        raise WeightsError(f"imagenet: no ImageNet weights known for a backbone of depth {depth!r}")
    return fetch(IMAGENET_URLS[depth])


_ZIP = b"PK\x03\x04"
_HDF5 = b"\x89HDF\r\n\x1a\n"


def sniff(path: str | os.PathLike) -> str:
    """What the file at ``path`` holds, from its first bytes: ``"zip"`` (``torch.save``'s format),
    ``"pickle"`` (the legacy format, or a plain pickle) or ``"hdf5"`` (Keras ``.h5`` weights, which
    :func:`read_checkpoint` does not read); anything else raises :class:`WeightsError` saying what the
    file is instead (missing, a folder, empty, text, unrecognized bytes)."""
    path = Path(path)
    if path.is_dir():
        raise WeightsError(f"{path}: is a folder, not a weights file")
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise WeightsError(f"{path}: cannot read the weights file ({exc.strerror or exc})") from None
    if not head:
        raise WeightsError(f"{path}: the weights file is empty")
    if head.startswith(_ZIP):
        return "zip"
    if head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5:  # PROTO opcode and a protocol number
        return "pickle"
    if head.startswith(_HDF5):
        return "hdf5"
    expected = "expected a file written by torch.save (.pth) or matterport's Keras .h5 weights"
    text = _as_text(head)
    if text is not None:
        first = text.strip().splitlines()[0][:40] if text.strip() else ""
        raise WeightsError(f"{path}: not a PyTorch checkpoint but a text file (it starts with {first!r}); {expected}")
    raise WeightsError(f"{path}: not a PyTorch checkpoint (it starts with the bytes {head[:8].hex(' ')}); {expected}")


def _as_text(head: bytes) -> str | None:
    """``head`` decoded as UTF-8 text of printable characters, or None (a multi-byte character cut
    at the end of ``head`` is allowed)."""
    for cut in range(4):
        try:
            text = head[:len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return text if text and all(c.isprintable() or c in "\r\n\t\f" for c in text) else None
    return None


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The one checkpoint reader: :func:`sniff`, then ``torch.load(path, map_location="cpu",
    weights_only=True)``, with one clear error per failure."""
    path = Path(path)
    kind = sniff(path)
    if kind not in ("zip", "pickle"):
        raise WeightsError(f"{path}: not a PyTorch checkpoint but an {kind.upper()} file (Keras .h5 weights?); "
                           f"load_weights and MaskRCNN.load_weights read matterport's .h5 weights, read_checkpoint "
                           f"only files written by torch.save (.pth)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Detected pickle protocol 4" etc.
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        code = _pickle_code(path) if "GLOBAL" not in text else None
        if "GLOBAL" in text or code:
            match = re.search(r"GLOBAL (\S+)", text)
            what = f" ({match.group(1) if match else code})"
            raise WeightsError(
                f"{path}: refused — the file holds Python objects{what} that would run code when unpickled; "
                f"only tensors and plain containers are loaded (weights_only=True)") from None
        raise WeightsError(f"{path}: not a PyTorch checkpoint (cannot be unpickled: {_last_line(text)})") from None
    except Exception as exc:  # noqa: BLE001 - a zip or pickle that torch cannot read: damaged or not torch's
        raise WeightsError(f"{path}: not a PyTorch checkpoint (a {kind} file that torch.load cannot read: "
                           f"{type(exc).__name__}: {_last_line(str(exc)) or 'no detail'})") from None
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: expected a dict of tensors (a state_dict or a checkpoint), "
                           f"got {type(obj).__name__}")
    return obj


def is_ours(obj: dict[str, Any]) -> bool:
    """Whether a checkpoint dict is in this package's format."""
    return obj.get("format") == CHECKPOINT_FORMAT


def training_state(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """The ``training`` part of one of our checkpoints (what a run resumes from), or None."""
    value = checkpoint.get("training")
    if isinstance(value, dict):
        return value
    extra = checkpoint.get("extra")  # the layout of files written before the training state moved up
    if isinstance(extra, dict) and isinstance(extra.get("training"), dict):
        return extra["training"]
    return None


def write_checkpoint(path: str | os.PathLike, state_dict: dict[str, torch.Tensor], *, config: Any = None,
                     class_names: Iterable[str] | None = None, epoch: int | None = None,
                     **fields: Any) -> Path:
    """Write our checkpoint format to ``path`` atomically (temporary file + ``os.replace``).

    ``config`` (a :class:`~maskrcnn.config.Config`) is stored as its values and class name, so the
    file rebuilds its model; ``fields`` are stored as they are (plain values and tensors only:
    the file must load with ``weights_only=True``), e.g. ``training``, ``run_dir``, ``frozen_bn_eps``.
    """
    path = Path(path)
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": {k: v.detach().cpu() for k, v in state_dict.items()},
        "epoch": None if epoch is None else int(epoch),
    }
    if config is not None:
        payload["config"] = config.to_dict()
        payload["config_class"] = type(config).__name__
    if class_names is not None:
        payload["class_names"] = [str(n) for n in class_names]
    payload.update(fields)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def detect_format(obj: dict[str, Any]) -> str:
    """``"maskrcnn"`` (ours), ``"torchvision_maskrcnn"``, ``"torchvision_maskrcnn_v2"``,
    ``"imagenet_resnet"``, ``"state_dict"`` (already in our names) or ``"unknown"``."""
    if is_ours(obj):
        return "maskrcnn"
    if obj.get("format") == "matterport_h5":
        return "matterport_h5"
    keys = [k for k, v in obj.items() if isinstance(v, torch.Tensor)]
    if not keys:
        return "unknown"
    keyset = set(keys)
    if any(k.startswith("backbone.body.") for k in keys):
        v2_markers = ("rpn.head.conv.1.0.weight", "roi_heads.box_head.0.0.weight",
                      "backbone.fpn.inner_blocks.0.1.weight")
        if any(m in keyset for m in v2_markers):
            return "torchvision_maskrcnn_v2"
        if any(k.startswith(("backbone.fpn.inner_blocks.0.0.", "rpn.head.conv.0.0."))
               for k in keys) or "rpn.head.conv.weight" in keyset and "backbone.fpn.inner_blocks.0.weight" in keyset:
            return "torchvision_maskrcnn"
        return "state_dict"
    if "conv1.weight" in keyset and any(k.startswith("layer1.") for k in keys):
        return "imagenet_resnet"
    return "unknown"


# ---------------------------------------------------------------------- key mapping
_TV_RENAMES = (
    (re.compile(r"^backbone\.fpn\.(inner_blocks|layer_blocks)\.(\d+)\.0\.(weight|bias)$"), r"backbone.fpn.\1.\2.\3"),
    (re.compile(r"^rpn\.head\.conv\.0\.0\.(weight|bias)$"), r"rpn.head.conv.\1"),
    (re.compile(r"^roi_heads\.mask_head\.(\d+)\.0\.(weight|bias)$"), r"roi_heads.mask_head.\1.\2"),
)
_MASK_FCN = re.compile(r"^roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)$")


def convert_torchvision(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision ``maskrcnn_resnet50_fpn`` key names → ours (both current and pre-0.9 forms)."""
    out = {}
    for key, value in state.items():
        new = key
        for pattern, repl in _TV_RENAMES:
            new = pattern.sub(repl, new)
        match = _MASK_FCN.match(new)
        if match:
            new = f"roi_heads.mask_head.{int(match.group(1)) - 1}.{match.group(2)}"
        out[new] = value
    return out


def convert_imagenet(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """ImageNet ResNet classification keys → ``backbone.body.*`` (``fc.*`` dropped)."""
    return {f"backbone.body.{k}": v for k, v in state.items() if not k.startswith("fc.")}


def exclude_prefixes(exclude: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"class_specific"``, matterport layer names or key prefixes → key prefixes of our model."""
    if exclude is None:
        return ()
    items = [exclude] if isinstance(exclude, str) else list(exclude)
    prefixes: list[str] = []
    for item in items:
        if item in ("class_specific", "heads"):
            prefixes.extend(CLASS_SPECIFIC)
        elif item in MATTERPORT_NAMES:
            prefixes.extend(MATTERPORT_NAMES[item])
        else:
            prefixes.append(item)
    return tuple(prefixes)


def _matterport_layers(exclude: str | Iterable[str] | None) -> set[str]:
    """The matterport layer names that ``exclude`` implies (``"class_specific"``: the four class-specific ones)."""
    items = [] if exclude is None else [exclude] if isinstance(exclude, str) else list(exclude)
    if any(item in ("class_specific", "heads") for item in items):
        return set(MATTERPORT_NAMES)
    return {item for item in items if item in MATTERPORT_NAMES}


# ---------------------------------------------------------------------- loading
def load_weights(
    network: nn.Module,
    source: str | os.PathLike | dict[str, Any],
    *,
    exclude: str | Iterable[str] | None = None,
    strict: bool = True,
    label: str | None = None,
    path: str | os.PathLike | None = None,
) -> LoadReport:
    """Load a weights file (a path, or a checkpoint dict already read with :func:`read_checkpoint`) into
    ``network`` (a :class:`~maskrcnn.model.network.MaskRCNNNetwork`, or any module with our key names).

    Args:
        exclude: ``"class_specific"``, matterport layer names or key prefixes to skip.
        strict: for full-model checkpoints, refuse when model keys (not excluded) are absent from it.
        label: how the source is named in messages (default: the path).
        path: the file a checkpoint dict was read from (torchvision's COCO v1 file is known by its name).
    """
    if isinstance(source, dict):
        obj = source
        path = None if path is None else Path(path)
        label = label or (str(path) if path is not None else "checkpoint")
    else:
        path = Path(source)
        label = label or str(path)
        if sniff(path) == "hdf5":
            from .matterport_h5 import read_h5_checkpoint

            obj = read_h5_checkpoint(path)
        else:
            obj = read_checkpoint(path)
    fmt = detect_format(obj)
    if fmt == "matterport_h5":
        from .matterport_h5 import load_h5

        report = LoadReport(source=label, format=fmt, **load_h5(network, obj, label=label, exclude=exclude,
                                                               strict=strict))
        log.info("%s", report)
        return report
    partial = False
    eps: float | None = None
    if fmt == "maskrcnn":
        state = obj.get("model")
        if not isinstance(state, dict):
            raise WeightsError(f"{label}: maskrcnn checkpoint without a 'model' state_dict")
        if isinstance(obj.get("frozen_bn_eps"), (int, float)):
            eps = float(obj["frozen_bn_eps"])
    elif fmt in ("torchvision_maskrcnn", "state_dict"):
        state = convert_torchvision(obj)
        if path is not None and path.name == os.path.basename(COCO_URL):
            eps = 0.0
    elif fmt == "torchvision_maskrcnn_v2":
        raise WeightsError(
            f"{label}: this is torchvision's maskrcnn_resnet50_fpn_v2 checkpoint; its FPN has BatchNorm, its RPN "
            f"head two convs and its box head four convs + BatchNorm (key 'roi_heads.box_head.0.0.weight'), "
            f"which this architecture does not have — use the v1 weights (load_weights('coco')) instead")
    elif fmt == "imagenet_resnet":
        state = convert_imagenet(obj)
        partial = True
    else:
        sample = ", ".join(list(obj)[:_SHOW])
        raise WeightsError(f"{label}: not a Mask R-CNN or ResNet checkpoint (first keys: {sample or 'none'})")
    report = _load_state(network, state, label=label, fmt=fmt, exclude=exclude, strict=strict and not partial,
                         partial=partial)
    config = getattr(network, "config", None)
    if fmt == "imagenet_resnet" and config is not None and all(float(v) == 1.0 for v in config.PIXEL_STD):
        report.notes.append("torchvision's ImageNet weights expect std-normalized input: set PIXEL_STD to "
                            "[58.395, 57.12, 57.375] (and MEAN_PIXEL to [123.675, 116.28, 103.53])")
    if eps is not None and getattr(network, "frozen_bn_eps", None) not in (None, eps):
        network.frozen_bn_eps = eps
        why = "torchvision's COCO v1 weights were trained so" if fmt != "maskrcnn" else "as the checkpoint says"
        report.notes.append(f"FrozenBatchNorm eps set to {eps} ({why})")
    log.info("%s", report)
    return report


def _load_state(model: nn.Module, state: dict[str, Any], *, label: str, fmt: str, exclude, strict: bool,
                partial: bool) -> LoadReport:
    own = model.state_dict()
    prefixes = exclude_prefixes(exclude)
    layers = _matterport_layers(exclude)
    if layers:  # matterport's layer names also name the modules of a matterport-flavoured network
        prefixes += tuple(k for k in own if "." in k and k.rsplit(".", 1)[0].rsplit(".", 1)[-1] in layers)
    report = LoadReport(source=label, format=fmt)
    to_load: dict[str, torch.Tensor] = {}
    unexpected, mismatched = [], []
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        if prefixes and key.startswith(prefixes):
            report.skipped.append(key)
            continue
        if key not in own:
            if key.endswith("num_batches_tracked"):
                continue  # BatchNorm counter; our FrozenBatchNorm/GroupNorm has none
            unexpected.append(key)
        elif own[key].shape != value.shape:
            mismatched.append(f"{key} {tuple(value.shape)} vs model {tuple(own[key].shape)}")
        else:
            to_load[key] = value
    if unexpected or mismatched:
        raise WeightsError(_mismatch_message(label, unexpected, mismatched, own, state))
    considered = [k for k in own if not (partial and not k.startswith("backbone.body."))]
    missing = [k for k in considered if k not in to_load and not (prefixes and k.startswith(prefixes))
               and not k.endswith("num_batches_tracked")]
    if strict and missing:
        raise WeightsError(f"{label}: the checkpoint lacks {len(missing)} of the model's tensors "
                           f"({_short(missing)}); is it a checkpoint of this architecture?")
    if partial:
        missing = [k for k in own if k not in to_load and not k.endswith("num_batches_tracked")]
    model.load_state_dict(to_load, strict=False)
    report.loaded = sorted(to_load)
    report.missing = missing
    return report


def _mismatch_message(label: str, unexpected: list[str], mismatched: list[str], own: dict, state: dict) -> str:
    head_only = mismatched and all(_class_specific(m.split(" ")[0]) for m in mismatched) and not unexpected
    if head_only:
        matterport = [k for k in own if k.endswith(".mrcnn_class_logits.weight")]  # a matterport-flavoured network
        key = matterport[0] if matterport else "roi_heads.box_predictor.cls_score.weight"
        theirs = state[key].shape[0] if key in state else "?"
        mine = own[key].shape[0] if key in own else "?"
        names = sorted({_module_name(m.split(" ")[0]) for m in mismatched}) if matterport else \
            [p.rstrip('.') for p in CLASS_SPECIFIC]
        return (f"{label}: the checkpoint was trained for NUM_CLASSES={theirs} but the model has "
                f"NUM_CLASSES={mine}; its class-specific layers ({', '.join(names)}) "
                f"do not fit. Load with exclude='class_specific' to skip them and train them from scratch "
                f"(matterport: exclude=['mrcnn_class_logits', 'mrcnn_bbox_fc', 'mrcnn_bbox', 'mrcnn_mask'])")
    parts = [f"{label}: checkpoint does not match the model's architecture"]
    if mismatched:
        parts.append(f"{len(mismatched)} tensors differ in shape: {_short(mismatched)}")
    if unexpected:
        parts.append(f"{len(unexpected)} tensors have no place in the model: {_short(unexpected)}")
    body = [k for k in unexpected if k.startswith("backbone.body.layer")]
    if body:
        parts.append("(a deeper backbone than the model's? check BACKBONE)")
    return "; ".join(parts)


def _module_name(key: str) -> str:
    """``roi_heads.box_predictor.mrcnn_class_logits.weight`` → ``mrcnn_class_logits``."""
    return key.rsplit(".", 2)[-2] if key.count(".") >= 1 else key


def _class_specific(key: str) -> bool:
    """A key of a class-specific layer: torchvision-flavoured names, or matterport's layer names."""
    return key.startswith(CLASS_SPECIFIC) or _module_name(key) in MATTERPORT_NAMES


def _short(keys: list[str]) -> str:
    more = f", ... (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
    return ", ".join(keys[:_SHOW]) + more


def _pickle_code(path: Path) -> str | None:
    """For a plain pickle file: the first callable it would import (``module.name``), found by reading its
    opcodes with :mod:`pickletools` (nothing is executed); None if it imports nothing or is not a pickle."""
    import pickletools

    try:
        data = path.read_bytes()
        strings: list[str] = []
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in ("GLOBAL", "INST"):
                return str(arg).replace(" ", ".")
            if opcode.name == "STACK_GLOBAL":
                return ".".join(strings[-2:]) or "a global"
            if opcode.name in ("REDUCE", "OBJ", "NEWOBJ", "NEWOBJ_EX", "BUILD"):
                return "an object constructor"
            if isinstance(arg, str):
                strings.append(arg)
    except Exception:  # noqa: BLE001 - not a pickle stream: nothing to report
        return None
    return None


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip() and "documentation" not in ln]
    return lines[-1] if lines else text.strip()
