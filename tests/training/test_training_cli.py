"""`maskrcnn train` killed mid-epoch (SIGKILL) and resumed with `--weights last` ends where an
uninterrupted run ends; `maskrcnn evaluate` writes the documented JSON."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from maskrcnn.cli import main

TINY = [
    "BACKBONE=resnet18", "BACKBONE_NORM=gn", "IMAGE_MIN_DIM=64", "IMAGE_MAX_DIM=64",
    "RPN_ANCHOR_SCALES=[8, 16, 32, 64, 128]", "TOP_DOWN_PYRAMID_SIZE=16", "MASK_HEAD_CONV_CHANNELS=16",
    "MASK_HEAD_NUM_CONVS=1", "FPN_CLASSIF_FC_LAYERS_SIZE=32", "TRAIN_ROIS_PER_IMAGE=16", "PRE_NMS_LIMIT=300",
    "POST_NMS_ROIS_TRAINING=32", "POST_NMS_ROIS_INFERENCE=16", "MINI_MASK_SHAPE=[14, 14]", "IMAGES_PER_GPU=2",
    "STEPS_PER_EPOCH=3", "VALIDATION_STEPS=1", "EVAL_EVERY=0", "LR_SCHEDULE=cosine", "LR_WARMUP_STEPS=2",
    "LEARNING_RATE=0.01",
]


def _cmd(logs: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "maskrcnn", "train", "--dataset", "shapes:6:64", "--format", "shapes",
            "--set", *TINY, "--epochs", "3", "--seed", "5", "--layers", "all", "--name", "tiny",
            "--logs", str(logs), "--progress", "plain", "--device", "cpu", *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _final_weights(logs: Path) -> dict[str, torch.Tensor]:
    (ckpt,) = logs.glob("tiny*/mask_rcnn_tiny_0003.pth")
    return torch.load(ckpt, weights_only=True)["model"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run, and a run SIGKILLed in epoch 2 then resumed (the first two concurrently)."""
    root = tmp_path_factory.mktemp("cli")
    full = subprocess.Popen(_cmd(root / "full"), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    killed = subprocess.Popen(_cmd(root / "killed"), env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    seen = []
    deadline = time.monotonic() + 600
    for line in killed.stdout:
        seen.append(line)
        if line.startswith("epoch 2/3 step 1/3"):
            killed.send_signal(signal.SIGKILL)
            break
        assert time.monotonic() < deadline, "".join(seen)
    killed.wait(timeout=60)
    at_kill = sorted(p.name for p in (root / "killed").rglob("*.pth"))
    full_out, _ = full.communicate(timeout=600)
    assert full.returncode == 0, full_out
    # resume in this process (saves a start-up; one thread, as the subprocesses)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            rc = main(_cmd(root / "killed", "--weights", "last")[3:])
    finally:
        torch.set_num_threads(before)
    return {"root": root, "killed_rc": killed.returncode, "seen": "".join(seen), "at_kill": at_kill,
            "resumed_rc": rc, "resumed_out": buffer.getvalue(), "full_out": full_out}


def test_sigkill_mid_epoch_then_weights_last_equals_uninterrupted(runs):
    root = runs["root"]
    assert runs["killed_rc"] == -signal.SIGKILL, runs["seen"]
    assert runs["at_kill"] == ["mask_rcnn_tiny_0001.pth"], runs["at_kill"]
    out = runs["resumed_out"]
    assert runs["resumed_rc"] == 0, out
    assert "resuming" in out and "epoch 2/3 step 1/3" in out and "epoch 1/3" not in out
    a, b = _final_weights(root / "full"), _final_weights(root / "killed")
    assert a.keys() == b.keys()
    diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a)
    assert diff <= 1e-6, diff
    # the resumed run continued in the killed run's folder
    assert len(list((root / "killed").iterdir())) == 1
    lines = [json.loads(x) for x in next((root / "killed").iterdir()).joinpath("metrics.jsonl").read_text()
             .splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3]


def test_evaluate_writes_documented_json(runs, tmp_path):
    (ckpt,) = (runs["root"] / "full").glob("tiny*/mask_rcnn_tiny_0003.pth")
    out = tmp_path / "m.json"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        rc = main(["evaluate", "--weights", str(ckpt), "--dataset", "shapes:4:64", "--limit", "2", "--json", str(out),
                   "--pr-curve", str(tmp_path / "pr.png"), "--min-confidence", "0", "--no-progress",
                   "--device", "cpu"])
    assert rc == 0, buffer.getvalue()
    data = json.loads(out.read_text())
    names = {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"}
    assert set(data["bbox"]) == names and set(data["segm"]) == names
    assert set(data["per_class"]) == {"bbox", "segm"}
    assert set(data["per_class"]["segm"]) == {"square", "circle", "triangle"}
    assert data["images"] == 2 and data["subset"] == "val"
    assert (tmp_path / "pr.png").stat().st_size > 0
    assert "segm" in buffer.getvalue() and "AP50" in buffer.getvalue()


def test_evaluate_refuses_a_dataset_of_other_classes(runs, capsys, shared_data):
    (ckpt,) = (runs["root"] / "full").glob("tiny*/mask_rcnn_tiny_0003.pth")
    rc = main(["evaluate", "--weights", str(ckpt), "--dataset", str(shared_data / "balloon"), "--limit", "1", "--no-progress",
               "--device", "cpu"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "balloon" in err and "square" in err
