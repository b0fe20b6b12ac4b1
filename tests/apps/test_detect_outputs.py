"""``detect`` outputs never alias its inputs and all have the same ordinary permissions.

Before: ``labelme/`` held hard links to the source images (editing an output changed the user's
original, and the source files' link count grew), and outputs mixed 0600 and 0644.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
from PIL import Image

from maskrcnn.apps.detect import detect_images


class StandIn:
    class_names = ["BG", "thing"]

    def detect(self, images, **kwargs):
        out = []
        for image in images:
            masks = np.zeros((*image.shape[:2], 1), dtype=bool)
            masks[2:12, 3:20, 0] = True
            out.append({"rois": np.array([[2, 3, 12, 20]], np.int32), "class_ids": np.array([1], np.int32),
                        "scores": np.array([0.9], np.float32), "masks": masks})
        return out


def test_outputs_are_new_files_with_one_mode(tmp_path: Path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    for name, mode in (("a.jpg", 0o444), ("b.png", 0o640)):  # read-only like shared data; private
        Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)).save(inputs / name)
        os.chmod(inputs / name, mode)
    before = {p.name: os.stat(p) for p in inputs.iterdir()}
    old_umask = os.umask(0o022)
    try:
        detect_images(StandIn(), sorted(inputs.iterdir()), tmp_path / "out")
        detect_images(StandIn(), sorted(inputs.iterdir()), tmp_path / "out")  # a second run over the first
    finally:
        os.umask(old_umask)
    outputs = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert {p.relative_to(tmp_path / "out").as_posix() for p in outputs} >= {"labelme/a.jpg", "labelme/b.png",
                                                                            "labelme/a.json", "predictions.json"}
    input_inodes = {s.st_ino for s in before.values()}
    for p in outputs:
        st = os.stat(p)
        assert st.st_ino not in input_inodes and st.st_nlink == 1, p
    assert {stat.S_IMODE(os.stat(p).st_mode) for p in outputs} == {0o644}
    for name, st in before.items():
        now = os.stat(inputs / name)
        assert (now.st_nlink, stat.S_IMODE(now.st_mode), now.st_mtime_ns) == (1, stat.S_IMODE(st.st_mode),
                                                                             st.st_mtime_ns)
    assert (tmp_path / "out" / "labelme" / "a.jpg").read_bytes() == (inputs / "a.jpg").read_bytes()
    assert not [p for p in (tmp_path / "out").rglob(".*")]  # no temporary files left
