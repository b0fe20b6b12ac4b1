"""A Config attribute of the wrong type is a one-line ConfigError naming it and the expected type.

Before: ``--set IMAGE_MAX_DIM=abc`` crashed in ``validate`` (``TypeError: not all arguments converted
during string formatting``), ``NUM_CLASSES="two"`` in the constructor.
"""

from __future__ import annotations

import pytest

from maskrcnn.cli import main
from maskrcnn.config import Config
from maskrcnn.errors import ConfigError
from maskrcnn.training.setup import build_config, parse_set_values


@pytest.mark.parametrize("key, value, expected", [
    ("IMAGE_MAX_DIM", "abc", "an integer"),
    ("NUM_CLASSES", "two", "an integer"),
    ("IMAGES_PER_GPU", 2.5, "an integer"),
    ("IMAGES_PER_GPU", True, "an integer"),
    ("LEARNING_RATE", "fast", "a number"),
    ("DETECTION_MIN_CONFIDENCE", [0.5], "a number"),
    ("TRAIN_BN", "yes", "true or false"),
    ("BACKBONE", 50, "a string"),
    ("RPN_ANCHOR_SCALES", 32, "a list of numbers"),
    ("MEAN_PIXEL", ["a", "b", "c"], "a list of numbers"),
    ("LOSS_WEIGHTS", [1, 2], "a mapping"),
    ("LOSS_WEIGHTS", {"rpn_class_loss": "high"}, "a mapping"),
    ("GRADIENT_CLIP_NORM", "off", "a number or None"),
    ("SEED", 1.5, "an integer or None"),
])
def test_wrong_type_is_a_config_error_naming_the_attribute(key, value, expected):
    with pytest.raises(ConfigError) as info:
        Config(**{"NAME": "t", "NUM_CLASSES": 2, key: value})
    message = str(info.value)
    assert f"{key}={value!r}" in message and f"expected {expected}" in message
    assert "\n" not in message


def test_wrong_type_set_after_construction_is_caught_by_validate():
    config = Config(NAME="t", NUM_CLASSES=2)
    config.IMAGE_MAX_DIM = "abc"
    with pytest.raises(ConfigError, match=r"IMAGE_MAX_DIM='abc': expected an integer"):
        config.validate()


@pytest.mark.parametrize("key, value", [
    ("IMAGE_MIN_SCALE", 0.5), ("IMAGE_MIN_SCALE", 2), ("GRADIENT_CLIP_NORM", None), ("LEARNING_RATE", 1),
    ("RPN_ANCHOR_SCALES", [8, 16, 32, 64, 128]), ("MINI_MASK_SHAPE", [28, 28]), ("AMP", None), ("SEED", 3),
    ("LR_STEPS", [10, 20]), ("DETECTION_MIN_CONFIDENCE", 0),
])
def test_right_types_pass(key, value):
    Config(NAME="t", NUM_CLASSES=2, **{key: value}).validate()


def test_subclass_attribute_types_are_checked_too():
    class Mine(Config):
        NAME = "mine"
        NUM_CLASSES = 2
        IMAGES_PER_GPU = "four"

    with pytest.raises(ConfigError, match=r"IMAGES_PER_GPU='four': expected an integer"):
        Mine()


def test_from_dict_names_its_source():
    with pytest.raises(ConfigError, match=r"^cfg\.yaml: IMAGE_MAX_DIM='abc': expected an integer"):
        Config.from_dict({"NUM_CLASSES": 2, "IMAGE_MAX_DIM": "abc"}, source="cfg.yaml")


def test_parse_set_values_names_the_argument():
    with pytest.raises(ConfigError) as info:
        parse_set_values(["IMAGES_PER_GPU=2", "IMAGE_MAX_DIM=abc"])
    assert str(info.value) == ("--set IMAGE_MAX_DIM=abc: IMAGE_MAX_DIM='abc': expected an integer "
                               "(the default is 1024)")
    with pytest.raises(ConfigError, match=r"^--set TRAIN_BN=maybe: TRAIN_BN='maybe': expected true or false"):
        build_config(sets=["TRAIN_BN=maybe"], num_classes=2)
    assert parse_set_values(["IMAGE_MAX_DIM=512", "UNKNOWN_KEY=x"]) == {"IMAGE_MAX_DIM": 512, "UNKNOWN_KEY": "x"}


def test_train_cli_set_of_wrong_type_is_one_line(capsys):
    assert main(["train", "--dataset", "shapes:4:64", "--set", "IMAGE_MAX_DIM=abc", "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert err == ("maskrcnn train: error: --set IMAGE_MAX_DIM=abc: IMAGE_MAX_DIM='abc': expected an integer "
                   "(the default is 1024)\n")


def test_show_dataset_cli_config_file_of_wrong_type_is_one_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("IMAGE_MAX_DIM: abc\n")
    assert main(["show-dataset", "shapes:4:64", "--out", str(tmp_path / "out"), "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert err == (f"maskrcnn show-dataset: error: {path}: IMAGE_MAX_DIM='abc': expected an integer "
                   f"(the default is 1024)\n")
