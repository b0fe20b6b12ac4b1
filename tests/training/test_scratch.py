"""Training from random weights: GroupNorm and all layers are chosen (one line), what cannot train is refused."""

from __future__ import annotations

import pytest

from maskrcnn.config import Config
from maskrcnn.errors import ConfigError
from maskrcnn.training.scratch import check_trainable, scratch_plan, untrained_frozen_norms

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ["BACKBONE=resnet18", "IMAGE_MIN_DIM=64", "IMAGE_MAX_DIM=64", "RPN_ANCHOR_SCALES=[8, 16, 32, 64, 128]",
         "TOP_DOWN_PYRAMID_SIZE=16", "MASK_HEAD_CONV_CHANNELS=16", "MASK_HEAD_NUM_CONVS=1",
         "FPN_CLASSIF_FC_LAYERS_SIZE=32", "TRAIN_ROIS_PER_IMAGE=16", "PRE_NMS_LIMIT=300", "POST_NMS_ROIS_TRAINING=32",
         "POST_NMS_ROIS_INFERENCE=16", "MINI_MASK_SHAPE=[14, 14]", "IMAGES_PER_GPU=2", "STEPS_PER_EPOCH=2",
         "VALIDATION_STEPS=1", "EVAL_EVERY=0"]


def test_the_default_config_gets_groupnorm_and_all_layers_in_one_line():
    plan = scratch_plan(Config(), layers=None)
    assert plan.values == {"BACKBONE_NORM": "gn"} and plan.layers == "all"
    assert plan.message == ("training from scratch (--weights none): BACKBONE_NORM=gn (frozen BatchNorm needs "
                            "pretrained statistics), --layers all (a random backbone must learn too); resnet101 is "
                            "slow to train from scratch, --preset cpu is a small model")
    assert scratch_plan(Config(BACKBONE="resnet18", BACKBONE_NORM="gn"), layers="all").message == ""
    assert scratch_plan(Config(TRAIN_BN=True), layers="all").values == {}  # trainable BatchNorm is kept


@pytest.mark.parametrize("values, layers, message", [
    ({"BACKBONE_NORM": "frozen_bn"}, None, "--weights none with BACKBONE_NORM=frozen_bn cannot train: frozen "
                                           "BatchNorm needs the statistics of pretrained weights; use --set "
                                           "BACKBONE_NORM=gn (or --preset cpu), or pretrained --weights"),
    ({"BACKBONE_NORM": "gn"}, "heads", "--layers heads with --weights none cannot train: it freezes a randomly "
                                      "initialized backbone; use --layers all"),
    ({}, "4+", "--layers 4+ with --weights none cannot train"),
])
def test_what_cannot_train_is_refused_with_the_fix(values, layers, message):
    with pytest.raises(ConfigError, match="^" + message.replace("+", r"\+").replace("(", r"\(").replace(")", r"\)")):
        scratch_plan(Config(**values), layers=layers)


def test_cli_weights_none_trains_with_groupnorm_and_says_so(tmp_path, capsys):
    from maskrcnn.cli import main

    logs = tmp_path / "logs"
    assert main(["train", "--dataset", "shapes:4:64", "--weights", "none", "--epochs", "1", "--set", *SMALL,
                 "--logs", str(logs), "--name", "s", "--progress", "plain", "--device", "cpu", "--seed", "1"]) == 0
    out = capsys.readouterr()
    lines = [line for line in out.out.splitlines() if line.startswith("weights:")]
    assert lines == ["weights: none — training from scratch (--weights none): BACKBONE_NORM=gn (frozen BatchNorm "
                     "needs pretrained statistics), --layers all (a random backbone must learn too)"]
    import yaml

    (config_file,) = logs.glob("s*/config.yaml")
    assert yaml.safe_load(config_file.read_text())["BACKBONE_NORM"] == "gn"
    first = next(line for line in out.err.splitlines() if line.startswith("epoch 1/1 step 1/2"))
    loss = float(first.split(" loss=")[1].split()[0])
    assert loss < 50  # frozen BatchNorm of random weights started in the thousands


def test_cli_weights_none_with_heads_is_refused(tmp_path, capsys):
    from maskrcnn.cli import main

    assert main(["train", "--dataset", "shapes:4:64", "--weights", "none", "--layers", "heads", "--set", *SMALL,
                 "--logs", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "--layers heads with --weights none cannot train" in err and "\n" not in err


def test_python_api_refuses_frozen_batchnorm_of_random_weights(tmp_path):
    from maskrcnn.data.formats.shapes import ShapesDataset
    from maskrcnn.detector import MaskRCNN
    from maskrcnn.training.setup import build_config

    config, _ = build_config(sets=[*SMALL, "BACKBONE_NORM=frozen_bn"], num_classes=4, name="frozen")
    model = MaskRCNN(config, device="cpu", model_dir=tmp_path)
    assert len(untrained_frozen_norms(model.network)) > 10
    with pytest.raises(ConfigError, match=r"^cannot train: \d+ frozen BatchNorm layers .* hold no statistics"):
        model.train(ShapesDataset(4, 64, 64), None, epochs=1, layers="all", progress="none", tensorboard=False)
    assert not list(tmp_path.iterdir())  # refused before any run folder
    gn = MaskRCNN(config.copy(BACKBONE_NORM="gn"), device="cpu")
    check_trainable(gn.network)  # GroupNorm: nothing to refuse
