"""matterport's Keras 2 ``.h5`` weights: read them into a matterport-flavoured network, write them back.

The file (``keras_model.save_weights``, what matterport's ModelCheckpoint and release assets are):
root attribute ``layer_names`` (str or bytes; weightless layers included), one group per layer with
attribute ``weight_names`` (``conv1/kernel:0`` …) and its datasets at ``<layer>/<weight name>``;
full-model saves nest all of it under ``model_weights``. The three RPN convolutions live in one
group ``rpn_model`` (weight names ``rpn_conv_shared/kernel:0`` …). Training checkpoints list extra
weightless layers and another order, so everything here goes **by name**, never by position.

* :func:`read_h5_layers` → ``{layer: {"kernel"|"bias"|"gamma"|…: np.ndarray}}`` (weights only; nothing
  in the file is executed), the ``rpn_model`` group split into its three layers;
* :func:`describe_h5` → the backbone (6 res4 blocks: resnet50, 23: resnet101) and NUM_CLASSES
  (``mrcnn_class_logits``' bias) where present;
* :func:`h5_to_state_dict` maps the layers onto a network whose weighted modules carry matterport's
  Keras layer names as the **last component** of their ``named_modules()`` names
  (``backbone.body.bn_conv1``, ``rpn.head.rpn_class_raw``, ``roi_heads.mask_head.mrcnn_mask_deconv`` …):
  the naming contract of ``ARCHITECTURE = "matterport"`` networks, the only thing used of them;
* :func:`load_h5` loads them into the network and returns what :class:`~maskrcnn.weights.LoadReport` reports;
* writing such a network as a Keras 2 ``.h5`` file is :mod:`maskrcnn.matterport_h5_write`'s.

Layouts (Keras → torch): Conv2D kernel ``(kh, kw, in, out)`` → ``(out, in, kh, kw)``; Conv2DTranspose
kernel ``(kh, kw, out, in)`` → ``(in, out, kh, kw)`` (both ``permute(3, 2, 0, 1)``); Dense kernel
``(in, out)`` → ``(out, in)``; BatchNormalization gamma/beta/moving_mean/moving_variance →
weight/bias/running_mean/running_var.

Every failure is one :class:`~maskrcnn.errors.WeightsError` line naming the file (and the layer).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import WeightsError

__all__ = ["H5_FORMAT", "CLASS_LAYERS", "H5Description", "H5LoadReport", "read_h5_layers", "read_h5_checkpoint",
           "describe_h5", "describe_layers", "h5_to_state_dict", "load_h5", "is_matterport_network"]

#: ``detect_format`` name of a checkpoint dict made by :func:`read_h5_checkpoint`.
H5_FORMAT = "matterport_h5"
#: matterport's class-specific layers (``mrcnn_bbox`` is weightless: accepted, nothing to skip).
CLASS_LAYERS = ("mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask")
RPN_GROUP = "rpn_model"
RPN_LAYERS = ("rpn_conv_shared", "rpn_class_raw", "rpn_bbox_pred")
KERAS_VERSION = "2.21.0"  # what matterport's reference writer (tf-keras) stores; Keras 2 loaders accept any 2.x

_BACKBONE = re.compile(r"^(conv1|bn_conv1|(res|bn)[2-5][a-z]+_branch(1|2[abc]))$")
_LAYER = re.compile(r"^(conv1|bn_conv1|(res|bn)[2-5][a-z]+_branch(1|2[abc])|fpn_c[2-5]p[2-5]|fpn_p[2-5]"
                    r"|rpn_conv_shared|rpn_class_raw|rpn_bbox_pred|mrcnn_[a-z0-9_]+)$")
_RES4 = re.compile(r"^res4([a-z]+)_branch2a$")
_DEPTHS = {6: "resnet50", 23: "resnet101"}
_TO_TORCH = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias",
             "moving_mean": "running_mean", "moving_variance": "running_var"}
_BN_ORDER = (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
             ("moving_variance", "running_var"))
_EXPECTED = ("conv1, bn_conv1, res2a_branch2a …, fpn_c5p5 …, rpn_model (rpn_conv_shared, rpn_class_raw, "
             "rpn_bbox_pred), mrcnn_class_conv1 …, mrcnn_class_logits, mrcnn_bbox_fc, mrcnn_mask")
_SHOW = 5

Layers = dict[str, dict[str, np.ndarray]]


# ---------------------------------------------------------------------- reading
def read_h5_layers(path: str | os.PathLike) -> Layers:
    """``{layer: {weight short name: float array}}`` of a Keras 2 ``.h5`` weights file, layers with weights only,
    in the file's ``layer_names`` order (``rpn_model`` split into ``rpn_conv_shared``, ``rpn_class_raw``,
    ``rpn_bbox_pred``). Short names are the weight names' last component without ``:0``
    (``kernel``, ``bias``, ``gamma``, ``beta``, ``moving_mean``, ``moving_variance``).

    Raises :class:`WeightsError` naming the file: not HDF5, truncated, or not Keras 2 weights.
    """
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            root = f
            if "layer_names" not in f.attrs and "model_weights" in f:
                root = f["model_weights"]  # a full-model save (model.save)
            if "layer_names" not in root.attrs:
                groups = ", ".join(list(f.keys())[:_SHOW]) or "none"
                raise WeightsError(f"{path}: an HDF5 file but not Keras 2 weights (no 'layer_names' attribute; "
                                   f"top-level groups: {groups}); expected a file of matterport's "
                                   f"keras_model.save_weights")
            return _read_groups(root, path)
    except WeightsError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise WeightsError(f"{path}: not a readable HDF5 weights file (truncated or damaged? {detail})") from None


def _read_groups(root: Any, path: Path) -> Layers:
    layers: Layers = {}
    for layer in (_text(n) for n in root.attrs["layer_names"]):
        if layer not in root:
            raise WeightsError(f"{path}: layer {layer!r} is listed in layer_names but has no group (truncated file?)")
        group = root[layer]
        names = [_text(n) for n in group.attrs.get("weight_names", [])]
        if not names:
            continue
        prefixes = {n.split("/")[0] for n in names if "/" in n}
        for name in names:
            owner = layer if len(prefixes) <= 1 else _unsuffixed(name.split("/")[0])  # rpn_model holds three
            short = name.split("/")[-1].split(":")[0]
            if name not in group:
                raise WeightsError(f"{path}: layer {layer!r}: weight {name!r} is listed but missing (truncated file?)")
            weights = layers.setdefault(owner, {})
            if short in weights:
                raise WeightsError(f"{path}: layer {owner!r} has two weights named {short!r}")
            weights[short] = np.asarray(group[name][()])
    return layers


def _unsuffixed(name: str) -> str:
    """A nested layer's name without the ``_1`` TensorFlow adds to a name scope used twice (``rpn_conv_shared_1``)."""
    base = re.sub(r"_\d+$", "", name)
    return base if not _LAYER.match(name) and _LAYER.match(base) else name


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_h5_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint dict of an ``.h5`` file for the weights rule: ``{"format": "matterport_h5",
    "layers": read_h5_layers(path), "description": describe_layers(...)}``."""
    layers = read_h5_layers(path)
    _check_matterport(layers, str(path))
    return {"format": H5_FORMAT, "layers": layers, "description": describe_layers(layers)}


@dataclass
class H5Description:
    """What an ``.h5`` file says about the model it was saved from (None: not in the file).

    ``layers``: layers with weights, ``rpn_model`` counted as its three (:attr:`keras_layers`: as Keras
    counts them); ``tensors``: their weights (ResNet-50: 131 Keras layers, 384 tensors).
    """

    backbone: str | None
    res4_blocks: int
    num_classes: int | None
    layers: int
    tensors: int
    backbone_only: bool = False
    rpn_layers: int = 0  # of rpn_conv_shared, rpn_class_raw, rpn_bbox_pred (one Keras layer, rpn_model)
    fpn_channels: int | None = None  # TOP_DOWN_PYRAMID_SIZE (fpn_c5p5's outputs)
    fc_size: int | None = None  # FPN_CLASSIF_FC_LAYERS_SIZE (mrcnn_class_conv1's outputs)
    pool_size: int | None = None  # POOL_SIZE (mrcnn_class_conv1's kernel)

    @property
    def keras_layers(self) -> int:
        """Layers with weights as Keras counts them (``rpn_model`` one layer): 131 for ResNet-50, 233 for 101."""
        return self.layers - self.rpn_layers + (1 if self.rpn_layers else 0)

    def config_values(self) -> dict[str, Any]:
        """The Config attributes the file determines (those it holds)."""
        values = {"BACKBONE": self.backbone, "NUM_CLASSES": self.num_classes,
                  "TOP_DOWN_PYRAMID_SIZE": self.fpn_channels, "FPN_CLASSIF_FC_LAYERS_SIZE": self.fc_size,
                  "POOL_SIZE": self.pool_size}
        return {k: v for k, v in values.items() if v is not None}

    @property
    def depth_text(self) -> str:
        """``ResNet-101 (23 res4 blocks)`` and the like."""
        name = {"resnet50": "ResNet-50", "resnet101": "ResNet-101"}.get(self.backbone or "", "a ResNet")
        return f"{name} ({self.res4_blocks} res4 blocks)"


def describe_layers(layers: Layers) -> H5Description:
    """:class:`H5Description` of layers read by :func:`read_h5_layers`."""
    blocks = sum(1 for name in layers if _RES4.match(name))
    logits = layers.get("mrcnn_class_logits", {})
    num_classes = None
    if "bias" in logits:
        num_classes = int(logits["bias"].shape[0])
    elif "kernel" in logits:
        num_classes = int(logits["kernel"].shape[-1])
    backbone_only = bool(layers) and all(_BACKBONE.match(n) or not _LAYER.match(n) for n in layers)
    fpn = layers.get("fpn_c5p5", {}).get("kernel")
    head = layers.get("mrcnn_class_conv1", {}).get("kernel")
    return H5Description(backbone=_DEPTHS.get(blocks), res4_blocks=blocks, num_classes=num_classes,
                         layers=len(layers), tensors=sum(len(w) for w in layers.values()),
                         backbone_only=backbone_only, rpn_layers=sum(1 for n in RPN_LAYERS if n in layers),
                         fpn_channels=int(fpn.shape[-1]) if fpn is not None and fpn.ndim == 4 else None,
                         fc_size=int(head.shape[-1]) if head is not None and head.ndim == 4 else None,
                         pool_size=int(head.shape[0]) if head is not None and head.ndim == 4 else None)


def describe_h5(path: str | os.PathLike) -> H5Description:
    """:func:`describe_layers` of the file at ``path``."""
    return describe_layers(read_h5_layers(path))


def _check_matterport(layers: Layers, label: str) -> None:
    if not layers:
        raise WeightsError(f"{label}: a Keras weights file without any layer with weights; expected matterport's "
                           f"Mask R-CNN layers ({_EXPECTED})")
    if not any(_LAYER.match(name) for name in layers):
        found = ", ".join(list(layers)[:_SHOW])
        raise WeightsError(f"{label}: weights of another Keras model (layers {found}, …): none has a matterport "
                           f"Mask R-CNN name; expected {_EXPECTED}")


# ---------------------------------------------------------------------- the naming contract
def _direct_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    tensors = dict(module.named_parameters(recurse=False))
    tensors.update((k, v) for k, v in module.named_buffers(recurse=False) if v is not None)
    return {k: v for k, v in tensors.items() if k != "num_batches_tracked"}


def _contract_modules(network: nn.Module) -> dict[str, tuple[str, nn.Module]]:
    """``{matterport layer name: (module path, module)}`` of the network's weighted modules that carry one."""
    found: dict[str, tuple[str, nn.Module]] = {}
    for name, module in network.named_modules():
        last = name.rsplit(".", 1)[-1]
        if not name or not _LAYER.match(last) or not _direct_tensors(module):
            continue
        if last in found:
            raise WeightsError(f"network: two modules carry matterport's layer name {last!r} "
                               f"({found[last][0]} and {name})")
        found[last] = (name, module)
    return found


def is_matterport_network(network: nn.Module) -> bool:
    """Whether ``network`` follows the naming contract (it has matterport's ``bn_conv1`` or ``fpn_c5p5``)."""
    names = {name.rsplit(".", 1)[-1] for name, _ in network.named_modules()}
    return "bn_conv1" in names or "fpn_c5p5" in names


def _architecture(network: nn.Module) -> str:
    config = getattr(network, "config", None)
    arch = getattr(config, "ARCHITECTURE", None)
    return f"ARCHITECTURE={arch!r}" if arch else type(network).__name__


def _require_contract(network: nn.Module, label: str) -> dict[str, tuple[str, nn.Module]]:
    if not is_matterport_network(network):
        raise WeightsError(f"{label}: matterport .h5 weights need a network with matterport's layers (a "
                           f"MatterportConfig, ARCHITECTURE='matterport'); this model is {_architecture(network)}")
    return _contract_modules(network)


# ---------------------------------------------------------------------- Keras -> torch
@dataclass
class H5LoadReport:
    """What :func:`h5_to_state_dict` did, by matterport layer name."""

    loaded: list[str] = field(default_factory=list)  # layers mapped
    skipped: list[str] = field(default_factory=list)  # layers excluded on request
    unused: list[str] = field(default_factory=list)  # layers of the file with no module of that name
    missing: list[str] = field(default_factory=list)  # the model's state-dict keys the file does not give
    description: H5Description | None = None


def split_exclude(exclude: str | Iterable[str] | None, layers: Iterable[str] = ()) -> tuple[set[str], tuple[str, ...]]:
    """``exclude`` → (matterport layer names, state-dict key prefixes). ``"class_specific"`` / ``"heads"``
    mean :data:`CLASS_LAYERS`; a matterport layer name (or a layer of the file) is a layer; anything else is a
    key prefix, as :func:`maskrcnn.weights.exclude_prefixes` takes them."""
    if exclude is None:
        return set(), ()
    items = [exclude] if isinstance(exclude, str) else list(exclude)
    known = set(layers)
    names: set[str] = set()
    prefixes: list[str] = []
    for item in items:
        item = str(item)
        if item in ("class_specific", "heads"):
            names.update(CLASS_LAYERS)
        elif item in CLASS_LAYERS or item in known or item == RPN_GROUP or _LAYER.match(item):
            names.update(RPN_LAYERS if item == RPN_GROUP else (item,))
        else:
            prefixes.append(item)
    return names, tuple(prefixes)


def _to_torch(short: str, array: np.ndarray) -> tuple[str, torch.Tensor]:
    tensor = torch.from_numpy(np.array(array, copy=True))
    if short == "kernel":
        if tensor.ndim == 4:
            tensor = tensor.permute(3, 2, 0, 1)
        elif tensor.ndim == 2:
            tensor = tensor.T
        return "weight", tensor.contiguous()
    return _TO_TORCH[short], tensor


def _keras_shape(short: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The Keras layout of a torch tensor shape (to compare with the file's)."""
    if short == "kernel" and len(shape) == 4:
        return (shape[2], shape[3], shape[1], shape[0])
    if short == "kernel" and len(shape) == 2:
        return (shape[1], shape[0])
    return tuple(shape)


def h5_to_state_dict(layers: Layers, network: nn.Module, *, exclude: str | Iterable[str] | None = (),
                     strict: bool = True, label: str = "weights") -> tuple[dict[str, torch.Tensor], H5LoadReport]:
    """Map :func:`read_h5_layers`' layers onto ``network``'s state-dict keys by matterport's layer names.

    Args:
        exclude: matterport layer names (``CLASS_LAYERS``: ``mrcnn_bbox`` has no weights and is accepted),
            ``"class_specific"`` for all four, or state-dict key prefixes, left as initialized.
        strict: refuse when the file lacks some of the network's matterport layers (a file holding the
            backbone only — Keras' ImageNet ResNet — is always loaded partially).
        label: how messages name the file.

    Returns ``(state_dict, report)``: only the keys the file gives (tensors in the network's dtype);
    ``report.unused`` lists the file's layers that have no module of that name.
    Raises :class:`WeightsError` (one line, naming ``label`` and the layer): another Keras model, a network
    without matterport's names, another backbone depth, NUM_CLASSES or head size.
    """
    _check_matterport(layers, label)
    modules = _require_contract(network, label)
    desc = describe_layers(layers)
    _check_depth(desc, modules, network, label)
    names, prefixes = split_exclude(exclude, layers)
    own = network.state_dict()
    report = H5LoadReport(description=desc)
    state: dict[str, torch.Tensor] = {}
    for layer, weights in layers.items():
        if layer in names:
            report.skipped.append(layer)
            continue
        if layer not in modules:
            report.unused.append(layer)
            continue
        path, _ = modules[layer]
        mapped = {}
        for short, array in weights.items():
            if short not in _TO_TORCH:
                raise WeightsError(f"{label}: layer {layer}: unknown weight {short!r} (expected kernel, bias, gamma, "
                                   f"beta, moving_mean, moving_variance)")
            tname, tensor = _to_torch(short, array)
            key = f"{path}.{tname}"
            if key not in own:
                raise WeightsError(f"{label}: layer {layer}: the file has a {short} but the model's {path} has no "
                                   f"'{tname}'")
            if prefixes and key.startswith(prefixes):
                continue
            if tuple(own[key].shape) != tuple(tensor.shape):
                raise WeightsError(_shape_message(label, layer, short, tuple(array.shape),
                                                  _keras_shape(short, tuple(own[key].shape)), desc, network))
            mapped[key] = tensor.to(own[key].dtype)
        if not mapped:
            report.skipped.append(layer)
            continue
        state.update(mapped)
        report.loaded.append(layer)
    report.missing = _missing(network, modules, state, names, prefixes)
    if strict and report.missing and not desc.backbone_only:
        layers_missing = list(dict.fromkeys(_layer_of(k, modules) for k in report.missing))
        raise WeightsError(f"{label}: the file lacks {len(layers_missing)} of the model's layers "
                           f"({_short(layers_missing)}); is it a matterport Mask R-CNN of this configuration?")
    return state, report


def _check_depth(desc: H5Description, modules: dict, network: nn.Module, label: str) -> None:
    mine = sum(1 for name in modules if _RES4.match(name))
    if desc.res4_blocks and mine and desc.res4_blocks != mine:
        config = getattr(network, "config", None)
        says = f"the config says {config.BACKBONE}" if getattr(config, "BACKBONE", None) else \
            f"the model has {mine} res4 blocks"
        raise WeightsError(f"{label}: the file is {desc.depth_text}, {says}")


def _shape_message(label: str, layer: str, short: str, theirs: tuple, mine: tuple, desc: H5Description,
                   network: nn.Module) -> str:
    text = f"{label}: layer {layer}: the file's {short} has shape {theirs}, the model's {mine}"
    if layer in CLASS_LAYERS:
        config = getattr(network, "config", None)
        own = getattr(config, "NUM_CLASSES", None)
        return (f"{text}: the file was trained for NUM_CLASSES={desc.num_classes}"
                + (f", the config says {own}" if own is not None else "")
                + f"; pass exclude={list(CLASS_LAYERS)!r} (on the command line --exclude-class-layers) to leave "
                  f"the class-specific layers untrained")
    if layer.startswith("mrcnn_mask"):
        return f"{text} (a mask head of another size: check MASK_POOL_SIZE and the mask head's channels)"
    if layer.startswith("mrcnn_class"):
        return f"{text} (a box head of another size: check POOL_SIZE and FPN_CLASSIF_FC_LAYERS_SIZE)"
    if layer.startswith(("rpn_", "fpn_")):
        return f"{text} (check TOP_DOWN_PYRAMID_SIZE and RPN_ANCHOR_RATIOS)"
    return text


def _missing(network: nn.Module, modules: dict, state: dict, names: set[str], prefixes: tuple[str, ...]) -> list[str]:
    """State-dict keys left as initialized: tensors of matterport-named modules the file did not give (unless
    excluded), and parameters of modules without a matterport name."""
    out = []
    paths = {path: layer for layer, (path, _) in modules.items()}
    for name, module in network.named_modules():
        tensors = _direct_tensors(module)
        if not tensors:
            continue
        layer = paths.get(name)
        if layer is not None and layer in names:
            continue
        params = dict(module.named_parameters(recurse=False))
        for tname in tensors:
            key = f"{name}.{tname}" if name else tname
            if key in state or (prefixes and key.startswith(prefixes)):
                continue
            if layer is not None or tname in params:
                out.append(key)
    return out


def _layer_of(key: str, modules: dict) -> str:
    module = key.rsplit(".", 1)[0]
    for layer, (path, _) in modules.items():
        if path == module:
            return layer
    return key


def _short(items: list[str]) -> str:
    more = f", … (+{len(items) - _SHOW} more)" if len(items) > _SHOW else ""
    return ", ".join(items[:_SHOW]) + more


def load_h5(network: nn.Module, checkpoint: dict[str, Any], *, label: str, exclude: str | Iterable[str] | None = None,
            strict: bool = True) -> dict[str, list[str]]:
    """Load a :func:`read_h5_checkpoint` dict into ``network`` (:func:`h5_to_state_dict`, then
    ``load_state_dict``). Returns what :class:`~maskrcnn.weights.LoadReport` reports (``loaded``, ``missing``,
    ``skipped`` layers, ``notes``: the file's layers without a module, a backbone-only file)."""
    state, h5 = h5_to_state_dict(checkpoint["layers"], network, exclude=exclude, strict=strict, label=label)
    network.load_state_dict(state, strict=False)
    notes = []
    if h5.unused:
        notes.append(f"{len(h5.unused)} layers of the file have no place in the model (not loaded): "
                     f"{_short(h5.unused)}")
    if h5.description is not None and h5.description.backbone_only:
        notes.append("the file holds a backbone only (Keras' ImageNet ResNet?): the rest keeps its initialization")
    return {"loaded": sorted(state), "missing": list(h5.missing), "skipped": [f"{layer} (layer)" for layer in h5.skipped],
            "notes": notes}
