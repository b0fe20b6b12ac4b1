"""The assembled network (training losses, inference outputs) and the detector around it (detect(),
run_graph, save/from_weights, config values read where they are used)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from maskrcnn.config import LOSS_NAMES, Config
from maskrcnn.detector import MaskRCNN
from maskrcnn.errors import ConfigError, WeightsError
from maskrcnn.model.network import MaskRCNNNetwork

TINY = {"NAME": "tiny", "NUM_CLASSES": 3, "BACKBONE": "resnet18", "IMAGE_MIN_DIM": 64, "IMAGE_MAX_DIM": 128,
            "TOP_DOWN_PYRAMID_SIZE": 16, "FPN_CLASSIF_FC_LAYERS_SIZE": 32, "MASK_HEAD_CONV_CHANNELS": 16,
            "MASK_HEAD_NUM_CONVS": 1, "TRAIN_ROIS_PER_IMAGE": 16, "PRE_NMS_LIMIT": 200, "POST_NMS_ROIS_TRAINING": 50,
            "POST_NMS_ROIS_INFERENCE": 50, "DETECTION_MIN_CONFIDENCE": 0.0, "DETECTION_MAX_INSTANCES": 7,
            "MEAN_PIXEL": [123.675, 116.28, 103.53], "PIXEL_STD": [58.395, 57.12, 57.375]}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MaskRCNN(Config(**TINY), class_names=["BG", "a", "b"], device="cpu")


def _image(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_training_returns_weighted_losses():
    torch.manual_seed(0)
    cfg = Config(**TINY, LOSS_WEIGHTS={"mrcnn_mask_loss": 2.0, "rpn_bbox_loss": 0.0})
    net = MaskRCNNNetwork(cfg).train()
    images = [torch.from_numpy(_image(90, 120, 1)).permute(2, 0, 1), torch.from_numpy(_image(64, 64, 2)).permute(2, 0, 1)]
    masks = torch.zeros(2, 90, 120, dtype=torch.bool)
    masks[0, 10:50, 20:70] = True
    masks[1, 40:80, 60:110] = True
    targets = [
        {"boxes": torch.tensor([[20.0, 10.0, 70.0, 50.0], [60.0, 40.0, 110.0, 80.0]]),
         "labels": torch.tensor([1, 2]), "masks": masks},
        {"boxes": torch.tensor([[5.0, 5.0, 30.0, 40.0]]), "labels": torch.tensor([2]),
         "mini_masks": torch.ones(1, 28, 28, dtype=torch.bool)},
    ]
    torch.manual_seed(5)
    losses = net(images, targets)
    assert set(losses) == set(LOSS_NAMES)
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["rpn_bbox_loss"].item() == 0.0
    torch.manual_seed(5)
    net.config.LOSS_WEIGHTS = {}
    plain = net(images, targets)
    torch.testing.assert_close(losses["mrcnn_mask_loss"], 2 * plain["mrcnn_mask_loss"])
    sum(plain.values()).backward()
    assert net.backbone.fpn.inner_blocks[0].weight.grad is not None
    with pytest.raises(ValueError, match="needs targets"):
        net(images)


def test_inference_outputs_and_detect(model):
    images = [_image(90, 120, 3), _image(50, 40, 4)]
    with torch.no_grad():
        outputs = model.network.eval()([torch.from_numpy(i).permute(2, 0, 1) for i in images])
    for out, img in zip(outputs, images):
        n = out["boxes"].shape[0]
        assert 0 < n <= 7
        assert out["masks"].shape == (n, img.shape[0], img.shape[1]) and out["labels"].dtype == torch.int64
        assert float(out["boxes"][:, 2].max()) <= img.shape[1] and float(out["boxes"][:, 3].max()) <= img.shape[0]
    results = model.detect(images + [images[0]], batch_size=2)
    assert len(results) == 3
    for r, img, out in zip(results, images, outputs):
        assert set(r) == {"rois", "class_ids", "scores", "masks"}
        assert r["rois"].dtype == np.int32 and r["class_ids"].dtype == np.int32 and r["scores"].dtype == np.float32
        assert r["masks"].dtype == bool and r["masks"].shape[:2] == img.shape[:2]
        assert r["masks"].shape[2] == r["rois"].shape[0] == r["scores"].shape[0]
        # matterport's (y1, x1, y2, x2) of the same detections
        expected = np.around(out["boxes"].detach().numpy()[:, [1, 0, 3, 2]]).astype(np.int32)
        keep = (expected[:, 2] - expected[:, 0]) * (expected[:, 3] - expected[:, 1]) > 0
        assert np.array_equal(r["rois"], expected[keep])
    assert np.array_equal(results[2]["rois"], results[0]["rois"])
    gray = model.detect([images[0][:, :, 0], np.dstack([images[0], np.full((90, 120), 255, np.uint8)])])
    assert gray[0]["masks"].shape[:2] == (90, 120)
    assert np.array_equal(gray[1]["rois"], results[0]["rois"])  # RGBA: alpha dropped


def test_run_graph_names(model):
    image = _image(70, 100, 6)
    rec = model.run_graph([image])
    for name in ("input.images", "backbone.c2", "backbone.c5", "fpn.p2", "fpn.p6", "rpn.anchors", "rpn.objectness",
                 "rpn.deltas", "rpn.pre_nms_boxes", "rpn.proposals", "roi.class_logits", "roi.box_deltas",
                 "roi.refined_boxes", "roi.detections", "mask.logits", "mask.probs", "output.masks", "output"):
        assert name in rec, name
    batch = rec["input.images"]
    # square mode: 64 / 70 < 1 so no resize, padded to IMAGE_MAX_DIM x IMAGE_MAX_DIM
    assert batch.original_sizes == [(70, 100)] and batch.image_sizes == [(70, 100)]
    assert batch.tensor.shape == (1, 3, 128, 128)
    assert rec["rpn.objectness"].shape[1] == rec["rpn.anchors"].shape[0]
    assert rec["mask.logits"].shape[1:] == (3, 28, 28)
    assert rec["output.masks"][0].shape[1:] == (70, 100)
    some = model.run_graph([image], names=["fpn.p3"])
    assert set(some) == {"fpn.p3", "output"}
    torch.testing.assert_close(some["fpn.p3"], rec["fpn.p3"])
    with pytest.raises(KeyError, match="fpn.p7"):
        model.run_graph([image], names=["fpn.p7"])


def test_save_and_from_weights_round_trip(model, tmp_path):
    path = model.save(tmp_path / "sub" / "ckpt.pth", epoch=3, extra={"note": "x"})
    assert sorted(p.name for p in path.parent.iterdir()) == ["ckpt.pth"]  # no temp file left
    data = torch.load(path, weights_only=True)
    assert data["format"] == "maskrcnn" and data["version"] == 1 and data["epoch"] == 3 and data["note"] == "x"
    assert data["config_class"] == "Config" and data["class_names"] == ["BG", "a", "b"]
    loaded = MaskRCNN.from_weights(path, device="cpu")
    assert loaded.class_names == ["BG", "a", "b"] and loaded.config.NUM_CLASSES == 3
    assert loaded.config.to_dict() == model.config.to_dict()
    assert loaded.epoch == 0 and loaded.log_dir is None  # a weights file (no training state): a new run
    images = [_image(60, 80, 7)]
    a, b = model.detect(images)[0], loaded.detect(images)[0]
    assert np.array_equal(a["rois"], b["rois"]) and np.array_equal(a["masks"], b["masks"])
    np.testing.assert_array_equal(a["scores"], b["scores"])
    # load_weights reads our own format too
    other = MaskRCNN(Config(**TINY), device="cpu")
    report = other.load_weights(path)
    assert report.format == "maskrcnn" and not report.missing
    assert other.class_names == ["BG", "a", "b"]  # the generated defaults give way to the checkpoint's names
    assert np.array_equal(other.detect(images)[0]["rois"], a["rois"])
    torch.save({"model": {}}, tmp_path / "plain.pth")
    with pytest.raises(WeightsError, match=r"plain\.pth: not a Mask R-CNN or ResNet checkpoint"):
        MaskRCNN.from_weights(tmp_path / "plain.pth")


def test_class_names_must_match_num_classes():
    with pytest.raises(ValueError, match="class_names has 2 names but NUM_CLASSES=3"):
        MaskRCNN(Config(**TINY), class_names=["BG", "a"], device="cpu")
    assert MaskRCNN(Config(**TINY), device="cpu").class_names == ["BG", "class1", "class2"]


def test_detect_union_is_the_union_of_detect_masks(model):
    images = [_image(90, 120, 3), _image(50, 40, 4), _image(70, 70, 5)]
    results = model.detect(images)
    nontrivial = 0
    for class_ids, min_confidence in [(None, None), ([1], None), (None, 0.4), ([2], 0.3), (None, 1.0)]:
        unions = model.detect_union(images, class_ids=class_ids, min_confidence=min_confidence, batch_size=2)
        assert len(unions) == len(images)
        for union, r, img in zip(unions, results, images):
            keep = np.ones(len(r["class_ids"]), dtype=bool)
            if class_ids is not None:
                keep &= np.isin(r["class_ids"], class_ids)
            if min_confidence is not None:
                keep &= r["scores"] >= min_confidence
            expected = r["masks"][..., keep].any(axis=2)
            assert union.dtype == bool and union.shape == img.shape[:2]
            assert np.array_equal(union, expected)
            nontrivial += bool(0 < expected.sum() < expected.size)
    assert nontrivial >= 3  # the comparison saw real masks, not only empty or full ones


def test_nonempty_rois_rounds_as_detect():
    from maskrcnn.detector.maskrcnn import _nonempty_rois

    g = torch.Generator().manual_seed(0)
    boxes = torch.randint(0, 8, (400, 4), generator=g).float() / 2  # many .5 values: half to even
    boxes[:, 2:] += boxes[:, :2] * 0.5
    rois = np.around(boxes.numpy()[:, [1, 0, 3, 2]]).astype(np.int32)
    expected = (rois[:, 2] - rois[:, 0]) * (rois[:, 3] - rois[:, 1]) > 0
    assert 0 < expected.sum() < len(expected)
    assert np.array_equal(_nonempty_rois(boxes).numpy(), expected)


def test_changing_detection_min_confidence_on_a_built_model_changes_detect(model):
    """DETECTION_MIN_CONFIDENCE (and the other detection thresholds) are read at every call, not copied at build."""
    images = [_image(90, 120, 3), _image(50, 40, 4)]
    config = model.config
    before = {k: getattr(config, k) for k in ("DETECTION_MIN_CONFIDENCE", "DETECTION_MAX_INSTANCES",
                                               "MASK_THRESHOLD")}
    try:
        everything = model.detect(images)
        scores = np.concatenate([r["scores"] for r in everything])
        assert len(np.unique(scores)) > 3
        cut = float(np.median(scores))
        config.DETECTION_MIN_CONFIDENCE = cut
        fewer = model.detect(images)
        for r, full in zip(fewer, everything):
            assert (r["scores"] > cut).all()
            assert np.array_equal(r["scores"], full["scores"][full["scores"] > cut])
        assert sum(len(r["scores"]) for r in fewer) < len(scores)
        config.DETECTION_MIN_CONFIDENCE = 0.0
        config.DETECTION_MAX_INSTANCES = 2
        assert all(len(r["scores"]) <= 2 for r in model.detect(images))
        config.DETECTION_MAX_INSTANCES = before["DETECTION_MAX_INSTANCES"]
        config.MASK_THRESHOLD = 0.9
        stricter = model.detect(images)
        assert sum(r["masks"].sum() for r in stricter) < sum(r["masks"].sum() for r in everything)
    finally:
        for key, value in before.items():
            setattr(config, key, value)
    assert np.array_equal(model.detect(images)[0]["rois"], everything[0]["rois"])


def test_changing_a_value_the_network_is_built_from_is_refused(model):
    image = _image(60, 80, 9)
    model.config.IMAGE_MAX_DIM = 256
    try:
        with pytest.raises(ConfigError, match=r"config\.IMAGE_MAX_DIM changed from 128 to 256 after the model was built"):
            model.detect([image])
    finally:
        model.config.IMAGE_MAX_DIM = 128
    assert len(model.detect([image])) == 1


def test_network_attributes_are_what_the_build_reads():
    """NETWORK_ATTRIBUTES (fixed once built) + CALL_ATTRIBUTES (read per call) cover every value the
    builder reads, and every listed network value is read by it."""
    from maskrcnn.model.build import CALL_ATTRIBUTES, NETWORK_ATTRIBUTES, build_model_parts

    read: set[str] = set()

    class Recording(Config):
        def __getattribute__(self, name):
            if name.isupper():
                read.add(name)
            return super().__getattribute__(name)

    config = Recording(**TINY)
    read.clear()  # construction touches every attribute
    build_model_parts(config)
    assert set(NETWORK_ATTRIBUTES) <= read
    assert read <= set(NETWORK_ATTRIBUTES) | set(CALL_ATTRIBUTES)
