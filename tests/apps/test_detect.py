"""detect: image collection, the files written, and that other tools read them back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskrcnn.apps.detect import collect_images, detect_images, filter_result
from maskrcnn.apps.export_predictions import ImageRecord, coco_images_document, labelme_document, via_export
from maskrcnn.apps.polygons import polygons_to_mask
from maskrcnn.apps.splash import union_of_detections
from maskrcnn.config import Config
from maskrcnn.errors import ImageError, MaskRCNNError

CLASS_NAMES = ["BG", "balloon", "cat"]


def _instances(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two instances whose geometry depends on the image size: a rectangle and a disc."""
    rect = np.zeros((height, width), dtype=bool)
    rect[2:12, 3:20] = True  # rows 2..11, columns 3..19
    yy, xx = np.mgrid[:height, :width]
    disc = (xx - width * 0.6) ** 2 + (yy - height * 0.6) ** 2 < (min(height, width) * 0.25) ** 2
    masks = np.stack([rect, disc], axis=-1)
    rois = np.array([[2, 3, 12, 20], _mask_box(disc)], dtype=np.float32)  # (y1, x1, y2, x2)
    return rois, np.array([1, 2], dtype=np.int32), np.array([0.9, 0.4], dtype=np.float32), masks


def _mask_box(mask: np.ndarray) -> list[int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [rows[0], cols[0], rows[-1] + 1, cols[-1] + 1]


class FakeModel:
    """matterport's detect() API with known answers."""

    class_names = CLASS_NAMES

    def __init__(self) -> None:
        self.calls: list[int] = []

    config = Config(NUM_CLASSES=len(CLASS_NAMES))
    detect_union = union_of_detections  # a Detector with only ``detect``

    def detect(self, images, verbose=0, batch_size=None):
        self.calls.append(len(images))
        out = []
        for image in images:
            rois, class_ids, scores, masks = _instances(*image.shape[:2])
            out.append({"rois": rois, "class_ids": class_ids, "scores": scores, "masks": masks})
        return out


@pytest.fixture()
def image_tree(tmp_path: Path) -> Path:
    """a/one.jpg (40x60), a/two.png (48x64), b/one.png (32x32), a/notes.txt."""
    rng = np.random.default_rng(0)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(tmp_path / "a" / "one.jpg")
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "a" / "two.png")
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "b" / "one.png")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    return tmp_path


def test_collect_images_files_folders_globs(image_tree: Path):
    a, b = image_tree / "a", image_tree / "b"
    assert collect_images([a]) == [a / "one.jpg", a / "two.png"]
    assert collect_images([str(image_tree / "**" / "one.*")]) == [a / "one.jpg", b / "one.png"]
    # Duplicates (same file named twice, also through a folder) are dropped, order kept.
    assert collect_images([b / "one.png", a, str(a / "*.png")]) == [b / "one.png", a / "one.jpg", a / "two.png"]


def test_collect_images_names_the_bad_argument(image_tree: Path):
    with pytest.raises(ImageError, match="missing.jpg: no such image file or folder"):
        collect_images([image_tree / "a", image_tree / "missing.jpg"])
    (image_tree / "empty").mkdir()
    with pytest.raises(ImageError, match="empty: the folder holds no images"):
        collect_images([image_tree / "empty"])
    with pytest.raises(ImageError, match=r"\*\.bmp: the pattern matches no image files"):
        collect_images([str(image_tree / "*.bmp")])


def test_detect_writes_pictures_coco_via_labelme(image_tree: Path, tmp_path: Path):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    paths = collect_images([image_tree / "a", image_tree / "b"])
    model = FakeModel()
    out = tmp_path / "out"
    lines: list[str] = []
    run = detect_images(model, paths, out, batch_size=2, progress=lines.append)
    assert model.calls == [2, 1]
    assert len(lines) == 3
    # Unique names although two images share the stem "one".
    assert [p.name for p in run.pictures] == ["one.png", "two.png", "one_2.png"]
    assert Image.open(run.pictures[1]).size == (64, 48)
    assert run.counts == {"one": 2, "two": 2, "one_2": 2}

    gt = COCO(str(out / "images.json"))
    assert [c["name"] for c in gt.loadCats(gt.getCatIds())] == ["balloon", "cat"]
    dt = gt.loadRes(str(out / "predictions.json"))
    assert len(dt.getAnnIds()) == 6
    two = gt.loadImgs([2])[0]
    assert (two["file_name"], two["height"], two["width"]) == ("two.png", 48, 64)
    anns = dt.loadAnns(dt.getAnnIds(imgIds=[2]))
    rois, class_ids, scores, masks = _instances(48, 64)
    for k, ann in enumerate(sorted(anns, key=lambda a: -a["score"])):
        assert ann["category_id"] == class_ids[k]
        assert ann["score"] == pytest.approx(scores[k])
        assert np.array_equal(mask_utils.decode(ann["segmentation"]).astype(bool), masks[:, :, k])
    assert anns[0]["bbox"] == pytest.approx([3, 2, 17, 10])  # [x, y, w, h] of the rectangle

    via = json.loads((out / "via_region_data.json").read_text())
    size = (image_tree / "a" / "two.png").stat().st_size
    entry = via[f"two.png{size}"]
    assert entry["filename"] == "two.png" and entry["size"] == size
    assert [r["region_attributes"] for r in entry["regions"]] == [
        {"name": "balloon", "score": "0.900"}, {"name": "cat", "score": "0.400"}]
    rect = entry["regions"][0]["shape_attributes"]
    assert rect == {"name": "polygon", "all_points_x": [2.5, 19.5, 19.5, 2.5], "all_points_y": [1.5, 1.5, 11.5, 11.5]}

    labelme = json.loads((out / "labelme" / "two.json").read_text())
    assert labelme["imagePath"] == "two.png"  # the image is placed beside its JSON, as labelme keeps them
    assert (out / "labelme" / "two.png").read_bytes() == (image_tree / "a" / "two.png").read_bytes()
    assert (out / "labelme" / "one_2.png").read_bytes() == (image_tree / "b" / "one.png").read_bytes()
    assert (labelme["imageHeight"], labelme["imageWidth"], labelme["imageData"]) == (48, 64, None)
    assert [s["label"] for s in labelme["shapes"]] == ["balloon", "cat"]
    disc_poly = np.array(labelme["shapes"][1]["points"])
    back = polygons_to_mask([disc_poly], 48, 64)
    iou = (back & masks[:, :, 1]).sum() / (back | masks[:, :, 1]).sum()
    assert iou > 0.93


def test_min_confidence_and_polygon_format(image_tree: Path, tmp_path: Path):
    out = tmp_path / "out"
    run = detect_images(FakeModel(), [image_tree / "b" / "one.png"], out, min_confidence=0.5,
                        polygon_format="via", pictures=False)
    assert run.counts == {"one": 1}
    assert run.pictures == [] and run.labelme == [] and not (out / "labelme").exists()
    preds = json.loads((out / "predictions.json").read_text())
    assert [p["category_id"] for p in preds] == [1]
    with pytest.raises(MaskRCNNError, match="polygon format 'svg'"):
        detect_images(FakeModel(), [image_tree / "b" / "one.png"], out, polygon_format="svg")
    with pytest.raises(MaskRCNNError, match="batch size 0"):
        detect_images(FakeModel(), [image_tree / "b" / "one.png"], out, batch_size=0)


def test_unreadable_image_is_named(tmp_path: Path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ImageError, match="broken.jpg"):
        detect_images(FakeModel(), [bad], tmp_path / "out")


def test_filter_result_keeps_arrays_aligned():
    rois, class_ids, scores, masks = _instances(30, 30)
    result = filter_result({"rois": rois, "class_ids": class_ids, "scores": scores, "masks": masks}, 0.95)
    assert result["rois"].shape == (0, 4) and result["masks"].shape == (30, 30, 0)
    result = filter_result({"rois": rois, "class_ids": class_ids, "scores": scores, "masks": masks}, 0.4)
    assert result["class_ids"].tolist() == [1, 2]


def test_exports_without_detections(tmp_path: Path):
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((10, 12, 3), dtype=np.uint8)).save(image)
    record = ImageRecord(path=image, image_id=1, height=10, width=12, name="x")
    empty = {"rois": np.zeros((0, 4)), "class_ids": np.zeros(0, int), "scores": np.zeros(0),
             "masks": np.zeros((10, 12, 0), bool)}
    via = via_export([record], [empty], CLASS_NAMES)
    assert list(via.values())[0]["regions"] == []
    doc = labelme_document(record, empty, CLASS_NAMES, image_path="x.png")
    assert doc["shapes"] == [] and doc["imagePath"] == "x.png"
    images = coco_images_document([record], CLASS_NAMES)
    assert images["categories"] == [{"id": 1, "name": "balloon", "supercategory": ""},
                                    {"id": 2, "name": "cat", "supercategory": ""}]


def test_polygon_files_load_back_as_datasets(image_tree: Path, tmp_path: Path):
    """What detect writes is a dataset again: VIA (with --class-attribute name) and labelme."""
    from maskrcnn.data.loading import load_dataset

    out = tmp_path / "out"
    detect_images(FakeModel(), collect_images([image_tree / "a"]), out, pictures=False)
    rois, class_ids, scores, masks = _instances(48, 64)
    via = load_dataset(out / "via_region_data.json", format="via", class_attribute="name", image_dir=image_tree / "a")
    labelme = load_dataset(out / "labelme", format="labelme")
    for dataset in (via, labelme):
        assert sorted(dataset.class_names[1:]) == ["balloon", "cat"]
        (two,) = [i for i in dataset.image_ids if dataset.image_reference(i).endswith("two.png")]
        got, got_ids = dataset.load_mask(two)
        assert got.shape == (48, 64, 2)
        assert [dataset.class_names[c] for c in got_ids] == ["balloon", "cat"]
        assert np.array_equal(got[:, :, 0], masks[:, :, 0])  # the rectangle comes back exactly
        iou = (got[:, :, 1] & masks[:, :, 1]).sum() / (got[:, :, 1] | masks[:, :, 1]).sum()
        assert iou > 0.93


def test_detect_command_with_a_checkpoint(image_tree: Path, tmp_path: Path, capsys):
    """`maskrcnn detect` end to end with a small random-weight model (threshold lowered to 0)."""
    import torch

    from maskrcnn.cli import main
    from maskrcnn.detector import MaskRCNN

    torch.manual_seed(0)
    config = Config(NAME="detect_test", NUM_CLASSES=3, BACKBONE="resnet18", BACKBONE_NORM="gn",
                    TOP_DOWN_PYRAMID_SIZE=32, MASK_HEAD_CONV_CHANNELS=16, MASK_HEAD_NUM_CONVS=1,
                    FPN_CLASSIF_FC_LAYERS_SIZE=64, IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=64,
                    RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128), POST_NMS_ROIS_INFERENCE=40, DETECTION_MAX_INSTANCES=3)
    weights = MaskRCNN(config, class_names=CLASS_NAMES, device="cpu").save(tmp_path / "model.pt")
    out = tmp_path / "out"
    code = main(["detect", "--weights", str(weights), str(image_tree / "a"), str(image_tree / "b" / "one.png"),
                 "--out", str(out), "--min-confidence", "0", "--batch-size", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "detecting in 3 image(s)" in printed and "via_region_data.json" in printed
    assert sorted(p.name for p in (out / "pictures").iterdir()) == ["one.png", "one_2.png", "two.png"]
    from pycocotools.coco import COCO

    gt = COCO(str(out / "images.json"))
    preds = json.loads((out / "predictions.json").read_text())
    assert len(preds) == 9  # the threshold is 0, so every image has DETECTION_MAX_INSTANCES detections
    assert {p["category_id"] for p in preds} <= {1, 2}
    assert len(gt.loadRes(str(out / "predictions.json")).getAnnIds()) == 9
    assert main(["detect", "--weights", str(weights), str(image_tree / "a"), "--out", str(out),
                 "--min-confidence", "1.5"]) == 1
    assert "--min-confidence=1.5: must be in [0, 1)" in capsys.readouterr().err
    assert main(["detect", "--weights", str(tmp_path / "missing.pt"), str(image_tree / "a"), "--out", str(out)]) == 1
    assert "--weights: " in (err := capsys.readouterr().err) and "missing.pt: weights file not found" in err


@pytest.mark.slow
def test_load_model_reads_torchvision_coco_weights(tmp_path: Path):
    """torchvision's maskrcnn_resnet50_fpn state dict loads as a TorchvisionConfig model with COCO's names."""
    import torch
    from torchvision.models.detection import maskrcnn_resnet50_fpn

    from maskrcnn.apps.detect import load_model

    torch.manual_seed(0)
    reference = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).eval()
    path = tmp_path / "maskrcnn_resnet50_fpn_coco.pth"
    torch.save(reference.state_dict(), path)
    model = load_model(path, device="cpu", min_confidence=0.3)
    assert model.config.NAME == "torchvision_coco" and len(model.class_names) == 91
    assert model.class_names[1] == "person" and model.config.DETECTION_MIN_CONFIDENCE == 0.3
    ours = model.network.state_dict()
    assert torch.equal(ours["roi_heads.box_predictor.cls_score.weight"],
                       reference.state_dict()["roi_heads.box_predictor.cls_score.weight"])
