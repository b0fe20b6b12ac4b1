"""Color splash on images: luminance, mask layouts, filtering, files, CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from maskrcnn import cli
from maskrcnn.apps import detect as detect_app
from maskrcnn.apps.splash import (
    color_splash,
    detect_and_color_splash,
    filter_detections,
    luminance,
    mask_union,
    splash_unions,
    union_of_detections,
)
from maskrcnn.config import Config
from maskrcnn.errors import ImageError, MaskRCNNError


REAL_LOAD_MODEL = detect_app.load_model


class StandInModel:
    """Same ``detect`` signature as MaskRCNN; returns the masks it was given."""

    def __init__(self, results: list[dict], class_names=("BG", "balloon", "person"), min_confidence=0.7):
        self.results = results
        self.class_names = list(class_names)
        self.config = Config(DETECTION_MIN_CONFIDENCE=min_confidence)
        self.calls: list[int] = []

    detect_union = union_of_detections  # a Detector with only ``detect``

    def detect(self, images, verbose=0, batch_size=None):
        self.calls.append(len(images))
        return [self.results[i % len(self.results)] for i in range(len(images))]


def _result(masks: np.ndarray, class_ids, scores) -> dict:
    """A detect() result for H×W×N masks; rois are the masks' boxes (y1, x1, y2, x2)."""
    rois = []
    for i in range(masks.shape[2]):
        ys, xs = np.nonzero(masks[..., i])
        rois.append([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1])
    return {
        "rois": np.asarray(rois, dtype=np.int32).reshape(-1, 4),
        "class_ids": np.asarray(class_ids, dtype=np.int32),
        "scores": np.asarray(scores, dtype=np.float32),
        "masks": masks,
    }


def _balloon_masks(shared_data: Path, index: int) -> tuple[Path, np.ndarray]:
    """A real balloon image and its VIA polygons rasterized to H×W×N bool masks."""
    folder = shared_data / "balloon" / "val"
    annotations = list(json.loads((folder / "via_region_data.json").read_text()).values())
    entry = annotations[index]
    path = folder / entry["filename"]
    width, height = Image.open(path).size
    masks = []
    for region in entry["regions"].values():
        shape = region["shape_attributes"]
        canvas = Image.new("L", (width, height), 0)
        ImageDraw.Draw(canvas).polygon(list(zip(shape["all_points_x"], shape["all_points_y"])), fill=1)
        masks.append(np.asarray(canvas, dtype=bool))
    return path, np.stack(masks, axis=-1)


# ----------------------------------------------------------------------------------
# the effect


def test_luminance_is_bit_exact_with_pil_convert_L():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(512, 512, 3), dtype=np.uint8)
    # every corner of the RGB cube
    image[0, :8] = [[r, g, b] for r in (0, 255) for g in (0, 255) for b in (0, 255)]
    expected = np.asarray(Image.fromarray(image).convert("L"))
    got = luminance(image)
    assert got.dtype == np.uint8 and got.shape == (512, 512)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(luminance(torch.from_numpy(image)).numpy(), expected)
    # by hand: (19595*200 + 38470*100 + 7471*50 + 32768) >> 16 = 8172318 >> 16 = 124
    assert luminance(np.array([[[200, 100, 50]]], dtype=np.uint8))[0, 0] == 124
    assert luminance(np.full((1, 1, 3), 255, dtype=np.uint8))[0, 0] == 255


def test_color_splash_real_balloon_with_via_polygons(shared_data):
    path, masks = _balloon_masks(shared_data, index=9)
    image = np.asarray(Image.open(path).convert("RGB"))
    assert masks.shape == image.shape[:2] + (6,) and masks.any(axis=(0, 1)).all()
    out = color_splash(image, masks)
    assert out.dtype == np.uint8 and out.shape == image.shape
    union = masks.any(axis=-1)
    assert 0.01 < union.mean() < 0.9  # both sides are tested
    gray = np.asarray(Image.open(path).convert("RGB").convert("L"))
    outside = out[~union]
    np.testing.assert_array_equal(outside[:, 0], outside[:, 1])
    np.testing.assert_array_equal(outside[:, 1], outside[:, 2])
    np.testing.assert_array_equal(outside[:, 0], gray[~union])
    np.testing.assert_array_equal(out[union], image[union])
    assert np.abs(image[union][:, 0].astype(int) - image[union][:, 1]).mean() > 10  # color really kept


def test_color_splash_without_masks_is_all_gray():
    image = np.random.default_rng(1).integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    gray = np.asarray(Image.fromarray(image).convert("L"))
    for empty in (np.zeros((6, 5, 0), dtype=bool), torch.zeros((0, 6, 5), dtype=torch.bool)):
        out = color_splash(image, empty)
        np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))


def test_color_splash_mask_layouts_agree():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(16, 12, 3), dtype=np.uint8)
    nhw = rng.random((3, 16, 12)) > 0.8
    hwn = np.ascontiguousarray(nhw.transpose(1, 2, 0))
    expected = np.asarray(Image.fromarray(image).convert("L"))[..., None].repeat(3, axis=2)
    union = nhw.any(axis=0)
    expected[union] = image[union]
    np.testing.assert_array_equal(color_splash(image, hwn), expected)
    np.testing.assert_array_equal(color_splash(image, nhw.transpose(1, 2, 0)), expected)  # strided view
    np.testing.assert_array_equal(color_splash(image, hwn.astype(np.uint8)), expected)  # 0/1 masks
    np.testing.assert_array_equal(color_splash(image, torch.from_numpy(nhw)), expected)  # N×H×W tensor
    out_t = color_splash(torch.from_numpy(image), torch.from_numpy(nhw))
    assert isinstance(out_t, torch.Tensor)
    np.testing.assert_array_equal(out_t.numpy(), expected)
    np.testing.assert_array_equal(mask_union(hwn, height=16, width=12), union)


def test_color_splash_bad_inputs_name_the_problem():
    image = np.zeros((4, 5, 3), dtype=np.uint8)
    with pytest.raises(ImageError, match=r"4×5×N"):
        color_splash(image, np.zeros((5, 4, 1), dtype=bool))
    with pytest.raises(ImageError, match=r"N×4×5"):
        color_splash(image, torch.zeros((1, 5, 4), dtype=torch.bool))
    with pytest.raises(ImageError, match="uint8"):
        color_splash(image.astype(np.float32), np.zeros((4, 5, 0), dtype=bool))
    with pytest.raises(ImageError, match="H×W×3"):
        color_splash(np.zeros((4, 5), dtype=np.uint8), np.zeros((4, 5, 0), dtype=bool))


# ----------------------------------------------------------------------------------
# filtering


def _three_detections() -> dict:
    masks = np.zeros((4, 4, 3), dtype=bool)
    masks[0, 0, 0] = masks[1, 1, 1] = masks[2, 2, 2] = True
    return _result(masks, class_ids=[1, 2, 1], scores=[0.95, 0.9, 0.75])


def test_filter_detections_by_class_and_score():
    r = _three_detections()
    names = ["BG", "balloon", "person"]
    kept = filter_detections(r, names, classes=["balloon"])
    np.testing.assert_array_equal(kept["class_ids"], [1, 1])
    np.testing.assert_array_equal(kept["scores"], np.float32([0.95, 0.75]))
    np.testing.assert_array_equal(kept["masks"], r["masks"][..., [0, 2]])
    np.testing.assert_array_equal(kept["rois"], [[0, 0, 1, 1], [2, 2, 3, 3]])
    kept = filter_detections(r, names, min_confidence=0.8)
    np.testing.assert_array_equal(kept["class_ids"], [1, 2])
    kept = filter_detections(r, names, classes=[2, "balloon"], min_confidence=0.8)
    np.testing.assert_array_equal(kept["scores"], np.float32([0.95, 0.9]))
    none = filter_detections(r, names, classes=["person"], min_confidence=0.95)
    assert none["masks"].shape == (4, 4, 0) and none["rois"].shape == (0, 4)
    assert filter_detections(r, names)["masks"].shape == (4, 4, 3)
    tensor_masks = dict(r, masks=torch.from_numpy(r["masks"].transpose(2, 0, 1).copy()))
    assert filter_detections(tensor_masks, names, classes=["person"])["masks"].shape == (1, 4, 4)


def test_filter_detections_refuses_unknown_classes_and_bad_scores():
    r = _three_detections()
    with pytest.raises(MaskRCNNError, match=r"unknown class 'dog'.*balloon"):
        filter_detections(r, ["BG", "balloon", "person"], classes=["dog"])
    with pytest.raises(MaskRCNNError, match="class id 3"):
        filter_detections(r, ["BG", "balloon", "person"], classes=[3])
    with pytest.raises(MaskRCNNError, match="min_confidence"):
        filter_detections(r, ["BG", "balloon", "person"], min_confidence=1.5)


# ----------------------------------------------------------------------------------
# detect_and_color_splash on images


def test_detect_and_color_splash_image_png_and_jpeg(shared_data, tmp_path):
    path, masks = _balloon_masks(shared_data, index=5)
    n = masks.shape[2]
    r = _result(masks, class_ids=[1] * (n - 1) + [2], scores=[0.9] * n)
    model = StandInModel([r])
    image = np.asarray(Image.open(path).convert("RGB"))

    out = detect_and_color_splash(model, image_path=path, out_path=tmp_path / "sub" / "s.png", progress=False)
    assert out == tmp_path / "sub" / "s.png" and model.calls == [1]
    np.testing.assert_array_equal(np.asarray(Image.open(out)), color_splash(image, masks))

    out = detect_and_color_splash(model, path, out_path=tmp_path / "s.png", classes=["person"])
    np.testing.assert_array_equal(np.asarray(Image.open(out)), color_splash(image, masks[..., -1:]))

    out = detect_and_color_splash(model, path, out_path=tmp_path / "s.JPG")
    assert Image.open(out).format == "JPEG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.JPG", "s.png", "sub"]  # no temp files left


def test_detect_and_color_splash_default_name_and_errors(shared_data, tmp_path, monkeypatch):
    path, masks = _balloon_masks(shared_data, index=6)
    model = StandInModel([_result(masks, [1], [0.99])])
    monkeypatch.chdir(tmp_path)
    out = detect_and_color_splash(model, image_path=path)
    assert re.fullmatch(rf"splash_{re.escape(path.stem)}_\d{{8}}T\d{{6}}\.png", str(out))
    assert (tmp_path / out).is_file()

    with pytest.raises(MaskRCNNError, match="exactly one"):
        detect_and_color_splash(model)
    with pytest.raises(MaskRCNNError, match="exactly one"):
        detect_and_color_splash(model, image_path=path, video_path=path)
    with pytest.raises(MaskRCNNError, match=r"'\.gif'"):
        detect_and_color_splash(model, image_path=path, out_path=tmp_path / "x.gif")
    with pytest.raises(MaskRCNNError, match="unknown class 'dog'"):
        detect_and_color_splash(model, image_path=path, classes=["dog"])
    with pytest.raises(ImageError, match="missing.jpg"):
        detect_and_color_splash(model, image_path=tmp_path / "missing.jpg")
    with pytest.warns(UserWarning, match="DETECTION_MIN_CONFIDENCE"):
        detect_and_color_splash(model, image_path=path, out_path=tmp_path / "low.png", min_confidence=0.5)
    assert model.calls == [1, 1]  # errors were raised before running the model


class DetectOnly:
    """A model seen only through ``detect``: its union is :func:`union_of_detections`, not the model's own."""

    detect_union = union_of_detections

    def __init__(self, model):
        self.model, self.class_names, self.config = model, model.class_names, model.config

    def detect(self, images, verbose=0, batch_size=None):
        return self.model.detect(images, verbose=verbose, batch_size=batch_size)


def test_splash_unions_on_the_model_device_equal_the_detect_path():
    from maskrcnn.detector import MaskRCNN

    torch.manual_seed(0)
    config = Config(NAME="tiny", NUM_CLASSES=3, BACKBONE="resnet18", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=128,
                    TOP_DOWN_PYRAMID_SIZE=16, FPN_CLASSIF_FC_LAYERS_SIZE=32, MASK_HEAD_CONV_CHANNELS=16,
                    MASK_HEAD_NUM_CONVS=1, POST_NMS_ROIS_INFERENCE=50, DETECTION_MIN_CONFIDENCE=0.0,
                    DETECTION_MAX_INSTANCES=7)
    model = MaskRCNN(config, class_names=["BG", "cat", "dog"], device="cpu")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (90, 120, 3), dtype=np.uint8), rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)]
    covered = 0
    for classes, min_confidence in [(None, None), (["dog"], None), ([1], 0.35), (None, 0.99)]:
        fast = splash_unions(model, images, classes=classes, min_confidence=min_confidence)
        slow = splash_unions(DetectOnly(model), images, classes=classes, min_confidence=min_confidence)
        for a, b in zip(fast, slow):
            assert a.dtype == bool and np.array_equal(a, b)
            covered += bool(0 < a.sum() < a.size)
    assert covered >= 3
    with pytest.raises(MaskRCNNError, match="unknown class 'bird'"):
        splash_unions(model, images, classes=["bird"])
    with pytest.raises(MaskRCNNError, match="min_confidence"):
        splash_unions(model, images, min_confidence=1.5)


# ----------------------------------------------------------------------------------
# CLI


@pytest.fixture()
def patched_model(monkeypatch, shared_data):
    """``maskrcnn.apps.detect.load_model`` returning the stand-in model."""
    path, masks = _balloon_masks(shared_data, index=7)
    model = StandInModel([_result(masks, [1] * masks.shape[2], [0.9] * masks.shape[2])])
    calls = []

    def load_model(weights, device=None, min_confidence=None, optimize=False, amp=None, class_names=None):
        calls.append((Path(weights), device, optimize, amp, min_confidence))
        return model

    # the CLI's contract: ``load_model(path, device=..., min_confidence=..., optimize=..., amp=..., class_names=...)``
    monkeypatch.setattr(detect_app, "load_model", load_model)
    return path, masks, calls


def test_cli_splash_image(patched_model, tmp_path, capsys):
    path, masks, calls = patched_model
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"stand-in")
    out = tmp_path / "out.png"
    argv = ["splash", "--weights", str(weights), "--image", str(path), "--out", str(out), "--classes", "balloon"]
    assert cli.main([*argv, "--device", "cpu", "--min-confidence", "0.8"]) == 0
    assert calls == [(weights, "cpu", True, None, 0.8)]  # the optimized inference path by default; the threshold
    assert str(out) in capsys.readouterr().out
    image = np.asarray(Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(np.asarray(Image.open(out)), color_splash(image, masks))
    assert cli.main([*argv, "--no-optimize", "--amp", "fp16"]) == 0
    assert calls[-1] == (weights, None, False, "fp16", None)


def test_cli_splash_errors_are_one_line(patched_model, tmp_path, capsys):
    path, _, calls = patched_model
    patched = detect_app.load_model
    detect_app.load_model = REAL_LOAD_MODEL  # the weights rule itself names the missing file
    try:
        assert cli.main(["splash", "--weights", str(tmp_path / "nope.pt"), "--image", str(path)]) == 1
    finally:
        detect_app.load_model = patched
    assert "--weights: " in (err := capsys.readouterr().err) and "nope.pt: weights file not found" in err
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"stand-in")
    assert cli.main(["splash", "--weights", str(weights), "--image", str(tmp_path / "no.jpg")]) == 1
    assert "--image: file not found" in capsys.readouterr().err
    assert cli.main(["splash", "--weights", str(weights), "--image", str(path), "--classes", "dog"]) == 1
    err = capsys.readouterr().err
    assert "unknown class 'dog'" in err and "Traceback" not in err
    assert cli.main(["splash", "--weights", str(weights), "--image", str(path), "--batch-size", "0"]) == 1
    assert "--batch-size" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --image and --video are exclusive
        cli.main(["splash", "--weights", str(weights), "--image", str(path), "--video", str(path)])
