"""show-dataset: matterport pyramid anchors, anchor matching, pictures written by the API and the CLI."""

from __future__ import annotations


import numpy as np
import torch
from PIL import Image

from maskrcnn import Config
from maskrcnn.cli import main
from maskrcnn.data import ShapesDataset
from maskrcnn.data.show import draw_sample, match_anchors, pyramid_anchors, show_dataset


def test_one_level_anchors_by_hand():
    a = pyramid_anchors((8, 8), scales=[8], ratios=[1], strides=[4])
    # 2x2 cells, centers at (x, y) = cell * stride, row-major
    assert a.tolist() == [[-4, -4, 4, 4], [0, -4, 8, 4], [-4, 0, 4, 8], [0, 0, 8, 8]]
    r = pyramid_anchors((4, 4), scales=[8], ratios=[0.5, 1, 2], strides=[4])
    # ratio 2 = width / height: 8·√2 x 8/√2 = 11.31 x 5.66, half sides rounded like torchvision → 6 and 3
    assert r.tolist() == [[-3, -6, 3, 6], [-4, -4, 4, 4], [-6, -3, 6, 3]]


def test_matterport_anchor_count_for_1024():
    cfg = Config()
    a = pyramid_anchors((1024, 1024), scales=cfg.RPN_ANCHOR_SCALES, ratios=cfg.RPN_ANCHOR_RATIOS,
                        strides=cfg.BACKBONE_STRIDES)
    assert a.shape == (261888, 4)  # (256² + 128² + 64² + 32² + 16²) * 3, matterport's number


def test_match_anchors_threshold_and_best():
    anchors = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 11], [20, 20, 30, 30], [50, 50, 60, 60.]])
    gt = torch.tensor([[0, 0, 10, 10], [21, 21, 29, 33.]])
    matched = match_anchors(gt, anchors, iou_threshold=0.7)
    assert matched[0].tolist() == [0, 1]  # IoU 1 and 10/11
    assert matched[1].tolist() == [2]  # below 0.7 but its best anchor


def test_draw_sample_tints_masks():
    image = np.zeros((10, 12, 3), np.uint8)
    masks = np.zeros((10, 12, 1), bool)
    masks[4:8, 6:10, 0] = True
    pic = draw_sample(image, masks, np.array([1]), ["BG", "thing"], alpha=0.5)
    assert pic.shape == (10, 12, 3) and pic.dtype == np.uint8
    assert pic[5:7, 7:9].sum() > 0 and pic[9, 0].sum() == 0  # inside tinted, far corner untouched


def test_show_dataset_writes_pictures(tmp_path):
    ds = ShapesDataset(3, 64, 64, seed=0)
    cfg = Config(IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=128)
    shown = show_dataset(ds, tmp_path / "out", limit=2, config=cfg)
    assert [s.image_id for s in shown] == [0, 1]
    for item in shown:
        assert item.path.is_file() and Image.open(item.path).size == (64, 64)
        n = ds.load_mask(item.image_id)[1].size
        assert len(item.anchors_per_object) == len(item.class_names) == n
        assert all(c >= 1 for c in item.anchors_per_object)  # every object gets at least its best anchor
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_cli_show_dataset(tmp_path, capsys):
    assert main(["show-dataset", "shapes:2:48", "--out", str(tmp_path), "--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "wrote 1 pictures" in out and len(list(tmp_path.glob("*.png"))) == 1
    assert main(["show-dataset", "shapes:2:48", "--out", str(tmp_path), "--limit", "0"]) == 1
    assert "--limit 0: must be >= 1" in capsys.readouterr().err
