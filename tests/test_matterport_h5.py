"""matterport's Keras 2 .h5 weights: read by name, mapped by the naming contract, written back.

A tiny network of our own follows the contract (its weighted modules' last names are matterport's
Keras layer names); files are written with h5py here, independently of ``write_h5``, so the layout
conversions are checked against Keras' conventions and not only against their own inverse.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from maskrcnn import weights as W
from maskrcnn.errors import WeightsError
from maskrcnn.matterport_h5 import CLASS_LAYERS, describe_h5, h5_to_state_dict, read_h5_layers
from maskrcnn.matterport_h5_write import state_dict_to_h5_layers, write_h5

C = 3  # classes of the tiny network


class BN(nn.Module):
    """BatchNorm-like: parameters weight/bias, buffers running_mean/running_var (as the contract says)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n))
        self.bias = nn.Parameter(torch.randn(n))
        self.register_buffer("running_mean", torch.randn(n))
        self.register_buffer("running_var", torch.rand(n) + 0.5)


def _stage(stage: int, blocks: int) -> nn.ModuleDict:
    out = nn.ModuleDict()
    for i in range(blocks):
        letter = chr(ord("a") + i)
        block = nn.Module()
        block.add_module(f"res{stage}{letter}_branch2a", nn.Conv2d(4, 4, 1))
        block.add_module(f"bn{stage}{letter}_branch2a", BN(4))
        if i == 0:
            block.add_module(f"res{stage}{letter}_branch1", nn.Conv2d(4, 4, 1))
        out[letter] = block
    return out


class Tiny(nn.Module):
    """A contract-following network: ``backbone.body.conv1`` … ``roi_heads.mask_predictor.mrcnn_mask``."""

    def __init__(self, *, res4_blocks: int = 6, num_classes: int = C, mask_channels: int = 4,
                 backbone: str | None = None) -> None:
        super().__init__()
        self.config = SimpleNamespace(BACKBONE=backbone, NUM_CLASSES=num_classes) if backbone else None
        self.backbone = nn.Module()
        self.backbone.body = nn.Module()
        self.backbone.body.conv1 = nn.Conv2d(3, 4, 3)
        self.backbone.body.bn_conv1 = BN(4)
        self.backbone.body.layer1 = _stage(2, 1)
        self.backbone.body.layer3 = _stage(4, res4_blocks)
        self.backbone.fpn = nn.Module()
        self.backbone.fpn.fpn_c5p5 = nn.Conv2d(4, 4, 1)
        self.backbone.fpn.fpn_p5 = nn.Conv2d(4, 4, 3)
        self.rpn = nn.Module()
        self.rpn.head = nn.Module()
        self.rpn.head.rpn_conv_shared = nn.Conv2d(4, 8, 3)
        self.rpn.head.rpn_class_raw = nn.Conv2d(8, 6, 1)
        self.rpn.head.rpn_bbox_pred = nn.Conv2d(8, 12, 1)
        self.roi_heads = nn.Module()
        self.roi_heads.box_head = nn.Module()
        self.roi_heads.box_head.mrcnn_class_conv1 = nn.Conv2d(4, 16, 3)
        self.roi_heads.box_head.mrcnn_class_bn1 = BN(16)
        self.roi_heads.box_predictor = nn.Module()
        self.roi_heads.box_predictor.mrcnn_class_logits = nn.Linear(16, num_classes)
        self.roi_heads.box_predictor.mrcnn_bbox_fc = nn.Linear(16, 4 * num_classes)
        self.roi_heads.mask_head = nn.Module()
        self.roi_heads.mask_head.mrcnn_mask_conv1 = nn.Conv2d(4, mask_channels, 3)
        self.roi_heads.mask_head.mrcnn_mask_bn1 = BN(mask_channels)
        self.roi_heads.mask_head.mrcnn_mask_deconv = nn.ConvTranspose2d(mask_channels, 6, 2, stride=2)
        self.roi_heads.mask_predictor = nn.Module()
        self.roi_heads.mask_predictor.mrcnn_mask = nn.Conv2d(6, num_classes, 1)


def tiny(seed: int = 0, **kwargs) -> Tiny:
    torch.manual_seed(seed)
    return Tiny(**kwargs)


def write_keras(path, groups: dict[str, dict[str, np.ndarray]], *, layer_names=None, text=bytes, nest=False,
                rpn_model=True) -> None:
    """A Keras-2 save_weights file written by hand: ``groups`` {layer: {short: array}}; rpn_* layers go into
    one ``rpn_model`` group as matterport's nested model does."""
    grouped: dict[str, list] = {}
    for layer, weights in groups.items():
        group = "rpn_model" if rpn_model and layer.startswith("rpn_") else layer
        grouped.setdefault(group, []).extend((f"{layer}/{k}:0", v) for k, v in weights.items())
    names = list(grouped) if layer_names is None else layer_names
    def enc(items):  # Keras 2 writes fixed-length bytes (numpy "S"); tf-keras variable-length str
        return np.array([n.encode() for n in items]) if text is bytes else [str(n) for n in items]

    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if nest else f
        root.attrs["layer_names"] = enc(names)
        for name in names:
            g = root.create_group(name)
            weights = grouped.get(name, [])
            g.attrs["weight_names"] = enc([n for n, _ in weights]) if weights else np.array([], dtype=np.float64)
            for wname, value in weights:
                g.create_dataset(wname, data=value)


def assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


# ---------------------------------------------------------------------- round trip and layouts
def test_round_trip_write_then_read(tmp_path):
    a, b = tiny(0), tiny(1)
    path = write_h5(a, tmp_path / "w.h5")
    layers = read_h5_layers(path)
    state, report = h5_to_state_dict(layers, b, label=str(path))
    b.load_state_dict(state, strict=False)
    assert_same_state(a, b)
    assert not report.unused and not report.missing and not report.skipped
    assert len(state) == len(a.state_dict())
    with h5py.File(path, "r") as f:  # Keras 2 layout
        names = [n.decode() for n in f.attrs["layer_names"]]
        assert names[:2] == ["conv1", "bn_conv1"] and "rpn_model" in names and "rpn_class_raw" not in names
        text = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in f.attrs.items() if k != "layer_names"}
        assert text["keras_version"].startswith("2.") and text["backend"] == "tensorflow"
        assert [n.decode() for n in f["rpn_model"].attrs["weight_names"]][:2] == [
            "rpn_conv_shared/kernel:0", "rpn_conv_shared/bias:0"]
        assert [n.decode() for n in f["bn_conv1"].attrs["weight_names"]] == [
            "bn_conv1/gamma:0", "bn_conv1/beta:0", "bn_conv1/moving_mean:0", "bn_conv1/moving_variance:0"]
        assert f["conv1/conv1/kernel:0"].shape == (3, 3, 3, 4)  # (kh, kw, in, out)
        assert f["mrcnn_mask_deconv/mrcnn_mask_deconv/kernel:0"].shape == (2, 2, 6, 4)  # (kh, kw, out, in)
        assert f["mrcnn_class_logits/mrcnn_class_logits/kernel:0"].shape == (16, C)  # (in, out)
        np.testing.assert_array_equal(f["bn_conv1/bn_conv1/moving_variance:0"][()],
                                      a.backbone.body.bn_conv1.running_var.numpy())
    assert not list(tmp_path.glob(".*tmp"))  # written atomically: no temporary left


def test_keras_layouts_from_a_hand_written_file(tmp_path):
    """Keras kernels → torch weights, checked element by element on a file not written by write_h5."""
    rng = np.random.default_rng(0)
    net = tiny(0)
    layers = {layer: {k: v + rng.normal(size=v.shape).astype(np.float32) for k, v in w.items()}
              for layer, w in state_dict_to_h5_layers(net).items()}
    write_keras(tmp_path / "k.h5", layers)
    state, _ = h5_to_state_dict(read_h5_layers(tmp_path / "k.h5"), net)
    conv = layers["conv1"]["kernel"]  # (kh, kw, in, out)
    assert state["backbone.body.conv1.weight"][2, 1, 0, 2] == torch.tensor(conv[0, 2, 1, 2])
    deconv = layers["mrcnn_mask_deconv"]["kernel"]  # (kh, kw, out, in) -> torch (in, out, kh, kw)
    assert state["roi_heads.mask_head.mrcnn_mask_deconv.weight"][3, 5, 1, 0] == torch.tensor(deconv[1, 0, 5, 3])
    dense = layers["mrcnn_bbox_fc"]["kernel"]  # (in, out) -> (out, in)
    assert state["roi_heads.box_predictor.mrcnn_bbox_fc.weight"][7, 15] == torch.tensor(dense[15, 7])
    bn = layers["mrcnn_class_bn1"]
    assert torch.equal(state["roi_heads.box_head.mrcnn_class_bn1.weight"], torch.from_numpy(bn["gamma"]))
    assert torch.equal(state["roi_heads.box_head.mrcnn_class_bn1.bias"], torch.from_numpy(bn["beta"]))
    assert torch.equal(state["roi_heads.box_head.mrcnn_class_bn1.running_mean"], torch.from_numpy(bn["moving_mean"]))
    assert torch.equal(state["roi_heads.box_head.mrcnn_class_bn1.running_var"],
                       torch.from_numpy(bn["moving_variance"]))
    assert torch.equal(state["rpn.head.rpn_class_raw.bias"], torch.from_numpy(layers["rpn_class_raw"]["bias"]))


@pytest.mark.parametrize("text", [bytes, str])
def test_by_name_with_shuffled_order_and_weightless_layers(tmp_path, text):
    a, b = tiny(0), tiny(1)
    layers = state_dict_to_h5_layers(a)
    write_keras(tmp_path / "plain.h5", layers)
    with h5py.File(tmp_path / "plain.h5") as f:
        groups = [n.decode() for n in f.attrs["layer_names"]]
        assert f["conv1"].attrs["weight_names"].dtype.kind == "S"
    random.Random(0).shuffle(groups)
    names = ["input_image", "anchors", *groups[:5], "mrcnn_bbox", "rpn_class_loss", *groups[5:], "mrcnn_mask_loss"]
    write_keras(tmp_path / "shuffled.h5", layers, layer_names=names, text=text)
    read = read_h5_layers(tmp_path / "shuffled.h5")
    assert "mrcnn_bbox" not in read and "anchors" not in read and len(read) == len(layers)
    state, report = h5_to_state_dict(read, b)
    b.load_state_dict(state, strict=False)
    assert_same_state(a, b)
    assert not report.unused


def test_model_weights_nesting(tmp_path):
    a, b = tiny(0), tiny(1)
    write_keras(tmp_path / "full.h5", state_dict_to_h5_layers(a), nest=True)
    state, _ = h5_to_state_dict(read_h5_layers(tmp_path / "full.h5"), b)
    b.load_state_dict(state, strict=False)
    assert_same_state(a, b)


def test_describe(tmp_path):
    d50 = describe_h5(write_h5(tiny(res4_blocks=6), tmp_path / "a.h5"))
    assert (d50.backbone, d50.res4_blocks, d50.num_classes) == ("resnet50", 6, C)
    d101 = describe_h5(write_h5(tiny(res4_blocks=23, num_classes=81), tmp_path / "b.h5"))
    assert (d101.backbone, d101.res4_blocks, d101.num_classes) == ("resnet101", 23, 81)
    assert d101.tensors == sum(len(w) for w in state_dict_to_h5_layers(tiny(res4_blocks=23)).values())


# ---------------------------------------------------------------------- exclusion, reports
def test_exclude_matterport_names_leaves_the_class_layers(tmp_path):
    a, b = tiny(0), tiny(1, num_classes=5)
    before = {k: v.clone() for k, v in b.state_dict().items()}
    layers = read_h5_layers(write_h5(a, tmp_path / "w.h5"))
    state, report = h5_to_state_dict(layers, b, exclude=list(CLASS_LAYERS))  # mrcnn_bbox: weightless, accepted
    b.load_state_dict(state, strict=False)
    assert sorted(report.skipped) == ["mrcnn_bbox_fc", "mrcnn_class_logits", "mrcnn_mask"]
    assert not report.missing
    own = b.state_dict()
    assert torch.equal(own["roi_heads.box_predictor.mrcnn_class_logits.weight"],
                       before["roi_heads.box_predictor.mrcnn_class_logits.weight"])
    assert torch.equal(own["roi_heads.mask_head.mrcnn_mask_deconv.weight"],
                       a.state_dict()["roi_heads.mask_head.mrcnn_mask_deconv.weight"])
    same, _ = h5_to_state_dict(layers, tiny(2, num_classes=5), exclude="class_specific")
    assert same.keys() == state.keys()


def test_exclude_by_key_prefix(tmp_path):
    layers = read_h5_layers(write_h5(tiny(0), tmp_path / "w.h5"))
    state, report = h5_to_state_dict(layers, tiny(1), exclude=["roi_heads.mask_"])
    assert not any(k.startswith("roi_heads.mask_") for k in state)
    assert {"mrcnn_mask", "mrcnn_mask_conv1", "mrcnn_mask_deconv"} <= set(report.skipped) and not report.missing


def test_unused_layers_are_reported(tmp_path):
    layers = state_dict_to_h5_layers(tiny(0))
    layers["mrcnn_extra_fc"] = {"kernel": np.zeros((2, 2), np.float32), "bias": np.zeros(2, np.float32)}
    layers["fc1000"] = {"kernel": np.zeros((4, 10), np.float32)}
    write_keras(tmp_path / "x.h5", layers)
    report = W.load_weights(tiny(1), tmp_path / "x.h5")
    assert report.format == "matterport_h5" and not report.missing
    assert any("2 layers of the file have no place in the model" in n and "mrcnn_extra_fc, fc1000" in n
               for n in report.notes)


def test_missing_layers_refused_unless_not_strict(tmp_path):
    layers = state_dict_to_h5_layers(tiny(0))
    del layers["fpn_p5"]
    write_keras(tmp_path / "m.h5", layers)
    read = read_h5_layers(tmp_path / "m.h5")
    with pytest.raises(WeightsError, match=r"m\.h5: the file lacks 1 of the model's layers \(fpn_p5\)"):
        h5_to_state_dict(read, tiny(1), label=str(tmp_path / "m.h5"))
    _, report = h5_to_state_dict(read, tiny(1), strict=False)
    assert report.missing == ["backbone.fpn.fpn_p5.weight", "backbone.fpn.fpn_p5.bias"]


def test_backbone_only_file_loads_partially(tmp_path):
    layers = {k: v for k, v in state_dict_to_h5_layers(tiny(0)).items()
              if k.startswith(("conv1", "bn_conv1", "res", "bn"))}
    write_keras(tmp_path / "imagenet.h5", layers)
    report = W.load_weights(tiny(1), tmp_path / "imagenet.h5")
    assert "backbone.fpn.fpn_p5.weight" in report.missing and any("backbone only" in n for n in report.notes)


# ---------------------------------------------------------------------- bad input: one line each
def _one_line(info) -> str:
    text = str(info.value)
    assert "\n" not in text
    return text


def test_not_hdf5_and_truncated(tmp_path):
    (tmp_path / "text.h5").write_text("hello\n")
    with pytest.raises(WeightsError, match=r"text\.h5: not a readable HDF5 weights file") as info:
        read_h5_layers(tmp_path / "text.h5")
    _one_line(info)
    good = write_h5(tiny(0), tmp_path / "good.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(good[: len(good) // 2])
    with pytest.raises(WeightsError, match=r"cut\.h5: ") as info:
        W.load_weights(tiny(1), tmp_path / "cut.h5")
    _one_line(info)


def test_hdf5_without_keras_layer_names(tmp_path):
    with h5py.File(tmp_path / "data.h5", "w") as f:
        f.create_dataset("images", data=np.zeros(3))
    with pytest.raises(WeightsError, match=r"data\.h5: an HDF5 file but not Keras 2 weights .*images") as info:
        read_h5_layers(tmp_path / "data.h5")
    _one_line(info)


def test_another_keras_model(tmp_path):
    write_keras(tmp_path / "vgg.h5", {"block1_conv1": {"kernel": np.zeros((3, 3, 3, 8), np.float32)},
                                      "predictions": {"kernel": np.zeros((8, 10), np.float32)}})
    with pytest.raises(WeightsError, match=r"vgg\.h5: weights of another Keras model \(layers block1_conv1, "
                                           r"predictions, …\).*expected conv1, bn_conv1, res2a_branch2a") as info:
        W.load_weights(tiny(0), tmp_path / "vgg.h5")
    _one_line(info)


def test_depth_mismatch(tmp_path):
    path = write_h5(tiny(0, res4_blocks=23), tmp_path / "r101.h5")
    with pytest.raises(WeightsError, match=r"r101\.h5: the file is ResNet-101 \(23 res4 blocks\), the config says "
                                           r"resnet50$") as info:
        W.load_weights(tiny(1, res4_blocks=6, backbone="resnet50"), path)
    _one_line(info)


def test_num_classes_mismatch_names_the_layer_and_the_fix(tmp_path):
    path = write_h5(tiny(0, num_classes=81), tmp_path / "coco.h5")
    with pytest.raises(WeightsError) as info:
        W.load_weights(tiny(1, num_classes=C, backbone="resnet50"), path)
    text = _one_line(info)
    assert text.startswith(f"{path}: layer mrcnn_class_logits: the file's kernel has shape (16, 81), the model's "
                           f"(16, {C}): the file was trained for NUM_CLASSES=81, the config says {C}")
    assert "exclude=['mrcnn_class_logits', 'mrcnn_bbox_fc', 'mrcnn_bbox', 'mrcnn_mask']" in text
    assert "--exclude-class-layers" in text


def test_mask_head_of_another_size(tmp_path):
    path = write_h5(tiny(0, mask_channels=8), tmp_path / "mask.h5")
    with pytest.raises(WeightsError, match=r"mask\.h5: layer mrcnn_mask_conv1: the file's kernel has shape "
                                           r"\(3, 3, 4, 8\), the model's \(3, 3, 4, 4\) \(a mask head of another "
                                           r"size") as info:
        W.load_weights(tiny(1, mask_channels=4), path)
    _one_line(info)


def test_network_without_matterport_names(tmp_path):
    path = write_h5(tiny(0), tmp_path / "w.h5")
    other = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(WeightsError, match=r"w\.h5: matterport \.h5 weights need a network with matterport's "
                                           r"layers") as info:
        W.load_weights(other, path)
    _one_line(info)
    with pytest.raises(WeightsError, match="matterport's layers"):
        write_h5(other, tmp_path / "x.h5")


def test_read_checkpoint_still_names_hdf5(tmp_path):
    path = write_h5(tiny(0), tmp_path / "w.h5")
    with pytest.raises(WeightsError, match=r"w\.h5: not a PyTorch checkpoint but an HDF5 file"):
        W.read_checkpoint(path)


def test_nested_rpn_names_with_a_tensorflow_suffix(tmp_path):
    """A name scope used twice gives ``rpn_conv_shared_1/kernel:0`` inside ``rpn_model``: the layer is still found."""
    a = tiny(0)
    layers = state_dict_to_h5_layers(a)
    renamed = {(f"{k}_1" if k.startswith("rpn_") else k): v for k, v in layers.items()}
    write_keras(tmp_path / "s.h5", renamed)
    read = read_h5_layers(tmp_path / "s.h5")
    assert {"rpn_conv_shared", "rpn_class_raw", "rpn_bbox_pred"} <= set(read) and "rpn_class_raw_1" not in read
    description = describe_h5(tmp_path / "s.h5")
    assert description.keras_layers == description.layers - 2  # rpn_model: one Keras layer for three
