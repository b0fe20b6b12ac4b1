"""Command-line plumbing of `maskrcnn train`: --set parsing, the config, datasets and their split, weights."""

from __future__ import annotations

import warnings

import pytest
import torch
from training_standin import StandInModel, StandInSamples, collate

from maskrcnn.errors import ConfigError, DatasetError, WeightsError
from maskrcnn.model.amp import autocast_context
from maskrcnn.training.api import fit
from maskrcnn.training.checkpoint import training_state
from maskrcnn.training.options import TrainOptions
from maskrcnn.training.setup import (
    build_config,
    load_train_val,
    parse_set_values,
    split_ids,
)


def test_set_values_are_yaml():
    values = parse_set_values(["IMAGES_PER_GPU=4", "RPN_ANCHOR_SCALES=[8, 16, 32]", "NAME=balloon",
                               "GRADIENT_CLIP_NORM=null", "TRAIN_BN=true", "LEARNING_RATE=1e-3"])
    assert values == {"IMAGES_PER_GPU": 4, "RPN_ANCHOR_SCALES": [8, 16, 32], "NAME": "balloon",
                      "GRADIENT_CLIP_NORM": None, "TRAIN_BN": True, "LEARNING_RATE": 0.001}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_set_values(["IMAGES_PER_GPU"])
    with pytest.raises(ConfigError, match="YAML"):
        parse_set_values(["X=[1, 2"])


def test_build_config_layers_file_set_and_dataset(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("NAME: shapes\nIMAGES_PER_GPU: 3\nLR_SCHEDULE: cosine\nRPN_ANCHOR_SCALES: [8, 16, 32, 64, 128]\n")
    config, training = build_config(config_file=path, sets=["IMAGES_PER_GPU=5", "OPTIMIZER=adamw"], num_classes=4)
    assert (config.NAME, config.IMAGES_PER_GPU, config.NUM_CLASSES) == ("shapes", 5, 4)
    assert config.RPN_ANCHOR_SCALES == (8, 16, 32, 64, 128)  # tuple attribute stays a tuple
    # training attributes are Config attributes: they travel in the config (and its checkpoints)
    assert (config.LR_SCHEDULE, config.OPTIMIZER) == ("cosine", "adamw")
    assert training == {}
    opts = TrainOptions.from_config(config, attributes=training)
    assert (opts.schedule, opts.optimizer, opts.images_per_gpu) == ("cosine", "adamw", 5)
    with pytest.raises(ConfigError, match="NUM_CLASSES=3 .* dataset has 1 class"):
        build_config(sets=["NUM_CLASSES=3"], num_classes=2)
    with pytest.raises(ConfigError, match="IMAGES_PER_GPUS"):
        build_config(sets=["IMAGES_PER_GPUS=2"], num_classes=2)


def test_split_ids_is_seeded_disjoint_and_complete():
    train, val = split_ids(range(10), 0.25, seed=3)
    assert len(val) == 3 and sorted(train + val) == list(range(10))
    assert (train, val) == split_ids(range(10), 0.25, seed=3)
    assert split_ids(range(10), 0.25, seed=4) != (train, val)
    with pytest.raises(ConfigError):
        split_ids(range(10), 1.0, seed=0)
    with pytest.raises(DatasetError):
        split_ids([0], 0.5, seed=0)


def test_train_and_val_folders_are_both_used(shared_data):
    data = load_train_val(shared_data / "balloon")
    assert (len(data.train.image_ids), len(data.val.image_ids)) == (61, 13)
    assert data.train_ids is None and list(data.val.class_names) == list(data.train.class_names)


def test_dataset_without_val_folder_is_split(shared_data):
    data = load_train_val(shared_data / "balloon" / "val", val_fraction=0.2, split_seed=1)
    assert data.val is data.train and (len(data.train_ids), len(data.val_ids)) == (10, 3)
    assert "split off" in data.describe()
    none = load_train_val(shared_data / "balloon" / "val", val_fraction=0)
    assert none.val is None


def test_shapes_spec_gives_train_and_val():
    data = load_train_val("shapes:5:64", format="shapes")
    assert len(data.train.image_ids) == 5 and len(data.val.image_ids) == 5
    assert (data.train.load_image(0) != data.val.load_image(0)).any()


def test_weights_from_another_class_count_need_exclusion(tmp_path):
    from maskrcnn.config import Config
    from maskrcnn.detector import MaskRCNN

    tiny = {"BACKBONE": "resnet18", "BACKBONE_NORM": "gn", "TOP_DOWN_PYRAMID_SIZE": 16, "MASK_HEAD_CONV_CHANNELS": 8,
                "MASK_HEAD_NUM_CONVS": 1, "FPN_CLASSIF_FC_LAYERS_SIZE": 16}
    source = MaskRCNN(Config(NUM_CLASSES=4, **tiny), device="cpu")
    source.save(tmp_path / "four.pth")
    target = MaskRCNN(Config(NUM_CLASSES=2, **tiny), device="cpu")
    with pytest.raises(WeightsError, match=r"NUM_CLASSES=4 .*NUM_CLASSES=2.*exclude='class_specific'"):
        target.load_weights(tmp_path / "four.pth")
    report = target.load_weights(tmp_path / "four.pth", exclude="class_specific")
    assert len(report.skipped) == 6 and not report.missing
    assert torch.equal(target.network.backbone.body.conv1.weight, source.network.backbone.body.conv1.weight)
    assert target.load_weights("none").format == "none"  # the CLI's messages: tests/training/test_training_transfer.py


def test_amp_is_cuda_only(tmp_path, one_thread):
    assert autocast_context("bf16", torch.device("cpu")).__class__.__name__ == "nullcontext"
    opts = TrainOptions(learning_rate=0.01, steps_per_epoch=1, validation_steps=0, images_per_gpu=2, seed=0,
                        eval_every=0, amp="fp16")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(StandInModel(), StandInSamples(4), collate, epochs=1, options=opts, logs_dir=tmp_path,
                     device="cpu", progress="none", tensorboard=False)
    assert any("AMP='fp16' needs CUDA" in str(w.message) for w in caught)
    assert result.epoch == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_training_on_cuda(tmp_path, amp):
    opts = TrainOptions(learning_rate=0.05, steps_per_epoch=4, validation_steps=1, images_per_gpu=2, seed=0,
                        eval_every=0, amp=amp)
    model = StandInModel()
    result = fit(model, StandInSamples(8), collate, epochs=2, options=opts, val_samples=StandInSamples(4, seed=1),
                 logs_dir=tmp_path, device="cuda", progress="none", tensorboard=False)
    assert result.global_step == 8 and next(model.parameters()).device.type == "cuda"
    first, last = result.history[0]["train"]["loss"], result.history[-1]["train"]["loss"]
    assert last < first
    state = training_state(torch.load(result.last_checkpoint, weights_only=True))
    assert bool(state["scaler"]) == (amp == "fp16")  # a GradScaler only for fp16


def test_more_ranks_than_gpus_is_a_clear_error(monkeypatch):
    from maskrcnn.errors import MaskRCNNError
    from maskrcnn.training.distributed import init_distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(MaskRCNNError, match=r"cuda:1 does not exist \(this machine has 1 CUDA device"):
        init_distributed("cuda")
