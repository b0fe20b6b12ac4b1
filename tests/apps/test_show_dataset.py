"""show-dataset: samples on the model's geometry, the RPN's own positive anchors, pictures by the API and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from maskrcnn import Config
from maskrcnn.apps.show_dataset import draw_sample, show_dataset, training_view
from maskrcnn.cli import main
from maskrcnn.data import ShapesDataset, TrainingSamples
from maskrcnn.model import rpn as model_rpn
from maskrcnn.model import targets as model_targets
from maskrcnn.model.network import MaskRCNNNetwork
from maskrcnn.model.targets import rpn_matches


class CrowdedShapes(ShapesDataset):
    """Synthetic shapes whose last object is marked crowd (a negative class id, matterport's convention)."""

    def load_mask(self, image_id):
        masks, class_ids = super().load_mask(image_id)
        class_ids = class_ids.copy()
        if len(class_ids) > 1:
            class_ids[-1] = -class_ids[-1]
        return masks, class_ids


def _config(mode: str) -> Config:
    return Config(NAME="show", NUM_CLASSES=4, BACKBONE="resnet18", IMAGE_RESIZE_MODE=mode, IMAGE_MIN_DIM=64,
                  IMAGE_MAX_DIM=128, RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128), TOP_DOWN_PYRAMID_SIZE=16,
                  FPN_CLASSIF_FC_LAYERS_SIZE=32, MASK_HEAD_CONV_CHANNELS=8, MASK_HEAD_NUM_CONVS=1,
                  TRAIN_ROIS_PER_IMAGE=16, POST_NMS_ROIS_TRAINING=64, USE_MINI_MASK=False)


def _rpn_assignment_of_the_model(network, image, target, seed, monkeypatch):
    """The anchors, GT boxes, labels and regression targets of the model's own RPN target assignment
    (``rpn_targets``, recorded where the RPN calls it) in one training forward of the network."""
    seen = {}
    original = model_targets.rpn_targets

    def recording(anchors, gt_boxes, iscrowd, **kwargs):
        labels, regression = original(anchors, gt_boxes, iscrowd, **kwargs)
        seen.update(anchors=anchors, gt_boxes=gt_boxes, labels=labels, regression=regression)
        return labels, regression

    with monkeypatch.context() as patch:
        patch.setattr(model_targets, "rpn_targets", recording)
        patch.setattr(model_rpn, "rpn_targets", recording, raising=False)
        torch.manual_seed(seed)
        network.train()([image], [target])
    assert seen, "the RPN did not call rpn_targets"
    return seen


@pytest.mark.parametrize("mode", ["square", "pad64", "none", "shortest_edge", "crop"])
def test_positive_anchors_are_those_of_the_models_rpn(mode, monkeypatch):
    # a non-square image: a centred padding would move every box (square: by (10, 32) pixels)
    dataset = CrowdedShapes(3, 48, 80, seed=3)
    config = _config(mode)
    torch.manual_seed(0)
    network = MaskRCNNNetwork(config)
    samples = TrainingSamples(dataset, use_mini_mask=False)
    checked = 0
    for index in range(len(samples)):
        image, target = samples[index]
        torch.manual_seed(index)  # the crop of "crop" mode
        view = training_view(image, target, config)
        model = _rpn_assignment_of_the_model(network, image, target, index, monkeypatch)

        assert torch.equal(view.anchors, model["anchors"])
        np.testing.assert_array_equal(view.boxes, model["gt_boxes"].numpy())
        positive = torch.where(model["labels"] == 1)[0]
        assert torch.equal(torch.where(view.matches >= 0)[0], positive)
        # each positive anchor belongs to the object whose box its regression target encodes
        decoded = network.rpn.box_coder.decode(model["regression"][positive], view.anchors[positive]).reshape(-1, 4)
        torch.testing.assert_close(decoded, torch.from_numpy(view.boxes)[view.matches[positive]], atol=1e-3, rtol=0)
        crowd = np.flatnonzero(view.class_ids < 0)
        assert all(len(view.positive_anchors()[k]) == 0 for k in crowd)
        checked += positive.numel()

        if mode == "square":  # the same objects on a centred geometry would get other anchors
            (h, w), side = view.image_size, config.IMAGE_MAX_DIM
            shift = torch.tensor([(side - w) // 2, (side - h) // 2] * 2, dtype=torch.float32)
            assert shift.abs().sum() > 0
            centred = rpn_matches(view.anchors, torch.from_numpy(view.boxes) + shift, torch.from_numpy(view.class_ids < 0),
                                  positive_iou=config.RPN_POSITIVE_IOU, negative_iou=config.RPN_NEGATIVE_IOU)
            assert not torch.equal(centred >= 0, view.matches >= 0)
    assert checked > 0


def test_the_picture_is_the_network_input_padded_bottom_right():
    dataset = ShapesDataset(1, 48, 80, seed=0)
    config = _config("square")
    image, target = TrainingSamples(dataset, use_mini_mask=False)[0]
    view = training_view(image, target, config)
    # scale max(1, 64/48) = 4/3: 64 x 107 at the top-left of the 128 x 128 input, the rest the mean colour
    assert view.image_size == (64, 107) and view.image.shape == (128, 128, 3)
    mean = np.round(config.MEAN_PIXEL).astype(np.uint8)
    assert (view.image[64:] == mean).all() and (view.image[:, 107:] == mean).all()
    assert not view.masks[64:].any() and not view.masks[:, 107:].any()
    np.testing.assert_allclose(view.boxes, target["boxes"].numpy() * np.array([107 / 80, 4 / 3, 107 / 80, 4 / 3]),
                               rtol=1e-6)


def test_matterport_anchor_count_for_1024():
    config = Config()  # 1024 x 1024, scales 32..512, three ratios
    dataset = ShapesDataset(1, 64, 64, seed=0)
    view = training_view(*TrainingSamples(dataset, use_mini_mask=False)[0], config)
    assert view.anchors.shape == (261888, 4)  # (256² + 128² + 64² + 32² + 16²) * 3, matterport's number


def test_draw_sample_tints_masks():
    image = np.zeros((10, 12, 3), np.uint8)
    masks = np.zeros((10, 12, 1), bool)
    masks[4:8, 6:10, 0] = True
    pic = draw_sample(image, masks, np.array([[6.0, 4.0, 10.0, 8.0]]), np.array([1]), ["BG", "thing"], alpha=0.5)
    assert pic.shape == (10, 12, 3) and pic.dtype == np.uint8
    assert pic[5:7, 7:9].sum() > 0 and pic[9, 0].sum() == 0  # inside tinted, far corner untouched


def test_show_dataset_writes_pictures(tmp_path):
    ds = ShapesDataset(3, 64, 64, seed=0)
    cfg = Config(IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=128)
    shown = show_dataset(ds, tmp_path / "out", limit=2, config=cfg)
    assert [s.image_id for s in shown] == [0, 1]
    for item in shown:
        assert item.path.is_file() and Image.open(item.path).size == (128, 128)  # the network input
        n = ds.load_mask(item.image_id)[1].size
        assert len(item.anchors_per_object) == len(item.class_names) == n
        assert all(c >= 1 for c in item.anchors_per_object)  # every object gets at least its best anchor
    assert not [p for p in (tmp_path / "out").iterdir() if p.suffix != ".png"]


def test_show_dataset_crops_are_seeded_and_leave_the_global_rng_alone(tmp_path):
    ds = ShapesDataset(2, 80, 96, seed=0)
    cfg = Config(IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=128)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = show_dataset(ds, tmp_path / "a", limit=2, config=cfg, seed=5)
    assert torch.equal(torch.get_rng_state(), before)
    again = show_dataset(ds, tmp_path / "b", limit=2, config=cfg, seed=5)
    for a, b in zip(first, again):
        assert Image.open(a.path).size == (64, 64)
        assert np.array_equal(np.asarray(Image.open(a.path)), np.asarray(Image.open(b.path)))


def test_cli_show_dataset(tmp_path, capsys):
    assert main(["show-dataset", "shapes:2:48", "--out", str(tmp_path), "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "wrote 1 pictures" in out and len(list(tmp_path.glob("*.png"))) == 1
    assert main(["show-dataset", "shapes:2:48", "--out", str(tmp_path), "--limit", "0"]) == 1
    assert "--limit 0: must be >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("mode, window", [("square", (32, 10, 96, 117)), ("pad64", (0, 10, 64, 117))])
def test_matterport_config_centred_geometry_and_the_rpns_positive_anchors(mode, window, monkeypatch):
    from maskrcnn import MatterportConfig
    from maskrcnn.model.matterport import rpn as mp_rpn
    from maskrcnn.model.matterport.generic import pixel_boxes

    config = MatterportConfig(NAME="show_mp", NUM_CLASSES=4, BACKBONE="resnet50", IMAGE_RESIZE_MODE=mode,
                              IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=128, RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128),
                              TOP_DOWN_PYRAMID_SIZE=16, FPN_CLASSIF_FC_LAYERS_SIZE=32, POOL_SIZE=5,
                              MASK_HEAD_CONV_CHANNELS=8, MASK_HEAD_NUM_CONVS=1, TRAIN_ROIS_PER_IMAGE=16,
                              POST_NMS_ROIS_TRAINING=64, USE_MINI_MASK=False)
    image, target = TrainingSamples(CrowdedShapes(1, 48, 80, seed=3), use_mini_mask=False)[0]
    view = training_view(image, target, config)
    top, left, bottom, right = window
    # 48 x 80 scaled by 4/3 to 64 x 107 and padded centred (matterport's molding), the padding black
    assert view.image_size == (64, 107) and view.offset == (top, left)
    assert view.image.shape == ((128, 128, 3) if mode == "square" else (64, 128, 3))
    inside = np.zeros(view.image.shape[:2], bool)
    inside[top:bottom, left:right] = True
    assert (view.image[~inside] == 0).all() and view.image[inside].any()
    assert not view.masks[~inside].any()
    for k, box in enumerate(view.boxes):  # each box frames its mask (nearest-resized: within a pixel)
        ys, xs = np.nonzero(view.masks[..., k])
        np.testing.assert_allclose([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], box, atol=1.01)

    # the anchors and the boxes are those of the matterport RPN's training targets (seen in a training forward)
    seen = {}
    original = mp_rpn.rpn_targets

    def recording(anchors, image_shape, targets, **kwargs):
        seen.update(anchors=anchors, image_shape=image_shape, targets=targets, kwargs=kwargs)
        return original(anchors, image_shape, targets, **kwargs)

    monkeypatch.setattr(mp_rpn, "rpn_targets", recording)
    torch.manual_seed(0)
    network = MaskRCNNNetwork(config).train()
    with torch.no_grad():
        network([image], [target])
    assert torch.equal(view.anchors, pixel_boxes(seen["anchors"], seen["image_shape"]))
    (mp_target,) = seen["targets"]
    np.testing.assert_array_equal(view.boxes, mp_target["boxes"][:, [1, 0, 3, 2]].numpy())
    np.testing.assert_array_equal(view.class_ids, mp_target["class_ids"].numpy())
    # matterport's labels before its random subsampling (room for every anchor) = the picture's assignment
    kwargs = dict(seen["kwargs"], anchors_per_image=2 * view.anchors.shape[0])
    match, _ = original(seen["anchors"], seen["image_shape"], seen["targets"], **kwargs)
    assert (match[0] == 1).any() and (view.class_ids < 0).any()
    assert torch.equal(view.matches >= 0, match[0] == 1)
    assert torch.equal(view.matches == -1, match[0] == -1)


def test_cli_show_dataset_with_a_matterport_config(tmp_path, capsys):
    config = tmp_path / "mp.yaml"
    config.write_text("ARCHITECTURE: matterport\nIMAGE_MIN_DIM: 64\nIMAGE_MAX_DIM: 128\n")
    assert main(["show-dataset", "shapes:2:48", "--out", str(tmp_path / "out"), "--limit", "1",
                 "--config", str(config), "--no-anchors"]) == 0
    assert "wrote 1 pictures" in capsys.readouterr().out
    (png,) = (tmp_path / "out").glob("*.png")
    pixels = np.asarray(Image.open(png).convert("RGB"))
    # 48 x 48 molded to 64 x 64 and centred in 128 x 128: black all round (a name drawn above an object may
    # reach 12 pixels into the top padding and run to the right), the image in the middle
    assert pixels.shape == (128, 128, 3)
    assert (pixels[:20] == 0).all() and (pixels[96:] == 0).all() and (pixels[:, :32] == 0).all()
    assert pixels[32:96, 32:96].any(axis=-1).mean() > 0.9
