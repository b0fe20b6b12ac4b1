"""The tutorial notebooks of samples/notebooks/ run top to bottom, offline.

Each notebook is executed with nbclient in a fresh ``python3`` kernel whose working folder
is a temporary one (the logs and checkpoints they write go there, never into the project or
the shared data); any cell error fails the test. The balloon notebooks read the dataset of
``../shared/data`` through ``MASKRCNN_BALLOON_DIR``. Besides running, each test checks what
the notebook printed and drew.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "samples" / "notebooks"
NAMES = ("inspect_balloon_data", "inspect_balloon_model", "train_shapes")
CELL_TIMEOUT_S = 300


def _execute(name: str, cwd: Path, monkeypatch) -> nbformat.NotebookNode:
    """Run ``samples/notebooks/<name>.ipynb`` in ``cwd``; raises CellExecutionError on a failing cell."""
    # The kernelspec runs "python": make it this interpreter, whatever PATH says.
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    monkeypatch.delenv("MASKRCNN_BALLOON_WEIGHTS", raising=False)
    before = sorted(p.name for p in NOTEBOOKS.iterdir())
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
    client.execute()
    assert sorted(p.name for p in NOTEBOOKS.iterdir()) == before  # nothing written beside the notebooks
    return nb


def _outputs(nb, kind: str) -> list:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
            if o.output_type == kind or (kind == "display" and o.output_type in ("display_data", "execute_result"))]


def _stdout(nb) -> str:
    return "".join(o.text for o in _outputs(nb, "stream") if o.name == "stdout")


def _count(nb, mime: str) -> int:
    return sum(mime in o.data for o in _outputs(nb, "display"))


@pytest.mark.parametrize("name", NAMES)
def test_notebooks_are_stored_clean(name: str):
    """Stored without outputs or execution counts, with the python3 kernel."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= len(code) // 2  # a tutorial, not a script


def test_inspect_balloon_data(shared_data: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MASKRCNN_BALLOON_DIR", str(shared_data / "balloon"))
    nb = _execute("inspect_balloon_data", tmp_path, monkeypatch)
    out = _stdout(nb)
    assert "Image Count: 61" in out and "Class Count: 2" in out and "1. balloon" in out
    # 5 pyramid levels of 3 anchors per cell on a 256-pixel image: 64², 32², 16², 8², 4² cells
    assert "anchors                   shape: (16368, 4)" in out
    assert re.search(r"Positive anchors: +[1-9]", out)
    assert _count(nb, "image/png") >= 12


def test_inspect_balloon_model(shared_data: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("MASKRCNN_BALLOON_DIR", str(shared_data / "balloon"))
    nb = _execute("inspect_balloon_model", tmp_path, monkeypatch)
    out = _stdout(nb)
    assert "Images: 13" in out
    mean_ap = re.search(r"mAP @ IoU=50: +([0-9.]+)", out)
    assert mean_ap and 0.0 <= float(mean_ap.group(1)) <= 1.0
    assert len(re.findall(r"Recall @ IoU", out)) == 4
    assert "rpn.proposals[0]" in out and "mask.probs" in out and "backbone.c5" in out
    # the tiny model was trained here: its checkpoint is in the working folder's logs/
    assert list((tmp_path / "logs").glob("balloon*/mask_rcnn_balloon_0001.pth"))
    assert _count(nb, "text/html") == 1  # the weight statistics table
    assert _count(nb, "image/png") >= 15


def test_train_shapes(tmp_path: Path, monkeypatch):
    nb = _execute("train_shapes", tmp_path, monkeypatch)
    out = _stdout(nb)
    assert "Train images: 200, validation images: 20" in out
    mean_ap = re.search(r"mAP: +([0-9.]+)", out)
    assert mean_ap and 0.0 <= float(mean_ap.group(1)) <= 1.0
    # heads then all layers: checkpoints up to epoch 2 in the working folder's logs/
    assert list((tmp_path / "logs").glob("shapes*/mask_rcnn_shapes_0002.pth"))
    assert _count(nb, "image/png") >= 6
