"""matterport's stages record the generic probes in the generic conventions, and offer the generic RPN handles."""

from __future__ import annotations

import math

import pytest
import torch

from maskrcnn import MatterportConfig
from maskrcnn.model import probe as probe_module
from maskrcnn.model.build import build_anchor_generator, build_preprocessor
from maskrcnn.model.matterport import generic
from maskrcnn.model.matterport import roi_heads as mp_roi_heads
from maskrcnn.model.matterport import rpn as mp_rpn
from maskrcnn.model.matterport.generic import MatterportBoxCoder, pixel_boxes, trimmed_count
from maskrcnn.model.matterport.geometry import apply_box_deltas, box_refinement, norm_boxes
from maskrcnn.model.matterport.preprocess import MatterportPreprocessor
from maskrcnn.model.network import MaskRCNNNetwork
from maskrcnn.model.probe import recording

STD = [0.1, 0.1, 0.2, 0.2]


def tiny_config(**overrides) -> MatterportConfig:
    """A matterport ResNet-50 at 128 px with small heads (random weights: seconds on the CPU)."""
    values = dict(NAME="mp_tiny", BACKBONE="resnet50", NUM_CLASSES=4, TOP_DOWN_PYRAMID_SIZE=16,
                  FPN_CLASSIF_FC_LAYERS_SIZE=32, POOL_SIZE=5, MASK_HEAD_CONV_CHANNELS=8, MASK_HEAD_NUM_CONVS=1,
                  IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=128, RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128),
                  POST_NMS_ROIS_INFERENCE=60, DETECTION_MIN_CONFIDENCE=0.0, DETECTION_MAX_INSTANCES=6)
    values.update(overrides)
    return MatterportConfig(**values)


@pytest.fixture(scope="module")
def network() -> MaskRCNNNetwork:
    torch.manual_seed(0)
    return MaskRCNNNetwork(tiny_config()).eval()


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.randint(0, 256, (3, 48, 80), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)


@pytest.fixture(scope="module")
def record(network, image) -> dict:
    with torch.inference_mode(), recording() as rec:
        network([image])
    return dict(rec)


def test_pixel_boxes_and_trimmed_count():
    shape = (65, 129)
    pixels = torch.tensor([[3.0, 5.0, 20.0, 40.0]])  # y1x1y2x2 pixels, y2/x2 outside the box
    assert torch.equal(pixel_boxes(norm_boxes(pixels, shape), shape), torch.tensor([[5.0, 3.0, 40.0, 20.0]]))
    assert trimmed_count(torch.tensor([[0.0, 0, 0, 0], [0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0]])) == 2
    assert trimmed_count(torch.zeros(3, 4)) == 0


def test_box_coder_is_matterports_deltas_in_pixels():
    torch.manual_seed(0)
    shape = (96, 160)
    y1x1 = torch.rand(20, 2) * 60
    ref = torch.cat([y1x1, y1x1 + 3 + torch.rand(20, 2) * 30], dim=1)  # y1x1y2x2 pixels
    deltas = torch.randn(20, 4) * 0.5  # matterport's (dy, dx, log dh, log dw), before the std-dev
    expected = pixel_boxes(apply_box_deltas(norm_boxes(ref, shape), deltas * torch.tensor(STD)), shape)
    coder = MatterportBoxCoder(std_dev=STD)
    assert coder.weights == (10.0, 10.0, 5.0, 5.0)
    decoded = coder.decode(deltas[:, [1, 0, 3, 2]], ref[:, [1, 0, 3, 2]])
    assert decoded.shape == (20, 1, 4)
    torch.testing.assert_close(decoded[:, 0], expected, atol=1e-3, rtol=0)
    # encode is matterport's box_refinement / std-dev, reordered; and decode(encode(b)) == b
    target = ref + torch.rand(20, 4) * 4
    encoded = coder.encode(ref[:, [1, 0, 3, 2]], target[:, [1, 0, 3, 2]])
    refinement = box_refinement(norm_boxes(ref, shape), norm_boxes(target, shape)) / torch.tensor(STD)
    torch.testing.assert_close(encoded, refinement[:, [1, 0, 3, 2]], atol=1e-3, rtol=0)
    torch.testing.assert_close(coder.decode(encoded, ref[:, [1, 0, 3, 2]])[:, 0], target[:, [1, 0, 3, 2]],
                               atol=1e-4, rtol=0)


def test_rpn_probes_are_generic(network, record):
    shape = tuple(record["input.images"].tensor.shape[-2:])
    anchors = record["rpn.anchors"]
    # rpn.anchors: [A, 4] xyxy pixels = the RPN's normalized anchors denormalized ...
    assert anchors.shape == record["matterport.anchors"].shape[1:]
    assert torch.equal(anchors, pixel_boxes(record["matterport.anchors"][0], shape))
    # ... = generate_pyramid_anchors' pixels: (cy - h/2, cx - w/2, cy + h/2, cx + w/2), h = scale / sqrt(ratio)
    scale, ratio = 8.0, 0.5  # the first anchor of P2: the cell (0, 0), ratio 0.5
    h, w = scale / math.sqrt(ratio), scale * math.sqrt(ratio)
    torch.testing.assert_close(anchors[0], torch.tensor([-w / 2, -h / 2, w / 2, h / 2]), atol=1e-4, rtol=0)
    # the anchor generator handle gives the same anchors, level by level
    levels = network.rpn.anchor_generator([f.shape[-2:] for f in (record[f"fpn.p{i}"] for i in range(2, 7))], shape)
    assert [len(a) for a in levels] == [32 * 32 * 3, 16 * 16 * 3, 8 * 8 * 3, 4 * 4 * 3, 2 * 2 * 3]
    assert torch.equal(torch.cat(levels), anchors)
    # rpn.objectness: fg - bg logit, its sigmoid is matterport's softmax; rpn.deltas: (dx, dy, dw, dh)
    objectness, deltas = record["rpn.objectness"], record["rpn.deltas"]
    assert objectness.shape == (1, anchors.shape[0]) and deltas.shape == (1, anchors.shape[0], 4)
    torch.testing.assert_close(torch.sigmoid(objectness), record["matterport.rpn_class"][..., 1], atol=1e-6, rtol=0)
    assert torch.equal(deltas[..., [1, 0, 3, 2]], record["matterport.rpn_bbox"])
    assert network.rpn.nms_thresh == network.config.RPN_NMS_THRESHOLD
    # the box coder refines an anchor as matterport's proposal layer does
    refined = network.rpn.box_coder.decode(deltas[0, :50], anchors[:50])[:, 0]
    expected = apply_box_deltas(record["matterport.anchors"][0, :50],
                                record["matterport.rpn_bbox"][0, :50] * network.rpn.bbox_std_dev)
    torch.testing.assert_close(refined, pixel_boxes(expected, shape), atol=1e-3, rtol=0)
    # proposals: per image, xyxy pixels, matterport's zero padding removed
    (proposals,) = record["rpn.proposals"]
    padded = record["matterport.proposals"][0]
    k = trimmed_count(padded)
    assert proposals.shape == (k, 4) and k > 0 and not padded[k:].any()
    assert torch.equal(proposals, pixel_boxes(padded[:k], shape))
    (pre_nms,) = record["rpn.pre_nms_boxes"]
    assert pre_nms.shape == (min(network.config.pre_nms_limit_inference, anchors.shape[0]), 4)
    assert pre_nms.min() >= 0 and pre_nms[:, 2].max() <= shape[1] and pre_nms[:, 3].max() <= shape[0]


def test_roi_and_mask_probes_are_generic(network, record):
    shape = tuple(record["input.images"].tensor.shape[-2:])
    (proposals,) = record["rpn.proposals"]
    k, c = proposals.shape[0], network.config.NUM_CLASSES
    logits, deltas = record["roi.class_logits"], record["roi.box_deltas"]
    assert logits.shape == (k, c) and deltas.shape == (k, 4 * c)
    torch.testing.assert_close(torch.softmax(logits, -1), record["matterport.mrcnn_class"][0, :k], atol=1e-6, rtol=0)
    assert torch.equal(deltas.reshape(k, c, 4)[..., [1, 0, 3, 2]], record["matterport.mrcnn_bbox"][0, :k])
    refined = record["roi.refined_boxes"]
    assert refined.shape == (k, c, 4)
    # the image window (centred padding): every refined box lies inside it
    top, left, bottom, right = record["input.images"].windows[0]
    assert (top, left) != (0, 0)
    assert refined[..., 0].min() >= left - 1e-3 and refined[..., 2].max() <= right + 1e-3
    assert refined[..., 1].min() >= top - 1e-3 and refined[..., 3].max() <= bottom + 1e-3
    (detections,) = record["roi.detections"]
    raw = record["matterport.detections"][0]
    n = detections["boxes"].shape[0]
    assert n > 0 and (raw[:n, 4] > 0).all() and not raw[n:].any()
    assert torch.equal(detections["boxes"], pixel_boxes(raw[:n, :4], shape))
    assert torch.equal(detections["labels"], raw[:n, 4].long()) and torch.equal(detections["scores"], raw[:n, 5])
    # each detection is the refined box of some proposal for its class (before NMS)
    for box, label in zip(detections["boxes"], detections["labels"]):
        assert (refined[:, label] - box).abs().amax(dim=1).min() < 1e-3
    mask_logits, mask_probs = record["mask.logits"], record["mask.probs"]
    assert mask_logits.shape == (n, c, 28, 28) and mask_probs.shape == (n, 28, 28)
    mp_masks = record["matterport.mrcnn_mask"][0]  # [D, 28, 28, C]
    for j, label in enumerate(detections["labels"]):
        torch.testing.assert_close(mask_probs[j], mp_masks[j, :, :, label], atol=1e-6, rtol=0)
        torch.testing.assert_close(torch.sigmoid(mask_logits[j]), mp_masks[j].permute(2, 0, 1), atol=1e-6, rtol=0)


def test_no_conversion_without_a_recording_and_the_same_detections(network, image, record, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a generic probe was converted outside a recording")

    for module, names in ((mp_rpn, ("record_rpn", "record_proposals", "pixel_boxes")),
                          (mp_roi_heads, ("record_roi", "record_masks"))):
        for name in names:
            monkeypatch.setattr(module, name, refuse)
    assert not probe_module.is_recording()
    with torch.inference_mode():
        out = network([image])[0]
    recorded = record["output"][0]
    for key in ("boxes", "labels", "scores", "masks"):
        assert torch.equal(out[key], recorded[key]), key


def test_builders_give_matterports_preprocessor_and_anchors(record):
    config = tiny_config()
    assert isinstance(build_preprocessor(config), MatterportPreprocessor)
    generator = build_anchor_generator(config)
    assert isinstance(generator, generic.MatterportAnchorGenerator)
    shape = tuple(record["input.images"].tensor.shape[-2:])
    assert torch.equal(torch.cat(generator([(0, 0)] * 5, shape)), record["rpn.anchors"])
    assert generator.grid_size((32, 32)) == (32, 32) and generator.num_anchors_per_location == 3
