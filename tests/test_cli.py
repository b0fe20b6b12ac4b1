"""The CLI prints warnings as its own one-line messages (no Python source line, no file:line)."""

from __future__ import annotations

import json
import warnings

import numpy as np
from PIL import Image

from maskrcnn import cli


def _via_dataset_with_points_outside(folder):
    folder.mkdir(parents=True)
    Image.fromarray(np.full((40, 50, 3), 128, np.uint8)).save(folder / "a.png")
    region = {"shape_attributes": {"name": "polygon", "all_points_x": [2, 60, 30], "all_points_y": [2, 5, 30]},
              "region_attributes": {}}
    data = {"a.png0": {"filename": "a.png", "size": 0, "regions": [region], "file_attributes": {}}}
    (folder / "via_region_data.json").write_text(json.dumps(data))
    return folder


def test_dataset_warning_prints_as_one_line(tmp_path, capsys):
    folder = _via_dataset_with_points_outside(tmp_path / "data")
    code = cli.main(["show-dataset", str(folder), "--format", "via", "--out", str(tmp_path / "out"), "--no-anchors"])
    assert code == 0
    err = capsys.readouterr().err
    assert err == (f"maskrcnn show-dataset: warning: {folder / 'via_region_data.json'}: a.png region 0: points "
                   f"outside the image (50x40): x in [2, 60], y in [2, 30]; clipped\n")


def test_other_warnings_are_one_line_and_name_their_origin(monkeypatch, capsys):
    from maskrcnn.commands import check_dataset

    def run(args):
        warnings.warn_explicit("something\n  odd", RuntimeWarning, "/elsewhere/somelib/mod.py", 3)
        return 0

    monkeypatch.setattr(check_dataset, "run", run)
    assert cli.main(["check-dataset", "x"]) == 0
    assert capsys.readouterr().err == "maskrcnn check-dataset: warning: something odd (RuntimeWarning from mod)\n"
    assert warnings.showwarning is not None and warnings.showwarning.__module__ == "warnings"  # restored
