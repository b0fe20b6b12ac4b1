"""demo: a shortened run writes every output; the time box and its budget."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

from PIL import Image

from maskrcnn.apps.demo import _budget, _eval_images, _loss_recorder, training_attributes
from maskrcnn.cli import main


def test_budget_leaves_a_reserve_for_evaluation_and_reports():
    assert _budget(30.0)["train"] == 10.0  # reserve at least 20 s
    assert _budget(300.0)["train"] == 264.0  # 12 % reserve
    assert _budget(1000.0)["train"] == 925.0  # reserve at most 75 s
    # Evaluation takes as many images as the time left allows after detect/splash/inspect, 4..24.
    assert _eval_images(60.0, 0.5) == 24
    assert _eval_images(20.0, 0.5) == int((20.0 - 9.0 - 3.0) / 0.6)  # 13
    assert _eval_images(5.0, 0.5) == 4


def test_loss_recorder_and_training_schedule():
    steps: list[dict] = []
    recorder = _loss_recorder(steps)
    recorder.before_train(None)
    recorder.after_step(None, SimpleNamespace(global_step=1, lr=1e-5, losses={"loss": 2.5, "rpn_class_loss": 0.5}))
    assert steps[0]["step"] == 1 and steps[0]["loss"] == 2.5 and steps[0]["lr"] == 1e-5
    assert training_attributes(400)["LR_WARMUP_STEPS"] == 40 and training_attributes(5000)["LR_WARMUP_STEPS"] == 100
    assert training_attributes(400)["LR_SCHEDULE"] == "cosine"


def test_short_demo_writes_every_output(tmp_path: Path, capsys):
    from maskrcnn.detector import MaskRCNN

    out = tmp_path / "demo"
    assert main(["demo", "--minutes", "0.5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"mask mAP@0\.5 = \d\.\d{3}", printed)
    for name in ("index.html", "README.txt", "model.pt", "config.yaml", "training.json", "evaluation.json",
                 "inspect.html", "detections/predictions.json", "detections/images.json",
                 "detections/via_region_data.json"):
        assert (out / name).is_file(), name
    assert (out / "logs").is_dir() and not list((out / "logs").glob("**/*.pth"))  # metrics only; model.pt is the model
    assert len(list((out / "logs").glob("*/metrics.jsonl"))) == 1
    # Every link and picture of index.html exists.
    index = (out / "index.html").read_text()
    targets = re.findall(r'(?:href|src)="([^"]+)"', index)
    assert len(targets) >= 8 + 3 * 4
    for target in targets:
        assert (out / target).exists(), target
    steps = json.loads((out / "training.json").read_text())["steps"]
    assert len(steps) >= 1 and {"step", "loss", "mrcnn_mask_loss"} <= set(steps[0])
    metrics = json.loads((out / "evaluation.json").read_text())
    assert 0.0 <= metrics["segm"]["AP50"] <= 1.0
    for folder in ("images", "splash", "detections/pictures"):
        files = sorted((out / folder).glob("*.png"))
        assert [p.name for p in files] == [f"shapes_{i}.png" for i in range(4)], folder
        assert Image.open(files[0]).size == (128, 128)
    assert len(list((out / "detections" / "labelme").glob("*.json"))) == 4
    model = MaskRCNN.from_checkpoint(out / "model.pt", device="cpu")
    assert model.class_names == ["BG", "square", "circle", "triangle"]
    assert model.config.BACKBONE == "resnet18" and model.config.TOP_DOWN_PYRAMID_SIZE == 64
    assert '<section id="weights">' in (out / "inspect.html").read_text()


def test_demo_refuses_a_non_positive_budget(tmp_path: Path, capsys):
    assert main(["demo", "--minutes", "0", "--out", str(tmp_path / "x")]) == 1
    assert "--minutes 0.0: must be positive" in capsys.readouterr().err
