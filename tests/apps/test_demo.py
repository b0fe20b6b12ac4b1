"""demo: a fixed amount of training whatever the machine's pace; every output; what the model achieved."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

import maskrcnn.apps.demo as demo
from maskrcnn.apps.demo import ShapesDemoConfig, _loss_recorder, nothing_found_message, training_attributes
from maskrcnn.cli import main

#: The plumbing runs with a tiny amount of work (the real demo: DEMO_STEPS, EVAL_IMAGES).
TINY = {"DEMO_STEPS": 4, "EVAL_IMAGES": 2}


def _tiny(monkeypatch) -> None:
    for name, value in TINY.items():
        monkeypatch.setattr(demo, name, value, raising=False)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One tiny demo through the CLI (defaults: no --steps, no --minutes), with its console output."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo") / "demo"
    patch = pytest.MonkeyPatch()
    try:
        _tiny(patch)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert main(["demo", "--out", str(out)]) == 0
    finally:
        patch.undo()
    return out, printed.getvalue()


def test_demo_writes_every_output_and_says_what_the_model_achieved(demo_run):
    from maskrcnn.detector import MaskRCNN

    out, printed = demo_run
    assert re.search(r"mask mAP@0\.5 = \d\.\d{3} .*COCO AP50 of the detections scoring >= 0\.05\)", printed)
    assert re.search(r"done in \d+ s: the model \(4 steps\) reached mask mAP@0\.5 = \d\.\d{3} on 2 held-out images "
                     r"and found \d+ objects in 4 images \(\d+ in their ground truth\)", printed)
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
    metrics = json.loads((out / "evaluation.json").read_text())
    assert 0.0 <= metrics["segm"]["AP50"] <= 1.0 and metrics["images"] == 2
    size = ShapesDemoConfig.IMAGE_MAX_DIM
    for folder in ("images", "splash", "detections/pictures"):
        files = sorted((out / folder).glob("*.png"))
        assert [p.name for p in files] == [f"shapes_{i}.png" for i in range(4)], folder
        assert Image.open(files[0]).size == (size, size)
    assert len(list((out / "detections" / "labelme").glob("*.json"))) == 4
    model = MaskRCNN.from_weights(out / "model.pt", device="cpu")
    assert model.config.DETECTION_MIN_CONFIDENCE == 0.5  # the evaluation's lower threshold was not kept
    assert model.class_names == ["BG", "square", "circle", "triangle"]
    assert model.config.BACKBONE == "resnet18" and model.config.TOP_DOWN_PYRAMID_SIZE == 64
    assert '<section id="weights">' in (out / "inspect.html").read_text()


class _SlowClock:
    """``time.monotonic`` / ``time.perf_counter`` on a machine 1000 times slower: every reading is 100 s later."""

    def __init__(self) -> None:
        self.readings = 0
        self.real = time.perf_counter

    def __call__(self) -> float:
        self.readings += 1
        return self.real() + 100.0 * self.readings


def test_the_amount_of_training_does_not_depend_on_the_machines_pace(demo_run, tmp_path, monkeypatch, capsys):
    """The defaults train the same steps on a slow machine (every step seems to take minutes) and give the same
    model: the losses of every step are equal. (The time-boxed demo trained 1 step there.)"""
    fast_out, _ = demo_run
    _tiny(monkeypatch)
    clock = _SlowClock()
    monkeypatch.setattr(time, "monotonic", clock)
    monkeypatch.setattr(time, "perf_counter", clock)
    out = tmp_path / "slow"
    threads = torch.get_num_threads()
    assert main(["demo", "--out", str(out)]) == 0
    monkeypatch.undo()
    assert torch.get_num_threads() == threads  # the demo's one thread was for the demo only
    assert clock.readings > 10  # the demo did look at the (slow) clock
    slow = json.loads((out / "training.json").read_text())["steps"]
    fast = json.loads((fast_out / "training.json").read_text())["steps"]
    assert len(slow) == len(fast) == TINY["DEMO_STEPS"]
    for a, b in zip(slow, fast):
        assert {k: v for k, v in a.items() if k != "time_s"} == {k: v for k, v in b.items() if k != "time_s"}
    assert "4 steps of 8 images, seed 0, 1 thread(s)" in capsys.readouterr().out


def test_a_time_box_stops_training_and_says_so(tmp_path, monkeypatch, capsys):
    _tiny(monkeypatch)
    clock = _SlowClock()
    monkeypatch.setattr(time, "monotonic", clock)
    monkeypatch.setattr(time, "perf_counter", clock)
    assert main(["demo", "--out", str(tmp_path / "boxed"), "--minutes", "1", "--eval-images", "1"]) == 0
    monkeypatch.undo()
    printed = capsys.readouterr().out
    assert "the time box stopped training after 1 of 4 steps" in printed
    assert len(json.loads((tmp_path / "boxed" / "training.json").read_text())["steps"]) == 1


def test_nothing_found_is_said():
    assert nothing_found_message(0, 4, 0.5) == ("0 objects found in 4 images — the model is undertrained or the "
                                                "threshold too high (DETECTION_MIN_CONFIDENCE=0.5)")
    assert nothing_found_message(3, 4, 0.5) == ""


def test_loss_recorder_and_training_schedule():
    steps: list[dict] = []
    recorder = _loss_recorder(steps)
    recorder.before_train(None)
    recorder.after_step(None, SimpleNamespace(global_step=1, lr=1e-5, losses={"loss": 2.5, "rpn_class_loss": 0.5}))
    assert steps[0]["step"] == 1 and steps[0]["loss"] == 2.5 and steps[0]["lr"] == 1e-5
    assert training_attributes(400)["LR_WARMUP_STEPS"] == 40 and training_attributes(5000)["LR_WARMUP_STEPS"] == 100
    config = ShapesDemoConfig()
    assert (config.OPTIMIZER, config.LR_SCHEDULE, config.STEPS_PER_EPOCH) == ("adamw", "cosine", demo.DEMO_STEPS)


@pytest.mark.parametrize("argv, message", [
    (["--minutes", "0"], "--minutes 0.0: must be positive"),
    (["--steps", "0"], "--steps 0: must be at least 1"),
    (["--eval-images", "0"], "--eval-images 0: must be at least 1"),
])
def test_demo_refuses_bad_amounts(tmp_path: Path, capsys, argv, message):
    assert main(["demo", "--out", str(tmp_path / "x"), *argv]) == 1
    assert message in capsys.readouterr().err


def test_deterministic_context_sets_and_restores_torch_flags():
    import torch.utils.deterministic as torch_deterministic

    before = (torch.are_deterministic_algorithms_enabled(), torch_deterministic.fill_uninitialized_memory)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with demo.deterministic("cpu"):
            assert torch.are_deterministic_algorithms_enabled()
            assert torch_deterministic.fill_uninitialized_memory is False  # no NaN fill of every new tensor
        assert (torch.are_deterministic_algorithms_enabled(), torch_deterministic.fill_uninitialized_memory) == before
        torch.set_num_threads(1)  # one thread is deterministic as it is: the flags stay as they are
        with demo.deterministic("cpu"):
            assert torch.are_deterministic_algorithms_enabled() == before[0]
    finally:
        torch.set_num_threads(threads)
