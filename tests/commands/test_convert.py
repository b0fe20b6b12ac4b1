"""``maskrcnn convert FILE.h5 --out FILE.pth``, and ``--class-names`` of the commands that load a model."""

from __future__ import annotations

import pytest
import torch

if not hasattr(pytest.importorskip("maskrcnn.config"), "MatterportConfig"):
    pytest.skip("needs MatterportConfig (maskrcnn.config) and the matterport network", allow_module_level=True)

from maskrcnn.cli import main
from maskrcnn.config import MatterportConfig
from maskrcnn.detector import MaskRCNN
from maskrcnn.matterport_h5_write import write_h5
from maskrcnn.weights import read_checkpoint

SMALL = {"BACKBONE": "resnet50", "NUM_CLASSES": 3, "TOP_DOWN_PYRAMID_SIZE": 16, "FPN_CLASSIF_FC_LAYERS_SIZE": 32}


@pytest.fixture(scope="module")
def h5_file(tmp_path_factory):
    """A matterport .h5 of a small MatterportConfig network (ResNet-50 is matterport's smallest backbone)."""
    torch.manual_seed(0)
    model = MaskRCNN(MatterportConfig(**SMALL), device="cpu")
    path = write_h5(model.network, tmp_path_factory.mktemp("h5") / "small.h5")
    return path, {k: v.clone() for k, v in model.network.state_dict().items()}


def test_convert_writes_our_checkpoint(h5_file, tmp_path, capsys):
    path, state = h5_file
    out = tmp_path / "small.pth"
    assert main(["convert", str(path), "--out", str(out), "--class-names", "cat,dog", "--set", "NAME=pets"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    checkpoint = read_checkpoint(out)
    assert checkpoint["config_class"] == "MatterportConfig" and checkpoint["class_names"] == ["BG", "cat", "dog"]
    assert checkpoint["config"]["NAME"] == "pets" and checkpoint["config"]["BACKBONE"] == "resnet50"
    model = MaskRCNN.from_weights(out, device="cpu")  # rebuilt from the checkpoint alone
    assert model.config.ARCHITECTURE == "matterport" and model.class_names == ["BG", "cat", "dog"]
    own = model.network.state_dict()
    assert own.keys() == state.keys() and all(torch.equal(own[k], state[k]) for k in state)


def test_convert_without_class_names_notes_the_placeholders(h5_file, tmp_path, capsys):
    path, _ = h5_file
    assert main(["convert", str(path), "--out", str(tmp_path / "x.pth")]) == 0
    text = capsys.readouterr().out
    assert "the file holds no class names; the 2 classes are named class_1 … class_2" in text
    assert read_checkpoint(tmp_path / "x.pth")["class_names"] == ["BG", "class_1", "class_2"]


def test_class_names_from_a_file_and_a_wrong_count(h5_file, tmp_path, capsys):
    path, _ = h5_file
    names = tmp_path / "names.txt"
    names.write_text("cat\n\ndog\n")
    assert main(["convert", str(path), "--out", str(tmp_path / "y.pth"), "--class-names", str(names)]) == 0
    assert read_checkpoint(tmp_path / "y.pth")["class_names"] == ["BG", "cat", "dog"]
    capsys.readouterr()
    assert main(["convert", str(path), "--out", str(tmp_path / "z.pth"), "--class-names", "a,b,c"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("maskrcnn convert: error: --class-names: 3 class names but the model has 2 classes "
                   "(NUM_CLASSES=3, the background included)")
    assert not (tmp_path / "z.pth").exists()


def test_convert_refuses_a_torch_checkpoint(h5_file, tmp_path, capsys):
    torch.save({"a": torch.zeros(1)}, tmp_path / "w.pth")
    assert main(["convert", str(tmp_path / "w.pth"), "--out", str(tmp_path / "o.pth")]) == 1
    err = capsys.readouterr().err
    assert "convert reads matterport's Keras .h5 weights" in err and err.count("\n") == 1


def test_load_model_class_names_and_note(h5_file):
    from maskrcnn.apps.detect import load_model

    path, _ = h5_file
    notes = []
    model = load_model(path, device="cpu", note=notes.append)
    assert model.class_names == ["BG", "class_1", "class_2"] and len(notes) == 1 and "--class-names" in notes[0]
    named = load_model(path, device="cpu", class_names=["BG", "cat", "dog"], note=notes.append)
    assert named.class_names == ["BG", "cat", "dog"] and len(notes) == 1


def test_detect_takes_class_names(h5_file, tmp_path, capsys):
    """The option reaches the model: a wrong count is refused before anything is detected."""
    path, _ = h5_file
    from PIL import Image

    (tmp_path / "img").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "img" / "a.png")
    assert main(["detect", "--weights", str(path), "--class-names", "a", str(tmp_path / "img"),
                 "--out", str(tmp_path / "out")]) == 1
    assert "--class-names: 1 class names but the model has 2 classes" in capsys.readouterr().err
