"""ONNX export of a matterport-architecture model: one clear error, not a traceback from deep inside."""

import pytest

from maskrcnn import MaskRCNN, MatterportConfig
from maskrcnn.apps.export_onnx import export_onnx
from maskrcnn.errors import MaskRCNNError


def test_export_refuses_the_matterport_architecture_clearly(tmp_path):
    class Tiny(MatterportConfig):
        NAME = "tiny"
        NUM_CLASSES = 2
        BACKBONE = "resnet50"
        IMAGE_MIN_DIM = 64
        IMAGE_MAX_DIM = 64

    model = MaskRCNN(mode="inference", config=Tiny(), model_dir=str(tmp_path))
    with pytest.raises(MaskRCNNError, match="ARCHITECTURE='matterport'.*maskrcnn detect"):
        export_onnx(model, tmp_path / "model.onnx")

