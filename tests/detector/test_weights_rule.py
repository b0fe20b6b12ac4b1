"""The one "which weights" rule: names, files recognised by content, what a checkpoint carries (its config,
class names and run), and one-line errors for files that are not weights in every command."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from maskrcnn import Config, MaskRCNN
from maskrcnn.cli import main
from maskrcnn.detector import resolve_weights
from maskrcnn.errors import WeightsError
from maskrcnn.weights import write_checkpoint

TINY = {"NAME": "rule", "NUM_CLASSES": 3, "BACKBONE": "resnet18", "BACKBONE_NORM": "gn", "IMAGE_MIN_DIM": 64,
        "IMAGE_MAX_DIM": 64, "TOP_DOWN_PYRAMID_SIZE": 16, "FPN_CLASSIF_FC_LAYERS_SIZE": 32,
        "MASK_HEAD_CONV_CHANNELS": 16, "MASK_HEAD_NUM_CONVS": 1}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MaskRCNN(Config(**TINY), class_names=["BG", "a", "b"], device="cpu")


def test_names(tmp_path, model):
    assert resolve_weights("none").kind == "none"
    assert resolve_weights("imagenet").kind == "imagenet"  # the file depends on the model's depth
    with pytest.raises(WeightsError, match="last: no run folder"):
        resolve_weights("last", model_dir=tmp_path, name="rule")
    with pytest.raises(WeightsError, match="last: the last checkpoint of which run"):
        resolve_weights("last", model_dir=tmp_path)
    report = model.load_weights("none")
    assert report.format == "none" and model.log_dir is None


def test_a_checkpoint_rebuilds_its_model_and_its_run(tmp_path, model):
    run = tmp_path / "logs" / "rule20260101T000000"
    path = write_checkpoint(run / "mask_rcnn_rule_0004.pth", model.network.state_dict(),
                            training={"epoch": 4, "global_step": 8, "seed": 1}, run_dir=str(run),
                            **model.checkpoint_fields())
    choice = resolve_weights(path)
    assert choice.is_ours and choice.config().to_dict() == model.config.to_dict()
    assert choice.class_names() == ["BG", "a", "b"]
    assert choice.run().run_dir == run and choice.run().epoch == 4
    rebuilt = MaskRCNN.from_weights(path, device="cpu", model_dir=tmp_path / "logs")
    assert (rebuilt.log_dir, rebuilt.epoch, rebuilt.class_names) == (run, 4, ["BG", "a", "b"])
    assert MaskRCNN.from_weights("last", config=Config(**TINY), model_dir=tmp_path / "logs").epoch == 4
    # taken out of its run folder, the same file is weights for a new run
    elsewhere = shutil.copy(path, tmp_path / "copy.pth")
    assert resolve_weights(elsewhere).run().run_dir is None
    assert MaskRCNN.from_weights(elsewhere, device="cpu").epoch == 0


def test_another_architecture_is_named_by_its_config_values(tmp_path, model):
    path = model.save(tmp_path / "r18.pth")
    other = MaskRCNN(Config(**{**TINY, "TOP_DOWN_PYRAMID_SIZE": 32}), device="cpu")
    with pytest.raises(WeightsError, match=r"r18\.pth: was trained with another configuration "
                                           r"\(TOP_DOWN_PYRAMID_SIZE=16 \(this model: 32\)\)"):
        other.load_weights(path)


def _not_weights(kind: str, tmp_path):
    if kind == "text":
        path = tmp_path / "notes.txt"
        path.write_text("these are my notes\n")
    elif kind == "random":
        path = tmp_path / "random.pth"
        path.write_bytes(bytes(np.random.default_rng(0).integers(1, 127, 300, dtype=np.uint8)) + b"\xff\xfe")
    elif kind == "folder":
        path = tmp_path / "folder.pth"
        path.mkdir()
    else:
        path = tmp_path / "empty.pth"
        path.write_bytes(b"")
    return path


@pytest.mark.parametrize("command", ["train", "evaluate", "detect", "splash", "inspect", "export"])
@pytest.mark.parametrize("kind", ["text", "random", "folder", "empty"])
def test_every_command_says_in_one_line_that_a_file_is_not_weights(tmp_path, capsys, command, kind):
    """Formerly ``IndexError: pop from empty list`` (a text file) and other tracebacks."""
    weights = _not_weights(kind, tmp_path)
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(image)
    argv = {
        "train": ["--dataset", "shapes:4:64", "--progress", "none"],
        "evaluate": ["--dataset", "shapes:2:64", "--no-progress"],
        "detect": [str(image), "--out", str(tmp_path / "out")],
        "splash": ["--image", str(image), "--out", str(tmp_path / "splash.png")],
        "inspect": ["--image", str(image), "--out", str(tmp_path / "report.html")],
        "export": ["--out", str(tmp_path / "model.onnx")],
    }[command]
    assert main([command, "--weights", str(weights), *argv]) == 1
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"maskrcnn {command}: error: --weights: {weights}: "), lines[0]
    assert "Traceback" not in captured.err and "IndexError" not in captured.err
    expected = {"text": "not a PyTorch checkpoint but a text file", "random": "not a PyTorch checkpoint",
                "folder": "is a folder", "empty": "is empty"}[kind]
    assert expected in lines[0]
