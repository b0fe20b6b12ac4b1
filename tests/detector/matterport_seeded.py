"""matterport's seeded reference weights, regenerated without TensorFlow (test support, not a test module).

``../shared/reference/matterport/reference.py --seed N`` gives matterport's Keras model deterministic
random weights and saves them as matterport ``.h5``. This module rebuilds the same file from numpy
alone, so that CI can load "matterport weights" without TensorFlow:

- :func:`matterport_layers` enumerates matterport's inference model layer by layer, in the order
  ``keras_model.save_weights`` writes them: every layer name (also the weightless ones), and for the
  131 (ResNet-50) / 233 (ResNet-101) layers with weights their weight names and shapes, from
  matterport's naming (``resnet_graph``'s ``conv_block``/``identity_block``, ``fpn_*``, the nested
  ``rpn_model``, the ``mrcnn_*`` heads);
- :func:`seeded_value` draws one tensor exactly as ``reference.seeded_value`` does
  (``numpy.random.default_rng([seed, crc32("<layer>/<var>")])``, float64 draw, then float32);
- the two layers that ``reference.calibrate_heads`` rescales by running matterport on a synthetic
  image (``rpn_model/rpn_class_raw`` and ``mrcnn_class_logits``) cannot be recomputed here: they come
  from a small ``.npz`` extracted from the reference ``.h5`` by :func:`extract_calibration` (the final
  biases, and one float32 scale per kernel column: the calibrated kernel is exactly
  ``float32(seeded kernel) * scale``, as ``calibrate_heads`` computes it);
- :func:`write_seeded_h5` writes a Keras-2 HDF5 weights file in matterport's layout (root attributes
  ``layer_names``, ``backend``, ``keras_version``; one group per layer with ``weight_names``; datasets
  ``<layer>/<layer>/kernel:0``, and ``rpn_model/rpn_conv_shared/kernel:0`` for the nested RPN model).

Tensor keys are the dataset paths in the file, e.g. ``"conv1/conv1/kernel:0"``. Kernels are
``(kh, kw, in, out)`` for Conv2D, ``(kh, kw, out, in)`` for ``mrcnn_mask_deconv``, ``(in, out)`` for Dense.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# reference.py's constants (its "Seeded initialization" block)
HE = np.sqrt(2.0)
PIXEL_STD = 64.0
FPN_GAIN = {"fpn_p2": 0.5, "fpn_p3": 0.7, "fpn_p4": 1.0, "fpn_p5": 1.5}
HEAD_GAIN = {"rpn_class_raw": 1.0, "rpn_bbox_pred": 0.2, "mrcnn_class_logits": 1.0,
             "mrcnn_bbox_fc": 0.15, "mrcnn_mask": 1.0}
RESIDUAL_GAMMA = 0.6
CALIBRATED = ("rpn_model/rpn_class_raw", "mrcnn_class_logits/mrcnn_class_logits")

# matterport's resnet_graph: identity blocks in stage 4 ("b".."f" or "b".."w")
STAGE4_IDENTITY_BLOCKS = {"resnet50": 5, "resnet101": 22}
BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")


@dataclass(frozen=True)
class Layer:
    """One layer of matterport's inference ``keras_model`` as the ``.h5`` stores it.

    ``weights``: ``(weight name, shape)`` pairs in file order (``"conv1/kernel:0"``; inside
    ``rpn_model`` the inner layer's name); empty for layers without weights. ``kind``: ``conv``,
    ``deconv``, ``dense``, ``bn``, ``model`` (rpn_model) or ``none``.
    """

    name: str
    kind: str
    weights: tuple[tuple[str, tuple[int, ...]], ...] = ()


def _conv(name, shape, kind="conv"):
    return Layer(name, kind, ((f"{name}/kernel:0", tuple(shape)), (f"{name}/bias:0", (shape[-1] if kind != "deconv"
                                                                                     else shape[2],))))


def _bn(name, channels):
    return Layer(name, "bn", tuple((f"{name}/{w}:0", (channels,)) for w in BN_WEIGHTS))


def matterport_layers(*, backbone: str = "resnet101", num_classes: int = 81, fc_size: int = 1024,
                      pyramid: int = 256, pool_size: int = 7, anchors_per_location: int = 3) -> list[Layer]:
    """Every layer of matterport's inference model, in ``save_weights`` order (224 for ResNet-50).

    The defaults are matterport's ``Config`` (FPN_CLASSIF_FC_LAYERS_SIZE, TOP_DOWN_PYRAMID_SIZE,
    POOL_SIZE, len(RPN_ANCHOR_RATIOS)). Weightless layers carry Keras' automatic names
    (``activation_12``, ``add_3``, ``lambda_2``) as matterport's graph creates them.
    """
    if backbone not in STAGE4_IDENTITY_BLOCKS:
        raise ValueError(f"backbone {backbone!r}: matterport's .h5 layout is known for resnet50 and resnet101")
    layers: list[Layer] = []
    counters = {"activation": 0, "add": 0}

    def auto(prefix):
        i = counters[prefix]
        counters[prefix] += 1
        return Layer(prefix if i == 0 else f"{prefix}_{i}", "none")

    layers += [Layer("input_image", "none"), Layer("zero_padding2d", "none"),
               _conv("conv1", (7, 7, 3, 64)), _bn("bn_conv1", 64), auto("activation"), Layer("max_pooling2d", "none")]
    channels = 64
    stages = [(2, (64, 64, 256), 2), (3, (128, 128, 512), 3),
              (4, (256, 256, 1024), STAGE4_IDENTITY_BLOCKS[backbone]), (5, (512, 512, 2048), 2)]
    for stage, (f1, f2, f3), identity_blocks in stages:
        for i in range(identity_blocks + 1):
            block = chr(97 + i)
            conv, bn = f"res{stage}{block}_branch", f"bn{stage}{block}_branch"
            layers += [_conv(conv + "2a", (1, 1, channels, f1)), _bn(bn + "2a", f1), auto("activation"),
                       _conv(conv + "2b", (3, 3, f1, f2)), _bn(bn + "2b", f2), auto("activation"),
                       _conv(conv + "2c", (1, 1, f2, f3))]
            if i == 0:   # conv_block: projection shortcut
                layers += [_conv(conv + "1", (1, 1, channels, f3)), _bn(bn + "2c", f3), _bn(bn + "1", f3)]
            else:
                layers += [_bn(bn + "2c", f3)]
            layers += [auto("add"), Layer(f"res{stage}{block}_out", "none")]
            channels = f3
    p = pyramid
    layers += [_conv("fpn_c5p5", (1, 1, 2048, p)), Layer("fpn_p5upsampled", "none"),
               _conv("fpn_c4p4", (1, 1, 1024, p)), Layer("fpn_p4add", "none"), Layer("fpn_p4upsampled", "none"),
               _conv("fpn_c3p3", (1, 1, 512, p)), Layer("fpn_p3add", "none"), Layer("fpn_p3upsampled", "none"),
               _conv("fpn_c2p2", (1, 1, 256, p)), Layer("fpn_p2add", "none")]
    layers += [_conv(f"fpn_p{i}", (3, 3, p, p)) for i in (5, 2, 3, 4)] + [Layer("fpn_p6", "none")]
    a = anchors_per_location
    rpn = [_conv("rpn_conv_shared", (3, 3, p, 512)), _conv("rpn_class_raw", (1, 1, 512, 2 * a)),
           _conv("rpn_bbox_pred", (1, 1, 512, 4 * a))]
    layers += [Layer("rpn_model", "model", tuple(w for layer in rpn for w in layer.weights)),
               Layer("rpn_class", "none"), Layer("rpn_bbox", "none"), Layer("input_anchors", "none"),
               Layer("ROI", "none"), Layer("input_image_meta", "none"), Layer("roi_align_classifier", "none"),
               _conv("mrcnn_class_conv1", (pool_size, pool_size, p, fc_size)), _bn("mrcnn_class_bn1", fc_size),
               auto("activation"),
               _conv("mrcnn_class_conv2", (1, 1, fc_size, fc_size)), _bn("mrcnn_class_bn2", fc_size),
               auto("activation"), Layer("pool_squeeze", "none"),
               _conv("mrcnn_class_logits", (fc_size, num_classes), "dense"),
               _conv("mrcnn_bbox_fc", (fc_size, 4 * num_classes), "dense"),
               Layer("mrcnn_class", "none"), Layer("mrcnn_bbox", "none"), Layer("mrcnn_detection", "none")]
    auto("activation")   # one more automatic name is taken in the detection graph
    layers += [Layer("lambda_2", "none"), Layer("roi_align_mask", "none")]
    for i in range(1, 5):
        layers += [_conv(f"mrcnn_mask_conv{i}", (3, 3, p, p)), _bn(f"mrcnn_mask_bn{i}", p), auto("activation")]
    layers += [_conv("mrcnn_mask_deconv", (2, 2, p, p), "deconv"), _conv("mrcnn_mask", (1, 1, p, num_classes))]
    return layers


def tensor_specs(**layout) -> dict[str, tuple[int, ...]]:
    """``{dataset path: shape}`` for every weight tensor, in file order (``"rpn_model/rpn_conv_shared/kernel:0"``)."""
    return {f"{layer.name}/{w}": shape for layer in matterport_layers(**layout) for w, shape in layer.weights}


def _stage_blocks(backbone: str) -> dict[str, int]:
    return {"2": 3, "3": 4, "4": STAGE4_IDENTITY_BLOCKS[backbone] + 1, "5": 3}


def seeded_value(name: str, var: str, shape: tuple[int, ...], *, seed: int, kind: str,
                 blocks: dict[str, int]) -> np.ndarray:
    """reference.seeded_value for layer ``name`` (inner name inside rpn_model), variable ``var``: float32."""
    rng = np.random.default_rng([seed, zlib.crc32(f"{name}/{var}".encode())])
    if var == "kernel":
        fan_in = shape[3] if kind == "deconv" else int(np.prod(shape[:-1]))
        gain = (HE / PIXEL_STD if name == "conv1" else HEAD_GAIN.get(name) or FPN_GAIN.get(name)
                or (1.0 if name.startswith("fpn_") else HE))
        value = rng.standard_normal(shape) * (gain / np.sqrt(fan_in))
        if name in HEAD_GAIN:
            value -= value.mean(axis=tuple(range(len(shape) - 1)), keepdims=True)
    elif var == "bias":
        value = rng.standard_normal(shape) * 0.02
    elif var == "gamma":
        value = rng.uniform(0.7, 1.3, shape)
        if re.fullmatch(r"bn\d\w+_branch2c", name):
            value *= RESIDUAL_GAMMA / np.sqrt(blocks[name[2]])
    elif var in ("beta", "moving_mean"):
        value = rng.standard_normal(shape) * 0.1
    elif var == "moving_variance":
        value = rng.uniform(0.7, 1.3, shape)
    else:
        raise ValueError(f"no seeded initialization for {name}/{var}")
    return value.astype(np.float32)


def load_calibration(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def seeded_weights(*, backbone: str, num_classes: int, seed: int,
                   calibration: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """Every tensor of ``reference.py --seed SEED`` as ``{dataset path: float32 array}``, file order.

    ``calibration`` (from :func:`extract_calibration`) replaces the two calibrated layers; ``None``
    leaves them as drawn (reference.py's ``init_seeded(calibrate=False)``).
    """
    blocks = _stage_blocks(backbone)
    out = {}
    for layer in matterport_layers(backbone=backbone, num_classes=num_classes):
        for wname, shape in layer.weights:
            inner, var = wname.split("/")[0], wname.split("/")[-1].split(":")[0]
            kind = "conv" if layer.kind == "model" else layer.kind
            out[f"{layer.name}/{wname}"] = seeded_value(inner, var, shape, seed=seed, kind=kind, blocks=blocks)
    if calibration is not None:
        for prefix in CALIBRATED:
            kernel, bias = f"{prefix}/kernel:0", f"{prefix}/bias:0"
            if f"{kernel}.full" in calibration:
                out[kernel] = calibration[f"{kernel}.full"].astype(np.float32)
            else:
                out[kernel] = out[kernel] * calibration[f"{kernel}.scale"].astype(np.float32)
            out[bias] = calibration[bias].astype(np.float32)
            if out[kernel].shape != tensor_specs(backbone=backbone, num_classes=num_classes)[kernel]:
                raise ValueError(f"calibration {kernel}: shape {out[kernel].shape} does not fit "
                                 f"{backbone} with {num_classes} classes")
    return out


def extract_calibration(h5_path: str | Path, *, backbone: str, num_classes: int, seed: int) -> dict[str, np.ndarray]:
    """The calibrated tensors of a ``reference.py --seed SEED`` file, as small arrays.

    Per calibrated layer: the final bias, and the kernel as one float32 scale per output column
    (``calibrated == float32(seeded) * scale``, checked bit for bit); a layer for which no such
    scale reproduces the file is stored whole (``<kernel>.full``).
    """
    import h5py

    drawn = seeded_weights(backbone=backbone, num_classes=num_classes, seed=seed, calibration=None)
    out = {}
    with h5py.File(h5_path, "r") as f:
        for prefix in CALIBRATED:
            kernel, bias = f"{prefix}/kernel:0", f"{prefix}/bias:0"
            final, raw = f[kernel][()], drawn[kernel]
            scale = _column_scales(final, raw)
            if scale is None:
                out[f"{kernel}.full"] = final
            else:
                out[f"{kernel}.scale"] = scale
            out[bias] = f[bias][()]
    return out


def _column_scales(final: np.ndarray, raw: np.ndarray) -> np.ndarray | None:
    """float32 ``s`` [out] with ``raw * s == final`` exactly (also a single shared scale), else None."""
    f2, r2 = final.reshape(-1, final.shape[-1]), raw.reshape(-1, raw.shape[-1])
    scales = np.empty(final.shape[-1], np.float32)
    for j in range(final.shape[-1]):
        ok = np.abs(r2[:, j]) > 1e-30
        guess = np.float32(np.median(f2[ok, j].astype(np.float64) / r2[ok, j].astype(np.float64)))
        for _ in range(64):   # walk a few ulps around the guess
            if np.array_equal(r2[:, j] * guess, f2[:, j]):
                break
            lo = np.nextafter(guess, np.float32(-np.inf), dtype=np.float32)
            hi = np.nextafter(guess, np.float32(np.inf), dtype=np.float32)
            guess = next((g for g in (lo, hi) if np.array_equal(r2[:, j] * g, f2[:, j])), None)
            if guess is None:
                return None
        else:
            return None
        scales[j] = guess
    if np.all(scales == scales[0]) and np.array_equal(raw * scales[0], final):
        return np.float32(scales[0])
    return scales


def write_seeded_h5(path: str | Path, *, backbone: str, num_classes: int, seed: int,
                    calibrated_npz: str | Path | None) -> Path:
    """Write ``reference.py --backbone B --num-classes C --seed S --save-h5 PATH``'s weights, without TF.

    Same layer names, weight names, shapes and float32 values as that file; ``calibrated_npz``
    from :func:`extract_calibration` (``None``: the two calibrated layers stay as drawn).
    """
    import h5py

    calibration = load_calibration(calibrated_npz) if calibrated_npz is not None else None
    weights = seeded_weights(backbone=backbone, num_classes=num_classes, seed=seed, calibration=calibration)
    layers = matterport_layers(backbone=backbone, num_classes=num_classes)
    path = Path(path)
    text = h5py.string_dtype()
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([layer.name for layer in layers], dtype=text)
        f.attrs["backend"] = "tensorflow"
        f.attrs["keras_version"] = "2.21.0"
        for layer in layers:
            g = f.create_group(layer.name)
            names = [w for w, _ in layer.weights]
            g.attrs["weight_names"] = np.array(names, dtype=text) if names else np.array([])
            for w in names:
                g.create_dataset(w, data=weights[f"{layer.name}/{w}"])
        f.create_group("top_level_model_weights").attrs["weight_names"] = np.array([])
    return path


def checksum(value: np.ndarray) -> str:
    """The first 16 hex digits of the sha256 of the array as little-endian C-order float32 bytes."""
    return hashlib.sha256(np.ascontiguousarray(value, dtype="<f4").tobytes()).hexdigest()[:16]


def h5_checksums(h5_path: str | Path) -> dict:
    """``{"layer_names": [...], "tensors": {path: [shape, sum, checksum]}}`` of a matterport ``.h5``."""
    import h5py

    tensors = {}
    with h5py.File(h5_path, "r") as f:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in f.attrs["layer_names"]]
        for layer in names:
            for w in f[layer].attrs["weight_names"]:
                w = w.decode() if isinstance(w, bytes) else str(w)
                value = f[layer][w][()]
                tensors[f"{layer}/{w}"] = [list(value.shape), float(f"{value.astype(np.float64).sum():.7g}"),
                                           checksum(value)]
    return {"layer_names": names, "tensors": tensors}


def dump_checksums(table: dict) -> str:
    """JSON text of a checksum table, one tensor a line."""
    head = {k: v for k, v in table.items() if k != "tensors"}
    lines = [json.dumps(head)[:-1] + ', "tensors": {']
    items = list(table["tensors"].items())
    lines += [f"{json.dumps(k)}: {json.dumps(v)}" + ("," if i < len(items) - 1 else "")
              for i, (k, v) in enumerate(items)]
    return "\n".join(lines) + "\n}}\n"


def load_checksums(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())
