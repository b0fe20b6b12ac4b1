"""Writing a matterport-flavoured network as matterport's Keras 2 ``.h5`` weights (``save_weights``' layout).

:func:`write_h5` is what matterport's ``keras_model.load_weights(path, by_name=True)`` reads: the inverse of
:func:`maskrcnn.matterport_h5.h5_to_state_dict` (see that module for the layout and the naming contract).
Torch → Keras: Conv2d weight ``(out, in, kh, kw)`` → kernel ``(kh, kw, in, out)``; ConvTranspose2d
``(in, out, kh, kw)`` → ``(kh, kw, out, in)`` (both ``permute(2, 3, 1, 0)``); Linear ``(out, in)`` →
``(in, out)``; BatchNorm weight/bias/running_mean/running_var → gamma/beta/moving_mean/moving_variance.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from torch import nn

from .errors import WeightsError
from .fileio import atomic_path
from .matterport_h5 import _BN_ORDER, _LAYER, KERAS_VERSION, RPN_GROUP, RPN_LAYERS, Layers, _direct_tensors, \
    _require_contract, _short

__all__ = ["state_dict_to_h5_layers", "write_h5"]


def state_dict_to_h5_layers(network: nn.Module, *, label: str = "network") -> Layers:
    """The inverse of :func:`h5_to_state_dict`: ``{layer: {short name: array}}`` in the network's module order,
    Keras' weight order (kernel, bias; gamma, beta, moving_mean, moving_variance)."""
    modules = _require_contract(network, label)
    stray = [name for name, module in network.named_modules()
             if name and dict(module.named_parameters(recurse=False)) and not _LAYER.match(name.rsplit(".", 1)[-1])]
    if stray:
        raise WeightsError(f"{label}: modules with weights but without a matterport layer name cannot be written "
                           f"to an .h5: {_short(stray)}")
    layers: Layers = {}
    for layer, (_, module) in modules.items():
        tensors = {k: v.detach().cpu() for k, v in _direct_tensors(module).items()}
        if "running_mean" in tensors:
            layers[layer] = {short: tensors[t].float().numpy().copy() for short, t in _BN_ORDER if t in tensors}
            continue
        weights: dict[str, np.ndarray] = {}
        weight = tensors.get("weight")
        if weight is not None:
            if weight.ndim == 4:
                kernel = weight.permute(2, 3, 1, 0)  # conv (out,in,kh,kw) and deconv (in,out,kh,kw) alike
            elif weight.ndim == 2:
                kernel = weight.T
            else:
                raise WeightsError(f"{label}: layer {layer}: a {weight.ndim}-d weight has no Keras layout")
            weights["kernel"] = kernel.float().contiguous().numpy().copy()
        if "bias" in tensors:
            weights["bias"] = tensors["bias"].float().numpy().copy()
        layers[layer] = weights
    return layers


def write_h5(network: nn.Module, path: str | os.PathLike, *, extra_layer_names: Iterable[str] = ()) -> Path:
    """Write ``network``'s matterport-named weights as a Keras 2 ``save_weights`` file, atomically.

    Layout: root attributes ``layer_names`` (bytes, as Keras 2 writes them), ``keras_version``, ``backend``;
    a group per layer with ``weight_names`` and datasets ``<layer>/<layer>/<short>:0``; the RPN's three
    convolutions in one group ``rpn_model``. ``extra_layer_names``: weightless layers to list too.
    matterport's ``load_weights(by_name=True)`` reads the file.
    """
    import h5py

    path = Path(path)
    layers = state_dict_to_h5_layers(network, label=str(path))
    groups: dict[str, list[tuple[str, np.ndarray]]] = {}
    for layer, weights in layers.items():
        group = RPN_GROUP if layer in RPN_LAYERS else layer
        groups.setdefault(group, []).extend((f"{layer}/{short}:0", value) for short, value in weights.items())
    for name in extra_layer_names:
        groups.setdefault(str(name), [])
    with atomic_path(path, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["layer_names"] = np.array([g.encode("utf-8") for g in groups])
            f.attrs["backend"] = b"tensorflow"
            f.attrs["keras_version"] = KERAS_VERSION.encode("utf-8")
            for group_name, weights in groups.items():
                group = f.create_group(group_name)
                group.attrs["weight_names"] = np.array([n.encode("utf-8") for n, _ in weights]) if weights \
                    else np.array([], dtype=np.float64)
                for name, value in weights:
                    group.create_dataset(name, data=value)
    return path
