"""`maskrcnn train --weights last` resumes a run with the config stored in its checkpoint: no `--set` needed,
training values may change, values the network is built from may not (one line naming the key)."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch

from maskrcnn.cli import main
from maskrcnn.config import Config
from maskrcnn.model.build import NETWORK_ATTRIBUTES
from maskrcnn.training.rundir import list_checkpoints
from maskrcnn.weights import read_checkpoint, training_state

pytestmark = pytest.mark.usefixtures("one_thread")

# values that change the network (the bug report's BACKBONE and IMAGE_MIN_DIM among them) and a few training ones
ARCHITECTURE = [
    "BACKBONE=resnet18", "BACKBONE_NORM=gn", "IMAGE_MIN_DIM=64", "IMAGE_MAX_DIM=64",
    "RPN_ANCHOR_SCALES=[8, 16, 32, 64, 128]", "TOP_DOWN_PYRAMID_SIZE=16", "MASK_HEAD_CONV_CHANNELS=16",
    "MASK_HEAD_NUM_CONVS=1", "FPN_CLASSIF_FC_LAYERS_SIZE=32", "TRAIN_ROIS_PER_IMAGE=16", "PRE_NMS_LIMIT=300",
    "POST_NMS_ROIS_TRAINING=32", "POST_NMS_ROIS_INFERENCE=16",
]
TRAINING = ["MINI_MASK_SHAPE=[14, 14]", "IMAGES_PER_GPU=2", "STEPS_PER_EPOCH=2", "VALIDATION_STEPS=1", "EVAL_EVERY=0",
            "LR_SCHEDULE=cosine"]


def _train(logs, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["train", "--dataset", "shapes:6:64", "--logs", str(logs), "--progress", "none", "--device", "cpu",
                   "--seed", "3", *args])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    logs = tmp_path_factory.mktemp("resume") / "logs"
    rc, out, err = _train(logs, "--set", *ARCHITECTURE, *TRAINING, "--epochs", "1", "--layers", "all")
    assert rc == 0, out + err
    (run,) = [p for p in logs.iterdir() if p.is_dir()]
    return logs, run


def test_resume_without_set_continues_with_the_stored_config(first_run):
    logs, run = first_run
    rc, out, err = _train(logs, "--weights", "last", "--epochs", "2")  # no --set: the bug report's second command
    assert rc == 0, out + err
    assert f"weights: resuming last ({run / 'mask_rcnn_shapes_0001.pth'}): run {run.name} at epoch 1" in out
    assert [p.name for p in list_checkpoints(run)] == ["mask_rcnn_shapes_0001.pth", "mask_rcnn_shapes_0002.pth"]
    assert [p for p in logs.iterdir() if p.is_dir()] == [run]
    one, two = (read_checkpoint(p) for p in list_checkpoints(run))
    assert {k: two["config"][k] for k in NETWORK_ATTRIBUTES} == {k: one["config"][k] for k in NETWORK_ATTRIBUTES}
    assert two["config"]["BACKBONE"] == "resnet18" and two["config"]["IMAGE_MIN_DIM"] == 64
    assert training_state(two)["epoch"] == 2 and training_state(two)["stage"]["layers"] == "all"  # the run's layers
    assert two["class_names"] == ["BG", "square", "circle", "triangle"] and two["run_dir"] == str(run)
    assert Config.from_yaml(run / "config.yaml").BACKBONE == "resnet18"
    # training values may change on resume: a new stage (another learning rate) in the same run
    rc, out, err = _train(logs, "--weights", "last", "--epochs", "3", "--set", *ARCHITECTURE, "LEARNING_RATE=0.0005",
                          "STEPS_PER_EPOCH=1")
    assert rc == 0, out + err
    assert "new stage" in err and [p.name for p in list_checkpoints(run)][-1] == "mask_rcnn_shapes_0003.pth"
    three = read_checkpoint(list_checkpoints(run)[-1])
    assert three["config"]["LEARNING_RATE"] == 0.0005 and training_state(three)["global_step"] == 5


def test_resume_refuses_a_conflicting_architecture_value(first_run):
    logs, run = first_run
    before = sorted(p.name for p in run.iterdir())
    rc, out, err = _train(logs, "--weights", "last", "--epochs", "9", "--set", "BACKBONE=resnet50")
    assert rc == 1
    (line,) = err.strip().splitlines()
    assert "BACKBONE" in line and "resnet50" in line and "resnet18" in line and "Traceback" not in err
    rc, out, err = _train(logs, "--weights", "last", "--epochs", "9", "--set", "IMAGE_MIN_DIM=128")
    assert rc == 1 and "IMAGE_MIN_DIM" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in run.iterdir()) == before  # nothing trained, nothing written


def test_a_new_run_from_a_run_checkpoint(first_run, tmp_path):
    logs, run = first_run
    checkpoint = list_checkpoints(run)[0]
    rc, out, err = _train(tmp_path / "other", "--weights", str(checkpoint), "--new-run", "--epochs", "1",
                          "--set", "IMAGE_MIN_DIM=128", "IMAGE_MAX_DIM=128", "STEPS_PER_EPOCH=1")
    assert rc == 0, out + err
    (new_run,) = [p for p in (tmp_path / "other").iterdir() if p.is_dir()]
    saved = read_checkpoint(list_checkpoints(new_run)[0])
    assert saved["config"]["IMAGE_MIN_DIM"] == 128 and saved["config"]["BACKBONE"] == "resnet18"  # from the file
    assert [p.name for p in list_checkpoints(new_run)] == ["mask_rcnn_shapes_0001.pth"]  # epoch 1 of a new run
    assert training_state(saved)["global_step"] == 1
    first = read_checkpoint(checkpoint)["model"]["rpn.head.conv.weight"]
    assert not torch.equal(saved["model"]["rpn.head.conv.weight"], first)  # trained on from the file's weights
