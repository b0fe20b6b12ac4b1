"""Weights: torchvision COCO / ImageNet state dicts, class-specific exclusion, refusals, content sniffing."""

from __future__ import annotations

import io
import pickle
import urllib.error

import pytest
import torch
import torchvision
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops import FrozenBatchNorm2d

from maskrcnn import weights as W
from maskrcnn.config import Config, TorchvisionConfig
from maskrcnn.errors import DownloadError, WeightsError
from maskrcnn.detector import MaskRCNN

SMALL = {"IMAGE_MIN_DIM": 128, "IMAGE_MAX_DIM": 128, "TOP_DOWN_PYRAMID_SIZE": 16, "FPN_CLASSIF_FC_LAYERS_SIZE": 32,
             "MASK_HEAD_CONV_CHANNELS": 16, "MASK_HEAD_NUM_CONVS": 1}


@pytest.fixture(scope="module")
def tv_file(tmp_path_factory):
    torch.manual_seed(1)
    tv = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    path = tmp_path_factory.mktemp("w") / "tv_maskrcnn.pth"
    torch.save(tv.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def tv_model():
    return MaskRCNN(TorchvisionConfig(), device="cpu")


def test_torchvision_maskrcnn_state_dict_loads(tv_file, tv_model):
    report = tv_model.load_weights(tv_file)
    state = torch.load(tv_file, weights_only=True)
    own = tv_model.network.state_dict()
    assert report.format == "torchvision_maskrcnn" and not report.skipped and not report.missing
    assert len(report.loaded) == len(own)
    assert torch.equal(own["backbone.fpn.inner_blocks.2.weight"], state["backbone.fpn.inner_blocks.2.0.weight"])
    assert torch.equal(own["rpn.head.conv.weight"], state["rpn.head.conv.0.0.weight"])
    assert torch.equal(own["roi_heads.mask_head.3.bias"], state["roi_heads.mask_head.3.0.bias"])
    assert torch.equal(own["backbone.body.layer4.2.bn3.running_var"], state["backbone.body.layer4.2.bn3.running_var"])
    assert "loaded 307 tensors" in str(report)


def test_old_torchvision_key_names_load(tv_file, tv_model, tmp_path):
    state = torch.load(tv_file, weights_only=True)
    old = {}
    for key, value in state.items():
        key = key.replace("inner_blocks.0.0.", "inner_blocks.0.").replace("rpn.head.conv.0.0.", "rpn.head.conv.")
        key = key.replace("roi_heads.mask_head.1.0.", "roi_heads.mask_head.mask_fcn2.")
        old[key] = value
    torch.save(old, tmp_path / "old.pth")
    report = W.load_weights(tv_model.network, tmp_path / "old.pth")
    assert not report.missing
    assert torch.equal(tv_model.network.state_dict()["roi_heads.mask_head.1.weight"], state["roi_heads.mask_head.1.0.weight"])


def test_num_classes_mismatch_needs_exclude(tv_file):
    model = MaskRCNN(TorchvisionConfig(NUM_CLASSES=2), device="cpu")
    with pytest.raises(WeightsError, match=r"NUM_CLASSES=91 .*NUM_CLASSES=2.*exclude='class_specific'") as info:
        model.load_weights(tv_file)
    assert str(tv_file) in str(info.value)
    before = model.network.state_dict()["roi_heads.box_predictor.cls_score.weight"].clone()
    report = model.load_weights(tv_file, exclude="class_specific")
    assert sorted(report.skipped) == sorted(f"{p}{k}" for p in W.CLASS_SPECIFIC for k in ("weight", "bias"))
    assert "skipped 6" in str(report) and not report.missing
    assert torch.equal(model.network.state_dict()["roi_heads.box_predictor.cls_score.weight"], before)
    report = model.load_weights(tv_file, exclude=["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"])
    assert len(report.skipped) == 6


def test_imagenet_resnet18_loads_into_body(tmp_path):
    torch.manual_seed(2)
    net = torchvision.models.resnet18()
    torch.save(net.state_dict(), tmp_path / "resnet18.pth")
    # matterport's normalization (no division) does not fit ImageNet weights: the report says so
    model = MaskRCNN(Config(NUM_CLASSES=2, BACKBONE="resnet18", PIXEL_STD=[1.0, 1.0, 1.0], **SMALL), device="cpu")
    report = model.load_weights(tmp_path / "resnet18.pth")
    assert report.format == "imagenet_resnet"
    assert all(k.startswith("backbone.body.") for k in report.loaded) and len(report.loaded) == 100
    assert torch.equal(model.network.backbone.body.layer3[1].conv2.weight, net.layer3[1].conv2.weight)
    assert torch.equal(model.network.backbone.body.bn1.running_mean, net.bn1.running_mean)
    assert "rpn.head.conv.weight" in report.missing and not any(k.startswith("fc") for k in report.loaded)
    assert any("PIXEL_STD" in note for note in report.notes)
    # a classification model of another depth is refused, naming the file and a mismatched key
    resnet50 = MaskRCNN(Config(NUM_CLASSES=2, BACKBONE="resnet50", **SMALL), device="cpu")
    with pytest.raises(WeightsError, match=r"resnet18\.pth.*differ in shape: backbone\.body\."):
        resnet50.load_weights(tmp_path / "resnet18.pth")


def test_resnet101_checkpoint_into_resnet50_refused(tmp_path, tv_model):
    torch.manual_seed(3)
    backbone = resnet_fpn_backbone(backbone_name="resnet101", weights=None)
    tv101 = torchvision.models.detection.MaskRCNN(backbone, num_classes=91)
    torch.save(tv101.state_dict(), tmp_path / "r101.pth")
    with pytest.raises(WeightsError, match=r"r101\.pth.*no place in the model: backbone\.body\.layer3\.6.*BACKBONE"):
        tv_model.load_weights(tmp_path / "r101.pth")


def test_unsafe_and_broken_files_refused(tmp_path, tv_model):
    class Evil:
        def __reduce__(self):
            return (print, ("this would run",))

    buffer = io.BytesIO()
    torch.save({"model": Evil()}, buffer)
    (tmp_path / "evil.pth").write_bytes(buffer.getvalue())
    with pytest.raises(WeightsError, match=r"evil\.pth: refused .*run code"):
        tv_model.load_weights(tmp_path / "evil.pth")
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(WeightsError, match=r"evil\.pkl: refused .*builtins\.print.*run code"):
        tv_model.load_weights(tmp_path / "evil.pkl")
    (tmp_path / "noise.pth").write_bytes(bytes(range(256)) * 40)
    with pytest.raises(WeightsError, match=r"noise\.pth: not a PyTorch checkpoint"):
        tv_model.load_weights(tmp_path / "noise.pth")
    with pytest.raises(WeightsError, match=r"missing\.pth: weights file not found"):
        tv_model.load_weights(tmp_path / "missing.pth")
    torch.save({"some": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match=r"other\.pth: not a Mask R-CNN or ResNet checkpoint"):
        tv_model.load_weights(tmp_path / "other.pth")
    torch.save({"backbone.body.conv1.weight": torch.zeros(1), "roi_heads.box_head.0.0.weight": torch.zeros(1)},
               tmp_path / "v2.pth")
    with pytest.raises(WeightsError, match=r"maskrcnn_resnet50_fpn_v2"):
        tv_model.load_weights(tmp_path / "v2.pth")


def test_named_weights_offline_and_cached(tmp_path, monkeypatch, tv_file, tv_model):
    from maskrcnn import download

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(url, dst):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(download, "download_url", offline)  # the one network call (maskrcnn.download)
    expected = tmp_path / "hub" / "checkpoints" / "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
    with pytest.raises(DownloadError, match="maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth") as info:
        tv_model.load_weights("coco")
    assert str(expected) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(DownloadError, match="resnet50-0676ba61.pth"):
        tv_model.load_weights("imagenet")
    expected.write_bytes(tv_file.read_bytes())
    report = tv_model.load_weights("coco")
    assert not report.missing and any("eps" in note for note in report.notes)
    assert all(m.eps == 0.0 for m in tv_model.network.modules() if isinstance(m, FrozenBatchNorm2d))
    assert tv_model.network.frozen_bn_eps == 0.0


@pytest.mark.parametrize("content, what", [
    (b"hello world\n", r"a text file \(it starts with 'hello world'\)"),
    ("id,name\n1,ballon\u00e9\n".encode(), r"a text file \(it starts with 'id,name'\)"),
    (b"", r"the weights file is empty"),
    (bytes([0x13, 0x37, 0, 1, 2, 3, 4, 5]) * 8, r"not a PyTorch checkpoint \(it starts with the bytes 13 37 00"),
    (b"\x89HDF\r\n\x1a\n" + bytes(64), r"an HDF5 file"),
    (b"PK\x03\x04" + bytes(64), r"a zip file that torch.load cannot read"),
    (b"\x80\x04garbage" + bytes(40), r"not a PyTorch checkpoint"),
])
def test_files_that_are_not_checkpoints_are_named_by_content(tmp_path, content, what):
    """Recognised by their first bytes (W.sniff), never by catching an error text: one line each."""
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=str(path).replace(".", r"\.") + ": .*" + what) as info:
        W.read_checkpoint(path)
    assert "\n" not in str(info.value)
    with pytest.raises(WeightsError, match="is a folder"):
        W.read_checkpoint(tmp_path)


def test_sniff_recognizes_torch_files(tmp_path):
    torch.save({"a": torch.zeros(1)}, tmp_path / "new.pth")
    torch.save({"a": torch.zeros(1)}, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    assert W.sniff(tmp_path / "new.pth") == "zip" and W.sniff(tmp_path / "old.pth") == "pickle"
    (tmp_path / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    assert W.sniff(tmp_path / "model.h5") == "hdf5"  # its own kind: a reader for it plugs into the weights rule
    assert torch.equal(W.read_checkpoint(tmp_path / "old.pth")["a"], torch.zeros(1))


def test_weights_do_not_import_the_model():
    """weights.py reaches the network through its state dict and a public property only."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(W))
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not any("model" in name or "backbone" in name for name in imported), imported
