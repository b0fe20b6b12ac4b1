"""Builders of small synthetic datasets on disk (tmp_path) for the data-layer tests (imported by name)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(path: Path, height: int, width: int, *, seed: int = 0, fmt: str | None = None) -> Path:
    """A random RGB image file of ``height x width``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path, format=fmt)
    return path


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def via_polygon(xs, ys) -> dict:
    return {"name": "polygon", "all_points_x": list(xs), "all_points_y": list(ys)}


def via_entry(filename: str, regions, *, v1: bool = False, size: int = 0) -> tuple[str, dict]:
    regs = {str(i): r for i, r in enumerate(regions)} if v1 else list(regions)
    entry = {"filename": filename, "size": size, "regions": regs, "file_attributes": {}}
    if v1:
        entry.update(fileref="", base64_img_data="")
    return f"{filename}{size}", entry


def region(shape: dict, **attrs) -> dict:
    return {"shape_attributes": shape, "region_attributes": dict(attrs)}
