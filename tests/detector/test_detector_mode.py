"""matterport's constructor line: ``MaskRCNN(mode=..., config=..., model_dir=...)``."""

import pytest

from maskrcnn import MaskRCNN, MatterportConfig
from maskrcnn.errors import ConfigError


class Tiny(MatterportConfig):
    NAME = "tiny"
    NUM_CLASSES = 2
    BACKBONE = "resnet50"


def test_matterport_constructor_line_runs_unchanged(tmp_path):
    model = MaskRCNN(mode="training", config=Tiny(), model_dir=str(tmp_path))
    assert model.mode == "training"
    with pytest.raises(ConfigError, match="mode='train'"):
        MaskRCNN(mode="train", config=Tiny(), model_dir=str(tmp_path))


def test_matterport_load_weights_line_runs_unchanged(tmp_path):
    from maskrcnn.matterport_h5_write import write_h5

    source = MaskRCNN(mode="inference", config=Tiny(), model_dir=str(tmp_path))
    path = tmp_path / "mask_rcnn_tiny.h5"
    write_h5(source.network, path)
    model = MaskRCNN(mode="training", config=Tiny(), model_dir=str(tmp_path))
    model.load_weights(str(path), by_name=True, exclude=["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox",
                                                         "mrcnn_mask"])
    ours, theirs = model.network.state_dict(), source.network.state_dict()
    key = "backbone.body.layer1.a.res2a_branch2a.weight"
    assert ours[key].equal(theirs[key])
    assert not ours["roi_heads.box_predictor.mrcnn_class_logits.weight"].equal(
        theirs["roi_heads.box_predictor.mrcnn_class_logits.weight"])
