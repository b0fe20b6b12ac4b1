"""ResNet-FPN backbone: shapes, norms, probe names and equality with torchvision's resnet_fpn_backbone."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops import FrozenBatchNorm2d

from maskrcnn.model.backbone import ResNetFPN, feature_shapes, set_frozen_bn_eps
from maskrcnn.model.probe import recording
from maskrcnn.weights import convert_torchvision


@pytest.mark.parametrize("norm", ["frozen_bn", "bn", "gn"])
def test_resnet18_shapes_and_norms(norm):
    model = ResNetFPN(depth=18, norm=norm, fpn_channels=32).eval()
    x = torch.randn(2, 3, 96, 160)
    with recording() as rec:
        out = model(x)
    assert list(out) == ["p2", "p3", "p4", "p5", "p6"]
    expected = {"p2": (24, 40), "p3": (12, 20), "p4": (6, 10), "p5": (3, 5), "p6": (2, 3)}
    for name, (h, w) in expected.items():
        assert out[name].shape == (2, 32, h, w)
        assert torch.equal(rec[f"fpn.{name}"], out[name])
    assert rec["backbone.c2"].shape == (2, 64, 24, 40) and rec["backbone.c5"].shape == (2, 512, 3, 5)
    kinds = {FrozenBatchNorm2d: "frozen_bn", nn.BatchNorm2d: "bn", nn.GroupNorm: "gn"}
    found = {kinds[type(m)] for m in model.modules() if type(m) in kinds}
    assert found == {norm}


@pytest.mark.parametrize("size", [(96, 160), (65, 33), (1, 1), (130, 97)])
def test_feature_shapes_are_those_of_the_forward(size):
    model = ResNetFPN(depth=18, norm="frozen_bn", fpn_channels=8).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, *size))
    assert feature_shapes(*size) == [tuple(p.shape[-2:]) for p in out.values()]


def test_resnet50_equals_torchvision_fpn_backbone():
    torch.manual_seed(0)
    tv = resnet_fpn_backbone(backbone_name="resnet50", weights=None, trainable_layers=5).eval()
    # give the frozen BN non-trivial statistics so the test sees them
    for m in tv.modules():
        if isinstance(m, FrozenBatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.uniform_(0.5, 1.5)
    ours = ResNetFPN(depth=50, norm="frozen_bn", fpn_channels=256).eval()
    state = convert_torchvision({f"backbone.{k}": v for k, v in tv.state_dict().items()})
    missing, unexpected = ours.load_state_dict({k[len("backbone."):]: v for k, v in state.items()}, strict=True)
    assert not missing and not unexpected
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        expected = tv(x)
        got = ours(x)
    for (tv_name, tv_feat), (name, feat) in zip(expected.items(), got.items()):
        torch.testing.assert_close(feat, tv_feat, rtol=1e-5, atol=1e-5, msg=f"{name} vs {tv_name}")
    assert list(expected) == ["0", "1", "2", "3", "pool"]


def test_set_frozen_bn_eps_and_bad_depth():
    model = ResNetFPN(depth=18, norm="frozen_bn", fpn_channels=8)
    assert set_frozen_bn_eps(model, 0.0) == 20
    assert all(m.eps == 0.0 for m in model.modules() if isinstance(m, FrozenBatchNorm2d))
    with pytest.raises(ValueError, match="depth=42"):
        ResNetFPN(depth=42)
    with pytest.raises(ValueError, match="norm='xx'"):
        ResNetFPN(depth=18, norm="xx")
