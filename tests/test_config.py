"""Config: matterport attributes and subclassing, derived values, dict/YAML, validation messages."""

from __future__ import annotations

import numpy as np
import pytest
import torchvision

from maskrcnn import Config, ConfigError, TorchvisionConfig


class BalloonConfig(Config):
    NAME = "balloon"
    NUM_CLASSES = 1 + 1
    IMAGES_PER_GPU = 2
    STEPS_PER_EPOCH = 100


def test_subclass_like_the_tutorial_and_matterport_defaults():
    config = BalloonConfig().validate()
    assert config.NAME == "balloon" and config.NUM_CLASSES == 2
    # matterport's defaults are kept where their meaning is ours
    assert config.BACKBONE == "resnet101"
    assert config.RPN_ANCHOR_SCALES == (32, 64, 128, 256, 512)
    assert config.RPN_ANCHOR_RATIOS == [0.5, 1, 2]
    assert config.TRAIN_ROIS_PER_IMAGE == 200 and config.ROI_POSITIVE_RATIO == 0.33
    assert config.DETECTION_MIN_CONFIDENCE == 0.7 and config.DETECTION_NMS_THRESHOLD == 0.3
    assert config.MASK_SHAPE == [28, 28] and config.MINI_MASK_SHAPE == (56, 56)
    assert set(config.LOSS_WEIGHTS) == {
        "rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss", "mrcnn_mask_loss"}


def test_derived_values():
    config = BalloonConfig(GPU_COUNT=3, IMAGES_PER_GPU=4)
    assert config.BATCH_SIZE == 12
    assert config.IMAGE_SHAPE.tolist() == [1024, 1024, 3]
    assert config.IMAGE_META_SIZE == 1 + 3 + 3 + 4 + 1 + 2
    crop = BalloonConfig(IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=512)
    assert crop.IMAGE_SHAPE.tolist() == [512, 512, 3]
    with pytest.raises(ConfigError, match="BATCH_SIZE is derived"):
        Config(BATCH_SIZE=3)


def test_instances_do_not_share_mutable_defaults():
    a, b = BalloonConfig(), BalloonConfig()
    a.LOSS_WEIGHTS["mrcnn_mask_loss"] = 5.0
    a.MEAN_PIXEL[0] = 0.0
    assert b.LOSS_WEIGHTS["mrcnn_mask_loss"] == 1.0 and b.MEAN_PIXEL[0] == 123.675
    assert Config.LOSS_WEIGHTS["mrcnn_mask_loss"] == 1.0


def test_unknown_keyword_names_the_nearest_attribute():
    with pytest.raises(ConfigError, match="unknown config attribute 'NUM_CLASS'; did you mean 'NUM_CLASSES'"):
        Config(NUM_CLASS=3)


def test_dict_and_yaml_round_trip(tmp_path):
    config = BalloonConfig(DETECTION_MIN_CONFIDENCE=0.9, RPN_ANCHOR_SCALES=(16, 32, 64, 128, 256))
    values = config.to_dict()
    assert values["RPN_ANCHOR_SCALES"] == [16, 32, 64, 128, 256]  # plain lists for YAML/JSON
    back = BalloonConfig.from_dict(values)
    assert back.to_dict() == values
    assert back.RPN_ANCHOR_SCALES == (16, 32, 64, 128, 256)  # tuples stay tuples
    path = tmp_path / "balloon.yaml"
    config.to_yaml(path)
    loaded = BalloonConfig.from_yaml(path)
    assert loaded.to_dict() == values and loaded.NAME == "balloon"
    assert "BATCH_SIZE" in config.to_dict(derived=True)
    # derived keys in a file are ignored, not refused
    assert BalloonConfig.from_dict({"BATCH_SIZE": 99, "IMAGES_PER_GPU": 1}).BATCH_SIZE == 1


def test_yaml_errors_name_the_file_and_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("NUM_CLASSES: 3\nDETECTION_MIN_CONFIDANCE: 0.5\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*did you mean 'DETECTION_MIN_CONFIDENCE'"):
        Config.from_yaml(bad)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: expected a mapping"):
        Config.from_yaml(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("NUM_CLASSES: [1, 2\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML"):
        Config.from_yaml(tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match=r"missing\.yaml: config file not found"):
        Config.from_yaml(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"NUM_CLASSES": 1}, r"NUM_CLASSES=1: it counts the background too.*NUM_CLASSES = 1 \+ 1"),
        ({"IMAGE_MAX_DIM": 1000}, r"IMAGE_MAX_DIM=1000: in 'square' mode it must be a multiple of 64.*try 1024"),
        ({"IMAGE_RESIZE_MODE": "crop", "IMAGE_MIN_DIM": 300}, r"IMAGE_MIN_DIM=300: in 'crop' mode.*try 320"),
        ({"IMAGE_RESIZE_MODE": "squash"}, r"IMAGE_RESIZE_MODE='squash': choose one of none, square"),
        ({"BACKBONE": "resnet152"}, r"BACKBONE='resnet152': choose one of resnet18, resnet34, resnet50, resnet101"),
        ({"RPN_ANCHOR_SCALES": (32, 64, 128)}, r"RPN_ANCHOR_SCALES has 3 values; give one per pyramid level \(5"),
        ({"MASK_SHAPE": [56, 56]}, r"MASK_SHAPE=\[56, 56\].*must be \[28, 28\]"),
        ({"LOSS_WEIGHTS": {"rpn_class": 1.0}}, r"unknown loss 'rpn_class' \(did you mean 'rpn_class_loss'\?\)"),
        ({"DETECTION_MIN_CONFIDENCE": 1.5}, r"DETECTION_MIN_CONFIDENCE=1.5: must be in \[0, 1\)"),
        ({"MEAN_PIXEL": [1, 2]}, r"MEAN_PIXEL has 2 values; give one per channel \(3\)"),
        ({"TRAIN_ROIS_PER_IMAGE": 0}, r"TRAIN_ROIS_PER_IMAGE=0: must be a positive integer"),
        ({"USE_RPN_ROIS": False}, r"USE_RPN_ROIS=False: training the heads on random ROIs.*not supported"),
    ],
)
def test_validation_says_what_is_wrong_and_what_would_be_right(overrides, message):
    with pytest.raises(ConfigError, match=message):
        BalloonConfig(**overrides).validate()


def test_validation_lists_every_problem_at_once():
    with pytest.raises(ConfigError) as info:
        Config(NUM_CLASSES=1, BACKBONE="vgg").validate()
    text = str(info.value)
    assert "NUM_CLASSES=1" in text and "BACKBONE='vgg'" in text and text.startswith("invalid configuration")


def test_display_lists_every_attribute(capsys):
    text = BalloonConfig().display()
    out = capsys.readouterr().out
    assert text in out
    for key in ("NAME", "NUM_CLASSES", "BATCH_SIZE", "IMAGE_SHAPE", "LOSS_WEIGHTS", "BACKBONE_STRIDES"):
        assert any(line.split()[0] == key for line in text.splitlines()[1:])


def test_backbone_norm_follows_train_bn():
    assert Config().backbone_norm == "frozen_bn"
    assert Config(TRAIN_BN=True).backbone_norm == "bn"
    assert Config(BACKBONE_NORM="gn").backbone_norm == "gn"
    assert Config(PRE_NMS_LIMIT=500).pre_nms_limit_inference == 500
    assert Config(PRE_NMS_LIMIT=500, PRE_NMS_LIMIT_INFERENCE=100).pre_nms_limit_inference == 100


def test_torchvision_preset_matches_torchvision_defaults():
    config = TorchvisionConfig().validate()
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    transform, rpn, heads = model.transform, model.rpn, model.roi_heads
    assert (config.IMAGE_MIN_DIM, config.IMAGE_MAX_DIM) == (transform.min_size[0], transform.max_size)
    assert np.allclose(np.array(config.MEAN_PIXEL) / 255, transform.image_mean)
    assert np.allclose(np.array(config.PIXEL_STD) / 255, transform.image_std)
    assert config.IMAGE_PAD_DIVISOR == transform.size_divisible
    sizes = [s[0] for s in rpn.anchor_generator.sizes]
    assert list(config.RPN_ANCHOR_SCALES) == sizes
    # torchvision's aspect ratios are height/width; ours are width/height, in the same anchor order
    assert [1 / r for r in config.RPN_ANCHOR_RATIOS] == list(rpn.anchor_generator.aspect_ratios[0])
    assert config.PRE_NMS_LIMIT == rpn._pre_nms_top_n["training"]
    assert config.PRE_NMS_LIMIT_INFERENCE == rpn._pre_nms_top_n["testing"]
    assert config.POST_NMS_ROIS_TRAINING == rpn._post_nms_top_n["training"]
    assert config.POST_NMS_ROIS_INFERENCE == rpn._post_nms_top_n["testing"]
    assert config.RPN_NMS_THRESHOLD == rpn.nms_thresh and config.RPN_NMS_PER_LEVEL
    assert config.RPN_TRAIN_ANCHORS_PER_IMAGE == rpn.fg_bg_sampler.batch_size_per_image
    assert [1 / s for s in config.RPN_BBOX_STD_DEV] == list(rpn.box_coder.weights)
    wx, wy, ww, wh = heads.box_coder.weights
    sy, sx, sh, sw = config.BBOX_STD_DEV
    assert (1 / sx, 1 / sy, 1 / sw, 1 / sh) == (wx, wy, ww, wh)
    assert config.TRAIN_ROIS_PER_IMAGE == heads.fg_bg_sampler.batch_size_per_image
    assert config.ROI_POSITIVE_RATIO == heads.fg_bg_sampler.positive_fraction
    assert config.DETECTION_MIN_CONFIDENCE == heads.score_thresh
    assert config.DETECTION_NMS_THRESHOLD == heads.nms_thresh
    assert config.DETECTION_MAX_INSTANCES == heads.detections_per_img
    pool = heads.box_roi_pool
    assert (config.POOL_SIZE, config.ROI_ALIGN_SAMPLING_RATIO) == (pool.output_size[0], pool.sampling_ratio)
    assert config.MASK_POOL_SIZE == heads.mask_roi_pool.output_size[0]
    assert config.NUM_CLASSES == heads.box_predictor.cls_score.out_features
