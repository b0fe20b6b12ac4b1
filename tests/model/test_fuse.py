"""Inference optimizations: frozen-BN folding, prepare_for_inference, exact parallel RoIAlign."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from maskrcnn.config import Config
from maskrcnn.errors import WeightsError
from maskrcnn.model import roi_align as roi_align_module
from maskrcnn.model.backbone import ResNetFPN
from maskrcnn.model.fuse import fold_conv_bn, fuse_frozen_bn, is_fused, prepare_for_inference
from maskrcnn.detector import MaskRCNN
from maskrcnn.model.roi_align import PyramidRoIAlign


def _randomize_norms(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (FrozenBatchNorm2d, nn.BatchNorm2d)):
            c = m.running_mean.numel()
            with torch.no_grad():
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)


def test_fold_conv_bn_by_hand():
    conv = nn.Conv2d(1, 1, 1)
    bn = FrozenBatchNorm2d(1, eps=1.0)
    with torch.no_grad():
        conv.weight.fill_(2.0)
        conv.bias.fill_(1.0)
        bn.weight.fill_(3.0)
        bn.bias.fill_(0.5)
        bn.running_mean.fill_(1.0)
        bn.running_var.fill_(3.0)
    fused = fold_conv_bn(conv, bn)
    # scale = 3 / sqrt(3 + 1) = 1.5, shift = 0.5 - 1 * 1.5 = -1 → weight 2 * 1.5 = 3, bias 1 * 1.5 - 1 = 0.5
    assert fused.weight.item() == 3.0 and fused.bias.item() == 0.5
    x = torch.full((1, 1, 2, 2), 2.0)
    assert torch.equal(fused(x), torch.full((1, 1, 2, 2), 6.5))
    assert torch.equal(bn(conv(x)), torch.full((1, 1, 2, 2), 6.5))
    with pytest.raises(ValueError, match="3 output channels but the norm has 1"):
        fold_conv_bn(nn.Conv2d(1, 3, 1), bn)


def test_fuse_resnet18_fpn_equal_outputs_and_original_untouched():
    torch.manual_seed(0)
    model = ResNetFPN(depth=18, norm="frozen_bn", fpn_channels=32).eval()
    _randomize_norms(model)
    keys_before = list(model.state_dict())
    fused = fuse_frozen_bn(model)
    # ResNet-18: stem + 8 blocks x 2 convs + 3 downsample branches = 20 conv+BN pairs
    assert fused._maskrcnn_bn_fused == 20 and is_fused(fused) and not is_fused(model)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in fused.modules())
    assert sum(isinstance(m, FrozenBatchNorm2d) for m in model.modules()) == 20
    assert list(model.state_dict()) == keys_before
    x = torch.randn(2, 3, 96, 128)
    with torch.inference_mode():
        ref, out = model(x), fused(x)
    for name in ref:
        scale = ref[name].abs().max().item()
        assert scale > 0.1
        assert (ref[name] - out[name]).abs().max().item() <= 1e-5 * scale, name


def test_fuse_eval_batchnorm_and_leaves_groupnorm():
    torch.manual_seed(0)
    bn_model = ResNetFPN(depth=18, norm="bn", fpn_channels=16)
    _randomize_norms(bn_model)
    bn_model.train()
    assert fuse_frozen_bn(bn_model)._maskrcnn_bn_fused == 0  # training-mode BN uses batch statistics: not folded
    bn_model.eval()
    fused = fuse_frozen_bn(bn_model)
    assert fused._maskrcnn_bn_fused == 20
    assert fuse_frozen_bn(bn_model, batchnorm=False)._maskrcnn_bn_fused == 0
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        ref, out = bn_model(x)["p2"], fused(x)["p2"]
    assert (ref - out).abs().max().item() <= 1e-5 * ref.abs().max().item()

    gn_model = ResNetFPN(depth=18, norm="gn", fpn_channels=16).eval()
    same = fuse_frozen_bn(gn_model, inplace=True)
    assert same is gn_model and same._maskrcnn_bn_fused == 0


def _small_config() -> Config:
    return Config(NAME="fuse", NUM_CLASSES=3, BACKBONE="resnet18", IMAGE_RESIZE_MODE="square", IMAGE_MIN_DIM=128,
                  IMAGE_MAX_DIM=128, TOP_DOWN_PYRAMID_SIZE=32, MASK_HEAD_CONV_CHANNELS=32,
                  FPN_CLASSIF_FC_LAYERS_SIZE=128, DETECTION_MIN_CONFIDENCE=0.3, DETECTION_MAX_INSTANCES=30,
                  POST_NMS_ROIS_INFERENCE=300, PRE_NMS_LIMIT=1000, IMAGES_PER_GPU=1)


def test_prepare_for_inference_same_detections(shared_data):
    torch.manual_seed(0)
    model = MaskRCNN(_small_config(), device="cpu")
    _randomize_norms(model.network)
    fast = prepare_for_inference(model)  # the detector: a copy whose network is folded
    assert isinstance(fast, MaskRCNN) and fast is not model and fast.network is not model.network
    assert not fast.network.training and is_fused(fast.network) and not is_fused(model.network)
    conv = fast.network.backbone.fpn.layer_blocks[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    image = np.array(Image.open(shared_data / "balloon" / "val" / "410488422_5f8991f26e_b.jpg").convert("RGB"))
    image = image[200:456, 300:620]
    (ref,), (out,) = model.detect([image]), fast.detect([image])
    assert len(ref["rois"]) >= 10
    assert len(out["rois"]) == len(ref["rois"])
    assert np.array_equal(out["class_ids"], ref["class_ids"])
    assert np.abs(out["rois"] - ref["rois"]).max() <= 1
    assert np.abs(out["scores"] - ref["scores"]).max() <= 1e-4
    inter = (out["masks"] & ref["masks"]).sum((0, 1))
    union = (out["masks"] | ref["masks"]).sum((0, 1))
    assert (inter / np.maximum(union, 1)).min() >= 0.98


def test_folded_model_refuses_to_save(tmp_path):
    model = MaskRCNN(_small_config(), device="cpu")
    fast = prepare_for_inference(model, channels_last=False)
    with pytest.raises(WeightsError, match="folded into its convolutions"):
        fast.save(tmp_path / "fast.pt")
    assert not (tmp_path / "fast.pt").exists()
    model.save(tmp_path / "model.pt")  # the original still saves


def test_parallel_roi_align_is_bit_identical(monkeypatch):
    torch.manual_seed(0)
    features = {"p2": torch.randn(1, 8, 64, 64), "p3": torch.randn(1, 8, 32, 32),
                "p4": torch.randn(1, 8, 16, 16), "p5": torch.randn(1, 8, 8, 8)}
    boxes = torch.rand(300, 4) * 200
    boxes[:, 2:] += boxes[:, :2] + 4
    pool = PyramidRoIAlign(output_size=7, sampling_ratio=2, aligned=False)
    serial = pool(features, [boxes], [(256, 256)])  # grad mode on: the serial path
    calls = []
    original = roi_align_module.roi_align
    monkeypatch.setattr(roi_align_module, "roi_align", lambda *a, **k: calls.append(a[1].shape[0]) or original(*a, **k))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    with torch.inference_mode():
        parallel = pool(features, [boxes], [(256, 256)])
    assert torch.equal(serial, parallel)
    assert max(calls) < 300 and len(calls) > 4  # the big levels were split into chunks


@pytest.mark.parametrize("depth", [18, 50])
def test_training_forward_folds_frozen_bn_with_same_outputs_and_gradients(depth):
    """Train mode with frozen BN runs conv_frozen_bn; eval mode runs torchvision's blocks — same function.

    The gradients are compared in float64, where the fold is exact to rounding: in float32 a
    rounding difference of 1e-7 can flip one ReLU whose input is ~1e-6 from zero, and the gradient
    of a ReLU network is discontinuous there (seen on an AVX-512 CPU: a 2% change in one weight's
    gradient from a single flipped unit, on the folded and unfolded paths alike).
    """
    torch.manual_seed(0)
    body = ResNetFPN(depth=depth, norm="frozen_bn", fpn_channels=16).body
    _randomize_norms(body)
    x = torch.randn(1, 3, 64, 96)

    def run(train: bool, dtype: torch.dtype):
        body.to(dtype).train(train)
        body.zero_grad()
        outs = body(x.to(dtype))
        sum((o * torch.linspace(-1, 1, o.numel(), dtype=dtype).view_as(o)).sum() for o in outs).backward()
        grads = {n: p.grad.clone() for n, p in body.named_parameters() if p.grad is not None}
        return [o.detach() for o in outs], grads

    ref_out, ref_grad = run(False, torch.float64)
    out, grad = run(True, torch.float64)
    assert len(grad) == len(ref_grad) > 0
    for r, o in zip(ref_out, out):
        assert (r - o).abs().max().item() <= 1e-10 * r.abs().max().item()
    for name, g in ref_grad.items():
        assert (g - grad[name]).abs().max().item() <= 1e-10 * g.abs().max().item() + 1e-12, name
    # float32, the training dtype: the same outputs up to float rounding.
    ref_out, _ = run(False, torch.float32)
    out, _ = run(True, torch.float32)
    for r, o in zip(ref_out, out):
        assert (r - o).abs().max().item() <= 1e-4 * r.abs().max().item()
    # The folded path really ran: a hook on a BN module never fires in training.
    calls = []
    body.layer1[0].bn1.register_forward_hook(lambda *a: calls.append(1))
    body.train()(x)
    assert calls == []
    body.eval()(x)
    assert calls == [1]


def test_training_fold_follows_changed_bn_statistics():
    """The folded scale/shift are cached per BN; new statistics (load_state_dict, in-place edits) are seen."""
    torch.manual_seed(0)
    body = ResNetFPN(depth=18, norm="frozen_bn", fpn_channels=16).body
    _randomize_norms(body)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        body.train()(x)  # fills the caches
        state = {k: v.clone() for k, v in body.state_dict().items()}
        for k, v in state.items():
            if "bn" in k and k.endswith("running_var"):
                v.mul_(4.0)
        body.load_state_dict(state)
        after_load = body.train()(x)[-1]
        expected = body.eval()(x)[-1]
        assert (after_load - expected).abs().max() <= 1e-4 * expected.abs().max()
        body.layer4[0].bn1.running_mean.add_(1.0)  # an in-place edit of one buffer
        edited = body.train()(x)[-1]
        expected = body.eval()(x)[-1]
        assert (edited - expected).abs().max() <= 1e-4 * expected.abs().max()
        assert (edited - after_load).abs().max() > 1e-3 * expected.abs().max()


def test_prepare_for_inference_compile_wraps_the_backbone():
    """The optional torch.compile path: the backbone's forward is compiled, detections unchanged.
    (The "eager" backend checks the wiring in seconds; inductor's code generation is benchmarked.)"""
    torch.manual_seed(0)
    model = MaskRCNN(_small_config(), device="cpu")
    fast = prepare_for_inference(model, compile=True, compile_options={"backend": "eager"})
    assert fast.network.backbone.forward is not model.network.backbone.forward
    assert hasattr(fast.network.backbone.forward, "_torchdynamo_orig_callable")  # what torch.compile returns
    image = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    with torch.inference_mode():
        ref = model.network.eval()([torch.from_numpy(image).permute(2, 0, 1)])[0]
        out = fast.network([torch.from_numpy(image).permute(2, 0, 1)])[0]
    assert torch.equal(out["labels"], ref["labels"]) and out["boxes"].shape[0] > 0
    torch.testing.assert_close(out["boxes"], ref["boxes"], rtol=0, atol=1e-3)
