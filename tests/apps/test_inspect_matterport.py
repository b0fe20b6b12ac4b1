"""inspect on a matterport-architecture model: every section drawn, from the generic probes, on the molded image."""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from maskrcnn import MatterportConfig
from maskrcnn.apps import inspect_report as report_module
from maskrcnn.apps.inspect_report import SECTION_IDS, image_offset, inspect_report
from maskrcnn.cli import main
from maskrcnn.data import ShapesDataset
from maskrcnn.detector import MaskRCNN

NAMES = ["BG", "square", "circle", "triangle"]


def _config() -> MatterportConfig:
    """matterport's ResNet-50 at 128 px with small heads; detection threshold 0 so random weights detect."""
    return MatterportConfig(NAME="mp_inspect", BACKBONE="resnet50", NUM_CLASSES=4, TOP_DOWN_PYRAMID_SIZE=16,
                            FPN_CLASSIF_FC_LAYERS_SIZE=32, POOL_SIZE=5, MASK_HEAD_CONV_CHANNELS=8,
                            MASK_HEAD_NUM_CONVS=1, IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=128,
                            RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128), POST_NMS_ROIS_INFERENCE=60,
                            DETECTION_MIN_CONFIDENCE=0.0, DETECTION_MAX_INSTANCES=6)


@pytest.fixture(scope="module")
def model() -> MaskRCNN:
    torch.manual_seed(0)
    return MaskRCNN(_config(), class_names=NAMES, device="cpu")


@pytest.fixture(scope="module")
def sample():
    """A 48×80 image (molded to 64×107, centred in 128×128: window from row 32, column 10) and its masks."""
    dataset = ShapesDataset(1, 48, 80, seed=3)
    masks, class_ids = dataset.load_mask(0)
    return dataset.load_image(0), masks, class_ids


def _sections(path: Path) -> tuple[dict[str, list[bytes]], str]:
    text = path.read_text(encoding="utf-8")
    sections = {}
    for chunk in re.split(r'<section id="', text)[1:]:
        name = chunk.split('"', 1)[0]
        sections[name] = [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', chunk)]
    return sections, html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r'src="data:[^"]+"', "", text)))


def test_every_section_is_drawn_for_a_matterport_model(model, sample, tmp_path, monkeypatch):
    image, masks, class_ids = sample
    seen = {}
    original = report_module.sections.anchors_section

    def keep_context(page, ctx):
        seen.update(ctx)
        return original(page, ctx)

    monkeypatch.setattr(report_module.sections, "anchors_section", keep_context)
    out = inspect_report(model, image, tmp_path / "report.html", gt_masks=masks, gt_class_ids=class_ids)
    sections, text = _sections(out)
    assert list(sections) == list(SECTION_IDS)
    for name, pictures in sections.items():
        assert pictures, f"section {name} has no picture"
        for png in pictures:
            Image.open(io.BytesIO(png)).verify()
    assert len(sections["anchors"]) == 2  # the centre anchors and the positive anchors of the ground truth
    for phrase in ("molded as matterport molds it", "positive anchors of the ground truth", "recall@0.5",
                   "Detection layer (matterport's)", "Ground truth (green)", "thresholded at 0.5 by matterport"):
        assert phrase in text, phrase

    # The network input is the whole molded image: the window (rows 32..96, columns 10..117) and black padding.
    batch = seen["batch"]
    assert batch.windows == [(32, 10, 96, 117)] and image_offset(batch) == (32, 10) == seen["offset"]
    net = seen["net_image"]
    assert net.shape == (128, 128, 3)
    assert (net[:32] == 0).all() and (net[96:] == 0).all() and (net[:, :10] == 0).all() and (net[:, 117:] == 0).all()
    # The ground truth is where the molded masks are: the preprocessor's own boxes (scaled, then shifted).
    boxes = torch.from_numpy(seen["gt"].boxes)
    target = {"boxes": boxes, "labels": torch.ones(len(boxes), dtype=torch.int64)}
    _, (molded,) = model.network.preprocessor([torch.from_numpy(image).permute(2, 0, 1)], [target])
    torch.testing.assert_close(seen["gt_resized"], molded["boxes"])
    assert seen["gt_resized"][:, 0].min() >= 10 and seen["gt_resized"][:, 1].min() >= 32
    # the anchors drawn are the RPN's: pixels of the molded image, matterport's anchors denormalized
    assert seen["anchors"].shape == (4092, 4)


def test_cli_inspect_of_a_matterport_checkpoint(model, tmp_path):
    weights = model.save(tmp_path / "mp.pt")
    plain = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (90, 60, 3), dtype=np.uint8)).save(plain)
    out = tmp_path / "report.html"
    assert main(["inspect", "--weights", str(weights), "--image", str(plain), "--out", str(out), "--limit", "10"]) == 0
    sections, text = _sections(out)
    assert list(sections) == list(SECTION_IDS) and all(sections.values())
    assert "No ground truth given" in text and "window starts at row 16, column 32" in text  # 90x60 -> 96x64
