"""The weights rule with matterport's .h5: a file, ``matterport-coco``, the config and names built from it."""

from __future__ import annotations

import urllib.error

import pytest
import torch

if not hasattr(pytest.importorskip("maskrcnn.config"), "MatterportConfig"):
    pytest.skip("needs MatterportConfig (maskrcnn.config) and the matterport network", allow_module_level=True)

from maskrcnn import download
from maskrcnn.config import Config, MatterportConfig
from maskrcnn.detector import MaskRCNN, resolve_weights
from maskrcnn.detector.weights_rule import MATTERPORT_COCO_URL, coco_class_names
from maskrcnn.errors import DownloadError, WeightsError
from maskrcnn.matterport_h5_write import write_h5

SMALL = {"BACKBONE": "resnet50", "TOP_DOWN_PYRAMID_SIZE": 16, "FPN_CLASSIF_FC_LAYERS_SIZE": 32, "POOL_SIZE": 5}


@pytest.fixture(scope="module")
def coco_like(tmp_path_factory):
    """An 81-class matterport .h5 of a small network, saved under matterport's release file name."""
    torch.manual_seed(0)
    model = MaskRCNN(MatterportConfig(NUM_CLASSES=81, **SMALL), device="cpu")
    path = write_h5(model.network, tmp_path_factory.mktemp("cache") / "mask_rcnn_coco.h5")
    return path, {k: v.clone() for k, v in model.network.state_dict().items()}


def test_an_h5_file_builds_its_own_model(coco_like, tmp_path):
    path, state = coco_like
    renamed = tmp_path / "mine.h5"
    renamed.write_bytes(path.read_bytes())
    choice = resolve_weights(renamed)
    assert choice.format == "matterport_h5" and choice.kind == "file" and choice.run().run_dir is None
    config = choice.config()
    assert type(config) is MatterportConfig and config.ARCHITECTURE == "matterport"
    assert (config.BACKBONE, config.NUM_CLASSES, config.TOP_DOWN_PYRAMID_SIZE, config.FPN_CLASSIF_FC_LAYERS_SIZE,
            config.POOL_SIZE) == ("resnet50", 81, 16, 32, 5)
    assert choice.class_names() is None  # another file name: the file holds no names
    model = MaskRCNN.from_weights(renamed, device="cpu")
    assert model.class_names[:3] == ["BG", "class_1", "class_2"] and len(model.class_names) == 81
    own = model.network.state_dict()
    assert all(torch.equal(own[k], state[k]) for k in state)


def test_matterport_coco_offline_names_the_url_and_the_place(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKRCNN_CACHE", str(tmp_path / "cache"))

    def offline(url, dest):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(download, "download_url", offline)
    with pytest.raises(DownloadError) as info:
        resolve_weights("matterport-coco")
    text = str(info.value)
    assert MATTERPORT_COCO_URL in text and str(tmp_path / "cache" / "mask_rcnn_coco.h5") in text and "\n" not in text


def test_matterport_coco_cached_has_coco_names(coco_like, tmp_path, monkeypatch):
    path, _ = coco_like
    monkeypatch.setenv("MASKRCNN_CACHE", str(path.parent))
    monkeypatch.setattr(download, "download_url", lambda url, dest: pytest.fail("downloaded a cached file"))
    model = MaskRCNN.from_weights("matterport-coco", device="cpu")
    assert model.class_names == coco_class_names() and len(model.class_names) == 81
    assert model.class_names[1] == "person" and model.class_names[-1] == "toothbrush" and model.config.NAME == "coco"


def test_fine_tuning_excludes_the_class_layers(coco_like):
    path, state = coco_like
    torch.manual_seed(1)
    model = MaskRCNN(MatterportConfig(NUM_CLASSES=2, **SMALL), device="cpu")
    with pytest.raises(WeightsError, match=r"layer mrcnn_class_logits: .*NUM_CLASSES=81, the config says 2.*"
                                           r"--exclude-class-layers"):
        model.load_weights(path)
    report = model.load_weights(path, exclude=["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"])
    assert sorted(report.skipped) == ["mrcnn_bbox_fc (layer)", "mrcnn_class_logits (layer)", "mrcnn_mask (layer)"]
    assert not report.missing
    own = model.network.state_dict()
    assert torch.equal(own["backbone.body.conv1.weight"], state["backbone.body.conv1.weight"])
    assert model.class_names == ["BG", "class1"]  # excluded heads: the model's own names stay


def test_torchvision_architecture_refuses_h5(coco_like):
    path, _ = coco_like
    model = MaskRCNN(Config(BACKBONE="resnet50", NUM_CLASSES=81, IMAGE_MIN_DIM=128, IMAGE_MAX_DIM=128), device="cpu")
    with pytest.raises(WeightsError, match=r"mask_rcnn_coco\.h5: matterport \.h5 weights need a network with "
                                           r"matterport's layers .*ARCHITECTURE='torchvision'"):
        model.load_weights(path)


def test_our_checkpoint_of_a_matterport_model_excludes_class_layers(coco_like, tmp_path):
    path, state = coco_like
    source = MaskRCNN.from_weights(path, device="cpu")
    source.save(tmp_path / "coco81.pth")
    model = MaskRCNN(MatterportConfig(NUM_CLASSES=2, **SMALL), device="cpu")
    with pytest.raises(WeightsError, match=r"trained for NUM_CLASSES=81 but the model has NUM_CLASSES=2; its "
                                           r"class-specific layers \(mrcnn_bbox_fc, mrcnn_class_logits, mrcnn_mask\)"):
        model.load_weights(tmp_path / "coco81.pth")
    report = model.load_weights(tmp_path / "coco81.pth", exclude="class_specific")
    assert len(report.skipped) == 6 and all(".mrcnn_" in k for k in report.skipped) and not report.missing
    assert torch.equal(model.network.state_dict()["backbone.fpn.fpn_p2.weight"], state["backbone.fpn.fpn_p2.weight"])
