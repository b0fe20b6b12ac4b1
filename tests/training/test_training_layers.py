"""Layer presets on a stand-in with our parameter names; exact frozen sets."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from training_standin import StandInModel

from maskrcnn.errors import ConfigError
from maskrcnn.training.layers import (
    LAYER_PRESETS,
    freeze_norm_statistics,
    set_trainable,
    trainable_summary,
)

pytestmark = pytest.mark.usefixtures("one_thread")

BODY_STAGE = {  # stand-in body parameters per stage
    "stem": ["backbone.body.conv1.weight", "backbone.body.bn1.weight", "backbone.body.bn1.bias"],
    **{f"layer{i}": [f"backbone.body.layer{i}.0.weight", f"backbone.body.layer{i}.1.weight",
                     f"backbone.body.layer{i}.1.bias"] for i in range(1, 5)},
}


def _frozen_for(*stages):
    return sorted(n for s in stages for n in BODY_STAGE[s])


@pytest.mark.parametrize("preset, frozen_stages", [
    ("heads", ("stem", "layer1", "layer2", "layer3", "layer4")),
    ("3+", ("stem", "layer1")),
    ("4+", ("stem", "layer1", "layer2")),
    ("5+", ("stem", "layer1", "layer2", "layer3")),
    ("all", ()),
])
def test_presets_freeze_exactly_the_lower_stages(preset, frozen_stages):
    model = StandInModel()
    frozen = set_trainable(model, preset)
    assert sorted(frozen) == _frozen_for(*frozen_stages)
    assert sorted(n for n, p in model.named_parameters() if not p.requires_grad) == _frozen_for(*frozen_stages)
    # heads always train: rpn, roi_heads and the FPN
    for n, p in model.named_parameters():
        if n.startswith(("rpn.", "roi_heads.", "backbone.fpn.")):
            assert p.requires_grad, n


def test_regex_layers_and_errors():
    model = StandInModel()
    frozen = set_trainable(model, r"roi_heads\.box_predictor\.")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["roi_heads.box_predictor.cls_score.weight", "roi_heads.box_predictor.cls_score.bias",
                         "roi_heads.box_predictor.bbox_pred.weight", "roi_heads.box_predictor.bbox_pred.bias"]
    assert len(frozen) == len(list(model.parameters())) - 4
    with pytest.raises(ConfigError, match="matches no parameter"):
        set_trainable(model, "mrcnn_.*")  # a matterport name: nothing of ours matches
    with pytest.raises(ConfigError, match="regular expression"):
        set_trainable(model, "(rpn")
    assert set(LAYER_PRESETS) == {"heads", "3+", "4+", "5+", "all"}


def test_frozen_batchnorm_statistics_stay_put():
    model = StandInModel(norm="bn")
    set_trainable(model, "heads")
    model.train()
    assert freeze_norm_statistics(model) == 1
    bn = model.backbone.body.bn1
    assert not bn.training
    before = bn.running_mean.clone()
    model.backbone.body(torch.rand(2, 3, 8, 8) * 10)
    assert torch.equal(bn.running_mean, before)
    set_trainable(model, "all")
    model.train()
    assert freeze_norm_statistics(model) == 0 and bn.training


def test_trainable_summary_counts():
    model = StandInModel()
    set_trainable(model, "5+")
    s = trainable_summary(model)
    assert s["frozen_tensors"] == 12
    assert s["frozen_elements"] == 4 * 3 * 9 + 4 + 4 + 3 * (16 + 4 + 4)
    assert s["trainable_tensors"] + s["frozen_tensors"] == len(list(model.parameters()))
    assert isinstance(model.backbone.body.bn1, nn.GroupNorm)


# ---------------------------------------------------------------- the real model, ResNet-50
# Parameter tensors and elements of torchvision's ResNet-50 convolutions by stage (counted by hand:
# conv1 7x7x3x64 = 9408; layer1 3 bottlenecks x 3 convs + downsample = 10 tensors, ...).
R50 = {"conv1": (1, 9408), "layer1": (10, 212992), "layer2": (13, 1212416), "layer3": (19, 7077888),
       "layer4": (10, 14942208)}
FROZEN_STAGES = {"heads": ("conv1", "layer1", "layer2", "layer3", "layer4"), "3+": ("conv1", "layer1"),
                 "4+": ("conv1", "layer1", "layer2"), "5+": ("conv1", "layer1", "layer2", "layer3"), "all": ()}
EXPECTED_FROZEN = {"heads": (53, 23454912), "3+": (11, 222400), "4+": (24, 1434816), "5+": (43, 8512704),
                   "all": (0, 0)}


@pytest.fixture(scope="module")
def resnet50_models():
    from maskrcnn.config import Config
    from maskrcnn.model.network import MaskRCNNNetwork

    torch.manual_seed(0)
    frozen_bn = MaskRCNNNetwork(Config(NUM_CLASSES=2, BACKBONE="resnet50"))
    gn = MaskRCNNNetwork(Config(NUM_CLASSES=2, BACKBONE="resnet50", BACKBONE_NORM="gn"))
    return frozen_bn, gn


@pytest.mark.parametrize("preset", ["heads", "3+", "4+", "5+", "all"])
def test_frozen_counts_resnet50(resnet50_models, preset):
    frozen_bn, gn = resnet50_models
    # the hand counts agree with the stage table
    tensors = sum(R50[s][0] for s in FROZEN_STAGES[preset])
    elements = sum(R50[s][1] for s in FROZEN_STAGES[preset])
    assert (tensors, elements) == EXPECTED_FROZEN[preset]

    set_trainable(frozen_bn, preset)  # FrozenBatchNorm has buffers, not parameters: convolutions only
    s = trainable_summary(frozen_bn)
    assert (s["frozen_tensors"], s["frozen_elements"]) == EXPECTED_FROZEN[preset]
    total = sum(p.numel() for p in frozen_bn.parameters())
    assert s["trainable_elements"] == total - EXPECTED_FROZEN[preset][1]

    set_trainable(gn, preset)  # GroupNorm: each convolution has a norm with weight and bias
    s = trainable_summary(gn)
    assert s["frozen_tensors"] == 3 * EXPECTED_FROZEN[preset][0]
    frozen = [n for n, p in gn.named_parameters() if not p.requires_grad]
    assert all(n.startswith("backbone.body.") for n in frozen)
