"""Presets: the one home of the CPU model; --preset on the command line; unknown names listed."""

from __future__ import annotations

import pytest
import yaml

from maskrcnn.config import Config
from maskrcnn.errors import ConfigError
from maskrcnn.presets import CPU_MODEL, PRESETS, SMALL_CPU_OVERRIDES, preset_config, preset_values
from maskrcnn.training.setup import build_config


def test_cpu_preset_values():
    values = preset_values("cpu")
    assert {k: values[k] for k in ("BACKBONE", "BACKBONE_NORM", "TOP_DOWN_PYRAMID_SIZE", "MASK_HEAD_CONV_CHANNELS",
                                   "MASK_HEAD_NUM_CONVS", "FPN_CLASSIF_FC_LAYERS_SIZE", "IMAGE_MIN_DIM",
                                   "IMAGE_MAX_DIM", "IMAGES_PER_GPU", "OPTIMIZER", "LR_SCHEDULE")} == {
        "BACKBONE": "resnet18", "BACKBONE_NORM": "gn", "TOP_DOWN_PYRAMID_SIZE": 64, "MASK_HEAD_CONV_CHANNELS": 64,
        "MASK_HEAD_NUM_CONVS": 2, "FPN_CLASSIF_FC_LAYERS_SIZE": 256, "IMAGE_MIN_DIM": 256, "IMAGE_MAX_DIM": 256,
        "IMAGES_PER_GPU": 4, "OPTIMIZER": "adamw", "LR_SCHEDULE": "cosine"}
    values["BACKBONE"] = "changed"
    assert PRESETS["cpu"]["BACKBONE"] == "resnet18"  # a copy
    config = preset_config("cpu")(NUM_CLASSES=2).validate()
    assert config.backbone_norm == "gn" and config.IMAGE_SHAPE.tolist() == [256, 256, 3]


def test_unknown_preset_is_one_line_listing_the_known():
    with pytest.raises(ConfigError) as info:
        preset_values("gpu")
    assert str(info.value) == "--preset gpu: unknown preset; known: cpu"


def test_demo_and_smoke_settings_derive_from_the_cpu_model():
    from maskrcnn.apps.demo import SMALL_CPU_OVERRIDES as from_demo
    from maskrcnn.apps.demo import ShapesDemoConfig

    assert from_demo is SMALL_CPU_OVERRIDES
    for key, value in CPU_MODEL.items():
        assert SMALL_CPU_OVERRIDES[key] == value == PRESETS["cpu"][key] == getattr(ShapesDemoConfig, key), key


def test_build_config_order_is_defaults_preset_file_set(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"IMAGE_MIN_DIM": 192, "IMAGE_MAX_DIM": 192}))
    config, training = build_config(config_file=path, sets=["IMAGES_PER_GPU=2"], num_classes=2,
                                    preset=preset_values("cpu"))
    assert (config.BACKBONE, config.IMAGE_MAX_DIM, config.IMAGES_PER_GPU) == ("resnet18", 192, 2)
    assert config.OPTIMIZER == "adamw" and training == {}
    assert build_config(num_classes=2)[0].BACKBONE == Config.BACKBONE


def test_train_cli_preset(tmp_path, capsys):
    from maskrcnn.cli import main

    logs = tmp_path / "logs"
    assert main(["train", "--dataset", "shapes:4:64", "--preset", "cpu", "--weights", "none", "--epochs", "1",
                 "--set", "IMAGE_MIN_DIM=64", "IMAGE_MAX_DIM=64", "IMAGES_PER_GPU=1", "STEPS_PER_EPOCH=1",
                 "RPN_ANCHOR_SCALES=[8, 16, 32, 64, 128]", "EVAL_EVERY=0", "--logs", str(logs), "--name", "p",
                 "--progress", "none", "--device", "cpu"]) == 0
    (config_file,) = logs.glob("p*/config.yaml")
    saved = yaml.safe_load(config_file.read_text())
    assert (saved["BACKBONE"], saved["BACKBONE_NORM"], saved["TOP_DOWN_PYRAMID_SIZE"], saved["OPTIMIZER"]) == (
        "resnet18", "gn", 64, "adamw")
    assert saved["IMAGE_MAX_DIM"] == 64  # --set wins over the preset
    assert "weights: none — training from scratch" in capsys.readouterr().out


def test_train_cli_unknown_preset(tmp_path, capsys):
    from maskrcnn.cli import main

    assert main(["train", "--dataset", "shapes:4:64", "--preset", "tiny", "--logs", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("--preset tiny: unknown preset; known: cpu") and "\n" not in err
