"""matterport's constructor line: ``MaskRCNN(mode=..., config=..., model_dir=...)``."""

import pytest

from maskrcnn import MaskRCNN, MatterportConfig
from maskrcnn.errors import ConfigError


def test_matterport_constructor_line_runs_unchanged(tmp_path):
    class Tiny(MatterportConfig):
        NAME = "tiny"
        NUM_CLASSES = 2
        BACKBONE = "resnet50"

    model = MaskRCNN(mode="training", config=Tiny(), model_dir=str(tmp_path))
    assert model.mode == "training"
    with pytest.raises(ConfigError, match="mode='train'"):
        MaskRCNN(mode="train", config=Tiny(), model_dir=str(tmp_path))
