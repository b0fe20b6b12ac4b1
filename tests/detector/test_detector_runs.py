"""The detector's run: matterport's tutorial continues one run folder across ``model.train`` calls,
``load_weights("last")`` resumes it, and the run folder holds a readable ``config.yaml``."""

from __future__ import annotations

import pytest
import torch

from maskrcnn import Config, MaskRCNN
from maskrcnn.data import load_dataset
from maskrcnn.training.rundir import list_checkpoints


class ToyConfig(Config):
    """The README's BalloonConfig at toy size: shapes, ResNet-18, 64 px, two steps an epoch."""

    NAME = "toy"
    NUM_CLASSES = 1 + 3
    IMAGES_PER_GPU = 2
    STEPS_PER_EPOCH = 2
    VALIDATION_STEPS = 1
    EVAL_EVERY = 0
    BACKBONE = "resnet18"
    BACKBONE_NORM = "gn"
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    TOP_DOWN_PYRAMID_SIZE = 16
    MASK_HEAD_CONV_CHANNELS = 16
    MASK_HEAD_NUM_CONVS = 1
    FPN_CLASSIF_FC_LAYERS_SIZE = 32
    TRAIN_ROIS_PER_IMAGE = 16
    PRE_NMS_LIMIT = 300
    POST_NMS_ROIS_TRAINING = 32
    POST_NMS_ROIS_INFERENCE = 16
    MINI_MASK_SHAPE = (14, 14)


@pytest.fixture
def tutorial(tmp_path):
    """The README's Python tutorial, at toy size: two ``model.train`` calls in a row."""
    torch.set_num_threads(1)
    config = ToyConfig()
    dataset_train = load_dataset("shapes:8:64:0", subset="train")
    dataset_val = load_dataset("shapes:8:64:0", subset="val")
    model = MaskRCNN(config, class_names=dataset_train.class_names, device="cpu", model_dir=tmp_path / "logs")
    model.load_weights("none")
    first = model.train(dataset_train, dataset_val, learning_rate=config.LEARNING_RATE, epochs=1, layers="heads",
                        progress="none", tensorboard=False)
    second = model.train(dataset_train, dataset_val, learning_rate=config.LEARNING_RATE / 10, epochs=2,
                         layers="all", progress="none", tensorboard=False)
    return model, first, second, (dataset_train, dataset_val), tmp_path / "logs"


def test_two_train_calls_continue_one_run(tutorial):
    model, first, second, _, logs = tutorial
    runs = [p for p in logs.iterdir() if p.is_dir()]
    assert len(runs) == 1  # ONE run folder
    run = runs[0]
    assert first.run_dir == second.run_dir == run == model.log_dir
    assert [p.name for p in list_checkpoints(run)] == ["mask_rcnn_toy_0001.pth", "mask_rcnn_toy_0002.pth"]
    # the second call trained exactly one epoch (epoch 2), not two more
    assert [r["epoch"] for r in first.history] == [1] and [r["epoch"] for r in second.history] == [2]
    assert second.global_step - first.global_step == ToyConfig.STEPS_PER_EPOCH
    assert model.epoch == 2
    # the run folder says what it was trained with, readably
    assert Config.from_yaml(run / "config.yaml").to_dict() == model.config.to_dict()


def test_a_call_with_nothing_left_to_train_says_so(tutorial, capsys):
    model, _, second, (train, val), _ = tutorial
    again = model.train(train, val, epochs=2, layers="all", progress="none", tensorboard=False)
    assert "nothing to train" in again.message and "epochs=2" in again.message
    assert "nothing to train" in capsys.readouterr().err
    assert again.epoch == 2 and again.history == [] and again.run_dir == second.run_dir


def test_load_weights_last_resumes_the_run(tutorial):
    model, _, second, (train, val), logs = tutorial
    resumed = MaskRCNN(ToyConfig(), class_names=train.class_names, device="cpu", model_dir=logs)
    report = resumed.load_weights("last")
    assert report.format == "maskrcnn" and not report.missing
    assert resumed.log_dir == second.run_dir and resumed.epoch == 2
    for key, value in model.network.state_dict().items():
        assert torch.equal(resumed.network.state_dict()[key], value), key
    third = resumed.train(train, val, learning_rate=ToyConfig.LEARNING_RATE / 10, epochs=3, layers="all",
                          progress="none", tensorboard=False)
    assert "resuming" in third.message  # the same stage: optimizer and schedule state continue
    assert third.run_dir == second.run_dir and [r["epoch"] for r in third.history] == [3]
    assert [p.name for p in list_checkpoints(third.run_dir)][-1] == "mask_rcnn_toy_0003.pth"
    # other weights start a new run; excluding layers too
    resumed.load_weights(third.last_checkpoint, exclude="class_specific")
    assert resumed.log_dir is None and resumed.epoch == 0
