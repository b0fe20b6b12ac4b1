"""Smoke tests of the tutorial ports under samples/: every command runs on tiny settings.

Each sample is imported from its file and its ``main(argv)`` called in-process with
``--smoke`` (a tiny CPU model, one step per epoch), on the real datasets of
``../shared/data``; logs, checkpoints and results go to a temporary folder.
"""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):
    """Import samples/<name>/<name>.py as a module (samples are programs, not a package)."""
    path = ROOT / "samples" / name / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"sample_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _checkpoints(logs: Path, name: str) -> list[Path]:
    return sorted(logs.glob(f"{name}*/mask_rcnn_{name}_*.pth"))


def test_balloon_train_then_splash(shared_data: Path, tmp_path: Path, monkeypatch):
    balloon = _load("balloon")
    dataset = shared_data / "balloon"
    # The dataset class reads VIA like the tutorial's: 61 annotated training images, one class.
    train_set = balloon.BalloonDataset()
    train_set.load_balloon(str(dataset), "train")
    train_set.prepare()
    assert (train_set.num_images, train_set.class_names) == (61, ["BG", "balloon"])
    masks, class_ids = train_set.load_mask(0)
    assert masks.dtype == bool and masks.shape[-1] == class_ids.shape[0] > 0 and set(class_ids) == {1}

    logs = tmp_path / "logs"
    assert balloon.main(["train", "--smoke", "--weights", "none", "--dataset", str(dataset),
                         "--logs", str(logs)]) == 0
    assert [p.name for p in _checkpoints(logs, "balloon")] == ["mask_rcnn_balloon_0001.pth"]

    monkeypatch.chdir(tmp_path)  # the tutorial writes splash_<name>_<time>.png to the working folder
    image = dataset / "val" / "3825919971_93fb1ec581_b.jpg"
    assert balloon.main(["splash", "--smoke", "--weights", "last", "--logs", str(logs), "--image", str(image)]) == 0
    (splash,) = tmp_path.glob("splash_3825919971_93fb1ec581_b_*.png")
    assert Image.open(splash).size == Image.open(image).size


def test_shapes_train_evaluate_detect(tmp_path: Path, capsys):
    shapes = _load("shapes")
    logs = tmp_path / "logs"
    assert shapes.main(["train", "--smoke", "--weights", "none", "--logs", str(logs)]) == 0
    # Two stages (heads, then all layers) continue one run folder: epochs 1 and 2.
    assert [p.name for p in _checkpoints(logs, "shapes")] == ["mask_rcnn_shapes_0001.pth", "mask_rcnn_shapes_0002.pth"]
    capsys.readouterr()
    assert shapes.main(["evaluate", "--smoke", "--weights", "last", "--logs", str(logs), "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "mAP (masks): " in out and "mAP (boxes): " in out
    assert shapes.main(["detect", "--smoke", "--weights", "last", "--logs", str(logs)]) == 0
    assert (logs / "shapes_detection_100.png").is_file()


def test_coco_train_and_evaluate(shared_data: Path, tmp_path: Path, capsys):
    coco = _load("coco")
    dataset = shared_data / "coco_val2017_4img"
    logs = tmp_path / "logs"
    args = ["--dataset", str(dataset), "--year", "2017", "--logs", str(logs), "--smoke"]
    # The 4-image folder has one annotations.json: 80 categories with COCO's non-contiguous ids.
    val = coco.CocoDataset()
    val.load_coco(str(dataset), "val", year="2017")
    val.prepare()
    assert (val.num_images, val.num_classes) == (4, 81)
    assert val.get_source_class_id(80, "coco") == 90
    assert coco.main(["train", "--model", "none"] + args) == 0
    assert len(_checkpoints(logs, "coco")) >= 1 and _checkpoints(logs, "coco")[-1].name == "mask_rcnn_coco_0003.pth"
    capsys.readouterr()
    assert coco.main(["evaluate", "--model", "last", "--limit", "1"] + args) == 0
    out = capsys.readouterr().out
    assert "Running COCO evaluation on 1 images." in out and "Prediction time:" in out


def test_coco_missing_annotations_are_named(tmp_path: Path):
    coco = _load("coco")
    from maskrcnn.errors import DatasetError

    with pytest.raises(DatasetError, match="instances_val2017.json"):
        coco.CocoDataset().load_coco(str(tmp_path), "val", year="2017")


def test_nucleus_rle_matches_kaggle_format():
    nucleus = _load("nucleus")
    mask = np.zeros((4, 3), dtype=np.uint8)
    mask[1:3, 0] = 1  # column-major pixels 2, 3 (1-based)
    mask[0, 2] = 1  # pixel 9
    assert nucleus.rle_encode(mask) == "2 2 9 1"
    assert np.array_equal(nucleus.rle_decode("2 2 9 1", (4, 3)), mask.astype(bool))
    # Overlaps go to the higher score; an image without detections is one "id," line.
    masks = np.zeros((4, 3, 2), dtype=bool)
    masks[:, 0, 0] = True
    masks[1:, 0, 1] = True
    lines = nucleus.mask_to_rle("img", masks, np.array([0.2, 0.9])).split("\n")
    assert lines == ["img, 2 3", "img, 1 1"]
    assert nucleus.mask_to_rle("img", np.zeros((4, 3, 0), bool), np.zeros(0)) == "img,"


def test_nucleus_train_then_detect_writes_submission(shared_data: Path, tmp_path: Path):
    nucleus = _load("nucleus")
    dataset = shared_data / "dsb2018_sample"
    val = nucleus.NucleusDataset()
    val.load_nucleus(str(dataset), "val")
    val.prepare()
    assert sorted(val.image_info[i]["id"][:6] for i in val.image_ids) == ["0c2550", "0ea221"]
    logs, results = tmp_path / "logs", tmp_path / "results"
    assert nucleus.main(["train", "--smoke", "--weights", "none", "--dataset", str(dataset), "--logs", str(logs),
                         "--limit", "4"]) == 0
    assert [p.name for p in _checkpoints(logs, "nucleus")][-1] == "mask_rcnn_nucleus_0002.pth"
    assert nucleus.main(["detect", "--smoke", "--weights", "last", "--dataset", str(dataset), "--subset", "val",
                         "--logs", str(logs), "--results", str(results), "--limit", "1"]) == 0
    (submission,) = results.glob("submit_*/submit.csv")
    rows = list(csv.reader(submission.read_text().splitlines()))
    assert rows[0] == ["ImageId", "EncodedPixels"]
    assert {r[0] for r in rows[1:]} == {val.image_info[0]["id"]}
    assert len(list(submission.parent.glob("*.png"))) == 1
