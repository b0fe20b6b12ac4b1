"""Parity against matterport's own code, run now: ``pytest -m matterport`` with
``MASKRCNN_MATTERPORT_PYTHON=/path/to/tf-venv/bin/python`` (the reference's venv, see
``../shared/reference/matterport/README.md``). matterport makes seeded weights, saves them as ``.h5`` and
detects; we load that ``.h5`` and must give the same detections (boundary cases excused as in
test_matterport_parity.py, which checks a committed fixture without TensorFlow on every run)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from test_matterport_parity import _benchmark

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT.parent / "shared" / "reference" / "matterport" / "reference.py"

pytestmark = pytest.mark.matterport


@pytest.mark.parametrize("backbone", ["resnet50"])
def test_same_detections_as_matterport_run_now(shared_data, tmp_path, backbone):
    python = os.environ.get("MASKRCNN_MATTERPORT_PYTHON")
    if not python:
        pytest.skip("set MASKRCNN_MATTERPORT_PYTHON to the reference's TensorFlow venv python")
    if not REFERENCE.is_file():
        pytest.skip(f"{REFERENCE} not found")
    from maskrcnn.evaluation.parity import compare_image, format_report

    image = shared_data / "car_damage" / "dataset" / "val" / "4.jpg"
    h5, out = tmp_path / "seeded.h5", tmp_path / "out"
    subprocess.run([python, str(REFERENCE), "--backbone", backbone, "--seed", "0", "--save-h5", str(h5), "--out",
                    str(out), "--repeats", "1", str(image)], check=True, capture_output=True, text=True)
    with np.load(out / "4.npz") as data:
        ref = {k: data[k] for k in data.files}
    bench = _benchmark()
    ours = bench.ours(bench.build_model(h5), ref["image"])
    result = compare_image(ours, ref, name=f"{backbone} 4.jpg", edge_flips_ok=True)
    assert result.ok, format_report([result])
